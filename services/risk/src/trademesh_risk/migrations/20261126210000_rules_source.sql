-- migrate:up
-- Where an instrument's rules came from: `venue` (the venue's market info, written by the venue
-- sync) or `admin` (PUT /api/v1/instruments/rules). An instrument may have both: the admin's
-- fields win where set (engine.rules_in_force), and the sync only ever writes `venue` rows, so
-- it never overwrites an admin's override. Rules set before this column existed came from the
-- admin API.
ALTER TABLE instrument_rules
    ADD COLUMN source text NOT NULL DEFAULT 'admin' CHECK (source IN ('venue', 'admin'));
ALTER TABLE instrument_rules ALTER COLUMN source DROP DEFAULT;
ALTER TABLE instrument_rules DROP CONSTRAINT instrument_rules_pkey;
ALTER TABLE instrument_rules ADD PRIMARY KEY (instrument_id, source);

-- migrate:down
-- One row per instrument again: where both exist, the admin's override is kept. Migrating up
-- again counts every row as an admin's (it can no longer tell); deleting such an override through
-- the API lets the venue's rules apply again.
DELETE FROM instrument_rules AS venue
WHERE venue.source = 'venue' AND EXISTS (
    SELECT 1 FROM instrument_rules AS admin
    WHERE admin.instrument_id = venue.instrument_id AND admin.source = 'admin'
);
ALTER TABLE instrument_rules DROP CONSTRAINT instrument_rules_pkey;
ALTER TABLE instrument_rules ADD PRIMARY KEY (instrument_id);
ALTER TABLE instrument_rules DROP COLUMN source;

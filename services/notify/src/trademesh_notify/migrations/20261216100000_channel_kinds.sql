-- migrate:up
-- Telegram and e-mail channels beside webhooks. A webhook has a URL; the other kinds keep their
-- non-secret settings (a Telegram chat id; an SMTP host, port, user, sender, recipients and TLS
-- mode) in `config`, shown to their owner. Their secret (the bot token, the SMTP password) is in
-- `sealed_secret`, sealed like a webhook's signing secret (AAD: the channel id).
ALTER TABLE channels DROP CONSTRAINT channels_kind_check;
ALTER TABLE channels ADD CONSTRAINT channels_kind_check
    CHECK (kind IN ('webhook', 'telegram', 'email'));
ALTER TABLE channels ALTER COLUMN url DROP NOT NULL;
ALTER TABLE channels ADD COLUMN config jsonb NOT NULL DEFAULT '{}';
ALTER TABLE channels ADD CONSTRAINT channels_url_of_webhooks
    CHECK ((kind = 'webhook') = (url IS NOT NULL));

-- migrate:down
DELETE FROM channels WHERE kind <> 'webhook';
ALTER TABLE channels DROP CONSTRAINT channels_url_of_webhooks;
ALTER TABLE channels DROP COLUMN config;
ALTER TABLE channels ALTER COLUMN url SET NOT NULL;
ALTER TABLE channels DROP CONSTRAINT channels_kind_check;
ALTER TABLE channels ADD CONSTRAINT channels_kind_check CHECK (kind IN ('webhook'));

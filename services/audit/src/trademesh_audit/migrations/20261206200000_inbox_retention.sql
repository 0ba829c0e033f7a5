-- migrate:up
-- The retention (trademesh_bus.retention) deletes inbox ids past their keep time; audit writes no
-- outbox, and its log stays insert-only.
GRANT DELETE ON inbox TO trademesh_audit_writer;
GRANT SELECT, DELETE ON outbox TO trademesh_audit_writer;

-- migrate:down
REVOKE SELECT, DELETE ON outbox FROM trademesh_audit_writer;
REVOKE DELETE ON inbox FROM trademesh_audit_writer;

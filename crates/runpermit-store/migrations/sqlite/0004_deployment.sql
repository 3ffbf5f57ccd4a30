-- The deployment's identity (SQLite). Keep in step with ../postgres/0004_deployment.sql: same
-- tables, columns, constraints and triggers.
--
-- One deployment has one transparency-log key and one set of permit-signing keys, whatever the
-- number of `runpermit serve` processes sharing the database. The first start on a database
-- records the log's verifier key here (and its permit-signing key in signing_keys) in one
-- transaction; every later start compares its own keys with what is recorded and refuses to
-- run with others. The row is written once: the triggers below refuse UPDATE and DELETE.
CREATE TABLE deployment (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    -- The log's origin: the first line of every checkpoint.
    log_origin TEXT    NOT NULL,
    -- The log's verifier key, C2SP `origin+hash+base64`, as served at /log/vkey.
    log_vkey   TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TRIGGER deployment_no_update BEFORE UPDATE ON deployment
BEGIN
    SELECT RAISE(ABORT, 'deployment is written once: UPDATE refused');
END;

CREATE TRIGGER deployment_no_delete BEFORE DELETE ON deployment
BEGIN
    SELECT RAISE(ABORT, 'deployment is written once: DELETE refused');
END;

-- The deployment's identity (PostgreSQL). Keep in step with ../sqlite/0004_deployment.sql:
-- same tables, columns, constraints and triggers.
--
-- One deployment has one transparency-log key and one set of permit-signing keys, whatever the
-- number of `runpermit serve` processes sharing the database. The first start on a database
-- records the log's verifier key here (and its permit-signing key in signing_keys) in one
-- transaction; every later start compares its own keys with what is recorded and refuses to
-- run with others. Two first starts at once both insert id 1: one commits, the other gets a
-- unique violation and compares. The row is written once: the triggers below refuse UPDATE,
-- DELETE and TRUNCATE.
CREATE TABLE deployment (
    id         INTEGER NOT NULL,
    -- The log's origin: the first line of every checkpoint.
    log_origin TEXT    NOT NULL,
    -- The log's verifier key, C2SP `origin+hash+base64`, as served at /log/vkey.
    log_vkey   TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    CONSTRAINT deployment_pkey PRIMARY KEY (id),
    CONSTRAINT deployment_id_check CHECK (id = 1)
);

CREATE FUNCTION deployment_written_once() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'deployment is written once: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER deployment_no_update_delete BEFORE UPDATE OR DELETE ON deployment
    FOR EACH ROW EXECUTE FUNCTION deployment_written_once();

CREATE TRIGGER deployment_no_truncate BEFORE TRUNCATE ON deployment
    FOR EACH STATEMENT EXECUTE FUNCTION deployment_written_once();

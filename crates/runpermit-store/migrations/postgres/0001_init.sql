-- runpermit authority store, PostgreSQL schema. Times are unix milliseconds; JSON is TEXT.
-- Keep in step with ../sqlite/0001_init.sql: same tables, columns, constraints and indexes.
-- Constraint names are explicit: the store maps them to messages (src/error.rs).

CREATE TABLE organizations (
    id         TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT organizations_pkey PRIMARY KEY (id)
);

CREATE TABLE members (
    id         TEXT   NOT NULL,
    org_id     TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    role       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT members_pkey PRIMARY KEY (id),
    CONSTRAINT members_org_id_fkey FOREIGN KEY (org_id) REFERENCES organizations (id)
);
CREATE INDEX members_org_id_idx ON members (org_id, created_at);

CREATE TABLE tokens (
    id         TEXT   NOT NULL,
    member_id  TEXT   NOT NULL,
    hash       TEXT   NOT NULL,
    label      TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    CONSTRAINT tokens_pkey PRIMARY KEY (id),
    CONSTRAINT tokens_hash_key UNIQUE (hash),
    CONSTRAINT tokens_member_id_fkey FOREIGN KEY (member_id) REFERENCES members (id)
);
CREATE INDEX tokens_member_id_idx ON tokens (member_id, created_at);

CREATE TABLE applications (
    id                 TEXT   NOT NULL,
    org_id             TEXT   NOT NULL,
    created_by         TEXT   NOT NULL,
    status             TEXT   NOT NULL,
    tier               TEXT   NOT NULL,
    decision           TEXT   NOT NULL,
    approvals_required BIGINT NOT NULL,
    plan_json          TEXT   NOT NULL,
    plan_digest        TEXT   NOT NULL,
    estimate_json      TEXT   NOT NULL,
    policy_version     TEXT   NOT NULL,
    version            BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    CONSTRAINT applications_pkey PRIMARY KEY (id),
    CONSTRAINT applications_org_id_fkey FOREIGN KEY (org_id) REFERENCES organizations (id)
);
CREATE INDEX applications_created_at_idx ON applications (created_at);
CREATE INDEX applications_org_id_idx ON applications (org_id, created_at);

CREATE TABLE reviews (
    id              TEXT   NOT NULL,
    application_id  TEXT   NOT NULL,
    reviewer_id     TEXT   NOT NULL,
    reviewer_org_id TEXT   NOT NULL,
    decision        TEXT   NOT NULL,
    reason          TEXT   NOT NULL,
    conditions_json TEXT   NOT NULL,
    policy_version  TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    CONSTRAINT reviews_pkey PRIMARY KEY (id),
    CONSTRAINT reviews_application_id_fkey FOREIGN KEY (application_id) REFERENCES applications (id)
);
CREATE INDEX reviews_application_id_idx ON reviews (application_id, created_at);

CREATE TABLE permits (
    id             TEXT   NOT NULL,
    application_id TEXT   NOT NULL,
    run_id         TEXT   NOT NULL,
    org_id         TEXT   NOT NULL,
    status         TEXT   NOT NULL,
    claims_json    TEXT   NOT NULL,
    token          TEXT,
    kid            TEXT   NOT NULL,
    policy_version TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    issued_at      BIGINT,
    CONSTRAINT permits_pkey PRIMARY KEY (id),
    CONSTRAINT permits_application_id_fkey FOREIGN KEY (application_id) REFERENCES applications (id)
);
CREATE INDEX permits_application_id_idx ON permits (application_id, created_at);

-- At most one exemption receipt per application.
CREATE TABLE receipts (
    id             TEXT   NOT NULL,
    application_id TEXT   NOT NULL,
    org_id         TEXT   NOT NULL,
    token          TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    CONSTRAINT receipts_pkey PRIMARY KEY (id),
    CONSTRAINT receipts_application_id_key UNIQUE (application_id),
    CONSTRAINT receipts_application_id_fkey FOREIGN KEY (application_id) REFERENCES applications (id)
);

CREATE TABLE signing_keys (
    kid        TEXT   NOT NULL,
    public_key BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT,
    CONSTRAINT signing_keys_pkey PRIMARY KEY (kid)
);

-- Append-only: the triggers below refuse UPDATE, DELETE and TRUNCATE. Writers that add audit
-- events hold a transaction-level advisory lock (see src/postgres.rs), so `seq` order is
-- commit order and `after_seq` paging never skips a row that commits late.
CREATE TABLE audit_events (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY,
    at              BIGINT NOT NULL,
    actor_member_id TEXT,
    actor_org_id    TEXT,
    action          TEXT   NOT NULL,
    subject         TEXT   NOT NULL,
    reason          TEXT,
    details_json    TEXT   NOT NULL,
    CONSTRAINT audit_events_pkey PRIMARY KEY (seq)
);
CREATE INDEX audit_events_subject_idx ON audit_events (subject, seq);

CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

CREATE TABLE idempotency (
    principal_id  TEXT   NOT NULL,
    key           TEXT   NOT NULL,
    method_path   TEXT   NOT NULL,
    request_hash  TEXT   NOT NULL,
    status        BIGINT NOT NULL,
    response_json TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    CONSTRAINT idempotency_pkey PRIMARY KEY (principal_id, key)
);

-- runpermit authority store, SQLite schema. Times are unix milliseconds; JSON is TEXT.
-- Keep in step with ../postgres/0001_init.sql: same tables, columns, constraints and indexes.

CREATE TABLE organizations (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE members (
    id         TEXT    NOT NULL PRIMARY KEY,
    org_id     TEXT    NOT NULL REFERENCES organizations (id),
    name       TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX members_org_id_idx ON members (org_id, created_at);

CREATE TABLE tokens (
    id         TEXT    NOT NULL PRIMARY KEY,
    member_id  TEXT    NOT NULL REFERENCES members (id),
    hash       TEXT    NOT NULL UNIQUE,
    label      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
) STRICT;
CREATE INDEX tokens_member_id_idx ON tokens (member_id, created_at);

CREATE TABLE applications (
    id                 TEXT    NOT NULL PRIMARY KEY,
    org_id             TEXT    NOT NULL REFERENCES organizations (id),
    created_by         TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    tier               TEXT    NOT NULL,
    decision           TEXT    NOT NULL,
    approvals_required INTEGER NOT NULL,
    plan_json          TEXT    NOT NULL,
    plan_digest        TEXT    NOT NULL,
    estimate_json      TEXT    NOT NULL,
    policy_version     TEXT    NOT NULL,
    version            INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT;
CREATE INDEX applications_created_at_idx ON applications (created_at);
CREATE INDEX applications_org_id_idx ON applications (org_id, created_at);

CREATE TABLE reviews (
    id              TEXT    NOT NULL PRIMARY KEY,
    application_id  TEXT    NOT NULL REFERENCES applications (id),
    reviewer_id     TEXT    NOT NULL,
    reviewer_org_id TEXT    NOT NULL,
    decision        TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    conditions_json TEXT    NOT NULL,
    policy_version  TEXT    NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX reviews_application_id_idx ON reviews (application_id, created_at);

CREATE TABLE permits (
    id             TEXT    NOT NULL PRIMARY KEY,
    application_id TEXT    NOT NULL REFERENCES applications (id),
    run_id         TEXT    NOT NULL,
    org_id         TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    claims_json    TEXT    NOT NULL,
    token          TEXT,
    kid            TEXT    NOT NULL,
    policy_version TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    issued_at      INTEGER
) STRICT;
CREATE INDEX permits_application_id_idx ON permits (application_id, created_at);

-- At most one exemption receipt per application.
CREATE TABLE receipts (
    id             TEXT    NOT NULL PRIMARY KEY,
    application_id TEXT    NOT NULL UNIQUE REFERENCES applications (id),
    org_id         TEXT    NOT NULL,
    token          TEXT    NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE signing_keys (
    kid        TEXT    NOT NULL PRIMARY KEY,
    public_key BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
) STRICT;

-- Append-only: the triggers below refuse UPDATE and DELETE. AUTOINCREMENT keeps `seq`
-- strictly increasing (never reused), which is what `after_seq` paging relies on.
CREATE TABLE audit_events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    actor_member_id TEXT,
    actor_org_id    TEXT,
    action          TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    reason          TEXT,
    details_json    TEXT    NOT NULL
) STRICT;
CREATE INDEX audit_events_subject_idx ON audit_events (subject, seq);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused');
END;

CREATE TABLE idempotency (
    principal_id  TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    method_path   TEXT    NOT NULL,
    request_hash  TEXT    NOT NULL,
    status        INTEGER NOT NULL,
    response_json TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (principal_id, key)
) STRICT;

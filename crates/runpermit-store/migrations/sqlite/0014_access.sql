-- Structured access (SQLite). Keep in step with ../postgres/0014_access.sql.
--
-- Applications for access to a registered model, the developer's answer and the reviewers'
-- approvals; and the signed grants the authority issues (on an application, or automatically
-- for a pre-deployment evaluation at a milestone report), with their standing.
CREATE TABLE access_requests (
    id                   TEXT    NOT NULL,
    org_id               TEXT    NOT NULL,
    member_id            TEXT    NOT NULL,
    model_id             TEXT    NOT NULL,
    developer_org_id     TEXT    NOT NULL,
    tier                 TEXT    NOT NULL,
    purpose              TEXT    NOT NULL,
    research_plan_digest TEXT    NOT NULL,
    agreement_digest     TEXT    NOT NULL,
    quotas_json          TEXT    NOT NULL,
    days                 INTEGER NOT NULL,
    status               TEXT    NOT NULL,
    consent              TEXT,
    consent_reason       TEXT,
    approvals_json       TEXT    NOT NULL,
    reason               TEXT,
    grant_id             TEXT,
    version              INTEGER NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (model_id) REFERENCES models (id)
) STRICT;
CREATE INDEX access_requests_org_id_idx ON access_requests (org_id, created_at);
CREATE INDEX access_requests_developer_idx ON access_requests (developer_org_id, created_at);

CREATE TABLE access_grants (
    id               TEXT    NOT NULL,
    request_id       TEXT,
    milestone_id     TEXT,
    model_id         TEXT    NOT NULL,
    org_id           TEXT    NOT NULL,
    developer_org_id TEXT    NOT NULL,
    tier             TEXT    NOT NULL,
    origin           TEXT    NOT NULL,
    token            TEXT    NOT NULL,
    claims_json      TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    reason           TEXT    NOT NULL,
    status_since     INTEGER NOT NULL,
    exp_s            INTEGER NOT NULL,
    version          INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (request_id)
) STRICT;
CREATE INDEX access_grants_org_id_idx ON access_grants (org_id, created_at);
CREATE INDEX access_grants_developer_idx ON access_grants (developer_org_id, created_at);
CREATE INDEX access_grants_standing_idx ON access_grants (status, exp_s);

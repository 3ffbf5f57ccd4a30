-- Structured access (PostgreSQL). Keep in step with ../sqlite/0014_access.sql.
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
    days                 BIGINT  NOT NULL,
    status               TEXT    NOT NULL,
    consent              TEXT,
    consent_reason       TEXT,
    approvals_json       TEXT    NOT NULL,
    reason               TEXT,
    grant_id             TEXT,
    version              BIGINT  NOT NULL,
    created_at           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL,
    CONSTRAINT access_requests_pkey PRIMARY KEY (id),
    CONSTRAINT access_requests_model_id_fkey FOREIGN KEY (model_id) REFERENCES models (id)
);
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
    status_since     BIGINT  NOT NULL,
    exp_s            BIGINT  NOT NULL,
    version          BIGINT  NOT NULL,
    created_at       BIGINT  NOT NULL,
    CONSTRAINT access_grants_pkey PRIMARY KEY (id),
    CONSTRAINT access_grants_request_id_key UNIQUE (request_id)
);
CREATE INDEX access_grants_org_id_idx ON access_grants (org_id, created_at);
CREATE INDEX access_grants_developer_idx ON access_grants (developer_org_id, created_at);
CREATE INDEX access_grants_standing_idx ON access_grants (status, exp_s);

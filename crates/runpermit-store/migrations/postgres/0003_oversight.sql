-- Following permitted training runs (PostgreSQL): provider keys, runs, usage reports,
-- milestones, incidents and KYC reports. Keep in step with ../sqlite/0003_oversight.sql: same
-- tables, columns, constraints and indexes. Times are unix milliseconds unless the column name
-- ends in _s (unix seconds); FLOP are DOUBLE PRECISION. Constraint names are explicit: the
-- store maps them to messages (src/error.rs).

-- The keys compute providers sign usage reports with.
CREATE TABLE provider_keys (
    kid        TEXT   NOT NULL,
    org_id     TEXT   NOT NULL,
    public_key BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    CONSTRAINT provider_keys_pkey PRIMARY KEY (kid),
    CONSTRAINT provider_keys_org_id_fkey FOREIGN KEY (org_id) REFERENCES organizations (id)
);
CREATE INDEX provider_keys_org_id_idx ON provider_keys (org_id, created_at);

-- One row per permitted run. `version` guards the run's state (UpdateRun); usage ingestion
-- adds to cumulative_flop and cumulative_upper_flop without changing it, holding the row lock
-- (FOR NO KEY UPDATE) of every run of its batch from its first read to commit.
CREATE TABLE runs (
    id                    TEXT             NOT NULL,
    permit_id             TEXT             NOT NULL,
    org_id                TEXT             NOT NULL,
    status                TEXT             NOT NULL,
    reason                TEXT             NOT NULL,
    status_since          BIGINT           NOT NULL,
    tranche               BIGINT           NOT NULL,
    released_flop         DOUBLE PRECISION NOT NULL,
    budget_flop           DOUBLE PRECISION NOT NULL,
    cumulative_flop       DOUBLE PRECISION NOT NULL,
    cumulative_upper_flop DOUBLE PRECISION NOT NULL,
    summarized_flop       DOUBLE PRECISION NOT NULL,
    alerted_percent       BIGINT           NOT NULL,
    appeal_pending        BOOLEAN          NOT NULL,
    permit_exp_s          BIGINT           NOT NULL,
    version               BIGINT           NOT NULL,
    created_at            BIGINT           NOT NULL,
    updated_at            BIGINT           NOT NULL,
    CONSTRAINT runs_pkey PRIMARY KEY (id),
    CONSTRAINT runs_permit_id_key UNIQUE (permit_id),
    CONSTRAINT runs_permit_id_fkey FOREIGN KEY (permit_id) REFERENCES permits (id)
);
CREATE INDEX runs_created_at_idx ON runs (created_at);
CREATE INDEX runs_org_id_idx ON runs (org_id, created_at);
-- Runs not in good standing, by permit expiry (what gates poll).
CREATE INDEX runs_not_active_idx ON runs (permit_exp_s) WHERE status <> 'active';

-- Signed usage reports, as received. Append-only: the triggers below refuse UPDATE, DELETE
-- and TRUNCATE.
CREATE TABLE usage_reports (
    provider_id              TEXT             NOT NULL,
    run_id                   TEXT             NOT NULL,
    seq                      BIGINT           NOT NULL,
    permit_id                TEXT             NOT NULL,
    cluster                  TEXT             NOT NULL,
    from_s                   BIGINT           NOT NULL,
    to_s                     BIGINT           NOT NULL,
    flop                     DOUBLE PRECISION NOT NULL,
    flop_lower               DOUBLE PRECISION NOT NULL,
    flop_upper               DOUBLE PRECISION NOT NULL,
    method                   TEXT             NOT NULL,
    accelerator_seconds_json TEXT             NOT NULL,
    digest                   TEXT             NOT NULL,
    token                    TEXT             NOT NULL,
    received_at              BIGINT           NOT NULL,
    CONSTRAINT usage_reports_pkey PRIMARY KEY (provider_id, run_id, seq),
    CONSTRAINT usage_reports_run_id_fkey FOREIGN KEY (run_id) REFERENCES runs (id)
);
CREATE INDEX usage_reports_run_id_idx ON usage_reports (run_id, provider_id, seq);

-- log_append_only() comes from 0002_log.sql; its message names the table.
CREATE TRIGGER usage_reports_no_update_delete BEFORE UPDATE OR DELETE ON usage_reports
    FOR EACH ROW EXECUTE FUNCTION log_append_only();

CREATE TRIGGER usage_reports_no_truncate BEFORE TRUNCATE ON usage_reports
    FOR EACH STATEMENT EXECUTE FUNCTION log_append_only();

CREATE TABLE milestones (
    id                TEXT             NOT NULL,
    run_id            TEXT             NOT NULL,
    tranche           BIGINT           NOT NULL,
    status            TEXT             NOT NULL,
    checkpoint_digest TEXT             NOT NULL,
    cumulative_flop   DOUBLE PRECISION NOT NULL,
    evals_json        TEXT             NOT NULL,
    submitted_by      TEXT             NOT NULL,
    submitted_at      BIGINT           NOT NULL,
    decided_by        TEXT,
    decided_org       TEXT,
    decided_at        BIGINT,
    reason            TEXT,
    CONSTRAINT milestones_pkey PRIMARY KEY (id),
    CONSTRAINT milestones_run_id_fkey FOREIGN KEY (run_id) REFERENCES runs (id)
);
CREATE INDEX milestones_run_id_idx ON milestones (run_id, submitted_at);

CREATE TABLE incidents (
    id             TEXT   NOT NULL,
    org_id         TEXT   NOT NULL,
    reported_by    TEXT   NOT NULL,
    run_id         TEXT,
    category       TEXT   NOT NULL,
    summary        TEXT   NOT NULL,
    details_json   TEXT   NOT NULL,
    occurred_at    BIGINT NOT NULL,
    reported_at    BIGINT NOT NULL,
    follow_up_due  BIGINT NOT NULL,
    followed_up_at BIGINT,
    follow_up      TEXT,
    status         TEXT   NOT NULL,
    CONSTRAINT incidents_pkey PRIMARY KEY (id),
    CONSTRAINT incidents_org_id_fkey FOREIGN KEY (org_id) REFERENCES organizations (id)
);
CREATE INDEX incidents_reported_at_idx ON incidents (reported_at);
CREATE INDEX incidents_org_id_idx ON incidents (org_id, reported_at);

CREATE TABLE kyc_reports (
    id                  TEXT             NOT NULL,
    provider_id         TEXT             NOT NULL,
    customer            TEXT             NOT NULL,
    from_s              BIGINT           NOT NULL,
    to_s                BIGINT           NOT NULL,
    jobs                BIGINT           NOT NULL,
    accelerator_seconds DOUBLE PRECISION NOT NULL,
    flop                DOUBLE PRECISION NOT NULL,
    received_at         BIGINT           NOT NULL,
    CONSTRAINT kyc_reports_pkey PRIMARY KEY (id),
    CONSTRAINT kyc_reports_provider_id_fkey FOREIGN KEY (provider_id) REFERENCES organizations (id)
);
CREATE INDEX kyc_reports_to_s_idx ON kyc_reports (to_s);

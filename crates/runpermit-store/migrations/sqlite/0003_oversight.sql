-- Following permitted training runs (SQLite): provider keys, runs, usage reports, milestones,
-- incidents and KYC reports. Keep in step with ../postgres/0003_oversight.sql: same tables,
-- columns, constraints and indexes. Times are unix milliseconds unless the column name ends
-- in _s (unix seconds); FLOP are REAL.

-- The keys compute providers sign usage reports with.
CREATE TABLE provider_keys (
    kid        TEXT    NOT NULL PRIMARY KEY,
    org_id     TEXT    NOT NULL REFERENCES organizations (id),
    public_key BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
CREATE INDEX provider_keys_org_id_idx ON provider_keys (org_id, created_at);

-- One row per permitted run. `version` guards the run's state (UpdateRun); usage ingestion
-- adds to cumulative_flop and cumulative_upper_flop without changing it.
CREATE TABLE runs (
    id                    TEXT    NOT NULL PRIMARY KEY,
    permit_id             TEXT    NOT NULL UNIQUE REFERENCES permits (id),
    org_id                TEXT    NOT NULL,
    status                TEXT    NOT NULL,
    reason                TEXT    NOT NULL,
    status_since          INTEGER NOT NULL,
    tranche               INTEGER NOT NULL,
    released_flop         REAL    NOT NULL,
    budget_flop           REAL    NOT NULL,
    cumulative_flop       REAL    NOT NULL,
    cumulative_upper_flop REAL    NOT NULL,
    summarized_flop       REAL    NOT NULL,
    alerted_percent       INTEGER NOT NULL,
    appeal_pending        INTEGER NOT NULL CHECK (appeal_pending IN (0, 1)),
    permit_exp_s          INTEGER NOT NULL,
    version               INTEGER NOT NULL,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
) STRICT;
CREATE INDEX runs_created_at_idx ON runs (created_at);
CREATE INDEX runs_org_id_idx ON runs (org_id, created_at);
-- Runs not in good standing, by permit expiry (what gates poll).
CREATE INDEX runs_not_active_idx ON runs (permit_exp_s) WHERE status <> 'active';

-- Signed usage reports, as received. Append-only: the triggers below refuse UPDATE and DELETE.
CREATE TABLE usage_reports (
    provider_id              TEXT    NOT NULL,
    run_id                   TEXT    NOT NULL REFERENCES runs (id),
    seq                      INTEGER NOT NULL,
    permit_id                TEXT    NOT NULL,
    cluster                  TEXT    NOT NULL,
    from_s                   INTEGER NOT NULL,
    to_s                     INTEGER NOT NULL,
    flop                     REAL    NOT NULL,
    flop_lower               REAL    NOT NULL,
    flop_upper               REAL    NOT NULL,
    method                   TEXT    NOT NULL,
    accelerator_seconds_json TEXT    NOT NULL,
    digest                   TEXT    NOT NULL,
    token                    TEXT    NOT NULL,
    received_at              INTEGER NOT NULL,
    PRIMARY KEY (provider_id, run_id, seq)
) STRICT;
CREATE INDEX usage_reports_run_id_idx ON usage_reports (run_id, provider_id, seq);

CREATE TRIGGER usage_reports_no_update BEFORE UPDATE ON usage_reports
BEGIN
    SELECT RAISE(ABORT, 'usage_reports is append-only: UPDATE refused');
END;

CREATE TRIGGER usage_reports_no_delete BEFORE DELETE ON usage_reports
BEGIN
    SELECT RAISE(ABORT, 'usage_reports is append-only: DELETE refused');
END;

CREATE TABLE milestones (
    id                TEXT    NOT NULL PRIMARY KEY,
    run_id            TEXT    NOT NULL REFERENCES runs (id),
    tranche           INTEGER NOT NULL,
    status            TEXT    NOT NULL,
    checkpoint_digest TEXT    NOT NULL,
    cumulative_flop   REAL    NOT NULL,
    evals_json        TEXT    NOT NULL,
    submitted_by      TEXT    NOT NULL,
    submitted_at      INTEGER NOT NULL,
    decided_by        TEXT,
    decided_org       TEXT,
    decided_at        INTEGER,
    reason            TEXT
) STRICT;
CREATE INDEX milestones_run_id_idx ON milestones (run_id, submitted_at);

CREATE TABLE incidents (
    id             TEXT    NOT NULL PRIMARY KEY,
    org_id         TEXT    NOT NULL REFERENCES organizations (id),
    reported_by    TEXT    NOT NULL,
    run_id         TEXT,
    category       TEXT    NOT NULL,
    summary        TEXT    NOT NULL,
    details_json   TEXT    NOT NULL,
    occurred_at    INTEGER NOT NULL,
    reported_at    INTEGER NOT NULL,
    follow_up_due  INTEGER NOT NULL,
    followed_up_at INTEGER,
    follow_up      TEXT,
    status         TEXT    NOT NULL
) STRICT;
CREATE INDEX incidents_reported_at_idx ON incidents (reported_at);
CREATE INDEX incidents_org_id_idx ON incidents (org_id, reported_at);

CREATE TABLE kyc_reports (
    id                  TEXT    NOT NULL PRIMARY KEY,
    provider_id         TEXT    NOT NULL REFERENCES organizations (id),
    customer            TEXT    NOT NULL,
    from_s              INTEGER NOT NULL,
    to_s                INTEGER NOT NULL,
    jobs                INTEGER NOT NULL,
    accelerator_seconds REAL    NOT NULL,
    flop                REAL    NOT NULL,
    received_at         INTEGER NOT NULL
) STRICT;
CREATE INDEX kyc_reports_to_s_idx ON kyc_reports (to_s);

-- Accounting with bounds (PostgreSQL). Keep in step with ../sqlite/0011_accounting.sql.
--
-- Runs sum the lower bound of their usage beside the central figure and the upper bound; the
-- tensor-activity (DCGM) reports' central figure and what their accelerator-seconds could
-- compute at the declared precision (the measured utilization is their ratio); and the span
-- of time their reports cover. Usage reports keep that capacity; milestones keep the tokens
-- the developer reports, the metered figure at submission and 6·N·D. Run flags are what the
-- authority noticed for reviewers and evaluators, one per (run, kind, subject).
ALTER TABLE runs ADD COLUMN cumulative_lower_flop DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN measured_flop DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN measured_capacity_flop DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN first_usage_s BIGINT;
ALTER TABLE runs ADD COLUMN last_usage_s BIGINT;
UPDATE runs SET
    cumulative_lower_flop = COALESCE((SELECT SUM(u.flop_lower) FROM usage_reports u WHERE u.run_id = runs.id), 0),
    first_usage_s = (SELECT MIN(u.from_s) FROM usage_reports u WHERE u.run_id = runs.id),
    last_usage_s = (SELECT MAX(u.to_s) FROM usage_reports u WHERE u.run_id = runs.id);

ALTER TABLE usage_reports ADD COLUMN capacity_flop DOUBLE PRECISION NOT NULL DEFAULT 0;

ALTER TABLE milestones ADD COLUMN tokens DOUBLE PRECISION;
ALTER TABLE milestones ADD COLUMN metered_flop DOUBLE PRECISION;
ALTER TABLE milestones ADD COLUMN operation_count_flop DOUBLE PRECISION;

CREATE TABLE run_flags (
    run_id       TEXT   NOT NULL,
    kind         TEXT   NOT NULL,
    subject      TEXT   NOT NULL,
    raised_at    BIGINT NOT NULL,
    message      TEXT   NOT NULL,
    details_json TEXT   NOT NULL,
    CONSTRAINT run_flags_pkey PRIMARY KEY (run_id, kind, subject),
    CONSTRAINT run_flags_run_id_fkey FOREIGN KEY (run_id) REFERENCES runs (id)
);
CREATE INDEX run_flags_raised_at_idx ON run_flags (raised_at);

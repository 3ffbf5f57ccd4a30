-- Access-usage reports (PostgreSQL). Keep in step with ../sqlite/0015_access_usage.sql.
--
-- What developers' access gateways report serving under each grant, signed with the
-- developer's reporting key, as received; and each grant's sums over them, raised in the
-- transaction that stores the reports. Append-only: the triggers below refuse UPDATE, DELETE
-- and TRUNCATE.
CREATE TABLE access_usage_reports (
    iss               TEXT   NOT NULL,
    grant_id          TEXT   NOT NULL,
    seq               BIGINT NOT NULL,
    model_id          TEXT   NOT NULL,
    from_s            BIGINT NOT NULL,
    to_s              BIGINT NOT NULL,
    requests          BIGINT NOT NULL,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    refused           BIGINT NOT NULL,
    digest            TEXT   NOT NULL,
    token             TEXT   NOT NULL,
    received_at       BIGINT NOT NULL,
    CONSTRAINT access_usage_reports_pkey PRIMARY KEY (iss, grant_id, seq),
    CONSTRAINT access_usage_reports_grant_id_fkey FOREIGN KEY (grant_id)
        REFERENCES access_grants (id)
);
CREATE INDEX access_usage_reports_grant_idx ON access_usage_reports (grant_id, seq);

CREATE TRIGGER access_usage_reports_no_update_delete
    BEFORE UPDATE OR DELETE ON access_usage_reports
    FOR EACH ROW EXECUTE FUNCTION log_append_only();

CREATE TRIGGER access_usage_reports_no_truncate BEFORE TRUNCATE ON access_usage_reports
    FOR EACH STATEMENT EXECUTE FUNCTION log_append_only();

ALTER TABLE access_grants
    ADD COLUMN usage_reports           BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN usage_requests          BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN usage_prompt_tokens     BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN usage_completion_tokens BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN usage_refused           BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN usage_last_to_s         BIGINT;

-- Access-usage reports (SQLite). Keep in step with ../postgres/0015_access_usage.sql.
--
-- What developers' access gateways report serving under each grant, signed with the
-- developer's reporting key, as received; and each grant's sums over them, raised in the
-- transaction that stores the reports. Append-only: the triggers below refuse UPDATE and
-- DELETE.
CREATE TABLE access_usage_reports (
    iss               TEXT    NOT NULL,
    grant_id          TEXT    NOT NULL REFERENCES access_grants (id),
    seq               INTEGER NOT NULL,
    model_id          TEXT    NOT NULL,
    from_s            INTEGER NOT NULL,
    to_s              INTEGER NOT NULL,
    requests          INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    refused           INTEGER NOT NULL,
    digest            TEXT    NOT NULL,
    token             TEXT    NOT NULL,
    received_at       INTEGER NOT NULL,
    PRIMARY KEY (iss, grant_id, seq)
) STRICT;
CREATE INDEX access_usage_reports_grant_idx ON access_usage_reports (grant_id, seq);

CREATE TRIGGER access_usage_reports_no_update BEFORE UPDATE ON access_usage_reports
BEGIN
    SELECT RAISE(ABORT, 'access_usage_reports is append-only: UPDATE refused');
END;

CREATE TRIGGER access_usage_reports_no_delete BEFORE DELETE ON access_usage_reports
BEGIN
    SELECT RAISE(ABORT, 'access_usage_reports is append-only: DELETE refused');
END;

ALTER TABLE access_grants ADD COLUMN usage_reports           INTEGER NOT NULL DEFAULT 0;
ALTER TABLE access_grants ADD COLUMN usage_requests          INTEGER NOT NULL DEFAULT 0;
ALTER TABLE access_grants ADD COLUMN usage_prompt_tokens     INTEGER NOT NULL DEFAULT 0;
ALTER TABLE access_grants ADD COLUMN usage_completion_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE access_grants ADD COLUMN usage_refused           INTEGER NOT NULL DEFAULT 0;
ALTER TABLE access_grants ADD COLUMN usage_last_to_s         INTEGER;

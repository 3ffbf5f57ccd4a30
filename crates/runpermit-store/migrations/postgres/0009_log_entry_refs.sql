-- What each sequenced log entry is about, for the public console's searches (PostgreSQL).
-- Keep in step with ../sqlite/0009_log_entry_refs.sql.
--
-- The log is read by index; finding "every entry about permit X" or "of organization Y" among
-- millions of entries needs an index by those ids. The sequencer's transaction writes one
-- log_entry_refs row per entry (its type and the application, permit, run and principal
-- organization it concerns, from the entry itself or from the records it names) and one
-- log_entry_orgs row per organization the entry names (applicant, holder, the permit's
-- providers and evaluators). Both are derived data: rebuilt from log_entries by the store
-- when missing (entries sequenced before this migration are indexed at the next migrate()).
-- An entry that does not decode gets a row with a NULL type. No foreign key to log_entries:
-- that table refuses every change anyway, and a key would stand in front of its TRUNCATE trigger.
CREATE TABLE log_entry_refs (
    idx            BIGINT NOT NULL,
    type           TEXT,
    application_id TEXT,
    permit_id      TEXT,
    run_id         TEXT,
    org_id         TEXT,
    CONSTRAINT log_entry_refs_pkey PRIMARY KEY (idx)
);
CREATE INDEX log_entry_refs_type_idx ON log_entry_refs (type, idx);
CREATE INDEX log_entry_refs_application_idx ON log_entry_refs (application_id, idx);
CREATE INDEX log_entry_refs_permit_idx ON log_entry_refs (permit_id, type, idx);
CREATE INDEX log_entry_refs_run_idx ON log_entry_refs (run_id, idx);

CREATE TABLE log_entry_orgs (
    org_id TEXT   NOT NULL,
    idx    BIGINT NOT NULL,
    CONSTRAINT log_entry_orgs_pkey PRIMARY KEY (org_id, idx)
);

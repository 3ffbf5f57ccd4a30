-- The public transparency log and its sequencer (PostgreSQL). Keep in step with
-- ../sqlite/0002_log.sql: same tables, columns, constraints and indexes.
--
-- An entry is first queued (log_queue) in the same batch as the state change it records; the
-- one sequencer then moves queued entries into log_entries with consecutive indexes, stores the
-- new Merkle tree hashes (log_hashes) and the new tree state (log_state) in one transaction,
-- holding the log_state row lock (see sequence_log in src/shared.rs).

-- Identity ids are never reused, so a queue id names one entry forever (log_entries records it
-- as queue_id, UNIQUE). Queued entries are never changed, only taken.
CREATE TABLE log_queue (
    id         BIGINT GENERATED ALWAYS AS IDENTITY,
    subject    TEXT   NOT NULL,
    entry      BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT log_queue_pkey PRIMARY KEY (id)
);
CREATE INDEX log_queue_subject_idx ON log_queue (subject, id);

CREATE FUNCTION log_queue_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'log_queue entries are immutable: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER log_queue_no_update BEFORE UPDATE ON log_queue
    FOR EACH ROW EXECUTE FUNCTION log_queue_immutable();

-- Refuses changes to the append-only log tables; the message names the table.
CREATE FUNCTION log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- Append-only, like audit_events. created_at is when the entry was sequenced.
CREATE TABLE log_entries (
    idx        BIGINT NOT NULL,
    subject    TEXT   NOT NULL,
    entry      BYTEA  NOT NULL,
    queue_id   BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT log_entries_pkey PRIMARY KEY (idx),
    CONSTRAINT log_entries_queue_id_key UNIQUE (queue_id)
);
CREATE INDEX log_entries_subject_idx ON log_entries (subject, idx);

CREATE TRIGGER log_entries_no_update_delete BEFORE UPDATE OR DELETE ON log_entries
    FOR EACH ROW EXECUTE FUNCTION log_append_only();

CREATE TRIGGER log_entries_no_truncate BEFORE TRUNCATE ON log_entries
    FOR EACH STATEMENT EXECUTE FUNCTION log_append_only();

-- The Merkle tree's stored hashes, in the index space of Go's golang.org/x/mod/sumdb/tlog
-- (StoredHashIndex). Append-only.
CREATE TABLE log_hashes (
    idx  BIGINT NOT NULL,
    hash BYTEA  NOT NULL,
    CONSTRAINT log_hashes_pkey PRIMARY KEY (idx)
);

CREATE TRIGGER log_hashes_no_update_delete BEFORE UPDATE OR DELETE ON log_hashes
    FOR EACH ROW EXECUTE FUNCTION log_append_only();

CREATE TRIGGER log_hashes_no_truncate BEFORE TRUNCATE ON log_hashes
    FOR EACH STATEMENT EXECUTE FUNCTION log_append_only();

-- The tree the sequencer last committed: at most one row (absent before the first sequencing).
CREATE TABLE log_state (
    id         INTEGER NOT NULL,
    size       BIGINT  NOT NULL,
    root       BYTEA   NOT NULL,
    checkpoint TEXT    NOT NULL,
    updated_at BIGINT  NOT NULL,
    CONSTRAINT log_state_pkey PRIMARY KEY (id),
    CONSTRAINT log_state_id_check CHECK (id = 1)
);

-- Who may run the sequencer, until when: exactly one row.
CREATE TABLE log_lease (
    id     INTEGER NOT NULL,
    holder TEXT    NOT NULL,
    until  BIGINT  NOT NULL,
    CONSTRAINT log_lease_pkey PRIMARY KEY (id),
    CONSTRAINT log_lease_id_check CHECK (id = 1)
);
INSERT INTO log_lease (id, holder, until) VALUES (1, '', 0);

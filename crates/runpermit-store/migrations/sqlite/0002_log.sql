-- The public transparency log and its sequencer (SQLite). Keep in step with
-- ../postgres/0002_log.sql: same tables, columns, constraints and indexes.
--
-- An entry is first queued (log_queue) in the same batch as the state change it records; the
-- one sequencer then moves queued entries into log_entries with consecutive indexes, stores the
-- new Merkle tree hashes (log_hashes) and the new tree state (log_state) in one transaction.

-- AUTOINCREMENT: ids are never reused, so a queue id names one entry forever (log_entries
-- records it as queue_id, UNIQUE). Queued entries are never changed, only taken.
CREATE TABLE log_queue (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    subject    TEXT    NOT NULL,
    entry      BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX log_queue_subject_idx ON log_queue (subject, id);

CREATE TRIGGER log_queue_no_update BEFORE UPDATE ON log_queue
BEGIN
    SELECT RAISE(ABORT, 'log_queue entries are immutable: UPDATE refused');
END;

-- Append-only, like audit_events. created_at is when the entry was sequenced.
CREATE TABLE log_entries (
    idx        INTEGER NOT NULL PRIMARY KEY,
    subject    TEXT    NOT NULL,
    entry      BLOB    NOT NULL,
    queue_id   INTEGER NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX log_entries_subject_idx ON log_entries (subject, idx);

CREATE TRIGGER log_entries_no_update BEFORE UPDATE ON log_entries
BEGIN
    SELECT RAISE(ABORT, 'log_entries is append-only: UPDATE refused');
END;

CREATE TRIGGER log_entries_no_delete BEFORE DELETE ON log_entries
BEGIN
    SELECT RAISE(ABORT, 'log_entries is append-only: DELETE refused');
END;

-- The Merkle tree's stored hashes, in the index space of Go's golang.org/x/mod/sumdb/tlog
-- (StoredHashIndex). Append-only.
CREATE TABLE log_hashes (
    idx  INTEGER NOT NULL PRIMARY KEY,
    hash BLOB    NOT NULL
) STRICT;

CREATE TRIGGER log_hashes_no_update BEFORE UPDATE ON log_hashes
BEGIN
    SELECT RAISE(ABORT, 'log_hashes is append-only: UPDATE refused');
END;

CREATE TRIGGER log_hashes_no_delete BEFORE DELETE ON log_hashes
BEGIN
    SELECT RAISE(ABORT, 'log_hashes is append-only: DELETE refused');
END;

-- The tree the sequencer last committed: at most one row (absent before the first sequencing).
CREATE TABLE log_state (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    size       INTEGER NOT NULL,
    root       BLOB    NOT NULL,
    checkpoint TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- Who may run the sequencer, until when: exactly one row.
CREATE TABLE log_lease (
    id     INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    holder TEXT    NOT NULL,
    until  INTEGER NOT NULL
) STRICT;
INSERT INTO log_lease (id, holder, until) VALUES (1, '', 0);

-- Witnessed log (SQLite). Keep in step with ../postgres/0016_witnesses.sql.
--
-- Every checkpoint the sequencer signed, by tree size: what witnesses are asked to cosign and
-- what proof bundles carry. Written in the sequencing transaction, beside log_state.
CREATE TABLE log_checkpoints (
    size       INTEGER NOT NULL PRIMARY KEY,
    checkpoint TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
INSERT INTO log_checkpoints (size, checkpoint, created_at)
    SELECT size, checkpoint, updated_at FROM log_state;

CREATE TRIGGER log_checkpoints_no_update BEFORE UPDATE ON log_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'log_checkpoints is append-only: UPDATE refused');
END;

-- The cosignature line each witness returned for a checkpoint, verified before it is stored.
CREATE TABLE log_cosignatures (
    witness     TEXT    NOT NULL,
    size        INTEGER NOT NULL REFERENCES log_checkpoints (size),
    signature   TEXT    NOT NULL,
    cosigned_at INTEGER NOT NULL,
    PRIMARY KEY (witness, size)
) STRICT;
CREATE INDEX log_cosignatures_size_idx ON log_cosignatures (size);

-- Witnessed log (PostgreSQL). Keep in step with ../sqlite/0016_witnesses.sql.
--
-- Every checkpoint the sequencer signed, by tree size: what witnesses are asked to cosign and
-- what proof bundles carry. Written in the sequencing transaction, beside log_state.
CREATE TABLE log_checkpoints (
    size       BIGINT NOT NULL PRIMARY KEY,
    checkpoint TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
INSERT INTO log_checkpoints (size, checkpoint, created_at)
    SELECT size, checkpoint, updated_at FROM log_state;

CREATE FUNCTION log_checkpoints_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'log_checkpoints is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER log_checkpoints_no_update BEFORE UPDATE ON log_checkpoints
    FOR EACH ROW EXECUTE FUNCTION log_checkpoints_append_only();

-- The cosignature line each witness returned for a checkpoint, verified before it is stored.
CREATE TABLE log_cosignatures (
    witness     TEXT   NOT NULL,
    size        BIGINT NOT NULL REFERENCES log_checkpoints (size),
    signature   TEXT   NOT NULL,
    cosigned_at BIGINT NOT NULL,
    PRIMARY KEY (witness, size)
);
CREATE INDEX log_cosignatures_size_idx ON log_cosignatures (size);

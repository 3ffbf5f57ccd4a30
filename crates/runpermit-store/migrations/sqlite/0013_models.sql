-- The model registry (SQLite). Keep in step with ../postgres/0013_models.sql.
--
-- A model a permitted run produced, registered by its developer: public, like permits. Each
-- checkpoint is registered once; a name once per developer.
CREATE TABLE models (
    id                TEXT    NOT NULL PRIMARY KEY,
    org_id            TEXT    NOT NULL,
    run_id            TEXT    NOT NULL REFERENCES runs (id),
    milestone_id      TEXT    REFERENCES milestones (id),
    name              TEXT    NOT NULL,
    checkpoint_digest TEXT    NOT NULL UNIQUE,
    cumulative_flop   REAL    NOT NULL,
    release_plan      TEXT    NOT NULL,
    registered_by     TEXT    NOT NULL,
    registered_at     INTEGER NOT NULL,
    UNIQUE (org_id, name)
) STRICT;
CREATE INDEX models_registered_at_idx ON models (registered_at, id);
CREATE INDEX models_run_id_idx ON models (run_id);

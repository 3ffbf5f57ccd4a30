-- The model registry (PostgreSQL). Keep in step with ../sqlite/0013_models.sql.
--
-- A model a permitted run produced, registered by its developer: public, like permits. Each
-- checkpoint is registered once; a name once per developer.
CREATE TABLE models (
    id                TEXT             NOT NULL,
    org_id            TEXT             NOT NULL,
    run_id            TEXT             NOT NULL,
    milestone_id      TEXT,
    name              TEXT             NOT NULL,
    checkpoint_digest TEXT             NOT NULL,
    cumulative_flop   DOUBLE PRECISION NOT NULL,
    release_plan      TEXT             NOT NULL,
    registered_by     TEXT             NOT NULL,
    registered_at     BIGINT           NOT NULL,
    CONSTRAINT models_pkey PRIMARY KEY (id),
    CONSTRAINT models_checkpoint_digest_key UNIQUE (checkpoint_digest),
    CONSTRAINT models_org_id_name_key UNIQUE (org_id, name),
    CONSTRAINT models_run_id_fkey FOREIGN KEY (run_id) REFERENCES runs (id),
    CONSTRAINT models_milestone_id_fkey FOREIGN KEY (milestone_id) REFERENCES milestones (id)
);
CREATE INDEX models_registered_at_idx ON models (registered_at, id);
CREATE INDEX models_run_id_idx ON models (run_id);

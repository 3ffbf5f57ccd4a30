-- Indexes for the public registry's filters and counts (PostgreSQL). Keep in step with
-- ../sqlite/0010_registry_indexes.sql.
--
-- The registry lists the log's permit_issued entries (about one in a hundred entries) and
-- filters them by tier, standing and text. Without these, each filtered page read every
-- permit's row scattered across the log's references and the applications and runs tables:
-- tens of milliseconds with 10^4 permits and 10^6 entries. With them, a filter or a count
-- reads three compact indexes.
CREATE INDEX log_entry_refs_permits_idx ON log_entry_refs (idx, permit_id, run_id, application_id, org_id)
    WHERE type = 'permit_issued';
CREATE INDEX applications_tier_idx ON applications (tier, id);
CREATE INDEX runs_status_permit_idx ON runs (status, permit_id);

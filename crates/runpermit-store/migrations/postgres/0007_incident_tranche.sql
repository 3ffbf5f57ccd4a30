-- The tranche an incident about a run's usage concerns (PostgreSQL). Keep in step with
-- ../sqlite/0007_incident_tranche.sql.
--
-- An overrun incident is opened once per tranche; the authority used to find it by searching
-- its details for "tranche N". Incidents opened before this migration get the tranche from
-- that marker; others have none.
ALTER TABLE incidents ADD COLUMN tranche BIGINT;
UPDATE incidents
   SET tranche = CAST(substring((details_json::jsonb) ->> 'marker' FROM 9) AS BIGINT)
 WHERE category = 'overrun'
   AND (details_json::jsonb) ->> 'marker' LIKE 'tranche %';

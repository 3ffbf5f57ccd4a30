-- The tranche an incident about a run's usage concerns (SQLite). Keep in step with
-- ../postgres/0007_incident_tranche.sql.
--
-- An overrun incident is opened once per tranche; the authority used to find it by searching
-- its details for "tranche N". Incidents opened before this migration get the tranche from
-- that marker; others have none.
ALTER TABLE incidents ADD COLUMN tranche INTEGER;
UPDATE incidents
   SET tranche = CAST(substr(json_extract(details_json, '$.marker'), 9) AS INTEGER)
 WHERE category = 'overrun'
   AND json_extract(details_json, '$.marker') LIKE 'tranche %';

-- The evaluators a reviewer assigns with an approval (SQLite). Keep in step with
-- ../postgres/0006_review_evaluators.sql.
--
-- A JSON array of evaluator organization ids; the permit issued on the approvals of a round
-- names their union (or the policy's evaluators when none was named). Reviews recorded before
-- this migration named none.
ALTER TABLE reviews ADD COLUMN evaluators_json TEXT NOT NULL DEFAULT '[]';

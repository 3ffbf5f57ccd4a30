-- One plan, one permit in force (SQLite). Keep in step with ../postgres/0005_plan_permits.sql.
--
-- The permit most recently granted on each plan digest. A permit's intent claims its plan in
-- the same transaction (Write::ClaimPlan): a new plan inserts its row, so of two concurrent
-- grants of one plan exactly one commits; a plan whose permit is no longer in force is taken
-- over by compare-and-set on the permit it names.
CREATE TABLE plan_permits (
    plan_digest TEXT    NOT NULL PRIMARY KEY,
    permit_id   TEXT    NOT NULL REFERENCES permits (id),
    claimed_at  INTEGER NOT NULL
) STRICT;

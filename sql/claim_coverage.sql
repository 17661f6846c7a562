-- claim_coverage: the payer and plan of each claim, in one place for
-- claim_lines, tuva.medical_claim and tuva.pharmacy_claim.
--
-- Row: one claim (an ExplanationOfBenefit of any type) whose member has,
-- at the claim's source, a Coverage in force on the claim's start date
-- (billablePeriod.start).
-- Grain: (data_source, claim_id).
--
-- Caveats:
--  * payer and plan are named as tuva.eligibility names them, so that
--    claims meet their enrollment: the payor's name, else its id; the
--    plan's name, else its value, else the group's name, else its value;
--    'unknown' when the Coverage names none.
--  * When several Coverages are in force and disagree (Medicare Part A and
--    Part B both cover a date), payer or plan is null; coverages counts
--    them.
--  * Cancelled and entered-in-error Coverages, and Coverages without a
--    period start, are not in force.
CREATE OR REPLACE VIEW claim_coverage AS
WITH named AS (
    SELECT data_source, patient_id, period_start, period_end,
           coalesce(payor_name, payor_id, 'unknown')                          AS payer,
           coalesce(plan_name, plan_value, group_name, group_value, 'unknown') AS plan
    FROM coverage
    WHERE coalesce(status, 'active') NOT IN ('cancelled', 'entered-in-error')
      AND period_start IS NOT NULL
)
SELECT
    e.data_source,
    e.id                                                             AS claim_id,
    CASE WHEN count(DISTINCT c.payer) = 1 THEN min(c.payer) END      AS payer,
    CASE WHEN count(DISTINCT c.plan) = 1 THEN min(c.plan) END        AS plan,
    count(*)                                                         AS coverages
FROM eob AS e
JOIN named AS c
  ON c.data_source = e.data_source
 AND c.patient_id = e.patient_id
 AND c.period_start <= e.billable_period_start
 AND (c.period_end IS NULL OR c.period_end >= e.billable_period_start)
GROUP BY e.data_source, e.id;

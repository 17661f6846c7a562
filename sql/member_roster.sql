-- member_roster: the attributed members, with demographics and the
-- attribution period.
--
-- Row: one Group.member entry of an attribution list (table attribution),
-- joined to the member's Patient and to the coverage in force.
-- Grain: (group_id, patient_id, attribution_start). A member attributed to
-- two groups, or twice to one group with two periods, has two rows.
--
-- Caveats:
--  * Attribution-driven: members without a Group export (say a
--    Patient-level export with no Group) are not on the roster.
--  * A member whose Patient was not exported still has a row, with null
--    demographics.
--  * as_of_date is the data date of the warehouse: the UTC date of the
--    latest committed run's transactionTime (current_date before any run),
--    so age and attribution_active do not drift between loads.
--  * attribution_active: not inactive, started on or before as_of_date and
--    not ended before it.
--  * Coverage: the member's coverage (not cancelled or entered-in-error) in
--    force on the earlier of as_of_date and attribution_end; with several,
--    the latest started, then the lowest id. Null when none is in force.
CREATE OR REPLACE VIEW member_roster AS
WITH as_of AS (
    SELECT coalesce(max(timezone('UTC', transaction_time))::DATE, current_date) AS as_of_date
    FROM fhirlake_runs
    WHERE status = 'committed'
),
att AS (
    SELECT a.*, o.as_of_date,
           least(coalesce(a.period_end, o.as_of_date), o.as_of_date) AS coverage_date
    FROM attribution AS a, as_of AS o
),
cov AS (
    SELECT t.group_id, t.patient_id, t.period_start,
           c.id AS coverage_id,
           coalesce(c.payor_name, c.payor_id) AS payer,
           coalesce(c.plan_name, c.plan_value) AS plan,
           row_number() OVER (
               PARTITION BY t.group_id, t.patient_id, t.period_start
               ORDER BY c.period_start DESC NULLS LAST, c.id
           ) AS rn
    FROM att AS t
    JOIN coverage AS c
      ON c.patient_id = t.patient_id
     AND coalesce(c.status, 'active') NOT IN ('cancelled', 'entered-in-error')
     AND (c.period_start IS NULL OR c.period_start <= t.coverage_date)
     AND (c.period_end IS NULL OR c.period_end >= t.coverage_date)
)
SELECT
    t.patient_id,
    p.member_id,
    p.mbi,
    p.family                                         AS family_name,
    p.given                                          AS given_name,
    p.gender,
    p.birth_date,
    CAST(date_part('year', age(t.as_of_date::TIMESTAMP, p.birth_date::TIMESTAMP)) AS INTEGER) AS age,
    p.race_code,
    p.ethnicity_code,
    p.deceased,
    timezone('UTC', p.deceased_date_time)::DATE     AS death_date,
    p.state,
    p.postal_code,
    t.group_id,
    t.managing_entity_id                             AS attributed_org_id,
    t.provider_id                                    AS attributed_provider_id,
    t.group_npi                                      AS attributed_npi,
    t.period_start                                   AS attribution_start,
    t.period_end                                     AS attribution_end,
    coalesce(NOT t.inactive, true)
        AND (t.period_start IS NULL OR t.period_start <= t.as_of_date)
        AND (t.period_end IS NULL OR t.period_end >= t.as_of_date) AS attribution_active,
    c.coverage_id,
    c.payer,
    c.plan,
    t.as_of_date
FROM att AS t
LEFT JOIN patient AS p ON p.id = t.patient_id
LEFT JOIN cov AS c
       ON c.group_id = t.group_id AND c.patient_id = t.patient_id
      AND c.period_start IS NOT DISTINCT FROM t.period_start AND c.rn = 1;

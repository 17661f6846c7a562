-- member_attribution: every attribution of a member, with demographics
-- and the coverage in force, per source.
--
-- Row: one Group.member entry of an attribution list (table attribution),
-- joined to the member's Patient and coverage at the same source.
-- Grain: (data_source, group_id, patient_id, attribution_start). A member
-- attributed to two groups, or twice to one group with two periods, or at
-- two sources, has several rows; member_roster keeps one per person.
--
-- Caveats:
--  * Attribution-driven: members without a Group export (say a
--    Patient-level export with no Group) are not here. The Groups a
--    Payer-to-Payer $member-match made (fhirlake_member_matches) are
--    matches, not attribution to a provider: they are left out.
--  * A member whose Patient was not exported still has a row, with null
--    demographics.
--  * person_id is the person crosswalk's: one human's Patients at several
--    sources (linked by MBI, a configured identifier or a Payer-to-Payer
--    match) share it.
--  * as_of_date is the data date of the row's source: the UTC date of the
--    latest transactionTime of its committed runs (current_date before
--    any), so age and attribution_active do not drift between loads.
--  * attribution_active: not inactive, started on or before as_of_date and
--    not ended before it.
--  * Coverage: the member's coverage at the source (not cancelled or
--    entered-in-error) in force on the earlier of as_of_date and
--    attribution_end; with several, the latest started, then the lowest
--    id. Null when none is in force.
CREATE OR REPLACE VIEW member_attribution AS
WITH as_of AS (
    SELECT source AS data_source, max(timezone('UTC', transaction_time))::DATE AS as_of_date
    FROM fhirlake_runs
    WHERE status = 'committed'
    GROUP BY source
),
att AS (
    SELECT a.*, coalesce(o.as_of_date, current_date) AS as_of_date,
           least(coalesce(a.period_end, coalesce(o.as_of_date, current_date)), coalesce(o.as_of_date, current_date)) AS coverage_date
    FROM attribution AS a
    LEFT JOIN as_of AS o USING (data_source)
    WHERE NOT EXISTS (
        SELECT 1 FROM fhirlake_member_matches AS m
        WHERE m.source = a.data_source AND m.group_id = a.group_id
    )
),
cov AS (
    SELECT t.data_source, t.group_id, t.patient_id, t.period_start,
           c.id AS coverage_id,
           coalesce(c.payor_name, c.payor_id) AS payer,
           coalesce(c.plan_name, c.plan_value) AS plan,
           row_number() OVER (
               PARTITION BY t.data_source, t.group_id, t.patient_id, t.period_start
               ORDER BY c.period_start DESC NULLS LAST, c.id
           ) AS rn
    FROM att AS t
    JOIN coverage AS c
      ON c.data_source = t.data_source
     AND c.patient_id = t.patient_id
     AND coalesce(c.status, 'active') NOT IN ('cancelled', 'entered-in-error')
     AND (c.period_start IS NULL OR c.period_start <= t.coverage_date)
     AND (c.period_end IS NULL OR c.period_end >= t.coverage_date)
)
SELECT
    t.data_source,
    t.patient_id,
    coalesce(pe.person_id, 'p-' || left(sha256(t.data_source || '/' || t.patient_id), 16)) AS person_id,
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
LEFT JOIN patient AS p ON p.data_source = t.data_source AND p.id = t.patient_id
LEFT JOIN person AS pe ON pe.data_source = t.data_source AND pe.patient_id = t.patient_id
LEFT JOIN cov AS c
       ON c.data_source = t.data_source AND c.group_id = t.group_id AND c.patient_id = t.patient_id
      AND c.period_start IS NOT DISTINCT FROM t.period_start AND c.rn = 1;

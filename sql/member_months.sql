-- member_months: enrolment by calendar month, from Coverage periods, per
-- source.
--
-- Row: one member (a Patient of one source) enrolled in one payer/plan
-- during one calendar month.
-- Grain: (data_source, patient_id, year_month, payer, plan), as the Tuva
-- Project's member_months. Overlapping coverages with the same payer and
-- plan make one row (coverage_count says how many); a member in two plans
-- in a month (Medicare Part A and Part B, say) has two rows, and a person
-- covered by two payers has rows at both sources, with one person_id: count
-- DISTINCT (person_id, year_month) for a head count across plans and
-- payers.
--
-- Caveats:
--  * A month counts when any day of it is covered (Tuva's rule).
--  * Open-ended periods run to as_of_date, the data date of the source:
--    the UTC date of the latest transactionTime of its committed runs
--    (current_date before any run). Periods ending after it are cut there
--    too: months after the data date are not yet observed. Using the run's
--    date, not the wall clock, keeps the view stable between loads.
--  * Coverages without period_start, or cancelled / entered-in-error, give
--    no months. Deaths do not end coverage here: eligibility is the payer's.
--  * payer is payor_name (else payor_id); plan is the plan class name
--    (else its value, else the group class name, else its value).
CREATE OR REPLACE VIEW member_months AS
WITH as_of AS (
    SELECT source AS data_source, max(timezone('UTC', transaction_time))::DATE AS as_of_date
    FROM fhirlake_runs
    WHERE status = 'committed'
    GROUP BY source
),
spans AS (
    SELECT c.data_source, c.id, c.patient_id,
           coalesce(c.payor_name, c.payor_id)                              AS payer,
           coalesce(c.plan_name, c.plan_value, c.group_name, c.group_value) AS plan,
           date_trunc('month', c.period_start)                              AS first_month,
           date_trunc('month', least(coalesce(c.period_end, coalesce(o.as_of_date, current_date)), coalesce(o.as_of_date, current_date))) AS last_month
    FROM coverage AS c
    LEFT JOIN as_of AS o USING (data_source)
    WHERE c.period_start IS NOT NULL
      AND c.patient_id IS NOT NULL
      AND coalesce(c.status, 'active') NOT IN ('cancelled', 'entered-in-error')
),
months AS (
    SELECT data_source, id, patient_id, payer, plan,
           unnest(generate_series(first_month, last_month, INTERVAL 1 MONTH))::DATE AS month_start
    FROM spans
    WHERE first_month <= last_month
)
SELECT
    m.data_source,
    m.patient_id,
    coalesce(pe.person_id, 'p-' || left(sha256(m.data_source || '/' || m.patient_id), 16)) AS person_id,
    p.member_id,
    strftime(m.month_start, '%Y%m')       AS year_month,
    m.month_start,
    last_day(m.month_start)               AS month_end,
    m.payer,
    m.plan,
    count(*)                              AS coverage_count,
    min(m.id)                             AS coverage_id
FROM months AS m
LEFT JOIN patient AS p ON p.data_source = m.data_source AND p.id = m.patient_id
LEFT JOIN person AS pe ON pe.data_source = m.data_source AND pe.patient_id = m.patient_id
GROUP BY ALL;

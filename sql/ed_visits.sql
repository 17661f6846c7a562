-- ed_visits: emergency department visits, from encounters and claims, per
-- source.
--
-- Row: one ED visit: a member (a Patient of one source) on a visit_date
-- (UTC date) with an Encounter of class EMER, an ED facility claim, or
-- both, of that source.
-- Grain: (data_source, patient_id, visit_date): several ED encounters or
-- claims of one member on one day make one visit (as HEDIS counts one ED
-- visit per day). person_id links one human's rows at several sources:
-- count DISTINCT (person_id, visit_date) for visits across payers.
--
-- Rule:
--  * Encounters: class_code EMER (v3-ActCode), status not cancelled or
--    entered-in-error; visit_date is the UTC date of period_start.
--  * Claims: institutional outpatient claims (CARIN subtype outpatient; a
--    claim with no subtype counts as outpatient unless it has a room and
--    board line, revenue code 0100-0219, which marks an inpatient stay),
--    status not cancelled or entered-in-error, with a line whose revenue
--    code is 0450-0459 or 0981, or whose place of service is 23;
--    visit_date is the claim's billable period start (else the earliest
--    line service date). Professional claims are not counted: their POS 23
--    lines bill the physician for the same visit.
--  * An encounter and a claim of one member on one date are one visit,
--    source 'encounter+claim'; otherwise source is 'encounter' or 'claim'.
--
-- Caveats:
--  * ED stays that become an inpatient admission are billed on the
--    inpatient claim and are not counted from claims (the encounter, if
--    any, still counts).
--  * UTC dates: an encounter late in the evening in the Americas falls on
--    the next UTC day and may not meet its claim.
--  * encounter_id / claim_id are the lowest ids when a day has several;
--    paid_amount sums the paid totals of the day's ED claims.
CREATE OR REPLACE VIEW ed_visits AS
WITH enc AS (
    SELECT data_source, patient_id,
           timezone('UTC', period_start)::DATE AS visit_date,
           timezone('UTC', period_end)::DATE   AS end_date,
           id,
           service_provider_id
    FROM encounter
    WHERE class_code = 'EMER'
      AND coalesce(status, 'finished') NOT IN ('cancelled', 'entered-in-error')
      AND patient_id IS NOT NULL AND period_start IS NOT NULL
),
lines AS (
    SELECT data_source, eob_id,
           bool_or(lpad(revenue_code, 4, '0') BETWEEN '0450' AND '0459' OR lpad(revenue_code, 4, '0') = '0981'
                   OR place_of_service = '23')            AS ed_line,
           bool_or(lpad(revenue_code, 4, '0') BETWEEN '0100' AND '0219') AS room_and_board,
           min(serviced_start)                            AS first_service
    FROM eob_item
    GROUP BY data_source, eob_id
),
clm AS (
    SELECT e.data_source, e.patient_id,
           coalesce(e.billable_period_start, l.first_service) AS visit_date,
           e.billable_period_end AS end_date,
           e.id,
           e.provider_id,
           e.total_paid
    FROM eob AS e
    JOIN lines AS l ON l.data_source = e.data_source AND l.eob_id = e.id
    WHERE e.claim_type = 'institutional'
      AND (e.claim_subtype = 'outpatient' OR (e.claim_subtype IS NULL AND NOT l.room_and_board))
      AND l.ed_line
      AND coalesce(e.status, 'active') NOT IN ('cancelled', 'entered-in-error')
      AND e.patient_id IS NOT NULL
),
enc_day AS (
    SELECT data_source, patient_id, visit_date, max(end_date) AS end_date, min(id) AS encounter_id,
           count(*) AS encounters, min(service_provider_id) AS facility_id
    FROM enc
    GROUP BY ALL
),
clm_day AS (
    SELECT data_source, patient_id, visit_date, max(end_date) AS end_date, min(id) AS claim_id,
           count(*) AS claims, min(provider_id) AS facility_id, sum(total_paid) AS paid_amount
    FROM clm
    WHERE visit_date IS NOT NULL
    GROUP BY ALL
)
SELECT
    coalesce(n.data_source, c.data_source) AS data_source,
    coalesce(n.patient_id, c.patient_id)  AS patient_id,
    coalesce(pe.person_id, 'p-' || left(sha256(coalesce(n.data_source, c.data_source) || '/' || coalesce(n.patient_id, c.patient_id)), 16)) AS person_id,
    coalesce(n.visit_date, c.visit_date)  AS visit_date,
    greatest(n.end_date, c.end_date)      AS visit_end_date,
    CASE WHEN n.encounter_id IS NOT NULL AND c.claim_id IS NOT NULL THEN 'encounter+claim'
         WHEN n.encounter_id IS NOT NULL THEN 'encounter'
         ELSE 'claim' END                 AS source,
    n.encounter_id,
    c.claim_id,
    coalesce(n.encounters, 0)             AS encounter_count,
    coalesce(c.claims, 0)                 AS claim_count,
    coalesce(n.facility_id, c.facility_id) AS facility_id,
    c.paid_amount
FROM enc_day AS n
FULL OUTER JOIN clm_day AS c
  ON c.data_source = n.data_source AND c.patient_id = n.patient_id AND c.visit_date = n.visit_date
LEFT JOIN person AS pe
  ON pe.data_source = coalesce(n.data_source, c.data_source) AND pe.patient_id = coalesce(n.patient_id, c.patient_id);

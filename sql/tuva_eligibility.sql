-- tuva.eligibility: the Tuva Project's input-layer eligibility table, one
-- row per enrollment span, its 39 columns in Tuva's order and types, so
-- that the Tuva package runs on the warehouse with input_schema: tuva.
--
-- Row: one Coverage (an enrollment of a member in one payer and plan from
-- its period start to its end).
-- Grain: (person_id, member_id, enrollment_start_date, enrollment_end_date,
-- plan, payer, data_source), as Tuva's; Coverages that agree on all of it
-- make one row.
--
-- Filled from FHIR:
--  * person_id is the crosswalk's person; member_id the member number
--    (Patient identifier of type MB, else Coverage.subscriberId, else the
--    Patient id).
--  * enrollment_end_date of an open period is as_of_date, the data date
--    of the source (as member_months), so spans never reach into months
--    not yet observed.
--  * payer and plan as member_months ('unknown' when the Coverage names
--    none: both are in the grain); payer_type is medicare when the
--    Coverage carries CMS Medicare codes or names Medicare, medicaid when
--    it names Medicaid or CHIP, else commercial.
--  * The CMS codes (original reason for entitlement, dual status,
--    Medicare status) come from the Blue Button extensions; a code outside
--    Tuva's accepted values is left null.
--  * race and ethnicity are the US Core OMB categories as Tuva names them.
--  * file_name is the fhirlake run that loaded the Coverage, file_date its
--    export's transaction date, ingest_datetime when it committed (UTC).
--  * Cancelled and entered-in-error Coverages, and those without a period
--    start, are left out.
-- Tables are named main.x so that the view binds whatever schema a
-- reader (dbt) makes its default.
-- Not carried by FHIR or CARIN Blue Button, so null: enrollment_status,
-- hospice_flag, institutional_snp_flag, long_term_institutional_flag;
-- social_security_number is never loaded.
CREATE SCHEMA IF NOT EXISTS tuva;
CREATE OR REPLACE VIEW tuva.eligibility AS
WITH as_of AS (
    SELECT source AS data_source, max(timezone('UTC', transaction_time))::DATE AS as_of_date
    FROM main.fhirlake_runs
    WHERE status = 'committed'
    GROUP BY source
),
spans AS (
    SELECT
        c.data_source, c.id, c.patient_id,
        coalesce(pe.person_id, 'p-' || left(sha256(c.data_source || '/' || c.patient_id), 16)) AS person_id,
        coalesce(p.member_id, c.subscriber_id, c.patient_id)                   AS member_id,
        c.subscriber_id,
        p.gender, p.race_code, p.ethnicity_code, p.birth_date,
        timezone('UTC', p.deceased_date_time)::DATE                          AS death_date,
        coalesce(p.deceased, false) OR p.deceased_date_time IS NOT NULL        AS death_flag,
        c.period_start                                                         AS enrollment_start_date,
        least(coalesce(c.period_end, coalesce(o.as_of_date, current_date)), greatest(coalesce(o.as_of_date, current_date), c.period_start)) AS enrollment_end_date,
        coalesce(c.payor_name, c.payor_id, 'unknown')                          AS payer,
        coalesce(c.plan_name, c.plan_value, c.group_name, c.group_value, 'unknown') AS plan,
        c.orec_code, c.dual_status_code, c.medicare_status_code,
        concat_ws(' ', c.payor_name, c.plan_name, c.plan_value, c.group_name, c.group_value) AS payer_text,
        c.group_value, c.group_name, c.relationship_code,
        p.name_suffix, p.given, p.middle_name, p.family,
        p.address_line, p.city, p.state, p.postal_code, p.phone, p.email,
        r.run_id
    FROM main.coverage AS c
    LEFT JOIN as_of AS o USING (data_source)
    LEFT JOIN main.patient AS p ON p.data_source = c.data_source AND p.id = c.patient_id
    LEFT JOIN main.person AS pe ON pe.data_source = c.data_source AND pe.patient_id = c.patient_id
    LEFT JOIN main.fhirlake_resources AS r ON r.source = c.data_source AND r.resource_type = 'Coverage' AND r.id = c.id
    WHERE c.period_start IS NOT NULL
      AND c.patient_id IS NOT NULL
      AND coalesce(c.status, 'active') NOT IN ('cancelled', 'entered-in-error')
)
SELECT
    s.person_id::VARCHAR                                                  AS person_id,
    s.member_id::VARCHAR                                                  AS member_id,
    s.subscriber_id::VARCHAR                                              AS subscriber_id,
    CASE lower(s.gender) WHEN 'male' THEN 'male' WHEN 'female' THEN 'female' ELSE 'unknown' END AS gender,
    CASE s.race_code
        WHEN '1002-5' THEN 'american indian or alaska native'
        WHEN '2028-9' THEN 'asian'
        WHEN '2054-5' THEN 'black or african american'
        WHEN '2076-8' THEN 'native hawaiian or other pacific islander'
        WHEN '2106-3' THEN 'white'
        WHEN '2131-1' THEN 'other race'
        ELSE 'unknown' END                                                AS race,
    s.birth_date::DATE                                                    AS birth_date,
    s.death_date                                                          AS death_date,
    s.death_flag::BOOLEAN                                                 AS death_flag,
    s.enrollment_start_date::DATE                                         AS enrollment_start_date,
    s.enrollment_end_date::DATE                                           AS enrollment_end_date,
    s.payer::VARCHAR                                                      AS payer,
    CASE
        WHEN s.orec_code IS NOT NULL OR s.medicare_status_code IS NOT NULL OR s.dual_status_code IS NOT NULL
          OR lower(s.payer_text) LIKE '%medicare%' THEN 'medicare'
        WHEN lower(s.payer_text) LIKE '%medicaid%' OR lower(s.payer_text) LIKE '%chip%' THEN 'medicaid'
        ELSE 'commercial' END                                             AS payer_type,
    s.plan::VARCHAR                                                       AS plan,
    CASE WHEN s.orec_code IN ('0', '1', '2', '3') THEN s.orec_code END   AS original_reason_entitlement_code,
    CASE WHEN s.dual_status_code IN ('00', '01', '02', '03', '04', '05', '06', '08', '09', '10') THEN s.dual_status_code END AS dual_status_code,
    CASE WHEN s.medicare_status_code IN ('00', '10', '11', '20', '21', '31', '40') THEN s.medicare_status_code END AS medicare_status_code,
    NULL::VARCHAR                                                         AS enrollment_status,
    NULL::BOOLEAN                                                         AS hospice_flag,
    NULL::BOOLEAN                                                         AS institutional_snp_flag,
    NULL::BOOLEAN                                                         AS long_term_institutional_flag,
    s.group_value::VARCHAR                                                AS group_id,
    s.group_name::VARCHAR                                                 AS group_name,
    s.name_suffix::VARCHAR                                                AS name_suffix,
    s.given::VARCHAR                                                      AS first_name,
    s.middle_name::VARCHAR                                                AS middle_name,
    s.family::VARCHAR                                                     AS last_name,
    NULL::VARCHAR                                                         AS social_security_number,
    s.relationship_code::VARCHAR                                          AS subscriber_relation,
    s.address_line::VARCHAR                                               AS address,
    s.city::VARCHAR                                                       AS city,
    s.state::VARCHAR                                                      AS state,
    s.postal_code::VARCHAR                                                AS zip_code,
    s.phone::VARCHAR                                                      AS phone,
    s.email::VARCHAR                                                      AS email,
    CASE s.ethnicity_code
        WHEN '2135-2' THEN 'hispanic or latino'
        WHEN '2186-5' THEN 'not hispanic or latino' END                   AS ethnicity,
    s.data_source::VARCHAR                                                AS data_source,
    ('fhirlake run ' || r.run_id)::VARCHAR                                AS file_name,
    timezone('UTC', r.transaction_time)::DATE                             AS file_date,
    timezone('UTC', r.finished_at)::TIMESTAMP                             AS ingest_datetime
FROM spans AS s
LEFT JOIN main.fhirlake_runs AS r ON r.run_id = s.run_id
QUALIFY row_number() OVER (
    PARTITION BY s.person_id, s.member_id, s.enrollment_start_date, s.enrollment_end_date, s.plan, s.payer, s.data_source
    ORDER BY s.id) = 1;

-- tuva.medical_claim: the Tuva Project's input-layer medical_claim, one
-- row per line of a professional or institutional claim, its 148 columns
-- in Tuva's order and types. (Generated column lists: diagnosis codes and
-- present-on-admission indicators 1 to 25, procedure codes and dates 1 to
-- 25, by the claim's sequence numbers.)
--
-- Grain: (claim_id, claim_line_number, data_source), as Tuva's.
--
-- Filled from FHIR:
--  * claim_type is professional or institutional as CARIN types the
--    claim, undetermined for the others (oral, vision); pharmacy claims
--    are in tuva.pharmacy_claim; cancelled and entered-in-error claims are
--    left out (newest-wins already keeps a claim's final adjustment).
--  * payer and plan are those of claim_coverage: the member's Coverages at
--    the claim's source in force on the claim's start date, named as
--    tuva.eligibility names them; null when none is in force or they
--    disagree.
--  * admission and discharge dates are the claim's admission period (C4BB
--    supportingInfo admissionperiod), else the billable period of an
--    inpatient claim; paid_date the claim's payment date.
--  * rendering, billing and facility NPIs and TINs are claim_providers':
--    rendering the care team's rendering (else performing, attending,
--    primary) provider, billing the claim's provider, each with the NPI
--    and TIN the claim carries or, else, those of the Organization or
--    Practitioner it references (the organization and practitioner
--    tables).
--  * diagnosis_code_N and diagnosis_poa_N are the claim's diagnoses by
--    sequence, without dots, and their onAdmission codes; the code types
--    are Tuva's (icd-10-cm, icd-9-cm; icd-10-pcs, icd-9-pcs), null for
--    others; procedure_date_N the procedure's date.
--  * Admission type and source, discharge status (two digits), bill type
--    and DRG (three digits; ms-drg or apr-drg by its code system, CMS's
--    DRGs are MS-DRGs) come from the claim's C4BB supportingInfo (or the
--    CMS Blue Button categories); bill_type_code is the whole NUBC type of
--    bill, or CMS's facility type, classification and frequency digits
--    put together (the eob view's bill_type_code).
--    HCPCS modifiers 1 to 5 are the line's.
--  * file_name is the fhirlake run that loaded the claim, file_date its
--    export's transaction date, ingest_datetime when it committed (UTC).
--  * in_network_flag is claim_line_network's: the line's C4BB benefit
--    payment status, else the claim's.
-- Not carried by CARIN Blue Button, so null: total_cost_amount.
-- Tables are named main.x so that the view binds whatever schema a
-- reader (dbt) makes its default.
CREATE SCHEMA IF NOT EXISTS tuva;
CREATE OR REPLACE VIEW tuva.medical_claim AS
WITH claims AS (
    SELECT *
    FROM main.eob
    WHERE claim_type IS DISTINCT FROM 'pharmacy'
      AND coalesce(status, 'active') NOT IN ('cancelled', 'entered-in-error')
),
dx AS (
    SELECT data_source, eob_id,
        max(CASE system
                WHEN 'http://hl7.org/fhir/sid/icd-10-cm' THEN 'icd-10-cm'
                WHEN 'http://hl7.org/fhir/sid/icd-9-cm' THEN 'icd-9-cm'
            END) FILTER (WHERE sequence = 1) AS diagnosis_code_type,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 1) AS diagnosis_code_1,
        max(on_admission_code) FILTER (WHERE sequence = 1) AS diagnosis_poa_1,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 2) AS diagnosis_code_2,
        max(on_admission_code) FILTER (WHERE sequence = 2) AS diagnosis_poa_2,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 3) AS diagnosis_code_3,
        max(on_admission_code) FILTER (WHERE sequence = 3) AS diagnosis_poa_3,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 4) AS diagnosis_code_4,
        max(on_admission_code) FILTER (WHERE sequence = 4) AS diagnosis_poa_4,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 5) AS diagnosis_code_5,
        max(on_admission_code) FILTER (WHERE sequence = 5) AS diagnosis_poa_5,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 6) AS diagnosis_code_6,
        max(on_admission_code) FILTER (WHERE sequence = 6) AS diagnosis_poa_6,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 7) AS diagnosis_code_7,
        max(on_admission_code) FILTER (WHERE sequence = 7) AS diagnosis_poa_7,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 8) AS diagnosis_code_8,
        max(on_admission_code) FILTER (WHERE sequence = 8) AS diagnosis_poa_8,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 9) AS diagnosis_code_9,
        max(on_admission_code) FILTER (WHERE sequence = 9) AS diagnosis_poa_9,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 10) AS diagnosis_code_10,
        max(on_admission_code) FILTER (WHERE sequence = 10) AS diagnosis_poa_10,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 11) AS diagnosis_code_11,
        max(on_admission_code) FILTER (WHERE sequence = 11) AS diagnosis_poa_11,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 12) AS diagnosis_code_12,
        max(on_admission_code) FILTER (WHERE sequence = 12) AS diagnosis_poa_12,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 13) AS diagnosis_code_13,
        max(on_admission_code) FILTER (WHERE sequence = 13) AS diagnosis_poa_13,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 14) AS diagnosis_code_14,
        max(on_admission_code) FILTER (WHERE sequence = 14) AS diagnosis_poa_14,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 15) AS diagnosis_code_15,
        max(on_admission_code) FILTER (WHERE sequence = 15) AS diagnosis_poa_15,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 16) AS diagnosis_code_16,
        max(on_admission_code) FILTER (WHERE sequence = 16) AS diagnosis_poa_16,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 17) AS diagnosis_code_17,
        max(on_admission_code) FILTER (WHERE sequence = 17) AS diagnosis_poa_17,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 18) AS diagnosis_code_18,
        max(on_admission_code) FILTER (WHERE sequence = 18) AS diagnosis_poa_18,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 19) AS diagnosis_code_19,
        max(on_admission_code) FILTER (WHERE sequence = 19) AS diagnosis_poa_19,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 20) AS diagnosis_code_20,
        max(on_admission_code) FILTER (WHERE sequence = 20) AS diagnosis_poa_20,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 21) AS diagnosis_code_21,
        max(on_admission_code) FILTER (WHERE sequence = 21) AS diagnosis_poa_21,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 22) AS diagnosis_code_22,
        max(on_admission_code) FILTER (WHERE sequence = 22) AS diagnosis_poa_22,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 23) AS diagnosis_code_23,
        max(on_admission_code) FILTER (WHERE sequence = 23) AS diagnosis_poa_23,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 24) AS diagnosis_code_24,
        max(on_admission_code) FILTER (WHERE sequence = 24) AS diagnosis_poa_24,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 25) AS diagnosis_code_25,
        max(on_admission_code) FILTER (WHERE sequence = 25) AS diagnosis_poa_25
    FROM main.eob_diagnosis
    GROUP BY data_source, eob_id
),
px AS (
    SELECT data_source, eob_id,
        max(CASE
                WHEN system ILIKE '%icd-10-pcs%' OR system = 'http://www.cms.gov/Medicare/Coding/ICD10' THEN 'icd-10-pcs'
                WHEN system ILIKE '%icd-9%' OR system = 'http://www.cms.gov/Medicare/Coding/ICD9' THEN 'icd-9-pcs'
            END) FILTER (WHERE sequence = 1) AS procedure_code_type,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 1) AS procedure_code_1,
        max(performed) FILTER (WHERE sequence = 1) AS procedure_date_1,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 2) AS procedure_code_2,
        max(performed) FILTER (WHERE sequence = 2) AS procedure_date_2,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 3) AS procedure_code_3,
        max(performed) FILTER (WHERE sequence = 3) AS procedure_date_3,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 4) AS procedure_code_4,
        max(performed) FILTER (WHERE sequence = 4) AS procedure_date_4,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 5) AS procedure_code_5,
        max(performed) FILTER (WHERE sequence = 5) AS procedure_date_5,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 6) AS procedure_code_6,
        max(performed) FILTER (WHERE sequence = 6) AS procedure_date_6,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 7) AS procedure_code_7,
        max(performed) FILTER (WHERE sequence = 7) AS procedure_date_7,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 8) AS procedure_code_8,
        max(performed) FILTER (WHERE sequence = 8) AS procedure_date_8,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 9) AS procedure_code_9,
        max(performed) FILTER (WHERE sequence = 9) AS procedure_date_9,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 10) AS procedure_code_10,
        max(performed) FILTER (WHERE sequence = 10) AS procedure_date_10,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 11) AS procedure_code_11,
        max(performed) FILTER (WHERE sequence = 11) AS procedure_date_11,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 12) AS procedure_code_12,
        max(performed) FILTER (WHERE sequence = 12) AS procedure_date_12,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 13) AS procedure_code_13,
        max(performed) FILTER (WHERE sequence = 13) AS procedure_date_13,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 14) AS procedure_code_14,
        max(performed) FILTER (WHERE sequence = 14) AS procedure_date_14,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 15) AS procedure_code_15,
        max(performed) FILTER (WHERE sequence = 15) AS procedure_date_15,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 16) AS procedure_code_16,
        max(performed) FILTER (WHERE sequence = 16) AS procedure_date_16,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 17) AS procedure_code_17,
        max(performed) FILTER (WHERE sequence = 17) AS procedure_date_17,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 18) AS procedure_code_18,
        max(performed) FILTER (WHERE sequence = 18) AS procedure_date_18,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 19) AS procedure_code_19,
        max(performed) FILTER (WHERE sequence = 19) AS procedure_date_19,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 20) AS procedure_code_20,
        max(performed) FILTER (WHERE sequence = 20) AS procedure_date_20,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 21) AS procedure_code_21,
        max(performed) FILTER (WHERE sequence = 21) AS procedure_date_21,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 22) AS procedure_code_22,
        max(performed) FILTER (WHERE sequence = 22) AS procedure_date_22,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 23) AS procedure_code_23,
        max(performed) FILTER (WHERE sequence = 23) AS procedure_date_23,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 24) AS procedure_code_24,
        max(performed) FILTER (WHERE sequence = 24) AS procedure_date_24,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 25) AS procedure_code_25,
        max(performed) FILTER (WHERE sequence = 25) AS procedure_date_25
    FROM main.eob_procedure
    GROUP BY data_source, eob_id
)
SELECT
    e.id::VARCHAR                                          AS claim_id,
    i.sequence::INTEGER                                    AS claim_line_number,
    CASE WHEN e.claim_type IN ('professional', 'institutional') THEN e.claim_type ELSE 'undetermined' END AS claim_type,
    coalesce(pe.person_id, 'p-' || left(sha256(e.data_source || '/' || e.patient_id), 16)) AS person_id,
    coalesce(p.member_id, e.patient_id)::VARCHAR           AS member_id,
    pl.payer::VARCHAR                                      AS payer,
    pl.plan::VARCHAR                                       AS plan,
    e.billable_period_start::DATE                          AS claim_start_date,
    e.billable_period_end::DATE                            AS claim_end_date,
    i.serviced_start::DATE                                 AS claim_line_start_date,
    i.serviced_end::DATE                                   AS claim_line_end_date,
    coalesce(e.admission_start, CASE WHEN e.claim_subtype = 'inpatient' THEN e.billable_period_start END)::DATE AS admission_date,
    coalesce(e.admission_end, CASE WHEN e.claim_subtype = 'inpatient' THEN e.billable_period_end END)::DATE     AS discharge_date,
    e.admit_source_code::VARCHAR                           AS admit_source_code,
    e.admit_type_code::VARCHAR                             AS admit_type_code,
    CASE WHEN regexp_full_match(e.discharge_status_code, '[0-9]') THEN lpad(e.discharge_status_code, 2, '0')
         ELSE e.discharge_status_code END::VARCHAR          AS discharge_disposition_code,
    i.place_of_service::VARCHAR                            AS place_of_service_code,
    e.bill_type_code::VARCHAR                              AS bill_type_code,
    CASE WHEN e.drg_code IS NULL THEN NULL
         WHEN e.drg_system ILIKE '%apr%' THEN 'apr-drg'
         WHEN e.drg_system ILIKE '%ms-drg%' OR e.drg_system ILIKE '%msdrg%' OR e.drg_system = 'https://bluebutton.cms.gov/resources/variables/clm_drg_cd' THEN 'ms-drg'
    END::VARCHAR                                           AS drg_code_type,
    CASE WHEN regexp_full_match(e.drg_code, '[0-9]{1,3}') THEN lpad(e.drg_code, 3, '0') ELSE e.drg_code END::VARCHAR AS drg_code,
    i.revenue_code::VARCHAR                                AS revenue_center_code,
    i.quantity::DOUBLE                                     AS service_unit_quantity,
    i.service_code::VARCHAR                                AS hcpcs_code,
    i.modifier_1::VARCHAR                                  AS hcpcs_modifier_1,
    i.modifier_2::VARCHAR                                  AS hcpcs_modifier_2,
    i.modifier_3::VARCHAR                                  AS hcpcs_modifier_3,
    i.modifier_4::VARCHAR                                  AS hcpcs_modifier_4,
    i.modifier_5::VARCHAR                                  AS hcpcs_modifier_5,
    n.rendering_npi::VARCHAR                               AS rendering_npi,
    n.rendering_tin::VARCHAR                               AS rendering_tin,
    n.billing_npi::VARCHAR                                 AS billing_npi,
    n.billing_tin::VARCHAR                                 AS billing_tin,
    n.facility_npi::VARCHAR                                AS facility_npi,
    e.payment_date::DATE                                   AS paid_date,
    i.paid::DECIMAL(38, 2)                                 AS paid_amount,
    i.allowed::DECIMAL(38, 2)                              AS allowed_amount,
    i.submitted::DECIMAL(38, 2)                            AS charge_amount,
    i.coinsurance::DECIMAL(38, 2)                          AS coinsurance_amount,
    i.copay::DECIMAL(38, 2)                                AS copayment_amount,
    i.deductible::DECIMAL(38, 2)                           AS deductible_amount,
    NULL::DECIMAL(38, 2)                                   AS total_cost_amount,
    d.diagnosis_code_type::VARCHAR                         AS diagnosis_code_type,
    d.diagnosis_code_1::VARCHAR AS diagnosis_code_1,
    d.diagnosis_code_2::VARCHAR AS diagnosis_code_2,
    d.diagnosis_code_3::VARCHAR AS diagnosis_code_3,
    d.diagnosis_code_4::VARCHAR AS diagnosis_code_4,
    d.diagnosis_code_5::VARCHAR AS diagnosis_code_5,
    d.diagnosis_code_6::VARCHAR AS diagnosis_code_6,
    d.diagnosis_code_7::VARCHAR AS diagnosis_code_7,
    d.diagnosis_code_8::VARCHAR AS diagnosis_code_8,
    d.diagnosis_code_9::VARCHAR AS diagnosis_code_9,
    d.diagnosis_code_10::VARCHAR AS diagnosis_code_10,
    d.diagnosis_code_11::VARCHAR AS diagnosis_code_11,
    d.diagnosis_code_12::VARCHAR AS diagnosis_code_12,
    d.diagnosis_code_13::VARCHAR AS diagnosis_code_13,
    d.diagnosis_code_14::VARCHAR AS diagnosis_code_14,
    d.diagnosis_code_15::VARCHAR AS diagnosis_code_15,
    d.diagnosis_code_16::VARCHAR AS diagnosis_code_16,
    d.diagnosis_code_17::VARCHAR AS diagnosis_code_17,
    d.diagnosis_code_18::VARCHAR AS diagnosis_code_18,
    d.diagnosis_code_19::VARCHAR AS diagnosis_code_19,
    d.diagnosis_code_20::VARCHAR AS diagnosis_code_20,
    d.diagnosis_code_21::VARCHAR AS diagnosis_code_21,
    d.diagnosis_code_22::VARCHAR AS diagnosis_code_22,
    d.diagnosis_code_23::VARCHAR AS diagnosis_code_23,
    d.diagnosis_code_24::VARCHAR AS diagnosis_code_24,
    d.diagnosis_code_25::VARCHAR AS diagnosis_code_25,
    d.diagnosis_poa_1::VARCHAR AS diagnosis_poa_1,
    d.diagnosis_poa_2::VARCHAR AS diagnosis_poa_2,
    d.diagnosis_poa_3::VARCHAR AS diagnosis_poa_3,
    d.diagnosis_poa_4::VARCHAR AS diagnosis_poa_4,
    d.diagnosis_poa_5::VARCHAR AS diagnosis_poa_5,
    d.diagnosis_poa_6::VARCHAR AS diagnosis_poa_6,
    d.diagnosis_poa_7::VARCHAR AS diagnosis_poa_7,
    d.diagnosis_poa_8::VARCHAR AS diagnosis_poa_8,
    d.diagnosis_poa_9::VARCHAR AS diagnosis_poa_9,
    d.diagnosis_poa_10::VARCHAR AS diagnosis_poa_10,
    d.diagnosis_poa_11::VARCHAR AS diagnosis_poa_11,
    d.diagnosis_poa_12::VARCHAR AS diagnosis_poa_12,
    d.diagnosis_poa_13::VARCHAR AS diagnosis_poa_13,
    d.diagnosis_poa_14::VARCHAR AS diagnosis_poa_14,
    d.diagnosis_poa_15::VARCHAR AS diagnosis_poa_15,
    d.diagnosis_poa_16::VARCHAR AS diagnosis_poa_16,
    d.diagnosis_poa_17::VARCHAR AS diagnosis_poa_17,
    d.diagnosis_poa_18::VARCHAR AS diagnosis_poa_18,
    d.diagnosis_poa_19::VARCHAR AS diagnosis_poa_19,
    d.diagnosis_poa_20::VARCHAR AS diagnosis_poa_20,
    d.diagnosis_poa_21::VARCHAR AS diagnosis_poa_21,
    d.diagnosis_poa_22::VARCHAR AS diagnosis_poa_22,
    d.diagnosis_poa_23::VARCHAR AS diagnosis_poa_23,
    d.diagnosis_poa_24::VARCHAR AS diagnosis_poa_24,
    d.diagnosis_poa_25::VARCHAR AS diagnosis_poa_25,
    x.procedure_code_type::VARCHAR                         AS procedure_code_type,
    x.procedure_code_1::VARCHAR AS procedure_code_1,
    x.procedure_code_2::VARCHAR AS procedure_code_2,
    x.procedure_code_3::VARCHAR AS procedure_code_3,
    x.procedure_code_4::VARCHAR AS procedure_code_4,
    x.procedure_code_5::VARCHAR AS procedure_code_5,
    x.procedure_code_6::VARCHAR AS procedure_code_6,
    x.procedure_code_7::VARCHAR AS procedure_code_7,
    x.procedure_code_8::VARCHAR AS procedure_code_8,
    x.procedure_code_9::VARCHAR AS procedure_code_9,
    x.procedure_code_10::VARCHAR AS procedure_code_10,
    x.procedure_code_11::VARCHAR AS procedure_code_11,
    x.procedure_code_12::VARCHAR AS procedure_code_12,
    x.procedure_code_13::VARCHAR AS procedure_code_13,
    x.procedure_code_14::VARCHAR AS procedure_code_14,
    x.procedure_code_15::VARCHAR AS procedure_code_15,
    x.procedure_code_16::VARCHAR AS procedure_code_16,
    x.procedure_code_17::VARCHAR AS procedure_code_17,
    x.procedure_code_18::VARCHAR AS procedure_code_18,
    x.procedure_code_19::VARCHAR AS procedure_code_19,
    x.procedure_code_20::VARCHAR AS procedure_code_20,
    x.procedure_code_21::VARCHAR AS procedure_code_21,
    x.procedure_code_22::VARCHAR AS procedure_code_22,
    x.procedure_code_23::VARCHAR AS procedure_code_23,
    x.procedure_code_24::VARCHAR AS procedure_code_24,
    x.procedure_code_25::VARCHAR AS procedure_code_25,
    x.procedure_date_1::DATE AS procedure_date_1,
    x.procedure_date_2::DATE AS procedure_date_2,
    x.procedure_date_3::DATE AS procedure_date_3,
    x.procedure_date_4::DATE AS procedure_date_4,
    x.procedure_date_5::DATE AS procedure_date_5,
    x.procedure_date_6::DATE AS procedure_date_6,
    x.procedure_date_7::DATE AS procedure_date_7,
    x.procedure_date_8::DATE AS procedure_date_8,
    x.procedure_date_9::DATE AS procedure_date_9,
    x.procedure_date_10::DATE AS procedure_date_10,
    x.procedure_date_11::DATE AS procedure_date_11,
    x.procedure_date_12::DATE AS procedure_date_12,
    x.procedure_date_13::DATE AS procedure_date_13,
    x.procedure_date_14::DATE AS procedure_date_14,
    x.procedure_date_15::DATE AS procedure_date_15,
    x.procedure_date_16::DATE AS procedure_date_16,
    x.procedure_date_17::DATE AS procedure_date_17,
    x.procedure_date_18::DATE AS procedure_date_18,
    x.procedure_date_19::DATE AS procedure_date_19,
    x.procedure_date_20::DATE AS procedure_date_20,
    x.procedure_date_21::DATE AS procedure_date_21,
    x.procedure_date_22::DATE AS procedure_date_22,
    x.procedure_date_23::DATE AS procedure_date_23,
    x.procedure_date_24::DATE AS procedure_date_24,
    x.procedure_date_25::DATE AS procedure_date_25,
    nw.in_network_flag::BOOLEAN                            AS in_network_flag,
    e.data_source::VARCHAR                                 AS data_source,
    ('fhirlake run ' || r.run_id)::VARCHAR                 AS file_name,
    timezone('UTC', ru.transaction_time)::DATE             AS file_date,
    timezone('UTC', ru.finished_at)::TIMESTAMP             AS ingest_datetime
FROM claims AS e
JOIN main.eob_item AS i ON i.data_source = e.data_source AND i.eob_id = e.id AND i.revenue_code IS DISTINCT FROM '0001'
LEFT JOIN main.patient AS p ON p.data_source = e.data_source AND p.id = e.patient_id
LEFT JOIN main.person AS pe ON pe.data_source = e.data_source AND pe.patient_id = e.patient_id
LEFT JOIN dx AS d ON d.data_source = e.data_source AND d.eob_id = e.id
LEFT JOIN px AS x ON x.data_source = e.data_source AND x.eob_id = e.id
LEFT JOIN main.claim_providers AS n ON n.data_source = e.data_source AND n.claim_id = e.id
LEFT JOIN main.claim_line_network AS nw ON nw.data_source = e.data_source AND nw.claim_id = e.id AND nw.claim_line_number = i.sequence
LEFT JOIN main.claim_coverage AS pl ON pl.data_source = e.data_source AND pl.claim_id = e.id
LEFT JOIN main.fhirlake_resources AS r ON r.source = e.data_source AND r.resource_type = 'ExplanationOfBenefit' AND r.id = e.id
LEFT JOIN main.fhirlake_runs AS ru ON ru.run_id = r.run_id;

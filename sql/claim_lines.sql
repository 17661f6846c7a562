-- claim_lines: medical claim lines, a shorter tuva.medical_claim with the
-- FHIR claim type, subtype and ids beside Tuva's columns.
--
-- Row: one ExplanationOfBenefit.item (eob_item) of a non-pharmacy claim
-- (institutional, professional, oral, vision), with the claim's header
-- fields repeated on every line: the rows of tuva.medical_claim.
-- Grain: (data_source, claim_id, claim_line_number): claim ids are unique
-- within one source.
--
-- Caveats:
--  * Every column named as in Tuva's medical_claim is tuva.medical_claim's
--    (see its rules: cancelled claims and revenue code 0001 total lines
--    left out, payer and plan from claim_coverage, NPIs from
--    claim_providers, codes without dots), in fhirlake's types.
--  * claim_type and claim_subtype are the claim's own (CARIN's
--    institutional, professional, oral, vision; inpatient, outpatient...),
--    where tuva.medical_claim keeps professional, institutional or
--    undetermined.
--  * patient_id is the source's Patient id and member_id the payer's
--    member number (identifier type MB), null when the Patient has none;
--    person_id is the person crosswalk's: one human's claims at several
--    payers share it.
--  * attending_npi and referring_npi are claim_providers' (the care team
--    member of that role); billing_provider_id is the claim's provider
--    reference.
--  * diagnosis_code_1..10 and procedure_code_1..5 are the first of
--    tuva.medical_claim's 25.
CREATE OR REPLACE VIEW claim_lines AS
SELECT
    m.claim_id,
    m.claim_line_number,
    e.claim_type,
    e.claim_subtype,
    m.person_id,
    e.patient_id,
    p.member_id,
    m.payer,
    m.plan,
    m.claim_start_date,
    m.claim_end_date,
    m.claim_line_start_date,
    m.claim_line_end_date,
    m.admission_date,
    m.discharge_date,
    m.place_of_service_code,
    m.bill_type_code,
    m.revenue_center_code,
    m.service_unit_quantity,
    m.hcpcs_code,
    m.rendering_npi,
    cp.attending_npi,
    cp.referring_npi,
    m.billing_npi,
    cp.billing_provider_id,
    m.facility_npi,
    m.paid_amount,
    m.allowed_amount,
    m.charge_amount,
    m.coinsurance_amount,
    m.copayment_amount,
    m.deductible_amount,
    m.diagnosis_code_type,
    m.diagnosis_code_1, m.diagnosis_code_2, m.diagnosis_code_3, m.diagnosis_code_4, m.diagnosis_code_5, m.diagnosis_code_6, m.diagnosis_code_7, m.diagnosis_code_8, m.diagnosis_code_9, m.diagnosis_code_10,
    m.procedure_code_type,
    m.procedure_code_1, m.procedure_code_2, m.procedure_code_3, m.procedure_code_4, m.procedure_code_5,
    m.data_source
FROM tuva.medical_claim AS m
JOIN main.eob AS e ON e.data_source = m.data_source AND e.id = m.claim_id
LEFT JOIN main.patient AS p ON p.data_source = e.data_source AND p.id = e.patient_id
LEFT JOIN main.claim_providers AS cp ON cp.data_source = m.data_source AND cp.claim_id = m.claim_id;

-- claim_lines: medical claim lines in the shape of the Tuva Project's
-- medical_claim input (column names follow Tuva where a field maps).
--
-- Row: one ExplanationOfBenefit.item (eob_item) of a non-pharmacy claim
-- (institutional, professional, oral, vision), with the claim's header
-- fields repeated on every line.
-- Grain: (data_source, claim_id, claim_line_number): claim ids are unique
-- within one source.
--
-- Caveats:
--  * Pharmacy claims are in pharmacy_claims. Claims with status cancelled
--    or entered-in-error are left out; an EOB without items has no row.
--  * Revenue code 0001 lines (the total-charges line of an institutional
--    claim, as CMS sends them) are left out: they repeat the sum of the
--    other lines, so summing charge_amount would count the claim twice.
--  * data_source is the source that loaded the claim. A claim meets the
--    patient, coverage, diagnoses, procedures, care team and lines of its
--    own source only.
--  * person_id is the person crosswalk's: one human's claims at several
--    payers (linked by MBI, a configured identifier or a Payer-to-Payer
--    match) share it. patient_id is the source's Patient id; member_id is
--    the payer's member number (identifier type MB).
--  * diagnosis_code_1..10 are eob_diagnosis codes by sequence (1 = the
--    first listed, normally principal or admitting); procedure_code_1..5
--    are eob_procedure codes by sequence. Codes lose their dot (E11.9 ->
--    E119), as Tuva's terminology holds them; diagnosis_code_type and
--    procedure_code_type come from the system of sequence 1.
--  * NPIs come from eob_care_team, lowest sequence per role: rendering_npi
--    is the rendering, performing, attending or primary provider, in that
--    order of preference; attending_npi and referring_npi by their role.
--    The schema keeps no NPI for EOB.provider or EOB.facility, so
--    billing_npi and facility_npi are null (billing_provider_id holds the
--    provider reference); an NPI sent only as a C4BB "npi"-typed identifier
--    (CMS DPC) is not captured either. bill_type_code is not in the schema
--    and is null.
--  * Amounts are the line's adjudications (eob_item): paid, allowed
--    (eligible), charge (submitted), coinsurance, copay, deductible; null
--    when the payer did not send the category.
--  * admission_date / discharge_date are the billable period of inpatient
--    claims (CARIN subtype inpatient); null otherwise.
--  * payer and plan are those of claim_coverage: the member's coverages at
--    the claim's source in force on claim_start_date, named as
--    tuva.eligibility names them; null when there is none or they disagree
--    (Medicare Part A and B both cover a date).
CREATE OR REPLACE VIEW claim_lines AS
WITH claims AS (
    SELECT *
    FROM eob
    WHERE claim_type IS DISTINCT FROM 'pharmacy'
      AND coalesce(status, 'active') NOT IN ('cancelled', 'entered-in-error')
),
dx AS (
    SELECT data_source, eob_id,
        max(CASE system
                WHEN 'http://hl7.org/fhir/sid/icd-10-cm' THEN 'icd-10-cm'
                WHEN 'http://hl7.org/fhir/sid/icd-10' THEN 'icd-10'
                WHEN 'http://hl7.org/fhir/sid/icd-9-cm' THEN 'icd-9-cm'
            END) FILTER (WHERE sequence = 1) AS diagnosis_code_type,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 1)  AS diagnosis_code_1,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 2)  AS diagnosis_code_2,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 3)  AS diagnosis_code_3,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 4)  AS diagnosis_code_4,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 5)  AS diagnosis_code_5,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 6)  AS diagnosis_code_6,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 7)  AS diagnosis_code_7,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 8)  AS diagnosis_code_8,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 9)  AS diagnosis_code_9,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 10) AS diagnosis_code_10
    FROM eob_diagnosis
    GROUP BY data_source, eob_id
),
px AS (
    SELECT data_source, eob_id,
        max(CASE
                WHEN system ILIKE '%icd-10-pcs%' OR system = 'http://www.cms.gov/Medicare/Coding/ICD10' THEN 'icd-10-pcs'
                WHEN system ILIKE '%icd-9%' OR system = 'http://www.cms.gov/Medicare/Coding/ICD9' THEN 'icd-9-pcs'
                WHEN system = 'http://www.ama-assn.org/go/cpt' THEN 'cpt'
                WHEN system ILIKE '%hcpcs%' THEN 'hcpcs'
            END) FILTER (WHERE sequence = 1) AS procedure_code_type,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 1) AS procedure_code_1,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 2) AS procedure_code_2,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 3) AS procedure_code_3,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 4) AS procedure_code_4,
        max(replace(code, '.', '')) FILTER (WHERE sequence = 5) AS procedure_code_5
    FROM eob_procedure
    GROUP BY data_source, eob_id
),
npi AS (
    SELECT data_source, eob_id,
        arg_min(provider_npi, (CASE role_code
                                   WHEN 'rendering' THEN 1
                                   WHEN 'performing' THEN 2
                                   WHEN 'attending' THEN 3
                                   WHEN 'primary' THEN 4
                               END, sequence))
            FILTER (WHERE role_code IN ('rendering', 'performing', 'attending', 'primary')
                      AND provider_npi IS NOT NULL)                       AS rendering_npi,
        arg_min(provider_npi, sequence)
            FILTER (WHERE role_code = 'attending' AND provider_npi IS NOT NULL) AS attending_npi,
        arg_min(provider_npi, sequence)
            FILTER (WHERE role_code = 'referring' AND provider_npi IS NOT NULL) AS referring_npi
    FROM eob_care_team
    GROUP BY data_source, eob_id
)
SELECT
    e.id                                   AS claim_id,
    i.sequence                             AS claim_line_number,
    e.claim_type,
    e.claim_subtype,
    coalesce(pe.person_id, 'p-' || left(sha256(e.data_source || '/' || e.patient_id), 16)) AS person_id,
    e.patient_id,
    p.member_id,
    pl.payer,
    pl.plan,
    e.billable_period_start                AS claim_start_date,
    e.billable_period_end                  AS claim_end_date,
    i.serviced_start                       AS claim_line_start_date,
    i.serviced_end                         AS claim_line_end_date,
    CASE WHEN e.claim_subtype = 'inpatient' THEN e.billable_period_start END AS admission_date,
    CASE WHEN e.claim_subtype = 'inpatient' THEN e.billable_period_end END   AS discharge_date,
    i.place_of_service                     AS place_of_service_code,
    CAST(NULL AS VARCHAR)                  AS bill_type_code,
    i.revenue_code                         AS revenue_center_code,
    i.quantity                             AS service_unit_quantity,
    i.service_code                         AS hcpcs_code,
    n.rendering_npi,
    n.attending_npi,
    n.referring_npi,
    CAST(NULL AS VARCHAR)                  AS billing_npi,
    e.provider_id                          AS billing_provider_id,
    CAST(NULL AS VARCHAR)                  AS facility_npi,
    i.paid                                 AS paid_amount,
    i.allowed                              AS allowed_amount,
    i.submitted                            AS charge_amount,
    i.coinsurance                          AS coinsurance_amount,
    i.copay                                AS copayment_amount,
    i.deductible                           AS deductible_amount,
    d.diagnosis_code_type,
    d.diagnosis_code_1, d.diagnosis_code_2, d.diagnosis_code_3, d.diagnosis_code_4, d.diagnosis_code_5,
    d.diagnosis_code_6, d.diagnosis_code_7, d.diagnosis_code_8, d.diagnosis_code_9, d.diagnosis_code_10,
    x.procedure_code_type,
    x.procedure_code_1, x.procedure_code_2, x.procedure_code_3, x.procedure_code_4, x.procedure_code_5,
    e.data_source
FROM claims AS e
JOIN eob_item AS i ON i.data_source = e.data_source AND i.eob_id = e.id AND i.revenue_code IS DISTINCT FROM '0001'
LEFT JOIN patient AS p ON p.data_source = e.data_source AND p.id = e.patient_id
LEFT JOIN person AS pe ON pe.data_source = e.data_source AND pe.patient_id = e.patient_id
LEFT JOIN dx AS d ON d.data_source = e.data_source AND d.eob_id = e.id
LEFT JOIN px AS x ON x.data_source = e.data_source AND x.eob_id = e.id
LEFT JOIN npi AS n ON n.data_source = e.data_source AND n.eob_id = e.id
LEFT JOIN claim_coverage AS pl ON pl.data_source = e.data_source AND pl.claim_id = e.id;

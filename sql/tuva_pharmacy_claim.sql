-- tuva.pharmacy_claim: the Tuva Project's input-layer pharmacy_claim, one
-- row per line of a pharmacy claim, its 25 columns in Tuva's order and
-- types.
--
-- Row: one ExplanationOfBenefit.item of a claim whose type is pharmacy.
-- Grain: (claim_id, claim_line_number, data_source), as Tuva's.
--
-- Filled from FHIR:
--  * Claims with status cancelled or entered-in-error are left out
--    (newest-wins already keeps a claim's final adjustment). A claim meets
--    the patient, care team and lines of its own source.
--  * person_id is the person crosswalk's (one human's claims at several
--    payers share it); member_id the payer's member number (identifier
--    type MB), else the Patient id.
--  * payer and plan are those of claim_coverage: the member's Coverages at
--    the claim's source in force on the claim's start date, named as
--    tuva.eligibility names them (so that claims meet their enrollment);
--    null when none is in force or they disagree.
--  * prescribing_provider_npi and dispensing_provider_npi (the claim's
--    provider: the pharmacy) are claim_providers': what the claim
--    carries, else the Organization or Practitioner it references.
--  * dispensing_date is the line's service date, else the claim's billable
--    period start; ndc_code the line's NDC coding (null when the payer
--    coded the drug otherwise); quantity the line's quantity rounded to a
--    whole number, as Tuva keeps it.
--  * days_supply and refills are the claim's C4BB supportingInfo
--    dayssupply and refillnum; paid_date its payment date; amounts are
--    the line's adjudications, null when not sent.
--  * in_network_flag is claim_line_network's: the line's C4BB benefit
--    payment status, else the claim's.
--  * file_name is the fhirlake run that loaded the claim, file_date its
--    export's transaction date, ingest_datetime when it committed (UTC).
-- Tables are named main.x so that the view binds whatever schema a
-- reader (dbt) makes its default.
CREATE SCHEMA IF NOT EXISTS tuva;
CREATE OR REPLACE VIEW tuva.pharmacy_claim AS
WITH claims AS (
    SELECT *
    FROM main.eob
    WHERE claim_type = 'pharmacy'
      AND coalesce(status, 'active') NOT IN ('cancelled', 'entered-in-error')
)
SELECT
    e.id::VARCHAR                                          AS claim_id,
    i.sequence::INTEGER                                    AS claim_line_number,
    coalesce(pe.person_id, 'p-' || left(sha256(e.data_source || '/' || e.patient_id), 16))::VARCHAR AS person_id,
    coalesce(p.member_id, e.patient_id)::VARCHAR           AS member_id,
    pl.payer::VARCHAR                                      AS payer,
    pl.plan::VARCHAR                                       AS plan,
    cp.prescribing_npi::VARCHAR                            AS prescribing_provider_npi,
    cp.billing_npi::VARCHAR                                AS dispensing_provider_npi,
    coalesce(i.serviced_start, e.billable_period_start)::DATE AS dispensing_date,
    i.ndc::VARCHAR                                         AS ndc_code,
    round(i.quantity)::INTEGER                             AS quantity,
    e.days_supply::INTEGER                                 AS days_supply,
    e.refills::INTEGER                                     AS refills,
    e.payment_date::DATE                                   AS paid_date,
    i.paid::DECIMAL(38, 2)                                 AS paid_amount,
    i.allowed::DECIMAL(38, 2)                              AS allowed_amount,
    i.submitted::DECIMAL(38, 2)                            AS charge_amount,
    i.coinsurance::DECIMAL(38, 2)                          AS coinsurance_amount,
    i.copay::DECIMAL(38, 2)                                AS copayment_amount,
    i.deductible::DECIMAL(38, 2)                           AS deductible_amount,
    nw.in_network_flag::BOOLEAN                            AS in_network_flag,
    e.data_source::VARCHAR                                 AS data_source,
    ('fhirlake run ' || r.run_id)::VARCHAR                 AS file_name,
    timezone('UTC', ru.transaction_time)::DATE             AS file_date,
    timezone('UTC', ru.finished_at)::TIMESTAMP             AS ingest_datetime
FROM claims AS e
JOIN main.eob_item AS i ON i.data_source = e.data_source AND i.eob_id = e.id
LEFT JOIN main.patient AS p ON p.data_source = e.data_source AND p.id = e.patient_id
LEFT JOIN main.person AS pe ON pe.data_source = e.data_source AND pe.patient_id = e.patient_id
LEFT JOIN main.claim_coverage AS pl ON pl.data_source = e.data_source AND pl.claim_id = e.id
LEFT JOIN main.claim_providers AS cp ON cp.data_source = e.data_source AND cp.claim_id = e.id
LEFT JOIN main.claim_line_network AS nw ON nw.data_source = e.data_source AND nw.claim_id = e.id AND nw.claim_line_number = i.sequence
LEFT JOIN main.fhirlake_resources AS r ON r.source = e.data_source AND r.resource_type = 'ExplanationOfBenefit' AND r.id = e.id
LEFT JOIN main.fhirlake_runs AS ru ON ru.run_id = r.run_id;

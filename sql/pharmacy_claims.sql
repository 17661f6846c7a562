-- pharmacy_claims: pharmacy claim lines in the shape of the Tuva Project's
-- pharmacy_claim input.
--
-- Row: one ExplanationOfBenefit.item of a claim whose type is pharmacy.
-- Grain: (data_source, claim_id, claim_line_number): claim ids are unique
-- within one source.
--
-- Caveats:
--  * data_source is the source that loaded the claim; person_id is the
--    person crosswalk's (one human's claims at several payers share it);
--    patient_id and member_id are the source's own. A claim meets the
--    patient, care team and lines of its own source.
--  * Claims with status cancelled or entered-in-error are left out.
--  * dispensing_date is the line's service date, else the claim's billable
--    period start.
--  * ndc_code is the line's NDC coding (null when the payer coded the drug
--    otherwise); quantity is item.quantity.
--  * days_supply and refills are the claim's C4BB supportingInfo
--    dayssupply and refillnum.
--  * prescribing_provider_npi, dispensing_provider_npi (the claim's
--    provider: the pharmacy) and dispensing_provider_tin are
--    claim_providers': what the claim carries, else the Organization or
--    Practitioner it references. dispensing_provider_id holds the
--    pharmacy reference.
--  * Amounts are the line's adjudications; null when not sent.
CREATE OR REPLACE VIEW pharmacy_claims AS
WITH claims AS (
    SELECT *
    FROM main.eob
    WHERE claim_type = 'pharmacy'
      AND coalesce(status, 'active') NOT IN ('cancelled', 'entered-in-error')
)
SELECT
    e.id                                             AS claim_id,
    i.sequence                                       AS claim_line_number,
    coalesce(pe.person_id, 'p-' || left(sha256(e.data_source || '/' || e.patient_id), 16)) AS person_id,
    e.patient_id,
    p.member_id,
    coalesce(i.serviced_start, e.billable_period_start) AS dispensing_date,
    i.ndc                                            AS ndc_code,
    i.quantity,
    e.days_supply,
    e.refills,
    cp.prescribing_npi                               AS prescribing_provider_npi,
    cp.billing_npi                                   AS dispensing_provider_npi,
    cp.billing_tin                                   AS dispensing_provider_tin,
    e.provider_id                                    AS dispensing_provider_id,
    i.paid                                           AS paid_amount,
    i.allowed                                        AS allowed_amount,
    i.submitted                                      AS charge_amount,
    i.coinsurance                                    AS coinsurance_amount,
    i.copay                                          AS copayment_amount,
    i.deductible                                     AS deductible_amount,
    e.data_source
FROM claims AS e
JOIN main.eob_item AS i ON i.data_source = e.data_source AND i.eob_id = e.id
LEFT JOIN main.patient AS p ON p.data_source = e.data_source AND p.id = e.patient_id
LEFT JOIN main.person AS pe ON pe.data_source = e.data_source AND pe.patient_id = e.patient_id
LEFT JOIN main.claim_providers AS cp ON cp.data_source = e.data_source AND cp.claim_id = e.id;

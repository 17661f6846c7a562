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
--  * days_supply is null: the schema does not keep EOB.supportingInfo
--    (C4BB dayssupply). refills likewise are not available.
--  * prescribing_provider_npi is the care-team member with role
--    prescribing (lowest sequence). The schema keeps no NPI for
--    EOB.provider, so dispensing_provider_npi is null and
--    dispensing_provider_id holds the pharmacy reference.
--  * Amounts are the line's adjudications; null when not sent.
CREATE OR REPLACE VIEW pharmacy_claims AS
WITH claims AS (
    SELECT *
    FROM eob
    WHERE claim_type = 'pharmacy'
      AND coalesce(status, 'active') NOT IN ('cancelled', 'entered-in-error')
),
prescriber AS (
    SELECT data_source, eob_id, arg_min(provider_npi, sequence) AS npi
    FROM eob_care_team
    WHERE role_code = 'prescribing' AND provider_npi IS NOT NULL
    GROUP BY data_source, eob_id
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
    CAST(NULL AS INTEGER)                            AS days_supply,
    r.npi                                            AS prescribing_provider_npi,
    CAST(NULL AS VARCHAR)                            AS dispensing_provider_npi,
    e.provider_id                                    AS dispensing_provider_id,
    i.paid                                           AS paid_amount,
    i.allowed                                        AS allowed_amount,
    i.submitted                                      AS charge_amount,
    i.coinsurance                                    AS coinsurance_amount,
    i.copay                                          AS copayment_amount,
    i.deductible                                     AS deductible_amount,
    e.data_source
FROM claims AS e
JOIN eob_item AS i ON i.data_source = e.data_source AND i.eob_id = e.id
LEFT JOIN patient AS p ON p.data_source = e.data_source AND p.id = e.patient_id
LEFT JOIN person AS pe ON pe.data_source = e.data_source AND pe.patient_id = e.patient_id
LEFT JOIN prescriber AS r ON r.data_source = e.data_source AND r.eob_id = e.id;

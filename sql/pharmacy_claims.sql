-- pharmacy_claims: pharmacy claim lines, tuva.pharmacy_claim with the
-- source's ids, the exact quantity and the pharmacy's TIN beside Tuva's
-- columns.
--
-- Row: one ExplanationOfBenefit.item of a pharmacy claim: the rows of
-- tuva.pharmacy_claim.
-- Grain: (data_source, claim_id, claim_line_number): claim ids are unique
-- within one source.
--
-- Caveats:
--  * Every column named as in Tuva's pharmacy_claim is tuva.pharmacy_claim's
--    (see its rules: cancelled claims left out, NPIs from claim_providers),
--    except quantity, which is the line's as sent, not rounded.
--  * patient_id is the source's Patient id and member_id the payer's
--    member number (identifier type MB), null when the Patient has none.
--  * dispensing_provider_tin is claim_providers' billing TIN, and
--    dispensing_provider_id the claim's provider reference (the pharmacy).
CREATE OR REPLACE VIEW pharmacy_claims AS
SELECT
    t.claim_id,
    t.claim_line_number,
    t.person_id,
    e.patient_id,
    p.member_id,
    t.dispensing_date,
    t.ndc_code,
    i.quantity,
    t.days_supply,
    t.refills,
    t.prescribing_provider_npi,
    t.dispensing_provider_npi,
    cp.billing_tin                                   AS dispensing_provider_tin,
    cp.billing_provider_id                           AS dispensing_provider_id,
    t.paid_amount,
    t.allowed_amount,
    t.charge_amount,
    t.coinsurance_amount,
    t.copayment_amount,
    t.deductible_amount,
    t.data_source
FROM tuva.pharmacy_claim AS t
JOIN main.eob AS e ON e.data_source = t.data_source AND e.id = t.claim_id
JOIN main.eob_item AS i ON i.data_source = t.data_source AND i.eob_id = t.claim_id AND i.sequence = t.claim_line_number
LEFT JOIN main.patient AS p ON p.data_source = e.data_source AND p.id = e.patient_id
LEFT JOIN main.claim_providers AS cp ON cp.data_source = t.data_source AND cp.claim_id = t.claim_id;

-- tuva.pharmacy_claim: the Tuva Project's input-layer pharmacy_claim, one
-- row per line of a pharmacy claim, its 25 columns in Tuva's order and
-- types; built on pharmacy_claims (see its caveats).
--
-- Grain: (claim_id, claim_line_number, data_source), as Tuva's.
--
-- Filled from FHIR:
--  * payer and plan are those of claim_coverage: the member's Coverages at
--    the claim's source in force on the claim's start date, named as
--    tuva.eligibility names them (so that claims meet their enrollment);
--    null when none is in force or they disagree.
--  * dispensing_provider_npi is the claim's provider's (claim_providers:
--    what the claim carries, else the Organization it references);
--    paid_date is the claim's payment date; days_supply and refills are
--    its C4BB supportingInfo dayssupply and refillnum.
--  * in_network_flag is claim_line_network's: the line's C4BB benefit
--    payment status, else the claim's.
--  * quantity is the line's quantity rounded to a whole number, as Tuva
--    keeps it; amounts are the line's adjudications.
--  * file_name is the fhirlake run that loaded the claim, file_date its
--    export's transaction date, ingest_datetime when it committed (UTC).
-- Tables are named main.x so that the view binds whatever schema a
-- reader (dbt) makes its default.
CREATE SCHEMA IF NOT EXISTS tuva;
CREATE OR REPLACE VIEW tuva.pharmacy_claim AS
SELECT
    pc.claim_id::VARCHAR                                   AS claim_id,
    pc.claim_line_number::INTEGER                          AS claim_line_number,
    pc.person_id::VARCHAR                                  AS person_id,
    coalesce(pc.member_id, pc.patient_id)::VARCHAR         AS member_id,
    pl.payer::VARCHAR                                      AS payer,
    pl.plan::VARCHAR                                       AS plan,
    pc.prescribing_provider_npi::VARCHAR                   AS prescribing_provider_npi,
    pc.dispensing_provider_npi::VARCHAR                    AS dispensing_provider_npi,
    pc.dispensing_date::DATE                               AS dispensing_date,
    pc.ndc_code::VARCHAR                                   AS ndc_code,
    round(pc.quantity)::INTEGER                            AS quantity,
    pc.days_supply::INTEGER                                AS days_supply,
    pc.refills::INTEGER                                    AS refills,
    e.payment_date::DATE                                   AS paid_date,
    pc.paid_amount::DECIMAL(38, 2)                         AS paid_amount,
    pc.allowed_amount::DECIMAL(38, 2)                      AS allowed_amount,
    pc.charge_amount::DECIMAL(38, 2)                       AS charge_amount,
    pc.coinsurance_amount::DECIMAL(38, 2)                  AS coinsurance_amount,
    pc.copayment_amount::DECIMAL(38, 2)                    AS copayment_amount,
    pc.deductible_amount::DECIMAL(38, 2)                   AS deductible_amount,
    nw.in_network_flag::BOOLEAN                            AS in_network_flag,
    pc.data_source::VARCHAR                                AS data_source,
    ('fhirlake run ' || r.run_id)::VARCHAR                 AS file_name,
    timezone('UTC', ru.transaction_time)::DATE             AS file_date,
    timezone('UTC', ru.finished_at)::TIMESTAMP             AS ingest_datetime
FROM main.pharmacy_claims AS pc
JOIN main.eob AS e ON e.data_source = pc.data_source AND e.id = pc.claim_id
LEFT JOIN main.claim_coverage AS pl ON pl.data_source = pc.data_source AND pl.claim_id = pc.claim_id
LEFT JOIN main.claim_line_network AS nw ON nw.data_source = pc.data_source AND nw.claim_id = pc.claim_id AND nw.claim_line_number = pc.claim_line_number
LEFT JOIN main.fhirlake_resources AS r ON r.source = pc.data_source AND r.resource_type = 'ExplanationOfBenefit' AND r.id = pc.claim_id
LEFT JOIN main.fhirlake_runs AS ru ON ru.run_id = r.run_id;

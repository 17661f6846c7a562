-- claim_line_network: whether each claim line was paid in network, in one
-- place for tuva.medical_claim and tuva.pharmacy_claim.
--
-- Row: one claim line (an ExplanationOfBenefit.item) of any claim type.
-- Grain: (data_source, claim_id, claim_line_number).
--
-- Rule (CARIN Blue Button's benefit payment status): the line's own status
-- (an item.adjudication whose category is innetwork or outofnetwork, as
-- C4BB 1.x sends it, or whose category is benefitpaymentstatus with that
-- reason, as C4BB 2.x does), else the claim's (the eob view's
-- network_status, from its totals or adjudications, where C4BB puts it on
-- institutional and pharmacy claims). in_network_flag is true in network,
-- false out of network, null when neither is sent, the status is other, or
-- the line says both.
CREATE OR REPLACE VIEW claim_line_network AS
WITH line_status AS (
    SELECT data_source, eob_id, item_sequence,
        bool_or(status = 'innetwork')    AS in_network,
        bool_or(status = 'outofnetwork') AS out_of_network
    FROM (
        SELECT data_source, eob_id, item_sequence,
            CASE WHEN category_code = 'benefitpaymentstatus' THEN reason_code ELSE category_code END AS status
        FROM main.eob_item_adjudication
        WHERE category_system = 'http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBPayerAdjudicationStatus'
           OR category_code = 'benefitpaymentstatus'
    )
    WHERE status IN ('innetwork', 'outofnetwork')
    GROUP BY ALL
)
SELECT
    i.data_source,
    i.eob_id   AS claim_id,
    i.sequence AS claim_line_number,
    CASE WHEN l.in_network AND NOT l.out_of_network THEN true
         WHEN l.out_of_network AND NOT l.in_network THEN false
         WHEN l.eob_id IS NULL AND e.network_status = 'innetwork' THEN true
         WHEN l.eob_id IS NULL AND e.network_status = 'outofnetwork' THEN false
    END        AS in_network_flag
FROM main.eob_item AS i
JOIN main.eob AS e ON e.data_source = i.data_source AND e.id = i.eob_id
LEFT JOIN line_status AS l ON l.data_source = i.data_source AND l.eob_id = i.eob_id AND l.item_sequence = i.sequence;

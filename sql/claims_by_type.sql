-- claims_by_type: claims, distinct members, claim lines and paid amounts per
-- claim type (CMS/HL7 claim-type code: institutional, professional,
-- pharmacy, ...). The demo prints it.
--
-- Row: one claim type. Grain: claim_type.
--
-- Caveats: every EOB counts, whatever its status. total_paid is the EOB's
-- paid total (category benefit or paidtoprovider); when an EOB carries no
-- such total (CMS DPC sends line amounts only), the sum of its lines' paid
-- amounts stands in. claim_lines counts every item, revenue code 0001
-- total lines included.
CREATE OR REPLACE VIEW claims_by_type AS
SELECT
    e.claim_type,
    count(*)                              AS claims,
    count(DISTINCT e.patient_id)          AS members,
    sum(coalesce(i.lines, 0))             AS claim_lines,
    sum(coalesce(e.total_paid, i.paid))   AS total_paid
FROM eob AS e
LEFT JOIN (SELECT eob_id, count(*) AS lines, sum(paid) AS paid FROM eob_item GROUP BY eob_id) AS i
       ON i.eob_id = e.id
GROUP BY e.claim_type
ORDER BY claims DESC, e.claim_type;

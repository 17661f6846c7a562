-- claims_by_type: claims, distinct members, claim lines and paid amounts per
-- claim type (CMS/HL7 claim-type code: institutional, professional,
-- pharmacy, ...). The demo prints it.
CREATE OR REPLACE VIEW claims_by_type AS
SELECT
    e.claim_type,
    count(*)                     AS claims,
    count(DISTINCT e.patient_id) AS members,
    sum(coalesce(i.lines, 0))    AS claim_lines,
    sum(e.total_paid)            AS total_paid
FROM eob AS e
LEFT JOIN (SELECT eob_id, count(*) AS lines FROM eob_item GROUP BY eob_id) AS i
       ON i.eob_id = e.id
GROUP BY e.claim_type
ORDER BY claims DESC, e.claim_type;

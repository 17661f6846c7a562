-- claims_by_type: claims, distinct members, claim lines and paid amounts per
-- claim type (CMS/HL7 claim-type code: institutional, professional,
-- pharmacy, ...), over every source. The demo prints it.
--
-- Row: one claim type. Grain: claim_type.
--
-- Caveats: every EOB counts, whatever its status. members counts persons
-- (the person crosswalk links one human's records at several sources);
-- a claim's lines are those of its own source. total_paid is the EOB's
-- paid total (category benefit or paidtoprovider); when an EOB carries no
-- such total (CMS sends none), its payment amount (payment.amount), else
-- the sum of its lines' paid amounts stands in. claim_lines counts every
-- item, revenue code 0001 total lines included.
CREATE OR REPLACE VIEW claims_by_type AS
SELECT
    e.claim_type,
    count(*)                              AS claims,
    count(DISTINCT coalesce(pe.person_id, 'p-' || left(sha256(e.data_source || '/' || e.patient_id), 16))) AS members,
    sum(coalesce(i.lines, 0))             AS claim_lines,
    sum(coalesce(e.total_paid, e.payment_amount, i.paid)) AS total_paid
FROM eob AS e
LEFT JOIN (SELECT data_source, eob_id, count(*) AS lines, sum(paid) AS paid FROM eob_item GROUP BY ALL) AS i
       ON i.data_source = e.data_source AND i.eob_id = e.id
LEFT JOIN person AS pe ON pe.data_source = e.data_source AND pe.patient_id = e.patient_id
GROUP BY e.claim_type
ORDER BY claims DESC, e.claim_type;

-- member_roster: the attributed members, one row per person, with
-- demographics and the attribution that speaks for them.
--
-- Row: one person (see the person crosswalk) with at least one attribution
-- at any source; every column comes from that person's chosen attribution
-- in member_attribution: an active one before an ended one, then the
-- latest attribution_start, then the most recent data date, then
-- data_source, group_id and patient_id. A member who switched payers, or
-- is attributed at two sources, appears once.
-- Grain: person_id.
--
-- Caveats:
--  * sources lists every source that attributes the person, and
--    attributions counts their attribution rows; the other attributions are
--    in member_attribution.
--  * See member_attribution for how coverage, age and attribution_active
--    are found, and what as_of_date means.
CREATE OR REPLACE VIEW member_roster AS
WITH ranked AS (
    SELECT a.*,
           list_sort(list(DISTINCT a.data_source) OVER (PARTITION BY a.person_id)) AS sources,
           count(*) OVER (PARTITION BY a.person_id)                                AS attributions,
           row_number() OVER (
               PARTITION BY a.person_id
               ORDER BY a.attribution_active DESC, a.attribution_start DESC NULLS LAST, a.as_of_date DESC,
                        a.data_source, a.group_id, a.patient_id
           ) AS rn
    FROM member_attribution AS a
)
SELECT * EXCLUDE (rn)
FROM ranked
WHERE rn = 1;

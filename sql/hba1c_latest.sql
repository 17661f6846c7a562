-- hba1c_latest: each member's most recent HbA1c result.
--
-- Row: one member with at least one HbA1c result; the latest one.
-- Grain: patient_id.
--
-- Rule: Observations coded LOINC 4548-4 (HbA1c/Hemoglobin.total in Blood),
-- 4549-2 (by electrophoresis) or 17856-6 (by HPLC), status final, amended
-- or corrected (or not given), with a numeric value. Latest by
-- effective_start; ties by meta_last_updated, then the highest id.
--
-- Caveats:
--  * Not limited to a measurement year: filter effective_date yourself.
--  * effective_date is the UTC date of effective_start.
--  * value is the number as sent; unit is normally %. HEDIS bands are
--    given for convenience: below_8 (controlled, < 8.0) and above_9 (poor
--    control, > 9.0); they assume a percent value and are null otherwise.
CREATE OR REPLACE VIEW hba1c_latest AS
WITH results AS (
    SELECT *,
           row_number() OVER (
               PARTITION BY patient_id
               ORDER BY effective_start DESC, meta_last_updated DESC NULLS LAST, id DESC
           ) AS rn
    FROM observation
    WHERE code IN ('4548-4', '4549-2', '17856-6')
      AND coalesce(status, 'final') IN ('final', 'amended', 'corrected')
      AND value_quantity IS NOT NULL
      AND effective_start IS NOT NULL
      AND patient_id IS NOT NULL
)
SELECT
    patient_id,
    id                                       AS observation_id,
    code,
    value_quantity                           AS value,
    value_unit                               AS unit,
    timezone('UTC', effective_start)::DATE   AS effective_date,
    effective_start,
    CASE WHEN value_unit = '%' THEN value_quantity < 8 END AS below_8,
    CASE WHEN value_unit = '%' THEN value_quantity > 9 END AS above_9
FROM results
WHERE rn = 1;

-- hba1c_latest: each member's most recent HbA1c result, per source.
--
-- Row: one member (a Patient of one source) with at least one HbA1c
-- result; the latest one.
-- Grain: (data_source, patient_id). person_id links the rows of one human
-- at several sources: take the latest per person_id for a cross-payer
-- view.
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
               PARTITION BY data_source, patient_id
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
    r.data_source,
    r.patient_id,
    coalesce(pe.person_id, 'p-' || left(sha256(r.data_source || '/' || r.patient_id), 16)) AS person_id,
    r.id                                       AS observation_id,
    r.code,
    r.value_quantity                           AS value,
    r.value_unit                               AS unit,
    timezone('UTC', r.effective_start)::DATE   AS effective_date,
    r.effective_start,
    CASE WHEN r.value_unit = '%' THEN r.value_quantity < 8 END AS below_8,
    CASE WHEN r.value_unit = '%' THEN r.value_quantity > 9 END AS above_9
FROM results AS r
LEFT JOIN person AS pe ON pe.data_source = r.data_source AND pe.patient_id = r.patient_id
WHERE r.rn = 1;

-- bp_latest: each member's most recent blood pressure, and whether it is
-- controlled, per source.
--
-- Row: one member (a Patient of one source) with at least one date on
-- which both a systolic and a diastolic reading exist; the latest such
-- date.
-- Grain: (data_source, patient_id). person_id links the rows of one human
-- at several sources.
--
-- Rule (after HEDIS CBP): readings are the systolic (LOINC 8480-6) and
-- diastolic (8462-4) components of blood pressure panels (85354-9, or any
-- panel carrying them) plus standalone 8480-6 / 8462-4 Observations, status
-- final, amended or corrected (or not given), with a value. Per member the
-- latest UTC date with both kinds is taken; when it has several readings,
-- systolic is the lowest systolic and diastolic the lowest diastolic of
-- that date. controlled: systolic < 140 and diastolic < 90.
--
-- Caveats:
--  * Not limited to a measurement year, and no exclusions (acute inpatient
--    or ED readings, patient-reported readings) are applied.
--  * Values are taken as mm[Hg] whatever unit is sent.
--  * reading_date is the UTC date of the observation's effective_start.
--  * A panel's components are those of the same source.
CREATE OR REPLACE VIEW bp_latest AS
WITH obs AS (
    SELECT data_source, id, patient_id, timezone('UTC', effective_start)::DATE AS reading_date,
           code, value_quantity
    FROM observation
    WHERE coalesce(status, 'final') IN ('final', 'amended', 'corrected')
      AND effective_start IS NOT NULL
      AND patient_id IS NOT NULL
),
readings AS (
    SELECT o.data_source, o.id, o.patient_id, o.reading_date, c.code, c.value_quantity AS value
    FROM obs AS o
    JOIN observation_component AS c ON c.data_source = o.data_source AND c.observation_id = o.id
    WHERE c.code IN ('8480-6', '8462-4') AND c.value_quantity IS NOT NULL
    UNION ALL
    SELECT data_source, id, patient_id, reading_date, code, value_quantity
    FROM obs
    WHERE code IN ('8480-6', '8462-4') AND value_quantity IS NOT NULL
),
days AS (
    SELECT data_source, patient_id, reading_date,
           min(value) FILTER (WHERE code = '8480-6') AS systolic,
           min(value) FILTER (WHERE code = '8462-4') AS diastolic,
           count(DISTINCT id)                        AS observation_count,
           row_number() OVER (PARTITION BY data_source, patient_id ORDER BY reading_date DESC) AS rn
    FROM readings
    GROUP BY data_source, patient_id, reading_date
    HAVING count(*) FILTER (WHERE code = '8480-6') > 0
       AND count(*) FILTER (WHERE code = '8462-4') > 0
)
SELECT
    d.data_source,
    d.patient_id,
    coalesce(pe.person_id, 'p-' || left(sha256(d.data_source || '/' || d.patient_id), 16)) AS person_id,
    d.reading_date,
    d.systolic,
    d.diastolic,
    d.systolic < 140 AND d.diastolic < 90 AS controlled,
    d.observation_count
FROM days AS d
LEFT JOIN person AS pe ON pe.data_source = d.data_source AND pe.patient_id = d.patient_id
WHERE d.rn = 1;

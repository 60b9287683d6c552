-- schedule: */15 * * * *
-- materialized: incremental
-- unique_key: source_system, encounter_id, result_id
-- incremental_on: raw.labs, raw.hl7_observations, curated.fhir_observation
-- optional: raw.labs, raw.hl7_observations, raw.hl7_patient_events, curated.fhir_observation
-- description: Lab results from every feed (flat-file extracts, HL7 v2 ORU OBX, FHIR laboratory Observation): LOINC codes checked, units as UCUM codes, glucose also in mmol/L, physiologically implausible values flagged with a reason.
SELECT source_system, encounter_id, result_id, mrn, loinc_code,
       loinc_invalid_reason(loinc_code) AS loinc_invalid_reason,
       test_name, value, unit AS unit_as_sent,
       ucum_code(unit) AS unit,
       CASE WHEN unit IS NOT NULL AND ucum_code(unit) IS NULL THEN 'unit not recognised as UCUM' END AS unit_invalid_reason,
       CASE WHEN loinc_code IN ('2345-7', '2339-0', '15074-8', '41653-7', '1558-6')
            THEN ucum_convert(value, unit, 'mmol/L', loinc_code) END AS glucose_mmol_l,
       ref_low, ref_high, abnormal_flag, collected_at,
       CASE
           WHEN value IS NULL THEN NULL
           WHEN value < 0 THEN 'negative value'
           WHEN loinc_code IN ('2345-7', '2339-0') AND ucum_convert(value, unit, 'mg/dL', loinc_code) > 2000 THEN 'glucose above 2000 mg/dL'
           WHEN loinc_code = '2160-0' AND ucum_convert(value, unit, 'mg/dL', loinc_code) > 40 THEN 'creatinine above 40 mg/dL'
           WHEN loinc_code = '718-7' AND (value < 1 OR value > 30) THEN 'hemoglobin outside 1-30 g/dL'
           WHEN loinc_code = '2823-3' AND (value < 1 OR value > 12) THEN 'potassium outside 1-12 mmol/L'
           WHEN loinc_code = '2951-2' AND (value < 90 OR value > 200) THEN 'sodium outside 90-200 mmol/L'
       END AS implausible_reason,
       feed
FROM (
    SELECT *,
           row_number() OVER (PARTITION BY source_system, encounter_id, result_id ORDER BY loaded_at DESC, line DESC) AS row_rank
    FROM (
    -- A result is its test, time and value: a resent row is the same result, while two tests
    -- of one kind taken in the same minute are two.
    SELECT *, concat_ws('|', loinc_code, CAST(collected_at AS VARCHAR), coalesce(CAST(value AS VARCHAR), '-')) AS result_id
    FROM (
        SELECT source_system,
               encounter_id,
               mrn,
               loinc_code,
               test_name,
               CAST(value AS DOUBLE) AS value,
               unit,
               CAST(ref_low AS DOUBLE) AS ref_low,
               CAST(ref_high AS DOUBLE) AS ref_high,
               abnormal_flag,
               arrow_cast(collected_at, 'Timestamp(Microsecond, Some("UTC"))') AS collected_at,
               'csv' AS feed,
               _loaded_at AS loaded_at,
               _source_line AS line
        FROM raw.labs
        UNION ALL
        -- OBX-7 "low-high"; an empty OBX-8 is normal (N).
        SELECT coalesce(e.patient_id_authority, o.sending_facility), o.visit_number, o.patient_id,
               o.code, o.code_text, o.value_numeric, o.units,
               TRY_CAST(split_part(o.reference_range, '-', 1) AS DOUBLE),
               TRY_CAST(split_part(o.reference_range, '-', 2) AS DOUBLE),
               CASE WHEN coalesce(o.abnormal_flags, '') = '' THEN 'N' ELSE o.abnormal_flags END,
               o.observation_time, 'hl7', o._loaded_at, o._source_line
        FROM raw.hl7_observations o
        JOIN raw.hl7_patient_events e ON e.control_id = o.control_id AND e.sending_facility = o.sending_facility
        WHERE o.coding_system IN ('LN', 'LOINC') AND o.value_type IN ('NM', 'SN')
        UNION ALL
        SELECT coalesce(source_system, 'FHIR'), encounter_id, patient_id, code, display, value_quantity, unit,
               reference_low, reference_high, coalesce(interpretation, 'N'),
               arrow_cast(effective, 'Timestamp(Microsecond, Some("UTC"))'),
               'fhir', _loaded_at, CAST(0 AS BIGINT)
        FROM curated.fhir_observation
        WHERE category = 'laboratory' AND code_system = 'http://loinc.org' AND value_quantity IS NOT NULL
    ) AS feeds
    ) AS results
) AS ranked
WHERE row_rank = 1

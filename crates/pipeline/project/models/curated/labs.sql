-- schedule: */15 * * * *
-- materialized: incremental
-- unique_key: source_system, encounter_id, loinc_code, collected_at
-- incremental_on: raw.labs
-- description: Lab results: LOINC codes checked, units as UCUM codes, glucose also in mmol/L, physiologically implausible values flagged with a reason.
SELECT source_system, encounter_id, mrn, loinc_code,
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
       END AS implausible_reason
FROM (
    SELECT *,
           row_number() OVER (PARTITION BY source_system, encounter_id, loinc_code, collected_at ORDER BY _loaded_at DESC, _source_line DESC) AS row_rank
    FROM raw.labs
) AS ranked
WHERE row_rank = 1

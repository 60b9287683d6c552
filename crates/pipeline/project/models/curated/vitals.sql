-- schedule: */5 * * * *
-- materialized: incremental
-- unique_key: event_id
-- incremental_on: raw.vitals
-- optional: raw.vitals
-- description: Bedside monitor vital signs, one row per event: the kind as a LOINC code, units as UCUM codes, temperatures in Cel (from [degF]), physiologically implausible values flagged with a reason.
SELECT event_id, source_system, encounter_id, mrn, device_id, measured_at, type AS vital_type,
       loinc_code, value_as_sent, unit_as_sent,
       CASE WHEN type = 'temperature' THEN ucum_convert(value_as_sent, unit_as_sent, 'Cel')
            WHEN type = 'weight' THEN ucum_convert(value_as_sent, unit_as_sent, 'kg')
            ELSE value_as_sent END AS value,
       CASE WHEN type = 'temperature' THEN 'Cel' WHEN type = 'weight' THEN 'kg'
            ELSE ucum_code(unit_as_sent) END AS unit,
       CASE WHEN loinc_code IS NULL THEN 'vital sign type not recognised'
            WHEN unit_as_sent IS NOT NULL AND ucum_code(unit_as_sent) IS NULL THEN 'unit not recognised as UCUM' END AS invalid_reason,
       CASE
           WHEN value_as_sent IS NULL THEN NULL
           WHEN type = 'heart_rate' AND (value_as_sent < 20 OR value_as_sent > 300) THEN 'heart rate outside 20-300 /min'
           WHEN type = 'spo2' AND (value_as_sent < 50 OR value_as_sent > 100) THEN 'SpO2 outside 50-100 %'
           WHEN type = 'bp_systolic' AND (value_as_sent < 40 OR value_as_sent > 300) THEN 'systolic pressure outside 40-300 mm[Hg]'
           WHEN type = 'bp_diastolic' AND (value_as_sent < 20 OR value_as_sent > 200) THEN 'diastolic pressure outside 20-200 mm[Hg]'
           WHEN type = 'respiratory_rate' AND (value_as_sent < 4 OR value_as_sent > 80) THEN 'respiratory rate outside 4-80 /min'
           WHEN type = 'temperature' AND (ucum_convert(value_as_sent, unit_as_sent, 'Cel') < 25
                                          OR ucum_convert(value_as_sent, unit_as_sent, 'Cel') > 45) THEN 'temperature outside 25-45 Cel'
       END AS implausible_reason
FROM (
    SELECT event_id, source_system, encounter_id, mrn, device_id,
           arrow_cast(measured_at, 'Timestamp(Microsecond, Some("UTC"))') AS measured_at,
           type,
           CASE type WHEN 'heart_rate' THEN '8867-4' WHEN 'spo2' THEN '59408-5'
                WHEN 'bp_systolic' THEN '8480-6' WHEN 'bp_diastolic' THEN '8462-4'
                WHEN 'temperature' THEN '8310-5' WHEN 'respiratory_rate' THEN '9279-1'
                WHEN 'weight' THEN '29463-7' WHEN 'height' THEN '8302-2' END AS loinc_code,
           CAST(value AS DOUBLE) AS value_as_sent,
           unit AS unit_as_sent,
           row_number() OVER (PARTITION BY event_id ORDER BY _loaded_at DESC, _source_line DESC) AS row_rank
    FROM raw.vitals
    WHERE event_id IS NOT NULL
) AS events
WHERE row_rank = 1

-- optional: curated.labs, curated.vitals
-- description: Observations per person and encounter: lab results (curated.labs) and bedside vital signs (curated.vitals), standardised, with their flags carried.
SELECT 'laboratory' AS category, l.source_system, l.encounter_id, x.person_key, l.mrn, l.loinc_code, l.test_name,
       l.value, l.unit, l.glucose_mmol_l, l.ref_low, l.ref_high, l.abnormal_flag, l.collected_at AS observed_at,
       l.loinc_invalid_reason, l.unit_invalid_reason, l.implausible_reason,
       CAST(NULL AS VARCHAR) AS device_id, l.feed
FROM curated.labs l
LEFT JOIN curated.person_xref x ON x.source = l.source_system AND x.record_id = l.mrn
UNION ALL
SELECT 'vital-signs', v.source_system, v.encounter_id, x.person_key, v.mrn, v.loinc_code, v.vital_type,
       v.value, v.unit, CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE), CAST(NULL AS VARCHAR), v.measured_at,
       CASE WHEN v.loinc_code IS NULL THEN v.invalid_reason END,
       CASE WHEN v.loinc_code IS NOT NULL THEN v.invalid_reason END,
       v.implausible_reason, v.device_id, 'device'
FROM curated.vitals v
LEFT JOIN curated.person_xref x ON x.source = v.source_system AND x.record_id = v.mrn

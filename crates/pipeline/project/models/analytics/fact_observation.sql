-- description: Lab results per person and encounter, standardised (see curated.labs), with the flags carried.
SELECT l.source_system, l.encounter_id, x.person_key, l.mrn, l.loinc_code, l.test_name,
       l.value, l.unit, l.glucose_mmol_l, l.ref_low, l.ref_high, l.abnormal_flag, l.collected_at,
       l.loinc_invalid_reason, l.unit_invalid_reason, l.implausible_reason
FROM curated.labs l
LEFT JOIN curated.person_xref x ON x.source = l.source_system AND x.record_id = l.mrn

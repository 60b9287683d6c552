-- description: Claims with their person (through the encounter), payer, facility, principal diagnosis (ICD-10-CM, normalised) and charges.
SELECT c.claim_id, c.encounter_id, e.person_key, c.payer_id, c.member_id, c.billing_npi, c.facility_id,
       c.service_from, c.service_to,
       icd10_normalize(c.principal_dx) AS principal_diagnosis,
       icd10_invalid_reason(c.principal_dx) AS principal_diagnosis_invalid_reason,
       c.total_charge, c.claim_status
FROM (SELECT *, row_number() OVER (PARTITION BY claim_id ORDER BY _loaded_at DESC, _source_line DESC) AS r FROM raw.claims) AS c
LEFT JOIN analytics.fact_encounter e ON e.encounter_id = c.encounter_id
WHERE c.r = 1

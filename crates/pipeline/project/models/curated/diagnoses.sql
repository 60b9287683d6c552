-- schedule: */15 * * * *
-- materialized: incremental
-- unique_key: source_system, encounter_id, diagnosis_id
-- incremental_on: raw.diagnoses, raw.hl7_diagnoses, curated.fhir_condition
-- optional: raw.diagnoses, raw.hl7_diagnoses, raw.hl7_patient_events, curated.fhir_condition, curated.fhir_encounter
-- description: One row per diagnosis code per encounter (diagnosis_id: the code as sent, upper case, without its dot) from every feed (flat-file extracts, HL7 v2 DG1, FHIR Condition) with ICD-10-CM codes normalised (E11.9 form) and invalid ones flagged with the reason, never dropped.
SELECT source_system, encounter_id, diagnosis_id, seq,
       icd10_code AS icd10_code_as_sent,
       icd10_normalize(icd10_code) AS icd10_code,
       icd10_invalid_reason(icd10_code) AS icd10_invalid_reason,
       icd10_chapter(icd10_code) AS icd10_chapter,
       substr(icd10_normalize(icd10_code), 1, 3) AS icd10_category,
       description,
       is_primary,
       feed
FROM (
    SELECT *,
           row_number() OVER (PARTITION BY source_system, encounter_id, diagnosis_id ORDER BY loaded_at DESC, final_rank, line DESC) AS row_rank
    FROM (
        SELECT source_system,
               encounter_id,
               coalesce(upper(replace(trim(icd10_code), '.', '')), 'SEQ' || CAST(seq AS VARCHAR)) AS diagnosis_id,
               CAST(seq AS INT) AS seq,
               icd10_code,
               description,
               CAST(is_primary AS BOOLEAN) AS is_primary,
               'csv' AS feed,
               _loaded_at AS loaded_at,
               0 AS final_rank,
               _source_line AS line
        FROM raw.diagnoses
        UNION ALL
        -- The discharge's final diagnoses (DG1-6 F) over the admitting one (A) of the same set id.
        SELECT coalesce(e.patient_id_authority, d.sending_facility), d.visit_number,
               upper(replace(trim(d.code), '.', '')),
               TRY_CAST(d.set_id AS INT), d.code, d.description,
               coalesce(d.priority = '1', d.set_id = '1'),
               'hl7', d._loaded_at, CASE WHEN d.diagnosis_type = 'F' THEN 0 ELSE 1 END, d._source_line
        FROM raw.hl7_diagnoses d
        JOIN raw.hl7_patient_events e ON e.control_id = d.control_id AND e.sending_facility = d.sending_facility
        WHERE d.visit_number IS NOT NULL AND d.code IS NOT NULL AND (d.coding_system IS NULL OR d.coding_system IN ('I10', 'ICD10CM', 'ICD-10-CM'))
        UNION ALL
        -- The encounter's reason is its primary diagnosis.
        SELECT coalesce(c.source_system, 'FHIR'), c.encounter_id, upper(replace(trim(c.code), '.', '')),
               CAST(NULL AS INT), c.code, c.display,
               c.code = e.reason_code,
               'fhir', c._loaded_at, 0, CAST(0 AS BIGINT)
        FROM curated.fhir_condition c
        LEFT JOIN curated.fhir_encounter e ON e.id = c.encounter_id
        WHERE c.encounter_id IS NOT NULL AND c.code IS NOT NULL
          AND (c.code_system IS NULL OR c.code_system = 'http://hl7.org/fhir/sid/icd-10-cm')
    ) AS feeds
) AS ranked
WHERE row_rank = 1

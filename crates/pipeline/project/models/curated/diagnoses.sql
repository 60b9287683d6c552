-- schedule: */15 * * * *
-- materialized: incremental
-- unique_key: source_system, encounter_id, seq
-- incremental_on: raw.diagnoses
-- description: Diagnoses with ICD-10-CM codes normalised (E11.9 form) and invalid ones flagged with the reason, never dropped.
SELECT source_system, encounter_id, seq,
       icd10_code AS icd10_code_as_sent,
       icd10_normalize(icd10_code) AS icd10_code,
       icd10_invalid_reason(icd10_code) AS icd10_invalid_reason,
       icd10_chapter(icd10_code) AS icd10_chapter,
       substr(icd10_normalize(icd10_code), 1, 3) AS icd10_category,
       description,
       CAST(is_primary AS BOOLEAN) AS is_primary
FROM (
    SELECT *,
           row_number() OVER (PARTITION BY source_system, encounter_id, seq ORDER BY _loaded_at DESC, _source_line DESC) AS row_rank
    FROM raw.diagnoses
) AS ranked
WHERE row_rank = 1

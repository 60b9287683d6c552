-- schedule: */15 * * * *
-- materialized: incremental
-- unique_key: source_system, encounter_id
-- incremental_on: raw.encounters
-- description: One row per encounter: resent rows removed, the latest load of each encounter kept.
SELECT source_system, encounter_id, mrn, facility_id, encounter_class, admit_time, discharge_time,
       attending_npi, admit_reason_code, discharge_disposition, payer_id
FROM (
    SELECT *,
           row_number() OVER (PARTITION BY source_system, encounter_id ORDER BY _loaded_at DESC, _source_line DESC) AS row_rank
    FROM raw.encounters
) AS ranked
WHERE row_rank = 1

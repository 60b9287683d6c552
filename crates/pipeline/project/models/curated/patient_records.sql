-- schedule: */15 * * * *
-- description: Every patient registration in every source system, latest version of each, with the person fields the master patient index compares.
SELECT source, record_id, updated_at, first_name, last_name, sex, birth_date, national_id,
       street, city, state, zip, phone
FROM (
    SELECT source_system AS source,
           mrn AS record_id,
           updated_at,
           first_name,
           last_name,
           sex,
           birth_date,
           ssn AS national_id,
           address AS street,
           city,
           state,
           CAST(zip AS VARCHAR) AS zip,
           phone,
           row_number() OVER (PARTITION BY source_system, mrn ORDER BY updated_at DESC, _source_line DESC) AS version_rank
    FROM raw.patients
) AS ranked
WHERE version_rank = 1

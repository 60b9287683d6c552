-- schedule: */15 * * * *
-- optional: raw.patients, raw.hl7_patient_events, curated.fhir_patient, raw.x12_claims
-- description: Every patient registration in every source system, latest version of each, with the person fields the master patient index compares: flat-file extracts, HL7 v2 PID segments, FHIR Patient resources and the patients of X12 837 claims (the payer's member id as the record id).
SELECT source, record_id, updated_at, first_name, last_name, sex, birth_date,
       coalesce(national_id, known_national_id) AS national_id,
       street, city, state, zip, phone, feed
FROM (
    SELECT *,
           -- A feed that does not carry the national id (HL7 PID-19 is often empty) keeps the one
           -- another feed sent for the same record.
           max(national_id) OVER (PARTITION BY source, record_id) AS known_national_id,
           row_number() OVER (PARTITION BY source, record_id ORDER BY updated_at DESC, loaded_at DESC, line DESC) AS version_rank
    FROM (
        SELECT source_system AS source,
               mrn AS record_id,
               arrow_cast(updated_at, 'Timestamp(Microsecond, Some("UTC"))') AS updated_at,
               first_name,
               last_name,
               sex,
               CAST(birth_date AS DATE) AS birth_date,
               ssn AS national_id,
               address AS street,
               city,
               state,
               CAST(zip AS VARCHAR) AS zip,
               CAST(phone AS VARCHAR) AS phone,
               'csv' AS feed,
               _loaded_at AS loaded_at,
               _source_line AS line
        FROM raw.patients
        UNION ALL
        SELECT coalesce(patient_id_authority, sending_facility), patient_id,
               arrow_cast(coalesce(event_time, message_time), 'Timestamp(Microsecond, Some("UTC"))'),
               given_name, family_name, sex, birth_date, CAST(NULL AS VARCHAR),
               street, city, state, postal_code, phone, 'hl7', _loaded_at, _source_line
        FROM raw.hl7_patient_events
        WHERE patient_id IS NOT NULL
        UNION ALL
        SELECT coalesce(source_system, 'FHIR'), id,
               arrow_cast(last_updated, 'Timestamp(Microsecond, Some("UTC"))'),
               given, family, gender, CAST(birth_date AS DATE), ssn,
               address_line, city, state, postal_code, phone, 'fhir', _loaded_at, CAST(0 AS BIGINT)
        FROM curated.fhir_patient
        UNION ALL
        SELECT payer_id, coalesce(patient_member_id, subscriber_id),
               arrow_cast(CAST(statement_from AS TIMESTAMP), 'Timestamp(Microsecond, Some("UTC"))'),
               coalesce(patient_first_name, subscriber_first_name),
               coalesce(patient_last_name, subscriber_last_name),
               coalesce(patient_sex, subscriber_sex),
               coalesce(patient_birth_date, subscriber_birth_date),
               CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR),
               CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR),
               'x12', _loaded_at, _source_line
        FROM raw.x12_claims
        WHERE payer_id IS NOT NULL AND coalesce(patient_member_id, subscriber_id) IS NOT NULL
    ) AS feeds
) AS ranked
WHERE version_rank = 1

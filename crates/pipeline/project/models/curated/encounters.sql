-- schedule: */15 * * * *
-- materialized: incremental
-- unique_key: source_system, encounter_id
-- incremental_on: raw.encounters, raw.hl7_patient_events, curated.fhir_encounter
-- optional: raw.encounters, raw.hl7_patient_events, curated.fhir_encounter
-- description: One row per encounter from every feed (flat-file extracts, HL7 v2 ADT visits, FHIR Encounter), classes and discharge dispositions in one vocabulary; of the rows for one encounter the latest load wins.
SELECT source_system, encounter_id, mrn, facility_id, encounter_class, admit_time, discharge_time,
       attending_npi, admit_reason_code, discharge_disposition, payer_id, feed
FROM (
    SELECT *,
           row_number() OVER (PARTITION BY source_system, encounter_id ORDER BY loaded_at DESC, state_time DESC, line DESC) AS row_rank
    FROM (
        SELECT source_system,
               encounter_id,
               mrn,
               facility_id,
               encounter_class,
               arrow_cast(admit_time, 'Timestamp(Microsecond, Some("UTC"))') AS admit_time,
               arrow_cast(discharge_time, 'Timestamp(Microsecond, Some("UTC"))') AS discharge_time,
               CAST(attending_npi AS BIGINT) AS attending_npi,
               admit_reason_code,
               discharge_disposition,
               payer_id,
               'csv' AS feed,
               _loaded_at AS loaded_at,
               arrow_cast(admit_time, 'Timestamp(Microsecond, Some("UTC"))') AS state_time,
               _source_line AS line
        FROM raw.encounters
        UNION ALL
        -- Every ADT message carries the visit as it stands (PV1): the latest one is the visit.
        SELECT coalesce(e.patient_id_authority, e.sending_facility), e.visit_number, e.patient_id,
               coalesce(e.point_of_care, e.sending_facility),
               CASE e.patient_class WHEN 'I' THEN 'inpatient' WHEN 'E' THEN 'emergency'
                    WHEN 'O' THEN 'outpatient' WHEN 'P' THEN 'preadmit' ELSE lower(e.patient_class) END,
               e.admit_time, e.discharge_time, TRY_CAST(e.attending_id AS BIGINT), d.code,
               -- HL7 table 0112
               CASE e.discharge_disposition WHEN '01' THEN 'HOME' WHEN '02' THEN 'TRANSFER'
                    WHEN '03' THEN 'SNF' WHEN '04' THEN 'ICF' WHEN '05' THEN 'TRANSFER'
                    WHEN '06' THEN 'HOME_HEALTH' WHEN '07' THEN 'AMA' WHEN '20' THEN 'EXPIRED'
                    WHEN '50' THEN 'HOSPICE' WHEN '51' THEN 'HOSPICE' ELSE e.discharge_disposition END,
               i.company_id, 'hl7', e._loaded_at, e.message_time, e._source_line
        FROM raw.hl7_patient_events e
        LEFT JOIN raw.hl7_diagnoses d
               ON d.control_id = e.control_id AND d.sending_facility = e.sending_facility AND d.set_id = '1'
        LEFT JOIN raw.hl7_insurance i
               ON i.control_id = e.control_id AND i.sending_facility = e.sending_facility AND i.set_id = '1'
        WHERE e.message_type = 'ADT' AND e.visit_number IS NOT NULL
        UNION ALL
        SELECT coalesce(source_system, 'FHIR'), id, patient_id, service_provider_id,
               CASE class_code WHEN 'IMP' THEN 'inpatient' WHEN 'ACUTE' THEN 'inpatient'
                    WHEN 'NONAC' THEN 'inpatient' WHEN 'EMER' THEN 'emergency'
                    WHEN 'AMB' THEN 'outpatient' WHEN 'OBSENC' THEN 'observation'
                    ELSE lower(class_code) END,
               arrow_cast(start, 'Timestamp(Microsecond, Some("UTC"))'),
               arrow_cast("end", 'Timestamp(Microsecond, Some("UTC"))'),
               TRY_CAST(practitioner_id AS BIGINT), reason_code,
               -- http://terminology.hl7.org/CodeSystem/discharge-disposition
               CASE discharge_disposition WHEN 'exp' THEN 'EXPIRED' WHEN 'other-hcf' THEN 'TRANSFER'
                    WHEN 'hosp' THEN 'HOSPICE' WHEN 'aadvice' THEN 'AMA' WHEN 'alt-home' THEN 'HOME'
                    ELSE upper(discharge_disposition) END,
               CAST(NULL AS VARCHAR), 'fhir', _loaded_at,
               arrow_cast(start, 'Timestamp(Microsecond, Some("UTC"))'), CAST(0 AS BIGINT)
        FROM curated.fhir_encounter
    ) AS feeds
) AS ranked
WHERE row_rank = 1

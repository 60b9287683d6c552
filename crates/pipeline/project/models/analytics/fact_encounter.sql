-- description: Encounters with their person, length of stay and the 30-day readmission flag (see docs/READMISSIONS.md). readmission_window_closed is false for an inpatient discharge within 30 days of the data's end (the latest admission or discharge in curated.encounters): its 30-day window has not closed, so a rate must leave it out (readmitted_30d there counts only the readmissions seen so far).
WITH encounter AS (
    SELECT e.*, x.person_key,
           (to_unixtime(e.discharge_time) - to_unixtime(e.admit_time)) / 86400.0 AS length_of_stay_days
    FROM curated.encounters e
    LEFT JOIN curated.person_xref x ON x.source = e.source_system AND x.record_id = e.mrn
),
data_end AS (
    SELECT max(greatest(admit_time, coalesce(discharge_time, admit_time))) AS data_end FROM curated.encounters
),
inpatient AS (
    SELECT encounter_id, source_system, person_key, admit_time, discharge_time, admit_reason_code,
           lead(admit_time) OVER (PARTITION BY person_key ORDER BY admit_time, encounter_id) AS next_admit,
           lead(admit_reason_code) OVER (PARTITION BY person_key ORDER BY admit_time, encounter_id) AS next_reason
    FROM encounter
    WHERE encounter_class = 'inpatient' AND person_key IS NOT NULL
)
SELECT e.source_system, e.encounter_id, e.person_key, e.mrn, e.facility_id, e.encounter_class,
       e.admit_time, e.discharge_time, e.length_of_stay_days, e.attending_npi,
       e.admit_reason_code AS principal_diagnosis, e.discharge_disposition, e.payer_id,
       CASE
           WHEN e.encounter_class <> 'inpatient' THEN NULL
           WHEN upper(coalesce(e.discharge_disposition, '')) IN ('EXPIRED', 'DIED', '20', 'TRANSFER', '02', '05', '65', '66') THEN NULL
           ELSE i.next_admit IS NOT NULL
                AND i.next_admit > e.discharge_time
                AND date_trunc('day', i.next_admit) <= date_trunc('day', e.discharge_time) + INTERVAL '30 days'
                AND coalesce(i.next_reason, '') NOT LIKE 'Z51%'
       END AS readmitted_30d,
       CASE
           WHEN i.next_admit > e.discharge_time
           THEN CAST(round((to_unixtime(date_trunc('day', i.next_admit)) - to_unixtime(date_trunc('day', e.discharge_time))) / 86400.0) AS BIGINT)
       END AS days_to_next_admission,
       CASE
           WHEN e.encounter_class <> 'inpatient' OR e.discharge_time IS NULL THEN NULL
           ELSE date_trunc('day', e.discharge_time) + INTERVAL '30 days' <= date_trunc('day', d.data_end)
       END AS readmission_window_closed
FROM encounter e
CROSS JOIN data_end d
LEFT JOIN inpatient i ON i.source_system = e.source_system AND i.encounter_id = e.encounter_id

-- materialized: view
-- description: Care-team worklist: inpatients discharged in the last 30 days of data who are not back yet, with their LACE readmission risk (Length of stay, Acuity: admitted through the emergency department, Comorbidity: Charlson groups of their diagnoses so far, Emergency visits in the 6 months before). LACE 10 or more is high risk. A SQL view until the trained risk models replace it.
WITH latest AS (
    SELECT max(discharge_time) AS latest_discharge FROM analytics.fact_encounter WHERE encounter_class = 'inpatient'
),
stay AS (
    SELECT e.source_system, e.encounter_id, e.person_key, e.facility_id, e.admit_time, e.discharge_time,
           e.length_of_stay_days, e.principal_diagnosis, e.discharge_disposition
    FROM analytics.fact_encounter e CROSS JOIN latest
    WHERE e.encounter_class = 'inpatient'
      AND e.discharge_time IS NOT NULL
      AND e.discharge_time > latest.latest_discharge - INTERVAL '30 days'
      AND e.days_to_next_admission IS NULL
      AND e.readmitted_30d IS NOT NULL
),
emergency AS (
    SELECT s.source_system, s.encounter_id,
           sum(CASE WHEN p.admit_time >= s.admit_time - INTERVAL '1 day' THEN 1 ELSE 0 END) AS through_ed,
           sum(CASE WHEN p.admit_time < s.admit_time - INTERVAL '1 day' THEN 1 ELSE 0 END) AS ed_visits_6m
    FROM stay s
    JOIN analytics.fact_encounter p
      ON p.person_key = s.person_key
     AND p.encounter_class = 'emergency'
     AND p.admit_time <= s.admit_time
     AND p.admit_time >= s.admit_time - INTERVAL '180 days'
    GROUP BY s.source_system, s.encounter_id
),
history AS (
    SELECT s.source_system, s.encounter_id, d.icd10_code
    FROM stay s
    JOIN analytics.fact_encounter h ON h.person_key = s.person_key AND h.admit_time <= s.admit_time
    JOIN curated.diagnoses d ON d.source_system = h.source_system AND d.encounter_id = h.encounter_id
    WHERE d.icd10_invalid_reason IS NULL
),
charlson AS (
    SELECT source_system, encounter_id,
           max(CASE WHEN substr(icd10_code, 1, 3) IN ('I21', 'I22', 'I25') THEN 1 ELSE 0 END)
         + max(CASE WHEN substr(icd10_code, 1, 3) IN ('I50', 'I11', 'I13') THEN 1 ELSE 0 END)
         + max(CASE WHEN substr(icd10_code, 1, 3) IN ('I70', 'I71', 'I73') THEN 1 ELSE 0 END)
         + max(CASE WHEN substr(icd10_code, 1, 2) = 'I6' OR substr(icd10_code, 1, 3) = 'G45' THEN 1 ELSE 0 END)
         + max(CASE WHEN substr(icd10_code, 1, 3) IN ('F01', 'F02', 'F03', 'G30') THEN 1 ELSE 0 END)
         + max(CASE WHEN substr(icd10_code, 1, 3) IN ('J40', 'J41', 'J42', 'J43', 'J44', 'J45', 'J47') THEN 1 ELSE 0 END)
         + max(CASE WHEN substr(icd10_code, 1, 3) IN ('M05', 'M06', 'M32', 'M33', 'M34') THEN 1 ELSE 0 END)
         + max(CASE WHEN substr(icd10_code, 1, 3) IN ('K25', 'K26', 'K27', 'K28') THEN 1 ELSE 0 END)
         + max(CASE WHEN substr(icd10_code, 1, 3) IN ('K70', 'K73', 'K74') THEN 1 ELSE 0 END)
         + max(CASE WHEN substr(icd10_code, 1, 3) IN ('E08', 'E09', 'E10', 'E11', 'E13') THEN 1 ELSE 0 END)
         + max(CASE WHEN substr(icd10_code, 1, 3) IN ('G81', 'G82', 'G83') THEN 2 ELSE 0 END)
         + max(CASE WHEN substr(icd10_code, 1, 3) IN ('N18', 'N19') THEN 2 ELSE 0 END)
         + max(CASE WHEN substr(icd10_code, 1, 1) = 'C' AND substr(icd10_code, 1, 3) < 'C77' THEN 2 ELSE 0 END)
         + max(CASE WHEN substr(icd10_code, 1, 3) IN ('C77', 'C78', 'C79', 'C80') THEN 6 ELSE 0 END)
         + max(CASE WHEN substr(icd10_code, 1, 3) IN ('B20') THEN 6 ELSE 0 END) AS charlson_index
    FROM history
    GROUP BY source_system, encounter_id
),
scored AS (
    SELECT s.*,
           CASE WHEN s.length_of_stay_days < 1 THEN 0
                WHEN s.length_of_stay_days < 4 THEN CAST(floor(s.length_of_stay_days) AS BIGINT)
                WHEN s.length_of_stay_days < 7 THEN 4
                WHEN s.length_of_stay_days < 14 THEN 5
                ELSE 7 END AS lace_l,
           CASE WHEN coalesce(em.through_ed, 0) > 0 THEN 3 ELSE 0 END AS lace_a,
           CASE WHEN coalesce(c.charlson_index, 0) >= 4 THEN 5 ELSE coalesce(c.charlson_index, 0) END AS lace_c,
           least(coalesce(em.ed_visits_6m, 0), 4) AS lace_e,
           coalesce(c.charlson_index, 0) AS charlson_index,
           coalesce(em.ed_visits_6m, 0) AS ed_visits_6m
    FROM stay s
    LEFT JOIN emergency em ON em.source_system = s.source_system AND em.encounter_id = s.encounter_id
    LEFT JOIN charlson c ON c.source_system = s.source_system AND c.encounter_id = s.encounter_id
)
SELECT s.person_key, p.first_name, p.last_name, p.birth_date, p.phone,
       s.facility_id, s.source_system, s.encounter_id, s.admit_time, s.discharge_time,
       round(s.length_of_stay_days, 1) AS length_of_stay_days, s.principal_diagnosis,
       s.discharge_disposition, s.charlson_index, s.ed_visits_6m,
       s.lace_l, s.lace_a, s.lace_c, s.lace_e,
       s.lace_l + s.lace_a + s.lace_c + s.lace_e AS lace_score,
       CASE WHEN s.lace_l + s.lace_a + s.lace_c + s.lace_e >= 10 THEN 'high'
            WHEN s.lace_l + s.lace_a + s.lace_c + s.lace_e >= 5 THEN 'moderate'
            ELSE 'low' END AS risk
FROM scored s
LEFT JOIN analytics.dim_patient p ON p.person_key = s.person_key AND p.is_current

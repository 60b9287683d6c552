-- optional: raw.procedures
-- description: One row per index discharge (inpatient stays of a person in the patient index, deaths and transfers excluded) with the Charlson index (Quan 2005 codes, 1987 weights), the LACE index (van Walraven 2010) and the HOSPITAL score (Donzé 2013), each with its points per component and its band, the inputs' provenance (the diagnosis codes that counted, the hemoglobin and sodium results used, the prior emergency visits and admissions), and the outcome (readmitted_30d, readmission_window_closed). Across feeds: every encounter, diagnosis and lab reaches the stay through the person. A lab not measured during the stay scores as normal (its observed_at is NULL). See docs/RISK.md.
WITH stay AS (
    SELECT source_system, encounter_id, person_key, facility_id, admit_time, discharge_time,
           length_of_stay_days, principal_diagnosis, discharge_disposition, readmitted_30d,
           readmission_window_closed
    FROM analytics.fact_encounter
    WHERE encounter_class = 'inpatient' AND discharge_time IS NOT NULL
      AND person_key IS NOT NULL AND readmitted_30d IS NOT NULL
),
-- Emergency visits of the person: one that began within a day before the admission is the
-- admission's own (an emergent admission); the others in the 6 months before count for LACE's E.
emergency AS (
    SELECT s.source_system, s.encounter_id,
           max(CASE WHEN p.admit_time >= s.admit_time - INTERVAL '1 day' THEN 1 ELSE 0 END) AS through_ed,
           array_agg(p.encounter_id ORDER BY p.admit_time)
               FILTER (WHERE p.admit_time < s.admit_time - INTERVAL '1 day') AS ed_visit_ids
    FROM stay s
    JOIN analytics.fact_encounter p
      ON p.person_key = s.person_key
     AND p.encounter_class = 'emergency'
     AND p.admit_time <= s.admit_time
     AND p.admit_time >= s.admit_time - INTERVAL '180 days'
    GROUP BY s.source_system, s.encounter_id
),
-- Inpatient admissions of the person in the 12 months before this one (HOSPITAL's A).
prior_admissions AS (
    SELECT s.source_system, s.encounter_id,
           array_agg(p.encounter_id ORDER BY p.admit_time) AS admission_ids
    FROM stay s
    JOIN analytics.fact_encounter p
      ON p.person_key = s.person_key
     AND p.encounter_class = 'inpatient'
     AND p.admit_time < s.admit_time
     AND p.admit_time >= s.admit_time - INTERVAL '365 days'
    GROUP BY s.source_system, s.encounter_id
),
-- Valid diagnoses of the stay and of the person's encounters in the year before it.
history AS (
    SELECT DISTINCT s.source_system, s.encounter_id, d.icd10_code
    FROM stay s
    JOIN analytics.fact_encounter h
      ON h.person_key = s.person_key
     AND h.admit_time <= s.admit_time
     AND h.admit_time >= s.admit_time - INTERVAL '365 days'
    JOIN curated.diagnoses d ON d.source_system = h.source_system AND d.encounter_id = h.encounter_id
    WHERE d.icd10_invalid_reason IS NULL AND d.icd10_code IS NOT NULL
),
comorbidity AS (
    SELECT source_system, encounter_id,
           array_agg(icd10_code ORDER BY icd10_code) AS codes,
           array_agg(icd10_code ORDER BY icd10_code)
               FILTER (WHERE cardinality(charlson_categories(make_array(icd10_code))) > 0) AS charlson_codes
    FROM history
    GROUP BY source_system, encounter_id
),
-- The last plausible result of each test taken during the stay.
lab AS (
    SELECT source_system, encounter_id, loinc_code, observed_at, value FROM (
        SELECT s.source_system, s.encounter_id, o.loinc_code, o.observed_at,
               CASE WHEN o.loinc_code = '718-7' THEN ucum_convert(o.value, o.unit, 'g/dL', o.loinc_code)
                    ELSE ucum_convert(o.value, o.unit, 'mmol/L', o.loinc_code) END AS value,
               row_number() OVER (PARTITION BY s.source_system, s.encounter_id, o.loinc_code
                                  ORDER BY o.observed_at DESC) AS r
        FROM stay s
        JOIN analytics.fact_observation o
          ON o.person_key = s.person_key
         AND o.category = 'laboratory'
         AND o.loinc_code IN ('718-7', '2951-2')
         AND o.observed_at >= s.admit_time
         AND o.observed_at <= s.discharge_time
         AND o.implausible_reason IS NULL
         AND o.value IS NOT NULL
    ) AS ranked
    WHERE r = 1 AND value IS NOT NULL
),
-- Procedures of the stay: CPT Surgery section codes (10004-69990) other than specimen
-- collection (36415, 36416), standing in for the ICD procedure codes HOSPITAL counts.
procedure AS (
    SELECT source_system, encounter_id, array_agg(DISTINCT cpt_code) AS procedure_codes
    FROM (
        SELECT source_system, encounter_id, CAST(cpt_code AS VARCHAR) AS cpt_code
        FROM raw.procedures
        UNION ALL
        SELECT CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR) WHERE false
    ) AS p
    WHERE cpt_code >= '10004' AND cpt_code <= '69990' AND length(cpt_code) = 5
      AND cpt_code NOT IN ('36415', '36416')
    GROUP BY source_system, encounter_id
),
inputs AS (
    SELECT s.*,
           coalesce(em.through_ed, 0) = 1 AS emergent,
           coalesce(cardinality(em.ed_visit_ids), 0) AS ed_visits_6m,
           em.ed_visit_ids,
           coalesce(cardinality(pa.admission_ids), 0) AS admissions_12m,
           pa.admission_ids AS prior_admission_ids,
           c.codes AS diagnosis_codes,
           c.charlson_codes,
           hb.value AS hemoglobin_g_dl, hb.observed_at AS hemoglobin_observed_at,
           na.value AS sodium_mmol_l, na.observed_at AS sodium_observed_at,
           pr.procedure_codes,
           -- Discharged from oncology: stands in for the service, which no feed sends.
           substr(coalesce(s.principal_diagnosis, ''), 1, 1) = 'C' AS oncology,
           CAST(floor((to_unixtime(s.discharge_time) - to_unixtime(CAST(CAST(dp.birth_date AS DATE) AS TIMESTAMP))) / 31557600.0) AS BIGINT) AS age_years
    FROM stay s
    LEFT JOIN analytics.dim_patient dp ON dp.person_key = s.person_key AND dp.is_current
    LEFT JOIN emergency em ON em.source_system = s.source_system AND em.encounter_id = s.encounter_id
    LEFT JOIN prior_admissions pa ON pa.source_system = s.source_system AND pa.encounter_id = s.encounter_id
    LEFT JOIN comorbidity c ON c.source_system = s.source_system AND c.encounter_id = s.encounter_id
    LEFT JOIN lab hb ON hb.source_system = s.source_system AND hb.encounter_id = s.encounter_id AND hb.loinc_code = '718-7'
    LEFT JOIN lab na ON na.source_system = s.source_system AND na.encounter_id = s.encounter_id AND na.loinc_code = '2951-2'
    LEFT JOIN procedure pr ON pr.source_system = s.source_system AND pr.encounter_id = s.encounter_id
),
scored AS (
    SELECT i.*,
           coalesce(charlson_index(i.diagnosis_codes), 0) AS charlson_index,
           charlson_categories(i.diagnosis_codes) AS charlson_categories,
           coalesce(cardinality(i.procedure_codes), 0) > 0 AS had_procedure,
           coalesce(cardinality(i.diagnosis_codes), 0) AS diagnosis_count
    FROM inputs i
)
SELECT person_key, facility_id, source_system, encounter_id, admit_time, discharge_time,
       round(length_of_stay_days, 2) AS length_of_stay_days, principal_diagnosis, discharge_disposition,
       age_years, diagnosis_count, emergent, ed_visits_6m, admissions_12m, charlson_index, charlson_categories,
       hemoglobin_g_dl, sodium_mmol_l, oncology, had_procedure,
       -- LACE: each component's points are the score of that component alone.
       lace_score(length_of_stay_days, false, 0, 0) AS lace_l,
       lace_score(0, emergent, 0, 0) AS lace_a,
       lace_score(0, false, charlson_index, 0) AS lace_c,
       lace_score(0, false, 0, ed_visits_6m) AS lace_e,
       lace_score(length_of_stay_days, emergent, charlson_index, ed_visits_6m) AS lace_score,
       lace_band(lace_score(length_of_stay_days, emergent, charlson_index, ed_visits_6m)) AS lace_band,
       -- HOSPITAL, with a lab not measured scored as normal.
       hospital_score(coalesce(hemoglobin_g_dl, 99), false, 140, false, false, 0, 0) AS hospital_h,
       hospital_score(99, oncology, 140, false, false, 0, 0) AS hospital_o,
       hospital_score(99, false, coalesce(sodium_mmol_l, 140), false, false, 0, 0) AS hospital_s,
       hospital_score(99, false, 140, had_procedure, false, 0, 0) AS hospital_p,
       hospital_score(99, false, 140, false, emergent, 0, 0) AS hospital_i,
       hospital_score(99, false, 140, false, false, admissions_12m, 0) AS hospital_a,
       hospital_score(99, false, 140, false, false, 0, length_of_stay_days) AS hospital_l,
       hospital_score(coalesce(hemoglobin_g_dl, 99), oncology, coalesce(sodium_mmol_l, 140), had_procedure,
                      emergent, admissions_12m, length_of_stay_days) AS hospital_score,
       hospital_band(hospital_score(coalesce(hemoglobin_g_dl, 99), oncology, coalesce(sodium_mmol_l, 140), had_procedure,
                                    emergent, admissions_12m, length_of_stay_days)) AS hospital_band,
       charlson_codes, hemoglobin_observed_at, sodium_observed_at, procedure_codes,
       ed_visit_ids, prior_admission_ids,
       readmitted_30d, readmission_window_closed
FROM scored

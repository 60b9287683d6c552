-- materialized: view
-- description: Care-team worklist: index discharges in the last 30 days of data whose person is not back yet, with their readmission risk from analytics.readmission_risk (LACE and HOSPITAL scores, their components and bands). risk is the higher of the two bands (high: LACE 10 or more, or HOSPITAL 7 or more).
SELECT r.person_key, p.first_name, p.last_name, p.birth_date, p.phone,
       r.facility_id, r.source_system, r.encounter_id, r.admit_time, r.discharge_time,
       round(r.length_of_stay_days, 1) AS length_of_stay_days, r.principal_diagnosis,
       r.discharge_disposition, r.charlson_index, r.ed_visits_6m, r.admissions_12m,
       r.lace_l, r.lace_a, r.lace_c, r.lace_e, r.lace_score, r.lace_band,
       r.hospital_score, r.hospital_band,
       CASE WHEN r.lace_band = 'high' OR r.hospital_band = 'high' THEN 'high'
            WHEN r.lace_band = 'moderate' OR r.hospital_band = 'intermediate' THEN 'moderate'
            ELSE 'low' END AS risk
FROM analytics.readmission_risk r
LEFT JOIN analytics.dim_patient p ON p.person_key = r.person_key AND p.is_current
WHERE NOT r.readmission_window_closed
  AND NOT r.readmitted_30d

-- description: 30-day readmission rate by facility and discharge month (index stays: inpatient discharges, deaths and transfers excluded). Discharges within 30 days of the data's end are left out: their 30-day window has not closed (analytics.fact_encounter.readmission_window_closed).
SELECT facility_id,
       to_char(discharge_time, '%Y-%m') AS discharge_month,
       count(*) AS index_discharges,
       sum(CASE WHEN readmitted_30d THEN 1 ELSE 0 END) AS readmissions_30d,
       round(100.0 * sum(CASE WHEN readmitted_30d THEN 1 ELSE 0 END) / count(*), 2) AS readmission_rate_pct
FROM analytics.fact_encounter
WHERE encounter_class = 'inpatient' AND readmitted_30d IS NOT NULL AND readmission_window_closed
GROUP BY facility_id, to_char(discharge_time, '%Y-%m')

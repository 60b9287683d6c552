-- description: Inpatient length of stay by facility and discharge month: stays, mean, median and 90th percentile in days.
SELECT facility_id,
       to_char(discharge_time, '%Y-%m') AS discharge_month,
       count(*) AS stays,
       round(avg(length_of_stay_days), 2) AS mean_los_days,
       round(approx_percentile_cont(length_of_stay_days, 0.5), 2) AS median_los_days,
       round(approx_percentile_cont(length_of_stay_days, 0.9), 2) AS p90_los_days
FROM analytics.fact_encounter
WHERE encounter_class = 'inpatient' AND discharge_time IS NOT NULL
GROUP BY facility_id, to_char(discharge_time, '%Y-%m')

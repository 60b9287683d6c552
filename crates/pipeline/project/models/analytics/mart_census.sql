-- description: Daily inpatient census by facility: patients in house on each calendar day (admission and discharge days both count).
WITH stay_days AS (
    SELECT facility_id,
           unnest(range(CAST(floor(to_unixtime(admit_time) / 86400) AS BIGINT),
                        CAST(floor(to_unixtime(discharge_time) / 86400) AS BIGINT) + 1)) AS day
    FROM analytics.fact_encounter
    WHERE encounter_class = 'inpatient' AND discharge_time IS NOT NULL
)
SELECT facility_id, arrow_cast(CAST(day AS INT), 'Date32') AS census_date, count(*) AS patients_in_house
FROM stay_days
GROUP BY facility_id, day

-- description: One row per calendar day from the first admission to the last discharge, with year, quarter, month, ISO weekday.
WITH bounds AS (
    SELECT CAST(floor(min(to_unixtime(admit_time)) / 86400) AS BIGINT) AS first_day,
           CAST(floor(max(to_unixtime(coalesce(discharge_time, admit_time))) / 86400) AS BIGINT) AS last_day
    FROM curated.encounters
),
days AS (
    SELECT arrow_cast(CAST(day AS INT), 'Date32') AS date_day
    FROM (SELECT unnest(range(first_day, last_day + 1)) AS day FROM bounds) AS d
)
SELECT date_day,
       CAST(date_part('year', date_day) AS INT) AS year,
       CAST(date_part('quarter', date_day) AS INT) AS quarter,
       CAST(date_part('month', date_day) AS INT) AS month,
       CAST(date_part('day', date_day) AS INT) AS day_of_month,
       CAST(date_part('dow', date_day) AS INT) AS day_of_week,
       to_char(date_day, '%Y-%m') AS year_month
FROM days

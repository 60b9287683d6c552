-- description: Clinicians by NPI, with specialty and facility.
SELECT npi, first_name, last_name, specialty, facility_id
FROM (SELECT *, row_number() OVER (PARTITION BY npi ORDER BY _loaded_at DESC) AS r FROM raw.providers) AS p
WHERE r = 1

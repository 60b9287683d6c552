-- optional: raw.claims, raw.x12_claims
-- description: Claims from the payer extract and from X12 837 files, with their person, encounter, payer, facility, principal diagnosis (ICD-10-CM, normalised) and charges. An 837 claim reaches its person through the patient index (payer and member id) and its encounter through that person's encounter on the first day of service with the claim's principal diagnosis; a claim in both feeds keeps the extract's row, which carries the adjudication status.
WITH claims AS (
    SELECT claim_id, encounter_id, payer_id, member_id, CAST(billing_npi AS BIGINT) AS billing_npi,
           facility_id, service_from, service_to, principal_dx, CAST(total_charge AS DOUBLE) AS total_charge,
           claim_status, 'csv' AS feed, 0 AS feed_rank, _loaded_at AS loaded_at, _source_line AS line
    FROM raw.claims
    UNION ALL
    SELECT x.claim_id, CAST(NULL AS VARCHAR), x.payer_id, coalesce(x.patient_member_id, x.subscriber_id),
           TRY_CAST(x.billing_provider_npi AS BIGINT), CAST(NULL AS VARCHAR), x.statement_from,
           x.statement_to, x.principal_diagnosis, x.total_charge, 'SUBMITTED', 'x12', 1, x._loaded_at, x._source_line
    FROM raw.x12_claims x
),
latest AS (
    SELECT * FROM (
        SELECT *, row_number() OVER (PARTITION BY claim_id ORDER BY feed_rank, loaded_at DESC, line DESC) AS r
        FROM claims
    ) AS ranked
    WHERE r = 1
),
-- An 837 names no encounter: a claim is matched to its person's encounter that began on its
-- first day of service with its principal diagnosis; where a person had several such
-- encounters that day, claims in the order of their ids go to encounters in the order of
-- their admission, one claim to one encounter.
claim_keys AS (
    SELECT c.claim_id, x.person_key, c.service_from, icd10_normalize(c.principal_dx) AS dx,
           row_number() OVER (PARTITION BY x.person_key, c.service_from, icd10_normalize(c.principal_dx)
                              ORDER BY c.claim_id) AS k
    FROM latest c
    JOIN curated.person_xref x ON x.source = c.payer_id AND x.record_id = c.member_id
    WHERE c.encounter_id IS NULL
),
encounter_keys AS (
    SELECT encounter_id, person_key, facility_id, CAST(admit_time AS DATE) AS day, principal_diagnosis AS dx,
           row_number() OVER (PARTITION BY person_key, CAST(admit_time AS DATE), principal_diagnosis
                              ORDER BY admit_time, encounter_id) AS k
    FROM analytics.fact_encounter
    WHERE person_key IS NOT NULL
),
matched AS (
    SELECT ck.claim_id, ek.encounter_id, ek.person_key, ek.facility_id
    FROM claim_keys ck
    JOIN encounter_keys ek ON ek.person_key = ck.person_key AND ek.day = ck.service_from
                          AND ek.dx = ck.dx AND ek.k = ck.k
)
SELECT c.claim_id, coalesce(c.encounter_id, m.encounter_id) AS encounter_id,
       coalesce(e.person_key, m.person_key, px.person_key) AS person_key,
       c.payer_id, c.member_id, c.billing_npi, coalesce(c.facility_id, m.facility_id) AS facility_id,
       c.service_from, c.service_to,
       icd10_normalize(c.principal_dx) AS principal_diagnosis,
       icd10_invalid_reason(c.principal_dx) AS principal_diagnosis_invalid_reason,
       c.total_charge, c.claim_status, c.feed
FROM latest c
LEFT JOIN matched m ON m.claim_id = c.claim_id
LEFT JOIN analytics.fact_encounter e ON e.encounter_id = c.encounter_id
LEFT JOIN curated.person_xref px ON px.source = c.payer_id AND px.record_id = c.member_id

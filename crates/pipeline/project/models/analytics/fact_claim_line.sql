-- optional: raw.claim_lines, raw.x12_claim_lines
-- description: Claim service lines from the payer extract and X12 837 files, CPT/HCPCS codes normalised and invalid ones flagged; a line in both feeds keeps the extract's row.
SELECT claim_id, line_no, cpt_normalize(cpt_code) AS cpt_code, cpt_invalid_reason(cpt_code) AS cpt_invalid_reason,
       units, charge, feed
FROM (
    SELECT *, row_number() OVER (PARTITION BY claim_id, line_no ORDER BY feed_rank, loaded_at DESC, line DESC) AS r
    FROM (
        SELECT claim_id, CAST(line_no AS BIGINT) AS line_no, CAST(cpt_code AS VARCHAR) AS cpt_code,
               CAST(units AS DOUBLE) AS units, CAST(charge AS DOUBLE) AS charge,
               'csv' AS feed, 0 AS feed_rank, _loaded_at AS loaded_at, _source_line AS line
        FROM raw.claim_lines
        UNION ALL
        SELECT claim_id, line_number, procedure_code, units, charge, 'x12', 1, _loaded_at, _source_line
        FROM raw.x12_claim_lines
        WHERE procedure_qualifier IS NULL OR procedure_qualifier IN ('HC', 'HP')
    ) AS feeds
) AS lines
WHERE r = 1

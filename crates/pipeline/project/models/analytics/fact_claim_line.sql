-- description: Claim service lines with CPT/HCPCS codes normalised and invalid ones flagged.
SELECT claim_id, line_no, cpt_normalize(cpt_code) AS cpt_code, cpt_invalid_reason(cpt_code) AS cpt_invalid_reason,
       units, charge
FROM (SELECT *, row_number() OVER (PARTITION BY claim_id, line_no ORDER BY _loaded_at DESC, _source_line DESC) AS r FROM raw.claim_lines) AS l
WHERE r = 1

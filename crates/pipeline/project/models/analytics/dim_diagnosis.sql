-- description: ICD-10-CM codes in use, with chapter and three-character category.
SELECT icd10_code, icd10_chapter, icd10_category, max(description) AS description
FROM curated.diagnoses
WHERE icd10_code IS NOT NULL
GROUP BY icd10_code, icd10_chapter, icd10_category

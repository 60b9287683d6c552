-- materialized: scd2
-- unique_key: person_key
-- description: Patients, one per person of the patient index, type 2: a change of name, address or contact details closes the old version (effective_to) and opens a new one.
SELECT person_key, first_name, last_name, sex, birth_date, street_number, street, city, state, zip, phone
FROM curated.person

-- description: Hospitals and clinics of the network.
SELECT facility_id, name, kind, source_system, city, state FROM raw.facilities

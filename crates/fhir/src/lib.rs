//! carelake fhir (being written)

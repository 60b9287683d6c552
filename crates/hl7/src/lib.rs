//! carelake hl7 (being written)

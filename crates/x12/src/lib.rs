//! carelake x12 (being written)

#![no_main]
//! Any bytes into the 837 parser: it returns claims or an error, never panics.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = carelake_x12::parse_837(data);
    let _ = carelake_x12::sniff(data);
});

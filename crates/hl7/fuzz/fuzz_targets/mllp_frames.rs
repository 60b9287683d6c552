#![no_main]
//! Any bytes into the MLLP frame decoder, fed in pieces as a socket would: frames or frame
//! errors come out, never a panic or unbounded buffering.

use carelake_hl7::mllp::FrameDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut decoder = FrameDecoder::new(256);
    for chunk in data.chunks(7) {
        decoder.push(chunk);
        while decoder.next_frame().is_some() {}
    }
});

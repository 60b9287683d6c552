#![no_main]
//! Any bytes through the HL7 v2 path a file load takes: batch split, parse, every component,
//! typed extraction and an ACK. Errors are fine; panics are not.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = carelake_hl7::decode_escapes(&text, &carelake_hl7::Delimiters::default());
    let Ok(batch) = carelake_hl7::split_batch(&text) else {
        return;
    };
    for item in batch.messages {
        let Ok(message) = carelake_hl7::Message::parse(item.text) else {
            continue;
        };
        for segment in message.segments() {
            let _ = segment.components();
        }
        for path in ["MSH-9.2", "PID-3(2).1", "OBX[1]-5.2", "PID-5.1.1"] {
            let _ = message.get(path);
        }
        let _ = message.extract();
        let _ = carelake_hl7::ack(
            &message,
            carelake_hl7::AckCode::AA,
            None,
            "1",
            chrono::NaiveDateTime::default(),
        );
    }
});

use carelake_hl7::mllp::FrameDecoder;
use carelake_hl7::{Delimiters, Message, decode_escapes, split_batch};
use proptest::prelude::*;

const VALID: &str = "MSH|^~\\&|EHR|HOSP|LAKE|HOSP|20240101120000||ORU^R01|42|P|2.5.1\rPID|1||123^^^HOSP^MR~9^^^SSA^SS||Doe^Jane\rOBR|1|P|F|1^X^LN\rOBX|1|SN|2^Y^LN||>^5|mg|1-2|H|||F|||2024\rDG1|1||E11^D^I10\rAL1|1|DA|1^P|SV|A~B|2020\rIN1|1|P|C|N\r";

fn exercise(text: &str) {
    let _ = split_batch(text);
    if let Ok(m) = Message::parse(text) {
        let _ = m.extract();
        for path in ["MSH-9.2", "PID-3(2).1", "OBX[1]-5.2", "PID-5.1.1", "ZZZ-1"] {
            let _ = m.get(path);
        }
        for s in m.segments() {
            let _ = s.components();
        }
        let _ = carelake_hl7::ack(
            &m,
            carelake_hl7::AckCode::AA,
            Some(text),
            "1",
            chrono::NaiveDateTime::default(),
        );
    }
    let _ = decode_escapes(text, &Delimiters::default());
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        exercise(&text);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        exercise(&String::from_utf8_lossy(&bytes));
        let mut decoder = FrameDecoder::new(64);
        decoder.push(&bytes);
        while decoder.next_frame().is_some() {}
    }

    #[test]
    fn mutated_messages_never_panic(at in 0usize..VALID.len(), byte in any::<u8>(), cut in 0usize..VALID.len()) {
        let mut bytes = VALID.as_bytes().to_vec();
        bytes[at] = byte;
        bytes.truncate(cut.max(at + 1));
        exercise(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn header_paths_round_trip(control in "[A-Za-z0-9]{1,20}") {
        let text = VALID.replace("|42|", &format!("|{control}|"));
        let m = Message::parse(&text).unwrap();
        prop_assert_eq!(m.header().control_id, Some(control));
    }
}

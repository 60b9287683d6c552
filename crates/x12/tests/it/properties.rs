//! Arbitrary bytes and mutated valid files never panic the parser.

use proptest::prelude::*;

const VALID: &str = "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *240101*1200*^*00501*000000001*0*P*:~\n\
GS*HC*S*R*20240101*1200*1*X*005010X222A1~\nST*837*0001*005010X222A1~\nBHT*0019*00*1*20240101*1200*CH~\n\
NM1*41*2*SUBMITTER*****46*1~\nNM1*40*2*RECEIVER*****46*2~\nHL*1**20*1~\nNM1*85*2*CLINIC*****XX*1234567893~\n\
N3*1 MAIN ST~\nN4*TOWN*IL*62701~\nREF*EI*123456789~\nHL*2*1*22*0~\nSBR*P*18*******CI~\nNM1*IL*1*DOE*JANE****MI*M1~\n\
DMG*D8*19800101*F~\nNM1*PR*2*PAYER*****PI*P1~\nCLM*C1*100***11:B:1*Y*A*Y*Y~\nHI*ABK:I10*ABF:E119~\n\
LX*1~\nSV1*HC:99213:25:59*60*UN*1***1:2~\nDTP*472*D8*20240105~\nLX*2~\nSV1*HC:85025*40*UN*2***1~\n\
DTP*472*D8*20240105~\nSE*23*0001~\nGE*1*1~\nIEA*1*000000001~\n";

#[test]
fn the_synthetic_claim_parses() {
    let parsed = carelake_x12::parse_837(VALID.as_bytes()).unwrap();
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let claim = &parsed.claims[0];
    assert_eq!(claim.patient_first_name.as_deref(), Some("JANE"));
    assert_eq!(
        claim.patient_birth_date.map(|d| d.to_string()).as_deref(),
        Some("1980-01-01")
    );
    assert_eq!(claim.lines[0].modifiers, ["25", "59"]);
    assert_eq!(claim.lines[1].units, Some(2.0));
    assert_eq!(claim.diagnosis_codes, ["I10", "E119"]);
    // The same file with other separators.
    let custom = VALID
        .replace('*', "|")
        .replace('~', "!")
        .replace(':', ">")
        .replace("|^|", "|~|");
    let again = carelake_x12::parse_837(custom.as_bytes()).unwrap();
    assert_eq!(again.claims, parsed.claims);
    assert!(carelake_x12::sniff(custom.as_bytes()));
    // Envelope control numbers must agree.
    let bad = VALID.replace("SE*23*0001", "SE*23*0002");
    assert!(
        carelake_x12::parse_837(bad.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("SE02")
    );
    let bad = VALID.replace("IEA*1*000000001", "IEA*1*000000009");
    assert!(
        carelake_x12::parse_837(bad.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("IEA02")
    );
    let cut = &VALID[..VALID.find("GE*").unwrap()];
    assert!(
        carelake_x12::parse_837(cut.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("no GE trailer")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = carelake_x12::parse_837(&bytes);
    }

    #[test]
    fn mutated_claims_never_panic(cut in 0usize..800, at in 0usize..800, byte in any::<u8>()) {
        let mut bytes = VALID.as_bytes().to_vec();
        let at = at % bytes.len();
        bytes[at] = byte;
        bytes.truncate(cut.max(1).min(bytes.len()));
        let _ = carelake_x12::parse_837(&bytes);
    }
}

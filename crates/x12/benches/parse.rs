//! X12 837P parse throughput in claims per second: a generated file of 10,000 claims (200 per
//! transaction set, three lines each), and the shared imsweb files that parse.
//!
//! `cargo bench -p carelake-x12`

use std::time::{Duration, Instant};

fn generated(claims: usize) -> String {
    let mut out = String::from(
        "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *240101*1200*^*00501*000000001*0*P*:~\nGS*HC*S*R*20240101*1200*1*X*005010X222A1~\n",
    );
    let per = 200;
    let sets = claims.div_ceil(per);
    for t in 0..sets {
        let mut body = vec![
            format!("ST*837*{t:04}*005010X222A1"),
            "BHT*0019*00*1*20240101*1200*CH".to_string(),
            "NM1*41*2*SUBMITTER*****46*1".to_string(),
            "NM1*40*2*RECEIVER*****46*2".to_string(),
            "HL*1**20*1".to_string(),
            "NM1*85*2*CLINIC*****XX*1234567893".to_string(),
            "N3*1 MAIN ST".to_string(),
            "N4*TOWN*IL*62701".to_string(),
            "REF*EI*123456789".to_string(),
        ];
        for c in 0..per.min(claims - t * per) {
            let hl = c + 2;
            body.extend([
                format!("HL*{hl}*1*22*0"),
                "SBR*P*18*******CI".to_string(),
                format!("NM1*IL*1*PATIENT*SYNTHETIC****MI*M{c:08}"),
                "N3*2 ELM ST".to_string(),
                "N4*TOWN*IL*62701".to_string(),
                "DMG*D8*19800101*F".to_string(),
                "NM1*PR*2*PAYER*****PI*P1".to_string(),
                format!("CLM*C{t:04}{c:05}*185.50***11:B:1*Y*A*Y*Y"),
                "HI*ABK:I10*ABF:E119*ABF:N179".to_string(),
                "NM1*82*1*DOC*A****XX*1234567893".to_string(),
                "LX*1".to_string(),
                "SV1*HC:99213:25*110*UN*1***1:2".to_string(),
                "DTP*472*D8*20240105".to_string(),
                "LX*2".to_string(),
                "SV1*HC:85025*40.50*UN*1***1".to_string(),
                "DTP*472*D8*20240105".to_string(),
                "LX*3".to_string(),
                "SV1*HC:36415*35*UN*1***3".to_string(),
                "DTP*472*D8*20240105".to_string(),
            ]);
        }
        body.push(format!("SE*{}*{t:04}", body.len() + 1));
        for segment in body {
            out.push_str(&segment);
            out.push_str("~\n");
        }
    }
    out.push_str(&format!("GE*{sets}*1~\nIEA*1*000000001~\n"));
    out
}

fn measure(label: &str, inputs: &[Vec<u8>]) {
    let bytes: usize = inputs.iter().map(Vec::len).sum();
    let budget = Duration::from_secs(3);
    let start = Instant::now();
    let (mut rounds, mut claims) = (0u64, 0u64);
    while start.elapsed() < budget {
        for input in inputs {
            claims += carelake_x12::parse_837(input)
                .map(|p| p.claims.len())
                .unwrap_or(0) as u64;
        }
        rounds += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{label}: {:.0} claims/s, {:.1} MB/s ({} claims per round, {rounds} rounds)",
        claims as f64 / secs,
        bytes as f64 * rounds as f64 / secs / 1e6,
        claims / rounds.max(1)
    );
}

fn main() {
    let file = generated(10_000).into_bytes();
    measure("generated 837P, 10,000 claims x 3 lines", &[file]);
    let dir = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/x12-837/imsweb"
    ));
    let Ok(read) = std::fs::read_dir(dir) else {
        eprintln!("skipping the shared files: {} is absent", dir.display());
        return;
    };
    let valid: Vec<Vec<u8>> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| std::fs::read(p).ok())
        .filter(|b| carelake_x12::parse_837(b).is_ok())
        .collect();
    measure("shared imsweb files that parse", &valid);
}

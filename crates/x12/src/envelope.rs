//! The 837 envelopes: interchanges (ISA/IEA), functional groups (GS/GE) and transaction sets
//! (ST/SE) with their control numbers and counts.

use crate::claim::{Claim, ClaimKind, Interchange837};
use crate::error::{Error, Result};
use crate::segment::{Segment, SegmentIter};
use crate::walk::{Transaction, date6, walk};

/// Parses a whole X12 837 file. Any error refuses the whole file.
pub fn parse_837(input: &[u8]) -> Result<Interchange837> {
    let mut claims = Vec::new();
    let mut result = parse_837_each(input, |_, batch| claims.extend(batch))?;
    result.claims = claims;
    Ok(result)
}

/// Parses an X12 837 file one transaction set at a time, handing each set's claims to
/// `on_claims` with the envelope read so far (the first interchange's sender and receiver),
/// so that memory holds one transaction set rather than the file. The returned summary has no
/// claims. As with [`parse_837`], an error refuses the whole file: a caller that keeps the
/// claims it was handed must drop them when the parse fails.
pub fn parse_837_each(
    input: &[u8],
    mut on_claims: impl FnMut(&Interchange837, Vec<Claim>),
) -> Result<Interchange837> {
    let input = input.strip_prefix(b"\xef\xbb\xbf").unwrap_or(input);
    let start = input
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(input.len());
    let mut segs = SegmentIter::new(&input[start..])?;
    let mut next = || -> Result<Option<(Segment<'_>, usize)>> {
        let seg = segs.next().transpose()?;
        Ok(seg.map(|seg| (seg, segs.yielded())))
    };
    let mut result = Interchange837::default();
    let mut claims = Vec::new();
    while let Some((isa, _)) = next()? {
        result.segment_count = isa.position;
        if isa.id() != "ISA" {
            return Err(isa.error("expected an ISA interchange header"));
        }
        let isa_control = isa.element(13).to_string();
        if result.interchange_count == 0 {
            result.control_number = isa_control.clone();
            result.sender_id = isa.element(6).trim().to_string();
            result.receiver_id = isa.element(8).trim().to_string();
            result.date = date6(isa.element(9));
        }
        result.interchange_count += 1;
        let mut groups = 0;
        loop {
            let Some((seg, count)) = next()? else {
                return Err(Error::Envelope(format!(
                    "interchange {isa_control} has no IEA trailer"
                )));
            };
            result.segment_count = count;
            match seg.id() {
                "IEA" => {
                    if seg.element(2) != isa_control {
                        return Err(
                            seg.error("IEA02 does not match the ISA13 interchange control number")
                        );
                    }
                    if seg.element(1).parse::<usize>().ok() != Some(groups) {
                        result.warnings.push(format!(
                            "interchange {isa_control}: IEA01 says {} functional groups; it has {groups}",
                            seg.element(1)
                        ));
                    }
                    break;
                }
                "GS" => {
                    let gs_control = seg.required(6, "group control number")?.to_string();
                    let implementation = seg.element(8).to_string();
                    if seg.element(1) != "HC" {
                        if seg.element(1) == "FA" {
                            return Err(Error::NotClaims("999".into()));
                        }
                        return Err(
                            seg.error("GS01 functional identifier must be HC (health care claim)")
                        );
                    }
                    groups += 1;
                    result.group_count += 1;
                    let mut transactions = 0;
                    loop {
                        let Some((seg, count)) = next()? else {
                            return Err(Error::Envelope(format!(
                                "group {gs_control} has no GE trailer"
                            )));
                        };
                        result.segment_count = count;
                        match seg.id() {
                            "GE" => {
                                if seg.element(2) != gs_control {
                                    return Err(seg.error(
                                        "GE02 does not match the GS06 group control number",
                                    ));
                                }
                                if seg.element(1).parse::<usize>().ok() != Some(transactions) {
                                    result.warnings.push(format!(
                                        "group {gs_control}: GE01 says {} transaction sets; it has {transactions}",
                                        seg.element(1)
                                    ));
                                }
                                break;
                            }
                            "ST" => {
                                let kind = seg.required(1, "transaction set identifier")?;
                                if kind != "837" {
                                    return Err(Error::NotClaims(kind.to_string()));
                                }
                                let st_control = seg
                                    .required(2, "transaction set control number")?
                                    .to_string();
                                let implementation =
                                    seg.get(3).unwrap_or(implementation.as_str()).to_string();
                                // The set's segments, through the first envelope segment
                                // after ST, which must be its SE.
                                let mut set = vec![seg];
                                loop {
                                    let Some((seg, count)) = next()? else {
                                        return Err(Error::Envelope(format!(
                                            "transaction set {st_control} has no SE trailer"
                                        )));
                                    };
                                    result.segment_count = count;
                                    let id = seg.id();
                                    let envelope = matches!(id, "SE" | "ST" | "GE" | "IEA");
                                    if envelope && id != "SE" {
                                        return Err(Error::Envelope(format!(
                                            "transaction set {st_control} has no SE trailer"
                                        )));
                                    }
                                    set.push(seg);
                                    if envelope {
                                        break;
                                    }
                                }
                                let se = &set[set.len() - 1];
                                if se.element(2) != st_control {
                                    return Err(se.error("SE02 does not match the ST02 transaction set control number"));
                                }
                                let count = set.len();
                                if se.element(1).parse::<usize>().ok() != Some(count) {
                                    // Many senders get SE01 wrong; the control numbers match
                                    // and every segment is accounted for, so note it.
                                    result.warnings.push(format!(
                                        "transaction set {st_control}: SE01 says {} segments; it has {count}",
                                        se.element(1)
                                    ));
                                }
                                let kind = if implementation.contains("X223") {
                                    Some(ClaimKind::Institutional)
                                } else if implementation.contains("X222") {
                                    Some(ClaimKind::Professional)
                                } else {
                                    None
                                };
                                let context = Claim {
                                    interchange_control: isa_control.clone(),
                                    group_control: gs_control.clone(),
                                    transaction_control: st_control.clone(),
                                    kind,
                                    implementation,
                                    ..Claim::default()
                                };
                                let tx = Transaction {
                                    control: st_control,
                                    segments: &set,
                                };
                                walk(&tx, &context, &mut claims)?;
                                transactions += 1;
                                result.transaction_count += 1;
                                on_claims(&result, std::mem::take(&mut claims));
                            }
                            _ => {
                                return Err(
                                    seg.error("expected ST or GE inside a functional group")
                                );
                            }
                        }
                    }
                }
                _ => return Err(seg.error("expected GS or IEA inside an interchange")),
            }
        }
    }
    Ok(result)
}

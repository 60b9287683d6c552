//! X12 837 health care claims (005010X222A1 professional, 005010X223A2 institutional) for
//! carelake: separators from the ISA header, ISA/GS/ST envelopes with their control numbers
//! and counts checked, and the claim loops (1000A/B, 2000A/B/C, 2010, 2300, 2310, 2400, 2420)
//! walked into flat [`Claim`]s with their [`ClaimLine`]s.
//!
//! A file is all or nothing: [`parse_837`] returns every claim, or an [`Error`] that names the
//! segment, loop or envelope at fault (never a value from it).

mod claim;
mod envelope;
mod error;
pub mod segment;
mod walk;

pub use claim::{Claim, ClaimKind, ClaimLine, Interchange837};
pub use envelope::{parse_837, parse_837_each};
pub use error::{Error, Result};

/// Whether `input` looks like X12: `ISA` (after an optional BOM and whitespace) followed by a
/// punctuation element separator.
pub fn sniff(input: &[u8]) -> bool {
    let input = input.strip_prefix(b"\xef\xbb\xbf").unwrap_or(input);
    let start = input
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(input.len());
    let input = &input[start..];
    input.starts_with(b"ISA")
        && input
            .get(3)
            .is_some_and(|b| b.is_ascii_punctuation() || *b == b'|')
}

//! Files and batches: single messages, several messages one after another, and the FHS/BHS …
//! BTS/FTS wrappers, with their counts checked.

use crate::message::segment_ranges;
use crate::{Error, Result};

/// One message found in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMessage<'a> {
    /// The message's text (its segments, separators included).
    pub text: &'a str,
    /// 1-based line (segment) of the file where the message starts.
    pub line: usize,
}

/// The messages of a file, with what wrapped them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch<'a> {
    /// The messages in order.
    pub messages: Vec<BatchMessage<'a>>,
    /// Whether the file had an FHS header.
    pub file_header: bool,
    /// Number of BHS batches.
    pub batches: usize,
}

fn count_of(segment: &str) -> Option<usize> {
    // BTS-1 / FTS-1: the segment's first field after its name.
    let sep = segment.as_bytes().get(3).copied()? as char;
    segment
        .split(sep)
        .nth(1)
        .map(str::trim)
        .filter(|s| !s.is_empty())?
        .parse()
        .ok()
}

/// Splits a file's text into messages, checking the batch and file wrappers. Accepts a single
/// message, messages one after another, or FHS/BHS wrappers; like python-hl7, a missing header
/// or trailer is tolerated (the batch or file is then implicit). Rejects segments outside any
/// message, a batch header inside an open batch, a second file header, segments after the file
/// trailer, and BTS/FTS counts that do not match.
pub fn split_batch<'a>(text: &'a str) -> Result<Batch<'a>> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let offset = text.len() - body.len();
    let mut batch = Batch::default();
    let mut file_done = false;
    let mut batch_open = false;
    // Messages since the last batch boundary (explicit or implicit batch).
    let mut batch_messages = 0usize;
    let mut batches_in_file = 0usize;
    let mut current: Option<(usize, usize, usize)> = None; // (start, end, line)
    let bad = |line: usize, problem: &str| Error::Batch {
        line,
        problem: problem.to_string(),
    };
    let close = |current: &mut Option<(usize, usize, usize)>, batch: &mut Batch<'a>| {
        if let Some((start, end, line)) = current.take() {
            batch.messages.push(BatchMessage {
                text: &text[start..end],
                line,
            });
        }
    };
    let mut line = 0;
    for (start, end) in segment_ranges(body) {
        line += 1;
        let (start, end) = (start + offset, end + offset);
        let segment = &text[start..end];
        let name = segment.get(..3).unwrap_or(segment);
        if file_done {
            return Err(bad(line, "segments after the file trailer (FTS)"));
        }
        match name {
            "FHS" => {
                if line != 1 {
                    return Err(bad(line, "a file header (FHS) must come first, once"));
                }
                batch.file_header = true;
            }
            "BHS" => {
                close(&mut current, &mut batch);
                if batch_open {
                    return Err(bad(
                        line,
                        "a batch header (BHS) inside a batch that was not closed with BTS",
                    ));
                }
                if batch_messages > 0 {
                    // Messages before this header formed an implicit batch.
                    batches_in_file += 1;
                }
                batch_open = true;
                batch_messages = 0;
                batch.batches += 1;
            }
            "BTS" => {
                close(&mut current, &mut batch);
                if let Some(n) = count_of(segment)
                    && n != batch_messages
                {
                    return Err(bad(
                        line,
                        &format!(
                            "the batch trailer (BTS) counts {n} messages, the batch has {batch_messages}"
                        ),
                    ));
                }
                batches_in_file += 1;
                batch_open = false;
                batch_messages = 0;
            }
            "FTS" => {
                close(&mut current, &mut batch);
                if batch_open || batch_messages > 0 {
                    batches_in_file += 1;
                }
                if let Some(n) = count_of(segment)
                    && n != batches_in_file
                {
                    return Err(bad(
                        line,
                        &format!(
                            "the file trailer (FTS) counts {n} batches, the file has {batches_in_file}"
                        ),
                    ));
                }
                file_done = true;
            }
            "MSH" => {
                close(&mut current, &mut batch);
                current = Some((start, end, line));
                batch_messages += 1;
            }
            _ => match &mut current {
                Some((_, message_end, _)) => *message_end = end,
                None => {
                    return Err(bad(
                        line,
                        "a segment outside any message (no MSH before it)",
                    ));
                }
            },
        }
    }
    close(&mut current, &mut batch);
    if batch.messages.is_empty() && !batch.file_header && batch.batches == 0 {
        return Err(bad(1, "no HL7 message in the file"));
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &str = "MSH|^~\\&|A|B|C|D|20240101||ADT^A04|1|P|2.5\rPID|1||9\r";

    #[test]
    fn splits_plain_and_wrapped_messages() {
        let two = format!("{MSG}{MSG}");
        let b = split_batch(&two).unwrap();
        assert_eq!(b.messages.len(), 2);
        assert_eq!(b.messages[1].line, 3);
        assert!(b.messages[0].text.starts_with("MSH") && b.messages[0].text.ends_with("|9"));
        let file = format!("FHS|^~\\&\rBHS|^~\\&\r{MSG}{MSG}BTS|2\rBHS|^~\\&\r{MSG}BTS|1\rFTS|2\r");
        let b = split_batch(&file).unwrap();
        assert_eq!((b.messages.len(), b.batches, b.file_header), (3, 2, true));
    }

    #[test]
    fn rejects_broken_wrappers() {
        let cases = [
            (
                "BHS|^~\\&\rEVN|A04\rBTS|1".to_string(),
                "outside any message",
            ),
            (
                format!("BHS|^~\\&\r{MSG}BHS|^~\\&\r{MSG}BTS|1"),
                "not closed",
            ),
            (
                format!("FHS|^~\\&\rBHS|^~\\&\r{MSG}FHS|^~\\&\rBTS|1\rFTS|1"),
                "must come first",
            ),
            (format!("BHS|^~\\&\r{MSG}BTS|3"), "counts 3 messages"),
            (
                format!("FHS|^~\\&\rBHS|^~\\&\r{MSG}BTS|1\rFTS|2"),
                "counts 2 batches",
            ),
            (
                format!("FHS|^~\\&\r{MSG}FTS|1\r{MSG}"),
                "after the file trailer",
            ),
            (format!("{MSG}FHS|^~\\&\r"), "must come first"),
            ("\r\n".to_string(), "no HL7 message"),
        ];
        for (text, expected) in cases {
            let err = split_batch(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should contain {expected}");
        }
    }
}

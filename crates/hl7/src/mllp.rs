//! MLLP framing: a message travels as `0x0B` message `0x1C 0x0D`.

/// Start of a frame.
pub const START: u8 = 0x0b;
/// End of a frame: `0x1C` then `0x0D`.
pub const END: [u8; 2] = [0x1c, 0x0d];

/// Frames a message.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(START);
    out.extend_from_slice(message);
    out.extend_from_slice(&END);
    out
}

/// A frame that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame grew beyond the limit; it was dropped.
    #[error("MLLP frame larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

/// Reads frames out of a byte stream fed in pieces. Bytes between frames are ignored.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    /// Inside a frame (a start byte was seen).
    in_frame: bool,
    /// Dropping an oversized frame until its end.
    discarding: bool,
    max: usize,
    pending_error: bool,
    ready: std::collections::VecDeque<Result<Vec<u8>, FrameError>>,
}

impl FrameDecoder {
    /// A decoder accepting frames of at most `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            buffer: Vec::new(),
            in_frame: false,
            discarding: false,
            max: max_frame_bytes,
            pending_error: false,
            ready: Default::default(),
        }
    }

    /// Feeds bytes.
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if !self.in_frame {
                match memchr::memchr(START, bytes) {
                    Some(i) => {
                        self.in_frame = true;
                        self.buffer.clear();
                        bytes = &bytes[i + 1..];
                    }
                    None => return,
                }
                continue;
            }
            // Look for 0x1C; the 0x0D after it may arrive in the next piece.
            match memchr::memchr(END[0], bytes) {
                Some(i) => {
                    self.append(&bytes[..i]);
                    bytes = &bytes[i + 1..];
                    // Tolerate a missing 0x0D after 0x1C.
                    if bytes.first() == Some(&END[1]) {
                        bytes = &bytes[1..];
                    }
                    self.finish_frame();
                }
                None => {
                    self.append(bytes);
                    return;
                }
            }
        }
    }

    fn append(&mut self, bytes: &[u8]) {
        if self.discarding {
            return;
        }
        if self.buffer.len() + bytes.len() > self.max {
            self.discarding = true;
            self.pending_error = true;
            self.buffer = Vec::new();
            return;
        }
        // A start byte inside a frame means the previous frame was cut: start again.
        if let Some(i) = memchr::memrchr(START, bytes) {
            self.buffer.clear();
            self.buffer.extend_from_slice(&bytes[i + 1..]);
        } else {
            self.buffer.extend_from_slice(bytes);
        }
    }

    fn finish_frame(&mut self) {
        self.in_frame = false;
        if self.pending_error {
            self.ready
                .push_back(Err(FrameError::TooLarge { limit: self.max }));
        } else {
            self.ready.push_back(Ok(std::mem::take(&mut self.buffer)));
        }
        self.pending_error = false;
        self.discarding = false;
    }

    /// The next complete frame, if any.
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        self.ready.pop_front()
    }

    /// Whether a frame has begun and not yet ended (for a per-frame deadline).
    pub fn in_frame(&self) -> bool {
        self.in_frame || self.discarding
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_in_pieces_and_noise() {
        let mut d = FrameDecoder::new(100);
        let mut stream = b"noise".to_vec();
        stream.extend(frame(b"MSH|one"));
        stream.extend(b"\r\n");
        stream.extend(frame(b"MSH|two"));
        for piece in stream.chunks(3) {
            d.push(piece);
        }
        assert_eq!(d.next_frame(), Some(Ok(b"MSH|one".to_vec())));
        assert_eq!(d.next_frame(), Some(Ok(b"MSH|two".to_vec())));
        assert_eq!(d.next_frame(), None);
    }

    #[test]
    fn oversized_frames_are_errors_and_the_stream_recovers() {
        let mut d = FrameDecoder::new(4);
        d.push(&frame(b"MSH|too long"));
        d.push(&frame(b"MSH|"));
        assert_eq!(d.next_frame(), Some(Err(FrameError::TooLarge { limit: 4 })));
        assert_eq!(d.next_frame(), Some(Ok(b"MSH|".to_vec())));
    }
}

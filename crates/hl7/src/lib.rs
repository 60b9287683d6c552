//! HL7 v2 parsing for carelake: messages and their fields, escape sequences, batch and file
//! wrappers, typed extraction for analytics, acknowledgements and MLLP framing.
//!
//! The parser borrows the input: [`Message::parse`] finds the segments and the start of every
//! field in one pass (with `memchr`); repetitions, components and subcomponents are split only
//! when read, and values are escape-decoded only when they contain the escape character.
//!
//! ```
//! use carelake_hl7::Message;
//!
//! let text = "MSH|^~\\&|EHR|HOSP|LAKE|HOSP|20240101120000||ADT^A01|42|P|2.5.1\rPID|1||123^^^HOSP^MR||Doe^Jane";
//! let message = Message::parse(text).unwrap();
//! assert_eq!(message.get("PID-5.2").as_deref(), Some("Jane"));
//! assert_eq!(message.header().control_id.as_deref(), Some("42"));
//! let patient = message.extract().patient.unwrap();
//! assert_eq!(patient.identifiers[0].assigning_authority.as_deref(), Some("HOSP"));
//! ```

mod ack;
mod batch;
mod error;
mod escape;
mod extract;
mod message;
pub mod mllp;
mod path;
mod time;

pub use ack::{AckCode, ack, ack_for_unparseable};
pub use batch::{Batch, BatchMessage, split_batch};
pub use error::{Error, Result};
pub use escape::{decode_escapes, encode_escapes};
pub use extract::{
    Allergy, Diagnosis, Extracted, Insurance, MessageHeader, Observation, PatientEvent,
    PatientIdentifier,
};
pub use message::{Delimiters, Message, Segment};
pub use path::is_valid_path;
pub use time::{parse_date, parse_dtm};

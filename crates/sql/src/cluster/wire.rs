//! The bytes carelake's cluster codecs write: a magic prefix, a kind and a protobuf message.

use carelake_common::{TableName, Zone};
use datafusion::common::DataFusionError;
use datafusion::error::Result as DfResult;

use prost::Message;

/// The first bytes of everything these codecs write: `0xff` can begin no protobuf message
/// (its wire type would be 7), so a buffer of Ballista's or DataFusion's is never taken for
/// one of carelake's.
pub(super) const MAGIC: [u8; 3] = [0xff, b'C', b'L'];
pub(super) const KIND_TABLE: u8 = 1;
pub(super) const KIND_PROTECTED: u8 = 2;
pub(super) const KIND_SCAN: u8 = 3;
pub(super) const KIND_PROTECTED_EXEC: u8 = 4;
pub(super) const KIND_IDENTITY: u8 = 5;

pub(super) fn frame(kind: u8, message: &impl Message, buf: &mut Vec<u8>) {
    buf.extend_from_slice(&MAGIC);
    buf.push(kind);
    message.encode(buf).expect("a Vec grows as needed");
}

/// The kind and body of a buffer carelake's codecs wrote; `None` for anyone else's.
pub(super) fn unframe(buf: &[u8]) -> Option<(u8, &[u8])> {
    let rest = buf.strip_prefix(&MAGIC)?;
    let (&kind, body) = rest.split_first()?;
    Some((kind, body))
}

pub(super) fn decode<M: Message + Default>(body: &[u8], what: &str) -> DfResult<M> {
    M::decode(body).map_err(|e| DataFusionError::Internal(format!("decoding {what}: {e}")))
}

pub(super) fn internal(message: impl Into<String>) -> DataFusionError {
    DataFusionError::Internal(message.into())
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct TableMsg {
    #[prost(string, tag = "1")]
    pub(super) zone: String,
    #[prost(string, tag = "2")]
    pub(super) name: String,
    #[prost(uint64, tag = "3")]
    pub(super) version: u64,
}

impl TableMsg {
    pub(super) fn of(name: &TableName, version: u64) -> Self {
        Self {
            zone: name.zone.as_str().to_string(),
            name: name.name.clone(),
            version,
        }
    }

    /// The table named (never anything outside the zones: a zone is one of three words).
    pub(super) fn table(&self) -> DfResult<TableName> {
        let zone: Zone = self
            .zone
            .parse()
            .map_err(|_| internal(format!("a plan names the zone '{}'", self.zone)))?;
        TableName::new(zone, self.name.clone()).map_err(|e| internal(e.to_string()))
    }
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct ProtectedMsg {
    #[prost(message, optional, tag = "1")]
    pub(super) table: Option<TableMsg>,
    #[prost(bytes = "vec", tag = "2")]
    pub(super) plan: Vec<u8>,
    #[prost(string, repeated, tag = "3")]
    pub(super) pushable: Vec<String>,
    #[prost(bool, tag = "4")]
    pub(super) can_select: bool,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct ScanMsg {
    #[prost(message, optional, tag = "1")]
    pub(super) table: Option<TableMsg>,
    #[prost(bool, tag = "2")]
    pub(super) projected: bool,
    #[prost(uint64, repeated, tag = "3")]
    pub(super) projection: Vec<u64>,
    #[prost(bytes = "vec", tag = "4")]
    pub(super) filters: Vec<u8>,
    #[prost(uint64, optional, tag = "5")]
    pub(super) limit: Option<u64>,
    #[prost(string, tag = "6")]
    pub(super) fingerprint: String,
    #[prost(bytes = "vec", tag = "7")]
    pub(super) schema: Vec<u8>,
    #[prost(uint64, tag = "8")]
    pub(super) partitions: u64,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct ProtectedExecMsg {
    #[prost(string, tag = "1")]
    pub(super) table: String,
    #[prost(bytes = "vec", tag = "2")]
    pub(super) plan: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct IdentityMsg {
    #[prost(string, tag = "1")]
    pub(super) function: String,
    #[prost(string, tag = "2")]
    pub(super) user: String,
    #[prost(string, repeated, tag = "3")]
    pub(super) roles: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    pub(super) attribute_names: Vec<String>,
    #[prost(string, repeated, tag = "5")]
    pub(super) attribute_values: Vec<String>,
}

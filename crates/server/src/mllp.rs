//! The MLLP listener: HL7 v2 over TCP with Minimal Lower Layer Protocol framing
//! (`0x0B` message `0x1C 0x0D`).
//!
//! Every connection is read frame by frame. A frame is handed to one writer task, which groups
//! the messages that arrive from all connections within a short window and stores them in a
//! single Delta commit ([`Hl7Store::store`]); only when that commit has succeeded does each
//! connection get its `AA` acknowledgement. A resent message (same MSH-10 from the same
//! sending application and facility) is acknowledged again but stored once. A message that
//! cannot be parsed gets `AR` with the reason and is quarantined; a storage failure gets `AE`,
//! telling the sender to resend; a message reusing a stored control id with other content is a
//! conflict (`AE`, quarantined).
//!
//! At the edge: TLS when configured (optionally requiring client certificates signed by a
//! given CA), an allow-list of peer addresses (others are closed at once, logged and
//! audited), a cap on connections, and a deadline for a frame once it has begun (a sender
//! trickling bytes is cut off), besides the idle time.

use std::net::SocketAddr;
use std::time::Duration;

use carelake_hl7::mllp::FrameDecoder;
use carelake_hl7::{AckCode, Message};
use carelake_stream::{Hl7Store, InboundMessage, StoreOutcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::{Error, Result};

/// The IANA-registered port for HL7 over MLLP.
pub const DEFAULT_MLLP_PORT: u16 = 2575;

/// How the MLLP listener runs.
#[derive(Debug, Clone)]
pub struct MllpConfig {
    /// Address to listen on. The default is loopback: listening on every interface must be asked
    /// for, since MLLP carries patient data in clear text.
    pub addr: SocketAddr,
    /// Largest message accepted, in bytes.
    pub max_message_bytes: usize,
    /// How long the writer waits for more messages before committing a group.
    pub group_window: Duration,
    /// Most messages in one commit.
    pub max_group: usize,
    /// A connection silent for this long is closed.
    pub idle_timeout: Duration,
    /// A frame begun must end within this long.
    pub frame_timeout: Duration,
    /// Most connections at once; more are closed at once.
    pub max_connections: usize,
    /// Peers allowed to connect (addresses or CIDR blocks); empty: any.
    pub allow: Vec<PeerRange>,
    /// Certificate and key: MLLP over TLS only when set.
    pub tls: Option<crate::TlsConfig>,
    /// With TLS, require client certificates signed by a CA in this PEM file.
    pub client_ca: Option<std::path::PathBuf>,
}

/// An address or a CIDR block (`10.1.0.0/16`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRange {
    network: std::net::IpAddr,
    prefix: u8,
}

impl std::str::FromStr for PeerRange {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let network: std::net::IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an address or CIDR block"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix must be 0 to {max}"))?,
        };
        Ok(Self { network, prefix })
    }
}

impl PeerRange {
    /// Whether `addr` is inside the range (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, addr: std::net::IpAddr) -> bool {
        let addr = match addr {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, std::net::IpAddr::V4),
            v4 => v4,
        };
        let bits = |a: std::net::IpAddr| -> (u128, u32) {
            match a {
                std::net::IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
                std::net::IpAddr::V6(v) => (u128::from(v), 128),
            }
        };
        let ((n, width), (a, width_a)) = (bits(self.network), bits(addr));
        if width != width_a {
            return false;
        }
        let shift = width - u32::from(self.prefix);
        if shift >= width {
            return true;
        }
        (n >> shift) == (a >> shift)
    }
}

impl Default for MllpConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], DEFAULT_MLLP_PORT)),
            max_message_bytes: 16 * 1024 * 1024,
            group_window: Duration::from_millis(10),
            max_group: 1000,
            idle_timeout: Duration::from_secs(600),
            frame_timeout: Duration::from_secs(30),
            max_connections: 64,
            allow: Vec::new(),
            tls: None,
            client_ca: None,
        }
    }
}

/// A message waiting for the writer, with the way back to its connection.
#[derive(Debug)]
struct Submission {
    message: InboundMessage,
    reply: oneshot::Sender<std::result::Result<StoreOutcome, String>>,
}

/// A bound MLLP listener.
pub struct MllpServer {
    listener: TcpListener,
    config: MllpConfig,
    store: Hl7Store,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for MllpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MllpServer")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl MllpServer {
    /// Binds the listener. The store has already loaded the keys of the messages in the lake.
    /// Fails, rather than serving in the clear, when a configured certificate cannot be used.
    pub async fn bind(config: MllpConfig, store: Hl7Store) -> Result<Self> {
        let tls = config
            .tls
            .as_ref()
            .map(|t| t.acceptor_with_clients(config.client_ca.as_deref()))
            .transpose()?;
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| Error::Bind {
                addr: config.addr.to_string(),
                source,
            })?;
        Ok(Self {
            listener,
            config,
            store,
            tls,
        })
    }

    /// Whether senders must use TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` completes; messages already received are stored and
    /// acknowledged before it returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let MllpServer {
            listener,
            config,
            store,
            tls,
        } = self;
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
        let audit_lake = store.lake().clone();
        let (tx, rx) = mpsc::channel::<Submission>(config.max_group * 4);
        let writer = tokio::spawn(write_groups(store, rx, config.clone()));
        tracing::info!(addr = %config.addr, "MLLP listener ready.");
        tokio::pin!(shutdown);
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => {
                    match accepted {
                        Ok((stream, peer)) => {
                            if !config.allow.is_empty()
                                && !config.allow.iter().any(|r| r.contains(peer.ip()))
                            {
                                tracing::warn!(%peer, "MLLP connection refused: the peer is not on the allow-list.");
                                let mut record = carelake_lake::AuditRecord::new(
                                    "mllp",
                                    carelake_common::Interface::Mllp.as_str(),
                                    "sign_in",
                                );
                                record.peer = Some(peer.to_string());
                                record.outcome = "denied".into();
                                record.detail = Some("the peer is not on the MLLP allow-list".into());
                                let lake = audit_lake.clone();
                                tokio::spawn(async move {
                                    if let Err(e) = lake.audit_append(vec![record]).await {
                                        tracing::error!(error = %e, "An MLLP refusal could not be audited.");
                                    }
                                });
                                drop(stream);
                                continue;
                            }
                            let Ok(slot) = std::sync::Arc::clone(&slots).try_acquire_owned() else {
                                tracing::warn!(%peer, "MLLP connection refused: too many connections.");
                                drop(stream);
                                continue;
                            };
                            let tx = tx.clone();
                            let config = config.clone();
                            let tls = tls.clone();
                            connections.spawn(async move {
                                let _ = stream.set_nodelay(true);
                                let outcome = match tls {
                                    None => serve_connection(stream, peer, tx, &config).await,
                                    Some(acceptor) => match tokio::time::timeout(
                                        Duration::from_secs(10),
                                        acceptor.accept(stream),
                                    )
                                    .await
                                    {
                                        Ok(Ok(stream)) => serve_connection(stream, peer, tx, &config).await,
                                        Ok(Err(e)) => {
                                            tracing::warn!(%peer, error = %e, "MLLP TLS handshake failed.");
                                            Ok(())
                                        }
                                        Err(_) => {
                                            tracing::warn!(%peer, "MLLP TLS handshake timed out.");
                                            Ok(())
                                        }
                                    },
                                };
                                if let Err(e) = outcome {
                                    tracing::warn!(%peer, error = %e, "MLLP connection ended with an error.");
                                }
                                drop(slot);
                            });
                        }
                        Err(e) => {
                            // Out of file descriptors and the like: wait a little, go on.
                            tracing::warn!(error = %e, "Accepting an MLLP connection failed.");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        tracing::info!("MLLP listener stopping.");
        drop(listener);
        connections.abort_all();
        drop(tx);
        writer
            .await
            .map_err(|e| Error::Accept(std::io::Error::other(e.to_string())))?;
        Ok(())
    }
}

/// Reads frames from one connection and answers each with its ACK, in order.
async fn serve_connection<S>(
    mut stream: S,
    peer: SocketAddr,
    tx: mpsc::Sender<Submission>,
    config: &MllpConfig,
) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tracing::debug!(%peer, "MLLP connection opened.");
    let mut decoder = FrameDecoder::new(config.max_message_bytes);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut frame_deadline: Option<tokio::time::Instant> = None;
    loop {
        // Inside a frame, the rest must come before the frame's deadline; between frames, the
        // idle time applies.
        let wait = match frame_deadline {
            Some(deadline) => deadline.saturating_duration_since(tokio::time::Instant::now()),
            None => config.idle_timeout,
        };
        let n = match tokio::time::timeout(wait, stream.read(&mut buffer)).await {
            Ok(read) => read?,
            Err(_) if frame_deadline.is_some() => {
                tracing::warn!(%peer, "MLLP frame not finished in time; closing.");
                return Ok(());
            }
            Err(_) => {
                tracing::debug!(%peer, "MLLP connection idle; closing.");
                return Ok(());
            }
        };
        if n == 0 {
            tracing::debug!(%peer, "MLLP connection closed by the peer.");
            return Ok(());
        }
        decoder.push(&buffer[..n]);
        frame_deadline = match (decoder.in_frame(), frame_deadline) {
            (false, _) => None,
            (true, Some(d)) => Some(d),
            (true, None) => Some(tokio::time::Instant::now() + config.frame_timeout),
        };
        while let Some(frame) = decoder.next_frame() {
            let ack = match frame {
                Ok(bytes) => handle_frame(bytes, peer, &tx).await,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "Bad MLLP frame.");
                    carelake_hl7::ack_for_unparseable(
                        AckCode::AR,
                        &e.to_string(),
                        &control_id(),
                        chrono::Utc::now().naive_utc(),
                    )
                }
            };
            stream
                .write_all(&carelake_hl7::mllp::frame(ack.as_bytes()))
                .await?;
        }
    }
}

/// Stores one message and builds its ACK.
async fn handle_frame(bytes: Vec<u8>, peer: SocketAddr, tx: &mpsc::Sender<Submission>) -> String {
    let text = decode_text(bytes);
    let now = chrono::Utc::now().naive_utc();
    let (reply, answer) = oneshot::channel();
    let submission = Submission {
        message: InboundMessage {
            text,
            peer: peer.to_string(),
        },
        reply,
    };
    let outcome = if tx.send(submission).await.is_err() {
        Err("the listener is shutting down".to_string())
    } else {
        answer
            .await
            .unwrap_or_else(|_| Err("the writer stopped".to_string()))
    };
    // The message text went to the writer; parse our own view of it for the ACK.
    let text = match &outcome {
        Ok(StoreOutcome::Stored { text } | StoreOutcome::Duplicate { text }) => Some(text),
        Ok(StoreOutcome::Rejected { text, .. } | StoreOutcome::Conflict { text, .. }) => Some(text),
        Err(_) => None,
    };
    let parsed = text.and_then(|t| Message::parse(t).ok());
    let (code, note) = match &outcome {
        Ok(StoreOutcome::Stored { .. }) => (AckCode::AA, None),
        Ok(StoreOutcome::Duplicate { .. }) => (AckCode::AA, Some("duplicate: already stored")),
        Ok(StoreOutcome::Rejected { reason, .. }) => (AckCode::AR, Some(reason.as_str())),
        Ok(StoreOutcome::Conflict { reason, .. }) => (AckCode::AE, Some(reason.as_str())),
        Err(reason) => (AckCode::AE, Some(reason.as_str())),
    };
    match &parsed {
        Some(message) => carelake_hl7::ack(message, code, note, &control_id(), now),
        None => carelake_hl7::ack_for_unparseable(
            if matches!(code, AckCode::AA) {
                AckCode::AE
            } else {
                code
            },
            note.unwrap_or("the message could not be parsed"),
            &control_id(),
            now,
        ),
    }
}

/// Message text: UTF-8 when valid, else Latin-1 (HL7's other common character set).
fn decode_text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => e.into_bytes().iter().map(|&b| b as char).collect(),
    }
}

/// A fresh control id for an ACK.
fn control_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "CL{}{:06}",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        NEXT.fetch_add(1, Ordering::Relaxed) % 1_000_000
    )
}

/// The writer: groups submissions and stores each group in one commit.
async fn write_groups(mut store: Hl7Store, mut rx: mpsc::Receiver<Submission>, config: MllpConfig) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        let deadline = tokio::time::Instant::now() + config.group_window;
        while group.len() < config.max_group {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(next)) => group.push(next),
                Ok(None) | Err(_) => break,
            }
        }
        let (messages, replies): (Vec<_>, Vec<_>) =
            group.into_iter().map(|s| (s.message, s.reply)).unzip();
        let count = messages.len();
        let peers: Vec<String> = messages.iter().map(|m| m.peer.clone()).collect();
        match store.store(messages).await {
            Ok(outcomes) => {
                if let Err(e) = audit_group(&store, &peers, &outcomes).await {
                    // Stored but not audited: answer AE so that the sender resends; the resend
                    // is a duplicate (acknowledged, not stored twice) and is audited then.
                    tracing::error!(messages = count, error = %e, "The audit record of MLLP messages could not be written; answering AE.");
                    for reply in replies {
                        let _ =
                            reply.send(Err("the audit log is unavailable, resend later".into()));
                    }
                    continue;
                }
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(messages = count, error = %e, "Storing MLLP messages failed; answering AE.");
                let reason = format!("storage failed, resend later: {e}");
                for reply in replies {
                    let _ = reply.send(Err(reason.clone()));
                }
            }
        }
    }
}

/// One audit record per sending peer in a group: messages stored, duplicates and rejections.
/// MLLP has no sign-in, so the writer is the server's principal and the peer names the sender.
async fn audit_group(
    store: &Hl7Store,
    peers: &[String],
    outcomes: &[StoreOutcome],
) -> carelake_lake::Result<()> {
    let mut by_peer: std::collections::BTreeMap<&str, [i64; 3]> = Default::default();
    for (peer, outcome) in peers.iter().zip(outcomes) {
        let counts = by_peer.entry(peer.as_str()).or_default();
        match outcome {
            StoreOutcome::Stored { .. } => counts[0] += 1,
            StoreOutcome::Duplicate { .. } => counts[1] += 1,
            StoreOutcome::Rejected { .. } | StoreOutcome::Conflict { .. } => counts[2] += 1,
        }
    }
    let records = by_peer
        .into_iter()
        .map(|(peer, [stored, duplicates, rejected])| {
            let mut record = carelake_lake::AuditRecord::new(
                store.principal().name.as_str(),
                carelake_common::Interface::Mllp.as_str(),
                "ingest",
            );
            record.peer = Some(peer.to_string());
            record.tables = Some(Hl7Store::messages_table());
            record.rows = Some(stored);
            record.detail = Some(format!(
                "{stored} stored, {duplicates} duplicates, {rejected} rejected"
            ));
            record
        })
        .collect();
    store.lake().audit_append(records).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ranges_match_addresses_and_blocks() {
        let range: PeerRange = "10.1.0.0/16".parse().unwrap();
        assert!(range.contains("10.1.200.3".parse().unwrap()));
        assert!(!range.contains("10.2.0.1".parse().unwrap()));
        assert!(range.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one: PeerRange = "192.168.1.5".parse().unwrap();
        assert!(one.contains("192.168.1.5".parse().unwrap()));
        assert!(!one.contains("192.168.1.6".parse().unwrap()));
        let any: PeerRange = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("8.8.8.8".parse().unwrap()));
        assert!(!any.contains("::1".parse().unwrap()));
        let v6: PeerRange = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<PeerRange>().is_err());
        assert!("nonsense".parse::<PeerRange>().is_err());
    }

    #[test]
    fn latin1_text_is_decoded() {
        assert_eq!(decode_text(b"MSH|caf\xe9".to_vec()), "MSH|café");
        assert_eq!(decode_text("MSH|café".as_bytes().to_vec()), "MSH|café");
    }

    #[test]
    fn control_ids_differ() {
        assert_ne!(control_id(), control_id());
    }
}

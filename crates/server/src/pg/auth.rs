//! SCRAM-SHA-256 sign-in (RFC 5802, RFC 7677) against the verifiers in the lake's users table.
//!
//! The exchange: the client names itself in the start-up message and sends a nonce; the server
//! answers with its nonce, the user's salt and iteration count; the client proves it knows the
//! password; the server checks the proof against `StoredKey` and proves its own knowledge with
//! `ServerKey`. An unknown, disabled or verifier-less user gets a made-up salt that stays the
//! same across attempts and a refusal only at the end, as for a wrong password.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use carelake_lake::scram::{ITERATIONS, SCRAM_SHA_256};
use carelake_lake::{ScramVerifier, User};
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::{
    ClientInfo, METADATA_USER, PgWireConnectionState, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use ring::digest;
use ring::rand::SecureRandom;

use super::Shared;
use super::conn::QueryHandler;

enum State {
    /// Waiting for the start-up message or the client's first SCRAM message.
    Initial,
    /// The server's first message is sent; waiting for the client's proof.
    Challenged(Box<Challenge>),
    /// Signed in (or refused).
    Done,
}

struct Challenge {
    user: Option<User>,
    verifier: ScramVerifier,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

/// The start-up handler of one connection.
pub(crate) struct ScramStartup {
    shared: Arc<Shared>,
    query: Arc<QueryHandler>,
    require_tls: bool,
    state: tokio::sync::Mutex<State>,
}

fn fatal(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message.into(),
    )))
}

fn protocol(message: &str) -> PgWireError {
    PgWireError::InvalidScramMessage(message.to_string())
}

impl ScramStartup {
    pub(crate) fn new(shared: Arc<Shared>, query: Arc<QueryHandler>, require_tls: bool) -> Self {
        Self {
            shared,
            query,
            require_tls,
            state: tokio::sync::Mutex::new(State::Initial),
        }
    }

    /// A made-up verifier for a name that cannot sign in: its salt depends only on the name and
    /// this server's secret, and no proof matches it.
    fn mock_verifier(&self, name: &str) -> ScramVerifier {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&self.shared.mock_secret);
        ctx.update(name.as_bytes());
        let salt = ctx.finish().as_ref()[..16].to_vec();
        ScramVerifier::unmatchable(salt, ITERATIONS)
    }

    async fn challenge(
        &self,
        name: &str,
        peer: std::net::IpAddr,
        client_first: &[u8],
    ) -> PgWireResult<Challenge> {
        let text = std::str::from_utf8(client_first).map_err(|_| protocol("not UTF-8"))?;
        // gs2-header: channel-binding flag, authorisation identity, then the bare message.
        let mut parts = text.splitn(3, ',');
        let (flag, authzid, bare) = match (parts.next(), parts.next(), parts.next()) {
            (Some(f), Some(a), Some(b)) => (f, a, b),
            _ => return Err(protocol("malformed client-first-message")),
        };
        if flag.starts_with("p=") {
            return Err(protocol("channel binding is not offered by this server"));
        }
        if flag != "n" && flag != "y" {
            return Err(protocol("malformed channel-binding flag"));
        }
        if !authzid.is_empty() {
            return Err(protocol("an authorisation identity is not supported"));
        }
        let client_nonce = bare
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic() && b != b','))
            .ok_or_else(|| protocol("no client nonce"))?;
        let sign_in = &self.shared.sign_in;
        let user = match sign_in.admit(name, Some(peer)).await {
            Ok(user) => user,
            Err(refusal) => {
                sign_in.refused(
                    name,
                    Some(peer),
                    carelake_common::Interface::Postgres,
                    &refusal,
                );
                let code = match refusal {
                    crate::Refusal::Internal(_) => "XX000",
                    crate::Refusal::Busy => "53300",
                    _ => "28P01",
                };
                return Err(fatal(code, refusal.to_string()));
            }
        };
        let usable = user.filter(|u| !u.disabled);
        let verifier = match usable.as_ref().map(|u| (u, u.scram_verifier())) {
            Some((_, Some(v))) => v,
            Some((u, None)) => {
                tracing::info!(
                    user = %u.name,
                    "Postgres sign-in refused: the user's password predates SCRAM verifiers; set it again with `carelake user password`."
                );
                self.mock_verifier(name)
            }
            None => self.mock_verifier(name),
        };
        let mut server_nonce = [0u8; 18];
        ring::rand::SystemRandom::new()
            .fill(&mut server_nonce)
            .map_err(|_| protocol("no random numbers"))?;
        let nonce = format!("{client_nonce}{}", B64.encode(server_nonce));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&verifier.salt),
            verifier.iterations
        );
        Ok(Challenge {
            user: usable.filter(|u| u.scram_verifier().is_some()),
            verifier,
            gs2_header: format!("{flag},{authzid},"),
            client_first_bare: bare.to_string(),
            server_first,
            nonce,
        })
    }

    /// Checks the client's proof; on success the user and the server's final message.
    fn check(challenge: &Challenge, client_final: &[u8]) -> PgWireResult<Option<(User, String)>> {
        let text = std::str::from_utf8(client_final).map_err(|_| protocol("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| protocol("no client proof"))?;
        let mut binding = None;
        let mut nonce = None;
        for attribute in without_proof.split(',') {
            if let Some(v) = attribute.strip_prefix("c=") {
                binding = Some(v);
            } else if let Some(v) = attribute.strip_prefix("r=") {
                nonce = Some(v);
            }
        }
        if binding != Some(B64.encode(challenge.gs2_header.as_bytes()).as_str()) {
            return Err(protocol("channel binding does not match"));
        }
        if nonce != Some(challenge.nonce.as_str()) {
            return Err(protocol("nonce does not match"));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| protocol("proof is not base64"))?;
        let auth_message = format!(
            "{},{},{}",
            challenge.client_first_bare, challenge.server_first, without_proof
        );
        let Some(user) = &challenge.user else {
            return Ok(None);
        };
        Ok(challenge
            .verifier
            .verify_proof(auth_message.as_bytes(), &proof)
            .map(|signature| (user.clone(), format!("v={}", B64.encode(signature)))))
    }
}

#[async_trait]
impl StartupHandler for ScramStartup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut state = self.state.lock().await;
        match (message, &*state) {
            (PgWireFrontendMessage::Startup(startup), State::Initial) => {
                protocol_negotiation(client, &startup).await?;
                save_startup_parameters_to_metadata(client, &startup);
                if self.require_tls && !client.is_secure() {
                    return Err(fatal(
                        "28000",
                        "this server requires TLS: connect with sslmode=require",
                    ));
                }
                if !client.metadata().contains_key(METADATA_USER) {
                    return Err(PgWireError::UserNameRequired);
                }
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(Authentication::SASL(
                        vec![SCRAM_SHA_256.to_string()],
                    )))
                    .await?;
            }
            (PgWireFrontendMessage::PasswordMessageFamily(msg), State::Initial) => {
                let initial = msg.into_sasl_initial_response()?;
                if initial.auth_method != SCRAM_SHA_256 {
                    return Err(PgWireError::UnsupportedSASLAuthMethod(initial.auth_method));
                }
                let name = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .ok_or(PgWireError::UserNameRequired)?;
                let data = initial.data.unwrap_or_default();
                let challenge = self
                    .challenge(&name, client.socket_addr().ip(), &data)
                    .await?;
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::SASLContinue(Bytes::from(challenge.server_first.clone())),
                    ))
                    .await?;
                *state = State::Challenged(Box::new(challenge));
            }
            (PgWireFrontendMessage::PasswordMessageFamily(msg), State::Challenged(challenge)) => {
                let response = msg.into_sasl_response()?;
                let outcome = Self::check(challenge, &response.data)?;
                let name = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                let peer = client.socket_addr().to_string();
                let peer_ip = client.socket_addr().ip();
                let postgres = carelake_common::Interface::Postgres;
                let Some((user, server_final)) = outcome else {
                    *state = State::Done;
                    self.shared
                        .sign_in
                        .failed(&name, Some(peer_ip), postgres)
                        .await;
                    return Err(PgWireError::InvalidPassword(name));
                };
                *state = State::Done;
                drop(state);
                self.shared
                    .sign_in
                    .succeeded(&user, Some(peer_ip), postgres);
                self.query
                    .sign_in(&self.shared, &user, peer)
                    .await
                    .map_err(|e| fatal("XX000", e.to_string()))?;
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::SASLFinal(Bytes::from(server_final)),
                    ))
                    .await?;
                let timeout_ms = self.shared.config.statement_timeout.as_millis().to_string();
                // The server's maximum, whatever the start-up message carried.
                client
                    .metadata_mut()
                    .insert("statement_timeout_ms".to_string(), timeout_ms);
                let (pid, secret) = RandomPidSecretKeyGenerator::default().generate(client);
                client.set_pid_and_secret_key(pid, secret);
                let mut parameters = DefaultServerParameterProvider::default();
                parameters.is_superuser = user.roles.iter().any(|r| r == "admin");
                parameters.search_path = "raw".to_string();
                parameters.server_version = "16.6 (carelake)".to_string();
                parameters.application_name = None;
                finish_authentication(client, &parameters).await?;
                tracing::info!(user = %user.name, peer = %client.socket_addr(), "Postgres client signed in.");
            }
            _ => return Err(protocol("unexpected message during sign-in")),
        }
        Ok(())
    }
}

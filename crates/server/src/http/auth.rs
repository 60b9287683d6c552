//! Who is calling: HTTP Basic with a lake user's password, or a bearer token from
//! `POST /api/v1/tokens`. A verified password is remembered (by its SHA-256, never in the clear)
//! for a few minutes, so that Argon2id is not paid on every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
use carelake_lake::{User, UserStore};
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};

/// How long a verified password is trusted without checking it again.
const VERIFIED_FOR: Duration = Duration::from_secs(300);
/// How long a bearer token lives.
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

type Digest32 = [u8; 32];

fn digest(parts: &[&[u8]]) -> Digest32 {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// Verified passwords and issued tokens.
#[derive(Default)]
pub(crate) struct Credentials {
    verified: Mutex<HashMap<Digest32, (User, Instant)>>,
    tokens: Mutex<HashMap<Digest32, (User, Instant)>>,
}

impl Credentials {
    pub(crate) async fn basic(
        &self,
        users: &UserStore,
        name: &str,
        password: &str,
    ) -> Result<User, ApiError> {
        let key = digest(&[name.as_bytes(), password.as_bytes()]);
        if let Some((user, at)) = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && at.elapsed() < VERIFIED_FOR
        {
            return Ok(user.clone());
        }
        let verified = users.verify(name, password).await;
        if let Ok(found) = &verified {
            let (interface, peer) = super::request_origin();
            crate::audit_sign_in(
                users.lake(),
                name,
                interface,
                peer.map(|p| p.ip().to_string()),
                found.is_some(),
            )
            .await;
        }
        match verified {
            Ok(Some(user)) => {
                let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
                verified.retain(|_, (_, at)| at.elapsed() < VERIFIED_FOR);
                verified.insert(key, (user.clone(), Instant::now()));
                Ok(user)
            }
            Ok(None) => Err(ApiError::unauthorized("wrong user name or password")),
            Err(e) => Err(ApiError::internal(e.to_string())),
        }
    }

    pub(crate) fn bearer(&self, token: &str) -> Result<User, ApiError> {
        let key = digest(&[token.as_bytes()]);
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        match tokens.get(&key) {
            Some((user, expires)) if Instant::now() < *expires => Ok(user.clone()),
            Some(_) => {
                tokens.remove(&key);
                Err(ApiError::unauthorized("the token has expired"))
            }
            None => Err(ApiError::unauthorized("unknown token")),
        }
    }

    /// Forgets a token (signing out).
    pub(crate) fn revoke(&self, token: &str) {
        let key = digest(&[token.as_bytes()]);
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }

    /// A new bearer token for `user` (only its digest is kept).
    pub(crate) fn issue(&self, user: &User) -> String {
        let token = format!(
            "clk_{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.retain(|_, (_, expires)| Instant::now() < *expires);
        tokens.insert(
            digest(&[token.as_bytes()]),
            (user.clone(), Instant::now() + TOKEN_LIFETIME),
        );
        token
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub(crate) struct Authed(pub(crate) User);

impl FromRequestParts<Arc<AppState>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("sign in: HTTP Basic or a bearer token"))?;
        let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
        let user = if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::unauthorized("malformed Basic credentials"))?;
            let (name, password) = decoded
                .split_once(':')
                .ok_or_else(|| ApiError::unauthorized("malformed Basic credentials"))?;
            state
                .credentials
                .basic(&state.lake.users(), name, password)
                .await?
        } else if scheme.eq_ignore_ascii_case("bearer") {
            state.credentials.bearer(value.trim())?
        } else {
            return Err(ApiError::unauthorized(
                "sign in: HTTP Basic or a bearer token",
            ));
        };
        Ok(Authed(user))
    }
}

//! Bearer tokens and web UI sessions, kept in the lake so that they survive a restart and can
//! be listed and revoked from the command line while a server runs: an append-only event table
//! at `<lake>/_carelake/tokens` (issued, revoked), folded in time order.
//!
//! A token is `clk_<id>_<secret>`: the id (16 hex digits) names it in listings and in
//! `carelake token revoke`; only the SHA-256 of the whole token is stored, so that whoever
//! reads the lake's files cannot sign in with what they find. A token stands while it is not
//! expired, not revoked, and its user's sign-in still stands ([`User::sign_in_stands`]: not
//! disabled, no password change or admin revocation since it was issued).

use std::collections::BTreeMap;

use carelake_common::Principal;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::util::{append_events, read_events};
use crate::{Error, Lake, Result, User};

const TABLE: &str = "tokens";

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A bearer token from `POST /api/v1/tokens`.
    Api,
    /// A web UI session (its cookie); ends when idle for the server's idle time as well.
    Ui,
}

impl TokenKind {
    /// `api` or `ui`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Ui => "ui",
        }
    }
}

/// A token's event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum TokenEvent {
    Issued {
        id: String,
        user: String,
        kind: TokenKind,
        /// Hex SHA-256 of the whole token.
        hash: String,
        issued_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    Revoked {
        id: String,
        at: DateTime<Utc>,
    },
}

/// A token as its events leave it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Its id (the part after `clk_` and before the secret).
    pub id: String,
    /// Whose it is.
    pub user: String,
    /// API token or UI session.
    pub kind: TokenKind,
    /// Hex SHA-256 of the whole token.
    pub hash: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenInfo {
    /// Whether the token is usable at `now` by `user` (its owner as the lake has them now).
    pub fn stands(&self, user: Option<&User>, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none()
            && now < self.expires_at
            && user.is_some_and(|u| u.name == self.user && u.sign_in_stands(self.issued_at))
    }

    /// `active`, `expired`, `revoked`, or `void` (its user was disabled, changed their
    /// password or had their sessions revoked since).
    pub fn state(&self, user: Option<&User>, now: DateTime<Utc>) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if now >= self.expires_at {
            "expired"
        } else if self.stands(user, now) {
            "active"
        } else {
            "void"
        }
    }
}

/// A token just issued: shown once.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The token to present (`clk_<id>_<secret>`).
    pub token: String,
    /// What the lake keeps of it.
    pub info: TokenInfo,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// The hex SHA-256 of a token, as the lake keeps it.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The id part of a presented token, when it has the shape of one.
pub fn token_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix("clk_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) && secret.len() >= 32)
        .then_some(id)
}

/// The tokens of a lake.
#[derive(Debug, Clone)]
pub struct TokenStore {
    lake: Lake,
}

impl TokenStore {
    pub(crate) fn new(lake: Lake) -> Self {
        Self { lake }
    }

    /// Issues a token for `user`, living `lifetime`.
    pub async fn issue(
        &self,
        user: &User,
        kind: TokenKind,
        lifetime: std::time::Duration,
    ) -> Result<IssuedToken> {
        use argon2::password_hash::rand_core::{OsRng, RngCore};
        let mut id = [0u8; 8];
        let mut secret = [0u8; 24];
        OsRng.fill_bytes(&mut id);
        OsRng.fill_bytes(&mut secret);
        let id = hex::encode(id);
        let token = format!("clk_{id}_{}", hex::encode(secret));
        let issued_at = Utc::now();
        let expires_at = issued_at
            + chrono::Duration::from_std(lifetime)
                .map_err(|_| Error::Tokens("a token lifetime out of range".into()))?;
        let info = TokenInfo {
            id: id.clone(),
            user: user.name.clone(),
            kind,
            hash: token_hash(&token),
            issued_at,
            expires_at,
            revoked_at: None,
        };
        let event = TokenEvent::Issued {
            id,
            user: user.name.clone(),
            kind,
            hash: info.hash.clone(),
            issued_at,
            expires_at,
        };
        append_events(
            &self.lake,
            TABLE,
            "carelake tokens and UI sessions (hashed)",
            &[event],
            &user.principal(),
            Error::Tokens,
        )
        .await?;
        Ok(IssuedToken { token, info })
    }

    /// Revokes tokens by id; the ids that were not known are returned.
    pub async fn revoke(&self, ids: &[String], by: &Principal) -> Result<Vec<String>> {
        let known = self.list().await?;
        let (found, unknown): (Vec<&String>, Vec<&String>) = ids
            .iter()
            .partition(|id| known.iter().any(|t| &t.id == *id));
        let now = Utc::now();
        let events: Vec<TokenEvent> = found
            .into_iter()
            .map(|id| TokenEvent::Revoked {
                id: id.clone(),
                at: now,
            })
            .collect();
        append_events(
            &self.lake,
            TABLE,
            "carelake tokens and UI sessions (hashed)",
            &events,
            by,
            Error::Tokens,
        )
        .await?;
        Ok(unknown.into_iter().cloned().collect())
    }

    /// Every token ever issued, oldest first.
    pub async fn list(&self) -> Result<Vec<TokenInfo>> {
        let events: Vec<TokenEvent> = read_events(&self.lake, TABLE, Error::Tokens).await?;
        let mut tokens: BTreeMap<String, TokenInfo> = BTreeMap::new();
        for event in events {
            match event {
                TokenEvent::Issued {
                    id,
                    user,
                    kind,
                    hash,
                    issued_at,
                    expires_at,
                } => {
                    tokens.insert(
                        id.clone(),
                        TokenInfo {
                            id,
                            user,
                            kind,
                            hash,
                            issued_at,
                            expires_at,
                            revoked_at: None,
                        },
                    );
                }
                TokenEvent::Revoked { id, at } => {
                    if let Some(t) = tokens.get_mut(&id) {
                        t.revoked_at.get_or_insert(at);
                    }
                }
            }
        }
        let mut all: Vec<TokenInfo> = tokens.into_values().collect();
        all.sort_by_key(|t| t.issued_at);
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_read_from_well_formed_tokens_only() {
        let token = format!("clk_0123456789abcdef_{}", "ab".repeat(24));
        assert_eq!(token_id(&token), Some("0123456789abcdef"));
        assert_eq!(token_id("clk_0123456789abcdef_short"), None);
        assert_eq!(token_id("0123456789abcdef_x"), None);
        assert_eq!(token_id(&format!("clk_xyz_{}", "ab".repeat(24))), None);
        assert_eq!(token_hash("a").len(), 64);
    }
}

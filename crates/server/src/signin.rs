//! Sign-in for every network interface (HTTP Basic, bearer tokens, the web UI's session cookie,
//! Postgres SCRAM): one [`SignIn`] per server process, shared by its listeners.
//!
//! - Passwords are verified with Argon2id behind a semaphore sized to the cores, off the async
//!   runtime ([`carelake_lake::verify_bounded`]); a verified password is remembered (by its
//!   SHA-256) for a few minutes so that Argon2id is not paid on every request.
//! - Failed sign-ins are counted per user name and per peer address in a window: after a few,
//!   each further attempt must wait (doubling, up to [`MAX_DELAY`]) and is refused at once,
//!   without Argon2id, until then; after [`SignInConfig::lockout_after`] failures in a row the
//!   account is locked (a `lock` event in the users table, so every process and the command
//!   line see it) until an admin runs `carelake user unlock` or [`SignInConfig::lockout_for`]
//!   has passed. Unknown names are treated alike, so that a refusal never tells whether a
//!   name exists.
//! - Tokens and UI sessions are kept hashed in the lake ([`carelake_lake::TokenStore`]), survive
//!   a restart, expire, and end when revoked, when their user is disabled, changes password or
//!   has their sessions revoked. UI sessions also end when idle for
//!   [`SignInConfig::ui_idle_timeout`] (idle time is tracked in memory: after a restart a UI
//!   session counts as last seen when it was issued).
//! - The lake's users and tokens are read again at most every [`REFRESH_AFTER`], so that a
//!   revocation takes effect within about a second on every interface.
//! - Every sign-in and refusal is recorded in the audit log, in batches (a flood of attempts is
//!   a few commits a second, not one each).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use carelake_common::{Interface, Principal};
use carelake_lake::{AuditRecord, Lake, TokenInfo, TokenKind, User};
use chrono::Utc;
use sha2::{Digest, Sha256};

/// How stale the cached users and tokens may be.
const REFRESH_AFTER: Duration = Duration::from_secs(1);
/// How long a verified password is trusted without Argon2id again (while its user's sign-in
/// stands).
const VERIFIED_FOR: Duration = Duration::from_secs(300);
/// Failures older than this are forgotten.
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures of one user name allowed before attempts must wait.
const FREE_USER_FAILURES: u32 = 3;
/// Failures from one address allowed before attempts must wait (addresses are shared behind
/// a hospital's NAT).
const FREE_ADDRESS_FAILURES: u32 = 10;
/// The longest wait between attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// Most failure counters kept (oldest dropped first).
const MAX_COUNTERS: usize = 100_000;
/// Most audit records waiting to be written.
const AUDIT_QUEUE: usize = 10_000;

/// Sign-in settings (`carelake serve` flags).
#[derive(Debug, Clone)]
pub struct SignInConfig {
    /// Failed sign-ins of one user in a row before the account is locked (0: never).
    pub lockout_after: u32,
    /// How long a lock-out lasts unless an admin unlocks the account first.
    pub lockout_for: Duration,
    /// How long a bearer token or UI session lives.
    pub token_lifetime: Duration,
    /// A UI session idle this long is signed out.
    pub ui_idle_timeout: Duration,
}

impl Default for SignInConfig {
    /// Lock after 10 failures for 15 minutes; tokens live 12 hours; UI sessions end after
    /// 30 idle minutes.
    fn default() -> Self {
        Self {
            lockout_after: 10,
            lockout_for: Duration::from_secs(15 * 60),
            token_lifetime: Duration::from_secs(12 * 3600),
            ui_idle_timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// Why a sign-in was refused. The messages never say whether a name exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Wrong user name or password (or an unknown, disabled user).
    Wrong,
    /// Too many failed attempts: wait this long.
    Throttled(Duration),
    /// The account is locked after repeated failures.
    Locked,
    /// Too many sign-ins at once.
    Busy,
    /// The token or session is unknown, expired, revoked, or void.
    Token(&'static str),
    /// The lake could not be read.
    Internal(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Wrong => write!(f, "wrong user name or password"),
            Refusal::Throttled(wait) => write!(
                f,
                "too many failed sign-ins: try again in {} s",
                wait.as_secs().max(1)
            ),
            Refusal::Locked => write!(
                f,
                "the account is locked after repeated failed sign-ins: an admin can unlock it"
            ),
            Refusal::Busy => write!(f, "too many sign-ins at once: try again shortly"),
            Refusal::Token(why) => write!(f, "{why}"),
            Refusal::Internal(e) => write!(f, "{e}"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Counter {
    User(String),
    Address(IpAddr),
}

/// A password verified: whose, when (for the sign-in's standing), and when remembered.
type Verified = (String, chrono::DateTime<Utc>, Instant);

/// A cached read of a lake table.
struct Cached<T> {
    read_at: Option<Instant>,
    value: Arc<T>,
}

impl<T: Default> Default for Cached<T> {
    fn default() -> Self {
        Self {
            read_at: None,
            value: Arc::new(T::default()),
        }
    }
}

/// The sign-in state of a server process.
pub struct SignIn {
    lake: Lake,
    config: SignInConfig,
    users: tokio::sync::Mutex<Cached<HashMap<String, User>>>,
    tokens: tokio::sync::Mutex<Cached<HashMap<String, TokenInfo>>>,
    verified: Mutex<HashMap<[u8; 32], Verified>>,
    failures: Mutex<HashMap<Counter, Failures>>,
    last_seen: Mutex<HashMap<String, Instant>>,
    audit: tokio::sync::mpsc::Sender<AuditRecord>,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// The wait before the next attempt after `count` failures, `free` of which cost nothing.
fn delay(count: u32, free: u32) -> Duration {
    if count < free {
        return Duration::ZERO;
    }
    let doublings = (count - free).min(16);
    Duration::from_secs(1u64 << doublings).min(MAX_DELAY)
}

impl SignIn {
    /// Sign-in for `lake`; must be called inside a Tokio runtime (it starts the audit writer).
    pub fn new(lake: Lake, config: SignInConfig) -> Arc<Self> {
        let (audit, mut queue) = tokio::sync::mpsc::channel::<AuditRecord>(AUDIT_QUEUE);
        let writer_lake = lake.clone();
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut batch = vec![first];
                while batch.len() < 1000 {
                    match queue.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                if let Err(e) = writer_lake.audit_append(batch).await {
                    tracing::error!(error = %e, "Audit records of sign-ins could not be written.");
                }
            }
        });
        Arc::new(Self {
            lake,
            config,
            users: tokio::sync::Mutex::new(Cached::default()),
            tokens: tokio::sync::Mutex::new(Cached::default()),
            verified: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            last_seen: Mutex::new(HashMap::new()),
            audit,
        })
    }

    /// The settings.
    pub fn config(&self) -> &SignInConfig {
        &self.config
    }

    fn record(&self, record: AuditRecord) {
        if self.audit.try_send(record).is_err() {
            tracing::warn!("The audit queue of sign-ins is full: a sign-in record was dropped.");
        }
    }

    fn audit_sign_in(
        &self,
        name: &str,
        interface: Interface,
        peer: Option<IpAddr>,
        refusal: Option<&Refusal>,
    ) {
        let mut record = AuditRecord::new(name, interface.as_str(), "sign_in");
        record.peer = peer.map(|p| p.to_string());
        if let Some(refusal) = refusal {
            record.outcome = "denied".into();
            record.detail = Some(refusal.to_string());
        }
        self.record(record);
    }

    /// The lake's users, read again when the cache is older than a second.
    pub async fn users(&self) -> Result<Arc<HashMap<String, User>>, Refusal> {
        let mut cached = self.users.lock().await;
        if cached.read_at.is_none_or(|at| at.elapsed() > REFRESH_AFTER) {
            let list = self
                .lake
                .users()
                .list()
                .await
                .map_err(|e| Refusal::Internal(e.to_string()))?;
            cached.value = Arc::new(list.into_iter().map(|u| (u.name.clone(), u)).collect());
            cached.read_at = Some(Instant::now());
        }
        Ok(Arc::clone(&cached.value))
    }

    /// A user as the lake has them now (at most a second old).
    pub async fn user(&self, name: &str) -> Result<Option<User>, Refusal> {
        Ok(self.users().await?.get(name).cloned())
    }

    /// Whether a sign-in of `name` made at `signed_in_at` still stands (for open
    /// connections): the user is enabled and has not changed password or been revoked since.
    pub async fn still_signed_in(
        &self,
        name: &str,
        signed_in_at: chrono::DateTime<Utc>,
    ) -> Result<bool, Refusal> {
        Ok(self
            .user(name)
            .await?
            .is_some_and(|u| u.sign_in_stands(signed_in_at)))
    }

    fn locked_by_lake(&self, user: Option<&User>) -> bool {
        let lockout = chrono::Duration::from_std(self.config.lockout_for).unwrap_or_default();
        user.and_then(|u| u.locked_at)
            .is_some_and(|at| Utc::now() < at + lockout)
    }

    /// Whether `name` from `peer` may try a password now.
    fn admit_counters(&self, name: &str, peer: Option<IpAddr>) -> Result<(), Refusal> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let user = failures.get(&Counter::User(name.to_string()));
        let mut wait = Duration::ZERO;
        if let Some(f) = user
            && f.last.elapsed() < FAILURE_WINDOW
        {
            wait = wait.max(delay(f.count, FREE_USER_FAILURES).saturating_sub(f.last.elapsed()));
        }
        if let Some(peer) = peer
            && let Some(f) = failures.get(&Counter::Address(peer))
            && f.last.elapsed() < FAILURE_WINDOW
        {
            wait = wait.max(delay(f.count, FREE_ADDRESS_FAILURES).saturating_sub(f.last.elapsed()));
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(Refusal::Throttled(wait))
        }
    }

    /// Whether `name` from `peer` may try to sign in now (before any password work): refused
    /// while a wait is due or the account is locked.
    pub async fn admit(&self, name: &str, peer: Option<IpAddr>) -> Result<Option<User>, Refusal> {
        let user = self.user(name).await?;
        if self.locked(name, user.as_ref()) {
            return Err(Refusal::Locked);
        }
        self.admit_counters(name, peer)?;
        Ok(user)
    }

    /// Whether the account is locked: a user's lock is the lake's (so that an admin's unlock
    /// lifts it at once); an unknown name's is kept here, so that both look alike.
    fn locked(&self, name: &str, user: Option<&User>) -> bool {
        if user.is_some() {
            return self.locked_by_lake(user);
        }
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures
            .get(&Counter::User(name.to_string()))
            .and_then(|f| f.locked_until)
            .is_some_and(|until| Instant::now() < until)
    }

    /// Counts a failed sign-in of `name` from `peer`, locking the account when it reaches the
    /// limit, and records it.
    pub async fn failed(&self, name: &str, peer: Option<IpAddr>, interface: Interface) {
        self.audit_sign_in(name, interface, peer, Some(&Refusal::Wrong));
        let lock = {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            if failures.len() >= MAX_COUNTERS {
                failures.retain(|_, f| f.last.elapsed() < FAILURE_WINDOW);
                if failures.len() >= MAX_COUNTERS {
                    let oldest = failures
                        .iter()
                        .min_by_key(|(_, f)| f.last)
                        .map(|(k, _)| k.clone());
                    if let Some(k) = oldest {
                        failures.remove(&k);
                    }
                }
            }
            let mut bump = |key: Counter| -> u32 {
                let f = failures.entry(key).or_insert(Failures {
                    count: 0,
                    last: Instant::now(),
                    locked_until: None,
                });
                if f.last.elapsed() >= FAILURE_WINDOW {
                    f.count = 0;
                }
                f.count += 1;
                f.last = Instant::now();
                f.count
            };
            if let Some(peer) = peer {
                bump(Counter::Address(peer));
            }
            let count = bump(Counter::User(name.to_string()));
            let lock = self.config.lockout_after > 0 && count >= self.config.lockout_after;
            if lock && let Some(f) = failures.get_mut(&Counter::User(name.to_string())) {
                f.count = 0;
                f.locked_until = Some(Instant::now() + self.config.lockout_for);
            }
            lock
        };
        if !lock {
            return;
        }
        tracing::warn!(user = %name, "Account locked after repeated failed sign-ins.");
        let mut record = AuditRecord::new(name, interface.as_str(), "user");
        record.peer = peer.map(|p| p.to_string());
        record.outcome = "denied".into();
        record.detail = Some(format!(
            "locked after {} failed sign-ins in a row",
            self.config.lockout_after
        ));
        self.record(record);
        if let Ok(Some(_)) = self.user(name).await
            && let Err(e) = self
                .lake
                .users()
                .set_locked(name, true, &Principal::system())
                .await
        {
            tracing::error!(error = %e, "The lock-out could not be written to the lake.");
        }
        self.users.lock().await.read_at = None;
    }

    /// Records a successful sign-in and forgets the user's failures.
    pub fn succeeded(&self, user: &User, peer: Option<IpAddr>, interface: Interface) {
        self.audit_sign_in(&user.name, interface, peer, None);
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&Counter::User(user.name.clone()));
    }

    /// Records a refusal that did not test a password (throttled, locked, busy).
    pub fn refused(&self, name: &str, peer: Option<IpAddr>, interface: Interface, why: &Refusal) {
        self.audit_sign_in(name, interface, peer, Some(why));
    }

    /// Signs in with a password: the user as the lake has them now.
    pub async fn password(
        &self,
        name: &str,
        password: &str,
        interface: Interface,
        peer: Option<IpAddr>,
    ) -> Result<User, Refusal> {
        let key = digest(&[name.as_bytes(), password.as_bytes()]);
        let user = match self.user(name).await {
            Ok(user) if !self.locked(name, user.as_ref()) => user,
            Ok(_) => {
                self.refused(name, peer, interface, &Refusal::Locked);
                return Err(Refusal::Locked);
            }
            Err(e) => return Err(e),
        };
        // A password verified a moment ago needs no Argon2id and guesses nothing: it is not
        // held back by the failures of others from the same address.
        let remembered = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let (Some((_, verified_at, at)), Some(u)) = (remembered, &user)
            && at.elapsed() < VERIFIED_FOR
            && u.sign_in_stands(verified_at)
        {
            return Ok(u.clone());
        }
        if let Err(refusal) = self.admit_counters(name, peer) {
            self.refused(name, peer, interface, &refusal);
            return Err(refusal);
        }
        // Wait for a turn, then look again: attempts queued behind failures of the same name
        // or address are refused without spending Argon2id.
        let permit = carelake_lake::argon2_permit()
            .await
            .map_err(|_| Refusal::Busy)?;
        if let Err(refusal) = self.admit_counters(name, peer) {
            self.refused(name, peer, interface, &refusal);
            return Err(refusal);
        }
        let verified_at = Utc::now();
        match carelake_lake::check_user_password_with(permit, user, password).await {
            Some(user) => {
                self.succeeded(&user, peer, interface);
                let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
                verified.retain(|_, (_, _, at)| at.elapsed() < VERIFIED_FOR);
                verified.insert(key, (user.name.clone(), verified_at, Instant::now()));
                Ok(user)
            }
            None => {
                self.failed(name, peer, interface).await;
                Err(Refusal::Wrong)
            }
        }
    }

    /// Issues a token (or a UI session) for `user`.
    pub async fn issue(&self, user: &User, kind: TokenKind) -> Result<String, Refusal> {
        let issued = self
            .lake
            .tokens()
            .issue(user, kind, self.config.token_lifetime)
            .await
            .map_err(|e| Refusal::Internal(e.to_string()))?;
        let mut tokens = self.tokens.lock().await;
        let mut all = (*tokens.value).clone();
        all.insert(issued.info.hash.clone(), issued.info.clone());
        tokens.value = Arc::new(all);
        Ok(issued.token)
    }

    async fn token_info(&self, hash: &str) -> Result<Option<TokenInfo>, Refusal> {
        let mut cached = self.tokens.lock().await;
        if cached.read_at.is_none_or(|at| at.elapsed() > REFRESH_AFTER) {
            let list = self
                .lake
                .tokens()
                .list()
                .await
                .map_err(|e| Refusal::Internal(e.to_string()))?;
            let now = Utc::now();
            cached.value = Arc::new(
                list.into_iter()
                    .filter(|t| t.revoked_at.is_some() || now < t.expires_at)
                    .map(|t| (t.hash.clone(), t))
                    .collect(),
            );
            cached.read_at = Some(Instant::now());
        }
        Ok(cached.value.get(hash).cloned())
    }

    /// The user of a presented token of `kind`, as the lake has them now.
    pub async fn bearer(&self, token: &str, kind: TokenKind) -> Result<User, Refusal> {
        let Some(id) = carelake_lake::token_id(token) else {
            return Err(Refusal::Token("unknown token"));
        };
        let info = self
            .token_info(&carelake_lake::token_hash(token))
            .await?
            .filter(|t| t.kind == kind && t.id == id)
            .ok_or(Refusal::Token("unknown token"))?;
        let now = Utc::now();
        if info.revoked_at.is_some() {
            return Err(Refusal::Token("the token was revoked"));
        }
        if now >= info.expires_at {
            return Err(Refusal::Token("the token has expired"));
        }
        let user = self.user(&info.user).await?;
        if !info.stands(user.as_ref(), now) {
            return Err(Refusal::Token(
                "the token no longer stands: its user was disabled, changed password or was signed out by an admin",
            ));
        }
        if kind == TokenKind::Ui {
            let mut seen = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
            // After a restart the idle time counts from the issue.
            let since_issue = (now - info.issued_at).to_std().unwrap_or_default();
            let idle = seen.get(&info.id).map_or(since_issue, |at| at.elapsed());
            if idle > self.config.ui_idle_timeout {
                seen.remove(&info.id);
                return Err(Refusal::Token("signed out after being idle"));
            }
            if seen.len() > MAX_COUNTERS {
                let timeout = self.config.ui_idle_timeout;
                seen.retain(|_, at| at.elapsed() <= timeout);
            }
            seen.insert(info.id.clone(), Instant::now());
        }
        user.ok_or(Refusal::Token("unknown token"))
    }

    /// Revokes a presented token (signing out).
    pub async fn revoke(&self, token: &str, by: &User) -> Result<(), Refusal> {
        let Some(id) = carelake_lake::token_id(token) else {
            return Ok(());
        };
        let hash = carelake_lake::token_hash(token);
        let Some(info) = self.token_info(&hash).await? else {
            return Ok(());
        };
        if info.id != id || info.user != by.name {
            return Ok(());
        }
        self.lake
            .tokens()
            .revoke(std::slice::from_ref(&info.id), &by.principal())
            .await
            .map_err(|e| Refusal::Internal(e.to_string()))?;
        self.last_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&info.id);
        self.tokens.lock().await.read_at = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_after_the_free_failures_and_is_capped() {
        assert_eq!(delay(0, 3), Duration::ZERO);
        assert_eq!(delay(2, 3), Duration::ZERO);
        assert_eq!(delay(3, 3), Duration::from_secs(1));
        assert_eq!(delay(4, 3), Duration::from_secs(2));
        assert_eq!(delay(7, 3), Duration::from_secs(16));
        assert_eq!(delay(8, 3), MAX_DELAY);
        assert_eq!(delay(1000, 3), MAX_DELAY);
    }
}

//! The lake's users: an append-only Delta table of events at `<lake>/_carelake/users`
//! (created, password set, roles set, disabled). Passwords are kept only as Argon2id hashes in
//! PHC form, each with its own random salt; the current state of a user is the fold of its
//! events in time order, like the catalog.
//!
//! The first user is `carelake` (role `admin`), created when the lake is set up, with the
//! password the operator gives in `CARELAKE_PASSWORD` or else a generated one that is shown
//! once.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use carelake_common::Principal;
use chrono::{DateTime, Utc};

use crate::scram::ScramVerifier;
use crate::util::create_system_table;
use crate::util::{
    SystemBatch, append_to_system_table, read_table, text_at, text_column, time_column,
};
use crate::{Error, Lake, Result, TimeTravel};

/// The first user of every lake.
pub const FIRST_USER: &str = "carelake";

/// The role that may do everything.
pub const ADMIN_ROLE: &str = "admin";

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;

static USERS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("at", ts, false),
        Field::new("user_name", DataType::Utf8, false),
        Field::new("action", DataType::Utf8, false),
        Field::new("password_hash", DataType::Utf8, true),
        Field::new("roles", DataType::Utf8, true),
        Field::new("by", DataType::Utf8, false),
    ]))
});

/// A user as the events leave it.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Roles held.
    pub roles: Vec<String>,
    /// Argon2id hash in PHC form.
    password_hash: String,
    /// SCRAM-SHA-256 verifier of the same password, for the Postgres wire protocol. Users whose
    /// password was set before carelake kept verifiers have none until it is set again.
    scram: Option<String>,
    /// Whether the user may no longer sign in.
    pub disabled: bool,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// When the password was last set (sign-ins and tokens from before it are void).
    pub password_set_at: DateTime<Utc>,
    /// When the account was locked after repeated failed sign-ins (until an admin unlocks it or
    /// the server's lock-out time has passed); `None` when it is not locked.
    pub locked_at: Option<DateTime<Utc>>,
    /// When an admin last ended all of the user's sessions and tokens (`carelake user revoke`):
    /// whatever was signed in before is void.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When the user was last disabled or enabled.
    pub disabled_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("roles", &self.roles)
            .field("disabled", &self.disabled)
            .field("locked_at", &self.locked_at)
            .finish_non_exhaustive()
    }
}

impl User {
    /// The principal the user acts as.
    pub fn principal(&self) -> Principal {
        Principal::new(self.name.clone(), self.roles.clone())
    }

    /// The SCRAM-SHA-256 verifier of the user's password, when one is stored.
    pub fn scram_verifier(&self) -> Option<ScramVerifier> {
        self.scram.as_deref().and_then(ScramVerifier::parse)
    }

    /// The latest moment before which every sign-in of the user is void: a password change,
    /// an admin's revocation, or the account being disabled (enabling it again does not bring
    /// old sessions back).
    pub fn void_before(&self) -> DateTime<Utc> {
        let mut at = self.password_set_at;
        for t in [self.revoked_at, self.disabled_at].into_iter().flatten() {
            at = at.max(t);
        }
        at
    }

    /// Whether a sign-in made at `signed_in_at` still stands: the user is enabled and nothing
    /// has voided it since.
    pub fn sign_in_stands(&self, signed_in_at: DateTime<Utc>) -> bool {
        !self.disabled && signed_in_at >= self.void_before()
    }
}

struct Event {
    at: DateTime<Utc>,
    user: String,
    action: &'static str,
    password_hash: Option<String>,
    roles: Option<String>,
    by: String,
}

/// The user store of a lake.
#[derive(Debug, Clone)]
pub struct UserStore {
    lake: Lake,
}

/// Hashes a password with Argon2id and a fresh random salt.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Users(format!("hashing the password failed: {e}")))
}

/// Whether `password` matches a PHC hash made by [`hash_password`].
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A random password of 24 letters and digits (about 143 bits).
pub fn generate_password() -> String {
    use argon2::password_hash::rand_core::RngCore;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' || c == '.'
        })
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    if ok {
        Ok(())
    } else {
        Err(Error::Users(format!(
            "invalid user name {name:?}: lower-case letters, digits, '_', '-' and '.', starting with a letter"
        )))
    }
}

fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::Users(format!(
            "a password needs at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

/// The SCRAM verifier event that follows a password event (a microsecond later, so that the
/// fold meets it second).
fn scram_event(name: &str, password: &str, at: DateTime<Utc>, by: &Principal) -> Result<Event> {
    Ok(Event {
        at: at + chrono::Duration::microseconds(1),
        user: name.to_string(),
        action: "scram",
        password_hash: Some(ScramVerifier::new(password)?.to_string()),
        roles: None,
        by: by.name.clone(),
    })
}

impl UserStore {
    pub(crate) fn new(lake: Lake) -> Self {
        Self { lake }
    }

    /// The lake the users belong to.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    async fn append(&self, events: &[Event]) -> Result<()> {
        create_system_table(&self.lake, "users", &USERS_SCHEMA, "carelake users").await?;
        let batch = RecordBatch::try_new(
            Arc::clone(&USERS_SCHEMA),
            vec![
                time_column(events, |e| e.at),
                text_column(events, |e| Some(e.user.clone())),
                text_column(events, |e| Some(e.action.to_string())),
                text_column(events, |e| e.password_hash.clone()),
                text_column(events, |e| e.roles.clone()),
                text_column(events, |e| Some(e.by.clone())),
            ],
        )?;
        append_to_system_table(&self.lake, "users", batch).await
    }

    /// Every user, by name.
    pub async fn list(&self) -> Result<Vec<User>> {
        let url = self.lake.system_table_url("users")?;
        let Some(table) = self.lake.load_delta(&url, TimeTravel::Latest).await? else {
            return Ok(Vec::new());
        };
        let mut events: Vec<Event> = Vec::new();
        for batch in read_table(&table).await? {
            let batch = SystemBatch::new(&batch, "users", Error::Users);
            let (user, action, hash, roles, by) = (
                batch.text("user_name")?,
                batch.text("action")?,
                batch.text("password_hash")?,
                batch.text("roles")?,
                batch.text("by")?,
            );
            let at = batch.time("at")?;
            for i in 0..batch.num_rows() {
                let action = match action.value(i) {
                    "create" => "create",
                    "password" => "password",
                    "roles" => "roles",
                    "disable" => "disable",
                    "enable" => "enable",
                    "scram" => "scram",
                    "lock" => "lock",
                    "unlock" => "unlock",
                    "revoke" => "revoke",
                    _ => continue,
                };
                events.push(Event {
                    at: DateTime::from_timestamp_micros(at.value(i)).unwrap_or_default(),
                    user: user.value(i).to_string(),
                    action,
                    password_hash: text_at(&hash, i),
                    roles: text_at(&roles, i),
                    by: by.value(i).to_string(),
                });
            }
        }
        events.sort_by_key(|e| e.at);
        let mut users: BTreeMap<String, User> = BTreeMap::new();
        for e in events {
            let roles = |r: &Option<String>| -> Vec<String> {
                r.as_deref()
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            match (e.action, users.get_mut(&e.user)) {
                ("create", None) => {
                    users.insert(
                        e.user.clone(),
                        User {
                            name: e.user.clone(),
                            roles: roles(&e.roles),
                            password_hash: e.password_hash.clone().unwrap_or_default(),
                            scram: None,
                            disabled: false,
                            created_at: e.at,
                            password_set_at: e.at,
                            locked_at: None,
                            revoked_at: None,
                            disabled_at: None,
                        },
                    );
                }
                ("password", Some(u)) => {
                    u.password_hash = e.password_hash.clone().unwrap_or_default();
                    u.scram = None;
                    u.password_set_at = e.at;
                    // A new password also lifts a lock-out.
                    u.locked_at = None;
                }
                ("scram", Some(u)) => u.scram = e.password_hash.clone(),
                ("roles", Some(u)) => u.roles = roles(&e.roles),
                ("disable", Some(u)) => {
                    u.disabled = true;
                    u.disabled_at = Some(e.at);
                }
                ("enable", Some(u)) => {
                    u.disabled = false;
                    u.disabled_at = Some(e.at);
                }
                ("lock", Some(u)) => u.locked_at = Some(e.at),
                ("unlock", Some(u)) => u.locked_at = None,
                ("revoke", Some(u)) => u.revoked_at = Some(e.at),
                _ => {}
            }
            let _ = &e.by;
        }
        Ok(users.into_values().collect())
    }

    /// One user.
    pub async fn get(&self, name: &str) -> Result<Option<User>> {
        Ok(self.list().await?.into_iter().find(|u| u.name == name))
    }

    /// Creates a user; refused when the name is taken.
    pub async fn create(
        &self,
        name: &str,
        password: &str,
        roles: &[String],
        by: &Principal,
    ) -> Result<()> {
        check_name(name)?;
        check_password(password)?;
        if self.get(name).await?.is_some() {
            return Err(Error::Users(format!("user {name} already exists")));
        }
        let at = Utc::now();
        self.append(&[
            Event {
                at,
                user: name.to_string(),
                action: "create",
                password_hash: Some(hash_password(password)?),
                roles: Some(roles.join(",")),
                by: by.name.clone(),
            },
            scram_event(name, password, at, by)?,
        ])
        .await
    }

    /// Sets a user's password.
    pub async fn set_password(&self, name: &str, password: &str, by: &Principal) -> Result<()> {
        check_password(password)?;
        if self.get(name).await?.is_none() {
            return Err(Error::Users(format!("no user {name}")));
        }
        let at = Utc::now();
        self.append(&[
            Event {
                at,
                user: name.to_string(),
                action: "password",
                password_hash: Some(hash_password(password)?),
                roles: None,
                by: by.name.clone(),
            },
            scram_event(name, password, at, by)?,
        ])
        .await
    }

    /// Disables or enables a user.
    pub async fn set_disabled(&self, name: &str, disabled: bool, by: &Principal) -> Result<()> {
        if self.get(name).await?.is_none() {
            return Err(Error::Users(format!("no user {name}")));
        }
        self.append(&[Event {
            at: Utc::now(),
            user: name.to_string(),
            action: if disabled { "disable" } else { "enable" },
            password_hash: None,
            roles: None,
            by: by.name.clone(),
        }])
        .await
    }

    /// Locks the user's account (after repeated failed sign-ins) or unlocks it.
    pub async fn set_locked(&self, name: &str, locked: bool, by: &Principal) -> Result<()> {
        self.mark(name, if locked { "lock" } else { "unlock" }, by)
            .await
    }

    /// Ends every session and token of the user signed in until now, on every interface.
    pub async fn revoke_sessions(&self, name: &str, by: &Principal) -> Result<()> {
        self.mark(name, "revoke", by).await
    }

    async fn mark(&self, name: &str, action: &'static str, by: &Principal) -> Result<()> {
        if self.get(name).await?.is_none() {
            return Err(Error::Users(format!("no user {name}")));
        }
        self.append(&[Event {
            at: Utc::now(),
            user: name.to_string(),
            action,
            password_hash: None,
            roles: None,
            by: by.name.clone(),
        }])
        .await
    }

    /// Sets the roles a user holds (replacing the ones held before).
    pub async fn set_roles(&self, name: &str, roles: &[String], by: &Principal) -> Result<()> {
        if self.get(name).await?.is_none() {
            return Err(Error::Users(format!("no user {name}")));
        }
        self.append(&[Event {
            at: Utc::now(),
            user: name.to_string(),
            action: "roles",
            password_hash: None,
            roles: Some(roles.join(",")),
            by: by.name.clone(),
        }])
        .await
    }

    /// The user, when `password` is theirs and they are not disabled (a lock-out is the
    /// caller's to check: its length is the server's setting). Takes tens of milliseconds on
    /// purpose (Argon2id), behind [`verify_bounded`]: callers cache what they verified.
    pub async fn verify(&self, name: &str, password: &str) -> Result<Option<User>> {
        let user = self.get(name).await?;
        check_user_password(user, password).await
    }
}

/// Checks `password` against `user` (or, for no user, against a made-up hash, spending the
/// same time so that names cannot be probed): the user when it matches and they are enabled.
pub async fn check_user_password(user: Option<User>, password: &str) -> Result<Option<User>> {
    let permit = argon2_permit().await?;
    Ok(check_user_password_with(permit, user, password).await)
}

/// [`check_user_password`] with a turn already taken ([`argon2_permit`]).
pub async fn check_user_password_with(
    permit: Argon2Permit,
    user: Option<User>,
    password: &str,
) -> Option<User> {
    let hash = user
        .as_ref()
        .map_or_else(|| DUMMY_HASH.clone(), |u| u.password_hash.clone());
    let ok = permit.verify(password, &hash).await;
    user.filter(|u| ok && !u.disabled)
}

/// At most this many Argon2id verifications run at once (one per core), each on a blocking
/// thread: each takes ~19 MiB and a core for tens of milliseconds, so that a flood of sign-ins
/// queues here instead of exhausting memory or the async runtime.
static ARGON2_PERMITS: LazyLock<tokio::sync::Semaphore> = LazyLock::new(|| {
    tokio::sync::Semaphore::new(
        std::thread::available_parallelism()
            .map(std::num::NonZeroUsize::get)
            .unwrap_or(2),
    )
});

/// Sign-ins waiting for a turn at once; more are refused as busy rather than queued.
const MAX_WAITING_VERIFICATIONS: usize = 256;

static WAITING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How long a verification waits for its turn before the sign-in is refused as busy.
const VERIFY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A turn at Argon2id verification (see [`argon2_permit`]).
#[derive(Debug)]
pub struct Argon2Permit(#[allow(dead_code)] tokio::sync::SemaphorePermit<'static>);

impl Argon2Permit {
    /// Verifies `password` against a PHC hash on a blocking thread, then gives the turn back.
    pub async fn verify(self, password: &str, hash: &str) -> bool {
        let (candidate, hash) = (password.to_string(), hash.to_string());
        let ok = tokio::task::spawn_blocking(move || verify_password(&candidate, &hash))
            .await
            .unwrap_or(false);
        drop(self);
        ok
    }
}

/// Waits for a turn at Argon2id verification: at most one per core runs at once, at most
/// 256 wait, none longer than ten seconds ([`Error::Busy`] then).
pub async fn argon2_permit() -> Result<Argon2Permit> {
    use std::sync::atomic::Ordering;
    struct Waiting;
    impl Drop for Waiting {
        fn drop(&mut self) {
            WAITING.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let busy = || Error::Busy("too many sign-ins at once; try again shortly".into());
    if WAITING.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING_VERIFICATIONS {
        WAITING.fetch_sub(1, Ordering::Relaxed);
        return Err(busy());
    }
    let _waiting = Waiting;
    let permit = tokio::time::timeout(VERIFY_WAIT, ARGON2_PERMITS.acquire())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    Ok(Argon2Permit(permit))
}

/// Verifies `password` against a PHC hash with bounded concurrency, off the async runtime.
pub async fn verify_bounded(password: &str, hash: &str) -> Result<bool> {
    Ok(argon2_permit().await?.verify(password, hash).await)
}

impl UserStore {
    /// Creates the first user when the lake has none: with `password` when given, otherwise a
    /// generated one, which is returned so that it can be shown once.
    pub async fn ensure_first_user(&self, password: Option<&str>) -> Result<Option<String>> {
        if !self.list().await?.is_empty() {
            return Ok(None);
        }
        let (password, generated) = match password {
            Some(p) => (p.to_string(), false),
            None => (generate_password(), true),
        };
        self.create(
            FIRST_USER,
            &password,
            &[ADMIN_ROLE.to_string()],
            &Principal::system(),
        )
        .await?;
        Ok(generated.then_some(password))
    }
}

static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password("not a password of anyone").unwrap_or_default());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_salted_and_verify() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("correct horse battery!", &a));
        assert!(!verify_password("x", "not a hash"));
        let generated = generate_password();
        assert_eq!(generated.len(), 24);
        assert_ne!(generated, generate_password());
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(check_name("carelake").is_ok());
        assert!(check_name("ana.lytics-2").is_ok());
        assert!(check_name("Root").is_err());
        assert!(check_name("").is_err());
        assert!(check_name("1x").is_err());
        assert!(check_password("short").is_err());
        assert!(check_password("long enough pass").is_ok());
    }
}

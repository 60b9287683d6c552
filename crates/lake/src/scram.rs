//! SCRAM-SHA-256 verifiers (RFC 5802, RFC 7677), kept beside a user's Argon2id hash so that
//! Postgres clients can sign in without the password crossing the wire.
//!
//! A verifier holds what PostgreSQL's `pg_authid` holds, in the same text form
//! (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`): the salt and iteration count,
//! `StoredKey = SHA-256(ClientKey)` and `ServerKey`. Neither key lets anyone sign in; the salted
//! password itself is never stored. (pgwire's own SCRAM handler needs the salted password, which
//! is as good as the password to an attacker who reads the users table; hence this module.)

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};
use subtle::ConstantTimeEq;

use crate::{Error, Result};

/// The mechanism's name in the verifier text and on the wire.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
/// PBKDF2 iterations for new verifiers: well above PostgreSQL's default of 4096, so that a
/// verifier copied from the lake costs an attacker ~25 times more per guess. The cost falls on
/// the client at each sign-in (tens of milliseconds) and on `user add` / `user password`.
/// Verifiers made with other counts keep theirs.
pub const ITERATIONS: u32 = 100_000;
const SALT_LEN: usize = 16;

/// A SCRAM-SHA-256 verifier.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// The salt.
    pub salt: Vec<u8>,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl std::fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, message);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

/// The password as SCRAM hashes it: SASLprep-normalised, or the raw bytes when SASLprep refuses
/// it (as PostgreSQL does).
fn normalize(password: &str) -> Vec<u8> {
    stringprep::saslprep(password)
        .map(|p| p.into_owned().into_bytes())
        .unwrap_or_else(|_| password.as_bytes().to_vec())
}

impl ScramVerifier {
    /// A verifier for `password` with a fresh random salt.
    pub fn new(password: &str) -> Result<Self> {
        let mut salt = vec![0u8; SALT_LEN];
        ring::rand::SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| Error::Users("no random numbers for a salt".into()))?;
        Ok(Self::with_salt(password, salt, ITERATIONS))
    }

    /// A verifier for `password` with the given salt and iteration count.
    pub fn with_salt(password: &str, salt: Vec<u8>, iterations: u32) -> Self {
        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            std::num::NonZeroU32::new(iterations.max(1)).expect("at least one"),
            &salt,
            &normalize(password),
            &mut salted,
        );
        let client_key = hmac_sha256(&salted, b"Client Key");
        Self {
            iterations,
            salt,
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// A verifier that no proof matches, with the given salt and iteration count (shown to a
    /// name that cannot sign in), without spending PBKDF2 on it.
    pub fn unmatchable(salt: Vec<u8>, iterations: u32) -> Self {
        let mut keys = [0u8; 64];
        let _ = ring::rand::SystemRandom::new().fill(&mut keys);
        let (mut stored_key, mut server_key) = ([0u8; 32], [0u8; 32]);
        stored_key.copy_from_slice(&keys[..32]);
        server_key.copy_from_slice(&keys[32..]);
        Self {
            iterations,
            salt,
            stored_key,
            server_key,
        }
    }

    /// Reads the text form; `None` when it is not a SCRAM-SHA-256 verifier.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix("SCRAM-SHA-256$")?;
        let (params, keys) = rest.split_once('$')?;
        let (iterations, salt) = params.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        let key = |s: &str| -> Option<[u8; 32]> { B64.decode(s).ok()?.try_into().ok() };
        Some(Self {
            iterations: iterations.parse().ok().filter(|i| *i > 0)?,
            salt: B64.decode(salt).ok()?,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }

    /// Checks a client's proof over `auth_message`; on success returns the server signature
    /// that proves to the client that the server knew the verifier.
    pub fn verify_proof(&self, auth_message: &[u8], proof: &[u8]) -> Option<[u8; 32]> {
        if proof.len() != 32 {
            return None;
        }
        let signature = hmac_sha256(&self.stored_key, auth_message);
        let mut client_key = [0u8; 32];
        for (i, byte) in client_key.iter_mut().enumerate() {
            *byte = proof[i] ^ signature[i];
        }
        if bool::from(sha256(&client_key).ct_eq(&self.stored_key)) {
            Some(hmac_sha256(&self.server_key, auth_message))
        } else {
            None
        }
    }

    /// The client's proof for `password` (what a client computes; for tests and tools).
    pub fn client_proof(
        password: &str,
        salt: &[u8],
        iterations: u32,
        auth_message: &[u8],
    ) -> [u8; 32] {
        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            std::num::NonZeroU32::new(iterations.max(1)).expect("at least one"),
            salt,
            &normalize(password),
            &mut salted,
        );
        let client_key = hmac_sha256(&salted, b"Client Key");
        let signature = hmac_sha256(&sha256(&client_key), auth_message);
        let mut proof = [0u8; 32];
        for i in 0..32 {
            proof[i] = client_key[i] ^ signature[i];
        }
        proof
    }
}

impl std::fmt::Display for ScramVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{SCRAM_SHA_256}${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_round_trips_and_checks_proofs() {
        let v = ScramVerifier::new("correct horse battery").unwrap();
        let text = v.to_string();
        assert!(text.starts_with("SCRAM-SHA-256$100000:"));
        let parsed = ScramVerifier::parse(&text).unwrap();
        assert_eq!(parsed, v);
        let auth = b"n=,r=abc,r=abcdef,s=c2FsdA==,i=4096,c=biws,r=abcdef";
        let good = ScramVerifier::client_proof("correct horse battery", &v.salt, ITERATIONS, auth);
        assert!(v.verify_proof(auth, &good).is_some());
        let bad = ScramVerifier::client_proof("wrong horse battery", &v.salt, ITERATIONS, auth);
        assert!(v.verify_proof(auth, &bad).is_none());
        assert!(v.verify_proof(b"another message", &good).is_none());
        assert!(ScramVerifier::parse("$argon2id$v=19$m=19456").is_none());
    }

    /// RFC 7677's example exchange (user `user`, password `pencil`).
    #[test]
    fn matches_the_rfc_7677_example() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = ScramVerifier::with_salt("pencil", salt, 4096);
        let auth = b"n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let proof = B64
            .decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        let server = v
            .verify_proof(auth, &proof)
            .expect("the RFC's proof verifies");
        assert_eq!(
            B64.encode(server),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }
}

//! Who is calling: HTTP Basic with a lake user's password, or a bearer token from
//! `POST /api/v1/tokens` (which only a password gets). The checks themselves are the shared
//! [`SignIn`](crate::SignIn)'s: bounded Argon2id, back-off and lock-out, tokens kept hashed in
//! the lake and revocable.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use carelake_lake::{TokenKind, User};

use super::{ApiError, AppState};
use crate::signin::Refusal;

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let status = match refusal {
            // A throttled attempt is still an unaccepted credential: 401, with Retry-After
            // (clients treat it as a failed sign-in, and it tells nothing more).
            Refusal::Wrong | Refusal::Locked | Refusal::Token(_) | Refusal::Throttled(_) => {
                StatusCode::UNAUTHORIZED
            }
            Refusal::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Internal(e) => return ApiError::internal(e),
        };
        let retry_after = match &refusal {
            Refusal::Throttled(wait) => Some(wait.as_secs().max(1)),
            Refusal::Busy => Some(1),
            _ => None,
        };
        let mut error = ApiError::new(status, refusal.to_string());
        error.retry_after = retry_after;
        error
    }
}

/// The `Retry-After` header of a refusal, when it has one.
pub(crate) fn with_retry_after(mut response: Response, seconds: Option<u64>) -> Response {
    if let Some(s) = seconds
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// The user name and password of a Basic `Authorization` header.
fn basic_credentials(value: &str) -> Result<(String, String), ApiError> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::unauthorized("malformed Basic credentials"))?;
    let (name, password) = decoded
        .split_once(':')
        .ok_or_else(|| ApiError::unauthorized("malformed Basic credentials"))?;
    Ok((name.to_string(), password.to_string()))
}

fn authorization(parts: &Parts) -> Result<(String, String), ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthorized("sign in: HTTP Basic or a bearer token"))?;
    let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
    Ok((scheme.to_ascii_lowercase(), value.trim().to_string()))
}

async fn password(state: &AppState, value: &str) -> Result<User, ApiError> {
    let (name, password) = basic_credentials(value)?;
    let (interface, peer) = super::request_origin();
    Ok(state
        .sign_in
        .password(&name, &password, interface, peer.map(|p| p.ip()))
        .await?)
}

/// An authenticated caller (a password or a bearer token).
#[derive(Debug, Clone)]
pub(crate) struct Authed(pub(crate) User);

impl FromRequestParts<Arc<AppState>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let (scheme, value) = authorization(parts)?;
        let user = match scheme.as_str() {
            "basic" => password(state, &value).await?,
            "bearer" => state.sign_in.bearer(&value, TokenKind::Api).await?,
            _ => {
                return Err(ApiError::unauthorized(
                    "sign in: HTTP Basic or a bearer token",
                ));
            }
        };
        Ok(Authed(user))
    }
}

/// A caller who gave their password just now (HTTP Basic): tokens are issued only to them, so
/// that a token cannot renew itself.
#[derive(Debug, Clone)]
pub(crate) struct PasswordAuthed(pub(crate) User);

impl FromRequestParts<Arc<AppState>> for PasswordAuthed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let (scheme, value) = authorization(parts)?;
        if scheme != "basic" {
            return Err(ApiError::unauthorized(
                "a token is issued only against a password: sign in with HTTP Basic",
            ));
        }
        Ok(PasswordAuthed(password(state, &value).await?))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

//! Sign-in and sign-out: the form, the session cookie it sets, and its end.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;

use super::html::page;
use super::{AppState, cross_site};
use super::{SECURE_COOKIE, cookie_name, cookie_token, refused};

/// The routes of these pages.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
}

#[derive(Deserialize)]
struct LoginQuery {
    failed: Option<String>,
}

async fn login_form(Query(q): Query<LoginQuery>) -> Response {
    let error = match q.failed.as_deref() {
        None => None,
        Some("wait") => {
            Some("Too many failed sign-ins: wait a little, or ask an admin to unlock the account.")
        }
        Some("busy") => Some("The server is busy: try again shortly."),
        Some(_) => Some("Wrong user name or password."),
    };
    let body = html! {
        form.login.card method="post" action="/login" {
            h1 { "Sign in" }
            @if let Some(error) = error {
                p.error { (error) }
            }
            label for="user" { "User" }
            input id="user" name="user" autocomplete="username" required autofocus;
            label for="password" { "Password" }
            input id="password" name="password" type="password" autocomplete="current-password" required;
            div.actions { button type="submit" { "Sign in" } }
        }
    };
    Html(page("Sign in", "", None, body)).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
}

async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if cross_site(&headers) {
        return refused();
    }
    let (interface, peer) = crate::http::request_origin();
    let user = state
        .sign_in
        .password(&form.user, &form.password, interface, peer.map(|p| p.ip()))
        .await;
    let user = match user {
        Ok(user) => user,
        Err(crate::signin::Refusal::Throttled(_) | crate::signin::Refusal::Locked) => {
            return Redirect::to("/login?failed=wait").into_response();
        }
        Err(crate::signin::Refusal::Busy) => {
            return Redirect::to("/login?failed=busy").into_response();
        }
        Err(_) => return Redirect::to("/login?failed=1").into_response(),
    };
    let token = match state
        .sign_in
        .issue(&user, carelake_lake::TokenKind::Ui)
        .await
    {
        Ok(token) => token,
        Err(e) => {
            tracing::error!(error = %e, "A UI session could not be issued.");
            return Redirect::to("/login?failed=busy").into_response();
        }
    };
    let secure = if cookie_name(&state) == SECURE_COOKIE {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        cookie_name(&state),
        state.sign_in.config().token_lifetime.as_secs()
    );
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if cross_site(&headers) {
        return refused();
    }
    if let Some(token) = cookie_token(&state, &headers)
        && let Ok(user) = state
            .sign_in
            .bearer(&token, carelake_lake::TokenKind::Ui)
            .await
        && let Err(e) = state.sign_in.revoke(&token, &user).await
    {
        tracing::error!(error = %e, "A UI session could not be revoked.");
    }
    let mut response = Redirect::to("/login").into_response();
    let secure = if cookie_name(&state) == SECURE_COOKIE {
        "; Secure"
    } else {
        ""
    };
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}",
        cookie_name(&state)
    )) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

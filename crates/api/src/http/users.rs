//! `user/login`, `user/logout`, `user/current`.

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::db::blocking;
use crate::http::error::ApiError;
use crate::http::extract::{
    json_body, read_body, Authenticated, RefreshedToken, RequestUser, ACCESS_TOKEN,
};
use crate::http::response::{json, json_with, Alert, Envelope};
use crate::state::AppState;

/// The `access_token` cookie for `token`, living `max_age`.
pub fn token_cookie(token: String, max_age: chrono::Duration, secure: bool) -> Cookie<'static> {
    let seconds = max_age.num_seconds();
    Cookie::build(ACCESS_TOKEN, token)
        .path("/")
        .max_age(time::Duration::seconds(seconds))
        .expires(time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds))
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .finish()
}

/// The largest login body read: a username of at most 128 characters and a password fit
/// many times over, and a client that has not logged in cannot make the service hold
/// `server.max_body_bytes` per connection.
pub const LOGIN_MAX_BODY_BYTES: usize = 16 * 1024;

/// The body of `POST user/login` (no `Debug`: it holds a password).
#[derive(Default, Deserialize)]
struct LoginBody {
    u: Option<String>,
    p: Option<String>,
}

/// `POST user/login` with `{"u": …, "p": …}`.
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // Every login, cookie or not: it guards against login CSRF.
    crate::http::csrf::refuse_cross_site(&req, &state.settings)?;
    let limit = LOGIN_MAX_BODY_BYTES.min(state.settings.server.max_body_bytes);
    let body = read_body(&req, payload, limit).await?;
    let body: LoginBody = json_body(&body, false)?;
    let username = body.u.unwrap_or_default();
    let password = body.p.unwrap_or_default();
    if username.is_empty() || password.is_empty() {
        return Err(asyncstatus_auth::AuthError::MissingCredentials.into());
    }
    // Bounded before it reaches the throttle or the database.
    asyncstatus_domain::validate_login_username(&username)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let addr = crate::http::client::client_addr(&req, &state.settings.server.trusted_proxies);
    state.auth.check_throttle(&username, addr)?;
    // Waiting for a slot ends when the client hangs up (the server drops this future).
    let slot = state
        .login_slots
        .acquire()
        .await
        .map_err(|e| ApiError::internal(format!("login slots closed: {e}")))?
        .ok_or_else(|| {
            tracing::warn!("login queue full (auth.login_queue); answering 503");
            ApiError::busy("too many logins are waiting (auth.login_queue); try again shortly")
        })?;
    let auth = state.auth.clone();
    let session = blocking(move || {
        // Held until the derivation ends, even if the client has gone.
        let _slot = slot;
        auth.login(&username, &password, addr)
    })
    .await?;
    req.extensions_mut()
        .insert(RequestUser(session.principal.clone()));
    let mut builder = HttpResponse::Ok();
    builder.cookie(token_cookie(
        session.token,
        state.auth.tokens().ttl(),
        state.settings.cookie_secure(),
    ));
    Ok(json_with(
        builder,
        &Envelope::alert(Alert::success("Successfully logged in.")),
    ))
}

/// `POST user/logout`: revokes the token's session and clears the cookie.
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let claims = auth.claims.clone();
    let auth = state.auth.clone();
    state.db.run(move |_| auth.logout(&claims)).await?;
    req.extensions_mut().remove::<RefreshedToken>();
    let mut expired = token_cookie(
        String::new(),
        chrono::Duration::zero(),
        state.settings.cookie_secure(),
    );
    expired.set_expires(time::OffsetDateTime::UNIX_EPOCH);
    let mut builder = HttpResponse::Ok();
    builder.cookie(expired);
    Ok(json_with(
        builder,
        &Envelope::alert(Alert::success("You are logged out.")),
    ))
}

#[derive(Serialize)]
struct CurrentUser {
    id: i64,
    username: String,
    role: String,
    permissions: Vec<String>,
}

/// `GET user/current`: any authenticated user.
pub async fn current(auth: Authenticated) -> HttpResponse {
    let p = &auth.principal;
    json(
        StatusCode::OK,
        &Envelope::response(CurrentUser {
            id: p.user_id,
            username: p.username.clone(),
            role: p.role.clone(),
            permissions: p.effective_permissions(),
        }),
    )
}

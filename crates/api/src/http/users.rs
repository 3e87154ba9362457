//! `user/login`, `user/logout`, `user/current`.

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::blocking;
use crate::http::error::ApiError;
use crate::http::extract::{
    json_body, read_body, Authenticated, RefreshedToken, RequestUser, ACCESS_TOKEN,
};
use crate::http::openapi::{
    BadRequest, BodyErrors, CrossSite, InternalError, NotAcceptable, SessionErrors,
    TooManyRequests, VersionNotImplemented, VersionPath,
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

/// The body of `POST user/login`.
// No `Debug`: it holds a password. `Option`s, so that a missing one answers its own 400.
#[derive(Default, Deserialize, ToSchema)]
#[schema(as = LoginRequest)]
pub(crate) struct LoginBody {
    /// Username.
    #[schema(required = true, nullable = false, min_length = 1)]
    u: Option<String>,
    /// Password.
    #[schema(required = true, nullable = false, min_length = 1, format = Password)]
    p: Option<String>,
}

/// Log in
///
#[doc = "Checks a username and password and sets the `access_token` cookie (a JWT, also usable \
         as `Authorization: Bearer`). The body is read as JSON whatever its `Content-Type`. \
         Unknown user, wrong password, a user with no password, and a user whose role is \
         `disallowed` all answer the same 401."]
#[utoipa::path(
    post,
    path = "/api/{version}/user/login",
    operation_id = "login",
    tag = "users",
    security(),
    params(VersionPath),
    request_body = LoginRequest,
    responses(
        (
            status = 200,
            description = r#"Logged in: `{"alerts":[{"text":"Successfully logged in.","level":"success"}]}`."#,
            body = AlertsEnvelope,
            headers(("Set-Cookie" = SetCookieLogin)),
        ),
        (status = 400, response = BadRequest),
        (
            status = 401,
            description = "The alert is `Invalid username or password.`",
            body = ErrorEnvelope,
        ),
        (status = 403, response = CrossSite),
        (status = 406, response = NotAcceptable),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 501, response = VersionNotImplemented),
        (
            status = 503,
            description = "The database is unavailable (`the database is unavailable; try again \
                shortly`), or every password-check slot is busy and `auth.login_queue` logins \
                already wait for one (`too many logins are waiting (auth.login_queue); try \
                again shortly`).",
            body = ErrorEnvelope,
            headers(("Retry-After" = RetryAfterRequired)),
        ),
        BodyErrors,
    )
)]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let auth = state.auth.clone();
    let (username, password, addr, slot) = login_request(&state, &req, payload, |user, addr| {
        auth.check_throttle(user, addr)
    })
    .await?;
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

/// What every login does before its password is checked: refuses a cross-site login, reads
/// the bounded body `{"u","p"}` (both required, the username bounded), asks `throttle`
/// whether this username from this address may try now, and waits for a password-derivation
/// slot (503 when `auth.login_queue` logins already wait). The username, password, client
/// address and the slot, to hold until the derivation ends.
pub(crate) async fn login_request(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    throttle: impl FnOnce(&str, Option<std::net::IpAddr>) -> Result<(), asyncstatus_auth::AuthError>,
) -> Result<
    (
        String,
        String,
        Option<std::net::IpAddr>,
        tokio::sync::OwnedSemaphorePermit,
    ),
    ApiError,
> {
    // Every login, cookie or not: it guards against login CSRF.
    crate::http::csrf::refuse_cross_site(req, &state.settings)?;
    let limit = LOGIN_MAX_BODY_BYTES.min(state.settings.server.max_body_bytes);
    let body = read_body(req, payload, limit).await?;
    let body: LoginBody = json_body(&body, false)?;
    let username = body.u.unwrap_or_default();
    let password = body.p.unwrap_or_default();
    if username.is_empty() || password.is_empty() {
        return Err(asyncstatus_auth::AuthError::MissingCredentials.into());
    }
    // Bounded before it reaches the throttle or the database.
    asyncstatus_domain::validate_login_username(&username)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let addr = crate::http::client::client_addr(req, &state.settings.server.trusted_proxies);
    throttle(&username, addr)?;
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
    Ok((username, password, addr, slot))
}

/// Log out
///
#[doc = "Revokes the token the request carried (the Bearer token, else the cookie) and clears \
         the cookie. The user's other tokens keep working. No body is read."]
#[utoipa::path(
    post,
    path = "/api/{version}/user/logout",
    operation_id = "logout",
    tag = "users",
    params(VersionPath),
    responses(
        (
            status = 200,
            description = r#"Logged out: `{"alerts":[{"text":"You are logged out.","level":"success"}]}`."#,
            body = AlertsEnvelope,
            headers(("Set-Cookie" = SetCookieLogout)),
        ),
        (status = 403, response = CrossSite),
        SessionErrors,
    )
)]
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

#[derive(Serialize, ToSchema)]
// For the schema's `additionalProperties: false`.
#[serde(deny_unknown_fields)]
pub(crate) struct CurrentUser {
    id: i64,
    username: String,
    role: String,
    /// The role's permissions, sorted; for `admin`, every permission asyncstatus checks plus any others granted.
    permissions: Vec<String>,
}

/// The current user
///
/// The authenticated user; any role may read it.
#[utoipa::path(
    get,
    path = "/api/{version}/user/current",
    operation_id = "getCurrentUser",
    tag = "users",
    params(VersionPath),
    responses(
        (
            status = 200,
            description = "The user.",
            body = CurrentUserEnvelope,
            headers(("Set-Cookie" = SetCookieRefresh)),
        ),
        SessionErrors,
    )
)]
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

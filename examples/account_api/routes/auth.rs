//! Register, log in, the current user, log out.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use bearer_auth::{InvalidReason, NewToken, Rejection, StoreError};
use bearer_auth_tower::Authenticated;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use zeroize::Zeroizing;

use crate::{
    app::{AppState, ClientIp, Token},
    errors::{ApiError, Errors, JsonBody, json},
    input::{self, Rules},
    routes::{LOGIN_TOKEN_NAME, PasswordSlot, address_key, no_content},
    users::{self, EmailTaken, User},
};

/// Laravel's `auth.failed`.
const CREDENTIALS_FAILED: &str = "These credentials do not match our records.";

/// `POST /v1/auth/register`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RegisterRequest {
    /// Up to 255 characters.
    #[schema(value_type = String, example = "Ada Lovelace")]
    name: Option<Value>,
    /// A valid email address, not taken, up to 255 characters.
    #[schema(value_type = String, example = "ada@example.com")]
    email: Option<Value>,
    /// At least 8 characters.
    #[schema(value_type = String, format = Password, example = "correct horse battery")]
    password: Option<Value>,
}

/// A user, as the register response shows them.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserSummary {
    id: u64,
    name: String,
    email: String,
}

/// The new user and a token for them.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RegisterResponse<'a> {
    user: UserSummary,
    /// A plain text token (`{id}|{secret}`), shown once.
    token: &'a str,
}

/// Registers a user and returns a token for them.
#[utoipa::path(
    post,
    path = "/v1/auth/register",
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = RegisterResponse),
        (status = 422, description = "Email taken, invalid email, password under 8 characters, missing fields", body = crate::openapi::ValidationErrorBody),
        (status = 429, description = "More than 20 registrations a minute from this client address", body = crate::openapi::MessageBody,
            headers(("Retry-After" = u64, description = "Seconds until the next attempt"))),
    )
)]
pub(crate) async fn register(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(request): JsonBody<RegisterRequest>,
) -> Result<Response, ApiError> {
    // Every registration counts, whatever its outcome: "email taken" tells whether an
    // address has an account, and each success costs a bcrypt hash.
    app.register_addresses
        .attempt(&address_key(ip))
        .map_err(ApiError::Throttled)?;
    let mut errors = Errors::default();
    let name = input::string(
        request.name.as_ref(),
        "name",
        Rules::required().max(255),
        &mut errors,
    );
    let email = input::string(
        request.email.as_ref(),
        "email",
        Rules::required().max(255).email(),
        &mut errors,
    );
    let password = input::string(
        request.password.as_ref(),
        "password",
        Rules::required().untrimmed().min(8),
        &mut errors,
    )
    .map(Zeroizing::new);
    if let Some(email) = &email
        && app.db.email_taken(email).await?
    {
        errors.add("email", "The email has already been taken.");
    }
    errors.into_result()?;
    let (Some(name), Some(email), Some(password)) = (name, email, password) else {
        return Err(ApiError::field("email", "The given data was invalid."));
    };
    let email = users::normalize_email(&email);

    let hash = PasswordSlot::take(&app)
        .await?
        .run(move || users::hash_password(&password))
        .await?;
    let id = match app.db.insert_user(&name, &email, &hash).await? {
        Ok(id) => id,
        Err(EmailTaken) => {
            return Err(ApiError::field(
                "email",
                "The email has already been taken.",
            ));
        }
    };
    let issued = app.keys.create(NewToken::new(id, LOGIN_TOKEN_NAME)).await?;
    tracing::info!(user = id, "registered");
    Ok(json(
        StatusCode::CREATED,
        &RegisterResponse {
            user: UserSummary { id, name, email },
            token: issued.plain_text_token().as_str(),
        },
    ))
}

/// `POST /v1/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct LoginRequest {
    #[schema(value_type = String, example = "ada@example.com")]
    email: Option<Value>,
    #[schema(value_type = String, format = Password)]
    password: Option<Value>,
}

/// A token, and whether it still waits for the second factor.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LoginResponse<'a> {
    /// A plain text token (`{id}|{secret}`), shown once.
    token: &'a str,
    /// `true` when the user has two-factor on: the token is refused (403) everywhere but
    /// `POST /v1/auth/two-factor-challenge` until that passes.
    requires_2fa: bool,
}

/// Logs in with email and password and returns a new token.
///
/// After 5 failures for one email and client address within a minute, 429 until the
/// minute ends.
#[utoipa::path(
    post,
    path = "/v1/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 422, description = "Wrong email or password (the message does not say which), or missing fields", body = crate::openapi::ValidationErrorBody),
        (status = 429, description = "5 failed logins a minute for this email and client address, or 20 logins a minute from this address", body = crate::openapi::MessageBody,
            headers(("Retry-After" = u64, description = "Seconds until the next attempt"))),
    )
)]
pub(crate) async fn login(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    let address = address_key(ip);
    app.login_addresses
        .attempt(&address)
        .map_err(ApiError::Throttled)?;
    let mut errors = Errors::default();
    let email = input::string(
        request.email.as_ref(),
        "email",
        Rules::required(),
        &mut errors,
    );
    let password = input::string(
        request.password.as_ref(),
        "password",
        Rules::required().untrimmed(),
        &mut errors,
    )
    .map(Zeroizing::new);
    errors.into_result()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::field("email", CREDENTIALS_FAILED));
    };

    let user = app.db.find_user_by_email(&email).await?;
    // Laravel's key, the email and the client address; the email as the user's row has
    // it when there is one (the database may find it under other spellings: MySQL's
    // collation ignores case and accents), folded either way, so that every spelling of
    // one email shares one count, known or not.
    let throttle_key = format!(
        "{}|{address}",
        fold_email(user.as_ref().map_or(&email, |u| &u.email))
    );
    // Refused at once when the count is used up, without waiting for a bcrypt slot.
    app.logins
        .check(&throttle_key)
        .map_err(ApiError::Throttled)?;
    let slot = PasswordSlot::take(&app).await?;
    // Counted before bcrypt, in one step with the check: of attempts sent at once, 5
    // get through.
    app.logins
        .attempt(&throttle_key)
        .map_err(ApiError::Throttled)?;
    // An unknown email is checked against a dummy hash: both failures take as long.
    let hash = user
        .as_ref()
        .map_or_else(|| users::DUMMY_HASH.to_owned(), |u| u.password.clone());
    let matches = slot
        .run(move || Ok::<_, std::convert::Infallible>(users::verify_password(&password, &hash)))
        .await?;
    let Some(user) = user.filter(|_| matches) else {
        return Err(ApiError::field("email", CREDENTIALS_FAILED));
    };
    app.logins.clear(&throttle_key);

    let requires_2fa = user.two_factor_enabled();
    let issued = app
        .keys
        .create(NewToken::new(user.id, LOGIN_TOKEN_NAME).second_factor_pending(requires_2fa))
        .await?;
    tracing::info!(user = user.id, requires_2fa, "logged in");
    Ok(json(
        StatusCode::OK,
        &LoginResponse {
            token: issued.plain_text_token().as_str(),
            requires_2fa,
        },
    ))
}

/// An email folded for the login throttle's key, as an accent- and case-insensitive
/// collation (MySQL's `utf8mb4_unicode_ci`) compares it, and as Laravel's
/// `Str::transliterate(Str::lower(…))` would: lowercased, compatibility-decomposed
/// (NFKD) with the combining marks dropped, and a few letters that do not decompose
/// written as their collation equals (`ß` as `ss`, `æ` as `ae`, …).
fn fold_email(email: &str) -> String {
    use unicode_normalization::{UnicodeNormalization as _, char::is_combining_mark};

    let mut out = String::with_capacity(email.len());
    for c in email
        .trim()
        .to_lowercase()
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
    {
        match c {
            'ß' => out.push_str("ss"),
            'æ' => out.push_str("ae"),
            'œ' => out.push_str("oe"),
            'ø' => out.push('o'),
            'đ' | 'ð' => out.push('d'),
            'ł' => out.push('l'),
            'þ' => out.push_str("th"),
            'ı' => out.push('i'),
            c => out.push(c),
        }
    }
    out
}

/// The current user.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserResponse {
    id: u64,
    name: String,
    email: String,
    two_factor_enabled: bool,
}

impl From<&User> for UserResponse {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            name: user.name.clone(),
            email: user.email.clone(),
            two_factor_enabled: user.two_factor_enabled(),
        }
    }
}

/// The user a token belongs to; 401 if that user is gone.
pub(crate) async fn current_user(app: &AppState, token: &Token) -> Result<User, ApiError> {
    app.db
        .find_user(*token.owner())
        .await?
        .ok_or(ApiError::Rejection(Rejection::InvalidToken(
            InvalidReason::Unknown,
        )))
}

/// The user the token belongs to.
#[utoipa::path(
    get,
    path = "/v1/auth/user",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = UserResponse),
        (status = 401, description = "Missing, unknown, expired or revoked token", body = crate::openapi::MessageBody),
        (status = 403, description = "The token's second factor is pending", body = crate::openapi::SecondFactorBody),
    )
)]
pub(crate) async fn user(
    State(app): State<AppState>,
    Authenticated(token): Authenticated<Token>,
) -> Result<Response, ApiError> {
    let user = current_user(&app, &token).await?;
    Ok(json(StatusCode::OK, &UserResponse::from(&user)))
}

/// Revokes the token used for this request.
#[utoipa::path(
    post,
    path = "/v1/auth/logout",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out: the token is refused from now on"),
        (status = 401, description = "Missing, unknown, expired or revoked token", body = crate::openapi::MessageBody),
        (status = 403, description = "The token's second factor is pending", body = crate::openapi::SecondFactorBody),
    )
)]
pub(crate) async fn logout(
    State(app): State<AppState>,
    Authenticated(token): Authenticated<Token>,
) -> Result<Response, ApiError> {
    match app.keys.revoke(token.owner(), token.id()).await {
        // Revoked by another request since the middleware accepted it: refused from now
        // on all the same, which is what logging out asks.
        Ok(()) | Err(StoreError::NotFound(_)) => Ok(no_content().into_response()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_fold_as_an_accent_insensitive_collation() {
        for spelling in [
            "ada@example.com",
            "ADA@example.com",
            " Ada@Example.com ",
            "ádá@example.com",
            "ÁDÀ@EXAMPLE.COM",
            "a\u{301}da@example.com",
            "ａｄａ@example.com",
        ] {
            assert_eq!(fold_email(spelling), "ada@example.com", "{spelling}");
        }
        assert_eq!(fold_email("Straße@example.com"), "strasse@example.com");
        assert_eq!(fold_email("ÆSIR@example.com"), "aesir@example.com");
        assert_ne!(fold_email("bob@example.com"), fold_email("ada@example.com"));
    }
}

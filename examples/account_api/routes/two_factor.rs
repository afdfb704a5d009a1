//! Two-factor authentication: turn it on (enable, then confirm with a code), off (with the
//! password), and pass the challenge that a login of a user with two-factor on waits for.

use std::{borrow::Cow, time::SystemTime};

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use bearer_auth::{InvalidReason, Rejection, StoreError};
use bearer_auth_tower::Authenticated;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use zeroize::Zeroizing;

use crate::{
    app::{AppState, Token},
    errors::{ApiError, Errors, JsonBody, json},
    input::{self, Rules},
    routes::{PasswordSlot, auth::current_user, no_content},
    two_factor,
    users::{self, User},
};

/// Failed challenges after which a pending token is revoked.
const MAX_TOKEN_FAILURES: u32 = 5;

/// Fortify's message for a wrong code.
const CODE_INVALID: &str = "The provided two factor authentication code was invalid.";
/// Fortify's message for a wrong recovery code.
const RECOVERY_CODE_INVALID: &str = "The provided two factor recovery code was invalid.";

fn already_enabled() -> ApiError {
    ApiError::Status(
        StatusCode::CONFLICT,
        Cow::Borrowed("Two-factor authentication is already enabled."),
    )
}

/// The secret to add to an authenticator app.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EnableResponse<'a> {
    /// The TOTP secret in base32 (RFC 6238: SHA-1, 6 digits, 30 s).
    #[schema(example = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")]
    secret: &'a str,
    /// The same as an `otpauth://totp/…` URL, for a QR code.
    otpauth_url: String,
}

/// Starts turning two-factor on: a new secret, which `POST /v1/auth/two-factor/confirm`
/// confirms with a code. Until then logins do not ask for a code.
#[utoipa::path(
    post,
    path = "/v1/auth/two-factor/enable",
    tag = "two-factor",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A new secret, not confirmed yet", body = EnableResponse),
        (status = 401, description = "Missing, unknown, expired or revoked token", body = crate::openapi::MessageBody),
        (status = 403, description = "The token's second factor is pending", body = crate::openapi::SecondFactorBody),
        (status = 409, description = "Two-factor is already on: turn it off first", body = crate::openapi::MessageBody),
    )
)]
pub(crate) async fn enable(
    State(app): State<AppState>,
    Authenticated(token): Authenticated<Token>,
) -> Result<Response, ApiError> {
    let user = current_user(&app, &token).await?;
    if user.two_factor_enabled() {
        return Err(already_enabled());
    }
    let secret = two_factor::generate_secret()?;
    let otpauth_url = two_factor::otpauth_url(&secret, &app.issuer, &user.email)
        .ok_or_else(|| ApiError::unavailable("a new secret is not base32"))?;
    let encrypted = app.encrypter.encrypt(&secret)?;
    app.db.set_two_factor_secret(user.id, &encrypted).await?;
    Ok(json(
        StatusCode::OK,
        &EnableResponse {
            secret: &secret,
            otpauth_url,
        },
    ))
}

/// The secret being turned on, as a QR code.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QrCodeResponse {
    /// An SVG image (`image/svg+xml`) of the QR code of `url`, made by this server.
    #[schema(
        example = "<?xml version=\"1.0\" standalone=\"yes\"?><svg xmlns=\"http://www.w3.org/2000/svg\" …</svg>"
    )]
    svg: String,
    /// The `otpauth://totp/…` URL the image holds.
    url: String,
}

/// The QR code of the secret that `POST /v1/auth/two-factor/enable` made, for an
/// authenticator app to scan (Laravel Fortify's `GET /user/two-factor-qr-code`). Only
/// while two-factor is being turned on: once confirmed, the secret is not shown again.
#[utoipa::path(
    get,
    path = "/v1/auth/two-factor/qr-code",
    tag = "two-factor",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The QR code of the secret not confirmed yet", body = QrCodeResponse),
        (status = 401, description = "Missing, unknown, expired or revoked token", body = crate::openapi::MessageBody),
        (status = 403, description = "The token's second factor is pending", body = crate::openapi::SecondFactorBody),
        (status = 409, description = "Two-factor is already on, or was not enabled", body = crate::openapi::MessageBody),
    )
)]
pub(crate) async fn qr_code(
    State(app): State<AppState>,
    Authenticated(token): Authenticated<Token>,
) -> Result<Response, ApiError> {
    let user = current_user(&app, &token).await?;
    if user.two_factor_enabled() {
        return Err(already_enabled());
    }
    let Some(secret) = secret_of(&app, &user)? else {
        return Err(ApiError::Status(
            StatusCode::CONFLICT,
            Cow::Borrowed(
                "Two-factor authentication is not being enabled: call POST /v1/auth/two-factor/enable first.",
            ),
        ));
    };
    let url = two_factor::otpauth_url(&secret, &app.issuer, &user.email)
        .ok_or_else(|| ApiError::unavailable("two_factor_secret of a user is not base32"))?;
    let svg = two_factor::qr_code_svg(&url)
        .ok_or_else(|| ApiError::unavailable("an otpauth URL too long for a QR code"))?;
    Ok(json(StatusCode::OK, &QrCodeResponse { svg, url }))
}

/// `POST /v1/auth/two-factor/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ConfirmRequest {
    /// The current 6-digit code of the authenticator app.
    #[schema(value_type = String, example = "123456")]
    code: Option<Value>,
}

/// The recovery codes, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConfirmResponse<'a> {
    /// Eight codes, each usable once in place of a TOTP code.
    recovery_codes: &'a [String],
}

/// The user's decrypted secret, if two-factor was enabled (confirmed or not).
fn secret_of(app: &AppState, user: &User) -> Result<Option<Zeroizing<String>>, ApiError> {
    match &user.two_factor_secret {
        None => Ok(None),
        Some(encrypted) => {
            app.encrypter.decrypt(encrypted).map(Some).map_err(|e| {
                ApiError::unavailable(format_args!("two_factor_secret of a user: {e}"))
            })
        }
    }
}

/// Whether `code` is a valid TOTP code for `secret` not used before (claiming its step).
async fn accept_code(
    app: &AppState,
    user: &User,
    secret: &str,
    code: &str,
) -> Result<bool, ApiError> {
    match two_factor::matching_step(secret, code, two_factor::current_step()) {
        Some(step) => Ok(app.db.claim_totp_step(user.id, step).await?),
        None => Ok(false),
    }
}

/// Confirms two-factor with a code from the app: from now on, logins wait for a code.
/// Returns eight recovery codes, the only time they are shown.
#[utoipa::path(
    post,
    path = "/v1/auth/two-factor/confirm",
    tag = "two-factor",
    security(("bearer" = [])),
    request_body = ConfirmRequest,
    responses(
        (status = 200, description = "Two-factor is on", body = ConfirmResponse),
        (status = 401, description = "Missing, unknown, expired or revoked token", body = crate::openapi::MessageBody),
        (status = 403, description = "The token's second factor is pending", body = crate::openapi::SecondFactorBody),
        (status = 409, description = "Two-factor is already on", body = crate::openapi::MessageBody),
        (status = 422, description = "Wrong or used code, or two-factor not enabled", body = crate::openapi::ValidationErrorBody),
    )
)]
pub(crate) async fn confirm(
    State(app): State<AppState>,
    Authenticated(token): Authenticated<Token>,
    JsonBody(request): JsonBody<ConfirmRequest>,
) -> Result<Response, ApiError> {
    let mut errors = Errors::default();
    let code = input::string(
        request.code.as_ref(),
        "code",
        Rules::required(),
        &mut errors,
    );
    errors.into_result()?;
    let user = current_user(&app, &token).await?;
    if user.two_factor_enabled() {
        return Err(already_enabled());
    }
    let (Some(code), Some(secret), Some(encrypted_secret)) = (
        code,
        secret_of(&app, &user)?,
        user.two_factor_secret.as_deref(),
    ) else {
        return Err(ApiError::field("code", CODE_INVALID));
    };
    if !accept_code(&app, &user, &secret, &code).await? {
        return Err(ApiError::field("code", CODE_INVALID));
    }
    let codes = Zeroizing::new(two_factor::generate_recovery_codes()?);
    let codes_json = Zeroizing::new(serde_json::to_string(&*codes).unwrap_or_default());
    let encrypted_codes = app.encrypter.encrypt(&codes_json)?;
    if !app
        .db
        .confirm_two_factor(user.id, encrypted_secret, &encrypted_codes)
        .await?
    {
        // Enabled again (a new secret) or confirmed by another request meanwhile.
        return Err(ApiError::field("code", CODE_INVALID));
    }
    tracing::info!(user = user.id, "two-factor confirmed");
    Ok(json(
        StatusCode::OK,
        &ConfirmResponse {
            recovery_codes: &codes,
        },
    ))
}

/// `DELETE /v1/auth/two-factor`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct DisableRequest {
    /// The user's password.
    #[schema(value_type = String, format = Password)]
    password: Option<Value>,
}

/// Turns two-factor off, after checking the password.
#[utoipa::path(
    delete,
    path = "/v1/auth/two-factor",
    tag = "two-factor",
    security(("bearer" = [])),
    request_body = DisableRequest,
    responses(
        (status = 204, description = "Two-factor is off"),
        (status = 401, description = "Missing, unknown, expired or revoked token", body = crate::openapi::MessageBody),
        (status = 403, description = "The token's second factor is pending", body = crate::openapi::SecondFactorBody),
        (status = 422, description = "Wrong or missing password", body = crate::openapi::ValidationErrorBody),
        (status = 429, description = "Too many wrong passwords", body = crate::openapi::MessageBody,
            headers(("Retry-After" = u64, description = "Seconds until the next attempt"))),
    )
)]
pub(crate) async fn disable(
    State(app): State<AppState>,
    Authenticated(token): Authenticated<Token>,
    JsonBody(request): JsonBody<DisableRequest>,
) -> Result<Response, ApiError> {
    let mut errors = Errors::default();
    let password = input::string(
        request.password.as_ref(),
        "password",
        Rules::required().untrimmed(),
        &mut errors,
    )
    .map(Zeroizing::new);
    errors.into_result()?;
    let Some(password) = password else {
        return Err(ApiError::field("password", "The password is incorrect."));
    };
    let user = current_user(&app, &token).await?;
    let throttle_key = user.id.to_string();
    app.passwords
        .check(&throttle_key)
        .map_err(ApiError::Throttled)?;
    let slot = PasswordSlot::take(&app).await?;
    app.passwords
        .attempt(&throttle_key)
        .map_err(ApiError::Throttled)?;
    let hash = user.password.clone();
    let matches = slot
        .run(move || Ok::<_, std::convert::Infallible>(users::verify_password(&password, &hash)))
        .await?;
    if !matches {
        // Laravel's `current_password` rule.
        return Err(ApiError::field("password", "The password is incorrect."));
    }
    app.passwords.clear(&throttle_key);
    app.db.disable_two_factor(user.id).await?;
    tracing::info!(user = user.id, "two-factor disabled");
    Ok(no_content().into_response())
}

/// `POST /v1/auth/two-factor-challenge`: a code, or a recovery code.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ChallengeRequest {
    /// The current 6-digit code of the authenticator app.
    #[schema(value_type = Option<String>, example = "123456")]
    code: Option<Value>,
    /// One of the recovery codes, in place of `code`; each works once.
    #[schema(value_type = Option<String>)]
    recovery_code: Option<Value>,
}

/// The token no longer waits for its second factor.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChallengeResponse {
    /// Always `false`.
    requires_2fa: bool,
}

/// Passes the second factor of a login token: the one route a pending token may use.
///
/// After 5 failures for one user within a minute, whichever of their pending tokens
/// they came with, 429 until the minute ends (Laravel Fortify's `two-factor` limiter,
/// by user). A pending token that failed 5 times is revoked, and one older than 10
/// minutes (`Limits::pending_token_ttl`) is refused (401) and revoked.
#[utoipa::path(
    post,
    path = "/v1/auth/two-factor-challenge",
    tag = "two-factor",
    security(("bearer" = [])),
    request_body = ChallengeRequest,
    responses(
        (status = 200, description = "The token is no longer pending", body = ChallengeResponse),
        (status = 401, description = "Missing, unknown, expired or revoked token", body = crate::openapi::MessageBody),
        (status = 409, description = "The token is not waiting for a second factor", body = crate::openapi::MessageBody),
        (status = 422, description = "Wrong or used code or recovery code", body = crate::openapi::ValidationErrorBody),
        (status = 429, description = "Too many failed attempts for this user", body = crate::openapi::MessageBody,
            headers(("Retry-After" = u64, description = "Seconds until the next attempt"))),
    )
)]
pub(crate) async fn challenge(
    State(app): State<AppState>,
    Authenticated(token): Authenticated<Token>,
    JsonBody(request): JsonBody<ChallengeRequest>,
) -> Result<Response, ApiError> {
    if !token.is_second_factor_pending() {
        return Err(ApiError::Status(
            StatusCode::CONFLICT,
            Cow::Borrowed("This token is not waiting for a second factor."),
        ));
    }
    let mut errors = Errors::default();
    let code = input::string(
        request.code.as_ref(),
        "code",
        Rules::optional(),
        &mut errors,
    );
    let recovery_code = input::string(
        request.recovery_code.as_ref(),
        "recovery_code",
        Rules::optional(),
        &mut errors,
    );
    errors.into_result()?;

    // A pending token lives `pending_token_ttl` from its login, to the second the store
    // records (so a login is not a lasting licence to guess).
    let key = app
        .keys
        .get(token.owner(), token.id())
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => {
                ApiError::Rejection(Rejection::InvalidToken(InvalidReason::Unknown))
            }
            e => e.into(),
        })?;
    let expired = key
        .created_at
        .checked_add(app.limits.pending_token_ttl)
        .is_some_and(|end| end <= SystemTime::now());
    if expired {
        revoke(&app, &token).await?;
        return Err(ApiError::Rejection(Rejection::InvalidToken(
            InvalidReason::Expired,
        )));
    }

    // Counted per user, whichever of their pending tokens (each login makes one) the
    // guess comes with; checked and counted in one step.
    let user_key = token.owner().to_string();
    app.challenges
        .attempt(&user_key)
        .map_err(ApiError::Throttled)?;
    let user = current_user(&app, &token).await?;
    let passed = match (recovery_code, code) {
        (Some(recovery_code), _) => spend_recovery_code(&app, &user, &recovery_code)
            .await?
            .then_some(())
            .ok_or(("recovery_code", RECOVERY_CODE_INVALID)),
        (None, code) => {
            let secret = secret_of(&app, &user)?.filter(|_| user.two_factor_enabled());
            let ok = match (secret, code) {
                (Some(secret), Some(code)) => accept_code(&app, &user, &secret, &code).await?,
                _ => false,
            };
            ok.then_some(()).ok_or(("code", CODE_INVALID))
        }
    };
    let token_key = token.id().to_string();
    if let Err((field, message)) = passed {
        if app.challenge_tokens.fail(&token_key) >= MAX_TOKEN_FAILURES {
            revoke(&app, &token).await?;
            app.challenge_tokens.clear(&token_key);
            tracing::info!(
                user = user.id,
                "pending token revoked after failed challenges"
            );
        }
        return Err(ApiError::field(field, message));
    }
    app.challenges.clear(&user_key);
    app.challenge_tokens.clear(&token_key);
    match app
        .keys
        .confirm_second_factor(token.owner(), token.id())
        .await
    {
        Ok(()) => {}
        // Revoked by another request since the middleware accepted it: the token is
        // refused, as it would be a moment later.
        Err(StoreError::NotFound(_)) => {
            return Err(ApiError::Rejection(Rejection::InvalidToken(
                InvalidReason::Unknown,
            )));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(user = user.id, "two-factor challenge passed");
    Ok(json(
        StatusCode::OK,
        &ChallengeResponse {
            requires_2fa: false,
        },
    ))
}

/// Revokes the pending token; one revoked meanwhile (by a concurrent request) is fine.
async fn revoke(app: &AppState, token: &Token) -> Result<(), ApiError> {
    match app.keys.revoke(token.owner(), token.id()).await {
        Ok(()) | Err(StoreError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Spends one of the user's recovery codes: `true` if `code` was one, now gone.
async fn spend_recovery_code(app: &AppState, user: &User, code: &str) -> Result<bool, ApiError> {
    let Some(encrypted) = user
        .two_factor_recovery_codes
        .as_deref()
        .filter(|_| user.two_factor_enabled())
    else {
        return Ok(false);
    };
    let json = app
        .encrypter
        .decrypt(encrypted)
        .map_err(|e| ApiError::unavailable(format_args!("recovery codes of a user: {e}")))?;
    let codes: Vec<String> = serde_json::from_str(&json)
        .map_err(|e| ApiError::unavailable(format_args!("recovery codes of a user: {e}")))?;
    let Some(rest) = two_factor::spend_recovery_code(&codes, code) else {
        return Ok(false);
    };
    let rest_json = Zeroizing::new(serde_json::to_string(&rest).unwrap_or_default());
    let new = app.encrypter.encrypt(&rest_json)?;
    // Only if no other request spent a code meanwhile: a code works once.
    Ok(app
        .db
        .replace_recovery_codes(user.id, encrypted, &new)
        .await?)
}

//! API keys: create (the plain text token shown once), list (never a secret), regenerate
//! (the old token refused at once), revoke. A user sees and changes only their own keys:
//! another user's key id answers 404, as an unknown id does.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use bearer_auth::{
    Abilities, InvalidReason, IssuedToken, NewToken, Rejection, StoreError, TokenInfo,
};
use bearer_auth_tower::Authenticated;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{OffsetDateTime, PrimitiveDateTime, format_description::well_known::Rfc3339};
use utoipa::{
    ToSchema,
    openapi::{
        KnownFormat, SchemaFormat, Type,
        schema::{AnyOfBuilder, ObjectBuilder, Schema},
    },
};

use crate::{
    app::{AppState, Token},
    errors::{ApiError, Errors, JsonBody, json},
    input::{self, Rules},
    routes::no_content,
    users::UserId,
};

/// At most this many abilities per key.
const MAX_ABILITIES: usize = 100;
/// At most this many bytes of abilities as the store writes them (JSON, non-ASCII as
/// `\uXXXX`), well within MySQL's `TEXT` (65,535 bytes).
const MAX_ABILITIES_JSON: usize = 16 * 1024;

/// `POST /v1/profile/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct CreateKeyRequest {
    /// A label, up to 255 characters.
    #[schema(value_type = String, example = "CI")]
    name: Option<Value>,
    /// What the key may do; `["*"]` (everything) when absent. Up to 100 names of up to
    /// 255 characters, 16 KiB as JSON.
    #[schema(value_type = Option<Vec<String>>, example = json!(["servers:read"]))]
    abilities: Option<Value>,
    #[schema(schema_with = expires_at_schema)]
    expires_at: Option<Value>,
}

/// `expires_at` as [`create_key`] reads it: RFC 3339, Laravel's `Y-m-d H:i:s` in UTC, or
/// blank or null for never (strings are trimmed, and blank is null, as Laravel's
/// `TrimStrings` and `ConvertEmptyStringsToNull` do).
fn expires_at_schema() -> Schema {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    AnyOfBuilder::new()
        .item(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))))
        .item(string().pattern(Some(
            r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\s*$",
        )))
        .item(string().pattern(Some(r"^\s*$")))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "When the key stops working, in the future: RFC 3339 (`2030-01-01T00:00:00Z`) or \
             `Y-m-d H:i:s` in UTC. Never when absent, null or blank.",
        ))
        .examples([serde_json::json!("2030-01-01T00:00:00Z")])
        .into()
}

/// A key, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KeyResponse {
    id: u64,
    name: String,
    abilities: Vec<String>,
    /// When it was last used (to the interval the store records), or `null`.
    #[schema(value_type = Option<String>, format = DateTime)]
    last_used_at: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
}

/// A key just created or regenerated, with its plain text token: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NewKeyResponse<'a> {
    id: u64,
    name: String,
    abilities: Vec<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    /// `{id}|{secret}`: send it as `Authorization: Bearer …`. Shown once.
    plain_text_token: &'a str,
}

/// The latest `expires_at` accepted: 9999-12-31T23:59:59Z, the last second a four-digit
/// year writes (Laravel's `Y-m-d H:i:s`, and JSON dates here).
const LATEST_EXPIRY_SECS: u64 = 253_402_300_799;

/// A time as Laravel serializes dates: `2024-05-01T10:00:00.000000Z`. Never panics: a
/// time before year -9999 or after 9999 (which no request can store, but a row written
/// elsewhere may hold) is shown as the first or last instant of that range.
fn laravel_json_time(t: SystemTime) -> String {
    let nanos = match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => i128::try_from(before.duration().as_nanos()).map_or(i128::MIN, |n| -n),
    };
    let t = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or_else(|_| {
        if nanos < 0 {
            PrimitiveDateTime::MIN.assume_utc()
        } else {
            PrimitiveDateTime::MAX.assume_utc()
        }
    });
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    t.format(&format).unwrap_or_default()
}

fn abilities_list(abilities: &Abilities) -> Vec<String> {
    abilities.iter().map(str::to_owned).collect()
}

impl From<TokenInfo<UserId>> for KeyResponse {
    fn from(info: TokenInfo<UserId>) -> Self {
        Self {
            id: info.id,
            name: info.name.into_string(),
            abilities: abilities_list(&info.abilities),
            last_used_at: info.last_used_at.map(laravel_json_time),
            expires_at: info.expires_at.map(laravel_json_time),
            created_at: laravel_json_time(info.created_at),
        }
    }
}

fn new_key(issued: &IssuedToken, info: TokenInfo<UserId>) -> NewKeyResponse<'_> {
    NewKeyResponse {
        id: info.id,
        name: info.name.into_string(),
        abilities: abilities_list(&info.abilities),
        expires_at: info.expires_at.map(laravel_json_time),
        created_at: laravel_json_time(info.created_at),
        plain_text_token: issued.plain_text_token().as_str(),
    }
}

/// An `expires_at`: RFC 3339 (`2030-01-01T00:00:00Z`, any offset) or Laravel's
/// `Y-m-d H:i:s` in UTC.
fn parse_time(text: &str) -> Option<SystemTime> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok().or_else(|| {
        let format =
            time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
        PrimitiveDateTime::parse(text, &format)
            .ok()
            .map(PrimitiveDateTime::assume_utc)
    })?;
    let secs = u64::try_from(t.unix_timestamp()).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, t.nanosecond()))
}

/// The length of `abilities` as JSON the way Laravel (and the SQL store) writes it:
/// `/`, `"`, `\\` and the usual control characters as two bytes, other control
/// characters and every non-ASCII UTF-16 unit as six (`\uXXXX`).
fn abilities_json_len(abilities: &[String]) -> usize {
    let items: usize = abilities
        .iter()
        .map(|a| {
            let chars: usize = a
                .chars()
                .map(|c| match c {
                    '"' | '\\' | '/' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
                    c if c.is_ascii_control() && c != '\u{7f}' => 6,
                    c if c.is_ascii() => 1,
                    c => 6 * c.len_utf16(),
                })
                .sum();
            chars + 2
        })
        .sum();
    items + abilities.len().saturating_sub(1) + 2
}

/// Whether the token may hand out every one of `abilities`: a key cannot give more than
/// the token that makes it has.
fn covers(token: &Token, abilities: &Abilities) -> bool {
    abilities.iter().all(|a| token.abilities().can(a))
        && (!abilities.can("*") || token.abilities().can("*"))
}

/// The key `id` of the token's user, from the path; any other text is an unknown id.
fn key_id(id: &str) -> Result<u64, ApiError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::not_found());
    }
    id.parse().map_err(|_| ApiError::not_found())
}

/// The user's keys, oldest first: never a secret or a digest.
#[utoipa::path(
    get,
    path = "/v1/profile/api-keys",
    tag = "api-keys",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's keys", body = Vec<KeyResponse>),
        (status = 401, description = "Missing, unknown, expired or revoked token", body = crate::openapi::MessageBody),
        (status = 403, description = "The token's second factor is pending", body = crate::openapi::SecondFactorBody),
    )
)]
pub(crate) async fn list_keys(
    State(app): State<AppState>,
    Authenticated(token): Authenticated<Token>,
) -> Result<Response, ApiError> {
    let keys: Vec<KeyResponse> = app
        .keys
        .list(token.owner())
        .await?
        .into_iter()
        .map(KeyResponse::from)
        .collect();
    Ok(json(StatusCode::OK, &keys))
}

/// Creates a key. The response holds its `plain_text_token`, shown this once. The key
/// expires no later than the token that creates it.
#[utoipa::path(
    post,
    path = "/v1/profile/api-keys",
    tag = "api-keys",
    security(("bearer" = [])),
    request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "The new key and its token", body = NewKeyResponse),
        (status = 401, description = "Missing, unknown, expired or revoked token", body = crate::openapi::MessageBody),
        (status = 403, description = "The token's second factor is pending, or it lacks an ability it tried to give", body = crate::openapi::SecondFactorBody),
        (status = 422, description = "Missing name, abilities not a list of strings, expires_at not a future date", body = crate::openapi::ValidationErrorBody),
    )
)]
pub(crate) async fn create_key(
    State(app): State<AppState>,
    Authenticated(token): Authenticated<Token>,
    JsonBody(request): JsonBody<CreateKeyRequest>,
) -> Result<Response, ApiError> {
    let mut errors = Errors::default();
    let name = input::string(
        request.name.as_ref(),
        "name",
        Rules::required().max(255),
        &mut errors,
    );
    let abilities = input::string_array(
        request.abilities.as_ref(),
        "abilities",
        MAX_ABILITIES,
        255,
        &mut errors,
    );
    let abilities = abilities.filter(|list| {
        let fits = abilities_json_len(list) <= MAX_ABILITIES_JSON;
        if !fits {
            errors.add(
                "abilities",
                format!(
                    "The abilities field must not be greater than {MAX_ABILITIES_JSON} bytes as JSON."
                ),
            );
        }
        fits
    });
    let expires_at = input::string(
        request.expires_at.as_ref(),
        "expires_at",
        Rules::optional(),
        &mut errors,
    )
    .and_then(|text| match parse_time(&text) {
        None => {
            errors.add("expires_at", "The expires at field must be a valid date.");
            None
        }
        Some(at) if at <= SystemTime::now() => {
            errors.add(
                "expires_at",
                "The expires at field must be a date after now.",
            );
            None
        }
        Some(at) if at > UNIX_EPOCH + Duration::from_secs(LATEST_EXPIRY_SECS) => {
            errors.add(
                "expires_at",
                "The expires at field must be a date before 10000-01-01 00:00:00.",
            );
            None
        }
        Some(at) => Some(at),
    });
    errors.into_result()?;
    let Some(name) = name else {
        return Err(ApiError::field("name", "The name field is required."));
    };

    let mut new = NewToken::new(*token.owner(), name.as_str());
    let abilities = match abilities {
        Some(abilities) => {
            let abilities = Abilities::new(abilities);
            if !covers(&token, &abilities) {
                return Err(ApiError::Rejection(Rejection::MissingAbility));
            }
            new = new.abilities(abilities.iter().map(str::to_owned).collect::<Vec<_>>());
            abilities
        }
        None if token.abilities().can("*") => Abilities::all(),
        None => return Err(ApiError::Rejection(Rejection::MissingAbility)),
    };
    // A key lives no longer than the token that makes it.
    let limit = match app.keys.get(token.owner(), token.id()).await {
        Ok(info) => info.expires_at,
        // Revoked by another request since the middleware accepted it: the token is
        // refused, as it would be a moment later.
        Err(StoreError::NotFound(_)) => {
            return Err(ApiError::Rejection(Rejection::InvalidToken(
                InvalidReason::Unknown,
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let expires_at = match (expires_at, limit) {
        (Some(asked), Some(limit)) => Some(asked.min(limit)),
        (asked, limit) => asked.or(limit),
    };
    if let Some(at) = expires_at {
        new = new.expires_at(at);
    }
    let issued = match app.keys.create(new).await {
        Ok(issued) => issued,
        // The one thing of a new key a store may not hold: MySQL's `TIMESTAMP` ends in
        // January 2038.
        Err(StoreError::Invalid(_)) if expires_at.is_some() => {
            return Err(ApiError::field(
                "expires_at",
                "The expires at field must be a date before 2038-01-19 03:14:08.",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let info = match app.keys.get(token.owner(), issued.id()).await {
        Ok(info) => info,
        // Revoked by another request the moment it was made: it was created all the same,
        // and this answer shows it as it was (its token refused already, as after any
        // revocation).
        Err(StoreError::NotFound(_)) => {
            let mut info = TokenInfo::new(
                issued.id(),
                *token.owner(),
                name,
                abilities,
                whole_seconds(SystemTime::now()),
            );
            info.expires_at = expires_at;
            info
        }
        Err(e) => return Err(e.into()),
    };
    Ok(json(StatusCode::CREATED, &new_key(&issued, info)))
}

/// `t` without its fraction of a second, as the stores keep `created_at`.
fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Gives the key a new secret: the old token is refused from this moment. The response
/// holds the new `plain_text_token`, shown this once.
#[utoipa::path(
    post,
    path = "/v1/profile/api-keys/{id}/regenerate",
    tag = "api-keys",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "The key's id")),
    responses(
        (status = 200, description = "The key and its new token", body = NewKeyResponse),
        (status = 401, description = "Missing, unknown, expired or revoked token", body = crate::openapi::MessageBody),
        (status = 403, description = "The token's second factor is pending, or it lacks one of the key's abilities", body = crate::openapi::SecondFactorBody),
        (status = 404, description = "No key of this user has this id", body = crate::openapi::MessageBody),
    )
)]
pub(crate) async fn regenerate_key(
    State(app): State<AppState>,
    Authenticated(token): Authenticated<Token>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = key_id(&id)?;
    let current = app.keys.get(token.owner(), id).await?;
    if !covers(&token, &current.abilities) {
        return Err(ApiError::Rejection(Rejection::MissingAbility));
    }
    let issued = app.keys.regenerate(token.owner(), id).await?;
    let info = app.keys.get(token.owner(), id).await?;
    Ok(json(StatusCode::OK, &new_key(&issued, info)))
}

/// Deletes the key: it is refused from this moment.
#[utoipa::path(
    delete,
    path = "/v1/profile/api-keys/{id}",
    tag = "api-keys",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Missing, unknown, expired or revoked token", body = crate::openapi::MessageBody),
        (status = 403, description = "The token's second factor is pending", body = crate::openapi::SecondFactorBody),
        (status = 404, description = "No key of this user has this id", body = crate::openapi::MessageBody),
    )
)]
pub(crate) async fn revoke_key(
    State(app): State<AppState>,
    Authenticated(token): Authenticated<Token>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = key_id(&id)?;
    app.keys.revoke(token.owner(), id).await?;
    Ok(no_content().into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_laravel_writes_them() {
        let t = UNIX_EPOCH + Duration::from_secs(1_714_557_600);
        assert_eq!(laravel_json_time(t), "2024-05-01T10:00:00.000000Z");
        assert_eq!(parse_time("2024-05-01T10:00:00.000000Z"), Some(t));
        assert_eq!(parse_time("2024-05-01T12:00:00+02:00"), Some(t));
        assert_eq!(parse_time("2024-05-01 10:00:00"), Some(t));
        assert_eq!(parse_time("tomorrow"), None);
        assert_eq!(parse_time("1969-12-31T23:59:59Z"), None);
    }

    #[test]
    fn times_out_of_four_digit_years_do_not_panic() {
        let last = UNIX_EPOCH + Duration::from_secs(LATEST_EXPIRY_SECS);
        assert_eq!(laravel_json_time(last), "9999-12-31T23:59:59.000000Z");
        assert_eq!(
            parse_time("9999-12-31T23:59:59-01:00"),
            Some(last + Duration::from_secs(3600))
        );
        // Year 10000 and far beyond, as a row written elsewhere might hold.
        for later in [
            last + Duration::from_secs(3600),
            last + Duration::from_secs(1 << 40),
        ] {
            assert_eq!(laravel_json_time(later), "9999-12-31T23:59:59.999999Z");
        }
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(laravel_json_time(before), "1969-12-31T23:59:59.000000Z");
    }

    #[test]
    fn abilities_measured_as_the_store_writes_them() {
        let list = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(abilities_json_len(&[]), 2);
        assert_eq!(abilities_json_len(&list(&["*"])), r#"["*"]"#.len());
        assert_eq!(
            abilities_json_len(&list(&["servers:read", "a/b", "q\"\u{1}"])),
            r#"["servers:read","a\/b","q\"\u0001"]"#.len()
        );
        // é is one UTF-16 unit, 😀 two.
        assert_eq!(
            abilities_json_len(&list(&["é😀"])),
            r#"["\u00e9\ud83d\ude00"]"#.len()
        );
    }

    #[test]
    fn key_ids() {
        assert_eq!(key_id("12").unwrap(), 12);
        for bad in ["", "x", "-1", "1.0", "99999999999999999999999"] {
            assert!(key_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_token_gives_only_what_it_has() {
        let all = Token::new(1, 1, Abilities::all(), false);
        let read = Token::new(2, 1, Abilities::new(["read"]), false);
        assert!(covers(&all, &Abilities::new(["read", "write"])));
        assert!(covers(&all, &Abilities::all()));
        assert!(covers(&read, &Abilities::new(["read"])));
        assert!(!covers(&read, &Abilities::new(["read", "write"])));
        assert!(!covers(&read, &Abilities::all()));
    }
}

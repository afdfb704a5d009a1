//! The OpenAPI 3.1 document of the API, served at `GET /v1/openapi.json`.
//!
//! Its paths come from the `#[utoipa::path]` of each handler, collected by the router
//! that serves them (`utoipa_axum`), and its schemas from the types the handlers read and
//! write: it cannot drift from the code.

use std::collections::BTreeMap;

use axum::body::Bytes;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

/// Where the document is served.
pub const PATH: &str = "/v1/openapi.json";

/// `{"message":…}`: 401 `Unauthenticated.`, 404 `Not Found.`, 429 `Too Many Attempts.`, …
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MessageBody {
    #[schema(example = "Unauthenticated.")]
    message: String,
}

/// 403 for a token whose second factor is pending:
/// `{"message":"Two-factor authentication required.","requires_2fa":true}`.
/// (A token lacking an ability gets `{"message":"Invalid ability provided."}`.)
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SecondFactorBody {
    #[schema(example = "Two-factor authentication required.")]
    message: String,
    #[schema(example = true)]
    requires_2fa: bool,
}

/// 403 for a token that lacks an ability the route requires (`*`, on the routes that
/// manage the account): `{"message":"Invalid ability provided."}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)] // `additionalProperties: false`: no body matches both 403 shapes
pub(crate) struct AbilityBody {
    #[schema(example = "Invalid ability provided.")]
    message: String,
}

/// 422, Laravel's validation shape: the first message (with "(and N more errors)"), and
/// every message by field.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ValidationErrorBody {
    #[schema(example = "The email has already been taken.")]
    message: String,
    #[schema(example = json!({"email": ["The email has already been taken."]}))]
    errors: BTreeMap<String, Vec<String>>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "account_api",
        description = "Register and log in, API keys shown once, regenerated and revoked, \
                       two-factor sign-in: bearer-auth's account API example. Send a token \
                       as `Authorization: Bearer <token>`.",
        license(name = "MIT", identifier = "MIT"),
    ),
    modifiers(&BearerScheme),
    components(schemas(MessageBody, SecondFactorBody, AbilityBody, ValidationErrorBody)),
    tags(
        (name = "auth", description = "Register, log in, the current user, log out"),
        (name = "two-factor", description = "TOTP two-factor sign-in (RFC 6238: SHA-1, 6 digits, 30 s)"),
        (name = "api-keys", description = "The user's API keys"),
    )
)]
struct ApiDoc;

/// The `bearer` security scheme the protected paths name.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document before the router adds its paths.
pub(crate) fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The operations of `api`, as `(path, method)`: those of a router whose layer requires
/// an ability, for [`document`].
pub(crate) fn operations(api: &utoipa::openapi::OpenApi) -> Vec<(String, String)> {
    let Ok(Value::Object(paths)) = serde_json::to_value(&api.paths) else {
        return Vec::new();
    };
    paths
        .into_iter()
        .flat_map(|(path, item)| {
            let methods = match item {
                Value::Object(item) => item.into_iter().map(|(m, _)| m).collect(),
                _ => Vec::new(),
            };
            methods.into_iter().map(move |m| (path.clone(), m))
        })
        .collect()
}

/// The document as served: JSON, with the answers that do not come from the handlers
/// themselves but from what is around them, added to every operation they apply to:
///
/// - a protected route's 401 carries `WWW-Authenticate` (the middleware's challenge);
/// - on `account` operations (which require `*`), 403 is either documented body: the
///   second factor pending, or the ability missing;
/// - a route that reads a JSON body answers 400 (not JSON, not an object), 413 (too
///   large) and 415 (another content type), from [`JsonBody`](crate::errors::JsonBody);
/// - every route may answer 408 (the request timeout) and 503 (the database down, or
///   every password hashing slot busy).
///
/// An answer a handler documents itself is left as it is.
pub(crate) fn document(api: utoipa::openapi::OpenApi, account: &[(String, String)]) -> Bytes {
    let Ok(mut doc) = serde_json::to_value(&api) else {
        return Bytes::from(api.to_json().unwrap_or_default());
    };
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for (path, item) in paths.iter_mut() {
            let Value::Object(item) = item else { continue };
            for (method, op) in item.iter_mut() {
                let is_account = account.iter().any(|(p, m)| p == path && m == method);
                complete_operation(op, is_account);
            }
        }
    }
    Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
}

fn message_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MessageBody"}}}
    })
}

fn complete_operation(op: &mut Value, is_account: bool) {
    let protected = op.get("security").is_some();
    let reads_body = op.get("requestBody").is_some();
    let Some(Value::Object(responses)) = op.get_mut("responses") else {
        return;
    };
    if protected && let Some(Value::Object(unauthorized)) = responses.get_mut("401") {
        unauthorized.entry("headers").or_insert_with(|| {
            json!({
                "WWW-Authenticate": {
                    "description": "The challenge: `Bearer` when no token was sent, `Bearer error=\"invalid_token\"` when the token was refused",
                    "schema": {"type": "string"}
                }
            })
        });
    }
    if is_account {
        responses.insert(
            "403".to_owned(),
            json!({
                "description": "The token's second factor is pending, or the token lacks `*` (every ability): managing the account takes a login token or a key made without abilities",
                "content": {"application/json": {"schema": {"oneOf": [
                    {"$ref": "#/components/schemas/SecondFactorBody"},
                    {"$ref": "#/components/schemas/AbilityBody"}
                ]}}}
            }),
        );
    }
    if reads_body {
        for (status, description) in [
            ("400", "The body is not valid JSON, or not a JSON object"),
            ("413", "The body is larger than 64 KiB"),
            (
                "415",
                "The body is not `Content-Type: application/json` (or `application/*+json`)",
            ),
        ] {
            responses
                .entry(status)
                .or_insert_with(|| message_response(description));
        }
    }
    responses.entry("408").or_insert_with(|| {
        message_response("The request, its body included, took longer than 30 s to arrive")
    });
    responses.entry("503").or_insert_with(|| {
        json!({
            "description": "The database is unavailable; or every password hashing slot is busy, with `Retry-After`",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MessageBody"}}},
            "headers": {"Retry-After": {
                "description": "Seconds to wait, when the service is busy",
                "schema": {"type": "integer", "minimum": 1}
            }}
        })
    });
}

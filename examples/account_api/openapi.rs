//! The OpenAPI 3.1 document of the API, served at `GET /v1/openapi.json`.
//!
//! Its paths come from the `#[utoipa::path]` of each handler, collected by the router
//! that serves them (`utoipa_axum`), and its schemas from the types the handlers read and
//! write: it cannot drift from the code.

use std::collections::BTreeMap;

use axum::body::Bytes;
use serde::Serialize;
use utoipa::{
    IntoResponses, Modify, OpenApi, ToSchema,
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
    requires_2fa: Option<bool>,
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

/// The answers of every route that reads a JSON body ([`JsonBody`](crate::errors::JsonBody))
/// to a body that is not one, each `{"message":…}`.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum JsonBodyRejections {
    /// The body is not valid JSON, or not a JSON object
    #[response(status = 400)]
    NotJson(MessageBody),
    /// The body is larger than 64 KiB
    #[response(status = 413)]
    TooLarge(MessageBody),
    /// The body is not `Content-Type: application/json` (or `application/*+json`)
    #[response(status = 415)]
    NotJsonType(MessageBody),
}

/// The answer of every route when the database fails:
/// `{"message":"Service Unavailable."}`, never a 401.
#[derive(IntoResponses)]
#[response(status = 503)]
#[allow(dead_code)]
pub(crate) struct Unavailable(MessageBody);

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
    components(schemas(MessageBody, SecondFactorBody, ValidationErrorBody)),
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

/// The document as served: JSON.
pub(crate) fn document(api: utoipa::openapi::OpenApi) -> Bytes {
    Bytes::from(api.to_json().unwrap_or_default())
}

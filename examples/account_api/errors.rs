//! Every answer that is not a success, as JSON with a `message`: Laravel's validation
//! shape (422), throttling (429 with `Retry-After`), the request body's faults (400, 413,
//! 415), unknown routes (404, 405), and the core's 401/403/503.
//!
//! Client input never leads to a panic or a 5xx: a body that is not JSON, not an object,
//! of another content type or too large is a 4xx; a failing database is 503.

use std::{borrow::Cow, fmt, time::Duration};

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bearer_auth::{Rejection, StoreError, UNAVAILABLE_BODY};
use serde::{Serialize, Serializer, de::DeserializeOwned, ser::SerializeMap};
use serde_json::Value;

use crate::throttle::retry_after_secs;

/// `Content-Type: application/json`.
pub(crate) const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON response: the body with `Content-Type: application/json`.
pub(crate) fn json_response(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    let mut response = (status, body.into()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, JSON);
    response
}

/// A JSON response of a value.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => json_response(status, body),
        Err(e) => ApiError::unavailable(e).into_response(),
    }
}

/// `{"message":…}`.
#[derive(Serialize)]
struct Message<'a> {
    message: &'a str,
}

/// What a handler answers when it does not succeed.
#[derive(Debug)]
pub enum ApiError {
    /// 422, Laravel's validation shape.
    Validation(Errors),
    /// A 4xx with a message.
    Status(StatusCode, Cow<'static, str>),
    /// 429 `{"message":"Too Many Attempts."}` with `Retry-After`.
    Throttled(Duration),
    /// The core's documented answer (401, 403, 503).
    Rejection(Rejection),
    /// 503 `{"message":"Service Unavailable."}`: the database or the randomness failed.
    /// The cause is logged, never sent.
    Unavailable,
    /// 503 `{"message":"Service Unavailable."}` with `Retry-After`: too busy (every
    /// password hashing slot taken) to answer now.
    Busy(Duration),
}

impl ApiError {
    /// 404 `{"message":"Not Found."}`: an unknown route, or a key that is not the user's.
    pub fn not_found() -> Self {
        Self::Status(StatusCode::NOT_FOUND, Cow::Borrowed("Not Found."))
    }

    /// A 503 for a backend failure, logged with its cause.
    pub fn unavailable(cause: impl fmt::Display) -> Self {
        tracing::error!(%cause, "backend failure");
        Self::Unavailable
    }

    /// A 422 with one message for one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Errors::default();
        errors.add(field, message);
        Self::Validation(errors)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::unavailable(e)
    }
}

impl From<getrandom::Error> for ApiError {
    fn from(e: getrandom::Error) -> Self {
        Self::unavailable(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => Self::not_found(),
            StoreError::Invalid(why) => Self::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                Cow::Owned(why.into_string()),
            ),
            other => Self::unavailable(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Validation(errors) => json(StatusCode::UNPROCESSABLE_ENTITY, &errors.body()),
            Self::Status(status, message) => json(status, &Message { message: &message }),
            Self::Throttled(wait) => {
                let mut response = json(
                    StatusCode::TOO_MANY_REQUESTS,
                    &Message {
                        message: "Too Many Attempts.",
                    },
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, retry_after_secs(wait).into());
                response
            }
            Self::Rejection(rejection) => {
                rejection.to_response::<axum::body::Body>(&bearer_auth::Challenge::new())
            }
            Self::Unavailable => json_response(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE_BODY),
            Self::Busy(wait) => {
                let mut response = json_response(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE_BODY);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, retry_after_secs(wait).into());
                response
            }
        }
    }
}

/// Validation errors by field, in the order they were found (Laravel's `errors` bag).
#[derive(Debug, Default)]
pub struct Errors {
    fields: Vec<(String, Vec<String>)>,
}

impl Errors {
    /// Adds `message` to `field`.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        let message = message.into();
        match self.fields.iter_mut().find(|(f, _)| f == field) {
            Some((_, messages)) => messages.push(message),
            None => self.fields.push((field.to_owned(), vec![message])),
        }
    }

    /// Whether `field` has an error.
    pub fn has(&self, field: &str) -> bool {
        self.fields.iter().any(|(f, _)| f == field)
    }

    /// How many messages there are.
    pub fn count(&self) -> usize {
        self.fields.iter().map(|(_, m)| m.len()).sum()
    }

    /// `Ok(())` if there is none, else the 422.
    pub fn into_result(self) -> Result<(), ApiError> {
        if self.fields.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self))
        }
    }

    /// Laravel's body: the first message, with "(and N more errors)" when there are
    /// more, and every message by field.
    fn body(&self) -> ValidationBody<'_> {
        let mut all = self.fields.iter().flat_map(|(_, m)| m);
        let first = all
            .next()
            .map_or("The given data was invalid.", String::as_str);
        let more = all.count();
        let message = match more {
            0 => first.to_owned(),
            1 => format!("{first} (and 1 more error)"),
            n => format!("{first} (and {n} more errors)"),
        };
        ValidationBody {
            message,
            errors: self,
        }
    }
}

#[derive(Serialize)]
struct ValidationBody<'a> {
    message: String,
    errors: &'a Errors,
}

impl Serialize for Errors {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (field, messages) in &self.fields {
            map.serialize_entry(field, messages)?;
        }
        map.end()
    }
}

/// A JSON request body: `Content-Type: application/json` (or `…+json`), valid JSON, an
/// object; then read into `T`, whose fields should all be optional (`Option<Value>`) so
/// that reading cannot fail and the handler validates them with Laravel's messages.
///
/// - another or no content type: 415 `{"message":"The request body must be JSON (Content-Type: application/json)."}`;
/// - larger than the router's body limit: 413 `{"message":"The request body is too large."}`;
/// - not JSON: 400 `{"message":"The request body is not valid JSON."}`;
/// - JSON but not an object: 400 `{"message":"The request body must be a JSON object."}`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::Status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Cow::Borrowed("The request body must be JSON (Content-Type: application/json)."),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::Status(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Cow::Borrowed("The request body is too large."),
                )
            } else {
                ApiError::Status(
                    StatusCode::BAD_REQUEST,
                    Cow::Borrowed("The request body could not be read."),
                )
            }
        })?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
            ApiError::Status(
                StatusCode::BAD_REQUEST,
                Cow::Borrowed("The request body is not valid JSON."),
            )
        })?;
        if !value.is_object() {
            return Err(ApiError::Status(
                StatusCode::BAD_REQUEST,
                Cow::Borrowed("The request body must be a JSON object."),
            ));
        }
        serde_json::from_value(value).map(JsonBody).map_err(|_| {
            ApiError::Status(
                StatusCode::BAD_REQUEST,
                Cow::Borrowed("The request body must be a JSON object."),
            )
        })
    }
}

/// Whether the request says its body is JSON: `application/json` or `application/*+json`,
/// with any parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

/// Answers unknown routes: 404 `{"message":"Not Found."}`.
pub async fn not_found() -> ApiError {
    ApiError::not_found()
}

/// Answers a known route with another method: 405 `{"message":"Method Not Allowed."}`.
pub async fn method_not_allowed() -> ApiError {
    ApiError::Status(
        StatusCode::METHOD_NOT_ALLOWED,
        Cow::Borrowed("Method Not Allowed."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(e: ApiError) -> (StatusCode, String) {
        let response = e.into_response();
        let status = response.status();
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn validation_shape_is_laravels() {
        let mut errors = Errors::default();
        errors.add("name", "The name field is required.");
        assert_eq!(
            body(ApiError::Validation(errors)).await,
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                r#"{"message":"The name field is required.","errors":{"name":["The name field is required."]}}"#.to_owned()
            )
        );

        let mut errors = Errors::default();
        errors.add("name", "a");
        errors.add("email", "b");
        errors.add("email", "c");
        assert_eq!(
            body(ApiError::Validation(errors)).await.1,
            r#"{"message":"a (and 2 more errors)","errors":{"name":["a"],"email":["b","c"]}}"#
        );
        let mut errors = Errors::default();
        errors.add("password", "a");
        errors.add("email", "b");
        assert_eq!(
            body(ApiError::Validation(errors)).await.1,
            r#"{"message":"a (and 1 more error)","errors":{"password":["a"],"email":["b"]}}"#
        );
    }

    #[tokio::test]
    async fn throttled_has_retry_after() {
        let response = ApiError::Throttled(Duration::from_millis(41_200)).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
        assert_eq!(
            body(ApiError::Throttled(Duration::from_secs(1))).await.1,
            r#"{"message":"Too Many Attempts."}"#
        );
    }

    #[tokio::test]
    async fn store_errors() {
        assert_eq!(
            body(StoreError::NotFound(3).into()).await,
            (
                StatusCode::NOT_FOUND,
                r#"{"message":"Not Found."}"#.to_owned()
            )
        );
        assert_eq!(
            body(StoreError::backend("down").into()).await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"message":"Service Unavailable."}"#.to_owned()
            )
        );
    }

    #[test]
    fn json_content_types() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("application/json; charset=utf-8"));
        assert!(with("Application/JSON"));
        assert!(with("application/vnd.api+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!with("application/jsonx"));
        assert!(!is_json(&HeaderMap::new()));
    }
}

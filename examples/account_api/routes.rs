//! The handlers, by area: accounts ([`auth`]), two-factor ([`two_factor`]) and API keys
//! ([`keys`]).

pub(crate) mod auth;
pub(crate) mod keys;
pub(crate) mod two_factor;

use axum::{
    http::{StatusCode, header},
    response::IntoResponse,
};

use crate::errors::{ApiError, JSON};

/// The name of the tokens that registering and logging in issue.
pub(crate) const LOGIN_TOKEN_NAME: &str = "login";

/// 204, with the `Content-Type` every answer of this API carries.
pub(crate) fn no_content() -> impl IntoResponse {
    (StatusCode::NO_CONTENT, [(header::CONTENT_TYPE, JSON)])
}

/// Runs slow work (bcrypt) off the async threads.
pub(crate) async fn blocking<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ApiError::unavailable(e)),
        Err(e) => Err(ApiError::unavailable(e)),
    }
}

//! The handlers, by area: accounts ([`auth`]), two-factor ([`two_factor`]) and API keys
//! ([`keys`]).

pub(crate) mod auth;
pub(crate) mod keys;
pub(crate) mod two_factor;

use axum::{
    http::{StatusCode, header},
    response::IntoResponse,
};

use crate::{
    app::AppState,
    errors::{ApiError, JSON},
};

/// The name of the tokens that registering and logging in issue.
pub(crate) const LOGIN_TOKEN_NAME: &str = "login";

/// 204, with the `Content-Type` every answer of this API carries.
pub(crate) fn no_content() -> impl IntoResponse {
    (StatusCode::NO_CONTENT, [(header::CONTENT_TYPE, JSON)])
}

/// A slot for one password hash (bcrypt): at most
/// [`Limits::password_jobs`](crate::Limits::password_jobs) run at once, so that a flood
/// of logins cannot take every CPU. A request that finds them all taken waits up to
/// [`Limits::password_wait`](crate::Limits::password_wait), then gets 503 with
/// `Retry-After` rather than queueing without bound: a client retrying later is better
/// than every client waiting longer.
#[derive(Debug)]
pub(crate) struct PasswordSlot {
    /// Held while the work runs; the slot frees when it is dropped.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl PasswordSlot {
    /// Waits for a free slot, or answers 503 (`ApiError::Busy`).
    pub(crate) async fn take(app: &AppState) -> Result<Self, ApiError> {
        let wait = app.limits.password_wait;
        let slots = std::sync::Arc::clone(&app.password_jobs);
        match tokio::time::timeout(wait, slots.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Self { _permit: permit }),
            Ok(Err(closed)) => Err(ApiError::unavailable(closed)),
            Err(_) => {
                tracing::warn!(?wait, "every password hashing slot busy: 503");
                Err(ApiError::Busy(wait))
            }
        }
    }

    /// Runs `f` (the bcrypt work) off the async threads, holding the slot until it is
    /// done, even if the request is dropped meanwhile.
    pub(crate) async fn run<T, E>(
        self,
        f: impl FnOnce() -> Result<T, E> + Send + 'static,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        blocking(move || {
            let _slot = self;
            f()
        })
        .await
    }
}

/// The throttles' key for a client address ("" when the server runs without addresses).
pub(crate) fn address_key(ip: Option<std::net::IpAddr>) -> String {
    ip.map(|ip| ip.to_string()).unwrap_or_default()
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

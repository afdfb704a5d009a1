//! What the adapters leave in request extensions, and the answer an extractor gives when
//! they left nothing.

use std::sync::LazyLock;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header::CONTENT_TYPE};

use crate::{Challenge, DEFAULT_ERROR_LOG_INTERVAL, ErrorLogThrottle, Rejection};

/// The body of the 500 response an extractor sends when no authentication layer or
/// middleware covers its route (a programming error, not the client's).
pub const MISSING_LAYER_BODY: &[u8] = b"bearer-auth: this route extracts `Authenticated<P>` but no bearer-auth layer or middleware with that principal type runs before it";

/// Left in the request extensions by an adapter when an [optional](crate::Policy::optional)
/// route let a request through without credentials, inside the adapter's own private
/// type (so that it can be told apart from what other middlewares store there).
///
/// An extractor that requires a principal answers such a request with
/// [`response`](Self::response): the documented 401 with the route's challenge.
#[derive(Debug, Clone)]
pub struct Unauthenticated {
    challenge: Challenge,
}

impl Unauthenticated {
    /// The marker for a route with this challenge.
    pub fn new(challenge: Challenge) -> Self {
        Self { challenge }
    }

    /// The 401 for a missing credential, with the route's challenge. Logs the refusal
    /// (one event, reason `missing`), as the adapters do for their own refusals: call it
    /// only to send the response.
    pub fn response<B: From<Bytes>>(&self) -> Response<B> {
        let rejection = Rejection::MissingCredentials;
        tracing::debug!(
            target: "bearer_auth",
            reason = rejection.reason(),
            status = rejection.status().as_u16(),
            "request refused"
        );
        rejection.to_response(&self.challenge)
    }
}

/// The error events of [`missing_layer_response`], for the whole process: one kind per
/// principal type.
static MISSING_LAYER_LOG: LazyLock<ErrorLogThrottle> =
    LazyLock::new(|| ErrorLogThrottle::new(DEFAULT_ERROR_LOG_INTERVAL));

/// The 500 an extractor answers with when no adapter ran before it, and logs the
/// misconfiguration at `error`: for each principal type, the first time, then at most
/// once per [`DEFAULT_ERROR_LOG_INTERVAL`] with the number of requests not logged since in
/// its `suppressed` field, so that a busy misconfigured route cannot fill a disk nor hide
/// another one.
pub fn missing_layer_response<B: From<Bytes>>(principal_type: &'static str) -> Response<B> {
    log_missing_layer(&MISSING_LAYER_LOG, principal_type);
    let mut response = Response::new(B::from(Bytes::from_static(MISSING_LAYER_BODY)));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn log_missing_layer(throttle: &ErrorLogThrottle, principal_type: &'static str) {
    if let Some(suppressed) = throttle.admit(principal_type) {
        tracing::error!(
            target: "bearer_auth",
            principal = principal_type,
            suppressed,
            "Authenticated<P> extractor used on a route that no bearer-auth layer or middleware covers"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_layer_is_500_plain_text() {
        let r: Response<Bytes> = missing_layer_response("u64");
        assert_eq!(r.status(), 500);
        assert_eq!(r.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
        assert_eq!(r.body().as_ref(), MISSING_LAYER_BODY);
    }

    #[test]
    fn unauthenticated_marker_answers_401_with_its_challenge() {
        let r: Response<Bytes> =
            Unauthenticated::new(Challenge::with_realm("api").unwrap()).response();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], r#"Bearer realm="api""#);
        assert_eq!(r.body().as_ref(), crate::UNAUTHENTICATED_BODY);
    }
}

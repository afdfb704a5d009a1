//! What [`BearerAuthService`](crate::BearerAuthService) leaves in the request extensions,
//! and [`principal`], to read it.

use bearer_auth::{Principal, Unauthenticated};
use http::{Extensions, HeaderMap, Request, header::AUTHORIZATION};

/// The service's verdict on a request it let through, stored in the request extensions.
///
/// Private to this crate: no other code can create, insert or name it, so a value of the
/// principal's type that another middleware stored under its own type (a request id
/// `u64`, a session's user `String`) is never taken for an authenticated principal.
#[derive(Clone)]
pub(crate) enum Outcome<P> {
    /// The token was accepted: its principal.
    Accepted(P),
    /// An optional route let the request through without credentials.
    Anonymous(Unauthenticated),
}

/// The principal that a [`BearerAuthService`](crate::BearerAuthService) with principal type
/// `P` accepted for this request, from its extensions; `None` if the request came without
/// credentials on an [optional](crate::BearerAuthLayer::optional) route, or if no such
/// service ran before this point.
///
/// For code that runs after the service and sees the request's [`Extensions`]: a
/// middleware inside the layer, a plain Tower service (`request.extensions()`), an
/// extractor of your own (`parts.extensions`). In axum handlers, take
/// [`Authenticated<P>`](crate::Authenticated) instead.
///
/// The principal is stored under a type private to this crate, not under `P`: so
/// `extensions.get::<P>()` and `axum::Extension<P>` do **not** find it, and a `P` that
/// another middleware inserted is never taken for it.
///
/// ```
/// use std::convert::Infallible;
///
/// use bearer_auth::{BearerToken, InvalidReason, Rejection, verifier_fn};
/// use bearer_auth_tower::{BearerAuthLayer, principal};
/// use bytes::Bytes;
/// use http::{Request, Response, header::AUTHORIZATION};
/// use http_body_util::{BodyExt, Full};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let verifier = verifier_fn(|token: BearerToken| async move {
///     match token.as_str() {
///         "s3cr3t" => Ok(7_u64),
///         _ => Err(Rejection::InvalidToken(InvalidReason::Unknown)),
///     }
/// });
/// let service = ServiceBuilder::new()
///     .layer(BearerAuthLayer::new(verifier).optional())
///     .service(service_fn(|request: Request<()>| async move {
///         let body = match principal::<u64>(request.extensions()) {
///             Some(id) => format!("user {id}"),
///             None => "anonymous".to_owned(),
///         };
///         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
///     }));
///
/// let mut request = Request::new(());
/// request.headers_mut().insert(AUTHORIZATION, "Bearer s3cr3t".parse().unwrap());
/// let response = service.clone().oneshot(request).await.unwrap();
/// let body = response.into_body().collect().await.unwrap().to_bytes();
/// assert_eq!(body, "user 7");
///
/// // Another middleware's `u64` is not the principal.
/// let mut request = Request::new(());
/// request.extensions_mut().insert(424_242_u64);
/// let response = service.oneshot(request).await.unwrap();
/// let body = response.into_body().collect().await.unwrap().to_bytes();
/// assert_eq!(body, "anonymous");
/// # }
/// ```
#[must_use]
pub fn principal<P: Principal>(extensions: &Extensions) -> Option<&P> {
    match extensions.get::<Outcome<P>>()? {
        Outcome::Accepted(principal) => Some(principal),
        Outcome::Anonymous(_) => None,
    }
}

/// Lets `request` through to the inner service with the service's verdict, its
/// `Authorization` value marked sensitive.
///
/// Only a request that [`Authenticator::read_token`](bearer_auth::Authenticator::read_token)
/// let through gets here, and it refuses a request with several `Authorization` values:
/// there is one at most.
pub(crate) fn admit<B, P: Principal>(request: &mut Request<B>, outcome: Outcome<P>) {
    mark_sensitive(request.headers_mut());
    request.extensions_mut().insert(outcome);
}

/// Marks the `Authorization` value sensitive, so that the `Debug` of the headers (a
/// handler's `{:?}`, a trace layer inside this one) shows `Sensitive` instead of the key.
///
/// One lookup and no allocation (`HeaderMap::entry` could grow the map, so it is not
/// used): a request let through has one value at most (see [`admit`]).
fn mark_sensitive(headers: &mut HeaderMap) {
    debug_assert!(
        headers.get_all(AUTHORIZATION).iter().nth(1).is_none(),
        "a request with several Authorization values is refused before it is let through"
    );
    if let Some(value) = headers.get_mut(AUTHORIZATION) {
        value.set_sensitive(true);
    }
}

#[cfg(test)]
mod tests {
    use bearer_auth::Challenge;
    use http::{HeaderValue, header::ACCEPT};

    use super::*;

    #[test]
    fn the_authorization_value_is_marked_sensitive_and_nothing_else() {
        // A request let through has one value at most: `read_token` refuses several
        // (`service::tests` sends two and sees the inner service never called).
        for count in 0..=1 {
            let mut request = Request::new(());
            let headers = request.headers_mut();
            headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
            for i in 0..count {
                let value = HeaderValue::try_from(format!("Bearer key-{i}")).unwrap();
                headers.append(AUTHORIZATION, value);
            }
            admit(&mut request, Outcome::Accepted(7_u64));
            let headers = request.headers();
            let values: Vec<_> = headers.get_all(AUTHORIZATION).iter().collect();
            assert_eq!(values.len(), count);
            assert!(values.iter().all(|value| value.is_sensitive()), "{count}");
            assert!(!headers[ACCEPT].is_sensitive());
            let shown = format!("{headers:?}");
            assert!(!shown.contains("key-"), "{shown}");
            // The values themselves are unchanged, in order.
            for (i, value) in values.iter().enumerate() {
                assert_eq!(value.as_bytes(), format!("Bearer key-{i}").as_bytes());
            }
        }
    }

    #[test]
    fn only_the_services_own_outcome_is_a_principal() {
        let mut extensions = Extensions::new();
        extensions.insert(424_242_u64);
        assert_eq!(principal::<u64>(&extensions), None);
        extensions.insert(Outcome::<u64>::Anonymous(Unauthenticated::new(
            Challenge::new(),
        )));
        assert_eq!(principal::<u64>(&extensions), None);
        extensions.insert(Outcome::Accepted(7_u64));
        assert_eq!(principal::<u64>(&extensions), Some(&7));
        assert_eq!(extensions.get::<u64>(), Some(&424_242));
        assert_eq!(principal::<u32>(&extensions), None);
    }
}

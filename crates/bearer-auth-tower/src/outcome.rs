//! What [`BearerAuthService`](crate::BearerAuthService) leaves in the request extensions,
//! and [`principal`], to read it.

use bearer_auth::{Principal, Unauthenticated};
use http::{Extensions, Request};

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

/// Lets `request` through to the inner service with the service's verdict.
pub(crate) fn admit<B, P: Principal>(request: &mut Request<B>, outcome: Outcome<P>) {
    request.extensions_mut().insert(outcome);
}

#[cfg(test)]
mod tests {
    use bearer_auth::Challenge;

    use super::*;

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

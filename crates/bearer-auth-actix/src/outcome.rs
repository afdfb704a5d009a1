//! What [`BearerAuthService`](crate::BearerAuthService) leaves in the request extensions,
//! and [`PrincipalExt`], to read it.

use actix_web::{HttpMessage, HttpRequest, dev::ServiceRequest};
use bearer_auth::{ErrorLogThrottle, Principal, Unauthenticated};

use crate::sensitive::mark_request;

/// The middleware's verdict on a request it let through, stored in the request
/// extensions.
///
/// Private to this crate: no other code can create, insert or name it, so a value of the
/// principal's type that another middleware stored under its own type (a request id
/// `u64`, a session's user `String`) is never taken for an authenticated principal.
pub(crate) enum Outcome<P> {
    /// The token was accepted: its principal.
    Accepted(P),
    /// An optional route let the request through without credentials.
    Anonymous(Unauthenticated),
}

/// Lets `req` through to the wrapped service with the middleware's verdict, its
/// `Authorization` values marked sensitive where actix-web allows it (see
/// [`mark_request`]).
pub(crate) fn admit<P: Principal>(
    req: &mut ServiceRequest,
    outcome: Outcome<P>,
    error_log: &ErrorLogThrottle,
) {
    // An accepted token was read from the one `Authorization` value there is.
    let one_value = matches!(outcome, Outcome::Accepted(_));
    mark_request(req, error_log, one_value);
    // The extensions are shared by every clone of the request: this works whether or not
    // an outer middleware keeps one.
    req.extensions_mut().insert(outcome);
}

/// Reads the principal that a [`BearerAuthMiddleware`](crate::BearerAuthMiddleware)
/// accepted for a request, in code that runs after the middleware: a `wrap_fn` or
/// middleware inside it ([`ServiceRequest`]), a handler or an extractor of your own
/// ([`HttpRequest`]). In handlers, the [`Authenticated`](crate::Authenticated) and
/// [`MaybeAuthenticated`](crate::MaybeAuthenticated) extractors do the same.
///
/// The principal is stored in the request extensions under a type private to this crate,
/// not under `P`: `req.extensions().get::<P>()` and `web::ReqData<P>` do **not** find it,
/// and a `P` that another middleware inserted is never taken for it.
///
/// ```
/// use actix_web::{App, HttpMessage, HttpRequest, dev::Service as _, test, web};
/// use bearer_auth::{BearerToken, InvalidReason, Rejection, verifier_fn};
/// use bearer_auth_actix::{BearerAuthMiddleware, PrincipalExt};
///
/// async fn me(req: HttpRequest) -> String {
///     match req.principal::<u64>() {
///         Some(id) => format!("user {id}"),
///         None => "anonymous".to_owned(),
///     }
/// }
///
/// # #[actix_web::main]
/// # async fn main() {
/// let verifier = verifier_fn(|token: BearerToken| async move {
///     match token.as_str() {
///         "s3cr3t" => Ok(7_u64),
///         _ => Err(Rejection::InvalidToken(InvalidReason::Unknown)),
///     }
/// });
/// let app = test::init_service(
///     App::new()
///         // Another middleware's `u64`, such as a request id.
///         .wrap_fn(|req, srv| {
///             req.extensions_mut().insert(424_242_u64);
///             srv.call(req)
///         })
///         .service(
///             web::resource("/me")
///                 .wrap(BearerAuthMiddleware::new(verifier).optional())
///                 .to(me),
///         ),
/// )
/// .await;
///
/// let req = test::TestRequest::get().uri("/me").insert_header(("Authorization", "Bearer s3cr3t"));
/// assert_eq!(test::call_and_read_body(&app, req.to_request()).await, "user 7");
///
/// let req = test::TestRequest::get().uri("/me").to_request();
/// assert_eq!(test::call_and_read_body(&app, req).await, "anonymous");
/// # }
/// ```
pub trait PrincipalExt: sealed::Sealed {
    /// A clone of the principal of type `P` that the middleware accepted; `None` if the
    /// request came without credentials on an
    /// [optional](crate::BearerAuthMiddleware::optional) route, or if no middleware with
    /// principal type `P` ran before this point.
    fn principal<P: Principal>(&self) -> Option<P>;
}

impl PrincipalExt for HttpRequest {
    fn principal<P: Principal>(&self) -> Option<P> {
        principal_in(self)
    }
}

impl PrincipalExt for ServiceRequest {
    fn principal<P: Principal>(&self) -> Option<P> {
        principal_in(self)
    }
}

fn principal_in<P: Principal>(message: &impl HttpMessage) -> Option<P> {
    match message.extensions().get::<Outcome<P>>()? {
        Outcome::Accepted(principal) => Some(principal.clone()),
        Outcome::Anonymous(_) => None,
    }
}

mod sealed {
    /// Only this crate implements [`PrincipalExt`](super::PrincipalExt).
    #[allow(unreachable_pub)] // Named in a public bound, reachable by no path.
    pub trait Sealed {}

    impl Sealed for actix_web::HttpRequest {}
    impl Sealed for actix_web::dev::ServiceRequest {}
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actix_web::test::TestRequest;
    use bearer_auth::Challenge;

    use super::*;

    #[test]
    fn only_the_middlewares_own_outcome_is_a_principal() {
        let error_log = ErrorLogThrottle::new(Duration::ZERO);
        let mut req = TestRequest::default().to_srv_request();
        req.extensions_mut().insert(424_242_u64);
        assert_eq!(req.principal::<u64>(), None);
        admit(
            &mut req,
            Outcome::<u64>::Anonymous(Unauthenticated::new(Challenge::new())),
            &error_log,
        );
        assert_eq!(req.principal::<u64>(), None);
        admit(&mut req, Outcome::Accepted(7_u64), &error_log);
        assert_eq!(req.principal::<u64>(), Some(7));
        assert_eq!(req.request().principal::<u64>(), Some(7));
        assert_eq!(req.extensions().get::<u64>(), Some(&424_242));
        assert_eq!(req.principal::<u32>(), None);
    }
}

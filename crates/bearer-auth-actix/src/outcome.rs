//! What [`BearerAuthService`](crate::BearerAuthService) leaves in the request extensions,
//! and [`PrincipalExt`], to read it.

use actix_web::{
    HttpMessage, HttpRequest,
    dev::ServiceRequest,
    http::header::{AUTHORIZATION, HeaderMap},
};
use bearer_auth::{Principal, Unauthenticated};

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
/// `Authorization` values marked sensitive.
pub(crate) fn admit<P: Principal>(req: &mut ServiceRequest, outcome: Outcome<P>) {
    mark_sensitive(req.headers_mut());
    req.extensions_mut().insert(outcome);
}

/// Marks every `Authorization` value sensitive (`http` 0.2's `HeaderValue::set_sensitive`,
/// which actix-web's header map holds), so that the `Debug` of the headers or of the
/// request (a handler's `{:?}`, a middleware inside this one) shows `Sensitive` instead of
/// the key.
///
/// `headers_mut` needs the request not to be shared, as actix-web's own routing does
/// before this middleware runs. One lookup and no allocation for the usual single value;
/// several values, rare, are taken out and put back in order (actix-web's map has no
/// mutable access to all of a name's values).
fn mark_sensitive(headers: &mut HeaderMap) {
    if headers.get_all(AUTHORIZATION).nth(1).is_some() {
        for mut value in headers.remove(AUTHORIZATION) {
            value.set_sensitive(true);
            headers.append(AUTHORIZATION, value);
        }
    } else if let Some(value) = headers.get_mut(AUTHORIZATION) {
        value.set_sensitive(true);
    }
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
    use actix_web::{
        http::header::{ACCEPT, HeaderValue},
        test::TestRequest,
    };
    use bearer_auth::Challenge;

    use super::*;

    #[test]
    fn every_authorization_value_is_marked_sensitive_and_nothing_else() {
        for count in 0..=5 {
            let mut req = TestRequest::default()
                .insert_header((ACCEPT, "application/json"))
                .to_srv_request();
            for i in 0..count {
                let value = HeaderValue::try_from(format!("Bearer key-{i}")).unwrap();
                req.headers_mut().append(AUTHORIZATION, value);
            }
            admit(&mut req, Outcome::Accepted(7_u64));
            let headers = req.headers();
            let values: Vec<_> = headers.get_all(AUTHORIZATION).collect();
            assert_eq!(values.len(), count);
            assert!(values.iter().all(|value| value.is_sensitive()), "{count}");
            assert!(!headers.get(ACCEPT).unwrap().is_sensitive());
            let shown = format!("{headers:?}\n{req:?}");
            assert!(!shown.contains("key-"), "{shown}");
            // The values themselves are unchanged, in order.
            for (i, value) in values.iter().enumerate() {
                assert_eq!(value.as_bytes(), format!("Bearer key-{i}").as_bytes());
            }
        }
    }

    #[test]
    fn only_the_middlewares_own_outcome_is_a_principal() {
        let mut req = TestRequest::default().to_srv_request();
        req.extensions_mut().insert(424_242_u64);
        assert_eq!(req.principal::<u64>(), None);
        admit(
            &mut req,
            Outcome::<u64>::Anonymous(Unauthenticated::new(Challenge::new())),
        );
        assert_eq!(req.principal::<u64>(), None);
        admit(&mut req, Outcome::Accepted(7_u64));
        assert_eq!(req.principal::<u64>(), Some(7));
        assert_eq!(req.request().principal::<u64>(), Some(7));
        assert_eq!(req.extensions().get::<u64>(), Some(&424_242));
        assert_eq!(req.principal::<u32>(), None);
    }
}

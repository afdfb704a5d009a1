//! Handing the principal to handlers: [`Authenticated`], [`MaybeAuthenticated`] and their
//! rejection.

use std::{
    fmt,
    future::{Ready, ready},
    ops::{Deref, DerefMut},
};

use actix_web::{
    FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, dev::Payload,
    http::StatusCode,
};
use bearer_auth::{Principal, Unauthenticated};
use bytes::Bytes;

use crate::{outcome::Outcome, response::to_actix};

/// The principal that [`BearerAuthMiddleware`](crate::BearerAuthMiddleware) accepted for this request.
///
/// `P` is the verifier's `Principal` type (for a [`MemoryStore<O>`](bearer_auth::MemoryStore),
/// [`AccessToken<O>`](bearer_auth::AccessToken)). It derefs to `P`. The middleware stores
/// the principal under a type private to this crate: a value of type `P` that another
/// middleware inserted into the request extensions is never taken for it.
///
/// Extraction fails with an [`AuthenticatedRejection`]:
///
/// - on an [optional](crate::BearerAuthMiddleware::optional) route, for a request sent without
///   credentials: the documented 401 (`{"message":"Unauthenticated."}` with the route's
///   `WWW-Authenticate` challenge);
/// - on a route that no `BearerAuthMiddleware` with principal type `P` covers: a 500, logged at
///   `error` level, because that is a programming error, not the client's.
///
/// ```
/// use actix_web::{App, HttpResponse, test, web};
/// use bearer_auth::{AccessToken, MemoryStore, NewToken};
/// use bearer_auth_actix::{Authenticated, BearerAuthMiddleware};
///
/// async fn me(user: Authenticated<AccessToken<String>>) -> HttpResponse {
///     HttpResponse::Ok().body(format!("{} (key {})", user.owner(), user.id()))
/// }
///
/// # #[actix_web::main]
/// # async fn main() {
/// let store = MemoryStore::new();
/// let key = store.create(NewToken::new("alice".to_owned(), "docs")).unwrap();
/// let app = test::init_service(
///     App::new()
///         .service(web::resource("/me").wrap(BearerAuthMiddleware::new(store)).to(me))
///         // A mistake: no middleware on this route.
///         .route("/oops", web::get().to(me)),
/// )
/// .await;
///
/// let bearer = format!("Bearer {}", key.plain_text_token().as_str());
/// let req = test::TestRequest::get().uri("/me").insert_header(("Authorization", bearer));
/// let body = test::call_and_read_body(&app, req.to_request()).await;
/// assert_eq!(body, format!("alice (key {})", key.id()));
///
/// let res = test::call_service(&app, test::TestRequest::get().uri("/oops").to_request()).await;
/// assert_eq!(res.status(), 500);
/// # }
/// ```
///
/// # `Option<Authenticated<P>>`
///
/// actix-web extracts `Option<T>` for any extractor `T` by turning every error into
/// `None` (it logs the error at `debug` level only, through the `log` crate). So
/// `Option<Authenticated<P>>` gives `Some` with a principal and `None` for an anonymous
/// request on an optional route, as expected, but also `None` on a route no middleware
/// covers: the misconfiguration cannot answer 500 through it. It is still logged at
/// `error` level (target `bearer_auth`) when it happens, by the extraction of
/// `Authenticated<P>` that `Option` runs. To get the 500, use [`MaybeAuthenticated`].
#[derive(Debug, Clone)]
pub struct Authenticated<P>(pub P);

impl<P> Authenticated<P> {
    /// The principal.
    pub fn into_inner(self) -> P {
        self.0
    }
}

impl<P> Deref for Authenticated<P> {
    type Target = P;

    fn deref(&self) -> &P {
        &self.0
    }
}

impl<P> DerefMut for Authenticated<P> {
    fn deref_mut(&mut self) -> &mut P {
        &mut self.0
    }
}

impl<P: Principal> FromRequest for Authenticated<P> {
    type Error = AuthenticatedRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match lookup::<P>(req) {
            Found::Principal(principal) => Ok(Self(principal)),
            Found::Anonymous(marker) => Err(AuthenticatedRejection::unauthenticated(&marker)),
            Found::Nothing => Err(AuthenticatedRejection::missing_middleware::<P>()),
        })
    }
}

/// The principal on an [optional](crate::BearerAuthMiddleware::optional) route: `Some` when the
/// request was authenticated, `None` when it came without credentials.
///
/// Unlike `Option<Authenticated<P>>` (see [`Authenticated`]), it answers 500 (and logs
/// at `error` level) on a route that no `BearerAuthMiddleware` with principal type `P` covers.
///
/// ```
/// use actix_web::{App, HttpResponse, test, web};
/// use bearer_auth::{AccessToken, MemoryStore};
/// use bearer_auth_actix::{BearerAuthMiddleware, MaybeAuthenticated};
///
/// async fn catalogue(user: MaybeAuthenticated<AccessToken<String>>) -> HttpResponse {
///     match user.0 {
///         Some(user) => HttpResponse::Ok().body(format!("prices for {}", user.owner())),
///         None => HttpResponse::Ok().body("public prices"),
///     }
/// }
///
/// # #[actix_web::main]
/// # async fn main() {
/// let auth = BearerAuthMiddleware::new(MemoryStore::<String>::new()).optional();
/// let app = test::init_service(
///     App::new()
///         .service(web::resource("/catalogue").wrap(auth).to(catalogue))
///         .route("/oops", web::get().to(catalogue)),
/// )
/// .await;
///
/// let req = test::TestRequest::get().uri("/catalogue").to_request();
/// assert_eq!(test::call_and_read_body(&app, req).await, "public prices");
///
/// let req = test::TestRequest::get().uri("/oops").to_request();
/// assert_eq!(test::call_service(&app, req).await.status(), 500);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MaybeAuthenticated<P>(pub Option<P>);

impl<P> MaybeAuthenticated<P> {
    /// The principal, if the request was authenticated.
    pub fn into_inner(self) -> Option<P> {
        self.0
    }
}

impl<P> Deref for MaybeAuthenticated<P> {
    type Target = Option<P>;

    fn deref(&self) -> &Option<P> {
        &self.0
    }
}

impl<P> DerefMut for MaybeAuthenticated<P> {
    fn deref_mut(&mut self) -> &mut Option<P> {
        &mut self.0
    }
}

impl<P: Principal> FromRequest for MaybeAuthenticated<P> {
    type Error = AuthenticatedRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match lookup::<P>(req) {
            Found::Principal(principal) => Ok(Self(Some(principal))),
            Found::Anonymous(_) => Ok(Self(None)),
            Found::Nothing => Err(AuthenticatedRejection::missing_middleware::<P>()),
        })
    }
}

enum Found<P> {
    Principal(P),
    Anonymous(Unauthenticated),
    Nothing,
}

/// What the middleware left in the request extensions: only its own private [`Outcome`]
/// counts, never a `P` that another middleware stored.
fn lookup<P: Principal>(req: &HttpRequest) -> Found<P> {
    match req.extensions().get::<Outcome<P>>() {
        Some(Outcome::Accepted(principal)) => Found::Principal(principal.clone()),
        Some(Outcome::Anonymous(marker)) => Found::Anonymous(marker.clone()),
        None => Found::Nothing,
    }
}

/// Why [`Authenticated`] or [`MaybeAuthenticated`] could not be extracted. As an actix-web
/// [`ResponseError`], it answers with the core crate's rendering, byte for byte.
#[non_exhaustive]
#[derive(Debug)]
pub enum AuthenticatedRejection {
    /// An [optional](crate::BearerAuthMiddleware::optional) route let the request through without
    /// credentials, and the handler requires a principal. 401
    /// `{"message":"Unauthenticated."}` with the route's `WWW-Authenticate` challenge.
    /// Logged (one `debug` event, reason `missing`) when the response is rendered.
    Unauthenticated(Unauthenticated),
    /// No `BearerAuthMiddleware` with this principal type covers the route: a programming error.
    /// 500 with a plain-text explanation, logged at `error` level when it is detected.
    MissingMiddleware(MissingMiddleware),
}

/// The details of [`AuthenticatedRejection::MissingMiddleware`].
pub struct MissingMiddleware {
    principal: &'static str,
    response: http::Response<Bytes>,
}

impl MissingMiddleware {
    /// The principal type the extractor looked for.
    pub fn principal_type(&self) -> &'static str {
        self.principal
    }
}

impl fmt::Debug for MissingMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MissingMiddleware")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl AuthenticatedRejection {
    fn unauthenticated(marker: &Unauthenticated) -> Self {
        Self::Unauthenticated(marker.clone())
    }

    /// Logs the misconfiguration at `error` (in the core) and keeps the rendered 500.
    fn missing_middleware<P>() -> Self {
        let principal = std::any::type_name::<P>();
        Self::MissingMiddleware(MissingMiddleware {
            principal,
            response: bearer_auth::missing_layer_response(principal),
        })
    }

    /// The response status: 401 or 500.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::MissingMiddleware(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The exact response body.
    pub fn body(&self) -> &'static [u8] {
        match self {
            Self::Unauthenticated(_) => bearer_auth::UNAUTHENTICATED_BODY,
            Self::MissingMiddleware(_) => bearer_auth::MISSING_LAYER_BODY,
        }
    }
}

impl fmt::Display for AuthenticatedRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unauthenticated(_) => f.write_str("no bearer credentials"),
            Self::MissingMiddleware(missing) => write!(
                f,
                "no bearer-auth middleware with principal type `{}` covers this route",
                missing.principal
            ),
        }
    }
}

impl std::error::Error for AuthenticatedRejection {}

impl ResponseError for AuthenticatedRejection {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Unauthenticated(marker) => to_actix(&marker.response()),
            Self::MissingMiddleware(missing) => to_actix(&missing.response),
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{body::MessageBody, test::TestRequest};
    use bearer_auth::Challenge;

    use super::*;

    fn extract<T: FromRequest>(req: &HttpRequest) -> Result<T, T::Error> {
        futures_util::FutureExt::now_or_never(T::extract(req)).unwrap()
    }

    fn body(res: HttpResponse) -> Vec<u8> {
        res.into_body().try_into_bytes().unwrap().to_vec()
    }

    /// What the middleware leaves for an anonymous request on an optional route.
    fn anonymous(challenge: Challenge) -> Outcome<u64> {
        Outcome::Anonymous(Unauthenticated::new(challenge))
    }

    #[test]
    fn principal_in_extensions_is_extracted() {
        let req = TestRequest::default().to_http_request();
        req.extensions_mut().insert(Outcome::Accepted(7_u64));
        assert_eq!(*extract::<Authenticated<u64>>(&req).unwrap(), 7);
        assert_eq!(extract::<MaybeAuthenticated<u64>>(&req).unwrap().0, Some(7));
        assert_eq!(
            extract::<Option<Authenticated<u64>>>(&req)
                .unwrap()
                .map(|a| a.0),
            Some(7)
        );
    }

    #[test]
    fn the_middlewares_principal_wins_over_another_middlewares_value() {
        let req = TestRequest::default().to_http_request();
        req.extensions_mut().insert(424_242_u64);
        req.extensions_mut().insert(Outcome::Accepted(7_u64));
        assert_eq!(extract::<Authenticated<u64>>(&req).unwrap().into_inner(), 7);
        assert_eq!(extract::<MaybeAuthenticated<u64>>(&req).unwrap().0, Some(7));
    }

    #[test]
    fn another_middlewares_value_is_not_a_principal_for_an_anonymous_request() {
        let req = TestRequest::default().to_http_request();
        req.extensions_mut().insert(424_242_u64);
        req.extensions_mut().insert(anonymous(Challenge::new()));
        assert!(matches!(
            extract::<Authenticated<u64>>(&req),
            Err(AuthenticatedRejection::Unauthenticated(_))
        ));
        assert_eq!(extract::<MaybeAuthenticated<u64>>(&req).unwrap().0, None);
        assert!(
            extract::<Option<Authenticated<u64>>>(&req)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn marker_gives_the_documented_401_with_the_route_challenge() {
        let req = TestRequest::default().to_http_request();
        req.extensions_mut()
            .insert(anonymous(Challenge::with_realm("api").unwrap()));
        let rejection = extract::<Authenticated<u64>>(&req).unwrap_err();
        assert!(matches!(
            rejection,
            AuthenticatedRejection::Unauthenticated(_)
        ));
        assert_eq!(rejection.to_string(), "no bearer credentials");
        assert_eq!(rejection.status_code(), 401);
        let res = rejection.error_response();
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.headers().get("content-type").unwrap(),
            "application/json"
        );
        assert_eq!(
            res.headers().get("www-authenticate").unwrap(),
            r#"Bearer realm="api""#
        );
        assert_eq!(res.headers().len(), 2);
        assert_eq!(body(res), br#"{"message":"Unauthenticated."}"#);
        assert_eq!(rejection.body(), br#"{"message":"Unauthenticated."}"#);
    }

    #[test]
    fn marker_is_none_for_the_optional_extractors() {
        let req = TestRequest::default().to_http_request();
        req.extensions_mut().insert(anonymous(Challenge::new()));
        assert_eq!(extract::<MaybeAuthenticated<u64>>(&req).unwrap().0, None);
        assert!(
            extract::<Option<Authenticated<u64>>>(&req)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn nothing_in_extensions_is_a_500_naming_the_type() {
        let req = TestRequest::default().to_http_request();
        // Another middleware's `u64` is not the middleware's doing.
        req.extensions_mut().insert(424_242_u64);
        for rejection in [
            extract::<Authenticated<u64>>(&req).unwrap_err(),
            extract::<MaybeAuthenticated<u64>>(&req).unwrap_err(),
        ] {
            let AuthenticatedRejection::MissingMiddleware(missing) = &rejection else {
                panic!("{rejection:?}");
            };
            assert_eq!(missing.principal_type(), "u64");
            assert_eq!(
                rejection.to_string(),
                "no bearer-auth middleware with principal type `u64` covers this route"
            );
            let res = rejection.error_response();
            assert_eq!(res.status(), 500);
            assert_eq!(
                res.headers().get("content-type").unwrap(),
                "text/plain; charset=utf-8"
            );
            assert_eq!(res.headers().len(), 1);
            assert_eq!(body(res), bearer_auth::MISSING_LAYER_BODY);
        }
    }

    #[test]
    fn a_principal_of_another_type_is_not_taken() {
        let req = TestRequest::default().to_http_request();
        req.extensions_mut()
            .insert(Outcome::Accepted("alice".to_owned()));
        assert!(matches!(
            extract::<Authenticated<u64>>(&req),
            Err(AuthenticatedRejection::MissingMiddleware(_))
        ));
    }
}

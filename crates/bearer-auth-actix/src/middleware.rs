//! The middleware: [`BearerAuthMiddleware`] (the `Transform`) and [`BearerAuthService`] (the
//! service it builds).

use std::{fmt, future::Ready, rc::Rc, sync::Arc};

use crate::{
    ResponseFuture,
    outcome::{Outcome, admit},
    response::to_actix,
};
use actix_web::{
    Error,
    body::{EitherBody, MessageBody},
    dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready},
    http::header::AUTHORIZATION,
};
use bearer_auth::{
    Authenticator, Challenge, InvalidRealm, Policy, Rejection, TokenVerifier, Unauthenticated,
};

/// Bearer-token authentication for actix-web: a [`Transform`] for [`App::wrap`],
/// [`Scope::wrap`] and [`Resource::wrap`], built from any [`TokenVerifier`].
///
/// For every request it reads `Authorization: Bearer <token>`, has the verifier check the
/// token, and applies the route's [`Policy`]:
///
/// - **accepted**: the principal (`V::Principal`) goes into the request extensions, where
///   the [`Authenticated`](crate::Authenticated) extractor and
///   [`PrincipalExt::principal`](crate::PrincipalExt::principal) find it, and the wrapped
///   service is called;
/// - **refused**: the documented response is sent (401, 403 or 503, see the table in the
///   [crate docs](crate)) and the wrapped service is **not** called;
/// - **no credentials on an [optional](Self::optional) route**: the wrapped service is
///   called without a principal (with a [`bearer_auth::Unauthenticated`] marker instead).
///
/// The principal and the marker are stored under a type private to this crate, not under
/// `V::Principal`: `req.extensions().get::<P>()` and `web::ReqData<P>` do not find them,
/// and a value of the principal's type that another middleware stored (a request id, a
/// session's user) is never taken for an authenticated principal.
///
/// A request let through has its `Authorization` values marked sensitive, so that the
/// `Debug` of its headers shows `Sensitive` instead of the key to the handler and the
/// middlewares inside this one; middlewares outside see them before they are marked (see
/// [the crate docs](crate#the-authorization-header-in-logs)).
///
/// Every decision and every byte of a refusal come from the core crate's
/// [`Authenticator`], which also logs one event per refusal with its reason (never the
/// token).
///
/// ```
/// use actix_web::{App, HttpResponse, test, web};
/// use bearer_auth::{AccessToken, MemoryStore, NewToken};
/// use bearer_auth_actix::{Authenticated, BearerAuthMiddleware};
///
/// async fn me(user: Authenticated<AccessToken<String>>) -> HttpResponse {
///     HttpResponse::Ok().body(user.owner().clone())
/// }
///
/// # #[actix_web::main]
/// # async fn main() {
/// let store = MemoryStore::new();
/// let key = store.create(NewToken::new("alice".to_owned(), "docs")).unwrap();
///
/// let app = test::init_service(
///     App::new().service(
///         web::resource("/me")
///             .wrap(BearerAuthMiddleware::new(store.clone()))
///             .route(web::get().to(me)),
///     ),
/// )
/// .await;
///
/// let bearer = format!("Bearer {}", key.plain_text_token().as_str());
/// let req = test::TestRequest::get().uri("/me").insert_header(("Authorization", bearer));
/// let res = test::call_service(&app, req.to_request()).await;
/// assert_eq!(res.status(), 200);
/// assert_eq!(test::read_body(res).await, "alice");
///
/// let res = test::call_service(&app, test::TestRequest::get().uri("/me").to_request()).await;
/// assert_eq!(res.status(), 401);
/// assert_eq!(res.headers().get("www-authenticate").unwrap(), "Bearer");
/// assert_eq!(test::read_body(res).await, r#"{"message":"Unauthenticated."}"#);
/// # }
/// ```
///
/// # Per-route options
///
/// One `BearerAuthMiddleware` carries one policy. Give routes with other needs their own, on a
/// [`Scope`] or a [`Resource`]; they can share one verifier, since a `BearerAuthMiddleware` is
/// cheap to clone and the builders below keep the verifier:
///
/// ```
/// use actix_web::{App, HttpResponse, web};
/// use bearer_auth::MemoryStore;
/// use bearer_auth_actix::BearerAuthMiddleware;
///
/// let auth = BearerAuthMiddleware::new(MemoryStore::<String>::new());
/// let app = App::new()
///     // Anonymous requests pass; a presented key must be valid.
///     .service(
///         web::resource("/catalogue")
///             .wrap(auth.clone().optional())
///             .to(HttpResponse::Ok),
///     )
///     // Needs both abilities (403 `Invalid ability provided.` otherwise).
///     .service(
///         web::scope("/servers")
///             .wrap(auth.clone().require_all(["servers:read", "servers:write"]))
///             .route("", web::post().to(HttpResponse::Created)),
///     )
///     // The one route a key with a pending second factor may reach.
///     .service(
///         web::resource("/2fa/challenge")
///             .wrap(auth.clone().accept_pending_second_factor())
///             .route(web::post().to(HttpResponse::Ok)),
///     );
/// # let _ = app;
/// ```
///
/// Middlewares nest: a request passes every `BearerAuthMiddleware` on its way, outermost first. Do
/// not put the two-factor challenge route under an [`App::wrap`] or [`Scope::wrap`] that
/// refuses a pending second factor, or the outer one answers 403 before the inner one runs.
///
/// # Requests shared by an outer middleware
///
/// Marking the `Authorization` header sensitive changes the request, which actix-web
/// allows only while no other `HttpRequest` clone of it is alive. A middleware outside this
/// one on the same [`Resource`] (where actix-web itself does not need the request unshared)
/// that keeps `req.request().clone()` while it calls the service breaks that rule.
/// actix-web has no way to tell beforehand, and its `headers_mut` panics. This middleware
/// catches that panic (it happens before anything is changed) and lets the request through
/// with its verdict, its header left unmarked, and logs it at `error`, once per
/// [error-log interval](bearer_auth::Authenticator::error_log_interval). The process's
/// panic hook still reports each such panic (on stderr, by default).
///
/// So do not keep a clone of the request across the call to the inner service in a
/// middleware outside this one: take what you need from it before (the method, the path)
/// or use the `ServiceResponse`'s request afterwards. **Under `panic = "abort"`** nothing
/// can be caught: such an app must not hold request clones across the call at all, or the
/// first request with an `Authorization` header that this middleware lets through aborts
/// the process.
///
/// [`App::wrap`]: actix_web::App::wrap
/// [`Scope::wrap`]: actix_web::Scope::wrap
/// [`Resource::wrap`]: actix_web::Resource::wrap
/// [`Scope`]: actix_web::Scope
/// [`Resource`]: actix_web::Resource
pub struct BearerAuthMiddleware<V> {
    auth: Arc<Authenticator<Arc<V>>>,
}

impl<V> Clone for BearerAuthMiddleware<V> {
    fn clone(&self) -> Self {
        Self {
            auth: Arc::clone(&self.auth),
        }
    }
}

impl<V> fmt::Debug for BearerAuthMiddleware<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuthMiddleware")
            .field("verifier", &std::any::type_name::<V>())
            .field("policy", self.auth.policy())
            .field("challenge", self.auth.challenge())
            .finish()
    }
}

impl<V: TokenVerifier + 'static> BearerAuthMiddleware<V> {
    /// Requires a valid token checked by `verifier`: the default [`Policy`] (no ability
    /// required, a pending second factor refused with 403) and [`Challenge`] (no realm).
    pub fn new(verifier: V) -> Self {
        Self::from_authenticator(Authenticator::new(Arc::new(verifier)))
    }

    /// Uses a prepared [`Authenticator`] (verifier, policy and challenge).
    pub fn from_authenticator(authenticator: Authenticator<Arc<V>>) -> Self {
        Self {
            auth: Arc::new(authenticator),
        }
    }

    /// Lets requests without an `Authorization` header (or with another scheme) through
    /// without a principal.
    ///
    /// **Anonymous requests pass without ability checks**: [`require_all`](Self::require_all),
    /// [`require_any`](Self::require_any) and the second-factor rule are conditions on a
    /// token, and such a request presents none. **A presented token is checked fully**,
    /// as on a required route: 401 if it is refused, 403 if its second factor is pending
    /// or it lacks a required ability, 503 if the backend failed. See
    /// [`Policy::optional`].
    pub fn optional(self) -> Self {
        self.map(|auth| auth.map_policy(Policy::optional))
    }

    /// Requires every one of `abilities` (403 `{"message":"Invalid ability provided."}`
    /// otherwise). Adds to the requirements set before: the token must meet every
    /// [`require_all`](Self::require_all) and [`require_any`](Self::require_any) of the
    /// middleware. `require_all([])` adds nothing. See [`Policy::require_all`].
    pub fn require_all<I, S>(self, abilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        self.map(|auth| auth.map_policy(|policy| policy.require_all(abilities)))
    }

    /// Requires at least one of `abilities` (403 `{"message":"Invalid ability provided."}`
    /// otherwise). Adds to the requirements set before: each call is one group of which
    /// the token must hold an ability. See [`Policy::require_any`].
    ///
    /// # Panics
    ///
    /// When `abilities` is empty, since the route would refuse every token with 403.
    #[track_caller]
    pub fn require_any<I, S>(self, abilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        // Not through a closure, which would hide the caller's location from the panic
        // message.
        let policy = self.auth.policy().clone().require_any(abilities);
        self.policy(policy)
    }

    /// Accepts tokens of at most `max_len` bytes instead of
    /// [`DEFAULT_MAX_TOKEN_LEN`](bearer_auth::DEFAULT_MAX_TOKEN_LEN) (1 KiB). A longer
    /// token gets the 401 of an invalid one (`WWW-Authenticate: Bearer
    /// error="invalid_token"`) before it is copied, hashed or shown to the verifier. See
    /// [`Authenticator::with_max_token_len`].
    ///
    /// # Panics
    ///
    /// When `max_len` is 0.
    #[track_caller]
    pub fn max_token_len(self, max_len: usize) -> Self {
        Self::from_authenticator(Arc::unwrap_or_clone(self.auth).with_max_token_len(max_len))
    }

    /// Accepts a token whose second factor is still pending. For the route that completes
    /// the two-factor challenge, and for it only. See
    /// [`Policy::accept_pending_second_factor`].
    pub fn accept_pending_second_factor(self) -> Self {
        self.map(|auth| auth.map_policy(Policy::accept_pending_second_factor))
    }

    /// Replaces the whole policy.
    pub fn policy(self, policy: Policy) -> Self {
        self.map(|auth| auth.with_policy(policy))
    }

    /// Replaces the `WWW-Authenticate` challenge sent with a 401.
    pub fn challenge(self, challenge: Challenge) -> Self {
        self.map(|auth| auth.with_challenge(challenge))
    }

    /// Sends `realm="…"` in the `WWW-Authenticate` challenge of a 401. See
    /// [`Challenge::with_realm`] for the characters a realm may hold.
    ///
    /// ```
    /// use bearer_auth::MemoryStore;
    /// use bearer_auth_actix::BearerAuthMiddleware;
    ///
    /// let auth = BearerAuthMiddleware::new(MemoryStore::<String>::new()).with_realm("api").unwrap();
    /// assert_eq!(
    ///     auth.authenticator().challenge().missing_credentials(),
    ///     r#"Bearer realm="api""#
    /// );
    /// assert!(BearerAuthMiddleware::new(MemoryStore::<String>::new()).with_realm("\n").is_err());
    /// ```
    pub fn with_realm(self, realm: &str) -> Result<Self, InvalidRealm> {
        Ok(self.challenge(Challenge::with_realm(realm)?))
    }

    /// The verifier, policy and challenge this middleware applies.
    pub fn authenticator(&self) -> &Authenticator<Arc<V>> {
        &self.auth
    }

    /// A builder step: the authenticator is taken out of its `Arc` when this value holds
    /// the only reference, else copied (cheap: the verifier itself is shared).
    fn map(self, f: impl FnOnce(Authenticator<Arc<V>>) -> Authenticator<Arc<V>>) -> Self {
        Self::from_authenticator(f(Arc::unwrap_or_clone(self.auth)))
    }
}

impl<S, B, V> Transform<S, ServiceRequest> for BearerAuthMiddleware<V>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    V: TokenVerifier + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = BearerAuthService<S, V>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(BearerAuthService {
            service: Rc::new(service),
            auth: Arc::clone(&self.auth),
        }))
    }
}

/// The service [`BearerAuthMiddleware`] wraps around an actix-web service. Built by actix-web
/// through [`Transform`]; you do not create it yourself.
///
/// Its response body is an [`EitherBody`]: the wrapped service's body on the left, the
/// rejection's on the right. Its future is a [`ResponseFuture`], which allocates only
/// when the verifier must be awaited.
pub struct BearerAuthService<S, V> {
    service: Rc<S>,
    auth: Arc<Authenticator<Arc<V>>>,
}

impl<S, V> BearerAuthService<S, V> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.service
    }

    /// The verifier, policy and challenge this middleware applies.
    pub fn authenticator(&self) -> &Authenticator<Arc<V>> {
        &self.auth
    }
}

impl<S, V> fmt::Debug for BearerAuthService<S, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuthService")
            .field("service", &std::any::type_name::<S>())
            .field("verifier", &std::any::type_name::<V>())
            .field("policy", self.auth.policy())
            .field("challenge", self.auth.challenge())
            .finish()
    }
}

impl<S, B, V> Service<ServiceRequest> for BearerAuthService<S, V>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    V: TokenVerifier + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = ResponseFuture<S::Future, B>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let authorization = req.headers().get_all(AUTHORIZATION).map(|v| v.as_bytes());
        let token = match self.auth.read_token(authorization) {
            Ok(token) => token,
            // No credentials, malformed ones or several headers: answered at once.
            Err(rejection) => return ResponseFuture::refused(refuse(req, &self.auth, &rejection)),
        };
        let Some(token) = token else {
            // An optional route without credentials: no principal, a marker instead.
            let marker = Unauthenticated::new(self.auth.challenge().clone());
            admit(
                &mut req,
                Outcome::<V::Principal>::Anonymous(marker),
                self.auth.error_log_throttle(),
            );
            return ResponseFuture::called(self.service.call(req));
        };
        // A verifier with the answer at hand (an in-memory store, a cache hit): decided
        // here, with no future to allocate.
        if let Some(outcome) = self.auth.verify_now(token) {
            return match outcome {
                Ok(principal) => {
                    admit(
                        &mut req,
                        Outcome::Accepted(principal),
                        self.auth.error_log_throttle(),
                    );
                    ResponseFuture::called(self.service.call(req))
                }
                Err(rejection) => ResponseFuture::refused(refuse(req, &self.auth, &rejection)),
            };
        }
        // The verifier must be awaited: the future owns a copy of the token (zeroed
        // when dropped), the only one made.
        let token = token.into_owned();
        let service = Rc::clone(&self.service);
        let auth = Arc::clone(&self.auth);
        ResponseFuture::verifying(Box::pin(async move {
            let verified = auth.verify(&token).await;
            // The token is zeroed when dropped; it is not needed past this point.
            drop(token);
            match verified {
                Ok(principal) => {
                    admit(
                        &mut req,
                        Outcome::Accepted(principal),
                        auth.error_log_throttle(),
                    );
                    service
                        .call(req)
                        .await
                        .map(ServiceResponse::map_into_left_body)
                }
                Err(rejection) => Ok(refuse(req, &auth, &rejection)),
            }
        }))
    }
}

/// The core's rendering of `rejection`, as this request's response.
fn refuse<B, V>(
    req: ServiceRequest,
    auth: &Authenticator<Arc<V>>,
    rejection: &Rejection,
) -> ServiceResponse<EitherBody<B>> {
    req.into_response(to_actix(&auth.respond(rejection)))
        .map_into_right_body()
}

#[cfg(test)]
mod tests {
    use bearer_auth::{MemoryStore, NewToken};

    use super::*;

    fn store() -> MemoryStore<String> {
        MemoryStore::new()
    }

    #[test]
    fn builders_set_the_policy_and_keep_the_verifier() {
        let store = store();
        store
            .create(NewToken::new("alice".to_owned(), "t"))
            .unwrap();
        let base = BearerAuthMiddleware::new(store);
        let optional = base.clone().optional();
        assert!(optional.authenticator().policy().is_optional());
        assert!(!base.authenticator().policy().is_optional());
        // Both share the one verifier.
        assert!(Arc::ptr_eq(
            base.authenticator().verifier(),
            optional.authenticator().verifier()
        ));
        let policy = base.clone().policy(Policy::new().optional());
        assert!(policy.authenticator().policy().is_optional());
    }

    #[test]
    fn requirements_add_up() {
        use bearer_auth::{Abilities, Principal};

        #[derive(Clone)]
        struct Holder(Abilities);
        impl Principal for Holder {
            fn has_ability(&self, ability: &str) -> bool {
                self.0.can(ability)
            }
        }
        let holding = |held: &[&str]| Holder(Abilities::new(held.iter().copied()));

        let auth = BearerAuthMiddleware::new(store())
            .require_all(["a"])
            .require_all(["b"])
            .require_any(["c", "d"])
            .require_any(["e"]);
        let policy = auth.authenticator().policy();
        assert!(policy.check(&holding(&["a", "b", "d", "e"])).is_ok());
        for held in [
            &["b", "d", "e"][..],
            &["a", "d", "e"],
            &["a", "b", "e"],
            &["a", "b", "c"],
        ] {
            assert!(matches!(
                policy.check(&holding(held)),
                Err(Rejection::MissingAbility)
            ));
        }
        let none: [&str; 0] = [];
        let auth = BearerAuthMiddleware::new(store()).require_all(none);
        assert!(auth.authenticator().policy().check(&holding(&[])).is_ok());
    }

    #[test]
    #[should_panic(expected = "`require_any` needs at least one ability")]
    fn require_any_of_nothing_panics_when_built() {
        let none: [&str; 0] = [];
        let _ = BearerAuthMiddleware::new(store()).require_any(none);
    }

    #[test]
    fn max_token_len_reaches_the_authenticator_and_keeps_the_verifier() {
        let base = BearerAuthMiddleware::new(store());
        assert_eq!(
            base.authenticator().max_token_len(),
            bearer_auth::DEFAULT_MAX_TOKEN_LEN
        );
        let short = base.clone().max_token_len(64).optional();
        assert_eq!(short.authenticator().max_token_len(), 64);
        assert!(short.authenticator().policy().is_optional());
        assert!(Arc::ptr_eq(
            base.authenticator().verifier(),
            short.authenticator().verifier()
        ));
    }

    #[test]
    #[should_panic(expected = "at least 1 byte")]
    fn max_token_len_of_zero_panics_when_built() {
        let _ = BearerAuthMiddleware::new(store()).max_token_len(0);
    }

    #[test]
    fn realm_reaches_the_challenge() {
        let auth = BearerAuthMiddleware::new(store())
            .with_realm("api")
            .unwrap();
        assert_eq!(
            auth.authenticator().challenge().invalid_token(),
            r#"Bearer realm="api", error="invalid_token""#
        );
        let auth = BearerAuthMiddleware::new(store()).challenge(Challenge::new());
        assert_eq!(
            auth.authenticator().challenge().missing_credentials(),
            "Bearer"
        );
    }

    /// Every answer of a verifier with its answer at hand (the store itself) and of one
    /// that must be awaited (the same store behind a closure): same status, headers and
    /// body, and the principal reaches the handler either way.
    #[actix_web::test]
    async fn the_fast_path_and_the_awaited_path_answer_alike() {
        use actix_web::{App, HttpResponse, test, web};
        use bearer_auth::{AccessToken, BearerToken, verifier_fn};

        use crate::Authenticated;

        async fn me(user: Authenticated<AccessToken<String>>) -> HttpResponse {
            HttpResponse::Ok().body(user.owner().clone())
        }

        let store = store();
        let pending = store
            .create(NewToken::new("bob".to_owned(), "t").second_factor_pending(true))
            .unwrap();
        let key = store
            .create(NewToken::new("alice".to_owned(), "t"))
            .unwrap();
        let awaited = {
            let store = store.clone();
            verifier_fn(move |token: BearerToken| {
                let store = store.clone();
                async move { store.verify(&token).await }
            })
        };
        assert!(
            awaited
                .verify_now(bearer_auth::BearerTokenRef::from_token("x").unwrap())
                .is_none()
        );
        let fast = test::init_service(
            App::new().service(
                web::resource("/me")
                    .wrap(BearerAuthMiddleware::new(store))
                    .to(me),
            ),
        )
        .await;
        let slow = test::init_service(
            App::new().service(
                web::resource("/me")
                    .wrap(BearerAuthMiddleware::new(awaited))
                    .to(me),
            ),
        )
        .await;

        let wrong = format!("{}|nope", key.id());
        for authorization in [
            Some(key.plain_text_token().as_str()),
            Some(pending.plain_text_token().as_str()),
            Some(wrong.as_str()),
            Some("a b"),
            None,
        ] {
            let request = || {
                let mut request = test::TestRequest::get().uri("/me");
                if let Some(token) = authorization {
                    request = request.insert_header(("authorization", format!("Bearer {token}")));
                }
                request.to_request()
            };
            let answers = [
                test::call_service(&fast, request()).await,
                test::call_service(&slow, request()).await,
            ];
            let mut seen = Vec::new();
            for answer in answers {
                let status = answer.status();
                let mut headers: Vec<_> = answer
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                    .collect();
                headers.sort();
                seen.push((status, headers, test::read_body(answer).await));
            }
            assert_eq!(seen[0], seen[1], "{authorization:?}");
        }
        let ok = test::call_service(
            &fast,
            test::TestRequest::get()
                .uri("/me")
                .insert_header((
                    "authorization",
                    format!("Bearer {}", key.plain_text_token().as_str()),
                ))
                .to_request(),
        )
        .await;
        assert_eq!(test::read_body(ok).await, "alice");
    }

    #[test]
    fn invalid_realm_is_an_error() {
        assert!(BearerAuthMiddleware::new(store()).with_realm("é").is_err());
    }

    #[test]
    fn debug_shows_configuration_not_secrets() {
        let store = store();
        let key = store
            .create(NewToken::new("alice".to_owned(), "t"))
            .unwrap();
        let shown = format!("{:?}", BearerAuthMiddleware::new(store).require_any(["x"]));
        assert!(
            shown.starts_with("BearerAuthMiddleware { verifier: "),
            "{shown}"
        );
        assert!(shown.contains("policy: Policy"), "{shown}");
        assert!(!shown.contains(key.plain_text_token().secret()), "{shown}");
    }
}

//! [`BearerAuthService`]: the service that checks a request before its inner service sees it.

use std::{
    fmt, mem,
    sync::Arc,
    task::{Context, Poll},
};

use bearer_auth::{Authenticator, TokenVerifier, Unauthenticated};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, header::AUTHORIZATION};
use tower_service::Service;

use crate::{
    BearerAuthLayer, ResponseFuture,
    outcome::{Outcome, admit},
};

/// Bearer-token authentication in front of a service.
///
/// For each request it reads `Authorization: Bearer <token>`, verifies the token and
/// applies the route's [`Policy`](bearer_auth::Policy), all through the core's
/// [`Authenticator`]. Then:
///
/// - **accepted**: the principal (`V::Principal`) goes into the request extensions and
///   the inner service is called; handlers take it with
///   [`Authenticated<P>`](crate::Authenticated), other code with
///   [`principal`](crate::principal);
/// - **no credentials on an [optional](BearerAuthLayer::optional) route**: an
///   [`Unauthenticated`] marker goes into the extensions instead, and the inner service
///   is called;
///
/// The principal and the marker are stored under a type private to this crate, not
/// under `V::Principal`: `extensions.get::<P>()` and `axum::Extension<P>` do not find
/// them, and a value of the principal's type that another middleware stored (a request
/// id, a session's user) is never taken for an authenticated principal.
///
/// A request let through has its `Authorization` values marked sensitive, so that the
/// `Debug` of its headers shows `Sensitive` instead of the key to the inner service and
/// the layers inside this one; layers outside see them before they are marked (see
/// [the crate docs](crate#the-authorization-header-in-logs)).
/// - **refused**: the inner service is not called; the response is the core's rendering
///   of the [`Rejection`](bearer_auth::Rejection), byte for byte (401, 403 or 503 with a
///   JSON body, `WWW-Authenticate` on 401). A rejection is a response, not an error:
///   `type Error = S::Error`.
///
/// The request body may be of any type. The rejection is built in the inner service's
/// response body type, which only needs `From<Bytes>`: axum's `Body` and
/// `http_body_util::Full<Bytes>` qualify.
///
/// Readiness is forwarded to the inner service. When the verifier has the answer at hand
/// ([`TokenVerifier::verify_now`], as a [`MemoryStore`](bearer_auth::MemoryStore) always
/// does), `call` decides at once and calls the inner service itself. Otherwise
/// verification is asynchronous: `call` moves the inner service that was driven to
/// readiness into the response future and keeps a clone (hence `S: Clone`), as
/// `tower-http`'s asynchronous authorization does. Cloning the service is cheap: the
/// verifier, policy and challenge are shared behind an [`Arc`].
///
/// Refusals are logged by the core, one event per refusal with its reason (target
/// `bearer_auth`), never with the token; this service logs nothing else.
///
/// ```
/// use std::convert::Infallible;
///
/// use bearer_auth::MemoryStore;
/// use bearer_auth_tower::BearerAuthService;
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::Full;
/// use tower::{ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let inner = service_fn(|_request: Request<()>| async {
///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"secret"))))
/// });
/// let service = BearerAuthService::new(inner, MemoryStore::<String>::new());
///
/// let response = service.oneshot(Request::new(())).await.unwrap();
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(response.headers()["www-authenticate"], "Bearer");
/// # }
/// ```
pub struct BearerAuthService<S, V> {
    inner: S,
    auth: Arc<Authenticator<V>>,
}

impl<S, V> BearerAuthService<S, V> {
    /// `inner` behind tokens checked by `verifier`, with the default policy and
    /// challenge. For the options, use [`BearerAuthLayer`].
    pub fn new(inner: S, verifier: V) -> Self {
        Self::from_shared(inner, Arc::new(Authenticator::new(verifier)))
    }

    /// `inner` behind an [`Authenticator`] configured elsewhere, possibly shared with
    /// other services.
    pub fn from_shared(inner: S, auth: Arc<Authenticator<V>>) -> Self {
        Self { inner, auth }
    }

    /// The verifier, policy and challenge this service applies.
    pub fn authenticator(&self) -> &Authenticator<V> {
        &self.auth
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming this one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<V> BearerAuthService<(), V> {
    /// A [`BearerAuthLayer`] checking tokens with `verifier`, to configure with its
    /// builder methods. The same as [`BearerAuthLayer::new`]; defined on
    /// `BearerAuthService<(), V>` so that `BearerAuthService::layer(verifier)` needs no annotation.
    pub fn layer(verifier: V) -> BearerAuthLayer<V> {
        BearerAuthLayer::new(verifier)
    }
}

impl<S: Clone, V> Clone for BearerAuthService<S, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            auth: Arc::clone(&self.auth),
        }
    }
}

impl<S: fmt::Debug, V: fmt::Debug> fmt::Debug for BearerAuthService<S, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuthService")
            .field("inner", &self.inner)
            .field("auth", &self.auth)
            .finish()
    }
}

impl<S, V, ReqBody, ResBody> Service<Request<ReqBody>> for BearerAuthService<S, V>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    V: TokenVerifier + 'static,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, V>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let authorization = request
            .headers()
            .get_all(AUTHORIZATION)
            .iter()
            .map(HeaderValue::as_bytes);
        match self.auth.read_token(authorization) {
            Err(rejection) => ResponseFuture::rejected(self.auth.respond(&rejection)),
            Ok(None) => {
                let marker = Unauthenticated::new(self.auth.challenge().clone());
                admit(&mut request, Outcome::<V::Principal>::Anonymous(marker));
                ResponseFuture::called(self.inner.call(request))
            }
            Ok(Some(token)) => {
                // A verifier with the answer at hand (an in-memory store, a cache hit):
                // decided here, with no future to allocate and no clone of the inner
                // service.
                if let Some(outcome) = self.auth.verify_now(token) {
                    return match outcome {
                        Ok(principal) => {
                            admit(&mut request, Outcome::Accepted(principal));
                            ResponseFuture::called(self.inner.call(request))
                        }
                        Err(rejection) => ResponseFuture::rejected(self.auth.respond(&rejection)),
                    };
                }
                // The verifier must be awaited: the future owns a copy of the token
                // (zeroed when dropped), the only one made.
                let token = token.into_owned();
                // The service that `poll_ready` drove to readiness is the one to call
                // once the token is verified; this one keeps a fresh clone.
                let clone = self.inner.clone();
                let ready = mem::replace(&mut self.inner, clone);
                let auth = Arc::clone(&self.auth);
                let verify = Box::pin(async move { auth.verify(&token).await });
                ResponseFuture::verifying(verify, request, ready, Arc::clone(&self.auth))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        future::{Ready, ready},
        sync::atomic::{AtomicUsize, Ordering},
    };

    use bearer_auth::{
        BearerToken, InvalidReason, MISSING_ABILITY_BODY, Rejection, UNAUTHENTICATED_BODY,
        UNAVAILABLE_BODY, verifier_fn,
    };
    use tower::{Layer, ServiceExt};

    use super::*;

    /// A verifier that accepts `good` as user 7 and answers 503 for `down`.
    fn verifier() -> impl TokenVerifier<Principal = u64> + Clone {
        verifier_fn(|token: BearerToken| async move {
            match token.as_str() {
                "good" => Ok(7_u64),
                "down" => Err(Rejection::unavailable("store down")),
                _ => Err(Rejection::InvalidToken(InvalidReason::Unknown)),
            }
        })
    }

    /// Answers with the principal it found in the extensions, and counts its calls. Each
    /// clone must be driven to readiness before it is called, as a buffer's would.
    #[derive(Clone)]
    struct Probe {
        calls: Arc<AtomicUsize>,
        ready: bool,
    }

    impl Probe {
        fn new() -> (Self, Arc<AtomicUsize>) {
            let calls = Arc::new(AtomicUsize::new(0));
            let probe = Self {
                calls: Arc::clone(&calls),
                ready: false,
            };
            (probe, calls)
        }
    }

    impl Service<Request<()>> for Probe {
        type Response = Response<Bytes>;
        type Error = &'static str;
        type Future = Ready<Result<Response<Bytes>, &'static str>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.ready = true;
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<()>) -> Self::Future {
            if !std::mem::take(&mut self.ready) {
                return ready(Err("called before poll_ready"));
            }
            self.calls.fetch_add(1, Ordering::SeqCst);
            let seen = match request.extensions().get::<Outcome<u64>>() {
                Some(Outcome::Accepted(id)) => format!("user {id}"),
                Some(Outcome::Anonymous(_)) => "anonymous".to_owned(),
                None => "neither".to_owned(),
            };
            ready(Ok(Response::new(Bytes::from(seen))))
        }
    }

    fn request(authorization: Option<&'static str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(value) = authorization {
            request
                .headers_mut()
                .insert(AUTHORIZATION, HeaderValue::from_static(value));
        }
        request
    }

    #[tokio::test]
    async fn accepted_token_reaches_the_ready_inner_service_with_its_principal() {
        let (probe, calls) = Probe::new();
        let service = BearerAuthLayer::new(verifier()).layer(probe);
        let response = service.oneshot(request(Some("Bearer good"))).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.body().as_ref(), b"user 7");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn refused_token_never_calls_the_inner_service() {
        let (probe, calls) = Probe::new();
        let service = BearerAuthLayer::new(verifier()).layer(probe);
        for (authorization, status, body) in [
            (None, 401, UNAUTHENTICATED_BODY),
            (Some("Bearer a b"), 401, UNAUTHENTICATED_BODY),
            (Some("Bearer bad"), 401, UNAUTHENTICATED_BODY),
            (Some("Bearer down"), 503, UNAVAILABLE_BODY),
        ] {
            let response = service
                .clone()
                .oneshot(request(authorization))
                .await
                .unwrap();
            assert_eq!(response.status(), status);
            assert_eq!(response.body().as_ref(), body);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    /// Several `Authorization` values, even each a valid token, are refused before the
    /// inner service (and before `admit`, which marks one value sensitive).
    #[tokio::test]
    async fn several_authorization_values_never_reach_the_inner_service() {
        for optional in [false, true] {
            let (probe, calls) = Probe::new();
            let layer = BearerAuthLayer::new(verifier());
            let layer = if optional { layer.optional() } else { layer };
            let service = layer.layer(probe);
            for values in [
                &["Bearer good", "Bearer good"][..],
                &["Basic dXNlcjpwYXNz", "Bearer good"],
                &["Basic dXNlcjpwYXNz", "Basic dXNlcjpwYXNz"],
            ] {
                let mut request = Request::new(());
                for value in values {
                    request
                        .headers_mut()
                        .append(AUTHORIZATION, HeaderValue::from_static(value));
                }
                let response = service.clone().oneshot(request).await.unwrap();
                assert_eq!(response.status(), 401, "{values:?}");
                assert_eq!(response.body().as_ref(), UNAUTHENTICATED_BODY);
            }
            assert_eq!(calls.load(Ordering::SeqCst), 0);
        }
    }

    #[tokio::test]
    async fn policy_refusal_never_calls_the_inner_service() {
        let (probe, calls) = Probe::new();
        let service = BearerAuthLayer::new(verifier())
            .require_all(["admin"])
            .layer(probe);
        let response = service.oneshot(request(Some("Bearer good"))).await.unwrap();
        assert_eq!(response.status(), 403);
        assert_eq!(response.body().as_ref(), MISSING_ABILITY_BODY);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn optional_route_without_credentials_gets_the_marker() {
        let (probe, calls) = Probe::new();
        let service = BearerAuthLayer::new(verifier()).optional().layer(probe);
        let response = service.clone().oneshot(request(None)).await.unwrap();
        assert_eq!(response.body().as_ref(), b"anonymous");
        let response = service.oneshot(request(Some("Bearer bad"))).await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn rejection_is_the_cores_rendering() {
        let layer = BearerAuthLayer::new(verifier()).with_realm("api").unwrap();
        let expected: Response<Bytes> = layer
            .authenticator()
            .respond(&Rejection::InvalidToken(InvalidReason::Unknown));
        let (probe, _) = Probe::new();
        let response = layer
            .layer(probe)
            .oneshot(request(Some("Bearer bad")))
            .await
            .unwrap();
        assert_eq!(response.status(), expected.status());
        assert_eq!(response.headers(), expected.headers());
        assert_eq!(response.body(), expected.body());
    }

    /// Every answer of a verifier with its answer at hand (the store itself, decided in
    /// `call`) and of one that must be awaited (the same store behind a closure): same
    /// status, headers and body, and the principal reaches the inner service either way.
    #[tokio::test]
    async fn the_fast_path_and_the_awaited_path_answer_alike() {
        use bearer_auth::{AccessToken, MemoryStore, NewToken};

        let store = MemoryStore::<String>::new();
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
        let inner = tower::service_fn(|request: Request<()>| async move {
            let owner = crate::principal::<AccessToken<String>>(request.extensions())
                .map_or_else(|| "none".to_owned(), |p| p.owner().clone());
            Ok::<_, Infallible>(Response::new(Bytes::from(owner)))
        });
        let fast = BearerAuthLayer::new(store).layer(inner);
        let slow = BearerAuthLayer::new(awaited).layer(inner);

        let wrong = format!("Bearer {}|nope", key.id());
        let valid = format!("Bearer {}", key.plain_text_token().as_str());
        let waiting = format!("Bearer {}", pending.plain_text_token().as_str());
        for authorization in [Some(&valid), Some(&waiting), Some(&wrong), None] {
            let request = || {
                let mut request = Request::new(());
                if let Some(value) = authorization {
                    request.headers_mut().insert(
                        AUTHORIZATION,
                        HeaderValue::try_from(value.as_str()).unwrap(),
                    );
                }
                request
            };
            let a = fast.clone().oneshot(request()).await.unwrap();
            let b = slow.clone().oneshot(request()).await.unwrap();
            assert_eq!(a.status(), b.status(), "{authorization:?}");
            assert_eq!(a.headers(), b.headers(), "{authorization:?}");
            assert_eq!(a.body(), b.body(), "{authorization:?}");
        }
        let mut request = Request::new(());
        request.headers_mut().insert(
            AUTHORIZATION,
            HeaderValue::try_from(valid.as_str()).unwrap(),
        );
        let accepted = fast.oneshot(request).await.unwrap();
        assert_eq!(accepted.body().as_ref(), b"alice");
    }

    /// Never ready: its readiness must reach the caller.
    #[derive(Clone)]
    struct Pending;

    impl Service<Request<()>> for Pending {
        type Response = Response<Bytes>;
        type Error = Infallible;
        type Future = Ready<Result<Response<Bytes>, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Pending
        }

        fn call(&mut self, _: Request<()>) -> Self::Future {
            ready(Ok(Response::new(Bytes::new())))
        }
    }

    #[test]
    fn poll_ready_is_forwarded() {
        let mut service = BearerAuthService::new(Pending, verifier());
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(
            <BearerAuthService<Pending, _> as Service<Request<()>>>::poll_ready(
                &mut service,
                &mut cx
            )
            .is_pending()
        );
    }

    #[test]
    fn accessors_reach_the_inner_service() {
        let (probe, calls) = Probe::new();
        let mut service = BearerAuthService::new(probe, verifier());
        service.get_mut().ready = true;
        assert!(service.get_ref().ready);
        assert!(Arc::ptr_eq(&service.into_inner().calls, &calls));
    }
}

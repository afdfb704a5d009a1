//! A value of the principal's type that an outer middleware stored in the request
//! extensions (a request id, a session's user name) is never taken for the principal:
//! not on an optional route without credentials, not instead of the verifier's principal.

use std::{
    fmt::Display,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    Router,
    extract::Request,
    middleware::{self, Next},
    response::Response,
    routing::get,
};
use bearer_auth::{
    BearerToken, BearerTokenRef, InvalidReason, Principal, Rejection, TokenVerifier,
    UNAUTHENTICATED_BODY,
};
use bearer_auth_tower::{Authenticated, BearerAuthLayer};
use http::{HeaderValue, Method};
use tower::ServiceBuilder;
use tower_http::{cors::CorsLayer, trace::TraceLayer};

use crate::fixture::{Reply, oneshot};

/// The one token [`Fixed`] accepts.
const KEY: &str = "Bearer the-one-key";

/// Accepts `the-one-key` as its principal; answers at once (`verify_now`, decided in
/// the service's `call`) or only when awaited, so that both paths are covered.
#[derive(Clone)]
struct Fixed<P> {
    principal: P,
    at_once: bool,
}

impl<P: Principal> Fixed<P> {
    fn check(&self, token: &str) -> Result<P, Rejection> {
        match token {
            "the-one-key" => Ok(self.principal.clone()),
            _ => Err(Rejection::InvalidToken(InvalidReason::Unknown)),
        }
    }
}

#[bearer_auth::async_trait]
impl<P: Principal> TokenVerifier for Fixed<P> {
    type Principal = P;

    async fn verify(&self, token: &BearerToken) -> Result<P, Rejection> {
        self.check(token.as_str())
    }

    fn verify_now(&self, token: BearerTokenRef<'_>) -> Option<Result<P, Rejection>> {
        self.at_once.then(|| self.check(token.as_str()))
    }
}

/// `/required` takes `Authenticated<P>`, `/optional` takes `Option<Authenticated<P>>`;
/// both behind `layer`, and the whole router behind a middleware that stores `outer` in
/// the extensions of every request before the layer runs.
fn app<P: Principal + Display>(layer: BearerAuthLayer<Fixed<P>>, outer: P) -> Router {
    Router::new()
        .route(
            "/required",
            get(|Authenticated(principal): Authenticated<P>| async move {
                format!("authenticated as {principal}")
            }),
        )
        .route(
            "/optional",
            get(|principal: Option<Authenticated<P>>| async move {
                match principal {
                    Some(Authenticated(principal)) => format!("authenticated as {principal}"),
                    None => "anonymous".to_owned(),
                }
            }),
        )
        .route_layer(layer)
        .layer(middleware::map_request(move |mut request: Request| {
            request.extensions_mut().insert(outer.clone());
            std::future::ready(request)
        }))
}

fn assert_unauthenticated(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}");
    assert_eq!(reply.body, UNAUTHENTICATED_BODY, "{what}");
    assert_eq!(reply.headers["www-authenticate"], "Bearer", "{what}");
    assert_eq!(reply.headers["content-type"], "application/json", "{what}");
}

fn assert_ok(reply: &Reply, body: &str, what: &str) {
    assert_eq!(reply.status, 200, "{what}");
    assert_eq!(String::from_utf8_lossy(&reply.body), body, "{what}");
}

/// Every route and policy, with the verifier answering at once and awaited, for one
/// principal type.
async fn check<P: Principal + Display>(outer: P, principal: P) {
    let accepted = format!("authenticated as {principal}");
    for at_once in [true, false] {
        let verifier = Fixed {
            principal: principal.clone(),
            at_once,
        };
        let what = |case: &str| format!("outer {outer}, at once: {at_once}: {case}");

        let optional = app(
            BearerAuthLayer::new(verifier.clone()).optional(),
            outer.clone(),
        );
        for anonymous in [&[][..], &["Basic dXNlcjpwYXNz"][..]] {
            let reply = oneshot(&optional, Method::GET, "/required", anonymous).await;
            assert_unauthenticated(&reply, &what("optional layer, required extractor"));
            let reply = oneshot(&optional, Method::GET, "/optional", anonymous).await;
            assert_ok(
                &reply,
                "anonymous",
                &what("optional layer, optional extractor"),
            );
        }
        for path in ["/required", "/optional"] {
            let reply = oneshot(&optional, Method::GET, path, &[KEY]).await;
            assert_ok(&reply, &accepted, &what("optional layer, key"));
        }

        let required = app(BearerAuthLayer::new(verifier), outer.clone());
        for path in ["/required", "/optional"] {
            let reply = oneshot(&required, Method::GET, path, &[]).await;
            assert_unauthenticated(&reply, &what("required layer, no key"));
            let reply = oneshot(&required, Method::GET, path, &[KEY]).await;
            assert_ok(&reply, &accepted, &what("required layer, key"));
        }
    }
}

#[tokio::test]
async fn an_outer_u64_is_never_the_principal() {
    check(424_242_u64, 7_u64).await;
}

#[tokio::test]
async fn an_outer_string_is_never_the_principal() {
    check("mallory".to_owned(), "alice".to_owned()).await;
}

/// The layer in a stack as it is deployed: a trace layer, CORS, and a request-id
/// middleware that stores the id, a `u64`, in the extensions, all outside it.
#[tokio::test]
async fn an_outer_request_id_in_a_real_stack_is_never_the_principal() {
    async fn request_id(mut request: Request, next: Next) -> Response {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1_000);
        let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
        request.extensions_mut().insert(id);
        let mut response = next.run(request).await;
        response
            .headers_mut()
            .insert("x-request-id", HeaderValue::from(id));
        response
    }

    let seen = Arc::new(AtomicU64::new(0));
    let seen_in_handler = Arc::clone(&seen);
    for at_once in [true, false] {
        let verifier = Fixed {
            principal: 7_u64,
            at_once,
        };
        let seen_in_handler = Arc::clone(&seen_in_handler);
        let app = Router::new()
            .route(
                "/me",
                get(move |user: Option<Authenticated<u64>>| {
                    let seen = Arc::clone(&seen_in_handler);
                    async move {
                        let id = user.map_or(0, |Authenticated(id)| id);
                        seen.store(id, Ordering::SeqCst);
                        format!("user {id}")
                    }
                }),
            )
            .route(
                "/strict",
                get(|Authenticated(id): Authenticated<u64>| async move { format!("user {id}") }),
            )
            .route_layer(BearerAuthLayer::new(verifier).optional())
            .layer(
                ServiceBuilder::new()
                    .layer(TraceLayer::new_for_http())
                    .layer(CorsLayer::permissive())
                    .layer(middleware::from_fn(request_id)),
            );

        let reply = oneshot(&app, Method::GET, "/strict", &[]).await;
        assert_unauthenticated(&reply, "strict, no key");
        assert!(reply.headers.contains_key("x-request-id"));
        let reply = oneshot(&app, Method::GET, "/me", &[]).await;
        assert_ok(&reply, "user 0", "optional, no key");
        assert_eq!(seen.load(Ordering::SeqCst), 0);
        for path in ["/me", "/strict"] {
            let reply = oneshot(&app, Method::GET, path, &[KEY]).await;
            assert_ok(&reply, "user 7", path);
        }
        assert_eq!(seen.load(Ordering::SeqCst), 7);
    }
}

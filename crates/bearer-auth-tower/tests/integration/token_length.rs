//! Tokens longer than the bound get the 401 of an invalid token before the verifier, or
//! anything else that copies or hashes them, sees them.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{Router, routing::get};
use bearer_auth::{
    AccessToken, BearerToken, DEFAULT_MAX_TOKEN_LEN, TokenVerifier, UNAUTHENTICATED_BODY,
    verifier_fn,
};
use bearer_auth_tower::BearerAuthLayer;
use http::{
    Method,
    header::{CONTENT_TYPE, WWW_AUTHENTICATE},
};

use crate::{
    fixture::{Keys, Reply, oneshot},
    table::{INVALID_TOKEN, JSON},
};

/// The store's verifier, counting its calls.
fn counting(
    keys: &Keys,
    calls: &Arc<AtomicUsize>,
) -> impl TokenVerifier<Principal = AccessToken<String>> + Clone + 'static {
    let store = keys.store.clone();
    let calls = Arc::clone(calls);
    verifier_fn(move |token: BearerToken| {
        calls.fetch_add(1, Ordering::SeqCst);
        let store = store.clone();
        async move { store.verify(&token).await }
    })
}

fn app<V>(layer: BearerAuthLayer<V>) -> Router
where
    V: TokenVerifier<Principal = AccessToken<String>> + Clone + 'static,
{
    Router::new()
        .route("/required", get(|| async { "ok" }))
        .route_layer(layer.clone())
        .merge(
            Router::new()
                .route("/optional", get(|| async { "ok" }))
                .route_layer(layer.optional()),
        )
}

fn assert_invalid_token(reply: &Reply) {
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body, UNAUTHENTICATED_BODY);
    assert_eq!(reply.headers[WWW_AUTHENTICATE], INVALID_TOKEN);
    assert_eq!(reply.headers[CONTENT_TYPE], JSON);
}

#[tokio::test]
async fn a_400_kb_token_is_refused_before_the_verifier() {
    let keys = Keys::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(BearerAuthLayer::new(counting(&keys, &calls)));
    let huge = format!("Bearer {}", "a".repeat(400 * 1024));
    for path in ["/required", "/optional"] {
        let reply = oneshot(&app, Method::GET, path, &[&huge]).await;
        assert_invalid_token(&reply);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // At the default bound the token reaches the verifier (and is unknown to it).
    let at = format!("Bearer {}", "a".repeat(DEFAULT_MAX_TOKEN_LEN));
    assert_invalid_token(&oneshot(&app, Method::GET, "/required", &[&at]).await);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let past = format!("Bearer {}", "a".repeat(DEFAULT_MAX_TOKEN_LEN + 1));
    assert_invalid_token(&oneshot(&app, Method::GET, "/required", &[&past]).await);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn max_token_len_sets_the_bound() {
    let keys = Keys::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let max = keys.ordinary.len();
    let app = app(BearerAuthLayer::new(counting(&keys, &calls)).max_token_len(max));

    let ordinary = format!("Bearer {}", keys.ordinary);
    let reply = oneshot(&app, Method::GET, "/required", &[&ordinary]).await;
    assert_eq!((reply.status, reply.body.as_slice()), (200, &b"ok"[..]));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let longer = format!("Bearer {}a", keys.ordinary);
    for path in ["/required", "/optional"] {
        assert_invalid_token(&oneshot(&app, Method::GET, path, &[&longer]).await);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

//! The `Authorization` header reaches the inner service marked sensitive: a `{:?}` of the
//! headers, in a handler or in a trace layer inside the auth layer, shows `Sensitive`
//! instead of the key.

use std::sync::{Arc, Mutex};

use axum::{Router, extract::Request, routing::get};
use bearer_auth::TokenVerifier;
use bearer_auth_tower::BearerAuthLayer;
use http::{HeaderMap, Method};
use tower_http::trace::TraceLayer;

use crate::fixture::{Keys, oneshot};

/// A `{:?}` of the headers, as a handler or a logger would print them.
async fn dump(headers: HeaderMap) -> String {
    format!("{headers:?}")
}

/// Neither the key, nor its secret part, nor a Basic credential is in `shown`; the
/// header is there, marked.
fn assert_hidden(shown: &str, secrets: &[&str], what: &str) {
    for secret in secrets {
        assert!(!shown.contains(secret), "{what}: {shown}");
    }
    assert!(
        shown.contains(r#""authorization": Sensitive"#),
        "{what}: {shown}"
    );
}

fn app<V>(verifier: V, optional: bool) -> Router
where
    V: TokenVerifier + Clone + 'static,
{
    let layer = BearerAuthLayer::new(verifier);
    let layer = if optional { layer.optional() } else { layer };
    Router::new().route("/dump", get(dump)).route_layer(layer)
}

#[tokio::test]
async fn a_handler_never_sees_the_key_in_a_header_dump() {
    let keys = Keys::new();
    let key = keys.ordinary.as_str();
    let (_, secret) = key.split_once('|').unwrap();
    let bearer = format!("Bearer {key}");
    let basic = "Basic YWxpY2U6aHVudGVyMg==";
    // The store answers at once (decided in `call`); the fixture's verifier is awaited.
    let apps = [
        (
            "at once",
            app(keys.store.clone(), false),
            app(keys.store.clone(), true),
        ),
        (
            "awaited",
            app(keys.verifier(), false),
            app(keys.verifier(), true),
        ),
    ];
    for (path, required, optional) in &apps {
        for (name, app) in [("required", required), ("optional", optional)] {
            let reply = oneshot(app, Method::GET, "/dump", &[&bearer]).await;
            assert_eq!(reply.status, 200, "{path}, {name}");
            let shown = String::from_utf8(reply.body).unwrap();
            assert_hidden(&shown, &[key, secret], &format!("{path}, {name}, key"));
        }
        // Another scheme on an optional route: let through anonymous, its credentials
        // hidden too.
        let reply = oneshot(optional, Method::GET, "/dump", &[basic]).await;
        assert_eq!(reply.status, 200, "{path}");
        let shown = String::from_utf8(reply.body).unwrap();
        assert_hidden(&shown, &["YWxpY2U6aHVudGVyMg"], &format!("{path}, basic"));
    }
}

#[tokio::test]
async fn a_trace_layer_inside_the_auth_layer_never_sees_the_key() {
    let keys = Keys::new();
    let key = keys.ordinary.clone();
    let (_, secret) = key.split_once('|').unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&seen);
    // What `DefaultMakeSpan::include_headers(true)` records: the headers' `Debug`.
    let trace = TraceLayer::new_for_http().make_span_with(move |request: &Request| {
        recorded
            .lock()
            .unwrap()
            .push(format!("{:?}", request.headers()));
        tracing::debug_span!("request")
    });
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route_layer(trace)
        .route_layer(BearerAuthLayer::new(keys.store.clone()));
    let reply = oneshot(&app, Method::GET, "/", &[&format!("Bearer {key}")]).await;
    assert_eq!(reply.status, 200);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_hidden(&seen[0], &[&key, secret], "trace layer");
}

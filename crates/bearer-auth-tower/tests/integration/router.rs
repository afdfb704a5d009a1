//! Every row through the `Router`, with `oneshot`.

use axum::{Extension, Router, extract::Request, routing::get};
use bearer_auth::AccessToken;
use bearer_auth::{UNAUTHENTICATED_BODY, verifier_fn};
use bearer_auth_tower::{Authenticated, BearerAuthLayer, principal};
use http::Method;

use crate::{
    fixture::{Keys, app, oneshot, user_body},
    table::{ROUTER, rows},
};

#[tokio::test]
async fn every_row_through_the_router() {
    let keys = Keys::new();
    let app = app(&keys);
    for row in rows(&keys) {
        let reply = oneshot(&app, row.method.clone(), row.path, &row.authorization()).await;
        row.check(&reply, ROUTER);
    }
}

#[tokio::test]
async fn route_layer_leaves_unknown_paths_to_the_fallback() {
    let keys = Keys::new();
    let reply = oneshot(&app(&keys), Method::GET, "/nope", &[]).await;
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn router_layer_covers_every_route_and_the_fallback_with_its_realm() {
    let keys = Keys::new();
    let app = Router::new()
        .route(
            "/v1/auth/user",
            get(
                |Authenticated(token): Authenticated<AccessToken<String>>| async move {
                    token.owner().clone()
                },
            ),
        )
        .layer(
            BearerAuthLayer::new(keys.verifier())
                .with_realm("api")
                .unwrap(),
        );
    for path in ["/v1/auth/user", "/nope"] {
        let reply = oneshot(&app, Method::GET, path, &[]).await;
        assert_eq!(reply.status, 401, "{path}");
        assert_eq!(reply.headers["www-authenticate"], r#"Bearer realm="api""#);
        assert_eq!(reply.body, UNAUTHENTICATED_BODY);
        let reply = oneshot(&app, Method::GET, path, &["Bearer 1|nope"]).await;
        assert_eq!(reply.status, 401, "{path}");
        assert_eq!(
            reply.headers["www-authenticate"],
            r#"Bearer realm="api", error="invalid_token""#
        );
    }
    let good = format!("Bearer {}", keys.ordinary);
    let reply = oneshot(&app, Method::GET, "/v1/auth/user", &[&good]).await;
    assert_eq!((reply.status, reply.body.as_slice()), (200, &b"alice"[..]));
    // Through the layer, then no route: the fallback's 404.
    let reply = oneshot(&app, Method::GET, "/nope", &[&good]).await;
    assert_eq!(reply.status, 404);
}

/// The principal is stored under a type private to the crate: `Extension<P>` does not
/// find it (axum's 500 for a missing extension), `principal::<P>` does.
#[tokio::test]
async fn the_principal_is_read_with_principal_not_extension() {
    let keys = Keys::new();
    let app =
        Router::new()
            .route(
                "/extension",
                get(
                    |Extension(token): Extension<AccessToken<String>>| async move {
                        token.id().to_string()
                    },
                ),
            )
            .route(
                "/principal",
                get(|request: Request| async move {
                    principal::<AccessToken<String>>(request.extensions())
                        .map_or_else(|| "none".to_owned(), |token| token.id().to_string())
                }),
            )
            .route_layer(BearerAuthLayer::new(keys.store.clone()));
    let good = format!("Bearer {}", keys.limited);
    let reply = oneshot(&app, Method::GET, "/extension", &[&good]).await;
    assert_eq!(reply.status, 500);
    let reply = oneshot(&app, Method::GET, "/principal", &[&good]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, keys.limited_id.to_string().as_bytes());
}

#[tokio::test]
async fn extractor_for_another_principal_type_is_a_500() {
    let keys = Keys::new();
    let app = Router::new()
        .route(
            "/",
            get(|Authenticated(id): Authenticated<u64>| async move { id.to_string() }),
        )
        .route_layer(BearerAuthLayer::new(keys.store.clone()));
    let good = format!("Bearer {}", keys.ordinary);
    let reply = oneshot(&app, Method::GET, "/", &[&good]).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.body, bearer_auth::MISSING_LAYER_BODY);
}

#[tokio::test]
async fn nested_layers_each_apply_their_policy() {
    // An outer optional layer and an inner one requiring an ability: a principal from
    // the outer layer does not satisfy the inner one without its own check.
    let keys = Keys::new();
    let inner = Router::new()
        .route(
            "/servers",
            get(
                |Authenticated(token): Authenticated<AccessToken<String>>| async move {
                    user_body(token.id(), token.owner(), r#"["*"]"#)
                },
            ),
        )
        .route_layer(BearerAuthLayer::new(keys.store.clone()).require_all(["servers:write"]));
    let app = Router::new()
        .nest("/v1", inner)
        .layer(BearerAuthLayer::new(keys.store.clone()).optional());
    let reply = oneshot(&app, Method::GET, "/v1/servers", &[]).await;
    assert_eq!(reply.status, 401);
    let limited = format!("Bearer {}", keys.limited);
    let reply = oneshot(&app, Method::GET, "/v1/servers", &[&limited]).await;
    assert_eq!(reply.status, 403);
    let ordinary = format!("Bearer {}", keys.ordinary);
    let reply = oneshot(&app, Method::GET, "/v1/servers", &[&ordinary]).await;
    assert_eq!(reply.body, user_body(keys.ordinary_id, "alice", r#"["*"]"#));
}

#[tokio::test]
async fn closure_verifier_with_a_plain_principal() {
    let verifier = verifier_fn(|token: bearer_auth::BearerToken| async move {
        match token.as_str() {
            "let-me-in" => Ok(42_u64),
            _ => Err(bearer_auth::Rejection::InvalidToken(
                bearer_auth::InvalidReason::Unknown,
            )),
        }
    });
    let app = Router::new()
        .route(
            "/",
            get(|Authenticated(id): Authenticated<u64>| async move { id.to_string() }),
        )
        .layer(BearerAuthLayer::new(verifier));
    let reply = oneshot(&app, Method::GET, "/", &["Bearer let-me-in"]).await;
    assert_eq!((reply.status, reply.body.as_slice()), (200, &b"42"[..]));
    let reply = oneshot(&app, Method::GET, "/", &["Bearer nope"]).await;
    assert_eq!(reply.status, 401);
}

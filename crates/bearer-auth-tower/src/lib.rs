//! Bearer-token (API key) authentication for Tower services: axum, hyper, or any Tower
//! stack.
//!
//! [`BearerAuthLayer`] wraps a service in [`BearerAuthService`], which checks
//! `Authorization: Bearer <token>` with a [`TokenVerifier`](bearer_auth::TokenVerifier)
//! before the service sees the request. Every decision and every byte of a refusal come
//! from the [`bearer_auth`] core, so this adapter and the actix-web one answer alike:
//!
//! | when | status | body |
//! |---|---|---|
//! | missing / malformed / unknown / expired / revoked token | 401 | `{"message":"Unauthenticated."}` |
//! | token valid, its second factor still pending | 403 | `{"message":"Two-factor authentication required.","requires_2fa":true}` |
//! | token valid, lacks a required ability | 403 | `{"message":"Invalid ability provided."}` |
//! | the verifier's backend failed | 503 | `{"message":"Service Unavailable."}` |
//!
//! Each with `Content-Type: application/json`; a 401 also carries `WWW-Authenticate`:
//! `Bearer` when no credentials were sent, `Bearer error="invalid_token"` when a token was
//! refused (with `realm="…"` first if one was set). A refused request never reaches the
//! inner service; an accepted one carries its principal in the request extensions.
//!
//! Per route, the layer can let anonymous requests through
//! ([`optional`](BearerAuthLayer::optional)), require abilities
//! ([`require_all`](BearerAuthLayer::require_all),
//! [`require_any`](BearerAuthLayer::require_any)) and accept a token whose second factor is
//! pending, for the two-factor challenge route
//! ([`accept_pending_second_factor`](BearerAuthLayer::accept_pending_second_factor)).
//!
//! # Example
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use bearer_auth::{AccessToken, MemoryStore, NewToken};
//! use bearer_auth_tower::{Authenticated, BearerAuthLayer};
//! use http::{Request, StatusCode, header::AUTHORIZATION};
//! use tower::ServiceExt;
//!
//! async fn user(Authenticated(token): Authenticated<AccessToken<String>>) -> String {
//!     token.owner().clone()
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = MemoryStore::new();
//! let issued = store.create(NewToken::new("alice".to_owned(), "laptop")).unwrap();
//!
//! let app = Router::new()
//!     .route("/v1/auth/user", get(user))
//!     .route_layer(BearerAuthLayer::new(store.clone()))
//!     .route("/health", get(|| async { "ok" }));
//!
//! // No credentials: the documented 401, and the handler is not called.
//! let request = Request::get("/v1/auth/user").body(Body::empty()).unwrap();
//! let response = app.clone().oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], "Bearer");
//!
//! // The key: the handler gets its principal.
//! let request = Request::get("/v1/auth/user")
//!     .header(AUTHORIZATION, format!("Bearer {}", issued.plain_text_token().as_str()))
//!     .body(Body::empty())
//!     .unwrap();
//! let response = app.clone().oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! // Revoked: 401 at once.
//! store.revoke(&"alice".to_owned(), issued.id());
//! let request = Request::get("/v1/auth/user")
//!     .header(AUTHORIZATION, format!("Bearer {}", issued.plain_text_token().as_str()))
//!     .body(Body::empty())
//!     .unwrap();
//! let response = app.clone().oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], r#"Bearer error="invalid_token""#);
//!
//! // Routes outside the layer are not checked.
//! let request = Request::get("/health").body(Body::empty()).unwrap();
//! assert_eq!(app.oneshot(request).await.unwrap().status(), StatusCode::OK);
//! # }
//! ```
//!
//! An optional route, where anonymous requests get through and handlers take
//! `Option<Authenticated<P>>`:
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use bearer_auth::{AccessToken, MemoryStore};
//! use bearer_auth_tower::{Authenticated, BearerAuthLayer};
//! use http::{Request, StatusCode, header::AUTHORIZATION};
//! use tower::ServiceExt;
//!
//! async fn greet(user: Option<Authenticated<AccessToken<String>>>) -> String {
//!     match user {
//!         Some(token) => format!("hello {}", token.owner()),
//!         None => "hello stranger".to_owned(),
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/greet", get(greet))
//!     .layer(BearerAuthLayer::new(MemoryStore::<String>::new()).optional());
//!
//! let anonymous = Request::get("/greet").body(Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(anonymous).await.unwrap().status(), StatusCode::OK);
//!
//! // Credentials that are sent are still checked.
//! let wrong = Request::get("/greet")
//!     .header(AUTHORIZATION, "Bearer 1|wrong")
//!     .body(Body::empty())
//!     .unwrap();
//! assert_eq!(app.oneshot(wrong).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```
//!
//! With `tower::ServiceBuilder` and a hyper-style body:
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bearer_auth::MemoryStore;
//! use bearer_auth_tower::BearerAuthLayer;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let service = ServiceBuilder::new()
//!     .layer(BearerAuthLayer::new(MemoryStore::<String>::new()).with_realm("api").unwrap())
//!     .service(service_fn(|_: Request<Full<Bytes>>| async {
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
//!     }));
//!
//! let request = Request::new(Full::new(Bytes::new()));
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], r#"Bearer realm="api""#);
//! # }
//! ```
//!
//! # Bounds
//!
//! The request body may be of any type. The rejection is built in the inner service's
//! response body type, which needs only `From<Bytes>`: axum's `Body` and
//! `http_body_util::Full<Bytes>` qualify. The service keeps `type Error = S::Error`: a
//! rejection is a response. The principal (`V::Principal`) is `Clone + Send + Sync +
//! 'static`. It is stored in the request extensions under a type private to this crate,
//! so that a value of the same type stored by another middleware is never taken for it:
//! read it with [`Authenticated<P>`] in axum handlers and with [`principal`] elsewhere,
//! not with `axum::Extension<P>` or `extensions.get::<P>()`.
//!
//! # The `Authorization` header in logs
//!
//! The service marks every `Authorization` value of a request it lets through as
//! sensitive ([`HeaderValue::set_sensitive`](http::HeaderValue::set_sensitive)), on
//! accepted requests and on anonymous ones of an optional route alike: the `Debug` of the
//! headers, in a handler or in a layer **inside** this one (such as tower-http's
//! `TraceLayer` recording the headers), shows `Sensitive` instead of the key.
//!
//! Layers **outside** this one see the request before it is marked, and a refused
//! request is never marked: a trace or logging layer there prints the key, unless the
//! header is marked first by tower-http's [`SetSensitiveRequestHeadersLayer`], outermost:
//!
//! ```
//! use std::iter::once;
//!
//! use axum::{Router, routing::get};
//! use bearer_auth::MemoryStore;
//! use bearer_auth_tower::BearerAuthLayer;
//! use http::header::AUTHORIZATION;
//! use tower::ServiceBuilder;
//! use tower_http::{sensitive_headers::SetSensitiveRequestHeadersLayer, trace::TraceLayer};
//!
//! let app: Router = Router::new()
//!     .route("/me", get(|| async { "me" }))
//!     .route_layer(BearerAuthLayer::new(MemoryStore::<String>::new()))
//!     .layer(
//!         ServiceBuilder::new()
//!             // First: the layers after it never see the key in the clear.
//!             .layer(SetSensitiveRequestHeadersLayer::new(once(AUTHORIZATION)))
//!             .layer(TraceLayer::new_for_http()),
//!     );
//! ```
//!
//! [`SetSensitiveRequestHeadersLayer`]: https://docs.rs/tower-http/latest/tower_http/sensitive_headers/struct.SetSensitiveRequestHeadersLayer.html
//!
//! # Logging
//!
//! Each refusal is logged once by the core (target `bearer_auth`, field `reason`:
//! `missing`, `malformed`, `unknown`, `expired`, `revoked`, `too_long`, `second_factor`,
//! `ability` or `backend`; `debug` level, `error` for a backend failure), never with the
//! token or its digest. This crate logs nothing else; an [`Authenticated`] extractor on a
//! route that no layer covers logs that misconfiguration at `error`.
//!
//! So that an outage or a misconfigured route cannot fill a disk, the `error` events are
//! throttled, each kind on its own (each distinct backend error, each principal type of an
//! uncovered route): the first is logged, then at most one per
//! [`DEFAULT_ERROR_LOG_INTERVAL`](bearer_auth::DEFAULT_ERROR_LOG_INTERVAL) (10 s) with the
//! number not logged since in its `suppressed` field, so that no error, however often a
//! client causes it, hides another. The `debug` events are all logged.
//! Set the interval with
//! [`Authenticator::with_error_log_interval`](bearer_auth::Authenticator::with_error_log_interval)
//! and [`BearerAuthLayer::from_authenticator`].
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `axum` | yes | [`Authenticated<P>`] and `Option<Authenticated<P>>` extractors for axum 0.8 (through `axum-core`), and their [`AuthenticatedRejection`] |
//!
//! Without it the crate depends only on `tower-service`, `tower-layer`, `http`, `bytes`,
//! `pin-project-lite` and the core.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
mod extract;
mod future;
mod layer;
mod outcome;
mod service;

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use extract::{Authenticated, AuthenticatedRejection};
pub use future::ResponseFuture;
pub use layer::BearerAuthLayer;
pub use outcome::principal;
pub use service::BearerAuthService;

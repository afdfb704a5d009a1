//! Bearer-token (API key) authentication for [actix-web] 4.
//!
//! A thin adapter around the [`bearer_auth`] core: every decision (parsing the
//! `Authorization` header, verifying the token, applying a route's policy) and every byte
//! of a refusal come from the core, so this crate and `bearer-auth-tower` (axum, hyper,
//! Tower) answer the same request alike. It holds:
//!
//! - [`BearerAuthMiddleware`]: the middleware (a [`Transform`](actix_web::dev::Transform)) for
//!   `App::wrap`, `Scope::wrap` and `Resource::wrap`, built from any
//!   [`TokenVerifier`](bearer_auth::TokenVerifier), with per-route options: optional
//!   authentication, required abilities, a pending second factor accepted on the
//!   challenge route;
//! - [`Authenticated<P>`](Authenticated) and [`MaybeAuthenticated<P>`](MaybeAuthenticated):
//!   extractors that hand the accepted principal to handlers;
//! - [`PrincipalExt`]: `req.principal::<P>()`, the same principal for other code that runs
//!   after the middleware.
//! - [`mark_authorization_sensitive`]: hides the key from the `Debug` of the headers, for
//!   an outermost middleware.
//!
//! # Example
//!
//! ```
//! use actix_web::{App, HttpResponse, test, web};
//! use bearer_auth::{AccessToken, MemoryStore, NewToken};
//! use bearer_auth_actix::{Authenticated, BearerAuthMiddleware};
//!
//! async fn user(user: Authenticated<AccessToken<String>>) -> HttpResponse {
//!     HttpResponse::Ok().body(user.owner().clone())
//! }
//!
//! # #[actix_web::main]
//! # async fn main() {
//! let store = MemoryStore::new();
//! let key = store.create(NewToken::new("alice".to_owned(), "laptop")).unwrap();
//!
//! let app = test::init_service(
//!     App::new()
//!         .service(
//!             web::scope("/v1")
//!                 .wrap(BearerAuthMiddleware::new(store.clone()))
//!                 .route("/auth/user", web::get().to(user)),
//!         )
//!         .route("/health", web::get().to(HttpResponse::Ok)),
//! )
//! .await;
//!
//! // With the key: the handler runs with its principal.
//! let req = test::TestRequest::get()
//!     .uri("/v1/auth/user")
//!     .insert_header(("Authorization", format!("Bearer {}", key.plain_text_token().as_str())))
//!     .to_request();
//! assert_eq!(test::call_and_read_body(&app, req).await, "alice");
//!
//! // With a wrong key: the documented 401, and the handler does not run.
//! let req = test::TestRequest::get()
//!     .uri("/v1/auth/user")
//!     .insert_header(("Authorization", "Bearer 1|wrong"))
//!     .to_request();
//! let res = test::call_service(&app, req).await;
//! assert_eq!(res.status(), 401);
//! assert_eq!(res.headers().get("www-authenticate").unwrap(), r#"Bearer error="invalid_token""#);
//! assert_eq!(res.headers().get("content-type").unwrap(), "application/json");
//! assert_eq!(test::read_body(res).await, r#"{"message":"Unauthenticated."}"#);
//!
//! // Routes outside the scope are open.
//! let req = test::TestRequest::get().uri("/health").to_request();
//! assert_eq!(test::call_service(&app, req).await.status(), 200);
//! # }
//! ```
//!
//! # Responses
//!
//! Every refusal has `Content-Type: application/json` and one of these exact bodies:
//!
//! | when | status | body |
//! |---|---|---|
//! | missing / malformed / unknown / expired / revoked token | 401 | `{"message":"Unauthenticated."}` |
//! | token valid, its second factor still pending | 403 | `{"message":"Two-factor authentication required.","requires_2fa":true}` |
//! | token valid, lacks a required ability | 403 | `{"message":"Invalid ability provided."}` |
//! | the verifier's backend failed (store down, timeout) | 503 | `{"message":"Service Unavailable."}` |
//!
//! A 401 also carries `WWW-Authenticate`: `Bearer` when the request had no Bearer
//! credentials, `Bearer error="invalid_token"` when a token was presented and refused
//! (with `realm="…"` first if one is [set](BearerAuthMiddleware::with_realm)). 403 and 503 carry
//! none. The wrapped service is not called for a refused request.
//!
//! An extractor used on a route that no `BearerAuthMiddleware` covers answers 500 with a plain-text
//! explanation and logs the mistake at `error` level: see [`Authenticated`].
//!
//! The conversion from the core's `http` 1.x response to actix-web's types keeps the
//! status, every header name and value, and the body bytes; only the order of different
//! header names may differ, as actix-web's header map does not keep it.
//!
//! # The `Authorization` header in logs
//!
//! The middleware marks every `Authorization` value of a request it lets through as
//! sensitive (`HeaderValue::set_sensitive`: actix-web's header values are the `http`
//! 0.2 crate's), on accepted requests and on anonymous ones of an optional route alike:
//! the `Debug` of the headers, of the `HttpRequest` or of the `ServiceRequest`, in a
//! handler or a middleware **inside** this one, shows `Sensitive` instead of the key.
//! (Unless a middleware outside it keeps a clone of the request while calling it, which
//! forbids changing the request: see
//! [`BearerAuthMiddleware`](BearerAuthMiddleware#requests-shared-by-an-outer-middleware).)
//!
//! Middlewares **outside** it (registered on an enclosing `App` or `Scope`, or with a
//! later `wrap` on the same one) see the request before it is marked, and a refused
//! request is never marked. In particular actix-web's `Logger` renders its format's
//! request headers before the middlewares inside it run, with the value's text whatever
//! its mark: never put `%{Authorization}i` in its format. To mark the header for every
//! middleware, do what tower-http's [`SetSensitiveRequestHeadersLayer`] does for Tower:
//! call [`mark_authorization_sensitive`] in the outermost middleware (the last `wrap`). It
//! marks every value of the header; a request with several is refused, but the
//! middlewares between the two would see them all:
//!
//! ```
//! use std::sync::{Arc, Mutex};
//!
//! use actix_web::{App, HttpResponse, dev::Service as _, http::header::AUTHORIZATION, test, web};
//! use bearer_auth::MemoryStore;
//! use bearer_auth_actix::{BearerAuthMiddleware, mark_authorization_sensitive};
//!
//! # #[actix_web::main]
//! # async fn main() {
//! // What a middleware between the two sees: an audit log of the request headers.
//! let audit = Arc::new(Mutex::new(Vec::new()));
//! let seen = Arc::clone(&audit);
//! let app = test::init_service(
//!     App::new()
//!         .service(
//!             web::scope("/v1")
//!                 .wrap(BearerAuthMiddleware::new(MemoryStore::<String>::new()))
//!                 .route("/me", web::get().to(HttpResponse::Ok)),
//!         )
//!         .wrap_fn(move |req, srv| {
//!             let values = req.headers().get_all(AUTHORIZATION);
//!             seen.lock().unwrap().extend(values.map(|value| format!("{value:?}")));
//!             srv.call(req)
//!         })
//!         // Registered last, so it runs first: every middleware after it sees the key marked.
//!         .wrap_fn(|mut req, srv| {
//!             mark_authorization_sensitive(req.headers_mut());
//!             srv.call(req)
//!         }),
//! )
//! .await;
//!
//! let req = test::TestRequest::get()
//!     .uri("/v1/me")
//!     .append_header(("Authorization", "Bearer first-secret"))
//!     .append_header(("Authorization", "Bearer second-secret"))
//!     .to_request();
//! assert_eq!(test::call_service(&app, req).await.status(), 401);
//! assert_eq!(*audit.lock().unwrap(), ["Sensitive", "Sensitive"]);
//! # }
//! ```
//!
//! [`SetSensitiveRequestHeadersLayer`]: https://docs.rs/tower-http/latest/tower_http/sensitive_headers/struct.SetSensitiveRequestHeadersLayer.html
//!
//! # Logs
//!
//! One [`tracing`] event per refused request (target `bearer_auth`), with its reason
//! (`missing`, `malformed`, `unknown`, `expired`, `revoked`, `too_long`, `second_factor`,
//! `ability`, `backend`) and status; never the token or its digest. Refusals are `debug`
//! events, except a failed backend (`error`, with the backend's error). A route without a
//! middleware is logged at `error` when an extractor finds it.
//!
//! So that an outage or a misconfigured route cannot fill a disk, the `error` events are
//! throttled, each kind on its own (each distinct backend error, each principal type of an
//! uncovered route): the first is logged, then at most one per
//! [`DEFAULT_ERROR_LOG_INTERVAL`](bearer_auth::DEFAULT_ERROR_LOG_INTERVAL) (10 s) with the
//! number not logged since in its `suppressed` field, so that no error, however often a
//! client causes it, hides another. The `debug` events are all logged.
//! Set the interval with
//! [`Authenticator::with_error_log_interval`](bearer_auth::Authenticator::with_error_log_interval)
//! and [`BearerAuthMiddleware::from_authenticator`].
//!
//! [actix-web]: https://docs.rs/actix-web/4

#![forbid(unsafe_code)]

mod extract;
mod future;
mod middleware;
mod outcome;
mod response;
mod sensitive;

pub use extract::{Authenticated, AuthenticatedRejection, MaybeAuthenticated, MissingMiddleware};
pub use future::ResponseFuture;
pub use middleware::{BearerAuthMiddleware, BearerAuthService};
pub use outcome::PrincipalExt;
pub use sensitive::mark_authorization_sensitive;

/// The core crate, re-exported so that its verifiers, stores and rejections can be named
/// without a separate dependency.
pub use bearer_auth;

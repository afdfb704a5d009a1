//! The two servers under test, with the same routes, policies, handlers and verifier,
//! each on its own free loopback port.
//!
//! | route | policy |
//! |---|---|
//! | `GET /v1/auth/user` | default |
//! | `GET /v1/servers` | `require_all(["servers:read"])` |
//! | `POST /v1/two-factor-challenge` | `accept_pending_second_factor()` |
//! | `GET /v1/optional` | `optional()` |
//! | `GET /health` | none (open) |
//!
//! Every handler answers 200 with `Content-Type: application/json` and the body of
//! [`routes::body`] (or [`routes::HEALTH_BODY`]).

use std::{fmt, net::SocketAddr, thread::JoinHandle};

use bearer_auth::TokenVerifier;

use crate::fixture::{User, routes};

/// Which server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Server {
    /// axum 0.8 (`axum::serve`, hyper 1) behind `bearer-auth-tower`.
    Axum,
    /// actix-web 4 (`HttpServer`, actix-http 3) behind `bearer-auth-actix`.
    Actix,
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Axum => "axum",
            Self::Actix => "actix",
        })
    }
}

const JSON: &str = "application/json";

/// The axum server, served by a task of the calling runtime.
pub(crate) async fn start_axum<V>(verifier: V) -> SocketAddr
where
    V: TokenVerifier<Principal = User> + Clone + 'static,
{
    use axum::{
        Router,
        http::header::CONTENT_TYPE,
        response::IntoResponse,
        routing::{get, post},
    };
    use bearer_auth_tower::{Authenticated, BearerAuthLayer};

    fn json(body: String) -> impl IntoResponse {
        ([(CONTENT_TYPE, JSON)], body)
    }
    async fn user(Authenticated(user): Authenticated<User>) -> impl IntoResponse {
        json(routes::body("user", Some(&user.owner)))
    }
    async fn servers(Authenticated(user): Authenticated<User>) -> impl IntoResponse {
        json(routes::body("servers", Some(&user.owner)))
    }
    async fn two_factor(Authenticated(user): Authenticated<User>) -> impl IntoResponse {
        json(routes::body("two-factor", Some(&user.owner)))
    }
    async fn optional(user: Option<Authenticated<User>>) -> impl IntoResponse {
        json(routes::body(
            "optional",
            user.as_ref().map(|u| u.owner.as_str()),
        ))
    }
    async fn health() -> impl IntoResponse {
        json(routes::HEALTH_BODY.to_owned())
    }

    let layer = BearerAuthLayer::new(verifier);
    let app = Router::new()
        .route(routes::USER, get(user).route_layer(layer.clone()))
        .route(
            routes::SERVERS,
            get(servers).route_layer(layer.clone().require_all(["servers:read"])),
        )
        .route(
            routes::TWO_FACTOR,
            post(two_factor).route_layer(layer.clone().accept_pending_second_factor()),
        )
        .route(
            routes::OPTIONAL,
            get(optional).route_layer(layer.optional()),
        )
        .route(routes::HEALTH, get(health));

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The actix-web server, run by its own `System` on a thread of its own (actix-web's
/// runtime is single-threaded and not the test's tokio runtime).
pub(crate) struct Actix {
    pub(crate) addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: JoinHandle<std::io::Result<()>>,
}

impl Actix {
    /// Starts the server and returns once it listens.
    pub(crate) async fn start<V>(verifier: V) -> Self
    where
        V: TokenVerifier<Principal = User> + Clone + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let auth = bearer_auth_actix::BearerAuthMiddleware::new(verifier);
                let server = actix_web::HttpServer::new(move || {
                    let auth = auth.clone();
                    actix_web::App::new().configure(move |cfg| actix_routes(cfg, &auth))
                })
                .workers(1)
                .disable_signals()
                .bind(("127.0.0.1", 0))?;
                let addr = server.addrs()[0];
                let server = server.run();
                // The receiver only goes away if the test already failed.
                let _ = tx.send((addr, server.handle()));
                server.await
            })
        });
        let (addr, handle) = rx.await.expect("the actix-web server failed to start");
        Self {
            addr,
            handle,
            thread,
        }
    }

    /// Stops the server and waits for its thread.
    pub(crate) async fn stop(self) {
        self.handle.stop(true).await;
        tokio::task::spawn_blocking(move || self.thread.join())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// The routes of the table above, for actix-web, each with its own `BearerAuthMiddleware`.
fn actix_routes<V>(
    cfg: &mut actix_web::web::ServiceConfig,
    auth: &bearer_auth_actix::BearerAuthMiddleware<V>,
) where
    V: TokenVerifier<Principal = User> + 'static,
{
    use actix_web::{HttpResponse, http::header::CONTENT_TYPE, web};
    use bearer_auth_actix::{Authenticated, MaybeAuthenticated};

    fn json(body: String) -> HttpResponse {
        HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, JSON))
            .body(body)
    }
    async fn user(user: Authenticated<User>) -> HttpResponse {
        json(routes::body("user", Some(&user.owner)))
    }
    async fn servers(user: Authenticated<User>) -> HttpResponse {
        json(routes::body("servers", Some(&user.owner)))
    }
    async fn two_factor(user: Authenticated<User>) -> HttpResponse {
        json(routes::body("two-factor", Some(&user.owner)))
    }
    async fn optional(user: MaybeAuthenticated<User>) -> HttpResponse {
        json(routes::body(
            "optional",
            user.as_ref().map(|u| u.owner.as_str()),
        ))
    }
    async fn health() -> HttpResponse {
        json(routes::HEALTH_BODY.to_owned())
    }

    cfg.service(
        web::resource(routes::USER)
            .wrap(auth.clone())
            .route(web::get().to(user)),
    )
    .service(
        web::resource(routes::SERVERS)
            .wrap(auth.clone().require_all(["servers:read"]))
            .route(web::get().to(servers)),
    )
    .service(
        web::resource(routes::TWO_FACTOR)
            .wrap(auth.clone().accept_pending_second_factor())
            .route(web::post().to(two_factor)),
    )
    .service(
        web::resource(routes::OPTIONAL)
            .wrap(auth.clone().optional())
            .route(web::get().to(optional)),
    )
    .route(routes::HEALTH, web::get().to(health));
}

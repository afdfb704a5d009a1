//! An actix-web service protected by Bearer API keys.
//!
//! `cargo run --example actix`
//!
//! Listens on `$BIND_ADDR` (default `127.0.0.1:3000`). At start it creates one key and
//! prints it once, as the only line on standard output: `API key: <plain_text_token>`.
//! Logs go to standard error: `RUST_LOG` sets the filter, by default
//! `info,bearer_auth=debug` so that each refusal shows with its reason (never the key).
//!
//! - `GET /v1/auth/user`: needs `Authorization: Bearer <key>`; answers 200 with the key's
//!   principal as JSON, or the documented 401/403/503.
//! - `GET /health`: open; answers 200 `{"status":"ok"}`.
//!
//! With `DEMO_PENDING_KEY=1` it also creates a key whose second factor is pending and
//! prints it as a second line, `Pending 2FA key: <plain_text_token>`; that key gets the
//! documented 403 (`{"message":"Two-factor authentication required.","requires_2fa":true}`)
//! on `/v1/auth/user`. Without it, the one `API key:` line is all stdout holds.
//!
//! ```sh
//! curl -i http://127.0.0.1:3000/v1/auth/user -H "Authorization: Bearer $KEY"
//! ```
//!
//! It answers as the axum example does: same routes, same status, body and
//! `WWW-Authenticate` for the same request.
//!
//! With `--bare` (or `BEARER_AUTH_BARE=1`) it serves the same routes **without** the
//! middleware, as a baseline for throughput benchmarks: `/v1/auth/user` then answers 200
//! with the demo key's JSON to every request, built per request as in the protected mode,
//! checking nothing. Never expose that mode.

// `shared.rs` is written as a module of its own (`pub` items) and included by path.
#[path = "shared.rs"]
mod shared;

use std::io::IsTerminal as _;

use actix_web::{App, HttpResponse, HttpServer, http::header::CONTENT_TYPE, web};
use bearer_auth::{AccessToken, BearerToken, TokenVerifier as _};
use bearer_auth_actix::{Authenticated, BearerAuthMiddleware};
use tracing_subscriber::EnvFilter;

async fn health() -> HttpResponse {
    json(shared::HEALTH_BODY.to_owned())
}

async fn user(principal: Authenticated<AccessToken<String>>) -> HttpResponse {
    json(shared::user_json(&principal))
}

fn json(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(body)
}

fn bare_mode() -> bool {
    std::env::args().skip(1).any(|arg| arg == "--bare")
        || std::env::var("BEARER_AUTH_BARE").is_ok_and(|v| v == "1")
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,bearer_auth=debug")),
        )
        .init();

    let (store, issued) = shared::demo_store()?;
    let pending = shared::pending_key(&store)?;
    shared::print_keys(&issued, pending.as_ref())?;
    drop(pending);

    let addr = shared::bind_addr();
    if bare_mode() {
        // The demo key's principal, looked up once: the bare routes check nothing, but
        // build the same body from it on every request, as the protected route does.
        let token = BearerToken::from_token(issued.plain_text_token().as_str())?;
        let principal = store.verify(&token).await?;
        drop(issued);
        tracing::warn!(%addr, "bare mode: no authentication, for benchmarks only");
        HttpServer::new(move || {
            let principal = principal.clone();
            App::new().route("/health", web::get().to(health)).route(
                "/v1/auth/user",
                web::get().to(move || {
                    let principal = principal.clone();
                    async move { json(shared::user_json(&principal)) }
                }),
            )
        })
        .bind(&addr)?
        .run()
        .await?;
    } else {
        drop(issued);
        let auth = BearerAuthMiddleware::new(store);
        tracing::info!(%addr, "listening");
        HttpServer::new(move || {
            App::new().route("/health", web::get().to(health)).service(
                web::resource("/v1/auth/user")
                    .wrap(auth.clone())
                    .route(web::get().to(user)),
            )
        })
        .bind(&addr)?
        .run()
        .await?;
    }
    Ok(())
}

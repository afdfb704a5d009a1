//! An axum service behind `bearer-auth-tower`.
//!
//! `cargo run --example axum`
//!
//! Listens on `$BIND_ADDR` (default `127.0.0.1:3000`). At start it creates one key in a
//! `MemoryStore` and prints it once on stdout, as the line `API key: <plain_text_token>`;
//! logs go to stderr (`RUST_LOG`, default `info`; `RUST_LOG=bearer_auth=debug` shows
//! each refusal and its reason). Routes:
//!
//! - `GET /v1/auth/user`, behind the layer: 200 with the principal as JSON; without a
//!   valid key, the documented 401 (`{"message":"Unauthenticated."}`);
//! - `GET /health`, unprotected: 200 `{"status":"ok"}`.
//!
//! With `DEMO_PENDING_KEY=1` it also creates a key whose second factor is pending and
//! prints it as a second line, `Pending 2FA key: <plain_text_token>`; that key gets the
//! documented 403 (`{"message":"Two-factor authentication required.","requires_2fa":true}`)
//! on `/v1/auth/user`. Without it, the one `API key:` line is all stdout holds.
//!
//! ```sh
//! curl -i http://127.0.0.1:3000/v1/auth/user -H "Authorization: Bearer <API key>"
//! ```
//!
//! With `--bare` (or `BEARER_AUTH_BARE=1`) it serves the same routes with no layer at
//! all, `/v1/auth/user` answering the same body for the same key without checking the
//! request: a baseline for measuring the layer's cost with a load generator.

#[path = "shared.rs"]
mod shared;

use std::io::IsTerminal;

use axum::{Router, http::header::CONTENT_TYPE, response::IntoResponse, routing::get};
use bearer_auth::{AccessToken, BearerToken, TokenVerifier};
use bearer_auth_tower::{Authenticated, BearerAuthLayer};
use tracing_subscriber::EnvFilter;

type Principal = AccessToken<String>;

const JSON: [(axum::http::HeaderName, &str); 1] = [(CONTENT_TYPE, "application/json")];

async fn user(Authenticated(principal): Authenticated<Principal>) -> impl IntoResponse {
    (JSON, shared::user_json(&principal))
}

async fn health() -> impl IntoResponse {
    (JSON, shared::HEALTH_BODY)
}

fn bare_requested() -> bool {
    std::env::args().skip(1).any(|arg| arg == "--bare")
        || std::env::var("BEARER_AUTH_BARE").is_ok_and(|v| v == "1")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let (store, issued) = shared::demo_store()?;
    let pending = shared::pending_key(&store)?;
    let bare = bare_requested();
    let app = if bare {
        // The principal the key stands for, found once: each request then gets the
        // same body as behind the layer, with no authentication at all.
        let token = BearerToken::from_token(issued.plain_text_token().as_str())?;
        let principal = store.verify(&token).await?;
        Router::new().route(
            "/v1/auth/user",
            get(move || {
                let principal = principal.clone();
                async move { (JSON, shared::user_json(&principal)) }
            }),
        )
    } else {
        Router::new()
            .route("/v1/auth/user", get(user))
            .route_layer(BearerAuthLayer::new(store))
    }
    .route("/health", get(health));

    let addr = shared::bind_addr();
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        layer = if bare { "none (--bare)" } else { "bearer-auth" },
        "listening"
    );
    // The one time the keys are shown.
    shared::print_keys(&issued, pending.as_ref())?;
    drop(issued);
    drop(pending);

    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            // If the signal cannot be listened for, serve until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await?;
    Ok(())
}

//! The account API of bearer-auth's documentation, on a SQL database.
//!
//! `cargo run --example account_api`
//!
//! Listens on `$BIND_ADDR` (default `127.0.0.1:3000`) and keeps its data in
//! `$DATABASE_URL`: by default the SQLite file `account_api.sqlite3` in the working
//! directory, created on first start; `postgres://…` and `mysql://…` work too. It creates
//! Laravel's `users` and Sanctum's `personal_access_tokens` tables where missing and uses
//! existing ones as they are. `two_factor_secret` and the recovery codes are encrypted with
//! `$APP_KEY` (Laravel's `base64:` form); unset, a key is made on first start and kept,
//! owner-readable only, in a file beside the SQLite database (`$APP_KEY_FILE` to choose).
//! Logs go to stderr (`RUST_LOG`, default `info`). Stops gracefully on SIGTERM or Ctrl-C.
//!
//! Several instances can share one PostgreSQL or MySQL database. Each caches the keys it
//! verified for 5 s: a key revoked or regenerated on one instance is refused there at
//! once and on the others within 5 s; on PostgreSQL, `KEYS_NOTIFY=1` makes it within a
//! second (a trigger and `LISTEN/NOTIFY`).
//!
//! Open `http://127.0.0.1:3000/` in a browser for the dashboard (register, then create a
//! key on the API page), or use the JSON API directly:
//!
//! ```sh
//! curl -s http://127.0.0.1:3000/v1/auth/register -H 'Content-Type: application/json' \
//!   -d '{"name":"Ada","email":"ada@example.com","password":"correct horse"}'
//! ```
//!
//! The OpenAPI document of every route is at `GET /v1/openapi.json`.

use std::io::IsTerminal;

use account_api::{App, Config};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let config = Config::from_env();
    let app = App::start(&config).await?;
    let listener = tokio::net::TcpListener::bind(&config.bind_addr).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, engine = ?app.db().engine(), "listening");
    tracing::info!("dashboard: http://{addr}/");
    app.serve(listener, account_api::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

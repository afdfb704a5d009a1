//! `account_api`: the API of bearer-auth's documentation, end to end. Register or log in
//! for a token, create API keys (the plain text token shown once), list, regenerate and
//! revoke them, turn two-factor sign-in on, and pass its challenge; every protected route
//! behind `bearer-auth-tower`'s layer, which answers the documented 401 and 403 bodies.
//!
//! `cargo run --example account_api` serves it (see `main.rs`); this library is the same
//! service, so that tests can start it on `127.0.0.1:0`:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use account_api::{App, Config};
//!
//! let app = App::start(&Config::with_database("sqlite://account_api.sqlite3")).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! app.serve(listener, account_api::shutdown_signal()).await?;
//! # Ok(()) }
//! ```
//!
//! | module | what it holds |
//! |---|---|
//! | [`app`] | configuration, shared state, the router, serving and graceful shutdown |
//! | `routes` | the handlers: accounts, two-factor, API keys |
//! | [`users`] | Laravel's `users` table and its queries; bcrypt `$2y$` passwords |
//! | [`two_factor`] | TOTP (RFC 6238) and recovery codes, as Laravel Fortify makes them |
//! | [`crypto`] | Laravel's encrypter (AES-256-CBC + HMAC-SHA256) for the two-factor columns |
//! | [`db`] | the pool on SQLite, PostgreSQL or MySQL/MariaDB, and the tables |
//! | [`errors`], [`input`] | JSON errors in Laravel's shapes; request fields read as Laravel's validator does |
//! | [`throttle`] | Laravel's rate limiter for failed logins and two-factor challenges |
//! | `openapi` | the OpenAPI 3.1 document, generated from the handlers |

#![forbid(unsafe_code)]

pub mod app;
pub mod crypto;
pub mod db;
pub mod errors;
pub mod input;
mod openapi;
mod routes;
pub mod throttle;
pub mod two_factor;
pub mod users;

pub use app::{App, Config, KeyStore, Keys, StartError, Token, shutdown_signal};
pub use openapi::PATH as OPENAPI_PATH;

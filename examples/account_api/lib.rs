//! `account_api`: the API of bearer-auth's documentation, end to end. Register or log in
//! for a token, create API keys (the plain text token shown once), list, regenerate and
//! revoke them, turn two-factor sign-in on, and pass its challenge; every protected route
//! behind `bearer-auth-tower`'s layer, which answers the documented 401 and 403 bodies.
//! A web [`dashboard`] at `/` does all of it in a browser, through the same JSON API.
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
//! | route | answer |
//! |---|---|
//! | `POST /v1/auth/register` `{"name","email","password"}` | 201 `{"user":{"id","name","email"},"token"}` (the email kept lowercased); 422 in Laravel's validation shape; 429 after 20 a minute per client address |
//! | `POST /v1/auth/login` `{"email","password"}` | 200 `{"token","requires_2fa"}` (a pending token when two-factor is on); 422; 429 after 5 failures a minute per email (however spelled) and address, or 20 logins a minute per address |
//! | `POST /v1/auth/two-factor-challenge` `{"code"}` or `{"recovery_code"}` | 200 `{"requires_2fa":false}`; 422 wrong or used; 409 not pending; 429 after 5 failures a minute per user; 401 for a pending token 10 minutes old or that failed 5 times (revoked). The one route a pending token may use |
//! | `GET /v1/auth/user` | 200 `{"id","name","email","two_factor_enabled"}` |
//! | `POST /v1/auth/two-factor/enable` | 200 `{"secret","otpauth_url"}`; 409 already on |
//! | `POST /v1/auth/two-factor/confirm` `{"code"}` | 200 `{"recovery_codes":[8]}`; 422 wrong code |
//! | `DELETE /v1/auth/two-factor` `{"password"}` | 204; 422 wrong password |
//! | `POST /v1/profile/api-keys` `{"name","abilities"?,"expires_at"?}` | 201 the key with its `plain_text_token`, shown once |
//! | `GET /v1/profile/api-keys` | 200 the user's keys, never a secret or a digest |
//! | `POST /v1/profile/api-keys/{id}/regenerate` | 200 the key with a new `plain_text_token`; the old one refused at once (by other instances on the same database within the key cache's 5 s, or a second with `KEYS_NOTIFY=1` on PostgreSQL) |
//! | `DELETE /v1/profile/api-keys/{id}` | 204 |
//! | `POST /v1/auth/logout` | 204: the token used is revoked |
//! | `GET /v1/auth/two-factor/qr-code` | 200 `{"svg","url"}`: the QR code of the secret being turned on, as SVG; 409 on or not enabled |
//! | `GET /v1/openapi.json` | the OpenAPI 3.1 document of all of the above |
//! | `GET /`, `/assets/app.css`, `/assets/app.js` | the [`dashboard`]: sign in, the API page, two-factor, in a browser |
//!
//! Every protected route answers the middleware's documented 401 and 403 bodies; another
//! user's key id answers 404 as an unknown id does. The routes that manage the account
//! (two-factor, and every API key route) take a token with every ability, `*` (a login
//! token, or a key made without `abilities`): another gets 403
//! `{"message":"Invalid ability provided."}`. A key expires no later than the token that
//! makes it. Slow clients and floods are bounded by [`Limits`]: headers within 10 s, a
//! request within 30 s (408), bcrypt in as many slots as CPUs (503 with `Retry-After`
//! when they stay busy), 10 s for requests in flight after a shutdown signal. Keys live in `bearer-auth-sqlx`'s
//! [`SqlStore`](bearer_auth_sqlx::SqlStore) on the same database as the users (Sanctum's
//! `personal_access_tokens`), so they survive a restart and a Laravel app can share them.
//!
//! | module | what it holds |
//! |---|---|
//! | [`app`] | configuration and [`Limits`], shared state, the router, graceful shutdown |
//! | `serve` | HTTP/1 connections with a header timeout, and a shutdown with a deadline |
//! | `routes` | the handlers: accounts, two-factor, API keys |
//! | [`users`] | Laravel's `users` table and its queries; bcrypt `$2y$` passwords |
//! | [`two_factor`] | TOTP (RFC 6238) and recovery codes, as Laravel Fortify makes them |
//! | [`crypto`] | Laravel's encrypter (AES-256-CBC + HMAC-SHA256) for the two-factor columns |
//! | [`dashboard`] | the web page at `/` (HTML, CSS and JavaScript embedded), which uses the JSON API |
//! | [`db`] | the pool on SQLite, PostgreSQL or MySQL/MariaDB, and the tables |
//! | [`errors`], [`input`] | JSON errors in Laravel's shapes; request fields read as Laravel's validator does |
//! | [`throttle`] | Laravel's rate limiter for logins, registrations and two-factor challenges |
//! | `openapi` | the OpenAPI 3.1 document, generated from the handlers |

#![forbid(unsafe_code)]

pub mod app;
pub mod crypto;
pub mod dashboard;
pub mod db;
pub mod errors;
pub mod input;
mod openapi;
mod routes;
mod serve;
pub mod throttle;
pub mod two_factor;
pub mod users;

pub use app::{App, Config, KeyStore, Keys, Limits, StartError, Token, shutdown_signal};
pub use openapi::PATH as OPENAPI_PATH;

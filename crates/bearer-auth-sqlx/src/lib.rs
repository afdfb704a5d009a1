//! Keys that survive a restart and are shared by every instance of a service: a
//! [`bearer_auth`] key store on SQL databases, on Laravel Sanctum's own
//! `personal_access_tokens` table.
//!
//! [`SqlStore`] verifies the tokens a Sanctum app issued and issues its own on the same
//! table, for a Rust service behind `bearer-auth-tower` or `bearer-auth-actix`. It is a
//! [`TokenVerifier`](bearer_auth::TokenVerifier) for the requests and a
//! [`TokenStore`](bearer_auth::TokenStore) for the account API, so code written against
//! [`MemoryStore`](bearer_auth::MemoryStore) runs on it unchanged.
//!
//! # Features
//!
//! One feature per engine; only the engines enabled are compiled.
//!
//! | feature | engine | default |
//! |---|---|---|
//! | `sqlite` | SQLite (embedded; sqlx's bundled library) | yes |
//! | `postgres` | PostgreSQL | no |
//! | `mysql` | MySQL 8 and MariaDB 10.11 | no |
//!
//! Queries are checked at run time (no sqlx `macros`, no database needed to build).
//! For TLS to the database, enable the sqlx TLS feature of your choice in your own
//! `Cargo.toml`.
//!
//! # Example
//!
//! ```
//! use bearer_auth::{Authenticator, NewToken, TokenStore};
//! use bearer_auth_sqlx::{Pool, SqlStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Your pool: a file, PostgreSQL or MySQL URL, or a sqlx pool of your own (`.into()`).
//! let store = SqlStore::new(Pool::connect("sqlite::memory:").await?);
//! store.migrate().await?; // creates `personal_access_tokens` if it is missing
//!
//! // Committed before the token is returned: `{id}|{40 random}{crc32b}`, shown once.
//! let issued = store.create(NewToken::new(42, "deploy bot")).await?;
//! let header = format!("Bearer {}", issued.plain_text_token().as_str());
//!
//! let auth = Authenticator::new(store.clone());
//! let principal = auth.authenticate([header.as_bytes()]).await?.unwrap();
//! assert_eq!(*principal.owner(), 42);
//!
//! store.revoke(&42, issued.id()).await?;
//! let refused = auth.authenticate([header.as_bytes()]).await.unwrap_err();
//! assert_eq!(refused.status(), 401);
//!
//! // On graceful shutdown: writes the `last_used_at` still batched.
//! store.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # The table
//!
//! `personal_access_tokens` exactly as Laravel 11's Sanctum migration creates it on each
//! engine: `id` (auto-increment `bigint` primary key), `tokenable_type` +
//! `tokenable_id` (Laravel's `morphs`, with their index), `name`, `token` (64
//! characters, unique: the SHA-256 hex of the secret), `abilities` (nullable text, JSON
//! such as `["*"]`), `last_used_at`, `expires_at` (indexed), `created_at`, `updated_at`.
//! [`SqlStore::migrate`] creates it where it is missing and leaves an existing one (a
//! Laravel app's) exactly as it is. The one thing Sanctum has no column for, a second
//! factor still pending, lives in a table of this crate's own,
//! `bearer_auth_pending_second_factors` (`token_id` only, no foreign key), so a Laravel
//! app on the same database keeps working and may drop or recreate its table.
//!
//! A store serves one `tokenable_type` (default `App\Models\User`,
//! [`SqlStoreBuilder::tokenable_type`]); the owner of a key is its `tokenable_id`, a
//! `u64`. Rows of other types are never accepted, listed or touched.
//!
//! # Verifying
//!
//! Every token shape a Sanctum app has issued is accepted: `{id}|{secret}` (with or
//! without `token_prefix` and checksum) and a token without `|` (the whole string is the
//! secret: Airlock's 80 characters, or 40). With a `|`, the id must be digits that fit
//! the id column, else the token is refused without a query. The row is found by the
//! digest of the secret with one query on the unique index, then the id must match: an
//! unknown id and a known id with a wrong secret take the same path. A row whose
//! `expires_at` has passed, or older than the [maximum age](SqlStoreBuilder::max_age)
//! counted from `created_at` (Sanctum's `expiration`), is refused. Abilities: `*` or an
//! exact match.
//!
//! # Timestamps
//!
//! Read and written as Laravel does: naive `Y-m-d H:i:s`, to the second, in the
//! application's zone ([`SqlStoreBuilder::timezone`], UTC by default). On MySQL the
//! columns are `TIMESTAMP`s, which the server converts from the session's `time_zone`;
//! sqlx sets it to `+00:00`, so a Laravel app on the same table should use UTC for its
//! connection too (Laravel's `timezone` database option). A `TIMESTAMP` ends on
//! 2038-01-19: an `expires_at` beyond it is refused at creation
//! ([`StoreError::Invalid`](bearer_auth::StoreError::Invalid)), never stored wrong.
//!
//! # `last_used_at`
//!
//! Sanctum writes `last_used_at` on every authenticated request. Here an accepted token
//! only notes its use in memory; a background task writes each key's latest use at most
//! once per [interval](SqlStoreBuilder::last_used_interval) (60 s by default), in
//! batches, rows locked in id order. No request waits for it. A refused, expired or
//! revoked token is never written, and a write never moves `last_used_at` backwards
//! (another instance may have written a later time). Call [`SqlStore::shutdown`] on
//! graceful shutdown to write what is still batched.
//!
//! # Errors
//!
//! | what failed | on a request | from a store operation |
//! |---|---|---|
//! | unknown, revoked, expired or malformed token | 401 (`Rejection::InvalidToken`) | — |
//! | no such key for this owner | — | `StoreError::NotFound` (404) |
//! | an expiry or owner id the columns cannot hold | — | `StoreError::Invalid` (422) |
//! | the database (error, no connection in time) | 503 (`Rejection::Unavailable`), never 401 | `StoreError::Backend` (503) |
//!
//! A database failure is logged with its cause (target `bearer_auth_sqlx` for store
//! operations; `bearer_auth` for requests, by the adapters), never with a token or its
//! digest.

#![forbid(unsafe_code)]

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!(
    "bearer-auth-sqlx needs at least one engine feature: `sqlite`, `postgres` or `mysql`"
);

mod abilities;
mod cache;
mod error;
mod last_used;
mod notify;
mod pool;
mod schema;
mod store;
mod time;

pub use cache::{
    CacheStats, DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL, DEFAULT_REFUSAL_CACHE_CAPACITY,
};
pub use notify::DEFAULT_NOTIFY_CHANNEL;
pub use pool::{Engine, Pool};
pub use store::{
    DEFAULT_LAST_USED_INTERVAL, DEFAULT_QUERY_TIMEOUT, DEFAULT_TOKENABLE_TYPE, SqlStore,
    SqlStoreBuilder,
};

/// Re-exported: [`SqlStoreBuilder::timezone`] takes its zones.
pub use chrono;
/// Re-exported: the pools [`Pool`] wraps.
pub use sqlx;

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
//! # On an existing Laravel database
//!
//! Point the store at the database the Laravel app uses, with the `tokenable_type` of
//! its token owners and its `token_prefix`, and run [`SqlStore::migrate`]: it leaves
//! Laravel's `personal_access_tokens` exactly as it is (it only checks that the columns
//! are there) and adds this crate's one table of its own. Every token the app issued
//! then verifies here, and keys issued here work in the app.
//!
//! ```no_run
//! use bearer_auth::KeyGenerator;
//! use bearer_auth_sqlx::{Pool, SqlStore, chrono::FixedOffset};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // The app's DB_CONNECTION, DB_HOST, ... as a URL.
//! let pool = Pool::connect("postgres://laravel:secret@127.0.0.1/laravel").await?;
//! let store = SqlStore::builder(pool)
//!     .tokenable_type("App\\Models\\User") // the model that `HasApiTokens`
//!     .key_generator(KeyGenerator::with_prefix("acme_")?) // `sanctum.token_prefix`
//!     .max_age(std::time::Duration::from_secs(60 * 60 * 24 * 30)) // `sanctum.expiration`
//!     .timezone(FixedOffset::east_opt(0).unwrap()) // `app.timezone` (UTC: the default)
//!     .build();
//! store.migrate().await?;
//! # Ok(()) }
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
//! `u64`. Rows of other types are never accepted, listed or touched. The type is
//! compared byte for byte on every engine (on MySQL, whose collation is blind to case,
//! accents and trailing spaces, besides the indexed `=`).
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
//! ([`StoreError::Invalid`](bearer_auth::StoreError::Invalid)), never stored wrong. On
//! every engine, so is one after 9999-12-31 23:59:59 UTC, the last time Laravel's
//! timestamps hold.
//!
//! A timestamp no Laravel app reads as a time (PostgreSQL's `infinity` and `-infinity`,
//! a year past 9999, a MySQL zero date such as a non-strict server stores for an expiry
//! past 2038) makes an `expires_at` a time long past: the key is refused as expired, as
//! Laravel refuses it. In `created_at` and `last_used_at` it reads as no time (with a
//! [maximum age](SqlStoreBuilder::max_age), a key without `created_at` is refused).
//!
//! # `last_used_at`
//!
//! Sanctum writes `last_used_at` on every authenticated request. Here an accepted token
//! only notes its use in memory (once per second per key, the column's precision); a
//! background task writes each key's latest use at most once per
//! [interval](SqlStoreBuilder::last_used_interval) (60 s by default), in batches, rows
//! locked in id order. No request waits for it. A refused, expired or revoked token is
//! never written, and a write never moves `last_used_at` backwards (another instance may
//! have written a later time). A write that fails is kept for the next one.
//!
//! # The cache
//!
//! A verification reads the database once, by the digest of the secret; the answer is
//! then cached in the process, so that the same token is answered from memory, without
//! awaiting ([`verify_now`](bearer_auth::TokenVerifier::verify_now), the adapters' fast
//! path), until the entry's **time to live** ends: **5 s** by default
//! ([`SqlStoreBuilder::cache_ttl`], counted from the query, however often the entry is
//! read). The cache is [quick_cache](https://docs.rs/quick_cache)'s, bounded in entries;
//! a hit is one lookup, checked against the clock reading the verification makes anyway:
//!
//! - **keys in force**, by digest: 10,000 at most ([`SqlStoreBuilder::cache_capacity`]).
//!   Only a token whose secret is a real key's takes an entry. A hit is still checked
//!   against the clock of that moment: the id, `expires_at` and the maximum age, on
//!   every request.
//! - **refusals**, by digest (no such key, another `tokenable_type`, expired): 10,000 at
//!   most, in a cache of their own ([`SqlStoreBuilder::refusal_cache_capacity`], whose
//!   admission keeps a digest asked for again over one-off ones). A client retrying a revoked key again and again costs one query
//!   per time to live, and a flood of made-up tokens fills this cache only: the keys in
//!   force stay cached, and keep being answered from memory, while it runs.
//!
//! Identical requests that miss at the same time make one query: the others wait for
//! its answer, and one of them that gives up (its client went away) leaves the query to
//! the rest. A failure is never cached. An eviction concerns one digest: the answer of
//! its lookup in flight is not kept (a key revoked through this store is never answered
//! from the cache once `revoke` returned), and lookups of other digests lose nothing.
//!
//! **Staleness.** A key created, regenerated, revoked (one or all of an owner's) or
//! whose second factor is confirmed through a store takes effect on that store's
//! instance at once: its entries are evicted by the write itself. On every other
//! instance, and for changes made by another application (a Laravel app revoking a
//! token), it takes effect when the entry's time to live ends: within 5 s by default.
//! On PostgreSQL, the [notifications](#notifications-postgresql) make it within a
//! second. [`SqlStoreBuilder::without_cache`] makes every verification a query (a
//! revoked key refused at once everywhere), and [`SqlStore::cache_stats`] tells what the
//! cache holds and how many queries verifications ran.
//!
//! **While the database is down**, a key answered within the time to live keeps being
//! answered from the cache; any other token gets 503.
//!
//! # Notifications (PostgreSQL)
//!
//! Opt-in: a trigger on `personal_access_tokens` sends the digest of a row on
//! `NOTIFY` when the row is deleted or a column the lookup reads changes (`id`, `token`,
//! `abilities`, `expires_at`, `created_at`, `tokenable_type` or `tokenable_id`; by this
//! crate or any other application, Laravel included), and `*` when the table is
//! truncated; a listener in every instance evicts what it names. A key revoked anywhere
//! is then refused everywhere within a second (a few milliseconds, measured). The
//! trigger never fires on the batched `last_used_at` writes, nor on `name` or
//! `updated_at`: a notifying commit takes a database-wide lock. A second factor
//! confirmed or made pending (a row of this crate's own table deleted or inserted, so
//! also a key created with its second factor pending) notifies too.
//!
//! ```no_run
//! # use bearer_auth_sqlx::{Pool, SqlStore};
//! # async fn run(pool: Pool) -> Result<(), Box<dyn std::error::Error>> {
//! let store = SqlStore::new(pool);
//! store.migrate().await?;
//! // Once, from a deployment step or any one instance (it replaces an older one):
//! store.install_notify_trigger().await?;
//! // In every instance, at start: returns once listening.
//! store.listen_for_changes().await?;
//! # Ok(()) }
//! ```
//!
//! The trigger is plain SQL in the database: the functions `bearer_auth_sqlx_notify()`
//! and `bearer_auth_sqlx_notify_pending()`, and the triggers `bearer_auth_sqlx_notify_delete`,
//! `_update` (`after update of id, token, abilities, expires_at, created_at,
//! tokenable_type, tokenable_id ... when` one of them is distinct from before),
//! `_truncate` on `personal_access_tokens` and `bearer_auth_sqlx_notify_pending` (`after
//! insert or update or delete`) on this crate's table, each given the channel
//! ([`DEFAULT_NOTIFY_CHANNEL`], `bearer_auth_sqlx`, or [`SqlStoreBuilder::notify_channel`])
//! and commented with the version of their definitions. [`SqlStore::install_notify_trigger`]
//! replaces an older installation (functions replaced, triggers dropped and created
//! again), and [`SqlStore::listen_for_changes`] refuses to listen to an older one, which
//! would miss changes: after an upgrade, install it again. To remove it:
//! `drop function bearer_auth_sqlx_notify, bearer_auth_sqlx_notify_pending cascade`.
//!
//! The listener has a connection of its own, made with the pool's options. A listener
//! only reads, so every **5 s** it sends a `select 1` on that connection, which must be
//! answered within the [query timeout](SqlStoreBuilder::query_timeout): a connection
//! whose path silently went (a NAT or load balancer that dropped the flow, a failover:
//! no reset ever comes) is found dead within 5 s plus the query timeout (7 s by
//! default). When it loses its connection or finds it dead, it reconnects, on a new
//! connection (each attempt bounded by the query timeout, then 100 ms before the next,
//! for as long as the database is away), and then empties the whole cache, since what
//! was sent meanwhile is lost. While it is away, the cache answers only within the
//! default time to live ([`DEFAULT_CACHE_TTL`], 5 s from an entry's query), however
//! long the one the notifications allowed: a key revoked elsewhere meanwhile is refused
//! here within 5 s, and a key cached just before a database outage still answers for
//! those 5 s. Listening refuses a trigger that is missing, of an older version, or
//! disabled (`alter table … disable trigger`). [`SqlStore::shutdown`] waits at most the query timeout
//! for the listener's connection to close. The notifications carry the digests stored
//! in the table, never a token.
//!
//! # Graceful shutdown
//!
//! Call [`SqlStore::shutdown`] once the server stopped taking requests (on SIGTERM or
//! Ctrl-C): it writes the `last_used_at` still batched and stops the listener. A store
//! dropped without it loses the uses not yet written (at most one interval's worth).
//!
//! ```no_run
//! # async fn run(store: bearer_auth_sqlx::SqlStore, serve: impl std::future::Future<Output = ()>) {
//! serve.await; // e.g. axum::serve(..).with_graceful_shutdown(signal)
//! if let Err(error) = store.shutdown().await {
//!     eprintln!("last_used_at not written: {error}");
//! }
//! # }
//! ```
//!
//! # Errors
//!
//! | what failed | on a request | from a store operation |
//! |---|---|---|
//! | unknown, revoked, expired or malformed token | 401 (`Rejection::InvalidToken`) | — |
//! | no such key for this owner | — | `StoreError::NotFound` (404) |
//! | an expiry or owner id the columns cannot hold; notifications on another engine, or without their trigger | — | `StoreError::Invalid` (422) |
//! | the database: an error, a lost connection, no connection from the pool or no answer within the [query timeout](SqlStoreBuilder::query_timeout) (2 s by default) | 503 (`Rejection::Unavailable`), never 401 | `StoreError::Backend` (503) |
//!
//! A database failure is logged with its cause (target `bearer_auth_sqlx` for store
//! operations; `bearer_auth` for requests, by the adapters), never with a token or its
//! digest. When the database is back, the next query works: no restart is needed (a
//! pool made by [`Pool::connect`] waits at most 2 s for a connection; sqlx's default is
//! 30 s, so set a short `acquire_timeout` on a pool of your own too, though the query
//! timeout bounds the wait either way). A key creation whose connection is lost while
//! it commits may have been stored or not, as with any database client: the token is
//! never shown then.

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

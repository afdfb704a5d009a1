//! The application: configuration, shared state, the router and serving it.

use std::{fmt, future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, FromRequestParts, Request, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use bearer_auth::{AccessToken, MemoryStore, StoreError, TokenStore, TokenVerifier};
use bearer_auth_sqlx::SqlStore;
use bearer_auth_tower::BearerAuthLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::{
    crypto::{Encrypter, KeyFileError},
    dashboard,
    db::{self, Db},
    errors::{self, ApiError, json_response},
    openapi, routes, serve,
    throttle::Throttle,
    users::UserId,
};

/// The principal of an accepted token: a key of the user `owner()`.
pub type Token = AccessToken<UserId>;

/// What the service needs of a key store: the core's [`TokenStore`] for users' ids, its
/// verifier, and a flush for graceful shutdown.
#[bearer_auth::async_trait]
pub trait KeyStore:
    TokenStore<Owner = UserId> + TokenVerifier<Principal = Token> + fmt::Debug
{
    /// Writes what is pending (`last_used_at`) before the process stops.
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[bearer_auth::async_trait]
impl KeyStore for MemoryStore<UserId> {}

#[bearer_auth::async_trait]
impl KeyStore for SqlStore {
    /// Writes the batched `last_used_at` ([`SqlStore::shutdown`]).
    async fn flush(&self) -> Result<(), StoreError> {
        let written = self.shutdown().await?;
        tracing::info!(written, "last_used_at flushed");
        Ok(())
    }
}

/// The key store, shared.
pub type Keys = Arc<dyn KeyStore>;

/// Where the service listens and keeps its data, from the environment.
#[derive(Clone)]
pub struct Config {
    /// `$BIND_ADDR`, by default `127.0.0.1:3000`.
    pub bind_addr: String,
    /// `$DATABASE_URL`, by default [`DEFAULT_DATABASE_URL`].
    pub database_url: String,
    /// `$APP_KEY`: Laravel's key (`base64:…`). A secret: `Debug` does not show it.
    pub app_key: Option<String>,
    /// `$APP_KEY_FILE`: where the key is kept when `APP_KEY` is unset. By default beside
    /// the SQLite file (`<file>.key`), or `account_api.key` in the working directory for
    /// a server database.
    pub key_file: Option<PathBuf>,
    /// `$APP_NAME`, by default `account_api`: the issuer in two-factor URLs.
    pub app_name: String,
    /// The largest request body accepted, in bytes (64 KiB).
    pub body_limit: usize,
    /// `$KEYS_NOTIFY` (`1` or `true`; PostgreSQL only): installs the key store's notify
    /// trigger and listens to it, so that a key revoked or regenerated on one instance
    /// (or by a Laravel app on the same table) is refused by every instance within a
    /// second, instead of within the cache's time to live (5 s).
    pub keys_notify: bool,
    /// What one client may make the service do, and how long it waits for a client.
    pub limits: Limits,
}

/// Bounds on what clients can make the service do, and on how long it waits for them.
/// The defaults suit a public service; tests shorten them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Requests to `POST /v1/auth/register`, and apart from them to
    /// `POST /v1/auth/login`, from one client address per minute, whatever their outcome:
    /// then 429 with `Retry-After` until the minute ends. 20.
    pub per_address_per_minute: u32,
    /// Password hashes (bcrypt, about a quarter of a second of a CPU each) computed at
    /// once: the number of CPUs.
    pub password_jobs: usize,
    /// How long a request waits for one of those slots before it is answered 503 with
    /// `Retry-After`: 5 s.
    pub password_wait: Duration,
    /// How long a login token waits for its second factor: 10 minutes from the login.
    /// Then the challenge refuses it (401) and it is revoked.
    pub pending_token_ttl: Duration,
    /// How long a client may take to send a request's headers (and an idle kept-alive
    /// connection may wait for the next request) before its connection is closed: 10 s.
    pub header_timeout: Duration,
    /// How long a request may take, its body included, before it is answered 408: 30 s.
    pub request_timeout: Duration,
    /// After a shutdown signal, how long requests in flight may take to finish before
    /// their connections are dropped; `last_used_at` is flushed either way: 10 s.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_address_per_minute: 20,
            password_jobs: std::thread::available_parallelism().map_or(1, usize::from),
            password_wait: Duration::from_secs(5),
            pending_token_ttl: Duration::from_secs(10 * 60),
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// The database used when `$DATABASE_URL` is unset: a SQLite file in the working
/// directory, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://account_api.sqlite3";

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bind_addr", &self.bind_addr)
            .field("database_url", &redact_url(&self.database_url))
            .field("app_key", &self.app_key.as_ref().map(|_| "******"))
            .field("key_file", &self.key_file)
            .field("app_name", &self.app_name)
            .field("body_limit", &self.body_limit)
            .field("keys_notify", &self.keys_notify)
            .field("limits", &self.limits)
            .finish()
    }
}

/// A URL without its password.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:******{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind_addr: "127.0.0.1:3000".to_owned(),
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            app_key: None,
            key_file: None,
            app_name: "account_api".to_owned(),
            body_limit: 64 * 1024,
            keys_notify: false,
            limits: Limits::default(),
        }
    }
}

impl Config {
    /// The configuration from `$BIND_ADDR`, `$DATABASE_URL`, `$APP_KEY`, `$APP_KEY_FILE`,
    /// `$APP_NAME` and `$KEYS_NOTIFY`, with the defaults for those unset or empty.
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let defaults = Self::default();
        Self {
            bind_addr: var("BIND_ADDR").unwrap_or(defaults.bind_addr),
            database_url: var("DATABASE_URL").unwrap_or(defaults.database_url),
            app_key: var("APP_KEY"),
            key_file: var("APP_KEY_FILE").map(PathBuf::from),
            app_name: var("APP_NAME").unwrap_or(defaults.app_name),
            body_limit: defaults.body_limit,
            keys_notify: var("KEYS_NOTIFY").is_some_and(|v| v == "1" || v == "true"),
            limits: defaults.limits,
        }
    }

    /// A configuration for this database, with the other defaults.
    pub fn with_database(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            ..Self::default()
        }
    }

    /// The file that keeps the key when `APP_KEY` is unset.
    pub fn key_path(&self) -> PathBuf {
        if let Some(path) = &self.key_file {
            return path.clone();
        }
        match db::sqlite_file(&self.database_url) {
            Some(file) => {
                let mut name = file.file_name().unwrap_or_default().to_os_string();
                name.push(".key");
                file.with_file_name(name)
            }
            None => PathBuf::from("account_api.key"),
        }
    }
}

/// Why the service could not start.
#[derive(Debug)]
pub enum StartError {
    /// The database could not be reached or migrated.
    Database(sqlx::Error),
    /// No encryption key.
    Key(KeyFileError),
    /// The key store's table could not be created or is not Sanctum's.
    Store(StoreError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Database(e) => write!(f, "database: {e}"),
            Self::Key(e) => write!(f, "encryption key: {e}"),
            Self::Store(e) => write!(f, "personal_access_tokens: {e}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Database(e) => Some(e),
            Self::Key(e) => Some(e),
            Self::Store(e) => Some(e),
        }
    }
}

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) db: Db,
    pub(crate) keys: Keys,
    pub(crate) encrypter: Encrypter,
    pub(crate) issuer: String,
    /// Failed logins, by email (folded, see `routes::auth`) and client address.
    pub(crate) logins: Throttle,
    /// Failed two-factor challenges, by user (whichever pending token they came with).
    pub(crate) challenges: Throttle,
    /// Failed two-factor challenges, by pending token: at 5 the token is revoked.
    pub(crate) challenge_tokens: Throttle,
    /// Failed password confirmations, by user.
    pub(crate) passwords: Throttle,
    /// Registrations, by client address.
    pub(crate) register_addresses: Throttle,
    /// Logins, by client address.
    pub(crate) login_addresses: Throttle,
    /// Slots for password hashing (bcrypt).
    pub(crate) password_jobs: Arc<tokio::sync::Semaphore>,
    pub(crate) limits: Limits,
}

/// The handlers' state.
pub(crate) type AppState = Arc<Shared>;

/// The service: its router, and what must be closed when it stops.
#[derive(Debug)]
pub struct App {
    router: Router,
    shared: AppState,
}

impl App {
    /// Connects to the database, creates the tables that are missing (Laravel's `users`,
    /// Sanctum's `personal_access_tokens`), loads or makes the encryption key, and builds
    /// the router, with the keys in a [`SqlStore`] on the same database.
    pub async fn start(config: &Config) -> Result<Self, StartError> {
        let db = Db::connect(&config.database_url)
            .await
            .map_err(StartError::Database)?;
        db.migrate().await.map_err(StartError::Database)?;
        let key_path = config.key_path();
        let encrypter = Encrypter::load_or_create(config.app_key.as_deref(), &key_path)
            .map_err(StartError::Key)?;
        if config.app_key.is_none() {
            tracing::info!(file = %key_path.display(), "encryption key (APP_KEY unset)");
            if db::readable_by_others(&key_path) {
                tracing::warn!(
                    file = %key_path.display(),
                    "the encryption key file is readable by others than its owner: chmod 600 it"
                );
            }
        }
        if let Some(file) = db::sqlite_file(&config.database_url)
            && db::readable_by_others(&file)
        {
            tracing::warn!(
                file = %file.display(),
                "the database file is readable by others than its owner: chmod 600 it (and its -wal and -shm)"
            );
        }
        // The store's defaults: answers cached for 5 s, queries bounded to 2 s.
        let store = SqlStore::new(db.pool().to_store_pool());
        store.migrate().await.map_err(StartError::Store)?;
        if config.keys_notify {
            store
                .install_notify_trigger()
                .await
                .map_err(StartError::Store)?;
            store
                .listen_for_changes()
                .await
                .map_err(StartError::Store)?;
        }
        Ok(Self::new(db, Arc::new(store), encrypter, config))
    }

    /// The service on a database and a key store made elsewhere.
    pub fn new(db: Db, keys: Keys, encrypter: Encrypter, config: &Config) -> Self {
        let minute = Duration::from_secs(60);
        let limits = config.limits.clone();
        let shared = Arc::new(Shared {
            db,
            keys,
            encrypter,
            issuer: config.app_name.clone(),
            logins: Throttle::new(5, minute),
            challenges: Throttle::new(5, minute),
            challenge_tokens: Throttle::new(5, limits.pending_token_ttl),
            passwords: Throttle::new(5, minute),
            register_addresses: Throttle::new(limits.per_address_per_minute, minute),
            login_addresses: Throttle::new(limits.per_address_per_minute, minute),
            password_jobs: Arc::new(tokio::sync::Semaphore::new(limits.password_jobs.max(1))),
            limits,
        });
        Self {
            router: router(&shared, config.body_limit),
            shared,
        }
    }

    /// The router: serve it with client addresses
    /// (`into_make_service_with_connect_info::<SocketAddr>`), as [`serve`](Self::serve)
    /// does, for the login throttle to count by address.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.shared.db
    }

    /// Serves on `listener` until `shutdown` completes, lets requests in flight finish,
    /// then flushes the key store (`last_used_at`) and closes the database.
    ///
    /// Slow clients are bounded by [`Limits`]: headers within `header_timeout` (else the
    /// connection is closed), the whole request within `request_timeout` (else 408), and
    /// after `shutdown` the requests in flight get `shutdown_grace` before their
    /// connections are dropped; the flush happens either way.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let limits = self.shared.limits.clone();
        let served = serve::serve(listener, self.router, &limits, shutdown).await;
        if let Err(e) = self.shared.keys.flush().await {
            tracing::error!(error = %e, "flushing the key store");
        }
        self.shared.db.close().await;
        served
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}

/// The ability that the routes managing the account require: every ability.
pub const ACCOUNT_ABILITY: &str = "*";

fn router(shared: &AppState, body_limit: usize) -> Router {
    let auth = BearerAuthLayer::new(Arc::clone(&shared.keys));
    let pending = OpenApiRouter::new()
        .routes(utoipa_axum::routes!(routes::two_factor::challenge))
        .route_layer(auth.clone().accept_pending_second_factor());
    // Any valid token: who am I, and log this token out.
    let protected = OpenApiRouter::new()
        .routes(utoipa_axum::routes!(routes::auth::user))
        .routes(utoipa_axum::routes!(routes::auth::logout))
        .route_layer(auth.clone());
    // Managing the account (two-factor, the keys) takes a token with every ability, `*`:
    // login tokens have it, and so do keys made without `abilities`. A key limited to
    // `servers:read` must not be able to lock its owner out or mint keys.
    let account = OpenApiRouter::new()
        .routes(utoipa_axum::routes!(routes::two_factor::enable))
        .routes(utoipa_axum::routes!(routes::two_factor::confirm))
        .routes(utoipa_axum::routes!(routes::two_factor::disable))
        .routes(utoipa_axum::routes!(routes::two_factor::qr_code))
        .routes(utoipa_axum::routes!(
            routes::keys::list_keys,
            routes::keys::create_key
        ))
        .routes(utoipa_axum::routes!(routes::keys::regenerate_key))
        .routes(utoipa_axum::routes!(routes::keys::revoke_key))
        .route_layer(auth.require_all([ACCOUNT_ABILITY]));
    let account_operations = openapi::operations(account.get_openapi());
    let (router, api) = OpenApiRouter::with_openapi(openapi::base())
        .routes(utoipa_axum::routes!(routes::auth::register))
        .routes(utoipa_axum::routes!(routes::auth::login))
        .merge(protected)
        .merge(account)
        .merge(pending)
        .split_for_parts();
    let document = openapi::document(api, &account_operations);
    router
        .merge(dashboard::routes())
        .route(
            openapi::PATH,
            get(move || {
                let document = document.clone();
                async move { json_response(axum::http::StatusCode::OK, document) }
            }),
        )
        .fallback(errors::not_found)
        .method_not_allowed_fallback(errors::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(Arc::clone(shared))
        .layer(middleware::from_fn_with_state(
            shared.limits.request_timeout,
            request_timeout,
        ))
        .layer(middleware::map_response(private_headers))
}

/// Answers 408 `{"message":"Request Timeout."}` and closes the connection when a request,
/// its body included, takes longer than `limit`: a client that sends a body slower than
/// that (or never the bytes its `Content-Length` promised) holds nothing for long.
async fn request_timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = ApiError::Status(
                StatusCode::REQUEST_TIMEOUT,
                std::borrow::Cow::Borrowed("Request Timeout."),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// Every answer holds what a cache must not keep (tokens, two-factor secrets, recovery
/// codes): `Cache-Control: no-store`, unless the route chose its own (the dashboard's
/// assets); and none is to be sniffed as another type: `X-Content-Type-Options: nosniff`.
async fn private_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The client's address, when the server was started with connect info.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_beside_the_sqlite_file() {
        let config = Config::with_database("sqlite://data/app.sqlite3");
        assert_eq!(config.key_path(), PathBuf::from("data/app.sqlite3.key"));
        let config = Config::with_database("postgres://u@h/db");
        assert_eq!(config.key_path(), PathBuf::from("account_api.key"));
        let config = Config {
            key_file: Some("/run/key".into()),
            ..Config::default()
        };
        assert_eq!(config.key_path(), PathBuf::from("/run/key"));
    }

    #[test]
    fn debug_hides_secrets() {
        let config = Config {
            app_key: Some("base64:secret".into()),
            database_url: "postgres://app:hunter2@db/app".into(),
            ..Config::default()
        };
        let text = format!("{config:?}");
        assert!(
            !text.contains("secret") && !text.contains("hunter2"),
            "{text}"
        );
        assert!(text.contains("postgres://app:******@db/app"), "{text}");
    }
}

//! [`SqlStore`]: keys on Laravel Sanctum's `personal_access_tokens` table.

// The id columns are `i64` on SQLite and PostgreSQL and `u64` on MySQL: the conversions
// written once for all three are the identity on MySQL.
#![allow(clippy::useless_conversion)]

use std::{
    fmt,
    future::Future,
    sync::{
        Arc, Weak,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use bearer_auth::{
    Abilities, AccessToken, BearerToken, BearerTokenRef, DEFAULT_ERROR_LOG_INTERVAL,
    ErrorLogThrottle, InvalidReason, IssuedToken, KeyGenerator, NewToken, Rejection, StoreError,
    TokenHash, TokenInfo, TokenParts, TokenStore, TokenVerifier,
};
use chrono::NaiveDateTime;
use sqlx::Row;
use tokio::time::{Instant, MissedTickBehavior};

use crate::{
    CacheStats, Engine, Pool, abilities,
    cache::{Cache, CacheConfig, Found, Loaded},
    error::{BackendError, Failure},
    last_used::{Pending, Recorder},
    notify::{self, Listener},
    schema,
    time::{self, Clock},
};

/// The `tokenable_type` a store serves unless told otherwise: Laravel's user model.
pub const DEFAULT_TOKENABLE_TYPE: &str = "App\\Models\\User";

/// How often `last_used_at` is written, at most, per key, unless told otherwise.
pub const DEFAULT_LAST_USED_INTERVAL: Duration = Duration::from_secs(60);

/// How long a database operation may take, waiting for a connection from the pool
/// included, unless told otherwise; past it, a request is answered 503.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `$body` with `$p` bound to the engine's sqlx pool, `$Id` to the Rust type of its
/// `bigint` id columns and `$Ts` to the type its timestamp columns decode to (sqlx reads
/// MySQL's `TIMESTAMP` only as a `DateTime<Utc>`, holding the session's wall-clock time,
/// `+00:00` by default).
macro_rules! with_pool {
    ($pool:expr, $p:ident, $Id:ident, $Ts:ident => $body:expr) => {
        match $pool {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite($p) => {
                #[allow(dead_code)]
                type $Id = i64;
                #[allow(dead_code)]
                type $Ts = NaiveDateTime;
                $body
            }
            #[cfg(feature = "postgres")]
            Pool::Postgres($p) => {
                #[allow(dead_code)]
                type $Id = i64;
                #[allow(dead_code)]
                type $Ts = NaiveDateTime;
                $body
            }
            #[cfg(feature = "mysql")]
            Pool::MySql($p) => {
                #[allow(dead_code)]
                type $Id = u64;
                #[allow(dead_code)]
                type $Ts = chrono::DateTime<chrono::Utc>;
                $body
            }
        }
    };
}

/// A decoded timestamp column, as the naive wall-clock time it holds.
trait WallClock {
    fn wall_clock(self) -> NaiveDateTime;
}

impl WallClock for NaiveDateTime {
    fn wall_clock(self) -> NaiveDateTime {
        self
    }
}

impl WallClock for chrono::DateTime<chrono::Utc> {
    fn wall_clock(self) -> NaiveDateTime {
        self.naive_utc()
    }
}

/// Keys on Laravel Sanctum's `personal_access_tokens` table, on SQLite, PostgreSQL or
/// MySQL/MariaDB: a [`TokenVerifier`] for the requests and a [`TokenStore`] for the
/// account API.
///
/// Cloning is cheap: clones share the pool and the batched `last_used_at` writes. See the
/// [crate documentation](crate) for the schema, the timestamps and what each error
/// answers.
#[derive(Clone)]
pub struct SqlStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    engine: Engine,
    sql: Queries,
    tokenable_type: Box<str>,
    keys: KeyGenerator,
    max_age: Option<Duration>,
    clock: Clock,
    recorder: Arc<Recorder>,
    cache: Arc<Cache>,
    query_timeout: Duration,
    notify_channel: Box<str>,
    listener: Listener,
    /// One warning per kind of failed operation per interval: an outage does not flood
    /// the log.
    error_log: ErrorLogThrottle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Ends the writer task; what it had not written is lost (see `shutdown`).
        drop(self.recorder.stop());
        drop(self.listener.stop());
    }
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("engine", &self.inner.engine)
            .field("tokenable_type", &self.inner.tokenable_type)
            .field("prefix", &self.inner.keys.prefix())
            .field("max_age", &self.inner.max_age)
            .field("timezone", &self.inner.clock)
            .field("last_used_interval", &self.inner.recorder.interval)
            .field("cache_ttl", &self.inner.cache.config.ttl)
            .field("cache_capacity", &self.inner.cache.config.capacity)
            .field(
                "refusal_cache_capacity",
                &self.inner.cache.config.refusal_capacity,
            )
            .field("query_timeout", &self.inner.query_timeout)
            .field("notify_channel", &self.inner.notify_channel)
            .finish_non_exhaustive()
    }
}

/// Configures a [`SqlStore`]: [`SqlStore::builder`].
#[derive(Debug)]
pub struct SqlStoreBuilder {
    pool: Pool,
    tokenable_type: Box<str>,
    keys: KeyGenerator,
    max_age: Option<Duration>,
    clock: Clock,
    last_used_interval: Duration,
    cache: CacheConfig,
    query_timeout: Duration,
    notify_channel: Box<str>,
}

impl SqlStoreBuilder {
    /// The `tokenable_type` whose keys this store serves (default
    /// [`DEFAULT_TOKENABLE_TYPE`], `App\Models\User`): keys it creates get it, and rows of
    /// any other type are never accepted, listed or touched. The owner of a key is its
    /// `tokenable_id`.
    pub fn tokenable_type(mut self, tokenable_type: impl Into<Box<str>>) -> Self {
        self.tokenable_type = tokenable_type.into();
        self
    }

    /// Issues keys with this generator (Sanctum's `token_prefix`:
    /// [`KeyGenerator::with_prefix`]). Verifying never requires the prefix.
    pub fn key_generator(mut self, keys: KeyGenerator) -> Self {
        self.keys = keys;
        self
    }

    /// Refuses keys created more than `max_age` ago, counted from `created_at`, whatever
    /// their own `expires_at` (Sanctum's `expiration`, in minutes there).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// The zone of the naive timestamps in the table: Laravel's `app.timezone` (default
    /// UTC). Any [`chrono::TimeZone`]: [`chrono::Utc`], a [`chrono::FixedOffset`], or a
    /// named zone from the `chrono-tz` crate.
    pub fn timezone<Tz>(mut self, zone: Tz) -> Self
    where
        Tz: chrono::TimeZone + fmt::Debug + Send + Sync + 'static,
        Tz::Offset: Send + Sync,
    {
        self.clock = Clock::new(zone);
        self
    }

    /// Writes a key's `last_used_at` at most once per `interval` (default
    /// [`DEFAULT_LAST_USED_INTERVAL`], 60 s; at least 1 ms, at most a year), in batches,
    /// from a background task.
    pub fn last_used_interval(mut self, interval: Duration) -> Self {
        const YEAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);
        self.last_used_interval = interval.clamp(Duration::from_millis(1), YEAR);
        self
    }

    /// How long a cached answer is used (default [`DEFAULT_CACHE_TTL`], 5 s), counted
    /// from the query that brought it, however often it is read: the longest a key
    /// revoked, regenerated or changed on another instance, or by another application,
    /// stays accepted here as it was, unless [notifications](SqlStore::listen_for_changes)
    /// evict it sooner. Changes made through this store take effect here at once.
    /// `Duration::ZERO` caches nothing.
    ///
    /// [`DEFAULT_CACHE_TTL`]: crate::DEFAULT_CACHE_TTL
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache.ttl = ttl;
        self
    }

    /// How many keys in force are cached at most (default [`DEFAULT_CACHE_CAPACITY`],
    /// 10,000); 0 caches none. Only a token whose secret is a real key's takes an entry,
    /// so no flood of made-up tokens can push a key out of it.
    ///
    /// [`DEFAULT_CACHE_CAPACITY`]: crate::DEFAULT_CACHE_CAPACITY
    pub fn cache_capacity(mut self, entries: u64) -> Self {
        self.cache.capacity = entries;
        self
    }

    /// How many refused tokens (by digest) are cached at most, in a cache of their own
    /// (default [`DEFAULT_REFUSAL_CACHE_CAPACITY`], 10,000); 0 caches none. A refused
    /// token retried again and again then costs one query per
    /// [time to live](Self::cache_ttl).
    ///
    /// [`DEFAULT_REFUSAL_CACHE_CAPACITY`]: crate::DEFAULT_REFUSAL_CACHE_CAPACITY
    pub fn refusal_cache_capacity(mut self, entries: u64) -> Self {
        self.cache.refusal_capacity = entries;
        self
    }

    /// No cache: every verification queries the database, and a revoked key is refused
    /// at once on every instance. Identical concurrent verifications still share one
    /// query.
    pub fn without_cache(mut self) -> Self {
        self.cache.capacity = 0;
        self.cache.refusal_capacity = 0;
        self
    }

    /// How long one database operation may take, waiting for a connection from the pool
    /// included (default [`DEFAULT_QUERY_TIMEOUT`], 2 s; at least 1 ms). Past it, a
    /// request is answered 503 ([`Rejection::Unavailable`]) and a store operation fails
    /// with [`StoreError::Backend`]. sqlx's own pool waits up to 30 s for a connection
    /// by default; this bounds that wait too. [`SqlStore::migrate`] and
    /// [`prune_expired`](TokenStore::prune_expired) are not bounded by it.
    pub fn query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The PostgreSQL channel of the notifications ([`SqlStore::install_notify_trigger`],
    /// [`SqlStore::listen_for_changes`]); default [`DEFAULT_NOTIFY_CHANNEL`],
    /// `bearer_auth_sqlx`. Lower-case letters, digits and `_`, at most 63, not starting
    /// with a digit; checked when the trigger is installed or the listener started.
    ///
    /// [`DEFAULT_NOTIFY_CHANNEL`]: crate::DEFAULT_NOTIFY_CHANNEL
    pub fn notify_channel(mut self, channel: impl Into<Box<str>>) -> Self {
        self.notify_channel = channel.into();
        self
    }

    /// The store. It runs no query until it is used; the task that writes
    /// `last_used_at` starts with the first accepted token.
    pub fn build(self) -> SqlStore {
        let engine = self.pool.engine();
        SqlStore {
            inner: Arc::new(Inner {
                sql: Queries::new(engine, &self.tokenable_type),
                pool: self.pool,
                engine,
                tokenable_type: self.tokenable_type,
                keys: self.keys,
                max_age: self.max_age,
                clock: self.clock,
                recorder: Arc::new(Recorder::new(self.last_used_interval)),
                cache: Arc::new(Cache::new(self.cache)),
                query_timeout: self.query_timeout,
                notify_channel: self.notify_channel,
                listener: Listener::default(),
                error_log: ErrorLogThrottle::new(DEFAULT_ERROR_LOG_INTERVAL),
            }),
        }
    }
}

/// What a verification reads of a row: everything needed to accept or refuse it. The
/// digest and the `tokenable_type` were matched by the query.
#[derive(Debug)]
pub(crate) struct TokenRow {
    pub(crate) id: u64,
    pub(crate) owner: u64,
    pub(crate) abilities: Abilities,
    pub(crate) expires_at: Option<SystemTime>,
    pub(crate) created_at: Option<SystemTime>,
    pub(crate) second_factor_pending: bool,
    /// The Unix second of the last use noted for `last_used_at` through this row: a
    /// cached row notes one use per second at most, the column's precision.
    pub(crate) noted: AtomicI64,
}

impl SqlStore {
    /// A store on `pool` with the defaults: `App\Models\User`, keys without a prefix, no
    /// maximum age, UTC, `last_used_at` written at most once a minute per key, answers
    /// cached for 5 s (10,000 keys, 10,000 refusals), queries bounded to 2 s.
    pub fn new(pool: impl Into<Pool>) -> Self {
        Self::builder(pool).build()
    }

    /// Configures a store on `pool`.
    pub fn builder(pool: impl Into<Pool>) -> SqlStoreBuilder {
        SqlStoreBuilder {
            pool: pool.into(),
            tokenable_type: DEFAULT_TOKENABLE_TYPE.into(),
            keys: KeyGenerator::new(),
            max_age: None,
            clock: Clock::default(),
            last_used_interval: DEFAULT_LAST_USED_INTERVAL,
            cache: CacheConfig::default(),
            query_timeout: DEFAULT_QUERY_TIMEOUT,
            notify_channel: notify::DEFAULT_NOTIFY_CHANNEL.into(),
        }
    }

    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn cache(&self) -> &Arc<Cache> {
        &self.inner.cache
    }

    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn timeout(&self) -> Duration {
        self.inner.query_timeout
    }

    pub(crate) fn channel(&self) -> &str {
        &self.inner.notify_channel
    }

    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn listener(&self) -> &Listener {
        &self.inner.listener
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        self.inner.engine
    }

    /// The `tokenable_type` served.
    pub fn tokenable_type(&self) -> &str {
        &self.inner.tokenable_type
    }

    /// Creates `personal_access_tokens` as Laravel 11's Sanctum migration does, if there
    /// is no such table, and this crate's table of pending second factors. An existing
    /// `personal_access_tokens` (a Laravel app's) is left exactly as it is. Then checks
    /// that the table has every column the store uses: [`StoreError::Invalid`] if not
    /// (a Sanctum 2 table lacks `expires_at`), [`StoreError::Backend`] if the database
    /// failed. Safe to run from several instances at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.create_tables()
            .await
            .map_err(|e| self.backend("migrate", e))?;
        let probe = with_pool!(&self.inner.pool, p, _Id, _Ts => {
            sqlx::query(schema::PROBE).fetch_optional(p).await.map(drop)
        });
        match probe {
            Ok(()) => Ok(()),
            Err(sqlx::Error::Database(e)) => Err(StoreError::Invalid(
                format!("`{}` is not Laravel Sanctum's table: {e}", schema::TABLE).into(),
            )),
            Err(e) => Err(self.backend("migrate", e)),
        }
    }

    async fn create_tables(&self) -> Result<(), sqlx::Error> {
        match &self.inner.pool {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => {
                // Writing from the start: a deferred transaction that reads, then writes,
                // would fail at once (SQLITE_BUSY) while another instance migrates.
                let mut tx = p.begin_with("begin immediate").await?;
                let exists = sqlx::query(
                    "select name from sqlite_master where type = 'table' and name = 'personal_access_tokens'",
                )
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
                if !exists {
                    for statement in schema::SQLITE {
                        sqlx::query(statement).execute(&mut *tx).await?;
                    }
                }
                sqlx::query(schema::SQLITE_PENDING)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => {
                let mut tx = p.begin().await?;
                // One migration at a time per schema; the lock ends with the transaction.
                sqlx::query(
                    "select pg_advisory_xact_lock(hashtext('bearer_auth_sqlx migrate ' || current_schema()))",
                )
                .execute(&mut *tx)
                .await?;
                let exists: bool =
                    sqlx::query_scalar("select to_regclass('personal_access_tokens') is not null")
                        .fetch_one(&mut *tx)
                        .await?;
                if !exists {
                    for statement in schema::POSTGRES {
                        sqlx::query(statement).execute(&mut *tx).await?;
                    }
                }
                sqlx::query(schema::POSTGRES_PENDING)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(p) => {
                // DDL is not transactional on MySQL: each statement stands alone and
                // is `if not exists`.
                let exists = sqlx::query(
                    "select table_name from information_schema.tables where table_schema = database() and table_name = 'personal_access_tokens'",
                )
                .fetch_optional(p)
                .await?
                .is_some();
                if !exists {
                    for statement in schema::MYSQL {
                        sqlx::query(statement).execute(p).await?;
                    }
                }
                sqlx::query(schema::MYSQL_PENDING).execute(p).await?;
                Ok(())
            }
        }
    }

    /// Writes now the `last_used_at` of every key used since the last write, in one
    /// transaction per few hundred keys; how many rows it updated. A write never moves
    /// `last_used_at` backwards (another instance may have written a later time). On a
    /// database error the uses are kept for the next write.
    pub async fn flush(&self) -> Result<u64, StoreError> {
        let batch = self.inner.recorder.drain();
        if batch.is_empty() {
            return Ok(0);
        }
        match self.write_last_used(&batch).await {
            Ok(written) => Ok(written),
            Err(e) => {
                self.inner.recorder.requeue(batch);
                Err(self.backend("last_used_at write", e))
            }
        }
    }

    /// Stops the background writer of `last_used_at` and [flushes](Self::flush) what it
    /// had not written, and stops the [notifications listener](Self::listen_for_changes).
    /// Call it on graceful shutdown (SIGTERM, Ctrl-C), after the server stopped taking
    /// requests. The store keeps working afterwards, but uses are then written only by
    /// explicit calls to [`flush`](Self::flush), and the cache is no longer evicted by
    /// notifications.
    pub async fn shutdown(&self) -> Result<u64, StoreError> {
        if let Some(task) = self.inner.listener.stop() {
            drop(task.await);
        }
        if let Some(task) = self.inner.recorder.stop() {
            // The task ends at its next wait; a panic in it is not ours to report.
            drop(task.await);
        }
        self.flush().await
    }

    /// What the cache holds, and how many queries verifications ran: a gauge for
    /// monitoring (a hit rate falling, refusals piling up under a flood).
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// Installs (or replaces) the PostgreSQL trigger that notifies every instance
    /// [listening](Self::listen_for_changes) when a row is deleted or a column a lookup reads
    /// changes, or a second factor is made pending or confirmed, by whatever application; never
    /// on the `last_used_at` writes. Opt-in: run it once, after [`migrate`](Self::migrate),
    /// from a deployment step or one instance; see the [crate documentation](crate#notifications-postgresql)
    /// for the SQL it runs. [`StoreError::Invalid`] on another engine or for a channel
    /// name that is not an identifier.
    pub async fn install_notify_trigger(&self) -> Result<(), StoreError> {
        notify::install(self).await
    }

    /// Starts evicting the cache on the notifications of the trigger
    /// ([`install_notify_trigger`](Self::install_notify_trigger)): a key revoked,
    /// regenerated, changed or deleted anywhere is refused here within a second, instead
    /// of within the [time to live](SqlStoreBuilder::cache_ttl). Returns once listening
    /// (the cache is emptied then, and whenever the listener reconnects, since
    /// notifications sent while it was away are lost). The listener has its own
    /// connection, made with the pool's options, and runs until
    /// [`shutdown`](Self::shutdown) or the store is dropped; calling this again restarts
    /// it. [`StoreError::Invalid`] on another engine, or when the trigger is missing or older;
    /// [`StoreError::Backend`] when the database cannot be reached.
    pub async fn listen_for_changes(&self) -> Result<(), StoreError> {
        notify::listen(self).await
    }

    /// How many keys have a use not yet written to `last_used_at`.
    pub fn unwritten_uses(&self) -> usize {
        self.inner.recorder.len()
    }

    async fn write_last_used(&self, batch: &[Pending]) -> Result<u64, Failure> {
        /// Rows per transaction: row locks held briefly, few commits.
        const CHUNK: usize = 256;
        let sql = self.inner.sql.touch.as_str();
        let mut written = 0;
        for chunk in batch.chunks(CHUNK) {
            // The timeout per transaction: a large batch takes several.
            written += self.timed(async {
                with_pool!(&self.inner.pool, p, Id, Ts => {
                    let mut tx = p.begin().await?;
                    let mut n = 0;
                    for &(id, at, digest) in chunk {
                        let id = Id::try_from(id).map_err(not_representable)?;
                        let at = self.inner.clock.naive(UNIX_EPOCH + Duration::from_secs(at.unsigned_abs()));
                        n += sqlx::query(sql)
                            .bind(at)
                            .bind(at)
                            .bind(id)
                            .bind(digest.to_hex())
                            .bind(at)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                    }
                    tx.commit().await?;
                    Ok(n)
                })
            })
            .await?;
        }
        Ok(written)
    }

    /// `work`, bounded by the query timeout.
    async fn timed<T>(
        &self,
        work: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.inner.query_timeout, work).await {
            Ok(outcome) => outcome.map_err(Failure::Sql),
            Err(_) => Err(Failure::TimedOut(self.inner.query_timeout)),
        }
    }

    /// What the lookup of `digest` finds, as the cache keeps it: a row in force, or why
    /// there is none.
    async fn find(&self, digest: TokenHash) -> Loaded {
        let row = self.timed(self.lookup(&digest)).await.map_err(|failure| {
            Arc::new(BackendError {
                operation: "token lookup",
                engine: self.inner.engine,
                failure,
            })
        })?;
        Ok(match row {
            None => Found::Refused(InvalidReason::Unknown),
            Some(row) => match self.refusal(&row, SystemTime::now()) {
                Some(reason) => Found::Refused(reason),
                None => Found::Row(Arc::new(row)),
            },
        })
    }

    /// The answer to a presented token from what the lookup of its digest found.
    fn answer(
        &self,
        parts: &TokenParts<'_>,
        digest: TokenHash,
        found: Found,
        now: SystemTime,
    ) -> Result<AccessToken<u64>, Rejection> {
        match found {
            Found::Row(row) => self.accept(parts, digest, &row, now),
            Found::Refused(reason) => Err(Rejection::InvalidToken(reason)),
        }
    }

    /// The answer to `token` when it needs no query (a malformed token, or a digest the
    /// cache holds), else the digest of its secret, to look up. One reading of the clock
    /// serves the cache's time to live and the row's checks.
    fn answer_from_cache(
        &self,
        token: &str,
    ) -> Result<Result<AccessToken<u64>, Rejection>, TokenHash> {
        let parts = match TokenParts::split(token) {
            Ok(parts) => parts,
            Err(rejection) => return Ok(Err(rejection)),
        };
        if parts.id().is_some_and(|id| !self.inner.engine.id_fits(id)) {
            return Ok(Err(Rejection::InvalidToken(InvalidReason::Malformed)));
        }
        let digest = parts.hash();
        let now = SystemTime::now();
        match self.inner.cache.get(&digest, now) {
            Some(found) => Ok(self.answer(&parts, digest, found, now)),
            None => Err(digest),
        }
    }

    /// [`verify`](TokenVerifier::verify) once the cache could not answer: the lookup,
    /// shared by identical concurrent misses, and the checks of what it found against the
    /// clock of its answer.
    async fn verify_miss(
        &self,
        token: &BearerToken,
        digest: TokenHash,
    ) -> Result<AccessToken<u64>, Rejection> {
        let parts = TokenParts::split(token.as_str())?;
        let found = self
            .inner
            .cache
            .load(digest, || self.find(digest))
            .await
            .map_err(Rejection::unavailable)?;
        self.answer(&parts, digest, found, SystemTime::now())
    }

    /// Forgets what the cache holds for `digest`, a row this store just wrote.
    fn evict_hex(&self, hex: &str) {
        if let Some(digest) = TokenHash::from_hex(hex) {
            self.inner.cache.evict(&digest);
        }
    }

    /// The row whose `token` column holds `digest`, of this store's `tokenable_type`:
    /// one query on the unique index. The one place a verification reads the database,
    /// behind the cache.
    pub(crate) async fn lookup(&self, digest: &TokenHash) -> Result<Option<TokenRow>, sqlx::Error> {
        let hex = digest.to_hex();
        let sql = self.inner.sql.lookup.as_str();
        with_pool!(&self.inner.pool, p, Id, Ts => {
            let row = sqlx::query(sql)
                .bind(hex)
                .bind(&*self.inner.tokenable_type)
                .fetch_optional(p)
                .await?;
            row.map(|row| -> Result<TokenRow, sqlx::Error> {
                Ok(TokenRow {
                    id: unsigned(row.try_get::<Id, _>("id")?)?,
                    owner: unsigned(row.try_get::<Id, _>("tokenable_id")?)?,
                    abilities: abilities::decode(row.try_get::<Option<String>, _>("abilities")?.as_deref()),
                    expires_at: self.instant(row.try_get::<Option<Ts>, _>("expires_at")?),
                    created_at: self.instant(row.try_get::<Option<Ts>, _>("created_at")?),
                    second_factor_pending: row.try_get::<Option<Id>, _>("pending")?.is_some(),
                    noted: AtomicI64::new(i64::MIN),
                })
            })
            .transpose()
        })
    }

    /// Accepts or refuses a row found for the presented token (from the database or the
    /// cache: every check that depends on the time is made here, each time), and notes
    /// the use. `now` is the clock read once for the verification (the cache's time to
    /// live is checked against it too).
    fn accept(
        &self,
        parts: &TokenParts<'_>,
        digest: TokenHash,
        row: &TokenRow,
        now: SystemTime,
    ) -> Result<AccessToken<u64>, Rejection> {
        if parts.id().is_some_and(|id| id != row.id) {
            return Err(Rejection::InvalidToken(InvalidReason::Unknown));
        }
        if let Some(reason) = self.refusal(row, now) {
            return Err(Rejection::InvalidToken(reason));
        }
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        // Once per second per row: a later use in the same second writes nothing more.
        if row.noted.load(Ordering::Relaxed) != secs {
            row.noted.store(secs, Ordering::Relaxed);
            self.note_use(row.id, digest, secs);
        }
        Ok(AccessToken::new(
            row.id,
            row.owner,
            row.abilities.clone(),
            row.second_factor_pending,
        ))
    }

    /// Why `row` is not in force at `now`, if it is not. Sanctum: expired once
    /// `expires_at` is past, or `created_at` no longer after now minus `expiration`.
    fn refusal(&self, row: &TokenRow, now: SystemTime) -> Option<InvalidReason> {
        let expired = row.expires_at.is_some_and(|at| at < now);
        let too_old = self.inner.max_age.is_some_and(|max| match row.created_at {
            // A row without `created_at` cannot show it is young enough.
            None => true,
            Some(created) => created.checked_add(max).is_some_and(|limit| limit <= now),
        });
        (expired || too_old).then_some(InvalidReason::Expired)
    }

    /// Notes an accepted use for the batched `last_used_at` write; starts the writer on
    /// the first one.
    fn note_use(&self, id: u64, digest: TokenHash, secs: i64) {
        let recorder = &self.inner.recorder;
        recorder.record(id, digest, secs);
        if recorder.should_start() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let task = runtime.spawn(write_periodically(
                        Arc::downgrade(&self.inner),
                        Arc::clone(recorder),
                    ));
                    recorder.set_task(task);
                }
                // Outside a Tokio runtime: uses wait for an explicit `flush`.
                Err(_) => recorder.unstart(),
            }
        }
    }

    fn instant<T: WallClock>(&self, column: Option<T>) -> Option<SystemTime> {
        column.map(|t| self.inner.clock.instant(t.wall_clock()))
    }

    /// Logs a backend failure of a store operation with its cause (the first of its kind,
    /// then at most one per [`DEFAULT_ERROR_LOG_INTERVAL`] with the number not logged
    /// since, `suppressed`), and wraps it. A kind is the operation and whether it timed
    /// out.
    pub(crate) fn backend(&self, operation: &'static str, error: impl Into<Failure>) -> StoreError {
        let error = BackendError {
            operation,
            engine: self.inner.engine,
            failure: error.into(),
        };
        let kind = (operation, matches!(error.failure, Failure::TimedOut(_)));
        if let Some(suppressed) = self.inner.error_log.admit(&kind) {
            tracing::warn!(
                target: "bearer_auth_sqlx",
                error = %error,
                suppressed,
                "key store operation failed"
            );
        }
        StoreError::backend(error)
    }

    /// Whether both ids fit the engine's columns; a key that cannot exist otherwise.
    fn fits(&self, owner: u64, id: u64) -> bool {
        self.inner.engine.id_fits(owner) && self.inner.engine.id_fits(id)
    }

    /// Refuses an `expires_at` that MySQL's `TIMESTAMP` cannot hold (it ends on
    /// 2038-01-19), rather than letting the server store it wrong or fail.
    fn check_expiry(&self, expires_at: Option<NaiveDateTime>) -> Result<(), StoreError> {
        let (Engine::MySql, Some(at)) = (self.inner.engine, expires_at) else {
            return Ok(());
        };
        let first = chrono::DateTime::from_timestamp(1, 0).map(|t| t.naive_utc());
        let last = chrono::DateTime::from_timestamp(i64::from(i32::MAX), 0).map(|t| t.naive_utc());
        let fits = first.is_some_and(|first| at >= first) && last.is_some_and(|last| at <= last);
        if fits {
            Ok(())
        } else {
            Err(StoreError::Invalid(
                format!(
                    "expires_at {at} is outside what MySQL's TIMESTAMP column holds \
                     (1970-01-01 00:00:01 to 2038-01-19 03:14:07 UTC)"
                )
                .into(),
            ))
        }
    }

    fn info_from<R: Row, Ts: WallClock>(
        &self,
        row: &R,
        id: u64,
        owner: u64,
    ) -> Result<TokenInfo<u64>, sqlx::Error>
    where
        for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<Ts>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> &'r str: sqlx::ColumnIndex<R>,
    {
        let name: String = row.try_get("name")?;
        let abilities =
            abilities::decode(row.try_get::<Option<String>, _>("abilities")?.as_deref());
        let created_at = self
            .instant(row.try_get::<Option<Ts>, _>("created_at")?)
            .unwrap_or(UNIX_EPOCH);
        let mut info = TokenInfo::new(id, owner, name, abilities, created_at);
        info.expires_at = self.instant(row.try_get::<Option<Ts>, _>("expires_at")?);
        info.last_used_at = self.instant(row.try_get::<Option<Ts>, _>("last_used_at")?);
        Ok(info)
    }

    async fn select_infos(
        &self,
        owner: u64,
        id: Option<u64>,
    ) -> Result<Vec<TokenInfo<u64>>, sqlx::Error> {
        let sql = match id {
            Some(_) => self.inner.sql.get.as_str(),
            None => self.inner.sql.list.as_str(),
        };
        with_pool!(&self.inner.pool, p, Id, Ts => {
            let (Some(owner_col), Some(id_col)) = (Id::try_from(owner).ok(), Id::try_from(id.unwrap_or(0)).ok()) else {
                return Ok(Vec::new());
            };
            let mut query = sqlx::query(sql).bind(&*self.inner.tokenable_type).bind(owner_col);
            if id.is_some() {
                query = query.bind(id_col);
            }
            let rows = query.fetch_all(p).await?;
            rows.iter()
                .map(|row| {
                    let mut info = self.info_from::<_, Ts>(row, unsigned(row.try_get::<Id, _>("id")?)?, owner)?;
                    info.second_factor_pending = row.try_get::<Option<Id>, _>("pending")?.is_some();
                    Ok(info)
                })
                .collect()
        })
    }

    async fn insert(
        &self,
        owner: u64,
        name: &str,
        digest: &str,
        abilities: &str,
        expires_at: Option<NaiveDateTime>,
        pending: bool,
    ) -> Result<u64, sqlx::Error> {
        let now = self.inner.clock.now();
        let sql = &self.inner.sql;
        let ty = &*self.inner.tokenable_type;
        // The row, and its pending second factor, committed before the token is shown.
        macro_rules! finish {
            ($tx:ident, $id:expr, $Id:ty) => {{
                let id: $Id = $id;
                sqlx::query(&sql.clear_pending)
                    .bind(id)
                    .execute(&mut *$tx)
                    .await?;
                if pending {
                    sqlx::query(&sql.insert_pending)
                        .bind(id)
                        .execute(&mut *$tx)
                        .await?;
                }
                $tx.commit().await?;
                unsigned(id)
            }};
        }
        match &self.inner.pool {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => {
                let owner = i64::try_from(owner).map_err(not_representable)?;
                let mut tx = p.begin().await?;
                let id = sqlx::query(&sql.insert)
                    .bind(ty)
                    .bind(owner)
                    .bind(name)
                    .bind(digest)
                    .bind(abilities)
                    .bind(expires_at)
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .last_insert_rowid();
                finish!(tx, id, i64)
            }
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => {
                let owner = i64::try_from(owner).map_err(not_representable)?;
                let mut tx = p.begin().await?;
                let id: i64 = sqlx::query_scalar(&sql.insert)
                    .bind(ty)
                    .bind(owner)
                    .bind(name)
                    .bind(digest)
                    .bind(abilities)
                    .bind(expires_at)
                    .bind(now)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                finish!(tx, id, i64)
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(p) => {
                let mut tx = p.begin().await?;
                let id = sqlx::query(&sql.insert)
                    .bind(ty)
                    .bind(owner)
                    .bind(name)
                    .bind(digest)
                    .bind(abilities)
                    .bind(expires_at)
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .last_insert_id();
                finish!(tx, id, u64)
            }
        }
    }
}

/// A non-negative id read from the database.
fn unsigned<I: TryInto<u64>>(id: I) -> Result<u64, sqlx::Error> {
    id.try_into()
        .map_err(|_| sqlx::Error::Decode("a negative id in personal_access_tokens".into()))
}

fn not_representable<E>(_: E) -> sqlx::Error {
    sqlx::Error::Encode("an id beyond the column's range".into())
}

/// Writes the noted uses every interval, until stopped or the store is dropped.
async fn write_periodically(store: Weak<Inner>, recorder: Arc<Recorder>) {
    let mut ticks = tokio::time::interval_at(Instant::now() + recorder.interval, recorder.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = recorder.stop.notified() => return,
        }
        let Some(inner) = store.upgrade() else { return };
        // A failure is logged by `flush`, and the uses kept for the next round.
        drop(SqlStore { inner }.flush().await);
    }
}

#[async_trait]
impl TokenVerifier for SqlStore {
    type Principal = AccessToken<u64>;

    /// Splits the token (an id that does not fit the column is refused without a query),
    /// answers from the cache when it holds the digest of the secret, else finds the row
    /// by that digest (one indexed query, shared by identical concurrent requests), then
    /// requires the id to match, and refuses a row expired or older than the maximum age
    /// (checked on every request, cached or not). A database error or timeout is
    /// [`Rejection::Unavailable`] (503), never 401.
    async fn verify(&self, token: &BearerToken) -> Result<AccessToken<u64>, Rejection> {
        // A hit (or a malformed token) is answered without entering the query's state
        // machine: the future this method returns stays small, and the miss, boxed on
        // its own, pays the allocation of the large one.
        match self.answer_from_cache(token.as_str()) {
            Ok(answer) => answer,
            Err(digest) => Box::pin(self.verify_miss(token, digest)).await,
        }
    }

    /// The answer of [`verify`](Self::verify) when the cache holds it (or the token is
    /// malformed); `None` when the database must be asked.
    fn verify_now(&self, token: BearerTokenRef<'_>) -> Option<Result<AccessToken<u64>, Rejection>> {
        self.answer_from_cache(token.as_str()).ok()
    }
}

#[async_trait]
impl TokenStore for SqlStore {
    type Owner = u64;

    async fn create(&self, new: NewToken<u64>) -> Result<IssuedToken, StoreError> {
        let new = new.into_parts();
        if !self.inner.engine.id_fits(new.owner) {
            return Err(StoreError::Invalid(
                format!(
                    "owner {} does not fit {}'s tokenable_id column",
                    new.owner, self.inner.engine
                )
                .into(),
            ));
        }
        if new.expires_at.is_some_and(|at| !time::writable(at)) {
            return Err(StoreError::Invalid(
                "expires_at is after 9999-12-31 23:59:59 UTC, the last time Laravel's \
                 timestamps hold"
                    .into(),
            ));
        }
        let expires_at = new.expires_at.map(|at| self.inner.clock.naive(at));
        self.check_expiry(expires_at)?;
        let secret = self.inner.keys.generate_secret()?;
        let digest = secret.hash();
        let inserted = self
            .timed(self.insert(
                new.owner,
                &new.name,
                &digest.to_hex(),
                &abilities::encode(&new.abilities),
                expires_at,
                new.second_factor_pending,
            ))
            .await;
        // Nothing to evict: no cache holds the digest of a secret just drawn.
        let id = inserted.map_err(|e| self.backend("create", e))?;
        Ok(IssuedToken::new(id, secret.into_token(id)))
    }

    async fn list(&self, owner: &u64) -> Result<Vec<TokenInfo<u64>>, StoreError> {
        self.timed(self.select_infos(*owner, None))
            .await
            .map_err(|e| self.backend("list", e))
    }

    async fn get(&self, owner: &u64, id: u64) -> Result<TokenInfo<u64>, StoreError> {
        if !self.fits(*owner, id) {
            return Err(StoreError::NotFound(id));
        }
        self.timed(self.select_infos(*owner, Some(id)))
            .await
            .map_err(|e| self.backend("get", e))?
            .pop()
            .ok_or(StoreError::NotFound(id))
    }

    async fn regenerate(&self, owner: &u64, id: u64) -> Result<IssuedToken, StoreError> {
        if !self.fits(*owner, id) {
            return Err(StoreError::NotFound(id));
        }
        let secret = self.inner.keys.generate_secret()?;
        let digest = secret.hash();
        let now = self.inner.clock.now();
        let sql = &self.inner.sql;
        // The digest being replaced, read in the transaction that replaces it.
        let mut old = None;
        let updated = self
            .timed(async {
                with_pool!(&self.inner.pool, p, Id, Ts => {
                    let id = Id::try_from(id).map_err(not_representable)?;
                    let owner = Id::try_from(*owner).map_err(not_representable)?;
                    let mut tx = p.begin_with(sql.begin_write).await?;
                    old = sqlx::query_scalar::<_, String>(&sql.lock_token)
                        .bind(id)
                        .bind(&*self.inner.tokenable_type)
                        .bind(owner)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if old.is_none() {
                        return Ok(false);
                    }
                    sqlx::query(&sql.regenerate)
                        .bind(digest.to_hex())
                        .bind(now)
                        .bind(now)
                        .bind(id)
                        .bind(&*self.inner.tokenable_type)
                        .bind(owner)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(true)
                })
            })
            .await;
        // Committed or not (a failure once the commit was sent leaves it unknown), the
        // old token's cached answer goes: it is refused here at once. No cache holds the
        // new digest, just drawn.
        if let Some(old) = &old {
            self.evict_hex(old);
        }
        if !updated.map_err(|e| self.backend("regenerate", e))? {
            return Err(StoreError::NotFound(id));
        }
        Ok(IssuedToken::new(id, secret.into_token(id)))
    }

    async fn revoke(&self, owner: &u64, id: u64) -> Result<(), StoreError> {
        if !self.fits(*owner, id) {
            return Err(StoreError::NotFound(id));
        }
        let sql = &self.inner.sql;
        let mut old = None;
        let deleted = self
            .timed(async {
                with_pool!(&self.inner.pool, p, Id, Ts => {
                    let id = Id::try_from(id).map_err(not_representable)?;
                    let owner = Id::try_from(*owner).map_err(not_representable)?;
                    let mut tx = p.begin_with(sql.begin_write).await?;
                    old = sqlx::query_scalar::<_, String>(&sql.lock_token)
                        .bind(id)
                        .bind(&*self.inner.tokenable_type)
                        .bind(owner)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if old.is_none() {
                        return Ok(false);
                    }
                    sqlx::query(&sql.revoke)
                        .bind(id)
                        .bind(&*self.inner.tokenable_type)
                        .bind(owner)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(&sql.clear_pending).bind(id).execute(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(true)
                })
            })
            .await;
        if let Some(old) = &old {
            self.evict_hex(old);
        }
        if !deleted.map_err(|e| self.backend("revoke", e))? {
            return Err(StoreError::NotFound(id));
        }
        Ok(())
    }

    async fn revoke_all(&self, owner: &u64) -> Result<u64, StoreError> {
        if !self.inner.engine.id_fits(*owner) {
            return Ok(0);
        }
        let sql = &self.inner.sql;
        let mut old = Vec::new();
        let deleted = self
            .timed(async {
                with_pool!(&self.inner.pool, p, Id, Ts => {
                    let owner = Id::try_from(*owner).map_err(not_representable)?;
                    let mut tx = p.begin_with(sql.begin_write).await?;
                    let locked = sqlx::query_as::<_, (Id, String)>(&sql.lock_owner_tokens)
                        .bind(&*self.inner.tokenable_type)
                        .bind(owner)
                        .fetch_all(&mut *tx)
                        .await?;
                    let ids: Vec<Id> = locked.iter().map(|(id, _)| *id).collect();
                    old = locked.into_iter().map(|(_, token)| token).collect();
                    sqlx::query(&sql.revoke_all_pending)
                        .bind(&*self.inner.tokenable_type)
                        .bind(owner)
                        .execute(&mut *tx)
                        .await?;
                    let n = if sql.revoke_all_returns {
                        let deleted = sqlx::query_scalar::<_, String>(&sql.revoke_all)
                            .bind(&*self.inner.tokenable_type)
                            .bind(owner)
                            .fetch_all(&mut *tx)
                            .await?;
                        let n = u64::try_from(deleted.len()).unwrap_or(u64::MAX);
                        old.extend(deleted);
                        n
                    } else {
                        // Exactly the rows locked above, whose digests are known: under
                        // READ COMMITTED a delete by owner would also take a key committed
                        // since, without a digest to evict (MySQL has no `returning`).
                        let mut n = 0;
                        for id in ids {
                            n += sqlx::query(&sql.revoke)
                                .bind(id)
                                .bind(&*self.inner.tokenable_type)
                                .bind(owner)
                                .execute(&mut *tx)
                                .await?
                                .rows_affected();
                        }
                        n
                    };
                    tx.commit().await?;
                    Ok(n)
                })
            })
            .await;
        for old in &old {
            self.evict_hex(old);
        }
        deleted.map_err(|e| self.backend("revoke_all", e))
    }

    async fn confirm_second_factor(&self, owner: &u64, id: u64) -> Result<(), StoreError> {
        if !self.fits(*owner, id) {
            return Err(StoreError::NotFound(id));
        }
        let sql = &self.inner.sql;
        let mut token = None;
        let cleared = self
            .timed(async {
                with_pool!(&self.inner.pool, p, Id, Ts => {
                    let id = Id::try_from(id).map_err(not_representable)?;
                    let owner = Id::try_from(*owner).map_err(not_representable)?;
                    token = sqlx::query_scalar::<_, String>(&sql.select_token)
                        .bind(id)
                        .bind(&*self.inner.tokenable_type)
                        .bind(owner)
                        .fetch_optional(p)
                        .await?;
                    if token.is_some() {
                        sqlx::query(&sql.clear_pending).bind(id).execute(p).await?;
                    }
                    Ok(())
                })
            })
            .await;
        // The cached answer said "pending": it goes.
        if let Some(token) = &token {
            self.evict_hex(token);
        }
        cleared.map_err(|e| self.backend("confirm_second_factor", e))?;
        match token {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound(id)),
        }
    }

    /// Deletes this store's rows (its `tokenable_type` only) whose `expires_at` is more
    /// than `older_than` in the past and, with a maximum age, those created more than the
    /// maximum age plus `older_than` ago, as `sanctum:prune-expired --hours` does; and
    /// the pending second factors of rows no longer there.
    async fn prune_expired(&self, older_than: Duration) -> Result<u64, StoreError> {
        let now = SystemTime::now();
        let before = |age: Duration| now.checked_sub(age).map(|at| self.inner.clock.naive(at));
        let Some(expired_before) = before(older_than) else {
            return Ok(0);
        };
        let created_before = self
            .inner
            .max_age
            .and_then(|max| before(max.saturating_add(older_than)));
        let sql = &self.inner.sql;
        with_pool!(&self.inner.pool, p, _Id, _Ts => {
            async {
                let mut tx = p.begin().await?;
                let n = sqlx::query(&sql.prune)
                    .bind(&*self.inner.tokenable_type)
                    .bind(expired_before)
                    .bind(created_before)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query(&sql.prune_pending).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(n)
            }
            .await
        })
        .map_err(|e| self.backend("prune_expired", e))
    }
}

/// The statements, written with `?` and numbered for PostgreSQL.
struct Queries {
    /// Starts a transaction that writes: SQLite takes its write lock first, so that a
    /// read followed by a write cannot fail on another writer's commit.
    begin_write: &'static str,
    lookup: String,
    insert: String,
    insert_pending: String,
    clear_pending: String,
    list: String,
    get: String,
    regenerate: String,
    revoke: String,
    revoke_all_pending: String,
    revoke_all: String,
    select_token: String,
    lock_token: String,
    lock_owner_tokens: String,
    prune: String,
    prune_pending: String,
    touch: String,
    /// Whether `revoke_all` answers the digests it deleted (`returning token`).
    revoke_all_returns: bool,
}

impl Queries {
    fn new(engine: Engine, tokenable_type: &str) -> Self {
        let q = |sql: &str| {
            let sql = match engine {
                // MySQL compares `tokenable_type` under the column's collation, blind to
                // case, accents and trailing spaces: the rows of `app\models\user` would
                // be this store's. The index does the search; the bytes decide. The type
                // is the store's own setting, written as a hex literal.
                Engine::MySql => {
                    let hex: String = tokenable_type.bytes().map(|b| format!("{b:02x}")).collect();
                    sql.replace("t.tokenable_type = ?", "\u{0}")
                        .replace(
                            "tokenable_type = ?",
                            &format!("tokenable_type = ? and binary tokenable_type = x'{hex}'"),
                        )
                        .replace(
                            "\u{0}",
                            &format!("t.tokenable_type = ? and binary t.tokenable_type = x'{hex}'"),
                        )
                }
                _ => sql.to_owned(),
            };
            match engine {
                Engine::Postgres => numbered(&sql),
                _ => sql,
            }
        };
        // Timestamps no Laravel app reads (PostgreSQL's `infinity`, years past 9999, a
        // MySQL zero date, which sqlx reads as NULL) are read as a time long past for
        // `expires_at` (the key is expired, as Laravel, which cannot parse them or reads
        // -0001-11-30, refuses it) and as NULL for the others, never decoded into a panic.
        let expires_at = match engine {
            Engine::Postgres => {
                "case when t.expires_at is null then null \
                 when isfinite(t.expires_at) and t.expires_at between '0001-01-01 00:00:00' and '9999-12-31 23:59:59' \
                 then t.expires_at else '0001-01-01 00:00:00' end as expires_at"
            }
            Engine::MySql => {
                "case when year(t.expires_at) = 0 then cast('1000-01-01 00:00:00' as datetime) \
                 else t.expires_at end as expires_at"
            }
            Engine::Sqlite => "t.expires_at",
        };
        let readable = |column: &str| match engine {
            Engine::Postgres => format!(
                "case when isfinite(t.{column}) and t.{column} between '0001-01-01 00:00:00' and '9999-12-31 23:59:59' \
                 then t.{column} end as {column}"
            ),
            Engine::MySql | Engine::Sqlite => format!("t.{column}"),
        };
        let (created_at, last_used_at) = (readable("created_at"), readable("last_used_at"));
        let info = format!(
            "select t.id, t.name, t.abilities, {last_used_at}, {expires_at}, {created_at}, p.token_id as pending \
             from personal_access_tokens t left join bearer_auth_pending_second_factors p on p.token_id = t.id \
             where t.tokenable_type = ? and t.tokenable_id = ?"
        );
        const INSERT: &str = "insert into personal_access_tokens \
             (tokenable_type, tokenable_id, name, token, abilities, expires_at, created_at, updated_at) \
             values (?, ?, ?, ?, ?, ?, ?, ?)";
        // Rows read to be changed are locked until the commit (SQLite locks the database).
        let lock = match engine {
            Engine::Sqlite => "",
            Engine::Postgres | Engine::MySql => " for update",
        };
        const TOKEN: &str = "select token from personal_access_tokens where id = ? and tokenable_type = ? and tokenable_id = ?";
        Self {
            begin_write: match engine {
                Engine::Sqlite => "begin immediate",
                Engine::Postgres | Engine::MySql => "begin",
            },
            lookup: q(&format!(
                "select t.id, t.tokenable_id, t.abilities, {expires_at}, {created_at}, p.token_id as pending \
                 from personal_access_tokens t left join bearer_auth_pending_second_factors p on p.token_id = t.id \
                 where t.token = ? and t.tokenable_type = ?"
            )),
            insert: match engine {
                Engine::Postgres => q(&format!("{INSERT} returning id")),
                _ => q(INSERT),
            },
            insert_pending: q(
                "insert into bearer_auth_pending_second_factors (token_id) values (?)",
            ),
            clear_pending: q("delete from bearer_auth_pending_second_factors where token_id = ?"),
            list: q(&format!("{info} order by t.id")),
            get: q(&format!("{info} and t.id = ?")),
            regenerate: q(
                "update personal_access_tokens set token = ?, created_at = ?, updated_at = ?, last_used_at = null \
                 where id = ? and tokenable_type = ? and tokenable_id = ?",
            ),
            revoke: q(
                "delete from personal_access_tokens where id = ? and tokenable_type = ? and tokenable_id = ?",
            ),
            revoke_all_pending: q(
                "delete from bearer_auth_pending_second_factors where token_id in \
                 (select id from personal_access_tokens where tokenable_type = ? and tokenable_id = ?)",
            ),
            // Under READ COMMITTED (PostgreSQL's default) the delete sees a key committed
            // after the lock read the owner's digests: it says which it deleted, so that
            // every one is evicted. MySQL has no `returning`: there `revoke_all` deletes
            // the locked rows one by one instead (`revoke`), and this is unused.
            revoke_all: match engine {
                Engine::Postgres | Engine::Sqlite => q(
                    "delete from personal_access_tokens where tokenable_type = ? and tokenable_id = ? returning token",
                ),
                Engine::MySql => q(
                    "delete from personal_access_tokens where tokenable_type = ? and tokenable_id = ?",
                ),
            },
            revoke_all_returns: !matches!(engine, Engine::MySql),
            select_token: q(TOKEN),
            lock_token: q(&format!("{TOKEN}{lock}")),
            lock_owner_tokens: q(&format!(
                "select id, token from personal_access_tokens where tokenable_type = ? and tokenable_id = ? order by id{lock}"
            )),
            prune: q(
                "delete from personal_access_tokens where tokenable_type = ? and (expires_at < ? or created_at < ?)",
            ),
            prune_pending: q(
                "delete from bearer_auth_pending_second_factors where not exists \
                 (select 1 from personal_access_tokens t where t.id = bearer_auth_pending_second_factors.token_id)",
            ),
            touch: q(
                "update personal_access_tokens set last_used_at = ?, updated_at = ? \
                 where id = ? and token = ? and (last_used_at is null or last_used_at < ?)",
            ),
        }
    }
}

/// `?` placeholders as PostgreSQL's `$1`, `$2`, ...
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tracing_subscriber::{Layer, layer::SubscriberExt as _, registry::Registry};

    use super::*;

    /// Counts the warnings of failed store operations.
    #[derive(Clone, Default)]
    struct Warnings(Arc<Mutex<usize>>);

    impl<S: tracing::Subscriber> Layer<S> for Warnings {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if event.metadata().target() == "bearer_auth_sqlx" {
                *self.0.lock().unwrap() += 1;
            }
        }
    }

    #[tokio::test]
    async fn a_thousand_failed_operations_log_one_warning() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .connect("sqlite::memory:")
            .await
            .unwrap();
        pool.close().await;
        let store = SqlStore::builder(Pool::from(pool)).build();
        let warnings = Warnings::default();
        let _guard = tracing::subscriber::set_default(Registry::default().with(warnings.clone()));
        for _ in 0..1000 {
            assert!(matches!(store.list(&7).await, Err(StoreError::Backend(_))));
        }
        assert_eq!(*warnings.0.lock().unwrap(), 1);
        // Another kind of failure has its own interval.
        assert!(store.get(&7, 1).await.is_err());
        assert_eq!(*warnings.0.lock().unwrap(), 2);
    }

    async fn sqlite() -> Pool {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        Pool::from(pool)
    }

    #[tokio::test]
    async fn debug_shows_the_settings_and_clamps_the_last_used_interval_to_a_year() {
        let store = SqlStore::builder(sqlite().await)
            .tokenable_type("App\\Models\\Team")
            .last_used_interval(Duration::from_secs(400 * 24 * 60 * 60))
            .build();
        assert_eq!(store.tokenable_type(), "App\\Models\\Team");
        let debug = format!("{store:?}");
        assert!(
            debug.starts_with(
                r#"SqlStore { engine: Sqlite, tokenable_type: "App\\Models\\Team", prefix: "", max_age: None, "#
            ),
            "{debug}"
        );
        assert!(
            debug.contains(", timezone: Z, last_used_interval: 31536000s, "),
            "{debug}"
        );
        let zoned = SqlStore::builder(sqlite().await)
            .timezone(chrono::FixedOffset::east_opt(3600).unwrap())
            .build();
        assert!(
            format!("{zoned:?}").contains(", timezone: +01:00, "),
            "{zoned:?}"
        );
        assert!(
            debug.ends_with(r#", notify_channel: "bearer_auth_sqlx", .. }"#),
            "{debug}"
        );
        let short = SqlStore::builder(sqlite().await)
            .last_used_interval(Duration::ZERO)
            .build();
        assert_eq!(short.tokenable_type(), DEFAULT_TOKENABLE_TYPE);
        assert!(format!("{short:?}").contains(", last_used_interval: 1ms, "));
    }

    #[tokio::test]
    async fn dropping_the_store_stops_its_writer_task() {
        /// A store on SQLite in memory whose writer an accepted use has started (it waits
        /// an hour for its first round).
        async fn writing() -> SqlStore {
            let store = SqlStore::builder(sqlite().await)
                .last_used_interval(Duration::from_secs(3600))
                .build();
            store.migrate().await.unwrap();
            let key = store.create(NewToken::new(7, "k")).await.unwrap();
            let bearer = BearerToken::from_token(key.plain_text_token().as_str()).unwrap();
            assert!(store.verify(&bearer).await.is_ok());
            store
        }

        let store = writing().await;
        let recorder = Arc::clone(&store.inner.recorder);
        drop(store);
        // The drop took the writer's handle and told it to stop: nothing is left to stop.
        assert!(recorder.stop().is_none());

        // The same without the drop: the writer is still there.
        let store = writing().await;
        let writer = store.inner.recorder.stop().unwrap();
        writer.await.unwrap();
    }

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            numbered("select a from t where b = ? and c = ?"),
            "select a from t where b = $1 and c = $2"
        );
    }
}

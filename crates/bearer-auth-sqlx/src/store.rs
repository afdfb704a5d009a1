//! [`SqlStore`]: keys on Laravel Sanctum's `personal_access_tokens` table.

// The id columns are `i64` on SQLite and PostgreSQL and `u64` on MySQL: the conversions
// written once for all three are the identity on MySQL.
#![allow(clippy::useless_conversion)]

use std::{
    error::Error as StdError,
    fmt,
    sync::{Arc, Weak},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use bearer_auth::{
    Abilities, AccessToken, BearerToken, InvalidReason, IssuedToken, KeyGenerator, NewToken,
    Rejection, StoreError, TokenHash, TokenInfo, TokenParts, TokenStore, TokenVerifier,
};
use chrono::NaiveDateTime;
use sqlx::Row;
use tokio::time::{Instant, MissedTickBehavior};

use crate::{
    Engine, Pool, abilities,
    last_used::{Pending, Recorder},
    schema,
    time::Clock,
};

/// The `tokenable_type` a store serves unless told otherwise: Laravel's user model.
pub const DEFAULT_TOKENABLE_TYPE: &str = "App\\Models\\User";

/// How often `last_used_at` is written, at most, per key, unless told otherwise.
pub const DEFAULT_LAST_USED_INTERVAL: Duration = Duration::from_secs(60);

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
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Ends the writer task; what it had not written is lost (see `shutdown`).
        drop(self.recorder.stop());
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
    /// [`DEFAULT_LAST_USED_INTERVAL`], 60 s; at least 1 ms), in batches, from a
    /// background task.
    pub fn last_used_interval(mut self, interval: Duration) -> Self {
        self.last_used_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The store. It runs no query until it is used; the task that writes
    /// `last_used_at` starts with the first accepted token.
    pub fn build(self) -> SqlStore {
        let engine = self.pool.engine();
        SqlStore {
            inner: Arc::new(Inner {
                sql: Queries::new(engine),
                pool: self.pool,
                engine,
                tokenable_type: self.tokenable_type,
                keys: self.keys,
                max_age: self.max_age,
                clock: self.clock,
                recorder: Arc::new(Recorder::new(self.last_used_interval)),
            }),
        }
    }
}

/// What a verification reads of a row: everything needed to accept or refuse it. The
/// digest and the `tokenable_type` were matched by the query.
#[derive(Debug, Clone)]
pub(crate) struct TokenRow {
    pub(crate) id: u64,
    pub(crate) owner: u64,
    pub(crate) abilities: Abilities,
    pub(crate) expires_at: Option<SystemTime>,
    pub(crate) created_at: Option<SystemTime>,
    pub(crate) second_factor_pending: bool,
}

impl SqlStore {
    /// A store on `pool` with the defaults: `App\Models\User`, keys without a prefix, no
    /// maximum age, UTC, `last_used_at` written at most once a minute per key.
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
        }
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
    /// had not written. Call it on graceful shutdown (SIGTERM, Ctrl-C), after the server
    /// stopped taking requests. The store keeps working afterwards, but uses are then
    /// written only by explicit calls to [`flush`](Self::flush).
    pub async fn shutdown(&self) -> Result<u64, StoreError> {
        if let Some(task) = self.inner.recorder.stop() {
            // The task ends at its next wait; a panic in it is not ours to report.
            drop(task.await);
        }
        self.flush().await
    }

    /// How many keys have a use not yet written to `last_used_at`.
    pub fn unwritten_uses(&self) -> usize {
        self.inner.recorder.len()
    }

    async fn write_last_used(&self, batch: &[Pending]) -> Result<u64, sqlx::Error> {
        /// Rows per transaction: row locks held briefly, few commits.
        const CHUNK: usize = 256;
        let sql = self.inner.sql.touch.as_str();
        let mut written = 0;
        for chunk in batch.chunks(CHUNK) {
            written += with_pool!(&self.inner.pool, p, Id, Ts => {
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
                n
            });
        }
        Ok(written)
    }

    /// The row whose `token` column holds `digest`, of this store's `tokenable_type`:
    /// one query on the unique index. The one place a verification reads the database;
    /// a cache goes in front of it.
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
                })
            })
            .transpose()
        })
    }

    /// Accepts or refuses a row found for the presented token, and notes the use.
    fn accept(
        &self,
        parts: &TokenParts<'_>,
        digest: TokenHash,
        row: &TokenRow,
    ) -> Result<AccessToken<u64>, Rejection> {
        if parts.id().is_some_and(|id| id != row.id) {
            return Err(Rejection::InvalidToken(InvalidReason::Unknown));
        }
        let now = SystemTime::now();
        // Sanctum: expired once `expires_at` is past, or `created_at` no longer after
        // now minus `expiration`.
        let expired = row.expires_at.is_some_and(|at| at < now);
        let too_old = self.inner.max_age.is_some_and(|max| match row.created_at {
            // A row without `created_at` cannot show it is young enough.
            None => true,
            Some(created) => created.checked_add(max).is_some_and(|limit| limit <= now),
        });
        if expired || too_old {
            return Err(Rejection::InvalidToken(InvalidReason::Expired));
        }
        self.note_use(row.id, digest, now);
        Ok(AccessToken::new(
            row.id,
            row.owner,
            row.abilities.clone(),
            row.second_factor_pending,
        ))
    }

    /// Notes an accepted use for the batched `last_used_at` write; starts the writer on
    /// the first one.
    fn note_use(&self, id: u64, digest: TokenHash, at: SystemTime) {
        let secs = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
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

    /// Logs a backend failure of a store operation with its cause, and wraps it.
    fn backend(&self, operation: &'static str, error: sqlx::Error) -> StoreError {
        let error = BackendError {
            operation,
            engine: self.inner.engine,
            source: error,
        };
        tracing::warn!(target: "bearer_auth_sqlx", error = %error, "key store operation failed");
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
    /// finds the row by the digest of the secret (one indexed query), then requires the
    /// id to match, and refuses a row expired or older than the maximum age. A database
    /// error is [`Rejection::Unavailable`] (503), never 401.
    async fn verify(&self, token: &BearerToken) -> Result<AccessToken<u64>, Rejection> {
        let parts = TokenParts::split(token.as_str())?;
        if parts.id().is_some_and(|id| !self.inner.engine.id_fits(id)) {
            return Err(Rejection::InvalidToken(InvalidReason::Malformed));
        }
        let digest = parts.hash();
        let row = self.lookup(&digest).await.map_err(|source| {
            Rejection::unavailable(BackendError {
                operation: "token lookup",
                engine: self.inner.engine,
                source,
            })
        })?;
        let row = row.ok_or(Rejection::InvalidToken(InvalidReason::Unknown))?;
        self.accept(&parts, digest, &row)
    }

    /// `None`: every answer needs the database.
    fn verify_now(&self, _: &BearerToken) -> Option<Result<AccessToken<u64>, Rejection>> {
        // The seam for a cache: split and digest as `verify` does, then answer a hit on
        // the digest with `accept(&parts, digest, &row)`, the checks `verify` applies to
        // a row from `lookup`.
        None
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
        let expires_at = new.expires_at.map(|at| self.inner.clock.naive(at));
        self.check_expiry(expires_at)?;
        let secret = self.inner.keys.generate_secret()?;
        let id = self
            .insert(
                new.owner,
                &new.name,
                &secret.hash().to_hex(),
                &abilities::encode(&new.abilities),
                expires_at,
                new.second_factor_pending,
            )
            .await
            .map_err(|e| self.backend("create", e))?;
        Ok(IssuedToken::new(id, secret.into_token(id)))
    }

    async fn list(&self, owner: &u64) -> Result<Vec<TokenInfo<u64>>, StoreError> {
        self.select_infos(*owner, None)
            .await
            .map_err(|e| self.backend("list", e))
    }

    async fn get(&self, owner: &u64, id: u64) -> Result<TokenInfo<u64>, StoreError> {
        if !self.fits(*owner, id) {
            return Err(StoreError::NotFound(id));
        }
        self.select_infos(*owner, Some(id))
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
        let digest = secret.hash().to_hex();
        let now = self.inner.clock.now();
        let sql = self.inner.sql.regenerate.as_str();
        let updated = with_pool!(&self.inner.pool, p, Id, Ts => {
            async {
                let mut tx = p.begin().await?;
                let n = sqlx::query(sql)
                    .bind(digest)
                    .bind(now)
                    .bind(now)
                    .bind(Id::try_from(id).map_err(not_representable)?)
                    .bind(&*self.inner.tokenable_type)
                    .bind(Id::try_from(*owner).map_err(not_representable)?)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok::<_, sqlx::Error>(n)
            }
            .await
        })
        .map_err(|e| self.backend("regenerate", e))?;
        if updated == 0 {
            return Err(StoreError::NotFound(id));
        }
        Ok(IssuedToken::new(id, secret.into_token(id)))
    }

    async fn revoke(&self, owner: &u64, id: u64) -> Result<(), StoreError> {
        if !self.fits(*owner, id) {
            return Err(StoreError::NotFound(id));
        }
        let sql = &self.inner.sql;
        let deleted = with_pool!(&self.inner.pool, p, Id, Ts => {
            async {
                let id = Id::try_from(id).map_err(not_representable)?;
                let mut tx = p.begin().await?;
                let n = sqlx::query(&sql.revoke)
                    .bind(id)
                    .bind(&*self.inner.tokenable_type)
                    .bind(Id::try_from(*owner).map_err(not_representable)?)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n > 0 {
                    sqlx::query(&sql.clear_pending).bind(id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok::<_, sqlx::Error>(n)
            }
            .await
        })
        .map_err(|e| self.backend("revoke", e))?;
        if deleted == 0 {
            return Err(StoreError::NotFound(id));
        }
        Ok(())
    }

    async fn revoke_all(&self, owner: &u64) -> Result<u64, StoreError> {
        if !self.inner.engine.id_fits(*owner) {
            return Ok(0);
        }
        let sql = &self.inner.sql;
        with_pool!(&self.inner.pool, p, Id, Ts => {
            async {
                let owner = Id::try_from(*owner).map_err(not_representable)?;
                let mut tx = p.begin().await?;
                sqlx::query(&sql.revoke_all_pending)
                    .bind(&*self.inner.tokenable_type)
                    .bind(owner)
                    .execute(&mut *tx)
                    .await?;
                let n = sqlx::query(&sql.revoke_all)
                    .bind(&*self.inner.tokenable_type)
                    .bind(owner)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok::<_, sqlx::Error>(n)
            }
            .await
        })
        .map_err(|e| self.backend("revoke_all", e))
    }

    async fn confirm_second_factor(&self, owner: &u64, id: u64) -> Result<(), StoreError> {
        if !self.fits(*owner, id) {
            return Err(StoreError::NotFound(id));
        }
        let sql = &self.inner.sql;
        let found = with_pool!(&self.inner.pool, p, Id, Ts => {
            async {
                let id = Id::try_from(id).map_err(not_representable)?;
                let owner = Id::try_from(*owner).map_err(not_representable)?;
                let cleared = sqlx::query(&sql.confirm)
                    .bind(id)
                    .bind(id)
                    .bind(&*self.inner.tokenable_type)
                    .bind(owner)
                    .execute(p)
                    .await?
                    .rows_affected();
                if cleared > 0 {
                    return Ok::<_, sqlx::Error>(true);
                }
                // Nothing was pending: fine if the key is there.
                Ok(sqlx::query(&sql.exists)
                    .bind(id)
                    .bind(&*self.inner.tokenable_type)
                    .bind(owner)
                    .fetch_optional(p)
                    .await?
                    .is_some())
            }
            .await
        })
        .map_err(|e| self.backend("confirm_second_factor", e))?;
        if found {
            Ok(())
        } else {
            Err(StoreError::NotFound(id))
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

/// A database failure, with the operation it broke: the source of
/// [`StoreError::Backend`] and [`Rejection::Unavailable`].
#[derive(Debug)]
struct BackendError {
    operation: &'static str,
    engine: Engine,
    source: sqlx::Error,
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed on {}: {}",
            self.operation, self.engine, self.source
        )
    }
}

impl StdError for BackendError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

/// The statements, written with `?` and numbered for PostgreSQL.
struct Queries {
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
    confirm: String,
    exists: String,
    prune: String,
    prune_pending: String,
    touch: String,
}

impl Queries {
    fn new(engine: Engine) -> Self {
        let q = |sql: &str| match engine {
            Engine::Postgres => numbered(sql),
            _ => sql.to_owned(),
        };
        const INFO: &str = "select t.id, t.name, t.abilities, t.last_used_at, t.expires_at, t.created_at, p.token_id as pending \
             from personal_access_tokens t left join bearer_auth_pending_second_factors p on p.token_id = t.id \
             where t.tokenable_type = ? and t.tokenable_id = ?";
        const INSERT: &str = "insert into personal_access_tokens \
             (tokenable_type, tokenable_id, name, token, abilities, expires_at, created_at, updated_at) \
             values (?, ?, ?, ?, ?, ?, ?, ?)";
        Self {
            lookup: q(
                "select t.id, t.tokenable_id, t.abilities, t.expires_at, t.created_at, p.token_id as pending \
                 from personal_access_tokens t left join bearer_auth_pending_second_factors p on p.token_id = t.id \
                 where t.token = ? and t.tokenable_type = ?",
            ),
            insert: match engine {
                Engine::Postgres => q(&format!("{INSERT} returning id")),
                _ => q(INSERT),
            },
            insert_pending: q(
                "insert into bearer_auth_pending_second_factors (token_id) values (?)",
            ),
            clear_pending: q("delete from bearer_auth_pending_second_factors where token_id = ?"),
            list: q(&format!("{INFO} order by t.id")),
            get: q(&format!("{INFO} and t.id = ?")),
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
            revoke_all: q(
                "delete from personal_access_tokens where tokenable_type = ? and tokenable_id = ?",
            ),
            confirm: q(
                "delete from bearer_auth_pending_second_factors where token_id = ? and exists \
                 (select 1 from personal_access_tokens t where t.id = ? and t.tokenable_type = ? and t.tokenable_id = ?)",
            ),
            exists: q(
                "select id from personal_access_tokens where id = ? and tokenable_type = ? and tokenable_id = ?",
            ),
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
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            numbered("select a from t where b = ? and c = ?"),
            "select a from t where b = $1 and c = $2"
        );
    }
}

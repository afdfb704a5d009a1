//! The database: one connection pool on SQLite, PostgreSQL or MySQL/MariaDB, and the
//! tables this service owns or shares with a Laravel app.
//!
//! Queries are written once with `?` placeholders and run on each engine's own pool (no
//! `sqlx::Any`, whose few types cannot carry Laravel's timestamps); for PostgreSQL the
//! placeholders become `$1`, `$2`, … See [`users`](crate::users) for the queries.

use std::{borrow::Cow, fmt, path::PathBuf, str::FromStr, time::Duration};

use sqlx::{
    ConnectOptions as _,
    mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions},
    postgres::{PgConnectOptions, PgPool, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions},
};

/// Which engine a database runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite: a file, or memory.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL 8 or MariaDB 10.11.
    MySql,
}

/// The pool of one engine. Its `Debug` shows the engine only: sqlx's pools show their
/// connect options, password included.
#[derive(Clone)]
pub enum Pool {
    /// SQLite.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
    /// MySQL or MariaDB.
    MySql(MySqlPool),
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let engine = match self {
            Self::Sqlite(_) => Engine::Sqlite,
            Self::Postgres(_) => Engine::Postgres,
            Self::MySql(_) => Engine::MySql,
        };
        f.debug_struct("Pool")
            .field("engine", &engine)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// The same pool, for `bearer-auth-sqlx`'s store.
    pub fn to_store_pool(&self) -> bearer_auth_sqlx::Pool {
        match self {
            Self::Sqlite(pool) => pool.clone().into(),
            Self::Postgres(pool) => pool.clone().into(),
            Self::MySql(pool) => pool.clone().into(),
        }
    }
}

/// A connection pool and the queries this service runs on it.
#[derive(Debug, Clone)]
pub struct Db {
    pub(crate) pool: Pool,
}

/// Runs `$body` with `$pool` bound to the engine's own pool.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match &$db.pool {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
            $crate::db::Pool::MySql($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// How long one of this service's own queries (users, two-factor) may take, the wait for a
/// connection included, before the request is answered 503: as long as the key store's
/// ([`bearer_auth_sqlx::DEFAULT_QUERY_TIMEOUT`]). Without it, a query sent just before the
/// database became unreachable (a network partition: no answer, no error) would hold its
/// request until the request timeout answered 408.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// `query`, or [`sqlx::Error::PoolTimedOut`] once [`QUERY_TIMEOUT`] has passed (the query
/// is dropped: a transaction it opened is rolled back).
pub(crate) async fn timed<T>(
    query: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    tokio::time::timeout(QUERY_TIMEOUT, query)
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut))
}

/// [`on_pool!`] bounded by [`QUERY_TIMEOUT`]: `$body` (which may use `?` on the query's
/// errors) runs in a future of its own; `Ok` of its value, or the error that ended it
/// (the timeout's among them).
macro_rules! on_pool_timed {
    ($db:expr, $pool:ident => $body:expr) => {
        $crate::db::timed(async { Ok::<_, sqlx::Error>($crate::db::on_pool!($db, $pool => $body)) })
            .await
    };
}
pub(crate) use on_pool_timed;

impl Db {
    /// Connects to `url`: `sqlite://path` (the file is created if missing),
    /// `sqlite::memory:`, `postgres://…` or `mysql://…`.
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        // Also caps sqlx's back-off between reconnection attempts (a fifth of it), so the
        // pool is back within 0.4 s of the database's return.
        let acquire = QUERY_TIMEOUT;
        let pool = match engine_of(url)? {
            Engine::Sqlite => {
                if let Some(file) = sqlite_file(url) {
                    create_owner_only(&file).map_err(sqlx::Error::Io)?;
                }
                let options = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(5))
                    .disable_statement_logging();
                Pool::Sqlite(
                    SqlitePoolOptions::new()
                        .acquire_timeout(acquire)
                        .connect_with(options)
                        .await?,
                )
            }
            Engine::Postgres => Pool::Postgres(
                PgPoolOptions::new()
                    .acquire_timeout(acquire)
                    .connect_with(PgConnectOptions::from_str(url)?.disable_statement_logging())
                    .await?,
            ),
            Engine::MySql => Pool::MySql(
                MySqlPoolOptions::new()
                    .acquire_timeout(acquire)
                    .connect_with(MySqlConnectOptions::from_str(url)?.disable_statement_logging())
                    .await?,
            ),
        };
        Ok(Self { pool })
    }

    /// A database on this pool.
    pub fn from_pool(pool: Pool) -> Self {
        Self { pool }
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        match self.pool {
            Pool::Sqlite(_) => Engine::Sqlite,
            Pool::Postgres(_) => Engine::Postgres,
            Pool::MySql(_) => Engine::MySql,
        }
    }

    /// `sql` with its `?` placeholders in this engine's form.
    pub(crate) fn sql<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        match self.engine() {
            Engine::Postgres => Cow::Owned(numbered_placeholders(sql)),
            Engine::Sqlite | Engine::MySql => Cow::Borrowed(sql),
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }

    /// Creates Laravel's `users` table where it is missing (with Fortify's two-factor
    /// columns), adds the two-factor columns to an existing one that lacks them (as
    /// Fortify's migration does), and creates this service's own table of used TOTP
    /// steps. Leaves everything else as it is.
    pub async fn migrate(&self) -> Result<(), sqlx::Error> {
        let statements: &[&str] = match self.engine() {
            Engine::Sqlite => &[
                r#"create table if not exists "users" ("id" integer primary key autoincrement not null, "name" varchar not null, "email" varchar not null, "email_verified_at" datetime, "password" varchar not null, "two_factor_secret" text, "two_factor_recovery_codes" text, "two_factor_confirmed_at" datetime, "remember_token" varchar, "created_at" datetime, "updated_at" datetime)"#,
                r#"create unique index if not exists "users_email_unique" on "users" ("email")"#,
                r#"create table if not exists "account_api_totp_steps" ("user_id" integer primary key not null, "step" integer not null)"#,
            ],
            Engine::Postgres => &[
                r#"create table if not exists "users" ("id" bigserial not null primary key, "name" varchar(255) not null, "email" varchar(255) not null, "email_verified_at" timestamp(0) without time zone null, "password" varchar(255) not null, "two_factor_secret" text null, "two_factor_recovery_codes" text null, "two_factor_confirmed_at" timestamp(0) without time zone null, "remember_token" varchar(100) null, "created_at" timestamp(0) without time zone null, "updated_at" timestamp(0) without time zone null, constraint "users_email_unique" unique ("email"))"#,
                r#"create table if not exists "account_api_totp_steps" ("user_id" bigint not null primary key, "step" bigint not null)"#,
            ],
            Engine::MySql => &[
                "create table if not exists `users` (`id` bigint unsigned not null auto_increment primary key, `name` varchar(255) not null, `email` varchar(255) not null, `email_verified_at` timestamp null, `password` varchar(255) not null, `two_factor_secret` text null, `two_factor_recovery_codes` text null, `two_factor_confirmed_at` timestamp null, `remember_token` varchar(100) null, `created_at` timestamp null, `updated_at` timestamp null, unique `users_email_unique`(`email`)) default character set utf8mb4 collate 'utf8mb4_unicode_ci'",
                "create table if not exists `account_api_totp_steps` (`user_id` bigint unsigned not null primary key, `step` bigint not null)",
            ],
        };
        for statement in statements {
            on_pool!(self, pool => sqlx::query(statement).execute(pool).await.map(|_| ()))?;
        }
        self.add_two_factor_columns().await
    }

    /// Fortify's `add_two_factor_columns_to_users_table`, for a `users` table made
    /// without it.
    async fn add_two_factor_columns(&self) -> Result<(), sqlx::Error> {
        let present = self.user_columns().await?;
        let timestamp = match self.engine() {
            Engine::Sqlite => "datetime",
            Engine::Postgres => "timestamp(0) without time zone null",
            Engine::MySql => "timestamp null",
        };
        for (column, ty) in [
            ("two_factor_secret", "text null"),
            ("two_factor_recovery_codes", "text null"),
            ("two_factor_confirmed_at", timestamp),
        ] {
            if !present.iter().any(|c| c == column) {
                tracing::info!(column, "adding Fortify's two-factor column to `users`");
                let statement = format!("alter table users add column {column} {ty}");
                on_pool!(self, pool => sqlx::query(&statement).execute(pool).await.map(|_| ()))?;
            }
        }
        Ok(())
    }

    async fn user_columns(&self) -> Result<Vec<String>, sqlx::Error> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                sqlx::query_scalar("select name from pragma_table_info('users')")
                    .fetch_all(pool)
                    .await
            }
            Pool::Postgres(pool) => {
                sqlx::query_scalar(
                    "select column_name::text from information_schema.columns \
                     where table_schema = current_schema() and table_name = 'users'",
                )
                .fetch_all(pool)
                .await
            }
            Pool::MySql(pool) => {
                sqlx::query_scalar(
                    "select cast(column_name as char) from information_schema.columns \
                     where table_schema = database() and table_name = 'users'",
                )
                .fetch_all(pool)
                .await
            }
        }
    }
}

/// The engine a URL names, from its scheme.
pub fn engine_of(url: &str) -> Result<Engine, sqlx::Error> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => Ok(Engine::Sqlite),
        "postgres" | "postgresql" => Ok(Engine::Postgres),
        "mysql" | "mariadb" => Ok(Engine::MySql),
        _ => Err(sqlx::Error::Configuration(
            format!("DATABASE_URL: unknown scheme `{scheme}` (sqlite://, postgres:// or mysql://)")
                .into(),
        )),
    }
}

/// The file of a SQLite URL, if it names one (not `sqlite::memory:`).
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    if !matches!(engine_of(url), Ok(Engine::Sqlite))
        || url.contains(":memory:")
        || url.contains("mode=memory")
    {
        return None;
    }
    let options = SqliteConnectOptions::from_str(url).ok()?;
    let file = options.get_filename();
    (!file.as_os_str().is_empty()).then(|| file.to_path_buf())
}

/// Creates `file`, empty, readable and writable by its owner only, if it does not exist:
/// SQLite then makes a database of it, and gives its `-wal` and `-shm` files the same
/// permissions. An existing file is left as it is.
fn create_owner_only(file: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether others than the owner (its group, everyone) may read `file`: `false` where
/// permissions are not Unix's, or the file is missing.
pub fn readable_by_others(file: &std::path::Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(file).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        false
    }
}

/// `?` placeholders as PostgreSQL's `$1`, `$2`, …; a `?` inside a quoted string or
/// identifier is left alone.
fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match (quote, c) {
            (None, '?') => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
                continue;
            }
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
        out.push(c);
    }
    out
}

/// A time as Laravel writes it: naive `Y-m-d H:i:s`, in UTC.
///
/// On PostgreSQL and MySQL it binds as a timestamp (MySQL sessions of sqlx run in
/// `+00:00`); on SQLite, as the text Laravel writes (sqlx's own encoding would add a
/// fraction, which Laravel's `Y-m-d H:i:s` format does not read).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LaravelTime(time::PrimitiveDateTime);

impl LaravelTime {
    /// Now, to the second.
    pub(crate) fn now() -> Self {
        let now = time::OffsetDateTime::now_utc();
        let now = now.replace_nanosecond(0).unwrap_or(now);
        Self(time::PrimitiveDateTime::new(now.date(), now.time()))
    }

    fn text(&self) -> String {
        let format =
            time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
        self.0.format(&format).unwrap_or_default()
    }
}

mod encode {
    use sqlx::{
        Database, Encode, MySql, Postgres, Sqlite, Type, encode::IsNull, error::BoxDynError,
    };
    use time::PrimitiveDateTime;

    use super::LaravelTime;

    impl Type<Sqlite> for LaravelTime {
        fn type_info() -> <Sqlite as Database>::TypeInfo {
            <String as Type<Sqlite>>::type_info()
        }
    }

    impl<'q> Encode<'q, Sqlite> for LaravelTime {
        fn encode_by_ref(
            &self,
            buf: &mut <Sqlite as Database>::ArgumentBuffer<'q>,
        ) -> Result<IsNull, BoxDynError> {
            <String as Encode<'q, Sqlite>>::encode(self.text(), buf)
        }
    }

    macro_rules! as_timestamp {
        ($($db:ty),*) => {$(
            impl Type<$db> for LaravelTime {
                fn type_info() -> <$db as Database>::TypeInfo {
                    <PrimitiveDateTime as Type<$db>>::type_info()
                }
            }

            impl<'q> Encode<'q, $db> for LaravelTime {
                fn encode_by_ref(
                    &self,
                    buf: &mut <$db as Database>::ArgumentBuffer<'q>,
                ) -> Result<IsNull, BoxDynError> {
                    <PrimitiveDateTime as Encode<'q, $db>>::encode_by_ref(&self.0, buf)
                }
            }
        )*};
    }

    as_timestamp!(Postgres, MySql);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            numbered_placeholders("select '?' from \"a?\" where a = ? and b = ?"),
            "select '?' from \"a?\" where a = $1 and b = $2"
        );
    }

    #[tokio::test]
    async fn debug_shows_no_connect_options() {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://app:hunter2@db.invalid/app")
            .unwrap();
        let db = Db::from_pool(Pool::Postgres(pool));
        assert_eq!(
            format!("{db:?}"),
            "Db { pool: Pool { engine: Postgres, .. } }"
        );
    }

    #[test]
    fn engines_by_scheme() {
        assert_eq!(engine_of("sqlite://x.db").unwrap(), Engine::Sqlite);
        assert_eq!(engine_of("sqlite::memory:").unwrap(), Engine::Sqlite);
        assert_eq!(engine_of("postgres://h/db").unwrap(), Engine::Postgres);
        assert_eq!(engine_of("postgresql://h/db").unwrap(), Engine::Postgres);
        assert_eq!(engine_of("mysql://h/db").unwrap(), Engine::MySql);
        assert!(engine_of("redis://h").is_err());
    }

    #[test]
    fn sqlite_files() {
        assert_eq!(
            sqlite_file("sqlite://data/app.sqlite3"),
            Some(PathBuf::from("data/app.sqlite3"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("sqlite://app.db?mode=memory"), None);
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }

    #[cfg(unix)]
    #[test]
    fn files_readable_by_others() {
        use std::os::unix::fs::PermissionsExt as _;

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.sqlite3");
        assert!(!readable_by_others(&file));
        create_owner_only(&file).unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!readable_by_others(&file));
        for mode in [0o640, 0o604, 0o644] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(readable_by_others(&file), "{mode:o}");
            // An existing file is left as it is.
            create_owner_only(&file).unwrap();
            assert_eq!(
                std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                mode
            );
        }
    }

    #[test]
    fn laravel_time_text() {
        let t = LaravelTime(time::macros::datetime!(2024-03-05 07:08:09));
        assert_eq!(t.text(), "2024-03-05 07:08:09");
        assert_eq!(LaravelTime::now().text().len(), 19);
    }
}

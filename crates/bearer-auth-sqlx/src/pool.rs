//! The connection pool of one of the engines compiled in.

use std::fmt;

use crate::DEFAULT_QUERY_TIMEOUT;

#[cfg(feature = "mysql")]
use sqlx::MySqlPool;
#[cfg(feature = "postgres")]
use sqlx::PgPool;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;

/// Which database a [`Pool`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Engine {
    /// SQLite (feature `sqlite`).
    Sqlite,
    /// PostgreSQL (feature `postgres`).
    Postgres,
    /// MySQL 8 or MariaDB 10.11 (feature `mysql`).
    MySql,
}

impl Engine {
    /// Whether a key id or an owner id fits the engine's `bigint` columns: any `u64` on
    /// MySQL (`bigint unsigned`), up to `i64::MAX` elsewhere.
    pub fn id_fits(self, id: u64) -> bool {
        match self {
            Self::MySql => true,
            Self::Sqlite | Self::Postgres => i64::try_from(id).is_ok(),
        }
    }

    /// The engine a database URL's scheme names: `sqlite`, `postgres` or `postgresql`,
    /// `mysql` or `mariadb`.
    fn from_scheme(scheme: &str) -> Option<Self> {
        match scheme {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::MySql),
            _ => None,
        }
    }

    /// The engine's name: `sqlite`, `postgres` or `mysql`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::MySql => "mysql",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connection pool of one of the engines compiled in, handed to
/// [`SqlStore`](crate::SqlStore). Made from the application's own sqlx pool with
/// `From`/`Into`, or with [`Pool::connect`].
///
/// Cloning is cheap: clones share the pool.
#[derive(Clone)]
#[non_exhaustive]
pub enum Pool {
    /// A SQLite pool.
    #[cfg(feature = "sqlite")]
    Sqlite(SqlitePool),
    /// A PostgreSQL pool.
    #[cfg(feature = "postgres")]
    Postgres(PgPool),
    /// A MySQL or MariaDB pool.
    #[cfg(feature = "mysql")]
    MySql(MySqlPool),
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pools' own `Debug` shows their connect options, which may hold a password.
        f.debug_struct("Pool")
            .field("engine", &self.engine())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "sqlite")]
impl From<SqlitePool> for Pool {
    fn from(pool: SqlitePool) -> Self {
        Self::Sqlite(pool)
    }
}

#[cfg(feature = "postgres")]
impl From<PgPool> for Pool {
    fn from(pool: PgPool) -> Self {
        Self::Postgres(pool)
    }
}

#[cfg(feature = "mysql")]
impl From<MySqlPool> for Pool {
    fn from(pool: MySqlPool) -> Self {
        Self::MySql(pool)
    }
}

impl Pool {
    /// Connects to `url` with sqlx's default pool options but one: a connection is
    /// waited for at most [`DEFAULT_QUERY_TIMEOUT`] (2 s; sqlx's default is 30 s), so
    /// that a request finds out soon that the database is gone. By the URL's scheme:
    /// `sqlite:` (the file is created if missing; `sqlite::memory:` gets one connection
    /// that is kept, since each connection to it would otherwise see a database of its
    /// own), `postgres:`/`postgresql:`, or `mysql:` (MySQL and MariaDB). For other pool
    /// options, build the sqlx pool yourself and convert it with `Into`; set its
    /// `acquire_timeout` short too (the store's [query timeout](crate::SqlStoreBuilder::query_timeout)
    /// bounds the wait either way).
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match Engine::from_scheme(scheme) {
            #[cfg(feature = "sqlite")]
            Some(Engine::Sqlite) => Self::connect_sqlite(url).await,
            #[cfg(feature = "postgres")]
            Some(Engine::Postgres) => Self::connect_postgres(url).await,
            #[cfg(feature = "mysql")]
            Some(Engine::MySql) => Self::connect_mysql(url).await,
            _ => Err(unsupported(scheme)),
        }
    }

    #[cfg(feature = "sqlite")]
    async fn connect_sqlite(url: &str) -> Result<Self, sqlx::Error> {
        use std::str::FromStr;

        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)?.create_if_missing(true);
        let pool = if memory {
            SqlitePoolOptions::new()
                .acquire_timeout(DEFAULT_QUERY_TIMEOUT)
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await?
        } else {
            // Readers do not wait for the batched `last_used_at` writes.
            SqlitePoolOptions::new()
                .acquire_timeout(DEFAULT_QUERY_TIMEOUT)
                .connect_with(options.journal_mode(SqliteJournalMode::Wal))
                .await?
        };
        Ok(Self::Sqlite(pool))
    }

    #[cfg(feature = "postgres")]
    async fn connect_postgres(url: &str) -> Result<Self, sqlx::Error> {
        use sqlx::postgres::PgPoolOptions;

        Ok(Self::Postgres(
            PgPoolOptions::new()
                .acquire_timeout(DEFAULT_QUERY_TIMEOUT)
                .connect(url)
                .await?,
        ))
    }

    #[cfg(feature = "mysql")]
    async fn connect_mysql(url: &str) -> Result<Self, sqlx::Error> {
        let url = match url.strip_prefix("mariadb:") {
            Some(rest) => format!("mysql:{rest}"),
            None => url.to_owned(),
        };
        use sqlx::mysql::MySqlPoolOptions;

        Ok(Self::MySql(
            MySqlPoolOptions::new()
                .acquire_timeout(DEFAULT_QUERY_TIMEOUT)
                .connect(&url)
                .await?,
        ))
    }

    /// Which engine this is.
    pub fn engine(&self) -> Engine {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => Engine::Sqlite,
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => Engine::Postgres,
            #[cfg(feature = "mysql")]
            Self::MySql(_) => Engine::MySql,
        }
    }

    /// Closes the pool: every connection, once returned. The store answers 503 from then
    /// on.
    pub async fn close(&self) {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(pool) => pool.close().await,
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => pool.close().await,
            #[cfg(feature = "mysql")]
            Self::MySql(pool) => pool.close().await,
        }
    }
}

/// Why a URL of `scheme` cannot be connected to: an engine whose feature this build does
/// not have, or no engine at all.
fn unsupported(scheme: &str) -> sqlx::Error {
    let message = match Engine::from_scheme(scheme) {
        // The engine's name is its feature's.
        Some(engine) => format!(
            "bearer-auth-sqlx was built without its `{}` feature",
            engine.as_str()
        ),
        None => format!("bearer-auth-sqlx: unsupported database URL scheme {scheme:?}"),
    };
    sqlx::Error::Configuration(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(error: sqlx::Error) -> String {
        match error {
            sqlx::Error::Configuration(e) => e.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_engine_left_out_of_the_build_is_named_by_its_feature() {
        for (scheme, feature) in [
            ("sqlite", "sqlite"),
            ("postgres", "postgres"),
            ("postgresql", "postgres"),
            ("mysql", "mysql"),
            ("mariadb", "mysql"),
        ] {
            assert_eq!(
                message(unsupported(scheme)),
                format!("bearer-auth-sqlx was built without its `{feature}` feature")
            );
        }
        assert_eq!(
            message(unsupported("oracle")),
            r#"bearer-auth-sqlx: unsupported database URL scheme "oracle""#
        );
    }
}

//! `Pool::connect`: each URL scheme to its engine, with the options it promises (a 2 s
//! wait for a connection; SQLite in memory on one connection that is kept, a SQLite
//! file in WAL mode), and a `Debug` that shows no connect options.

use std::{sync::atomic::AtomicBool, time::Duration};

use bearer_auth_sqlx::{DEFAULT_QUERY_TIMEOUT, Engine, Pool, sqlx};

use crate::common::{MYSQL_URL, POSTGRES_URL, server_url, unique_name};

#[tokio::test]
async fn sqlite_in_memory_is_one_connection_kept() {
    for url in ["sqlite::memory:", "sqlite://ignored.db?mode=memory"] {
        let pool = Pool::connect(url).await.unwrap();
        assert_eq!(pool.engine(), Engine::Sqlite);
        assert_eq!(format!("{pool:?}"), "Pool { engine: Sqlite, .. }");
        let Pool::Sqlite(p) = &pool else {
            panic!("{url}: {pool:?}")
        };
        let options = p.options();
        assert_eq!(
            (options.get_max_connections(), options.get_min_connections()),
            (1, 1),
            "{url}"
        );
        assert_eq!(options.get_acquire_timeout(), DEFAULT_QUERY_TIMEOUT);
        assert_eq!(
            (options.get_idle_timeout(), options.get_max_lifetime()),
            (None, None)
        );
        pool.close().await;
    }
    assert!(!std::path::Path::new("ignored.db").exists());
}

#[tokio::test]
async fn a_sqlite_file_is_created_in_wal_mode() {
    let path = std::env::temp_dir().join(format!("bearer-auth-sqlx-{}.db", unique_name()));
    let pool = Pool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert!(path.exists());
    let Pool::Sqlite(p) = &pool else {
        panic!("{pool:?}")
    };
    let mode: String = sqlx::query_scalar("pragma journal_mode")
        .fetch_one(p)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    assert!(p.options().get_max_connections() > 1);
    assert_eq!(p.options().get_acquire_timeout(), DEFAULT_QUERY_TIMEOUT);
    pool.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[tokio::test]
async fn an_unknown_scheme_is_a_configuration_error() {
    for url in ["oracle://db/x", "sqlite3://x", "no scheme", ""] {
        match Pool::connect(url).await {
            Err(sqlx::Error::Configuration(e)) => {
                assert!(
                    e.to_string()
                        .starts_with("bearer-auth-sqlx: unsupported database URL scheme "),
                    "{e}"
                );
            }
            other => panic!("{url}: {other:?}"),
        }
    }
}

/// `url` with its scheme replaced by `scheme` and, for PostgreSQL, a password added (its
/// tests trust loopback, and ignore it; MariaDB refuses a password its user does not have).
fn with_scheme_and_password(url: &str, scheme: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = match rest
        .split_once('@')
        .filter(|_| scheme.starts_with("postgres"))
    {
        Some((user, host)) => format!(
            "{}:hunter2-secret@{host}",
            user.split(':').next().unwrap_or(user)
        ),
        None => rest.to_owned(),
    };
    format!("{scheme}://{rest}")
}

async fn each_scheme(var: &str, said: &AtomicBool, schemes: [&str; 2], engine: Engine) {
    let Some(url) = server_url(var, said) else {
        return;
    };
    for scheme in schemes {
        let url = with_scheme_and_password(&url, scheme);
        let pool = Pool::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{scheme}: {e}"));
        assert_eq!(pool.engine(), engine);
        let debug = format!("{pool:?}");
        assert_eq!(debug, format!("Pool {{ engine: {engine:?}, .. }}"));
        assert!(!debug.contains("hunter2"));
        let one: i64 = match &pool {
            Pool::Postgres(p) => sqlx::query_scalar("select 1::bigint").fetch_one(p).await,
            Pool::MySql(p) => {
                sqlx::query_scalar("select cast(1 as signed)")
                    .fetch_one(p)
                    .await
            }
            other => panic!("{other:?}"),
        }
        .unwrap();
        assert_eq!(one, 1);
        let timeout = match &pool {
            Pool::Postgres(p) => p.options().get_acquire_timeout(),
            Pool::MySql(p) => p.options().get_acquire_timeout(),
            other => panic!("{other:?}"),
        };
        assert_eq!(timeout, Duration::from_secs(2));
        pool.close().await;
    }
}

#[tokio::test]
async fn postgres_and_postgresql_urls_connect_to_postgres() {
    static SAID: AtomicBool = AtomicBool::new(false);
    each_scheme(
        POSTGRES_URL,
        &SAID,
        ["postgres", "postgresql"],
        Engine::Postgres,
    )
    .await;
}

#[tokio::test]
async fn mysql_and_mariadb_urls_connect_to_mysql() {
    static SAID: AtomicBool = AtomicBool::new(false);
    each_scheme(MYSQL_URL, &SAID, ["mysql", "mariadb"], Engine::MySql).await;
}

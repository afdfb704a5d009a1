//! One database per test, on every engine.
//!
//! SQLite always runs, on a file of its own in the temp directory. PostgreSQL and
//! MySQL/MariaDB run when `BEARER_AUTH_POSTGRES_URL` / `BEARER_AUTH_MYSQL_URL` are set
//! (e.g. `postgres://postgres@127.0.0.1:5432/test`, `mysql://root@127.0.0.1:3306/test`);
//! unset, their tests say they were skipped, and fail when `CI=true`. Tests run in
//! parallel against one server: each gets its own PostgreSQL schema (on the search path
//! of its pool's connections) or its own MySQL database, dropped at its end.

use std::{
    io::Write as _,
    net::{SocketAddr, ToSocketAddrs},
    panic::AssertUnwindSafe,
    pin::Pin,
    str::FromStr,
    sync::atomic::{AtomicBool, Ordering},
    task::{Context, Poll},
};

use bearer_auth::{BearerToken, Rejection};
use bearer_auth_sqlx::{DEFAULT_QUERY_TIMEOUT, Pool, SqlStore, sqlx};
use sqlx::{
    Row,
    mysql::{MySqlConnectOptions, MySqlPoolOptions},
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::SqlitePoolOptions,
};

pub(crate) const POSTGRES_URL: &str = "BEARER_AUTH_POSTGRES_URL";
pub(crate) const MYSQL_URL: &str = "BEARER_AUTH_MYSQL_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sqlite,
    Postgres,
    Mysql,
}

/// A database of one test's own.
pub(crate) struct TestDb {
    pub(crate) kind: Kind,
    pub(crate) pool: Pool,
    /// The PostgreSQL schema or MySQL database, or the SQLite file.
    name: String,
    url: String,
}

/// Runs `test` on a fresh database of `kind`, or says it was skipped. The database is
/// dropped even when the test fails.
pub(crate) async fn run(kind: Kind, test: impl AsyncFnOnce(&TestDb)) {
    let Some(db) = TestDb::new(kind).await else {
        return;
    };
    let outcome = CatchUnwind(Box::pin(test(&db))).await;
    db.finish().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A future's panic, caught as an `Err`.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// Generates, for each test function `f(&TestDb)`, a module `f` with one test per
/// engine: `f::sqlite`, `f::postgres`, `f::mysql`.
macro_rules! on_every_engine {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use crate::common::{run, Kind};

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    run(Kind::Sqlite, super::$name).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    run(Kind::Postgres, super::$name).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn mysql() {
                    run(Kind::Mysql, super::$name).await;
                }
            }
        )*
    };
}
pub(crate) use on_every_engine;

/// The server URL in `var`; `None` (the test is skipped, which is said once) when
/// unset, and a failure when `CI=true`.
pub(crate) fn server_url(var: &str, said: &AtomicBool) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{var} is unset, and CI=true: the server tests must run, not be skipped"
            );
            if !said.swap(true, Ordering::Relaxed) {
                // Written past the test harness's capture, so that it is seen.
                let _ = writeln!(
                    std::io::stderr(),
                    "bearer-auth-sqlx: tests on this server SKIPPED: {var} is unset"
                );
            }
            None
        }
    }
}

pub(crate) fn unique_name() -> String {
    let mut bytes = [0_u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("bas_{}_{hex}", std::process::id())
}

impl TestDb {
    pub(crate) async fn new(kind: Kind) -> Option<Self> {
        static POSTGRES_SAID: AtomicBool = AtomicBool::new(false);
        static MYSQL_SAID: AtomicBool = AtomicBool::new(false);
        let name = unique_name();
        match kind {
            Kind::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.sqlite"));
                let url = format!("sqlite://{}", path.display());
                let pool = Pool::connect(&url).await.unwrap();
                Some(Self {
                    kind,
                    pool,
                    name: path.display().to_string(),
                    url,
                })
            }
            Kind::Postgres => {
                let url = server_url(POSTGRES_URL, &POSTGRES_SAID)?;
                let admin = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&url)
                    .await
                    .unwrap();
                sqlx::query(&format!("create schema {name}"))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
                let options = PgConnectOptions::from_str(&url)
                    .unwrap()
                    .options([("search_path", name.as_str())]);
                let pool = PgPoolOptions::new()
                    .max_connections(8)
                    .connect_with(options)
                    .await
                    .unwrap();
                Some(Self {
                    kind,
                    pool: pool.into(),
                    name,
                    url,
                })
            }
            Kind::Mysql => {
                let url = server_url(MYSQL_URL, &MYSQL_SAID)?;
                let admin = MySqlPoolOptions::new()
                    .max_connections(1)
                    .connect(&url)
                    .await
                    .unwrap();
                sqlx::query(&format!("create database {name}"))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
                let pool = MySqlPoolOptions::new()
                    .max_connections(8)
                    .connect_with(MySqlConnectOptions::from_str(&url).unwrap().database(&name))
                    .await
                    .unwrap();
                Some(Self {
                    kind,
                    pool: pool.into(),
                    name,
                    url,
                })
            }
        }
    }

    /// Another pool on the same database: another instance of the service.
    pub(crate) async fn another_pool(&self) -> Pool {
        match self.kind {
            Kind::Sqlite => Pool::connect(&self.url).await.unwrap(),
            Kind::Postgres => {
                let options = PgConnectOptions::from_str(&self.url)
                    .unwrap()
                    .options([("search_path", self.name.as_str())]);
                PgPoolOptions::new()
                    .max_connections(4)
                    .connect_with(options)
                    .await
                    .unwrap()
                    .into()
            }
            Kind::Mysql => MySqlPoolOptions::new()
                .max_connections(4)
                .connect_with(
                    MySqlConnectOptions::from_str(&self.url)
                        .unwrap()
                        .database(&self.name),
                )
                .await
                .unwrap()
                .into(),
        }
    }

    /// A pool of one connection on this database, made with the options of `pool`: a
    /// test that holds that connection holds back every query of a store on it.
    pub(crate) async fn one_connection_pool(&self) -> Pool {
        match &self.pool {
            Pool::Sqlite(p) => SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with((*p.connect_options()).clone())
                .await
                .unwrap()
                .into(),
            Pool::Postgres(p) => PgPoolOptions::new()
                .max_connections(1)
                .connect_with((*p.connect_options()).clone())
                .await
                .unwrap()
                .into(),
            Pool::MySql(p) => MySqlPoolOptions::new()
                .max_connections(1)
                .connect_with((*p.connect_options()).clone())
                .await
                .unwrap()
                .into(),
            _ => unreachable!(),
        }
    }

    /// The address of the database server (PostgreSQL or MySQL).
    pub(crate) fn server_addr(&self) -> SocketAddr {
        let (host, port) = match self.kind {
            Kind::Postgres => {
                let options = PgConnectOptions::from_str(&self.url).unwrap();
                (options.get_host().to_owned(), options.get_port())
            }
            Kind::Mysql => {
                let options = MySqlConnectOptions::from_str(&self.url).unwrap();
                (options.get_host().to_owned(), options.get_port())
            }
            Kind::Sqlite => panic!("SQLite has no server"),
        };
        (host.as_str(), port)
            .to_socket_addrs()
            .unwrap()
            .find(SocketAddr::is_ipv4)
            .unwrap()
    }

    /// A pool on this database through `addr` (a proxy), made as `Pool::connect` makes
    /// them (a connection waited for at most `DEFAULT_QUERY_TIMEOUT`), connecting lazily.
    pub(crate) fn pool_through(&self, addr: SocketAddr) -> Pool {
        let host = addr.ip().to_string();
        match self.kind {
            Kind::Postgres => PgPoolOptions::new()
                .acquire_timeout(DEFAULT_QUERY_TIMEOUT)
                .connect_lazy_with(
                    PgConnectOptions::from_str(&self.url)
                        .unwrap()
                        .host(&host)
                        .port(addr.port())
                        .options([("search_path", self.name.as_str())]),
                )
                .into(),
            Kind::Mysql => MySqlPoolOptions::new()
                .acquire_timeout(DEFAULT_QUERY_TIMEOUT)
                .connect_lazy_with(
                    MySqlConnectOptions::from_str(&self.url)
                        .unwrap()
                        .host(&host)
                        .port(addr.port())
                        .database(&self.name),
                )
                .into(),
            Kind::Sqlite => panic!("SQLite has no server"),
        }
    }

    /// A migrated store with the defaults.
    pub(crate) async fn store(&self) -> SqlStore {
        let store = SqlStore::new(self.pool.clone());
        store.migrate().await.unwrap();
        store
    }

    /// Drops the schema, database or file.
    async fn finish(self) {
        self.pool.close().await;
        match self.kind {
            Kind::Sqlite => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", self.name));
                }
            }
            Kind::Postgres => {
                let admin = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&self.url)
                    .await
                    .unwrap();
                sqlx::query(&format!("drop schema {} cascade", self.name))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
            }
            Kind::Mysql => {
                let admin = MySqlPoolOptions::new()
                    .max_connections(1)
                    .connect(&self.url)
                    .await
                    .unwrap();
                sqlx::query(&format!("drop database {}", self.name))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
            }
        }
    }

    /// Runs SQL statements, one by one.
    pub(crate) async fn exec(&self, statements: &[&str]) {
        for sql in statements {
            // Unprepared: MySQL prepares no `create trigger`.
            match &self.pool {
                Pool::Sqlite(p) => drop(sqlx::raw_sql(sql).execute(p).await.unwrap()),
                Pool::Postgres(p) => drop(sqlx::raw_sql(sql).execute(p).await.unwrap()),
                Pool::MySql(p) => drop(sqlx::raw_sql(sql).execute(p).await.unwrap()),
                _ => unreachable!(),
            }
        }
    }

    /// The first column of each row of `sql`, as text (NULL as `None`). Timestamps come
    /// back as the database prints them.
    pub(crate) async fn texts(&self, sql: &str) -> Vec<Option<String>> {
        match &self.pool {
            Pool::Sqlite(p) => sqlx::query(sql)
                .fetch_all(p)
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get::<Option<String>, _>(0).unwrap())
                .collect(),
            Pool::Postgres(p) => sqlx::query(sql)
                .fetch_all(p)
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get::<Option<String>, _>(0).unwrap())
                .collect(),
            Pool::MySql(p) => sqlx::query(sql)
                .fetch_all(p)
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get::<Option<String>, _>(0).unwrap())
                .collect(),
            _ => unreachable!(),
        }
    }

    /// One column of one row, as text: `column` cast to text in the engine's syntax.
    pub(crate) async fn column(&self, column: &str, id: u64) -> Option<String> {
        let cast = match self.kind {
            Kind::Sqlite => format!("cast({column} as text)"),
            Kind::Postgres => format!("{column}::text"),
            Kind::Mysql => format!("cast({column} as char)"),
        };
        let mut rows = self
            .texts(&format!(
                "select {cast} from personal_access_tokens where id = {id}"
            ))
            .await;
        assert_eq!(rows.len(), 1, "row {id}");
        rows.remove(0)
    }

    /// How many rows `personal_access_tokens` has.
    pub(crate) async fn count_rows(&self) -> u64 {
        let sql = match self.kind {
            Kind::Mysql => "select cast(count(*) as char) from personal_access_tokens",
            Kind::Postgres => "select count(*)::text from personal_access_tokens",
            Kind::Sqlite => "select cast(count(*) as text) from personal_access_tokens",
        };
        self.texts(sql).await[0]
            .as_deref()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Inserts a row as a Laravel app does (`$user->tokens()->create([...])`): every value
    /// bound as PDO binds it, timestamps as `Y-m-d H:i:s` text. Its id.
    pub(crate) async fn insert_laravel_row(&self, row: LaravelRow<'_>) -> u64 {
        let ts = |p: &str| match self.kind {
            Kind::Postgres => format!("{p}::timestamp"),
            _ => p.to_owned(),
        };
        let ph: Vec<String> = (1..=9)
            .map(|i| match self.kind {
                Kind::Postgres => format!("${i}"),
                _ => "?".to_owned(),
            })
            .collect();
        let sql = format!(
            "insert into personal_access_tokens (tokenable_type, tokenable_id, name, token, abilities, last_used_at, expires_at, created_at, updated_at) \
             values ({}, {}, {}, {}, {}, {}, {}, {}, {})",
            ph[0],
            ph[1],
            ph[2],
            ph[3],
            ph[4],
            ts(&ph[5]),
            ts(&ph[6]),
            ts(&ph[7]),
            ts(&ph[8]),
        );
        macro_rules! bind_all {
            ($q:expr, $owner:expr) => {
                $q.bind(row.tokenable_type)
                    .bind($owner)
                    .bind(row.name)
                    .bind(row.token_hex)
                    .bind(row.abilities)
                    .bind(row.last_used_at)
                    .bind(row.expires_at)
                    .bind(row.created_at)
                    .bind(row.updated_at)
            };
        }
        match &self.pool {
            Pool::Sqlite(p) => {
                let owner = i64::try_from(row.tokenable_id).unwrap();
                let r = bind_all!(sqlx::query(&sql), owner)
                    .execute(p)
                    .await
                    .unwrap();
                u64::try_from(r.last_insert_rowid()).unwrap()
            }
            Pool::Postgres(p) => {
                let owner = i64::try_from(row.tokenable_id).unwrap();
                let id: i64 = bind_all!(sqlx::query_scalar(&format!("{sql} returning id")), owner)
                    .fetch_one(p)
                    .await
                    .unwrap();
                u64::try_from(id).unwrap()
            }
            Pool::MySql(p) => bind_all!(sqlx::query(&sql), row.tokenable_id)
                .execute(p)
                .await
                .unwrap()
                .last_insert_id(),
            _ => unreachable!(),
        }
    }
}

/// A row as a Laravel app writes it.
#[derive(Clone, Copy)]
pub(crate) struct LaravelRow<'a> {
    pub(crate) tokenable_type: &'a str,
    pub(crate) tokenable_id: u64,
    pub(crate) name: &'a str,
    pub(crate) token_hex: &'a str,
    pub(crate) abilities: Option<&'a str>,
    pub(crate) last_used_at: Option<&'a str>,
    pub(crate) expires_at: Option<&'a str>,
    pub(crate) created_at: Option<&'a str>,
    pub(crate) updated_at: Option<&'a str>,
}

impl<'a> LaravelRow<'a> {
    /// `$user->createToken($name)` for user 7 of `App\Models\User`, at `created_at`.
    pub(crate) fn user_token(token_hex: &'a str, created_at: &'a str) -> Self {
        Self {
            tokenable_type: "App\\Models\\User",
            tokenable_id: 7,
            name: "laptop",
            token_hex,
            abilities: Some(r#"["*"]"#),
            last_used_at: None,
            expires_at: None,
            created_at: Some(created_at),
            updated_at: Some(created_at),
        }
    }
}

/// Now, as Laravel writes it in UTC, shifted by `secs`.
pub(crate) fn laravel_now(secs: i64) -> String {
    (bearer_auth_sqlx::chrono::Utc::now() + bearer_auth_sqlx::chrono::Duration::seconds(secs))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

pub(crate) fn bearer(s: &str) -> BearerToken {
    BearerToken::from_token(s).unwrap()
}

/// The reason of an outcome: `ok`, or the rejection's reason.
pub(crate) fn reason<P>(outcome: Result<P, Rejection>) -> &'static str {
    outcome.map(|_| "ok").unwrap_or_else(|e| e.reason())
}

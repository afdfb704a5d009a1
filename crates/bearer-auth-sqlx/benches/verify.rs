//! The SQL store's verification: `cargo bench -p bearer-auth-sqlx --bench verify`.
//!
//! - `verify/sql-hit`: `SqlStore::verify` of a valid token whose key is in the store's
//!   cache (no query), cycling through 1,024 keys. Each call criterion makes also
//!   verifies as many tokens against a `MemoryStore` holding 1,024 keys, alternating in
//!   blocks of 64, and the bench prints and writes to
//!   `<criterion dir>/verify_sql-hit/paired.json` the median over the samples of
//!   (time of the hits ÷ time of `MemoryStore` beside them): the machine's speed drifts
//!   between benches, and this ratio cancels it. `verify_now/sql-hit` does the same with
//!   `verify_now`, the adapters' fast path.
//! - `verify/sql-miss/ENGINE`: `SqlStore::verify` of a valid token without a cache: one
//!   query on the unique index, cycling through 1,024 keys. SQLite (a file, WAL)
//!   always; PostgreSQL and MySQL/MariaDB when `BEARER_AUTH_POSTGRES_URL` /
//!   `BEARER_AUTH_MYSQL_URL` are set (a schema or database of the bench's own, dropped
//!   at the end).

#![allow(clippy::expect_used, clippy::unwrap_used)] // a bench harness, not library code

use std::{
    future::Future,
    hint::black_box,
    path::{Path, PathBuf},
    pin::pin,
    str::FromStr,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use bearer_auth::{BearerToken, MemoryStore, NewToken, TokenStore, TokenVerifier};
use bearer_auth_sqlx::{
    Pool, SqlStore,
    sqlx::{
        self,
        mysql::{MySqlConnectOptions, MySqlPoolOptions},
        postgres::{PgConnectOptions, PgPoolOptions},
    },
};
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// A hit never waits, so one poll finishes it.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("a cache hit never waits"),
    }
}

const KEYS: u64 = 1024;

/// Samples criterion takes of each bench (its default, set explicitly: the paired ratio
/// is the median over exactly these).
const SAMPLES: usize = 100;

/// Tokens verified with one store before switching to the other.
const BLOCK: u64 = 64;

fn runtime() -> Runtime {
    // One thread, driven only during setup: the store's background writer of
    // `last_used_at` never runs while a bench is timed.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn tokens(issued: Vec<bearer_auth::IssuedToken>) -> Vec<BearerToken> {
    issued
        .iter()
        .map(|i| BearerToken::from_token(i.plain_text_token().as_str()).unwrap())
        .collect()
}

fn memory_store() -> (MemoryStore<u64>, Vec<BearerToken>) {
    let store = MemoryStore::new();
    let issued = (0..KEYS)
        .map(|i| MemoryStore::create(&store, NewToken::new(i, "bench")).unwrap())
        .collect();
    (store, tokens(issued))
}

/// A store on `pool` holding [`KEYS`] keys, and their tokens.
async fn sql_store(pool: Pool, cached: bool) -> (SqlStore, Vec<BearerToken>) {
    let builder = SqlStore::builder(pool);
    let store = if cached {
        // Longer than any bench: every verification is a hit.
        builder.cache_ttl(Duration::from_secs(3600)).build()
    } else {
        builder.without_cache().build()
    };
    store.migrate().await.unwrap();
    let mut issued = Vec::new();
    for i in 0..KEYS {
        issued.push(store.create(NewToken::new(i, "bench")).await.unwrap());
    }
    let tokens = tokens(issued);
    for token in &tokens {
        store.verify(token).await.unwrap();
    }
    (store, tokens)
}

/// Verifies `n` tokens from `next` with `verify`; the time it took.
fn time_n<'a>(
    n: u64,
    next: &mut impl Iterator<Item = &'a BearerToken>,
    mut verify: impl FnMut(&BearerToken),
) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        verify(next.next().unwrap());
    }
    start.elapsed()
}

fn hit(c: &mut Criterion) {
    let rt = runtime();
    let (sql, sql_tokens) = rt.block_on(async {
        let pool = Pool::connect("sqlite::memory:").await.unwrap();
        sql_store(pool, true).await
    });
    let (memory, memory_tokens) = memory_store();
    for fast_path in [false, true] {
        let id = if fast_path {
            "verify_now/sql-hit"
        } else {
            "verify/sql-hit"
        };
        let mut ratios = Vec::new();
        let mut group = c.benchmark_group(if fast_path { "verify_now" } else { "verify" });
        group.sample_size(SAMPLES);
        group.bench_function("sql-hit", |b| {
            let mut next = sql_tokens.iter().cycle();
            let mut next_memory = memory_tokens.iter().cycle();
            b.iter_custom(|iters| {
                let (mut with, mut beside) = (Duration::ZERO, Duration::ZERO);
                let mut done = 0;
                while done < iters {
                    let block = BLOCK.min(iters - done);
                    if fast_path {
                        beside += time_n(block, &mut next_memory, |t| {
                            black_box(
                                memory
                                    .verify_now(black_box(t.as_borrowed()))
                                    .unwrap()
                                    .unwrap(),
                            );
                        });
                        with += time_n(block, &mut next, |t| {
                            black_box(sql.verify_now(black_box(t.as_borrowed())).unwrap().unwrap());
                        });
                    } else {
                        beside += time_n(block, &mut next_memory, |t| {
                            black_box(block_on(memory.verify(black_box(t))).unwrap());
                        });
                        with += time_n(block, &mut next, |t| {
                            black_box(block_on(sql.verify(black_box(t))).unwrap());
                        });
                    }
                    done += block;
                }
                ratios.push(with.as_secs_f64() / beside.as_secs_f64());
                with
            })
        });
        group.finish();
        report_paired(id, &ratios);
    }
    assert_eq!(
        sql.cache_stats().lookups,
        KEYS,
        "every timed verification was a hit"
    );
}

/// Prints the median of the last [`SAMPLES`] ratios and leaves it beside criterion's own
/// estimates, as `<criterion dir>/<id with / as _>/paired.json`.
fn report_paired(id: &str, ratios: &[f64]) {
    let mut last = ratios[ratios.len().saturating_sub(SAMPLES)..].to_vec();
    if last.is_empty() {
        return; // filtered out of this run
    }
    last.sort_by(f64::total_cmp);
    let mid = last.len() / 2;
    let ratio = if last.len().is_multiple_of(2) {
        (last[mid - 1] + last[mid]) / 2.0
    } else {
        last[mid]
    };
    println!(
        "{id}: paired against MemoryStore (median of {} samples): {ratio:.3}x",
        last.len()
    );
    let root = std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR").map(|t| PathBuf::from(t).join("criterion"))
        })
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion"));
    let dir = root.join(id.replace('/', "_"));
    if std::fs::create_dir_all(&dir).is_ok() {
        let json = format!(
            "{{\"paired_relative_to_memory_store\":{ratio},\"samples\":{}}}\n",
            last.len()
        );
        let _ = std::fs::write(dir.join("paired.json"), json);
    }
}

/// A database of the bench's own on the server at `$var`, and how to drop it.
struct Server {
    pool: Pool,
    drop: Box<dyn FnOnce(&Runtime)>,
}

fn name() -> String {
    format!("bas_bench_{}", std::process::id())
}

async fn postgres(url: String) -> Server {
    let name = name();
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    sqlx::query(&format!("create schema {name}"))
        .execute(&admin)
        .await
        .unwrap();
    let options = PgConnectOptions::from_str(&url)
        .unwrap()
        .options([("search_path", name.as_str())]);
    let pool = PgPoolOptions::new().connect_with(options).await.unwrap();
    Server {
        pool: pool.into(),
        drop: Box::new(move |rt| {
            rt.block_on(async {
                sqlx::query(&format!("drop schema {name} cascade"))
                    .execute(&admin)
                    .await
                    .unwrap();
            });
        }),
    }
}

async fn mysql(url: String) -> Server {
    let name = name();
    let admin = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    sqlx::query(&format!("create database {name}"))
        .execute(&admin)
        .await
        .unwrap();
    let options = MySqlConnectOptions::from_str(&url).unwrap().database(&name);
    let pool = MySqlPoolOptions::new().connect_with(options).await.unwrap();
    Server {
        pool: pool.into(),
        drop: Box::new(move |rt| {
            rt.block_on(async {
                sqlx::query(&format!("drop database {name}"))
                    .execute(&admin)
                    .await
                    .unwrap();
            });
        }),
    }
}

fn miss(c: &mut Criterion) {
    let rt = runtime();
    let dir = std::env::temp_dir().join(format!("bas_bench_{}.sqlite", std::process::id()));
    let mut engines: Vec<(&str, Server)> = Vec::new();
    let sqlite = rt.block_on(async {
        Pool::connect(&format!("sqlite://{}", dir.display()))
            .await
            .unwrap()
    });
    engines.push((
        "sqlite",
        Server {
            pool: sqlite,
            drop: Box::new({
                let dir = dir.clone();
                move |_| {
                    for suffix in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{suffix}", dir.display()));
                    }
                }
            }),
        },
    ));
    for (engine, var) in [
        ("postgres", "BEARER_AUTH_POSTGRES_URL"),
        ("mysql", "BEARER_AUTH_MYSQL_URL"),
    ] {
        match std::env::var(var).ok().filter(|u| !u.is_empty()) {
            Some(url) if engine == "postgres" => engines.push((engine, rt.block_on(postgres(url)))),
            Some(url) => engines.push((engine, rt.block_on(mysql(url)))),
            None => println!("verify/sql-miss/{engine}: skipped, {var} is unset"),
        }
    }
    let mut group = c.benchmark_group("verify/sql-miss");
    group.sample_size(SAMPLES);
    for (engine, server) in engines {
        let (store, tokens) = rt.block_on(sql_store(server.pool.clone(), false));
        let mut next = tokens.iter().cycle();
        group.bench_function(engine, |b| {
            b.to_async(&rt).iter(|| {
                let token = next.next().unwrap();
                let store = &store;
                async move { black_box(store.verify(black_box(token)).await.unwrap()) }
            })
        });
        rt.block_on(server.pool.close());
        (server.drop)(&rt);
    }
    group.finish();
}

criterion_group!(benches, hit, miss);
criterion_main!(benches);

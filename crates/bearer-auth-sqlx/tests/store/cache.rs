//! The cache in front of the lookup, on every engine: writes made here take effect here
//! at once, other instances follow within the time to live, expiry is checked on every
//! hit, and the queries are counted (`cache_stats().lookups`, the store's count of the
//! queries it ran on the request path) for concurrent misses, retried refusals and a
//! flood of wrong tokens.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use bearer_auth::{NewToken, TokenStore, TokenVerifier};
use bearer_auth_sqlx::{Pool, SqlStore, sqlx};
use tokio::sync::Barrier;

use crate::common::{LaravelRow, TestDb, bearer, laravel_now, on_every_engine, reason};

on_every_engine!(
    writes_here_take_effect_here_at_once,
    other_instances_follow_within_the_time_to_live,
    expiry_is_checked_on_every_hit,
    identical_concurrent_misses_make_one_query,
    a_refused_token_retried_costs_one_query_per_time_to_live,
    a_flood_of_wrong_tokens_leaves_good_keys_cached,
    cancelled_waiters_leave_a_joined_miss_joined,
    another_keys_eviction_keeps_an_answer_in_flight,
);

/// The answer of the cache, without awaiting: `None` when the database must be asked.
pub(crate) fn cached(store: &SqlStore, token: &str) -> Option<&'static str> {
    store.verify_now(bearer(token).as_borrowed()).map(reason)
}

pub(crate) fn lookups(store: &SqlStore) -> u64 {
    store.cache_stats().lookups
}

async fn migrated(builder: bearer_auth_sqlx::SqlStoreBuilder) -> SqlStore {
    let store = builder.build();
    store.migrate().await.unwrap();
    store
}

async fn writes_here_take_effect_here_at_once(db: &TestDb) {
    let store = db.store().await;
    let key = store
        .create(NewToken::new(7, "laptop").second_factor_pending(true))
        .await
        .unwrap();
    let first = key.plain_text_token().as_str().to_owned();
    // Created: works at once, and is then answered from the cache.
    assert!(
        store
            .verify(&bearer(&first))
            .await
            .unwrap()
            .is_second_factor_pending()
    );
    assert_eq!(cached(&store, &first), Some("ok"));

    // The second factor confirmed: the cached "pending" goes at once.
    store.confirm_second_factor(&7, key.id()).await.unwrap();
    assert_eq!(cached(&store, &first), None);
    assert!(
        !store
            .verify(&bearer(&first))
            .await
            .unwrap()
            .is_second_factor_pending()
    );

    // Regenerated: the old token refused at once, the new one works at once.
    let second = store.regenerate(&7, key.id()).await.unwrap();
    let second = second.plain_text_token().as_str().to_owned();
    assert_eq!(cached(&store, &first), None);
    assert_eq!(reason(store.verify(&bearer(&first)).await), "unknown");
    assert_eq!(reason(store.verify(&bearer(&second)).await), "ok");
    assert_eq!(cached(&store, &second), Some("ok"));

    // Revoked: refused at once.
    store.revoke(&7, key.id()).await.unwrap();
    assert_eq!(cached(&store, &second), None);
    assert_eq!(reason(store.verify(&bearer(&second)).await), "unknown");

    // All of an owner's keys revoked: every one refused at once.
    let mut tokens = Vec::new();
    for name in ["a", "b", "c"] {
        let key = store.create(NewToken::new(8, name)).await.unwrap();
        let token = key.plain_text_token().as_str().to_owned();
        assert_eq!(reason(store.verify(&bearer(&token)).await), "ok");
        tokens.push(token);
    }
    assert_eq!(store.revoke_all(&8).await.unwrap(), 3);
    for token in &tokens {
        assert_eq!(cached(&store, token), None);
        assert_eq!(reason(store.verify(&bearer(token)).await), "unknown");
    }
}

async fn other_instances_follow_within_the_time_to_live(db: &TestDb) {
    let here = db.store().await;
    let ttl = Duration::from_millis(500);
    let there = SqlStore::builder(db.another_pool().await)
        .cache_ttl(ttl)
        .build();
    for change in ["revoke", "regenerate"] {
        let key = here.create(NewToken::new(7, change)).await.unwrap();
        let token = key.plain_text_token().as_str().to_owned();
        assert_eq!(reason(there.verify(&bearer(&token)).await), "ok");
        match change {
            "revoke" => here.revoke(&7, key.id()).await.unwrap(),
            _ => drop(here.regenerate(&7, key.id()).await.unwrap()),
        }
        let changed = Instant::now();
        assert_eq!(reason(here.verify(&bearer(&token)).await), "unknown");
        // The other instance answers from its cache as it was, until the entry's time to
        // live ends; then it asks the database.
        let mut stale = 0;
        loop {
            match reason(there.verify(&bearer(&token)).await) {
                "ok" => stale += 1,
                "unknown" => break,
                other => panic!("{other}"),
            }
            assert!(changed.elapsed() < ttl + Duration::from_millis(300));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let delay = changed.elapsed();
        assert!(delay <= ttl + Duration::from_millis(300), "{delay:?}");
        eprintln!(
            "{:?}: {change} on another instance refused here after {delay:?} ({stale} stale answers; time to live {ttl:?})",
            db.kind
        );
    }
}

async fn expiry_is_checked_on_every_hit(db: &TestDb) {
    let store =
        migrated(SqlStore::builder(db.pool.clone()).cache_ttl(Duration::from_secs(60))).await;
    let expires = SystemTime::now() + Duration::from_secs(2);
    let key = store
        .create(NewToken::new(7, "short").expires_at(expires))
        .await
        .unwrap();
    let token = key.plain_text_token().as_str().to_owned();
    assert_eq!(reason(store.verify(&bearer(&token)).await), "ok");
    let queries = lookups(&store);
    assert_eq!(cached(&store, &token), Some("ok"));
    // Kept to the second: expired at the latest once `expires` is past.
    while SystemTime::now() <= expires {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Still in the cache, and refused there, without a query.
    assert_eq!(cached(&store, &token), Some("expired"));
    assert_eq!(reason(store.verify(&bearer(&token)).await), "expired");
    assert_eq!(lookups(&store), queries);
}

/// Holds every read of `personal_access_tokens` back until the returned guard is
/// released: a table lock on PostgreSQL and MySQL. `None` on SQLite, whose readers never
/// wait for a writer (WAL).
async fn hold_reads(db: &TestDb) -> Option<Held> {
    match &db.pool {
        Pool::Postgres(p) => {
            let mut tx = p.begin().await.unwrap();
            sqlx::query("lock table personal_access_tokens in access exclusive mode")
                .execute(&mut *tx)
                .await
                .unwrap();
            Some(Held::Postgres(tx))
        }
        Pool::MySql(p) => {
            let mut conn = p.acquire().await.unwrap();
            sqlx::raw_sql("lock tables personal_access_tokens write")
                .execute(&mut *conn)
                .await
                .unwrap();
            Some(Held::MySql(conn))
        }
        _ => None,
    }
}

enum Held {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    MySql(sqlx::pool::PoolConnection<sqlx::MySql>),
}

impl Held {
    async fn release(self) {
        match self {
            Self::Postgres(tx) => tx.rollback().await.unwrap(),
            Self::MySql(mut conn) => {
                sqlx::raw_sql("unlock tables")
                    .execute(&mut *conn)
                    .await
                    .unwrap();
            }
        }
    }
}

async fn identical_concurrent_misses_make_one_query(db: &TestDb) {
    let store = db.store().await;
    let key = store.create(NewToken::new(7, "k")).await.unwrap();
    let good = key.plain_text_token().as_str().to_owned();
    let unknown = format!("{}|{}", key.id(), "x".repeat(48));
    for (token, expected) in [(good, "ok"), (unknown, "unknown")] {
        let before = lookups(&store);
        // On the servers, the first query waits for the lock while every other request
        // arrives: only joining it explains a single query. On SQLite requests may also
        // come after it answered, and find the answer in the cache.
        let held = hold_reads(db).await;
        let barrier = Arc::new(Barrier::new(64));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (store, barrier, token) = (store.clone(), Arc::clone(&barrier), token.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                reason(store.verify(&bearer(&token)).await)
            }));
        }
        if let Some(held) = held {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(lookups(&store) - before, 1, "while held");
            held.release().await;
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), expected);
        }
        assert_eq!(lookups(&store) - before, 1, "{expected}");
        eprintln!(
            "{:?}: 64 concurrent verifications of one {expected} token, 1 query",
            db.kind
        );
    }
}

async fn a_refused_token_retried_costs_one_query_per_time_to_live(db: &TestDb) {
    let ttl = Duration::from_millis(300);
    let store = migrated(SqlStore::builder(db.pool.clone()).cache_ttl(ttl)).await;
    // A client stuck on a revoked key, one with a token that never existed, one with an
    // expired key.
    let key = store.create(NewToken::new(7, "k")).await.unwrap();
    let revoked = key.plain_text_token().as_str().to_owned();
    assert_eq!(reason(store.verify(&bearer(&revoked)).await), "ok");
    store.revoke(&7, key.id()).await.unwrap();
    let secret = "q1W2e3R4t5Y6u7I8o9P0a1S2d3F4g5H6j7K8l9Z0";
    let (created, expired_at) = (laravel_now(-60), laravel_now(-1));
    let expired = db
        .insert_laravel_row(LaravelRow {
            expires_at: Some(&expired_at),
            ..LaravelRow::user_token(&bearer_auth::TokenHash::of(secret).to_hex(), &created)
        })
        .await;
    let expired = format!("{expired}|{secret}");
    let unknown = format!("{}|{}", key.id() + 1000, "y".repeat(48));
    for (token, expected) in [
        (revoked, "unknown"),
        (unknown, "unknown"),
        (expired, "expired"),
    ] {
        let before = lookups(&store);
        let started = Instant::now();
        let mut retries = 0_u64;
        while started.elapsed() < Duration::from_secs(1) {
            assert_eq!(reason(store.verify(&bearer(&token)).await), expected);
            retries += 1;
            tokio::task::yield_now().await;
        }
        let elapsed = started.elapsed();
        let queries = lookups(&store) - before;
        let bound = u64::try_from(elapsed.as_millis() / ttl.as_millis()).unwrap() + 1;
        assert!(
            queries >= 1 && queries <= bound,
            "{queries} queries in {elapsed:?}"
        );
        assert!(retries > 100 * queries, "{retries} retries");
        eprintln!(
            "{:?}: a {expected} token retried {retries} times over {elapsed:?}: {queries} queries (time to live {ttl:?})",
            db.kind
        );
    }
}

fn random_secret() -> String {
    let mut bytes = [0_u8; 24];
    getrandom::fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn a_flood_of_wrong_tokens_leaves_good_keys_cached(db: &TestDb) {
    let store = migrated(
        SqlStore::builder(db.pool.clone())
            .cache_ttl(Duration::from_secs(60))
            .cache_capacity(16)
            .refusal_cache_capacity(64),
    )
    .await;
    let mut good = Vec::new();
    for owner in 0..8 {
        let key = store.create(NewToken::new(owner, "k")).await.unwrap();
        let token = key.plain_text_token().as_str().to_owned();
        assert_eq!(reason(store.verify(&bearer(&token)).await), "ok");
        good.push((key.id(), token));
    }
    let before = lookups(&store);
    // 2,000 made-up tokens from 4 clients: without an id, with a made-up id, and with
    // the id of a real key and a wrong secret.
    let real_id = good[0].0;
    let mut flood = Vec::new();
    for client in 0..4 {
        let store = store.clone();
        flood.push(tokio::spawn(async move {
            for i in 0..500_u64 {
                let token = match (client + i) % 3 {
                    0 => random_secret(),
                    1 => format!("{}|{}", 1_000_000 + i, random_secret()),
                    _ => format!("{real_id}|{}", random_secret()),
                };
                assert_eq!(reason(store.verify(&bearer(&token)).await), "unknown");
            }
        }));
    }
    // Meanwhile every good key keeps being answered from the cache, without a query.
    let mut answered = 0;
    while !flood.iter().all(|task| task.is_finished()) {
        for (_, token) in &good {
            assert_eq!(cached(&store, token), Some("ok"));
            answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for task in flood {
        task.await.unwrap();
    }
    let stats = store.cache_stats();
    assert_eq!(stats.lookups - before, 2000, "{stats:?}");
    assert_eq!(stats.rows, 8, "{stats:?}");
    assert!(stats.refusals <= 64, "{stats:?}");
    for (_, token) in &good {
        assert_eq!(cached(&store, token), Some("ok"));
    }
    assert!(answered > 0);
    eprintln!(
        "{:?}: 2000 wrong tokens, {} queries; {answered} good answers from the cache meanwhile; cache {stats:?}",
        db.kind,
        stats.lookups - before
    );
}

/// Requests that give up while they wait for a query (their clients went away) leave it
/// to the others: every later identical request still joins it.
async fn cancelled_waiters_leave_a_joined_miss_joined(db: &TestDb) {
    // Every query of this store waits for the one connection, held here.
    let pool = db.one_connection_pool().await;
    let store = SqlStore::new(pool.clone());
    store.migrate().await.unwrap();
    let key = store.create(NewToken::new(7, "k")).await.unwrap();
    let token = key.plain_text_token().as_str().to_owned();
    let before = lookups(&store);
    let held = hold_connection(&pool).await;
    let mut joined = Vec::new();
    for _ in 0..10 {
        let (s, t) = (store.clone(), token.clone());
        joined.push(tokio::spawn(
            async move { reason(s.verify(&bearer(&t)).await) },
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (s, t) = (store.clone(), token.clone());
        let quitter = tokio::spawn(async move { reason(s.verify(&bearer(&t)).await) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        quitter.abort();
        assert!(quitter.await.unwrap_err().is_cancelled());
    }
    assert_eq!(lookups(&store) - before, 1, "while held");
    drop(held);
    for task in joined {
        assert_eq!(task.await.unwrap(), "ok");
    }
    assert_eq!(lookups(&store) - before, 1);
    assert_eq!(cached(&store, &token), Some("ok"));
    pool.close().await;
}

/// The one connection of `pool`, held until dropped.
async fn hold_connection(pool: &Pool) -> Box<dyn Send> {
    match pool {
        Pool::Sqlite(p) => Box::new(p.acquire().await.unwrap()),
        Pool::Postgres(p) => Box::new(p.acquire().await.unwrap()),
        Pool::MySql(p) => Box::new(p.acquire().await.unwrap()),
        _ => unreachable!(),
    }
}

/// Holds back every lookup (they read `bearer_auth_pending_second_factors`), but no
/// write to `personal_access_tokens`. `None` on SQLite, whose readers never wait.
async fn hold_lookups(db: &TestDb) -> Option<Held> {
    match &db.pool {
        Pool::Postgres(p) => {
            let mut tx = p.begin().await.unwrap();
            sqlx::query("lock table bearer_auth_pending_second_factors in access exclusive mode")
                .execute(&mut *tx)
                .await
                .unwrap();
            Some(Held::Postgres(tx))
        }
        Pool::MySql(p) => {
            let mut conn = p.acquire().await.unwrap();
            sqlx::raw_sql("lock tables bearer_auth_pending_second_factors write")
                .execute(&mut *conn)
                .await
                .unwrap();
            Some(Held::MySql(conn))
        }
        _ => None,
    }
}

/// A key regenerated (evicted here) while another key's lookup is in flight costs that
/// lookup nothing: its answer is cached. Someone regenerating their own key again and
/// again cannot keep the cache from filling.
async fn another_keys_eviction_keeps_an_answer_in_flight(db: &TestDb) {
    let store = db.store().await;
    let good = store.create(NewToken::new(7, "good")).await.unwrap();
    let good = good.plain_text_token().as_str().to_owned();
    let other = store
        .create(NewToken::new(666, "someone else's"))
        .await
        .unwrap();
    let Some(held) = hold_lookups(db).await else {
        return;
    };
    let before = lookups(&store);
    let verifying = tokio::spawn({
        let (store, good) = (store.clone(), good.clone());
        async move { reason(store.verify(&bearer(&good)).await) }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(lookups(&store) - before, 1, "the lookup is in flight");
    for _ in 0..3 {
        store.regenerate(&666, other.id()).await.unwrap();
    }
    held.release().await;
    assert_eq!(verifying.await.unwrap(), "ok");
    assert_eq!(cached(&store, &good), Some("ok"));
    assert_eq!(lookups(&store) - before, 1);
}

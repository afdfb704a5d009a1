//! `last_used_at`: at most one write per key per interval, batched off the request
//! path, flushed on shutdown, never for a refused token, never backwards.
//!
//! Writes are counted by the database itself: a trigger adds one to `write_count` for
//! every row update that sets `last_used_at`.

use std::time::{Duration, Instant};

use bearer_auth::{NewToken, TokenHash, TokenStore, TokenVerifier};
use bearer_auth_sqlx::SqlStore;

use crate::common::{Kind, LaravelRow, TestDb, bearer, laravel_now, on_every_engine, reason};

on_every_engine!(
    one_write_per_key_under_thousands_of_requests,
    the_background_writer_writes_at_most_once_per_interval,
    shutdown_writes_what_is_batched,
    refused_expired_and_revoked_tokens_are_never_written,
    last_used_at_never_moves_backwards,
);

/// Counts the writes of `last_used_at`, from now on.
pub(crate) async fn count_writes(db: &TestDb) {
    let statements: &[&str] = match db.kind {
        Kind::Sqlite => &[
            "create table write_count (n integer not null)",
            "insert into write_count values (0)",
            "create trigger count_last_used after update of last_used_at on personal_access_tokens begin update write_count set n = n + 1; end",
        ],
        Kind::Postgres => &[
            "create table write_count (n bigint not null)",
            "insert into write_count values (0)",
            "create function count_last_used() returns trigger language plpgsql as $$ begin update write_count set n = n + 1; return null; end $$",
            "create trigger count_last_used after update of last_used_at on personal_access_tokens for each row execute function count_last_used()",
        ],
        Kind::Mysql => &[
            "create table write_count (n bigint not null)",
            "insert into write_count values (0)",
            "create trigger count_last_used after update on personal_access_tokens for each row begin if not (old.last_used_at <=> new.last_used_at) then update write_count set n = n + 1; end if; end",
        ],
    };
    db.exec(statements).await;
}

/// The writes of `last_used_at` counted since [`count_writes`].
pub(crate) async fn writes(db: &TestDb) -> u64 {
    let sql = match db.kind {
        Kind::Sqlite => "select cast(n as text) from write_count",
        Kind::Postgres => "select n::text from write_count",
        Kind::Mysql => "select cast(n as char) from write_count",
    };
    db.texts(sql).await[0].as_deref().unwrap().parse().unwrap()
}

/// `requests` verifications of each token, from 8 concurrent tasks; how long they took.
async fn hammer(store: &SqlStore, tokens: &[String], requests: usize) -> Duration {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let store = store.clone();
        let tokens = tokens.to_vec();
        tasks.push(tokio::spawn(async move {
            for i in (worker..requests * tokens.len()).step_by(8) {
                let token = bearer(&tokens[i % tokens.len()]);
                store.verify(&token).await.unwrap();
                // A cache hit never waits: give the writer its turn, as a server's
                // sockets would.
                tokio::task::yield_now().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

async fn issue(store: &SqlStore, n: u64) -> Vec<String> {
    let mut tokens = Vec::new();
    for owner in 0..n {
        let issued = store.create(NewToken::new(owner, "k")).await.unwrap();
        tokens.push(issued.plain_text_token().as_str().to_owned());
    }
    tokens
}

async fn one_write_per_key_under_thousands_of_requests(db: &TestDb) {
    let store = db.store().await;
    count_writes(db).await;
    let tokens = issue(&store, 3).await;
    let took = hammer(&store, &tokens, 2000).await;
    // 6,000 accepted requests, and not one write on their path.
    assert_eq!(writes(db).await, 0);
    assert_eq!(store.unwritten_uses(), 3);
    assert_eq!(store.flush().await.unwrap(), 3);
    assert_eq!(writes(db).await, 3);
    assert_eq!(store.unwritten_uses(), 0);
    for owner in 0..3 {
        let info = store.list(&owner).await.unwrap().remove(0);
        let used = info.last_used_at.unwrap();
        assert!(used.elapsed().unwrap_or_default() < Duration::from_secs(60));
    }
    // Another round, in a later second (the column's precision): one more write per key.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    hammer(&store, &tokens, 2000).await;
    assert_eq!(store.flush().await.unwrap(), 3);
    assert_eq!(writes(db).await, 6);
    assert_eq!(store.flush().await.unwrap(), 0);
    eprintln!(
        "{:?}: 6000 verifications in {took:?}, 3 writes of last_used_at",
        db.kind
    );
}

async fn the_background_writer_writes_at_most_once_per_interval(db: &TestDb) {
    db.store().await;
    count_writes(db).await;
    // Longer than the second `last_used_at` is kept to, so that the interval, not the
    // column's precision, is what bounds the writes.
    let interval = Duration::from_secs(2);
    let store = SqlStore::builder(db.pool.clone())
        .last_used_interval(interval)
        .build();
    let tokens = issue(&store, 2).await;
    let started = Instant::now();
    let mut requests = 0;
    while started.elapsed() < Duration::from_millis(4200) {
        hammer(&store, &tokens, 50).await;
        requests += 100;
    }
    let elapsed = started.elapsed();
    // Written by the task, with no flush: at most once per key per interval.
    let written = writes(db).await;
    let rounds = elapsed.as_millis() / interval.as_millis() + 1;
    assert!(written >= 2, "{written}");
    assert!(
        u128::from(written) <= 2 * rounds,
        "{written} writes in {elapsed:?}"
    );
    store.shutdown().await.unwrap();
    eprintln!(
        "{:?}: {requests} verifications over {elapsed:?}, {} writes of last_used_at (interval {interval:?})",
        db.kind,
        writes(db).await
    );
}

async fn shutdown_writes_what_is_batched(db: &TestDb) {
    let store = db.store().await;
    count_writes(db).await;
    let issued = store.create(NewToken::new(7, "k")).await.unwrap();
    let token = bearer(issued.plain_text_token().as_str());
    store.verify(&token).await.unwrap();
    assert_eq!(db.column("last_used_at", issued.id()).await, None);
    // Minutes before the writer's next round.
    assert_eq!(store.shutdown().await.unwrap(), 1);
    assert_eq!(writes(db).await, 1);
    let written = db.column("last_used_at", issued.id()).await.unwrap();
    assert_eq!(db.column("updated_at", issued.id()).await.unwrap(), written);
    // Once stopped, the store still works; uses wait for an explicit flush. (One in a
    // later second: the column holds seconds, and a use in the second already written
    // is not noted again.)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    store.verify(&token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(store.unwritten_uses(), 1);
    assert_eq!(store.shutdown().await.unwrap(), 1);
    assert_eq!(store.unwritten_uses(), 0);
}

async fn refused_expired_and_revoked_tokens_are_never_written(db: &TestDb) {
    let store = db.store().await;
    count_writes(db).await;
    let secret = "q1W2e3R4t5Y6u7I8o9P0a1S2d3F4g5H6j7K8l9Z0";
    let created = laravel_now(-60);
    let expired_at = laravel_now(-1);
    let expired = db
        .insert_laravel_row(LaravelRow {
            expires_at: Some(&expired_at),
            ..LaravelRow::user_token(&TokenHash::of(secret).to_hex(), &created)
        })
        .await;
    assert_eq!(
        reason(store.verify(&bearer(&format!("{expired}|{secret}"))).await),
        "expired"
    );
    let good = store.create(NewToken::new(7, "k")).await.unwrap();
    let wrong_secret = format!("{}|{}", good.id(), "x".repeat(48));
    assert_eq!(
        reason(store.verify(&bearer(&wrong_secret)).await),
        "unknown"
    );
    let other_id = format!("{}|{}", expired, good.plain_text_token().secret());
    assert_eq!(reason(store.verify(&bearer(&other_id)).await), "unknown");
    assert_eq!(store.unwritten_uses(), 0);

    // Used, then revoked before the write: nothing is written.
    store
        .verify(&bearer(good.plain_text_token().as_str()))
        .await
        .unwrap();
    store.revoke(&7, good.id()).await.unwrap();
    // Used, then regenerated: the use of the old token does not land on the new one.
    let rotated = store.create(NewToken::new(7, "rotated")).await.unwrap();
    store
        .verify(&bearer(rotated.plain_text_token().as_str()))
        .await
        .unwrap();
    store.regenerate(&7, rotated.id()).await.unwrap();
    let regenerations = writes(db).await;
    assert_eq!(store.flush().await.unwrap(), 0);
    assert_eq!(writes(db).await, regenerations);
    assert_eq!(db.column("last_used_at", rotated.id()).await, None);
    assert_eq!(db.column("last_used_at", expired).await, None);
}

async fn last_used_at_never_moves_backwards(db: &TestDb) {
    let store = db.store().await;
    count_writes(db).await;
    let later = "Zy9Xw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa9z8Y";
    let earlier = "q1W2e3R4t5Y6u7I8o9P0a1S2d3F4g5H6j7K8l9Z0";
    let created = laravel_now(-7200);
    let in_an_hour = laravel_now(3600);
    let an_hour_ago = laravel_now(-3600);
    // Another instance (or a Laravel app whose clock runs ahead) wrote a later time.
    let ahead = db
        .insert_laravel_row(LaravelRow {
            last_used_at: Some(&in_an_hour),
            ..LaravelRow::user_token(&TokenHash::of(later).to_hex(), &created)
        })
        .await;
    let behind = db
        .insert_laravel_row(LaravelRow {
            last_used_at: Some(&an_hour_ago),
            ..LaravelRow::user_token(&TokenHash::of(earlier).to_hex(), &created)
        })
        .await;
    for (id, secret) in [(ahead, later), (behind, earlier)] {
        store
            .verify(&bearer(&format!("{id}|{secret}")))
            .await
            .unwrap();
    }
    assert_eq!(store.flush().await.unwrap(), 1);
    assert_eq!(writes(db).await, 1);
    assert_eq!(
        db.column("last_used_at", ahead).await.as_deref(),
        Some(in_an_hour.as_str())
    );
    let now = db.column("last_used_at", behind).await.unwrap();
    assert!(now > an_hour_ago, "{now}");
}

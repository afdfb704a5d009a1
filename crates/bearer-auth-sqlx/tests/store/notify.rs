//! PostgreSQL's notifications: two store instances on one database, the delay before
//! the other one refuses a key revoked, regenerated or changed (by this crate or by
//! another application), with the time to live alone and with the trigger and listener;
//! what fires the trigger; the listener's reconnection.

use std::time::{Duration, Instant};

use bearer_auth::{AccessToken, NewToken, StoreError, TokenStore, TokenVerifier};
use bearer_auth_sqlx::{DEFAULT_CACHE_TTL, Pool, SqlStore, sqlx};
use sqlx::postgres::PgListener;

use crate::{
    cache::cached,
    common::{Kind, TestDb, bearer, reason, run},
    proxy::{Freezer, Proxy},
};

/// A channel of this test's own: the tests share one server.
fn channel() -> String {
    let mut bytes = [0_u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("bas_test_{hex}")
}

/// Polls `there` until `done` holds for its answer to `token`; how long that took from
/// `since`. Fails past `limit`.
async fn until(
    there: &SqlStore,
    token: &str,
    since: Instant,
    limit: Duration,
    done: impl Fn(&Result<AccessToken<u64>, bearer_auth::Rejection>) -> bool,
) -> Duration {
    loop {
        let answer = there.verify(&bearer(token)).await;
        if done(&answer) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < limit,
            "still {} after {limit:?}",
            reason(answer)
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn refused(answer: &Result<AccessToken<u64>, bearer_auth::Rejection>) -> bool {
    answer.is_err()
}

async fn issue(store: &SqlStore, there: &SqlStore, name: &str) -> (u64, String) {
    let key = store.create(NewToken::new(7, name)).await.unwrap();
    let token = key.plain_text_token().as_str().to_owned();
    assert_eq!(reason(there.verify(&bearer(&token)).await), "ok");
    // Cached there: only an eviction or the time to live changes its answer.
    assert_eq!(cached(there, &token), Some("ok"));
    (key.id(), token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_delay_with_the_time_to_live_alone() {
    run(Kind::Postgres, async |db: &TestDb| {
        let here = db.store().await;
        // The defaults: a 5 s time to live, no listener.
        let there = SqlStore::new(db.another_pool().await);
        let (id, token) = issue(&here, &there, "k").await;
        here.revoke(&7, id).await.unwrap();
        let revoked = Instant::now();
        let limit = DEFAULT_CACHE_TTL + Duration::from_millis(500);
        let delay = until(&there, &token, revoked, limit, refused).await;
        assert!(delay >= DEFAULT_CACHE_TTL - Duration::from_millis(500), "{delay:?}");
        eprintln!(
            "postgres, time to live alone ({DEFAULT_CACHE_TTL:?}): a key revoked on one instance refused on the other after {delay:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_reaches_another_instance_within_a_second_with_notify() {
    run(Kind::Postgres, async |db: &TestDb| {
        let channel = channel();
        let here = SqlStore::builder(db.pool.clone())
            .notify_channel(channel.clone())
            .build();
        here.migrate().await.unwrap();
        here.install_notify_trigger().await.unwrap();
        // A time to live far longer than the test: only a notification evicts.
        let there = SqlStore::builder(db.another_pool().await)
            .notify_channel(channel)
            .cache_ttl(Duration::from_secs(600))
            .build();
        there.listen_for_changes().await.unwrap();
        let second = Duration::from_secs(1);
        let mut figures = Vec::new();

        let (id, token) = issue(&here, &there, "revoked").await;
        here.revoke(&7, id).await.unwrap();
        let at = Instant::now();
        figures.push(("revoked", until(&there, &token, at, second, refused).await));

        let (id, token) = issue(&here, &there, "regenerated").await;
        here.regenerate(&7, id).await.unwrap();
        let at = Instant::now();
        figures.push(("regenerated", until(&there, &token, at, second, refused).await));

        // Another application (a Laravel app) on the same table.
        let (id, token) = issue(&here, &there, "deleted").await;
        db.exec(&[&format!("delete from personal_access_tokens where id = {id}")])
            .await;
        let at = Instant::now();
        figures.push(("deleted by SQL", until(&there, &token, at, second, refused).await));

        let (id, token) = issue(&here, &there, "expired").await;
        db.exec(&[&format!(
            "update personal_access_tokens set expires_at = now() - interval '1 hour' where id = {id}"
        )])
        .await;
        let at = Instant::now();
        let delay = until(&there, &token, at, second, |a| {
            a.as_ref().is_err_and(|e| e.reason() == "expired")
        })
        .await;
        figures.push(("expires_at set by SQL", delay));

        let (id, token) = issue(&here, &there, "abilities").await;
        db.exec(&[&format!(
            r#"update personal_access_tokens set abilities = '["servers:read"]' where id = {id}"#
        )])
        .await;
        let at = Instant::now();
        let delay = until(&there, &token, at, second, |a| {
            a.as_ref()
                .is_ok_and(|p| !p.abilities().can("servers:write") && p.abilities().can("servers:read"))
        })
        .await;
        figures.push(("abilities set by SQL", delay));

        let (id, token) = issue(&here, &there, "owner").await;
        db.exec(&[&format!(
            "update personal_access_tokens set tokenable_id = 8 where id = {id}"
        )])
        .await;
        let at = Instant::now();
        let delay = until(&there, &token, at, second, |a| {
            a.as_ref().is_ok_and(|p| *p.owner() == 8)
        })
        .await;
        figures.push(("tokenable_id set by SQL", delay));

        let (id, token) = issue(&here, &there, "other type").await;
        db.exec(&[&format!(
            r"update personal_access_tokens set tokenable_type = 'App\Models\Team' where id = {id}"
        )])
        .await;
        let at = Instant::now();
        figures.push(("tokenable_type set by SQL", until(&there, &token, at, second, refused).await));

        let key = here
            .create(NewToken::new(7, "2fa").second_factor_pending(true))
            .await
            .unwrap();
        let token = key.plain_text_token().as_str().to_owned();
        assert!(there.verify(&bearer(&token)).await.unwrap().is_second_factor_pending());
        here.confirm_second_factor(&7, key.id()).await.unwrap();
        let at = Instant::now();
        let delay = until(&there, &token, at, second, |a| {
            a.as_ref().is_ok_and(|p| !p.is_second_factor_pending())
        })
        .await;
        figures.push(("second factor confirmed", delay));

        for (change, delay) in &figures {
            assert!(*delay < second, "{change}: {delay:?}");
            eprintln!("postgres, with notify: {change} on one instance, seen on the other after {delay:?}");
        }
        there.shutdown().await.unwrap();
    })
    .await;
}

/// The notifications of `channel`, as the database sends them.
async fn listen(db: &TestDb, channel: &str) -> PgListener {
    let Pool::Postgres(pool) = &db.pool else {
        unreachable!()
    };
    let mut listener = PgListener::connect_with(pool).await.unwrap();
    listener.listen(channel).await.unwrap();
    listener
}

async fn nothing_within(listener: &mut PgListener, wait: Duration) {
    if let Ok(notification) = tokio::time::timeout(wait, listener.recv()).await {
        panic!(
            "unexpected notification: {:?}",
            notification.map(|n| n.payload().to_owned())
        );
    }
}

async fn next(listener: &mut PgListener) -> String {
    tokio::time::timeout(Duration::from_secs(1), listener.recv())
        .await
        .expect("a notification within a second")
        .unwrap()
        .payload()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trigger_fires_only_on_what_a_verification_reads() {
    run(Kind::Postgres, async |db: &TestDb| {
        let channel = channel();
        let store = SqlStore::builder(db.pool.clone())
            .notify_channel(channel.clone())
            .build();
        store.migrate().await.unwrap();
        store.install_notify_trigger().await.unwrap();
        let mut listener = listen(db, &channel).await;
        let quiet = Duration::from_millis(400);

        // Created: nothing to evict anywhere.
        let key = store.create(NewToken::new(7, "k")).await.unwrap();
        let digest = key.plain_text_token().hash().to_hex();
        nothing_within(&mut listener, quiet).await;
        // The batched `last_used_at` writes never notify.
        store.verify(&bearer(key.plain_text_token().as_str())).await.unwrap();
        assert_eq!(store.flush().await.unwrap(), 1);
        nothing_within(&mut listener, quiet).await;
        // Nor do other columns, nor a change to the same value.
        let id = key.id();
        db.exec(&[
            &format!("update personal_access_tokens set last_used_at = now(), updated_at = now() where id = {id}"),
            &format!("update personal_access_tokens set name = 'renamed' where id = {id}"),
            &format!("update personal_access_tokens set abilities = abilities, expires_at = expires_at, token = token where id = {id}"),
        ])
        .await;
        nothing_within(&mut listener, quiet).await;

        // What a verification reads: the digest of the row as it was. The abilities;
        // `created_at`, for the maximum age; a second factor put back in front of the
        // key, and confirmed again.
        for statement in [
            format!(r#"update personal_access_tokens set abilities = '["read"]' where id = {id}"#),
            format!(
                "update personal_access_tokens set created_at = created_at - interval '1 day' where id = {id}"
            ),
            format!("insert into bearer_auth_pending_second_factors (token_id) values ({id})"),
            format!("delete from bearer_auth_pending_second_factors where token_id = {id}"),
        ] {
            db.exec(&[&statement]).await;
            assert_eq!(next(&mut listener).await, digest, "{statement}");
        }
        // Still nothing on `last_used_at`.
        db.exec(&[&format!(
            "update personal_access_tokens set last_used_at = now() - interval '1 minute' where id = {id}"
        )])
        .await;
        nothing_within(&mut listener, quiet).await;
        let regenerated = store.regenerate(&7, id).await.unwrap();
        assert_eq!(next(&mut listener).await, digest);
        let digest = regenerated.plain_text_token().hash().to_hex();
        store.revoke(&7, id).await.unwrap();
        assert_eq!(next(&mut listener).await, digest);
        nothing_within(&mut listener, quiet).await;

        // A key created behind a second factor names itself once (its pending second
        // factor is inserted), and once more when the second factor is confirmed.
        let key = store
            .create(NewToken::new(7, "2fa").second_factor_pending(true))
            .await
            .unwrap();
        let digest = key.plain_text_token().hash().to_hex();
        assert_eq!(next(&mut listener).await, digest);
        store.confirm_second_factor(&7, key.id()).await.unwrap();
        assert_eq!(next(&mut listener).await, digest);

        // The id, which a token `{id}|...` must match.
        db.exec(&[&format!(
            "update personal_access_tokens set id = id + 1000000 where id = {}",
            key.id()
        )])
        .await;
        assert_eq!(next(&mut listener).await, digest);

        // Emptied by another application: everything.
        db.exec(&["truncate personal_access_tokens"]).await;
        assert_eq!(next(&mut listener).await, "*");
        nothing_within(&mut listener, quiet).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_empties_the_cache_when_it_reconnects() {
    run(Kind::Postgres, async |db: &TestDb| {
        let channel = channel();
        let here = SqlStore::builder(db.pool.clone())
            .notify_channel(channel.clone())
            .build();
        here.migrate().await.unwrap();
        here.install_notify_trigger().await.unwrap();
        let proxy = Proxy::start(db.server_addr()).await;
        let there = SqlStore::builder(db.pool_through(proxy.addr()))
            .notify_channel(channel)
            .cache_ttl(Duration::from_secs(600))
            .build();
        there.listen_for_changes().await.unwrap();
        let (id, token) = issue(&here, &there, "k").await;

        // The other instance is cut off: the notification of the revocation is lost to it.
        proxy.stop().await;
        here.revoke(&7, id).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(cached(&there, &token), Some("ok"));

        proxy.restart();
        let back = Instant::now();
        let delay = until(&there, &token, back, Duration::from_secs(1), refused).await;
        eprintln!(
            "postgres, with notify: a key revoked while the listener was cut off, refused {delay:?} after the path came back"
        );
        there.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_needs_the_trigger_and_a_plain_channel() {
    run(Kind::Postgres, async |db: &TestDb| {
        let store = db.store().await;
        let invalid = |outcome: Result<(), StoreError>| match outcome {
            Err(StoreError::Invalid(message)) => message.to_string(),
            other => panic!("{other:?}"),
        };
        let message = invalid(store.listen_for_changes().await);
        assert!(message.contains("install_notify_trigger"), "{message}");
        // Installed for another channel: nothing would come on this one.
        let other = SqlStore::builder(db.pool.clone())
            .notify_channel("some_other_channel")
            .build();
        other.install_notify_trigger().await.unwrap();
        invalid(store.listen_for_changes().await);
        other.listen_for_changes().await.unwrap();
        other.shutdown().await.unwrap();
        let quoted = SqlStore::builder(db.pool.clone())
            .notify_channel("x'); drop table users; --")
            .build();
        invalid(quoted.install_notify_trigger().await);
        invalid(quoted.listen_for_changes().await);
    })
    .await;
}

#[tokio::test]
async fn notifications_are_postgresql_only() {
    run(Kind::Sqlite, async |db: &TestDb| {
        let store = db.store().await;
        for outcome in [
            store.install_notify_trigger().await,
            store.listen_for_changes().await,
        ] {
            assert!(
                matches!(outcome, Err(StoreError::Invalid(_))),
                "{outcome:?}"
            );
        }
    })
    .await;
}

/// Two instances with notifications and a time to live far longer than the test, a
/// maximum age of a day: `here` installs the trigger, `there` listens.
async fn two_instances(db: &TestDb, channel: &str, there_pool: Pool) -> (SqlStore, SqlStore) {
    let day = Duration::from_secs(86_400);
    let here = SqlStore::builder(db.pool.clone())
        .notify_channel(channel)
        .max_age(day)
        .build();
    here.migrate().await.unwrap();
    here.install_notify_trigger().await.unwrap();
    let there = SqlStore::builder(there_pool)
        .notify_channel(channel)
        .max_age(day)
        .cache_ttl(Duration::from_secs(600))
        .build();
    there.listen_for_changes().await.unwrap();
    (here, there)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_at_and_a_new_pending_second_factor_reach_another_instance() {
    run(Kind::Postgres, async |db: &TestDb| {
        let channel = channel();
        let (here, there) = two_instances(db, &channel, db.another_pool().await).await;
        let second = Duration::from_secs(1);

        // Another application ages a key past the maximum age.
        let (id, token) = issue(&here, &there, "aged").await;
        db.exec(&[&format!(
            "update personal_access_tokens set created_at = now() - interval '2 days' where id = {id}"
        )])
        .await;
        let at = Instant::now();
        let delay = until(&there, &token, at, second, |a| {
            a.as_ref().is_err_and(|e| e.reason() == "expired")
        })
        .await;
        eprintln!("postgres, with notify: created_at set by SQL, seen on the other after {delay:?}");

        // And puts a key back behind a second factor.
        let (id, token) = issue(&here, &there, "2fa again").await;
        db.exec(&[&format!(
            "insert into bearer_auth_pending_second_factors (token_id) values ({id})"
        )])
        .await;
        let at = Instant::now();
        let delay = until(&there, &token, at, second, |a| {
            a.as_ref().is_ok_and(AccessToken::is_second_factor_pending)
        })
        .await;
        eprintln!("postgres, with notify: a second factor made pending by SQL, seen on the other after {delay:?}");
        here.shutdown().await.unwrap();
        there.shutdown().await.unwrap();
    })
    .await;
}

/// The trigger as a version without `id`, `created_at` and the pending second factors
/// inserted installed it.
const OLDER_TRIGGERS: &[&str] = &[
    r"create or replace function bearer_auth_sqlx_notify() returns trigger language plpgsql as $$
begin
  if tg_op = 'TRUNCATE' then
    perform pg_notify(tg_argv[0], '*');
  else
    perform pg_notify(tg_argv[0], old.token);
  end if;
  return null;
end
$$",
    r"create or replace function bearer_auth_sqlx_notify_pending() returns trigger language plpgsql as $$
declare
  digest text;
begin
  execute format('select token from %I.personal_access_tokens where id = $1', tg_table_schema)
    into digest using old.token_id;
  if digest is not null then
    perform pg_notify(tg_argv[0], digest);
  end if;
  return null;
end
$$",
    "create trigger bearer_auth_sqlx_notify_delete after delete on personal_access_tokens for each row execute function bearer_auth_sqlx_notify('CHANNEL')",
    "create trigger bearer_auth_sqlx_notify_update after update of token, abilities, expires_at, tokenable_type, tokenable_id on personal_access_tokens for each row when (old.token is distinct from new.token or old.abilities is distinct from new.abilities or old.expires_at is distinct from new.expires_at or old.tokenable_type is distinct from new.tokenable_type or old.tokenable_id is distinct from new.tokenable_id) execute function bearer_auth_sqlx_notify('CHANNEL')",
    "create trigger bearer_auth_sqlx_notify_truncate after truncate on personal_access_tokens for each statement execute function bearer_auth_sqlx_notify('CHANNEL')",
    "create trigger bearer_auth_sqlx_notify_pending after delete on bearer_auth_pending_second_factors for each row execute function bearer_auth_sqlx_notify_pending('CHANNEL')",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installing_replaces_an_older_trigger() {
    run(Kind::Postgres, async |db: &TestDb| {
        let channel = channel();
        let store = SqlStore::builder(db.pool.clone())
            .notify_channel(channel.clone())
            .build();
        store.migrate().await.unwrap();
        for statement in OLDER_TRIGGERS {
            db.exec(&[&statement.replace("CHANNEL", &channel)]).await;
        }
        // Not listened to: it would miss changes.
        match store.listen_for_changes().await {
            Err(StoreError::Invalid(message)) => {
                assert!(message.contains("older version"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        store.install_notify_trigger().await.unwrap();
        store.listen_for_changes().await.unwrap();
        let mut listener = listen(db, &channel).await;
        let key = store.create(NewToken::new(7, "k")).await.unwrap();
        let (id, digest) = (key.id(), key.plain_text_token().hash().to_hex());
        db.exec(&[&format!(
            "update personal_access_tokens set created_at = created_at - interval '1 day' where id = {id}"
        )])
        .await;
        assert_eq!(next(&mut listener).await, digest);
        db.exec(&[&format!(
            "insert into bearer_auth_pending_second_factors (token_id) values ({id})"
        )])
        .await;
        assert_eq!(next(&mut listener).await, digest);
        // Replaced, not added to: one notification per change.
        nothing_within(&mut listener, Duration::from_millis(400)).await;
        store.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_dead_listener_connection_is_noticed() {
    run(Kind::Postgres, async |db: &TestDb| {
        let channel = channel();
        let freezer = Freezer::start(db.server_addr()).await;
        let query_timeout = Duration::from_secs(1);
        let day = Duration::from_secs(86_400);
        let here = SqlStore::builder(db.pool.clone())
            .notify_channel(channel.clone())
            .build();
        here.migrate().await.unwrap();
        here.install_notify_trigger().await.unwrap();
        let there = SqlStore::builder(db.pool_through(freezer.addr()))
            .notify_channel(channel)
            .max_age(day)
            .cache_ttl(Duration::from_secs(600))
            .query_timeout(query_timeout)
            .build();
        // The pool's first connection (the check for the trigger), then the listener's.
        assert_eq!(freezer.connections(), 0);
        there.listen_for_changes().await.unwrap();
        assert_eq!(freezer.connections(), 2);
        let (id, token) = issue(&here, &there, "k").await;

        // The path of the listener's connection silently goes: no reset, no close.
        freezer.freeze(1);
        here.revoke(&7, id).await.unwrap();
        let revoked = Instant::now();
        let limit = HEARTBEAT + query_timeout + Duration::from_secs(1);
        let delay = until(&there, &token, revoked, limit, refused).await;
        eprintln!(
            "postgres, with notify: a key revoked while the listener's connection was silently dead, refused on the other after {delay:?}"
        );

        // Listening again, on a new connection (the cache emptied as it came back): the
        // next revocation is seen within a second. (With the listener away the cache
        // answers only within the default time to live, which may have refused the key
        // before the listener was back.)
        let back = Instant::now();
        while there.cache_stats().listener_away {
            assert!(back.elapsed() < Duration::from_secs(3), "the listener is not back");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(freezer.connections(), 3);
        let (id, token) = issue(&here, &there, "after").await;
        here.revoke(&7, id).await.unwrap();
        let at = Instant::now();
        until(&there, &token, at, Duration::from_secs(1), refused).await;

        // Stopped while its connection is silently dead: the stop does not wait for it
        // past the query timeout.
        freezer.freeze(2);
        let stopping = Instant::now();
        tokio::time::timeout(query_timeout + Duration::from_secs(1), there.shutdown())
            .await
            .expect("stopped within the query timeout")
            .unwrap();
        eprintln!(
            "postgres, with notify: stopped with its connection silently dead in {:?}",
            stopping.elapsed()
        );
        here.shutdown().await.unwrap();
    })
    .await;
}

/// How often the listener checks its connection: the crate's interval, documented.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// A proxy that can stop taking new connections while the open ones keep working, and
/// cut one of them: the listener's connection lost and no way back, the pool's fine.
struct SplitProxy {
    addr: std::net::SocketAddr,
    accept: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl SplitProxy {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> =
            std::sync::Arc::default();
        let accept = tokio::spawn({
            let conns = std::sync::Arc::clone(&conns);
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    conns.lock().unwrap().push(task);
                }
            }
        });
        Self {
            addr,
            accept: std::sync::Mutex::new(Some(accept)),
            conns,
        }
    }

    async fn stop_accepting(&self) {
        let task = self.accept.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    fn count(&self) -> usize {
        self.conns.lock().unwrap().len()
    }

    fn cut(&self, index: usize) {
        self.conns.lock().unwrap()[index].abort();
    }
}

/// The listener's connection is lost and it cannot get another (the server refuses new
/// connections), while the pool keeps working: evictions sent meanwhile are lost, so
/// the cache answers only within the default time to live (5 s), however long the one
/// configured for the notifications (600 s here). A key revoked on another instance is
/// refused here once its entry is 5 s old, not after 10 minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_cannot_reconnect_caps_the_cache_at_the_default_time_to_live() {
    run(Kind::Postgres, async |db: &TestDb| {
        let channel = channel();
        let here = SqlStore::builder(db.pool.clone())
            .notify_channel(channel.clone())
            .build();
        here.migrate().await.unwrap();
        here.install_notify_trigger().await.unwrap();
        let proxy = SplitProxy::start(db.server_addr()).await;
        let Pool::Postgres(pool) = &db.pool else {
            unreachable!()
        };
        let options: sqlx::postgres::PgConnectOptions = (*pool.connect_options())
            .clone()
            .host("127.0.0.1")
            .port(proxy.addr.port());
        let there_pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .min_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        let there = SqlStore::builder(Pool::from(there_pool))
            .notify_channel(channel)
            .cache_ttl(Duration::from_secs(600))
            .build();
        there.listen_for_changes().await.unwrap();
        let listener_connection = proxy.count() - 1;
        let key = here.create(NewToken::new(7, "k")).await.unwrap();
        let token = key.plain_text_token().as_str().to_owned();
        let loaded = Instant::now();
        assert_eq!(reason(there.verify(&bearer(&token)).await), "ok");
        proxy.stop_accepting().await;
        proxy.cut(listener_connection);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(there.cache_stats().listener_away);
        here.revoke(&7, key.id()).await.unwrap();
        // The pool still answers there.
        let other = here.create(NewToken::new(8, "fresh")).await.unwrap();
        assert_eq!(
            reason(there.verify(&bearer(other.plain_text_token().as_str())).await),
            "ok"
        );
        let mut last_accepted = None;
        while loaded.elapsed() < DEFAULT_CACHE_TTL + Duration::from_secs(3) {
            if reason(there.verify(&bearer(&token)).await) == "ok" {
                last_accepted = Some(loaded.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "postgres, listener away: a revoked key last accepted {last_accepted:?} after it was cached"
        );
        assert!(
            last_accepted.is_none_or(|at| at < DEFAULT_CACHE_TTL + Duration::from_millis(300)),
            "{last_accepted:?}"
        );
        drop(tokio::time::timeout(Duration::from_secs(5), there.shutdown()).await);
        drop(here.shutdown().await);
    })
    .await;
}

/// A disabled trigger notifies nothing: listening refuses it as it refuses a missing one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_refuses_a_disabled_trigger() {
    run(Kind::Postgres, async |db: &TestDb| {
        let store = SqlStore::builder(db.pool.clone())
            .notify_channel(channel())
            .build();
        store.migrate().await.unwrap();
        store.install_notify_trigger().await.unwrap();
        db.exec(&[
            "alter table personal_access_tokens disable trigger bearer_auth_sqlx_notify_delete",
        ])
        .await;
        let outcome = store.listen_for_changes().await;
        assert!(
            matches!(outcome, Err(StoreError::Invalid(_))),
            "{outcome:?}"
        );
        // Installed again, it is enabled again.
        store.install_notify_trigger().await.unwrap();
        store.listen_for_changes().await.unwrap();
        store.shutdown().await.unwrap();
    })
    .await;
}

/// How many backends other than this one last ran the `LISTEN` of `channel`: the
/// listeners (within their first heartbeat, which runs `select 1` after 5 s).
async fn listeners(db: &TestDb, channel: &str) -> i64 {
    let Pool::Postgres(pool) = &db.pool else {
        panic!("{:?}", db.pool)
    };
    sqlx::query_scalar(
        "select count(*) from pg_stat_activity where pid <> pg_backend_pid() \
         and query ilike 'listen %' and position($1 in query) > 0",
    )
    .bind(channel)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Waits until `listeners` is `n`; fails after 3 s.
async fn until_listeners(db: &TestDb, channel: &str, n: i64) {
    let since = Instant::now();
    loop {
        let now = listeners(db, channel).await;
        if now == n {
            return;
        }
        assert!(
            since.elapsed() < Duration::from_secs(3),
            "{now} listeners, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Listening again replaces the listener (the first one stops and closes its
/// connection), and dropping the store ends the listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_again_replaces_the_listener_and_a_dropped_store_ends_it() {
    run(Kind::Postgres, async |db: &TestDb| {
        let channel = channel();
        let store = SqlStore::builder(db.pool.clone())
            .notify_channel(channel.as_str())
            .build();
        store.migrate().await.unwrap();
        store.install_notify_trigger().await.unwrap();
        store.listen_for_changes().await.unwrap();
        until_listeners(db, &channel, 1).await;
        store.listen_for_changes().await.unwrap();
        // The new one is there before the first one goes: 2, then 1.
        until_listeners(db, &channel, 1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(listeners(db, &channel).await, 1);
        drop(store);
        until_listeners(db, &channel, 0).await;
    })
    .await;
}

/// A notification of `*` empties the cache; one of a digest evicts that digest alone;
/// anything else is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_star_notification_empties_the_cache_and_a_digest_evicts_one() {
    run(Kind::Postgres, async |db: &TestDb| {
        let channel = channel();
        let (here, there) = two_instances(db, &channel, db.another_pool().await).await;
        let (_, one) = issue(&here, &there, "one").await;
        let (_, two) = issue(&here, &there, "two").await;
        let (_, three) = issue(&here, &there, "three").await;
        let notify = |payload: String| {
            let channel = channel.clone();
            async move {
                db.exec(&[&format!("select pg_notify('{channel}', '{payload}')")])
                    .await;
            }
        };
        let hex = |token: &str| {
            let secret = token.split_once('|').unwrap().1;
            bearer_auth::TokenHash::of(secret).to_hex()
        };
        // Not ours: nothing changes. Then the digest of one: only one goes.
        notify("not a digest".into()).await;
        notify(hex(&one)).await;
        let since = Instant::now();
        while cached(&there, &one).is_some() {
            assert!(since.elapsed() < Duration::from_secs(2), "one still cached");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(cached(&there, &two), Some("ok"));
        assert_eq!(cached(&there, &three), Some("ok"));
        // `*`: all go.
        notify("*".into()).await;
        let since = Instant::now();
        while cached(&there, &two).is_some() || cached(&there, &three).is_some() {
            assert!(
                since.elapsed() < Duration::from_secs(2),
                "still cached after *"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        there.shutdown().await.unwrap();
    })
    .await;
}

//! The path to a live database cut under a running store, then restored, through a TCP
//! proxy the test owns (PostgreSQL and MariaDB/MySQL): 503 while it is down (a key
//! verified within the cache's time to live excepted), never 401; 200 again within a
//! second of its return, without a restart; nothing written twice or lost. The timeline
//! is printed.

use std::{
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use bearer_auth::{Authenticator, NewToken, StoreError, TokenStore};
use bearer_auth_sqlx::SqlStore;
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{Layer, layer::Context, layer::SubscriberExt as _, registry::Registry};

use crate::{
    common::{Kind, TestDb, run},
    last_used::{count_writes, writes},
    proxy::Proxy,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    run(Kind::Postgres, outage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql() {
    run(Kind::Mysql, outage).await;
}

/// Every log event of the process: message and error fields. The global subscriber (a
/// thread-local one would miss the events of the runtime's other thread).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<(String, String)>>>);

struct Fields {
    message: String,
    error: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "error" => self.error = format!("{value:?}"),
            _ => {}
        }
    }
}

impl<S: Subscriber> Layer<S> for Logs {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields {
            message: String::new(),
            error: String::new(),
        };
        event.record(&mut fields);
        self.0.lock().unwrap().push((fields.message, fields.error));
    }
}

fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        tracing::subscriber::set_global_default(Registry::default().with(logs.clone())).unwrap();
        logs
    })
}

/// One request: which token, when it started and ended (ms from the cut), its status.
#[derive(Debug, Clone, Copy)]
struct Request {
    token: &'static str,
    started: u128,
    ended: u128,
    status: u16,
}

async fn outage(db: &TestDb) {
    let logs = logs();
    let engine = match db.kind {
        Kind::Postgres => "postgres",
        _ => "mysql",
    };
    db.store().await; // the tables, by the direct path
    count_writes(db).await;
    let proxy = Proxy::start(db.server_addr()).await;
    // The defaults but a time to live of 1 s, to see the cache's part in the timeline.
    let ttl = Duration::from_secs(1);
    let store = SqlStore::builder(db.pool_through(proxy.addr()))
        .cache_ttl(ttl)
        .build();
    let auth = Authenticator::new(store.clone());
    let cached = store.create(NewToken::new(7, "cached")).await.unwrap();
    let fresh = store.create(NewToken::new(7, "fresh")).await.unwrap();
    let once = store.create(NewToken::new(7, "once")).await.unwrap();
    let mut created = 3;
    let header =
        |key: &bearer_auth::IssuedToken| format!("Bearer {}", key.plain_text_token().as_str());
    let (cached_header, fresh_header) = (header(&cached), header(&fresh));
    // Used just before the cut: in the cache for a second. The other key used then too,
    // and never again: its use is written only if it is not lost.
    assert!(auth.authenticate([cached_header.as_bytes()]).await.is_ok());
    assert!(auth.authenticate([header(&once).as_bytes()]).await.is_ok());

    // Requests every 100 ms for each key, each on its own, until 1.5 s after the return.
    let cut = Instant::now();
    proxy.stop().await;
    let requests = Arc::new(Mutex::new(Vec::<Request>::new()));
    let client = {
        let (auth, requests) = (auth.clone(), Arc::clone(&requests));
        tokio::spawn(async move {
            let mut sent = Vec::new();
            while cut.elapsed() < Duration::from_millis(4500) {
                for (token, header) in [
                    ("cached", cached_header.clone()),
                    ("fresh", fresh_header.clone()),
                ] {
                    let (auth, requests) = (auth.clone(), Arc::clone(&requests));
                    sent.push(tokio::spawn(async move {
                        let started = cut.elapsed().as_millis();
                        let status = match auth.authenticate([header.as_bytes()]).await {
                            Ok(_) => 200,
                            Err(rejection) => rejection.status().as_u16(),
                        };
                        let ended = cut.elapsed().as_millis();
                        requests.lock().unwrap().push(Request {
                            token,
                            started,
                            ended,
                            status,
                        });
                    }));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            for request in sent {
                request.await.unwrap();
            }
        })
    };

    // While it is down: a key cannot be created (and none is), uses cannot be written
    // (and are kept).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let create_started = cut.elapsed();
    let (refused, flushed) = tokio::join!(
        async {
            let refused = store.create(NewToken::new(7, "while down")).await;
            (refused, cut.elapsed() - create_started)
        },
        store.flush(),
    );
    let (refused, create_took) = refused;
    assert!(
        matches!(refused, Err(StoreError::Backend(_))),
        "{refused:?}"
    );
    assert!(flushed.is_err());
    assert_eq!(store.unwritten_uses(), 2);

    // Restored at 3 s.
    let down_until = Duration::from_secs(3);
    assert!(cut.elapsed() < down_until);
    tokio::time::sleep(down_until - cut.elapsed()).await;
    proxy.restart();
    let back = cut.elapsed().as_millis();
    client.await.unwrap();
    store.create(NewToken::new(7, "after")).await.unwrap();
    created += 1;

    let mut requests = requests.lock().unwrap().clone();
    requests.sort_by_key(|r| (r.token, r.started));
    // Never a 401: the keys are good, the database was the problem.
    assert!(
        requests.iter().all(|r| r.status == 200 || r.status == 503),
        "{requests:?}"
    );
    for r in &requests {
        // Started after the cached entry expired and before the return: 503.
        let cached_gone = r.token == "fresh" || r.started > ttl.as_millis() + 50;
        if cached_gone && r.ended < back {
            assert_eq!(r.status, 503, "{r:?}");
        }
        // Started a second after the return: 200.
        if r.started > back + 1000 {
            assert_eq!(r.status, 200, "{r:?}");
        }
    }
    // The first answer after the return is a 200 within a second, for each key.
    for token in ["cached", "fresh"] {
        let first_ok = requests
            .iter()
            .filter(|r| r.token == token && r.status == 200 && r.ended >= back)
            .map(|r| r.ended)
            .min()
            .unwrap();
        assert!(
            first_ok <= back + 1000,
            "{token}: first 200 at {first_ok} ms, back at {back} ms"
        );
        assert!(
            requests
                .iter()
                .filter(|r| r.token == token && r.ended > first_ok)
                .all(|r| r.status == 200),
            "{token}: {requests:?}"
        );
    }

    // Nothing lost: the uses noted while down are written once the path is back; nothing
    // twice: one write per key used, the refused creation left no row.
    let written = store.flush().await.unwrap();
    assert_eq!(written, 3);
    assert_eq!(writes(db).await, 3);
    assert!(db.column("last_used_at", once.id()).await.is_some());
    assert_eq!(store.flush().await.unwrap(), 0);
    assert_eq!(writes(db).await, 3);
    assert_eq!(db.count_rows().await, created);

    // Logged with the cause: the request refused, and the store operation.
    let events = logs.0.lock().unwrap().clone();
    let lookup_failed = format!("token lookup failed on {engine}: ");
    let create_failed = format!("create failed on {engine}: ");
    assert!(
        events.iter().any(|(message, error)| message
            == "request refused: token verification unavailable"
            && error.starts_with(&lookup_failed)),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|(message, error)| message == "key store operation failed"
                && error.starts_with(&create_failed)),
        "{events:?}"
    );
    let cause = events
        .iter()
        .find(|(_, error)| error.starts_with(&lookup_failed))
        .map(|(_, error)| error.clone())
        .unwrap_or_default();

    eprintln!(
        "{engine} outage timeline (ms from the cut; cache time to live {ttl:?}, query timeout 2 s):"
    );
    eprintln!("  0: path cut (proxy stopped: connections dropped, new ones refused)");
    eprintln!(
        "  {}: a key creation tried; refused with StoreError::Backend after {} ms; no row written",
        create_started.as_millis(),
        create_took.as_millis()
    );
    eprintln!("  {back}: path back (proxy listening again on the same port)");
    for token in ["cached", "fresh"] {
        let mut runs: Vec<(u16, Request, Request, usize)> = Vec::new();
        for r in requests.iter().filter(|r| r.token == token) {
            match runs.last_mut() {
                Some((status, _, last, n)) if *status == r.status => {
                    *last = *r;
                    *n += 1;
                }
                _ => runs.push((r.status, *r, *r, 1)),
            }
        }
        for (status, first, last, n) in runs {
            eprintln!(
                "  {token:>6} key: {n:>2} requests started {}..{} → {status} (answered {}..{})",
                first.started, last.started, first.ended, last.ended
            );
        }
    }
    eprintln!("  logged: {cause}");
    eprintln!(
        "  after: last_used_at written once per key used ({written}), rows = {created} creations that succeeded"
    );
}

//! Error-level events are throttled: while a backend is down, or a route is misconfigured,
//! the first event is logged and then at most one per interval, carrying the number of
//! those not logged. Debug-level refusals are all logged.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::{
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, ThreadId},
    time::Duration,
};

use bearer_auth::{
    Authenticator, BearerToken, DEFAULT_ERROR_LOG_INTERVAL, InvalidReason, Rejection,
    missing_layer_response, verifier_fn,
};
use tracing::{
    Event, Level, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{Layer, layer::Context, layer::SubscriberExt as _, registry::Registry};

/// One recorded event: its thread, level and every field, formatted.
#[derive(Debug, Clone)]
struct Recorded {
    thread: ThreadId,
    level: Level,
    fields: Vec<(String, String)>,
}

impl Recorded {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Records every event of the process (the global subscriber, so that tests on other
/// threads cannot race with it over callsite interest); each test takes its own thread's.
#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<Recorded>>>,
}

struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl<S: Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "bearer_auth" {
            return;
        }
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        self.events.lock().unwrap().push(Recorded {
            thread: thread::current().id(),
            level: *event.metadata().level(),
            fields: fields.0,
        });
    }
}

impl Recorder {
    fn global() -> &'static Self {
        static GLOBAL: OnceLock<Recorder> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let recorder = Recorder::default();
            tracing::subscriber::set_global_default(Registry::default().with(recorder.clone()))
                .unwrap();
            recorder
        })
    }

    /// The events of the current thread since the last call.
    fn take(&self) -> Vec<Recorded> {
        let here = thread::current().id();
        let mut events = self.events.lock().unwrap();
        let (mine, others) = std::mem::take(&mut *events)
            .into_iter()
            .partition(|event| event.thread == here);
        *events = others;
        mine
    }
}

/// A verifier whose backend is down for the token `down` and that refuses every other.
fn flaky() -> impl bearer_auth::TokenVerifier<Principal = String> + Clone {
    verifier_fn(|token: BearerToken| async move {
        if token.as_str() == "down" {
            Err(Rejection::unavailable(std::io::Error::other("db down")))
        } else {
            Err(Rejection::InvalidToken(InvalidReason::Unknown))
        }
    })
}

#[tokio::test]
async fn a_thousand_backend_failures_log_one_event_then_a_summary() {
    let recorder = Recorder::global();
    recorder.take();
    let interval = Duration::from_millis(500);
    let auth = Authenticator::new(flaky()).with_error_log_interval(interval);

    for _ in 0..1000 {
        let refused = auth.authenticate([&b"Bearer down"[..]]).await.unwrap_err();
        assert_eq!(refused.status(), 503);
    }
    let events = recorder.take();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].level, Level::ERROR);
    assert_eq!(events[0].field("reason"), Some("backend"));
    assert_eq!(events[0].field("status"), Some("503"));
    assert_eq!(events[0].field("error"), Some("db down"));
    assert_eq!(events[0].field("suppressed"), Some("0"));

    tokio::time::sleep(interval + Duration::from_millis(100)).await;
    auth.authenticate([&b"Bearer down"[..]]).await.unwrap_err();
    let events = recorder.take();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].level, Level::ERROR);
    assert_eq!(events[0].field("suppressed"), Some("999"));

    // A new interval began with that event: the next failure is counted again.
    auth.authenticate([&b"Bearer down"[..]]).await.unwrap_err();
    assert_eq!(recorder.take().len(), 0);
}

#[tokio::test]
async fn debug_refusals_are_all_logged_while_backend_failures_are_throttled() {
    let recorder = Recorder::global();
    recorder.take();
    let auth = Authenticator::new(flaky());
    assert_eq!(auth.error_log_interval(), DEFAULT_ERROR_LOG_INTERVAL);
    for _ in 0..1000 {
        auth.authenticate([&b"Bearer down"[..]]).await.unwrap_err();
        auth.authenticate([&b"Bearer unknown"[..]])
            .await
            .unwrap_err();
        auth.authenticate([&b"Bearer a b"[..]]).await.unwrap_err();
    }
    let events = recorder.take();
    let count = |level: Level, reason: &str| {
        events
            .iter()
            .filter(|e| e.level == level && e.field("reason") == Some(reason))
            .count()
    };
    assert_eq!(count(Level::ERROR, "backend"), 1);
    assert_eq!(count(Level::DEBUG, "unknown"), 1000);
    assert_eq!(count(Level::DEBUG, "malformed"), 1000);
    assert_eq!(events.len(), 2001);
}

#[tokio::test]
async fn authenticators_keep_their_own_count_and_clones_share_it() {
    let recorder = Recorder::global();
    recorder.take();
    let first = Authenticator::new(flaky());
    let clone = first.clone();
    let other = Authenticator::new(flaky());
    for auth in [&first, &clone, &other, &first] {
        auth.authenticate([&b"Bearer down"[..]]).await.unwrap_err();
    }
    assert_eq!(recorder.take().len(), 2);
}

#[tokio::test]
async fn a_zero_interval_logs_every_backend_failure() {
    let recorder = Recorder::global();
    recorder.take();
    let auth = Authenticator::new(flaky()).with_error_log_interval(Duration::ZERO);
    for _ in 0..10 {
        auth.authenticate([&b"Bearer down"[..]]).await.unwrap_err();
    }
    let events = recorder.take();
    assert_eq!(events.len(), 10);
    assert!(events.iter().all(|e| e.field("suppressed") == Some("0")));
}

#[tokio::test(flavor = "current_thread")]
async fn a_backend_error_a_client_can_cause_does_not_hide_another() {
    let recorder = Recorder::global();
    recorder.take();
    // The database is healthy at first, and goes down later.
    let db_down = Arc::new(AtomicBool::new(false));
    let down = Arc::clone(&db_down);
    let verifier = verifier_fn(move |token: BearerToken| {
        let down = down.load(Ordering::SeqCst);
        async move {
            // A key id the backend's column cannot hold: a backend error any client can
            // cause at will, harmless in itself.
            if token.as_str().starts_with("99999999999999999999") {
                return Err(Rejection::unavailable(std::io::Error::other(
                    "numeric field overflow",
                )));
            }
            if down {
                return Err(Rejection::unavailable(std::io::Error::other(
                    "FATAL: password authentication failed for user \"app\"",
                )));
            }
            Err::<u64, _>(Rejection::InvalidToken(InvalidReason::Unknown))
        }
    });
    let interval = Duration::from_millis(300);
    let auth = Authenticator::new(verifier).with_error_log_interval(interval);
    let crafted = b"Bearer 99999999999999999999|x";

    // The crafted request comes first in every interval, from the start.
    auth.authenticate([&crafted[..]]).await.unwrap_err();
    db_down.store(true, Ordering::SeqCst);
    for _round in 0..3 {
        // Real users hit the real outage for the whole interval...
        for _ in 0..50 {
            let refused = auth
                .authenticate([&b"Bearer 1|real-user-key"[..]])
                .await
                .unwrap_err();
            assert_eq!(refused.status(), 503);
        }
        tokio::time::sleep(interval + Duration::from_millis(20)).await;
        // ...and the crafted request is first in each new interval.
        auth.authenticate([&crafted[..]]).await.unwrap_err();
    }
    let errors: Vec<(String, String)> = recorder
        .take()
        .into_iter()
        .filter(|e| e.level == Level::ERROR)
        .map(|e| {
            (
                e.field("error").unwrap().to_owned(),
                e.field("suppressed").unwrap().to_owned(),
            )
        })
        .collect();
    let expected = |error: &str, suppressed: &str| (error.to_owned(), suppressed.to_owned());
    let outage = "FATAL: password authentication failed for user \"app\"";
    assert_eq!(
        errors,
        [
            expected("numeric field overflow", "0"),
            // Each error its own interval: the outage is logged at once, then once per
            // interval with the number of its failures not logged.
            expected(outage, "0"),
            expected("numeric field overflow", "0"),
            expected(outage, "49"),
            expected("numeric field overflow", "0"),
            expected(outage, "49"),
            expected("numeric field overflow", "0"),
        ]
    );
}

/// With a zero interval ("every failure is logged"), threads whose clock readings reach
/// the throttle out of order used to drop events.
#[test]
fn a_zero_interval_logs_every_backend_failure_under_concurrency() {
    let recorder = Recorder::global();
    let verifier = verifier_fn(|_: BearerToken| async {
        Err::<u64, _>(Rejection::unavailable(std::io::Error::other("down")))
    });
    let auth = Authenticator::new(verifier).with_error_log_interval(Duration::ZERO);
    const THREADS: usize = 4;
    const EACH: usize = 20_000;
    let logged: usize = thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let auth = &auth;
                scope.spawn(move || {
                    recorder.take();
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    for _ in 0..EACH {
                        rt.block_on(auth.authenticate([&b"Bearer x"[..]]))
                            .unwrap_err();
                    }
                    let events = recorder.take();
                    assert!(events.iter().all(|e| e.field("suppressed") == Some("0")));
                    events.iter().filter(|e| e.level == Level::ERROR).count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(logged, THREADS * EACH);
}

#[test]
fn a_busy_uncovered_route_does_not_hide_another_principal_type() {
    let recorder = Recorder::global();
    recorder.take();
    let _: http::Response<bytes::Bytes> = missing_layer_response("app::Admin");
    for _ in 0..100 {
        let _: http::Response<bytes::Bytes> = missing_layer_response("app::Billing");
    }
    let _: http::Response<bytes::Bytes> = missing_layer_response("app::Admin");
    let logged: Vec<(String, String)> = recorder
        .take()
        .into_iter()
        .map(|e| {
            assert_eq!(e.level, Level::ERROR);
            (
                e.field("principal").unwrap().to_owned(),
                e.field("suppressed").unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        logged,
        [
            ("app::Admin".to_owned(), "0".to_owned()),
            ("app::Billing".to_owned(), "0".to_owned()),
        ]
    );
}

#[test]
fn a_thousand_uncovered_routes_log_one_event() {
    // The missing-layer throttle is the process's: no other test of this binary uses
    // the principal type `u64`.
    let recorder = Recorder::global();
    recorder.take();
    for _ in 0..1000 {
        let response: http::Response<bytes::Bytes> = missing_layer_response("u64");
        assert_eq!(response.status(), 500);
    }
    let events = recorder.take();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].level, Level::ERROR);
    assert_eq!(events[0].field("principal"), Some("u64"));
    assert_eq!(events[0].field("suppressed"), Some("0"));
}

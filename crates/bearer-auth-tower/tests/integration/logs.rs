//! One log event per refusal, with its reason, and none for anything else; never the
//! token or its digest.

use std::{
    sync::{Arc, Mutex, OnceLock},
    thread::{self, ThreadId},
    time::Duration,
};

use axum::{Router, routing::get};
use bearer_auth::{Authenticator, TokenHash};
use bearer_auth_tower::BearerAuthLayer;
use http::Method;
use tracing::{
    Event, Level, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{Layer, layer::Context, layer::SubscriberExt as _, registry::Registry};

use crate::{
    fixture::{BACKEND_DOWN, Keys, app, oneshot},
    table::{Log, rows},
};

/// One recorded event: its thread, target, level and every field, formatted.
#[derive(Debug, Clone)]
struct Recorded {
    thread: ThreadId,
    target: String,
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

/// Records every event of the process. It is the global subscriber: a thread-local one
/// (`set_default`) would race with the other tests of this binary, which may register a
/// callsite while no subscriber wants it.
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
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        self.events.lock().unwrap().push(Recorded {
            thread: thread::current().id(),
            target: event.metadata().target().to_owned(),
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

    /// The events of the current thread since the last call, leaving those of others to
    /// the tests that run on them.
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

#[tokio::test]
async fn one_event_per_refusal_with_its_reason_and_none_otherwise() {
    // A current-thread runtime: every event of the requests below is on this thread.
    let recorder = Recorder::global();
    recorder.take();
    let keys = Keys::new();
    let app = app(&keys);
    let secrets: Vec<String> = [&keys.ordinary, &keys.limited, &keys.expired, &keys.pending]
        .into_iter()
        .flat_map(|token| {
            let secret = token.split_once('|').map_or(token.as_str(), |(_, s)| s);
            [secret.to_owned(), TokenHash::of(secret).to_hex()]
        })
        .collect();
    // The layers of `app` are clones of one: they share one count of backend failures,
    // so only the first is logged within the interval.
    let mut backend_logged = false;
    for row in rows(&keys) {
        oneshot(&app, row.method.clone(), row.path, &row.authorization()).await;
        let events = recorder.take();
        let name = row.name;
        match row.log {
            Log::Nothing => assert!(events.is_empty(), "{name}: {events:?}"),
            Log::Refusal("backend") if backend_logged => {
                assert!(events.is_empty(), "{name}: {events:?}");
            }
            Log::Refusal(reason) => {
                assert_eq!(events.len(), 1, "{name}: {events:?}");
                let event = &events[0];
                assert_eq!(event.target, "bearer_auth", "{name}");
                assert_eq!(event.field("reason"), Some(reason), "{name}");
                assert_eq!(event.field("status"), Some(row.status.to_string().as_str()));
                let level = if reason == "backend" {
                    backend_logged = true;
                    assert_eq!(event.field("suppressed"), Some("0"), "{name}");
                    Level::ERROR
                } else {
                    Level::DEBUG
                };
                assert_eq!(event.level, level, "{name}");
            }
            Log::MissingLayer => {
                // One event per interval for the whole process, which the other tests
                // of this binary share: it may have been logged already.
                assert!(events.len() <= 1, "{name}: {events:?}");
                for event in &events {
                    assert_eq!(event.level, Level::ERROR, "{name}");
                    assert_eq!(
                        event.field("principal"),
                        Some("bearer_auth::store::AccessToken<alloc::string::String>"),
                        "{name}"
                    );
                }
            }
        }
        for event in &events {
            for (_, value) in &event.fields {
                for secret in &secrets {
                    assert!(!value.contains(secret.as_str()), "{name}: {event:?}");
                }
            }
        }
    }
}

/// While the backend is down, one error event and then at most one per interval, with
/// the number not logged; every other refusal still logged at debug.
#[tokio::test]
async fn backend_failures_are_logged_once_per_interval() {
    let recorder = Recorder::global();
    recorder.take();
    let keys = Keys::new();
    let interval = Duration::from_millis(500);
    let layer = BearerAuthLayer::from_authenticator(
        Authenticator::new(keys.verifier()).with_error_log_interval(interval),
    );
    let app = Router::new()
        .route("/v1/auth/user", get(|| async { "ok" }))
        .route_layer(layer);
    let down = format!("Bearer {BACKEND_DOWN}");
    let unknown = "Bearer 999|unknown".to_owned();

    for _ in 0..1000 {
        let reply = oneshot(&app, Method::GET, "/v1/auth/user", &[&down]).await;
        assert_eq!(reply.status, 503);
        let reply = oneshot(&app, Method::GET, "/v1/auth/user", &[&unknown]).await;
        assert_eq!(reply.status, 401);
    }
    let events = recorder.take();
    let errors: Vec<_> = events.iter().filter(|e| e.level == Level::ERROR).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field("reason"), Some("backend"));
    assert_eq!(errors[0].field("suppressed"), Some("0"));
    let debug = events
        .iter()
        .filter(|e| e.level == Level::DEBUG && e.field("reason") == Some("unknown"))
        .count();
    assert_eq!(debug, 1000);
    assert_eq!(events.len(), 1001);

    tokio::time::sleep(interval + Duration::from_millis(100)).await;
    oneshot(&app, Method::GET, "/v1/auth/user", &[&down]).await;
    let events = recorder.take();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].level, Level::ERROR);
    assert_eq!(events[0].field("suppressed"), Some("999"));
}

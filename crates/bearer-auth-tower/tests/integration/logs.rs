//! One log event per refusal, with its reason, and none for anything else; never the
//! token or its digest.

use std::{
    sync::{Arc, Mutex, OnceLock},
    thread::{self, ThreadId},
};

use bearer_auth::TokenHash;
use tracing::{
    Event, Level, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{Layer, layer::Context, layer::SubscriberExt as _, registry::Registry};

use crate::{
    fixture::{Keys, app, oneshot},
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

    /// The events of the current thread since the last call, dropping those of others.
    fn take(&self) -> Vec<Recorded> {
        let here = thread::current().id();
        let mut events = std::mem::take(&mut *self.events.lock().unwrap());
        events.retain(|event| event.thread == here);
        events
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
    for row in rows(&keys) {
        oneshot(&app, row.method.clone(), row.path, &row.authorization()).await;
        let events = recorder.take();
        let name = row.name;
        match row.log {
            Log::Nothing => assert!(events.is_empty(), "{name}: {events:?}"),
            Log::Refusal(reason) => {
                assert_eq!(events.len(), 1, "{name}: {events:?}");
                let event = &events[0];
                assert_eq!(event.target, "bearer_auth", "{name}");
                assert_eq!(event.field("reason"), Some(reason), "{name}");
                assert_eq!(event.field("status"), Some(row.status.to_string().as_str()));
                let level = if reason == "backend" {
                    Level::ERROR
                } else {
                    Level::DEBUG
                };
                assert_eq!(event.level, level, "{name}");
            }
            Log::MissingLayer => {
                assert_eq!(events.len(), 1, "{name}: {events:?}");
                assert_eq!(events[0].level, Level::ERROR, "{name}");
                assert_eq!(
                    events[0].field("principal"),
                    Some("bearer_auth::store::AccessToken<alloc::string::String>"),
                    "{name}"
                );
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

//! The logs: one event per refusal, with its reason, never a secret.
//!
//! Alone in its test binary: the subscriber is set for the test's thread, and tracing
//! caches per call site whether anyone listens, which tests running in parallel threads
//! without a subscriber would race with.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    io,
    sync::{Arc, Mutex},
};

use actix_web::{
    App,
    http::header::{AUTHORIZATION, HeaderValue},
    test::{self, TestRequest},
};
use bearer_auth_actix::BearerAuthMiddleware;
use common::{Counter, Key, Keys, routes, rows};

fn request(path: &str, authorization: &[Vec<u8>]) -> TestRequest {
    let mut req = TestRequest::get().uri(path);
    for value in authorization {
        req = req.append_header((AUTHORIZATION, HeaderValue::from_bytes(value).unwrap()));
    }
    req
}

fn with_key(path: &str, key: &Key) -> TestRequest {
    request(path, &[key.bearer().into_bytes()])
}

/// A log sink for one test (the subscriber is set for the test's thread only).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// The lines logged since the last call.
    fn take(&self) -> Vec<String> {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap());
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

#[actix_web::test]
async fn one_event_per_refusal_with_its_reason_and_no_secret() {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let keys = Keys::new();
    let counter = Counter::default();
    let auth = BearerAuthMiddleware::new(keys.verifier());
    let app = test::init_service(App::new().configure(|cfg| routes(cfg, &auth, &counter))).await;
    let secrets = keys.secrets();
    let mut all = Vec::new();

    for row in rows(&keys) {
        let res = test::call_service(&app, request("/rows", &row.authorization).to_request()).await;
        assert_eq!(res.status().as_u16(), row.status, "{}", row.name);
        let lines = logs.take();
        match row.reason {
            None => assert!(lines.is_empty(), "{}: {lines:?}", row.name),
            Some(reason) => {
                assert_eq!(lines.len(), 1, "{}: {lines:?}", row.name);
                let line = &lines[0];
                let level = if reason == "backend" {
                    "ERROR"
                } else {
                    "DEBUG"
                };
                assert!(
                    line.contains(&format!("{level} bearer_auth: request refused")),
                    "{line}"
                );
                assert!(line.contains(&format!("reason=\"{reason}\"")), "{line}");
                assert!(line.contains(&format!("status={}", row.status)), "{line}");
            }
        }
        all.extend(lines);
    }

    // The extractor's 401 on an optional route is a refusal too; an anonymous request
    // that a handler accepts is not.
    test::call_service(&app, request("/optional/required", &[]).to_request()).await;
    let lines = logs.take();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("DEBUG bearer_auth: request refused reason=\"missing\" status=401"),
        "{lines:?}"
    );
    all.extend(lines);
    test::call_service(&app, request("/optional/option", &[]).to_request()).await;
    assert_eq!(logs.take(), Vec::<String>::new());

    // A route without middleware is logged at error, even through `Option<T>`: the first
    // time, then at most once per interval for the whole process (this test is alone in
    // its binary, so the first time is here).
    for (i, path) in [
        "/uncovered/required",
        "/uncovered/maybe",
        "/uncovered/option",
    ]
    .into_iter()
    .enumerate()
    {
        test::call_service(&app, with_key(path, &keys.ordinary).to_request()).await;
        let lines = logs.take();
        if i > 0 {
            assert_eq!(lines, Vec::<String>::new(), "{path}");
            continue;
        }
        assert_eq!(lines.len(), 1, "{path}: {lines:?}");
        assert!(lines[0].contains("ERROR bearer_auth:"), "{lines:?}");
        assert!(
            lines[0].contains("no bearer-auth layer or middleware covers"),
            "{lines:?}"
        );
        assert!(lines[0].contains("suppressed=0"), "{lines:?}");
        all.extend(lines);
    }

    let all = all.join("\n");
    for secret in &secrets {
        assert!(!all.contains(secret.as_str()), "a secret reached the logs");
    }
    assert!(
        !all.contains("Bearer "),
        "an Authorization value reached the logs"
    );
}

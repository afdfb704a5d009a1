//! While the backend is down, one error event and then at most one per interval, with
//! the number not logged; every other refusal still logged at debug.
//!
//! Alone in its test binary, with one test: the subscriber is set for the test's thread,
//! and tracing caches per call site whether anyone listens.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{
    App, HttpResponse,
    http::header::AUTHORIZATION,
    test::{self, TestRequest},
    web,
};
use bearer_auth::Authenticator;
use bearer_auth_actix::BearerAuthMiddleware;
use common::{BACKEND_DOWN, Keys};

/// A log sink for the test's thread.
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
async fn backend_failures_are_logged_once_per_interval() {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let keys = Keys::new();
    let interval = Duration::from_millis(500);
    let auth = BearerAuthMiddleware::from_authenticator(
        Authenticator::new(Arc::new(keys.verifier())).with_error_log_interval(interval),
    );
    let app = test::init_service(
        App::new()
            // Two routes, one middleware's clones: one backend, one count.
            .service(web::resource("/a").wrap(auth.clone()).to(HttpResponse::Ok))
            .service(
                web::resource("/b")
                    .wrap(auth.require_all(["x"]))
                    .to(HttpResponse::Ok),
            ),
    )
    .await;
    let get = |path: &str, authorization: &str| {
        TestRequest::get()
            .uri(path)
            .insert_header((AUTHORIZATION, authorization.to_owned()))
            .to_request()
    };
    let down = format!("Bearer {BACKEND_DOWN}");

    for i in 0..1000 {
        let path = if i % 2 == 0 { "/a" } else { "/b" };
        let res = test::call_service(&app, get(path, &down)).await;
        assert_eq!(res.status(), 503);
        let res = test::call_service(&app, get(path, "Bearer 999|unknown")).await;
        assert_eq!(res.status(), 401);
    }
    let lines = logs.take();
    let errors: Vec<_> = lines.iter().filter(|l| l.contains(" ERROR ")).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(
            "ERROR bearer_auth: request refused: token verification unavailable \
             reason=\"backend\" status=503 error=connection refused suppressed=0"
        ),
        "{errors:?}"
    );
    let debug = lines
        .iter()
        .filter(|l| l.contains("DEBUG bearer_auth: request refused reason=\"unknown\" status=401"))
        .count();
    assert_eq!(debug, 1000);
    assert_eq!(lines.len(), 1001);

    tokio::time::sleep(interval + Duration::from_millis(100)).await;
    test::call_service(&app, get("/a", &down)).await;
    let lines = logs.take();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains(" ERROR "), "{lines:?}");
    assert!(lines[0].contains("suppressed=999"), "{lines:?}");
}

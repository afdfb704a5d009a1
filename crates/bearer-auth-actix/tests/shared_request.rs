//! A middleware outside `BearerAuthMiddleware`, on the same resource, that keeps a clone of
//! the `HttpRequest` while it calls the service (an access logger keeping the request to
//! log it afterwards). actix-web allows it there, but then refuses to change the request:
//! the middleware used to panic on every request with an `Authorization` header it let
//! through, and the client got no answer. The request is now answered as usual, its header
//! left unmarked, and that is logged at `error` once per interval.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::{
    sync::{Arc, Mutex, OnceLock},
    thread::{self, ThreadId},
    time::Duration,
};

use actix_web::{
    App, HttpRequest, HttpResponse, HttpServer,
    dev::{Service as _, ServiceRequest, ServiceResponse},
    http::header::AUTHORIZATION,
    test, web,
};
use bearer_auth::{Authenticator, BearerToken, InvalidReason, Rejection, verifier_fn};
use bearer_auth_actix::{BearerAuthMiddleware, PrincipalExt as _};
use tracing::{
    Event, Level, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{Layer, layer::Context, layer::SubscriberExt as _, registry::Registry};

fn authenticator() -> Authenticator<Arc<impl bearer_auth::TokenVerifier<Principal = u64>>> {
    Authenticator::new(Arc::new(verifier_fn(|token: BearerToken| async move {
        match token.as_str() {
            "good" => Ok(7_u64),
            _ => Err(Rejection::InvalidToken(InvalidReason::Unknown)),
        }
    })))
}

async fn me(req: HttpRequest) -> HttpResponse {
    match req.principal::<u64>() {
        Some(id) => HttpResponse::Ok().body(format!("user {id}")),
        None => HttpResponse::Ok().body("anonymous"),
    }
}

/// `/me` behind `auth`, with an outer middleware on the same resource that keeps a clone
/// of the request until the inner service has answered.
fn resource<V: bearer_auth::TokenVerifier + 'static>(
    auth: BearerAuthMiddleware<V>,
) -> actix_web::Resource<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::resource("/me")
        .wrap(auth)
        .wrap_fn(|req, srv| {
            let kept = req.request().clone();
            let fut = srv.call(req);
            async move {
                let res = fut.await;
                drop(kept);
                res
            }
        })
        .route(web::get().to(me))
}

fn get(authorization: Option<&str>) -> test::TestRequest {
    let req = test::TestRequest::get().uri("/me");
    match authorization {
        Some(value) => req.insert_header((AUTHORIZATION, value)),
        None => req,
    }
}

/// The outer middleware alone is fine: actix-web does not need the request unshared at
/// resource level.
#[actix_web::test]
async fn the_outer_middleware_alone_is_fine() {
    let app = test::init_service(
        App::new().service(
            web::resource("/me")
                .wrap_fn(|req, srv| {
                    let kept = req.request().clone();
                    let fut = srv.call(req);
                    async move {
                        let res = fut.await;
                        drop(kept);
                        res
                    }
                })
                .route(web::get().to(me)),
        ),
    )
    .await;
    let res = test::call_service(&app, get(None).to_request()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(test::read_body(res).await, "anonymous");
}

#[actix_web::test]
async fn an_accepted_request_is_answered_with_its_principal() {
    let auth = BearerAuthMiddleware::from_authenticator(authenticator());
    let app = test::init_service(App::new().service(resource(auth))).await;

    let res = test::call_service(&app, get(Some("Bearer good")).to_request()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(test::read_body(res).await, "user 7");

    // Refusals never changed the request: as before.
    let res = test::call_service(&app, get(Some("Bearer bad")).to_request()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers().get("www-authenticate").unwrap(),
        r#"Bearer error="invalid_token""#
    );
    assert_eq!(
        test::read_body(res).await,
        r#"{"message":"Unauthenticated."}"#
    );
}

#[actix_web::test]
async fn an_anonymous_request_on_an_optional_route_is_answered() {
    let auth = BearerAuthMiddleware::from_authenticator(authenticator()).optional();
    let app = test::init_service(App::new().service(resource(auth))).await;

    // No header at all, and another scheme's (its secret is marked too, when it can be).
    for authorization in [None, Some("Basic dXNlcjpwYXNz")] {
        let res = test::call_service(&app, get(authorization).to_request()).await;
        assert_eq!(res.status(), 200, "{authorization:?}");
        assert_eq!(test::read_body(res).await, "anonymous", "{authorization:?}");
    }
    let res = test::call_service(&app, get(Some("Bearer good")).to_request()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(test::read_body(res).await, "user 7");
}

/// Over the wire the panic used to drop the connection: no answer at all.
#[actix_web::test]
async fn every_request_is_answered_over_the_wire() {
    let server = HttpServer::new(|| {
        App::new().service(resource(
            BearerAuthMiddleware::from_authenticator(authenticator()).optional(),
        ))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let url = format!("http://{}/me", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);

    let client = reqwest::Client::new();
    let cases = [
        (None, 200, "anonymous"),
        (Some("Basic dXNlcjpwYXNz"), 200, "anonymous"),
        (Some("Bearer good"), 200, "user 7"),
        (Some("Bearer good"), 200, "user 7"),
        (Some("Bearer bad"), 401, r#"{"message":"Unauthenticated."}"#),
    ];
    for (authorization, status, body) in cases {
        let mut req = client.get(&url);
        if let Some(value) = authorization {
            req = req.header(AUTHORIZATION.as_str(), value);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{authorization:?}");
        assert_eq!(res.text().await.unwrap(), body, "{authorization:?}");
    }
    handle.stop(false).await;
}

#[actix_web::test]
async fn the_unmarked_header_is_logged_once_per_interval() {
    let recorder = Recorder::global();
    recorder.take();
    let interval = Duration::from_millis(300);
    let auth =
        BearerAuthMiddleware::from_authenticator(authenticator().with_error_log_interval(interval));
    let app = test::init_service(App::new().service(resource(auth))).await;

    for _ in 0..10 {
        let res = test::call_service(&app, get(Some("Bearer good")).to_request()).await;
        assert_eq!(res.status(), 200);
    }
    let expected = |suppressed: &str| {
        vec![
            (
                "message".to_owned(),
                "Authorization header left unmarked: a middleware outside \
                 BearerAuthMiddleware keeps a clone of the request while calling it"
                    .to_owned(),
            ),
            ("suppressed".to_owned(), suppressed.to_owned()),
        ]
    };
    let errors = |events: Vec<Recorded>| -> Vec<_> {
        events
            .into_iter()
            .filter(|e| e.level == Level::ERROR)
            .map(|e| e.fields)
            .collect()
    };
    assert_eq!(errors(recorder.take()), [expected("0")]);

    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    test::call_service(&app, get(Some("Bearer good")).to_request()).await;
    assert_eq!(errors(recorder.take()), [expected("9")]);
}

/// One recorded event: its thread, level and every field, formatted.
#[derive(Debug, Clone)]
struct Recorded {
    thread: ThreadId,
    level: Level,
    fields: Vec<(String, String)>,
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

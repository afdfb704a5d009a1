//! The middleware and the extractors over the wire: a real `HttpServer` on
//! `127.0.0.1:0`, run in the test's runtime, and a real HTTP client.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, atomic::Ordering};

use actix_web::{App, HttpServer, dev::Service as _, web};
use bearer_auth_actix::BearerAuthMiddleware;
use common::{Counter, Key, Keys, assert_row, calls, principal_body, routes, rows, whoami};
use reqwest::header::{AUTHORIZATION, HeaderValue};

/// Starts `HttpServer::new($factory)` on a free loopback port, in this runtime; gives
/// its base URL and handle.
macro_rules! serve {
    ($factory:expr) => {{
        let server = HttpServer::new($factory)
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        (format!("http://{addr}"), handle)
    }};
}

type Answer = (u16, Vec<(String, Vec<u8>)>, Vec<u8>);

/// GET `url` with these `Authorization` values; the answer's headers without `date`.
async fn get(client: &reqwest::Client, url: &str, authorization: &[Vec<u8>]) -> Answer {
    let mut req = client.get(url);
    for value in authorization {
        req = req.header(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str() != "date")
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    let body = res.bytes().await.unwrap().to_vec();
    (status, headers, body)
}

/// Sends every row and checks the exact answer, and that the counting service behind
/// the middleware is reached by accepted requests only.
async fn check_rows(url: &str, keys: &Keys, counter: &Counter) {
    let client = reqwest::Client::new();
    for row in rows(keys) {
        let before = calls(counter);
        let (status, headers, body) = get(&client, url, &row.authorization).await;
        assert_row(&row, status, headers, &body, true);
        let expected = before + usize::from(row.accepted());
        assert_eq!(
            calls(counter),
            expected,
            "{}: wrapped service calls",
            row.name
        );
    }
}

#[actix_web::test]
async fn app_wrap_over_the_wire() {
    let keys = Keys::new();
    let counter = Counter::default();
    let auth = BearerAuthMiddleware::new(keys.verifier()).require_all(["servers:read"]);
    let count = Arc::clone(&counter);
    let (base, handle) = serve!(move || {
        let count = Arc::clone(&count);
        App::new()
            .wrap_fn(move |req, srv| {
                count.fetch_add(1, Ordering::SeqCst);
                srv.call(req)
            })
            .wrap(auth.clone())
            .route("/rows", web::get().to(whoami))
    });
    check_rows(&format!("{base}/rows"), &keys, &counter).await;
    assert_eq!(calls(&counter), 2);
    handle.stop(true).await;
}

#[actix_web::test]
async fn scope_wrap_over_the_wire() {
    let keys = Keys::new();
    let counter = Counter::default();
    let auth = BearerAuthMiddleware::new(keys.verifier()).require_all(["servers:read"]);
    let count = Arc::clone(&counter);
    let (base, handle) = serve!(move || {
        let count = Arc::clone(&count);
        App::new()
            .service(
                web::scope("/v1")
                    .wrap_fn(move |req, srv| {
                        count.fetch_add(1, Ordering::SeqCst);
                        srv.call(req)
                    })
                    .wrap(auth.clone())
                    .route("/rows", web::get().to(whoami)),
            )
            .route("/health", web::get().to(common::health))
    });
    check_rows(&format!("{base}/v1/rows"), &keys, &counter).await;
    assert_eq!(calls(&counter), 2);
    let client = reqwest::Client::new();
    let (status, _, body) = get(&client, &format!("{base}/health"), &[]).await;
    assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
    handle.stop(true).await;
}

#[actix_web::test]
async fn resource_wrap_over_the_wire() {
    let keys = Keys::new();
    let counter = Counter::default();
    let auth = BearerAuthMiddleware::new(keys.verifier());
    let (base, handle) = {
        let counter = Arc::clone(&counter);
        serve!(move || {
            let (auth, counter) = (auth.clone(), Arc::clone(&counter));
            App::new().configure(move |cfg| routes(cfg, &auth, &counter))
        })
    };
    check_rows(&format!("{base}/rows"), &keys, &counter).await;
    assert_eq!(calls(&counter), 2);
    handle.stop(true).await;
}

/// One request to the routes of `common::routes` and its exact answer.
struct Case<'a> {
    path: &'static str,
    key: Option<&'a Key>,
    status: u16,
    body: Vec<u8>,
    content_type: &'static str,
    www_authenticate: Option<&'static str>,
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";
const UNAUTHENTICATED: &[u8] = br#"{"message":"Unauthenticated."}"#;

fn ok<'a>(path: &'static str, key: &'a Key, owner: &str) -> Case<'a> {
    Case {
        path,
        key: Some(key),
        status: 200,
        body: principal_body(owner, key.id).into_bytes(),
        content_type: TEXT,
        www_authenticate: None,
    }
}

fn forbidden<'a>(path: &'static str, key: &'a Key, body: &[u8]) -> Case<'a> {
    Case {
        path,
        key: Some(key),
        status: 403,
        body: body.to_vec(),
        content_type: JSON,
        www_authenticate: None,
    }
}

#[actix_web::test]
async fn route_options_and_extractors_over_the_wire() {
    let keys = Keys::new();
    let counter = Counter::default();
    let auth = BearerAuthMiddleware::new(keys.verifier());
    let (base, handle) = {
        let counter = Arc::clone(&counter);
        serve!(move || {
            let (auth, counter) = (auth.clone(), Arc::clone(&counter));
            App::new().configure(move |cfg| routes(cfg, &auth, &counter))
        })
    };
    let ability: &[u8] = br#"{"message":"Invalid ability provided."}"#;
    let second_factor: &[u8] =
        br#"{"message":"Two-factor authentication required.","requires_2fa":true}"#;
    let anonymous = |path| Case {
        path,
        key: None,
        status: 200,
        body: b"anonymous".to_vec(),
        content_type: TEXT,
        www_authenticate: None,
    };
    let cases = [
        // Optional routes.
        anonymous("/optional/maybe"),
        anonymous("/optional/option"),
        ok("/optional/maybe", &keys.reader, "reader"),
        ok("/optional/option", &keys.reader, "reader"),
        Case {
            path: "/optional/maybe",
            key: Some(&keys.expired),
            status: 401,
            body: UNAUTHENTICATED.to_vec(),
            content_type: JSON,
            www_authenticate: Some(r#"Bearer error="invalid_token""#),
        },
        Case {
            path: "/optional/required",
            key: None,
            status: 401,
            body: UNAUTHENTICATED.to_vec(),
            content_type: JSON,
            www_authenticate: Some(r#"Bearer realm="api""#),
        },
        ok("/optional/required", &keys.writer, "writer"),
        // Abilities.
        forbidden("/abilities/all", &keys.reader, ability),
        ok("/abilities/all", &keys.ordinary, "ordinary"),
        ok("/abilities/any", &keys.writer, "writer"),
        forbidden("/abilities/any", &keys.billing, ability),
        // The two-factor challenge route, and only it.
        ok("/2fa/challenge", &keys.pending, "pending"),
        ok("/2fa/challenge", &keys.ordinary, "ordinary"),
        forbidden("/rows", &keys.pending, second_factor),
        forbidden("/abilities/any", &keys.pending, second_factor),
        // Realm.
        Case {
            path: "/realm",
            key: Some(&keys.revoked),
            status: 401,
            body: UNAUTHENTICATED.to_vec(),
            content_type: JSON,
            www_authenticate: Some(r#"Bearer realm="api", error="invalid_token""#),
        },
        // No middleware: 500, except through `Option<T>`.
        Case {
            path: "/uncovered/required",
            key: Some(&keys.ordinary),
            status: 500,
            body: bearer_auth::MISSING_LAYER_BODY.to_vec(),
            content_type: TEXT,
            www_authenticate: None,
        },
        Case {
            path: "/uncovered/maybe",
            key: Some(&keys.ordinary),
            status: 500,
            body: bearer_auth::MISSING_LAYER_BODY.to_vec(),
            content_type: TEXT,
            www_authenticate: None,
        },
        anonymous("/uncovered/option"),
    ];
    let client = reqwest::Client::new();
    for case in cases {
        let authorization: Vec<Vec<u8>> = case
            .key
            .iter()
            .map(|key| key.bearer().into_bytes())
            .collect();
        let (status, mut headers, body) =
            get(&client, &format!("{base}{}", case.path), &authorization).await;
        let what = format!("{} with {:?}", case.path, case.key.map(|k| k.id));
        assert_eq!(status, case.status, "{what}");
        assert_eq!(body, case.body, "{what}");
        headers.sort();
        let mut expected = vec![
            (
                "content-length".to_owned(),
                body.len().to_string().into_bytes(),
            ),
            (
                "content-type".to_owned(),
                case.content_type.as_bytes().to_vec(),
            ),
        ];
        if let Some(challenge) = case.www_authenticate {
            expected.push(("www-authenticate".to_owned(), challenge.as_bytes().to_vec()));
        }
        assert_eq!(headers, expected, "{what}");
    }
    handle.stop(true).await;
}

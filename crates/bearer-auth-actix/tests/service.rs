//! The middleware and the extractors in process, with `actix_web::test`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use actix_web::{
    App,
    body::MessageBody,
    dev::{Service as _, ServiceResponse},
    http::header::{AUTHORIZATION, HeaderValue},
    test::{self, TestRequest},
    web,
};
use bearer_auth::NewToken;
use bearer_auth_actix::BearerAuthMiddleware;
use common::{Counter, Key, Keys, Row, assert_row, calls, principal_body, routes, rows, whoami};

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

type Answer = (u16, Vec<(String, Vec<u8>)>, Vec<u8>);

async fn read<B: MessageBody>(res: ServiceResponse<B>) -> Answer {
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    let body = test::read_body(res).await.to_vec();
    (status, headers, body)
}

fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a [u8]> {
    answer
        .1
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

/// Sends every row to `path` and checks the exact answer, and that the counting service
/// behind the middleware is reached by accepted requests only.
macro_rules! check_rows {
    ($app:expr, $path:expr, $keys:expr, $counter:expr) => {
        for row in rows($keys) {
            let before = calls($counter);
            let res =
                test::call_service($app, request($path, &row.authorization).to_request()).await;
            let (status, headers, body) = read(res).await;
            assert_row(&row, status, headers, &body, false);
            let expected = before + usize::from(row.accepted());
            assert_eq!(
                calls($counter),
                expected,
                "{}: wrapped service calls",
                row.name
            );
        }
    };
}

#[actix_web::test]
async fn resource_wrap_answers_every_row_and_skips_the_service_on_refusal() {
    let keys = Keys::new();
    let counter = Counter::default();
    let auth = BearerAuthMiddleware::new(keys.verifier());
    let app = test::init_service(App::new().configure(|cfg| routes(cfg, &auth, &counter))).await;
    check_rows!(&app, "/rows", &keys, &counter);
    assert_eq!(calls(&counter), 2);
}

#[actix_web::test]
async fn app_wrap_answers_every_row_and_covers_every_route() {
    let keys = Keys::new();
    let counter = Counter::default();
    let count = Arc::clone(&counter);
    let app = test::init_service(
        App::new()
            .wrap_fn(move |req, srv| {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                srv.call(req)
            })
            .wrap(BearerAuthMiddleware::new(keys.verifier()).require_all(["servers:read"]))
            .route("/rows", web::get().to(whoami))
            .route("/health", web::get().to(common::health)),
    )
    .await;
    check_rows!(&app, "/rows", &keys, &counter);
    // App::wrap covers every route, and unknown paths too.
    for path in ["/health", "/nowhere"] {
        let answer = read(test::call_service(&app, request(path, &[]).to_request()).await).await;
        assert_eq!(answer.0, 401, "{path}");
        assert_eq!(header(&answer, "www-authenticate"), Some(&b"Bearer"[..]));
    }
    assert_eq!(calls(&counter), 2);
}

#[actix_web::test]
async fn scope_wrap_answers_every_row_and_leaves_other_routes_open() {
    let keys = Keys::new();
    let counter = Counter::default();
    let count = Arc::clone(&counter);
    let app = test::init_service(
        App::new()
            .service(
                web::scope("/v1")
                    .wrap_fn(move |req, srv| {
                        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        srv.call(req)
                    })
                    .wrap(BearerAuthMiddleware::new(keys.verifier()).require_all(["servers:read"]))
                    .route("/rows", web::get().to(whoami)),
            )
            .route("/health", web::get().to(common::health)),
    )
    .await;
    check_rows!(&app, "/v1/rows", &keys, &counter);
    let answer = read(test::call_service(&app, request("/health", &[]).to_request()).await).await;
    assert_eq!((answer.0, answer.2.as_slice()), (200, &b"ok"[..]));
    assert_eq!(calls(&counter), 2);
}

#[actix_web::test]
async fn the_principal_reaches_the_handler() {
    let keys = Keys::new();
    let auth = BearerAuthMiddleware::new(keys.store.clone());
    let app = test::init_service(App::new().service(web::resource("/me").wrap(auth).to(
        |user: bearer_auth_actix::Authenticated<common::User>| async move {
            format!(
                "{} {} {:?}",
                user.owner(),
                user.id(),
                user.abilities().iter().collect::<Vec<_>>()
            )
        },
    )))
    .await;
    let body = test::call_and_read_body(&app, with_key("/me", &keys.reader).to_request()).await;
    assert_eq!(
        body,
        format!(r#"reader {} ["servers:read"]"#, keys.reader.id)
    );
}

#[actix_web::test]
async fn optional_routes_let_anonymous_requests_through_and_still_refuse_bad_tokens() {
    let keys = Keys::new();
    let counter = Counter::default();
    let auth = BearerAuthMiddleware::new(keys.verifier());
    let app = test::init_service(App::new().configure(|cfg| routes(cfg, &auth, &counter))).await;

    for path in ["/optional/maybe", "/optional/option"] {
        for anonymous in [vec![], vec![b"Basic dXNlcjpwYXNz".to_vec()]] {
            let answer =
                read(test::call_service(&app, request(path, &anonymous).to_request()).await).await;
            assert_eq!(
                (answer.0, answer.2.as_slice()),
                (200, &b"anonymous"[..]),
                "{path}"
            );
        }
        let answer =
            read(test::call_service(&app, with_key(path, &keys.ordinary).to_request()).await).await;
        assert_eq!(answer.0, 200, "{path}");
        assert_eq!(
            answer.2,
            principal_body("ordinary", keys.ordinary.id).into_bytes()
        );

        let answer =
            read(test::call_service(&app, with_key(path, &keys.revoked).to_request()).await).await;
        assert_eq!(answer.0, 401, "{path}");
        assert_eq!(answer.2, br#"{"message":"Unauthenticated."}"#);
        assert_eq!(
            header(&answer, "www-authenticate"),
            Some(&br#"Bearer error="invalid_token""#[..])
        );

        let answer =
            read(test::call_service(&app, with_key(path, &keys.pending).to_request()).await).await;
        assert_eq!(answer.0, 403, "{path}");
    }

    // `Authenticated<P>` on an optional route: an anonymous request gets the documented
    // 401, with the route's realm.
    let answer =
        read(test::call_service(&app, request("/optional/required", &[]).to_request()).await).await;
    let expected: Row = Row {
        name: "anonymous on an optional route, principal required",
        authorization: vec![],
        status: 401,
        body: br#"{"message":"Unauthenticated."}"#.to_vec(),
        www_authenticate: Some(r#"Bearer realm="api""#),
        reason: Some("missing"),
    };
    assert_row(&expected, answer.0, answer.1, &answer.2, false);
    let answer = read(
        test::call_service(
            &app,
            with_key("/optional/required", &keys.writer).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(
        answer.2,
        principal_body("writer", keys.writer.id).into_bytes()
    );
}

#[actix_web::test]
async fn required_abilities_all_and_any() {
    let keys = Keys::new();
    let both = keys
        .store
        .create(NewToken::new("both".to_owned(), "t").abilities(["servers:write", "servers:read"]))
        .unwrap();
    let both = Key {
        id: both.id(),
        token: both.plain_text_token().as_str().to_owned(),
    };
    let counter = Counter::default();
    let auth = BearerAuthMiddleware::new(keys.verifier());
    let app = test::init_service(App::new().configure(|cfg| routes(cfg, &auth, &counter))).await;

    let cases = [
        ("/abilities/all", &keys.reader, 403),
        ("/abilities/all", &keys.writer, 403),
        ("/abilities/all", &keys.billing, 403),
        ("/abilities/all", &both, 200),
        ("/abilities/all", &keys.ordinary, 200),
        ("/abilities/any", &keys.reader, 200),
        ("/abilities/any", &keys.writer, 200),
        ("/abilities/any", &keys.billing, 403),
        ("/abilities/any", &both, 200),
        ("/abilities/any", &keys.ordinary, 200),
    ];
    for (path, key, status) in cases {
        let answer = read(test::call_service(&app, with_key(path, key).to_request()).await).await;
        assert_eq!(answer.0, status, "{path} {}", key.id);
        if status == 403 {
            assert_eq!(answer.2, br#"{"message":"Invalid ability provided."}"#);
            assert_eq!(
                header(&answer, "content-type"),
                Some(&b"application/json"[..])
            );
            assert_eq!(header(&answer, "www-authenticate"), None);
        }
    }
}

#[actix_web::test]
async fn only_the_challenge_route_accepts_a_pending_second_factor() {
    let keys = Keys::new();
    let counter = Counter::default();
    let auth = BearerAuthMiddleware::new(keys.verifier());
    let app = test::init_service(App::new().configure(|cfg| routes(cfg, &auth, &counter))).await;

    let answer = read(
        test::call_service(&app, with_key("/2fa/challenge", &keys.pending).to_request()).await,
    )
    .await;
    assert_eq!(answer.0, 200);
    assert_eq!(
        answer.2,
        principal_body("pending", keys.pending.id).into_bytes()
    );

    for path in ["/rows", "/abilities/any", "/optional/maybe", "/realm"] {
        let answer =
            read(test::call_service(&app, with_key(path, &keys.pending).to_request()).await).await;
        assert_eq!(answer.0, 403, "{path}");
        assert_eq!(
            answer.2,
            br#"{"message":"Two-factor authentication required.","requires_2fa":true}"#
        );
    }

    // The challenge route still needs a valid token, and takes ordinary ones.
    let answer =
        read(test::call_service(&app, request("/2fa/challenge", &[]).to_request()).await).await;
    assert_eq!(answer.0, 401);
    let answer = read(
        test::call_service(&app, with_key("/2fa/challenge", &keys.expired).to_request()).await,
    )
    .await;
    assert_eq!(answer.0, 401);
    let answer = read(
        test::call_service(
            &app,
            with_key("/2fa/challenge", &keys.ordinary).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(answer.0, 200);

    // Once the second factor is passed, the key works everywhere.
    assert!(
        keys.store
            .confirm_second_factor(&"pending".to_owned(), keys.pending.id)
    );
    let answer =
        read(test::call_service(&app, with_key("/rows", &keys.pending).to_request()).await).await;
    assert_eq!(answer.0, 200);
}

#[actix_web::test]
async fn realm_is_sent_in_both_challenges() {
    let keys = Keys::new();
    let counter = Counter::default();
    let auth = BearerAuthMiddleware::new(keys.verifier());
    let app = test::init_service(App::new().configure(|cfg| routes(cfg, &auth, &counter))).await;

    let answer = read(test::call_service(&app, request("/realm", &[]).to_request()).await).await;
    assert_eq!(
        header(&answer, "www-authenticate"),
        Some(&br#"Bearer realm="api""#[..])
    );
    let answer =
        read(test::call_service(&app, with_key("/realm", &keys.revoked).to_request()).await).await;
    assert_eq!(
        header(&answer, "www-authenticate"),
        Some(&br#"Bearer realm="api", error="invalid_token""#[..])
    );
}

#[actix_web::test]
async fn extractors_on_an_uncovered_route() {
    let keys = Keys::new();
    let counter = Counter::default();
    let auth = BearerAuthMiddleware::new(keys.verifier());
    let app = test::init_service(App::new().configure(|cfg| routes(cfg, &auth, &counter))).await;

    for path in ["/uncovered/required", "/uncovered/maybe"] {
        // Even with a valid key: nothing verified it.
        let answer =
            read(test::call_service(&app, with_key(path, &keys.ordinary).to_request()).await).await;
        assert_eq!(answer.0, 500, "{path}");
        assert_eq!(
            answer.1,
            [(
                "content-type".to_owned(),
                b"text/plain; charset=utf-8".to_vec()
            )]
        );
        assert_eq!(answer.2, bearer_auth::MISSING_LAYER_BODY);
    }
    // actix-web's `Option<T>` turns the error into `None` (the error is logged: see the
    // tracing test).
    let answer = read(
        test::call_service(
            &app,
            with_key("/uncovered/option", &keys.ordinary).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!((answer.0, answer.2.as_slice()), (200, &b"anonymous"[..]));
}

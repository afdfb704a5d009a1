//! What other middlewares and handlers see of the request around a `BearerAuthMiddleware`:
//!
//! - a value of the principal's type that an outer middleware stored in the request
//!   extensions (a request id, a session's user name) is never taken for the principal;
//! - the `Authorization` header reaches the wrapped service marked sensitive, so that a
//!   `{:?}` of the headers shows `Sensitive` instead of the key.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    fmt::Display,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use actix_web::{
    App, HttpMessage, HttpRequest,
    body::MessageBody,
    dev::{Service as _, ServiceResponse},
    http::header::{AUTHORIZATION, HeaderValue},
    middleware::Logger,
    test::{self, TestRequest},
    web,
};
use bearer_auth::{
    BearerToken, BearerTokenRef, InvalidReason, Principal, Rejection, TokenVerifier,
    UNAUTHENTICATED_BODY,
};
use bearer_auth_actix::{Authenticated, BearerAuthMiddleware, MaybeAuthenticated};
use common::Keys;

/// The one token [`Fixed`] accepts.
const KEY: &str = "Bearer the-one-key";

/// Accepts `the-one-key` as its principal; answers at once (`verify_now`, decided in
/// the service's `call`) or only when awaited, so that both paths are covered.
#[derive(Clone)]
struct Fixed<P> {
    principal: P,
    at_once: bool,
}

impl<P: Principal> Fixed<P> {
    fn check(&self, token: &str) -> Result<P, Rejection> {
        match token {
            "the-one-key" => Ok(self.principal.clone()),
            _ => Err(Rejection::InvalidToken(InvalidReason::Unknown)),
        }
    }
}

#[bearer_auth::async_trait]
impl<P: Principal> TokenVerifier for Fixed<P> {
    type Principal = P;

    async fn verify(&self, token: &BearerToken) -> Result<P, Rejection> {
        self.check(token.as_str())
    }

    fn verify_now(&self, token: BearerTokenRef<'_>) -> Option<Result<P, Rejection>> {
        self.at_once.then(|| self.check(token.as_str()))
    }
}

async fn required<P: Principal + Display>(user: Authenticated<P>) -> String {
    format!("authenticated as {}", user.into_inner())
}

async fn option<P: Principal + Display>(user: Option<Authenticated<P>>) -> String {
    match user {
        Some(user) => format!("authenticated as {}", user.into_inner()),
        None => "anonymous".to_owned(),
    }
}

async fn maybe<P: Principal + Display>(user: MaybeAuthenticated<P>) -> String {
    match user.into_inner() {
        Some(user) => format!("authenticated as {user}"),
        None => "anonymous".to_owned(),
    }
}

fn request(path: &str, authorization: &[&str]) -> TestRequest {
    let mut req = TestRequest::get().uri(path);
    for value in authorization {
        req = req.append_header((AUTHORIZATION, HeaderValue::from_str(value).unwrap()));
    }
    req
}

/// Status, `WWW-Authenticate`, `Content-Type` and body.
async fn read<B: MessageBody>(res: ServiceResponse<B>) -> (u16, String, String, Vec<u8>) {
    let header = |name| {
        res.headers()
            .get(name)
            .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (challenge, content_type) = (header("www-authenticate"), header("content-type"));
    let status = res.status().as_u16();
    (
        status,
        challenge,
        content_type,
        test::read_body(res).await.to_vec(),
    )
}

fn assert_unauthenticated(answer: &(u16, String, String, Vec<u8>), what: &str) {
    assert_eq!(answer.0, 401, "{what}");
    assert_eq!(answer.1, "Bearer", "{what}");
    assert_eq!(answer.2, "application/json", "{what}");
    assert_eq!(answer.3, UNAUTHENTICATED_BODY, "{what}");
}

fn assert_ok(answer: &(u16, String, String, Vec<u8>), body: &str, what: &str) {
    assert_eq!(answer.0, 200, "{what}");
    assert_eq!(String::from_utf8_lossy(&answer.3), body, "{what}");
}

/// Every extractor, with the middleware optional and required and the verifier answering
/// at once and awaited, behind an outer `wrap_fn` that stores `outer` in the extensions.
async fn check<P: Principal + Display>(outer: P, principal: P) {
    let accepted = format!("authenticated as {principal}");
    for at_once in [true, false] {
        for optional in [true, false] {
            let verifier = Fixed {
                principal: principal.clone(),
                at_once,
            };
            let auth = BearerAuthMiddleware::new(verifier);
            let auth = if optional { auth.optional() } else { auth };
            let outer = outer.clone();
            let app = test::init_service(
                App::new()
                    .wrap_fn(move |req, srv| {
                        req.extensions_mut().insert(outer.clone());
                        srv.call(req)
                    })
                    .service(
                        web::scope("")
                            .wrap(auth)
                            .route("/required", web::get().to(required::<P>))
                            .route("/option", web::get().to(option::<P>))
                            .route("/maybe", web::get().to(maybe::<P>)),
                    ),
            )
            .await;
            let what = |case: &str| format!("at once {at_once}, optional {optional}: {case}");

            for anonymous in [&[][..], &["Basic dXNlcjpwYXNz"][..]] {
                let res = test::call_service(&app, request("/required", anonymous).to_request());
                assert_unauthenticated(&read(res.await).await, &what("required extractor"));
                for path in ["/option", "/maybe"] {
                    let res = test::call_service(&app, request(path, anonymous).to_request());
                    let answer = read(res.await).await;
                    if optional {
                        assert_ok(&answer, "anonymous", &what(path));
                    } else {
                        assert_unauthenticated(&answer, &what(path));
                    }
                }
            }
            for path in ["/required", "/option", "/maybe"] {
                let res = test::call_service(&app, request(path, &[KEY]).to_request());
                assert_ok(&read(res.await).await, &accepted, &what(path));
            }
        }
    }
}

#[actix_web::test]
async fn an_outer_u64_is_never_the_principal() {
    check(424_242_u64, 7_u64).await;
}

#[actix_web::test]
async fn an_outer_string_is_never_the_principal() {
    check("mallory".to_owned(), "alice".to_owned()).await;
}

/// The middleware in an app as it is deployed: the request logger, and a request-id
/// middleware that stores the id, a `u64`, in the extensions, both outside it.
#[actix_web::test]
async fn an_outer_request_id_in_a_real_stack_is_never_the_principal() {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1_000);
    for at_once in [true, false] {
        let verifier = Fixed {
            principal: 7_u64,
            at_once,
        };
        let app = test::init_service(
            App::new()
                .wrap_fn(|req, srv| {
                    let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
                    req.extensions_mut().insert(id);
                    let response = srv.call(req);
                    async move {
                        let mut response = response.await?;
                        response
                            .headers_mut()
                            .insert("x-request-id".parse().unwrap(), HeaderValue::from(id));
                        Ok(response)
                    }
                })
                .wrap(Logger::default())
                .service(
                    web::scope("/v1")
                        .wrap(BearerAuthMiddleware::new(verifier).optional())
                        .route("/me", web::get().to(maybe::<u64>))
                        .route("/strict", web::get().to(required::<u64>)),
                ),
        )
        .await;
        let res = test::call_service(&app, request("/v1/strict", &[]).to_request()).await;
        assert!(res.headers().contains_key("x-request-id"));
        assert_unauthenticated(&read(res).await, "strict, no key");
        let res = test::call_service(&app, request("/v1/me", &[]).to_request()).await;
        assert_ok(&read(res).await, "anonymous", "optional, no key");
        for path in ["/v1/me", "/v1/strict"] {
            let res = test::call_service(&app, request(path, &[KEY]).to_request()).await;
            assert_ok(&read(res).await, "authenticated as 7", path);
        }
    }
}

/// Neither of `secrets` is in `shown`; the header is there, marked.
fn assert_hidden(shown: &str, secrets: &[&str], what: &str) {
    for secret in secrets {
        assert!(!shown.contains(secret), "{what}: {shown}");
    }
    assert!(shown.contains("Sensitive"), "{what}: {shown}");
}

/// The headers' and the request's `Debug`, as a handler or a logger would print them.
async fn dump(req: HttpRequest) -> String {
    format!("{:?}\n{req:?}", req.headers())
}

#[actix_web::test]
async fn a_handler_never_sees_the_key_in_a_header_dump() {
    let keys = Keys::new();
    let key = keys.ordinary.token.as_str();
    let secret = key.split_once('|').unwrap().1;
    let bearer = format!("Bearer {key}");
    let basic = "Basic YWxpY2U6aHVudGVyMg==";
    let in_wrap_fn = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&in_wrap_fn);
    let at_once = BearerAuthMiddleware::new(keys.store.clone());
    let awaited = BearerAuthMiddleware::new(keys.verifier());
    let app = test::init_service(
        App::new()
            .service(
                web::scope("/at-once")
                    .wrap_fn(move |req, srv| {
                        // A middleware inside the auth middleware, printing the request.
                        recorded.lock().unwrap().push(format!("{req:?}"));
                        srv.call(req)
                    })
                    .wrap(at_once.clone())
                    .route("/dump", web::get().to(dump)),
            )
            .service(
                web::scope("/at-once-optional")
                    .wrap(at_once.optional())
                    .route("/dump", web::get().to(dump)),
            )
            .service(
                web::scope("/awaited")
                    .wrap(awaited.clone())
                    .route("/dump", web::get().to(dump)),
            )
            .service(
                web::scope("/awaited-optional")
                    .wrap(awaited.optional())
                    .route("/dump", web::get().to(dump)),
            ),
    )
    .await;
    for scope in [
        "/at-once",
        "/at-once-optional",
        "/awaited",
        "/awaited-optional",
    ] {
        let path = format!("{scope}/dump");
        let res = test::call_service(&app, request(&path, &[&bearer]).to_request()).await;
        let (status, _, _, body) = read(res).await;
        assert_eq!(status, 200, "{path}");
        assert_hidden(&String::from_utf8(body).unwrap(), &[key, secret], &path);
    }
    for scope in ["/at-once-optional", "/awaited-optional"] {
        // Another scheme on an optional route: let through anonymous, its credentials
        // hidden too.
        let path = format!("{scope}/dump");
        let res = test::call_service(&app, request(&path, &[basic]).to_request()).await;
        let (status, _, _, body) = read(res).await;
        assert_eq!(status, 200, "{path}");
        let shown = String::from_utf8(body).unwrap();
        assert_hidden(&shown, &["YWxpY2U6aHVudGVyMg"], &format!("{path}, basic"));
    }
    let in_wrap_fn = in_wrap_fn.lock().unwrap();
    assert_eq!(in_wrap_fn.len(), 1);
    assert_hidden(&in_wrap_fn[0], &[key, secret], "inner wrap_fn");
}

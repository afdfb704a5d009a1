//! Tokens longer than the bound get the 401 of an invalid token before the verifier, or
//! anything else that copies or hashes them, sees them.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use actix_web::{
    App, HttpResponse,
    body::MessageBody,
    dev::ServiceResponse,
    http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE},
    test::{self, TestRequest},
    web,
};
use bearer_auth::{
    BearerToken, DEFAULT_MAX_TOKEN_LEN, TokenVerifier, UNAUTHENTICATED_BODY, verifier_fn,
};
use bearer_auth_actix::BearerAuthMiddleware;
use common::{Keys, User};

/// The store's verifier, counting its calls.
fn counting(keys: &Keys, calls: &Arc<AtomicUsize>) -> impl TokenVerifier<Principal = User> + use<> {
    let store = keys.store.clone();
    let calls = Arc::clone(calls);
    verifier_fn(move |token: BearerToken| {
        calls.fetch_add(1, Ordering::SeqCst);
        let store = store.clone();
        async move { store.verify(&token).await }
    })
}

/// `/required` and `/optional`, each behind `auth`.
fn routes<V>(cfg: &mut web::ServiceConfig, auth: &BearerAuthMiddleware<V>)
where
    V: TokenVerifier<Principal = User> + 'static,
{
    cfg.service(
        web::resource("/required")
            .wrap(auth.clone())
            .to(HttpResponse::Ok),
    )
    .service(
        web::resource("/optional")
            .wrap(auth.clone().optional())
            .to(HttpResponse::Ok),
    );
}

type Answer = (u16, Vec<(String, Vec<u8>)>, Vec<u8>);

/// `GET $path` with one `Authorization` header, through `$app`: its [`Answer`].
macro_rules! call {
    ($app:expr, $path:expr, $authorization:expr) => {
        answer(
            test::call_service(
                &$app,
                TestRequest::get()
                    .uri($path)
                    .insert_header((AUTHORIZATION, String::from($authorization)))
                    .to_request(),
            )
            .await,
        )
        .await
    };
}

async fn answer<B: MessageBody>(res: ServiceResponse<B>) -> Answer {
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    (status, headers, test::read_body(res).await.to_vec())
}

fn assert_invalid_token((status, mut headers, body): Answer) {
    assert_eq!(status, 401);
    assert_eq!(body, UNAUTHENTICATED_BODY);
    headers.sort();
    assert_eq!(
        headers,
        vec![
            (
                CONTENT_TYPE.as_str().to_owned(),
                b"application/json".to_vec()
            ),
            (
                WWW_AUTHENTICATE.as_str().to_owned(),
                br#"Bearer error="invalid_token""#.to_vec()
            ),
        ]
    );
}

#[actix_web::test]
async fn a_400_kb_token_is_refused_before_the_verifier() {
    let keys = Keys::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let auth = BearerAuthMiddleware::new(counting(&keys, &calls));
    let app = test::init_service(App::new().configure(|cfg| routes(cfg, &auth))).await;
    let huge = format!("Bearer {}", "a".repeat(400 * 1024));
    for path in ["/required", "/optional"] {
        assert_invalid_token(call!(app, path, huge.as_str()));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // At the default bound the token reaches the verifier (and is unknown to it).
    let at = format!("Bearer {}", "a".repeat(DEFAULT_MAX_TOKEN_LEN));
    assert_invalid_token(call!(app, "/required", at.as_str()));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let past = format!("Bearer {}", "a".repeat(DEFAULT_MAX_TOKEN_LEN + 1));
    assert_invalid_token(call!(app, "/required", past.as_str()));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn max_token_len_sets_the_bound() {
    let keys = Keys::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let max = keys.ordinary.token.len();
    let auth = BearerAuthMiddleware::new(counting(&keys, &calls)).max_token_len(max);
    let app = test::init_service(App::new().configure(|cfg| routes(cfg, &auth))).await;

    let (status, _, _) = call!(app, "/required", keys.ordinary.bearer());
    assert_eq!(status, 200);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let longer = format!("{}a", keys.ordinary.bearer());
    for path in ["/required", "/optional"] {
        assert_invalid_token(call!(app, path, longer.as_str()));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

//! An actix-web app called through `actix_web::test::call_service`, bare and behind each
//! auth middleware: `cargo bench -p bearer-auth-actix --bench app`.
//!
//! Every setup serves `GET /v1/auth/user` with the same handler (200 with a static
//! `"ok"`), the middleware wrapping that one resource, on one actix `System`. Each request
//! is built in the timed loop (the same cost in every setup, so it cancels out of the
//! overheads; batching prepared requests made the allocator's state, and so the figures,
//! vary from one setup to the next) and carries the same valid
//! `Authorization: Bearer <token>`, a Sanctum-format token `{id}|{40 random}{crc32b}`
//! issued by a `MemoryStore`, so what is timed is the success path: routing, the
//! middleware, the handler, the response.
//!
//! - `app/bare`: no middleware (the baseline every overhead is measured from);
//! - `app/bearer-auth`: `BearerAuthMiddleware` over a `MemoryStore<String>` holding the one key. It
//!   parses the header to RFC 6750's grammar, takes the part after `|`, hashes it with
//!   SHA-256, finds the key by the digest's first 8 bytes in a `DashMap`, then by id in a
//!   second `DashMap`, compares the whole digest and the id in constant time, checks
//!   expiry, records `last_used_at`, clones the principal (id, owner `String`,
//!   abilities) into the request extensions and applies the route policy;
//! - `app/actix-web-httpauth`: actix-web-httpauth's `HttpAuthentication::bearer` with a
//!   validator doing the same work as ours in its plainest form: the crate's `BearerAuth`
//!   extractor reads the token, the validator takes the part after `|`, SHA-256s it (with
//!   `TokenHash::of`, the same `sha2` code ours uses), looks the 32-byte digest up in a
//!   `DashMap` holding the one key (the map kind `MemoryStore` uses) and clones the same
//!   principal (id, owner `String`, abilities) into the request extensions. It compares
//!   digests with the map's `==` (not constant time), does one lookup instead of two,
//!   checks no expiry and records no last use.
//!
//! - `app/actix-web-httpauth-static`: `HttpAuthentication::bearer` whose validator
//!   compares the token the `BearerAuth` extractor read with the one valid token, in
//!   constant time (`subtle`), and inserts nothing: no hashing, no lookup, no principal.
//!   The figure the actix-web goal reads ours against.
//!
//! `app-refused/*` time a request with a wrong token of the same shape (401) through both
//! middlewares, paired like `app/*` with the bare app sent the same wrong token (it
//! answers 200 to anything).
//!
//! Overhead of a middleware = its time − the bare time. Timed apart, two medians drift by
//! more than some overheads on a shared machine, so every `app/*` bench is paired: each
//! call criterion makes sends its requests through the setup and as many through the
//! bare app, alternating in blocks of 16. Criterion reports the setup's own time; the
//! bench also prints, and writes to `<criterion dir>/app/<setup>/paired.json`, the median
//! over the samples of (time through the setup − time through bare) per request
//! (`app-refused/<setup>/paired.json` for the refused group). `app/bare` paired with
//! itself shows the noise of that difference. BENCHMARKS.md at the repository root has
//! the figures and the goals they are read against.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a bench harness, not library code

#[path = "../../bearer-auth-tower/benches/support/paired.rs"]
mod paired;

use paired::{Records, SAMPLES, paired_overhead, report_paired};

use std::{
    future::Future,
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use actix_web::{
    App, Error, HttpMessage, HttpResponse,
    dev::{Service, ServiceRequest, ServiceResponse},
    http::StatusCode,
    rt::{System, SystemRunner},
    test, web,
};
use actix_web_httpauth::{
    extractors::{AuthenticationError, bearer::BearerAuth as BearerCredentials},
    headers::www_authenticate::bearer::Bearer as BearerChallenge,
    middleware::HttpAuthentication,
};
use bearer_auth::{Abilities, MemoryStore, NewToken, TokenHash};
use bearer_auth_actix::BearerAuthMiddleware;
use criterion::{
    BenchmarkGroup, Criterion, async_executor::AsyncExecutor, criterion_group, criterion_main,
    measurement::WallTime,
};
use dashmap::DashMap;
use subtle::ConstantTimeEq;

const PATH: &str = "/v1/auth/user";

/// The peer's principal: what `AccessToken<String>` holds.
#[derive(Clone, Debug)]
#[allow(dead_code)] // carried to the handler like ours, never read by it
struct User {
    id: u64,
    owner: String,
    abilities: Abilities,
}

/// Criterion's async benches on an actix `System`, which the services that
/// `test::init_service` builds need.
struct Actix(SystemRunner);

impl AsyncExecutor for &Actix {
    fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        self.0.block_on(future)
    }
}

async fn ok() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

/// actix-web-httpauth's validator doing a hashed lookup, as a user would write it for an
/// in-memory map.
async fn hashed_lookup(
    keys: Arc<DashMap<[u8; 32], User>>,
    req: ServiceRequest,
    credentials: BearerCredentials,
) -> Result<ServiceRequest, (Error, ServiceRequest)> {
    let token = credentials.token();
    let secret = token.split_once('|').map_or(token, |(_, secret)| secret);
    let digest = TokenHash::of(secret);
    let user = keys.get(digest.as_bytes()).map(|user| user.clone());
    match user {
        Some(user) => {
            req.extensions_mut().insert(user);
            Ok(req)
        }
        None => Err((
            AuthenticationError::new(BearerChallenge::default()).into(),
            req,
        )),
    }
}

/// actix-web-httpauth's validator comparing the token with the one valid token in
/// constant time: the plainest check it can do.
async fn static_compare(
    expected: Arc<str>,
    req: ServiceRequest,
    credentials: BearerCredentials,
) -> Result<ServiceRequest, (Error, ServiceRequest)> {
    if bool::from(credentials.token().as_bytes().ct_eq(expected.as_bytes())) {
        Ok(req)
    } else {
        Err((
            AuthenticationError::new(BearerChallenge::default()).into(),
            req,
        ))
    }
}

/// Tokens for the benches: a valid one and a wrong one of the same shape.
struct Tokens {
    store: MemoryStore<String>,
    keys: Arc<DashMap<[u8; 32], User>>,
    valid: String,
    wrong: String,
}

fn tokens() -> Tokens {
    let store = MemoryStore::<String>::new();
    let issued = store
        .create(NewToken::new("demo".to_owned(), "bench"))
        .unwrap();
    let plain = issued.plain_text_token().as_str();
    let (id, secret) = plain.split_once('|').unwrap();
    let flipped = if secret.starts_with('A') { "B" } else { "A" };
    let keys = DashMap::new();
    keys.insert(
        *issued.plain_text_token().hash().as_bytes(),
        User {
            id: issued.id(),
            owner: "demo".to_owned(),
            abilities: Abilities::all(),
        },
    );
    Tokens {
        store,
        keys: Arc::new(keys),
        valid: format!("Bearer {plain}"),
        wrong: format!("Bearer {id}|{flipped}{}", &secret[1..]),
    }
}

/// The benches' names for our middleware and the peer.
const OURS: &str = "bearer-auth";
const PEER: &str = "actix-web-httpauth";
const PEER_STATIC: &str = "actix-web-httpauth-static";

/// Requests sent through one app before switching to the other.
const BLOCK: u64 = 16;

/// Times `app` answering the requests `make` builds (in the timed loop), each call
/// criterion makes also sending as many requests through `bare`, alternating in blocks;
/// then reports the paired overhead as `<group_name>/<name>`.
fn timed_paired<S, T, R, B, C>(
    rt: &Actix,
    group: &mut BenchmarkGroup<'_, WallTime>,
    group_name: &str,
    name: &str,
    app: &S,
    bare: &T,
    make: impl Fn() -> R,
) where
    S: Service<R, Response = ServiceResponse<B>, Error = Error>,
    T: Service<R, Response = ServiceResponse<C>, Error = Error>,
{
    let records = Records::default();
    group.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let (make, records) = (&make, &records);
            async move {
                let (mut with, mut without) = (Duration::ZERO, Duration::ZERO);
                let mut done = 0;
                while done < iters {
                    let n = BLOCK.min(iters - done);
                    let start = Instant::now();
                    for _ in 0..n {
                        black_box(test::call_service(bare, make()).await);
                    }
                    without += start.elapsed();
                    let start = Instant::now();
                    for _ in 0..n {
                        black_box(test::call_service(app, make()).await);
                    }
                    with += start.elapsed();
                    done += n;
                }
                records.borrow_mut().push((with, without, iters));
                with
            }
        })
    });
    report_paired(&format!("{group_name}/{name}"), paired_overhead(&records));
}

/// The status `app` answers to `request`.
fn status<S, R, B>(rt: &Actix, app: &S, request: R) -> StatusCode
where
    S: Service<R, Response = ServiceResponse<B>, Error = Error>,
{
    rt.0.block_on(test::call_service(app, request)).status()
}

fn app(c: &mut Criterion) {
    let rt = Actix(System::new());
    let tokens = tokens();
    let request = |authorization: &str| {
        let authorization = authorization.to_owned();
        move || {
            test::TestRequest::get()
                .uri(PATH)
                .insert_header(("authorization", authorization.as_str()))
                .to_request()
        }
    };
    let valid = request(&tokens.valid);
    let wrong = request(&tokens.wrong);

    let bare = rt.0.block_on(test::init_service(
        App::new().service(web::resource(PATH).route(web::get().to(ok))),
    ));
    let ours = rt.0.block_on(test::init_service(
        App::new().service(
            web::resource(PATH)
                .wrap(BearerAuthMiddleware::new(tokens.store.clone()))
                .route(web::get().to(ok)),
        ),
    ));
    let keys = Arc::clone(&tokens.keys);
    let peer = rt.0.block_on(test::init_service(
        App::new().service(
            web::resource(PATH)
                .wrap(HttpAuthentication::bearer(move |req, credentials| {
                    hashed_lookup(Arc::clone(&keys), req, credentials)
                }))
                .route(web::get().to(ok)),
        ),
    ));

    let expected: Arc<str> = Arc::from(tokens.valid.strip_prefix("Bearer ").unwrap());
    let peer_static = rt.0.block_on(test::init_service(
        App::new().service(
            web::resource(PATH)
                .wrap(HttpAuthentication::bearer(move |req, credentials| {
                    static_compare(Arc::clone(&expected), req, credentials)
                }))
                .route(web::get().to(ok)),
        ),
    ));

    // Every setup answers the valid request with 200; the middlewares refuse the wrong one,
    // which bare answers 200.
    assert_eq!(status(&rt, &peer_static, valid()), StatusCode::OK);
    assert_eq!(status(&rt, &peer_static, wrong()), StatusCode::UNAUTHORIZED);
    assert_eq!(status(&rt, &bare, valid()), StatusCode::OK);
    assert_eq!(status(&rt, &bare, wrong()), StatusCode::OK);
    assert_eq!(status(&rt, &ours, valid()), StatusCode::OK);
    assert_eq!(status(&rt, &peer, valid()), StatusCode::OK);
    assert_eq!(status(&rt, &ours, wrong()), StatusCode::UNAUTHORIZED);
    assert_eq!(status(&rt, &peer, wrong()), StatusCode::UNAUTHORIZED);

    let mut group = c.benchmark_group("app");
    group.sample_size(SAMPLES);
    timed_paired(&rt, &mut group, "app", "bare", &bare, &bare, &valid);
    timed_paired(&rt, &mut group, "app", OURS, &ours, &bare, &valid);
    timed_paired(&rt, &mut group, "app", PEER, &peer, &bare, &valid);
    timed_paired(
        &rt,
        &mut group,
        "app",
        PEER_STATIC,
        &peer_static,
        &bare,
        &valid,
    );
    group.finish();

    // Refused: the wrong token through the middleware, beside bare sent the same wrong
    // token (bare answers it 200).
    let mut group = c.benchmark_group("app-refused");
    group.sample_size(SAMPLES);
    timed_paired(&rt, &mut group, "app-refused", OURS, &ours, &bare, &wrong);
    timed_paired(&rt, &mut group, "app-refused", PEER, &peer, &bare, &wrong);
    group.finish();
}

criterion_group!(benches, app);
criterion_main!(benches);

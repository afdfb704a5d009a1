//! An axum `Router` called with `oneshot`, bare and behind each auth layer:
//! `cargo bench -p bearer-auth-tower --bench router`.
//!
//! Every setup serves `GET /v1/auth/user` with the same handler (a static `"ok"`), on a
//! current-thread tokio runtime. Each `Router` is finalized with `with_state(())`, as
//! `axum::serve` does for every connection: otherwise axum turns the handler into a
//! route, applying the layer again, on every request. Each request is built in the timed
//! loop (the same cost in every setup, so it cancels out of the overheads; batching
//! prepared requests made the allocator's state, and so the figures, vary from one setup
//! to the next) and carries the same valid `Authorization: Bearer <token>`, a
//! Sanctum-format token `{id}|{40 random}{crc32b}` issued by a `MemoryStore`, so what is
//! timed is the success path: routing, the layer, the handler, the response.
//!
//! - `router/bare`: no layer at all (the baseline every overhead is measured from);
//! - `router/bearer-auth`: `BearerAuthLayer` over a `MemoryStore<String>` holding the one
//!   key, as `route_layer`. It parses the header to RFC 6750's grammar, takes the part
//!   after `|`, hashes it with SHA-256, finds the key by the digest's first 8 bytes in a
//!   `DashMap`, then by id in a second `DashMap`, compares the whole digest and the id in
//!   constant time, checks expiry, records `last_used_at`, clones the principal (id,
//!   owner `String`, abilities) into the request extensions and applies the route policy;
//! - `router/tower-http-static`: tower-http's `ValidateRequestHeaderLayer::bearer(token)`,
//!   the simplest peer: the header value compared with `==` to the one configured
//!   `Bearer <token>`; no hashing, no store, no principal, not constant time;
//! - `router/tower-http-hashed`: tower-http's `AsyncRequireAuthorizationLayer` with a
//!   validator doing the same work as ours in its plainest form: strip `Bearer `, take
//!   the part after `|`, SHA-256 it (with `TokenHash::of`, the same `sha2` code ours
//!   uses), look the 32-byte digest up in a `DashMap` holding the one key (the map kind
//!   `MemoryStore` uses), clone the same principal (id, owner `String`, abilities) into
//!   the request extensions. It compares digests with the map's `==` (not constant
//!   time), does one lookup instead of two, checks no expiry and records no last use;
//!   its future is `std::future::Ready` (no allocation).
//!
//! `router-refused/*` time a request with a wrong token of the same shape (401) through the
//! layers that look tokens up.
//!
//! Overhead of a layer = its time − the bare time. Timed apart, two medians drift by more
//! than some overheads on a shared machine, so every `router/*` bench is paired: each
//! call criterion makes sends its requests through the setup and as many through the
//! bare router, alternating in blocks of 16. Criterion reports the setup's own time;
//! the bench also prints, and writes to `<criterion dir>/router/<setup>/paired.json`, the
//! median over the samples of (time through the setup − time through bare) per request.
//! `router/bare` paired with itself shows the noise of that difference.
//! BENCHMARKS.md at the repository root has the figures and the goals they are read
//! against.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a bench harness, not library code

#[path = "support/paired.rs"]
mod paired;

use paired::{Records, SAMPLES, paired_overhead, report_paired};

use std::{
    future::{Ready, ready},
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Router, body::Body, routing::get};
use bearer_auth::{Abilities, MemoryStore, NewToken, TokenHash};
use bearer_auth_tower::BearerAuthLayer;
use criterion::{Criterion, criterion_group, criterion_main};
use dashmap::DashMap;
use http::{HeaderValue, Request, Response, StatusCode, header::AUTHORIZATION};
use tower::ServiceExt;
use tower_http::{
    auth::{AsyncAuthorizeRequest, AsyncRequireAuthorizationLayer},
    validate_request::ValidateRequestHeaderLayer,
};

const PATH: &str = "/v1/auth/user";

/// The peer's principal: what `AccessToken<String>` holds.
#[derive(Clone, Debug)]
#[allow(dead_code)] // carried to the handler like ours, never read by it
struct User {
    id: u64,
    owner: String,
    abilities: Abilities,
}

/// tower-http's asynchronous authorization doing a hashed lookup, as a user would write
/// it for an in-memory map.
#[derive(Clone)]
struct HashedLookup {
    keys: Arc<DashMap<[u8; 32], User>>,
}

impl HashedLookup {
    fn find(&self, request: &Request<Body>) -> Option<User> {
        let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
        let token = value.strip_prefix("Bearer ")?;
        let secret = token.split_once('|').map_or(token, |(_, secret)| secret);
        let digest = TokenHash::of(secret);
        self.keys.get(digest.as_bytes()).map(|user| user.clone())
    }
}

impl AsyncAuthorizeRequest<Body> for HashedLookup {
    type RequestBody = Body;
    type ResponseBody = Body;
    type Future = Ready<Result<Request<Body>, Response<Body>>>;

    fn authorize(&mut self, mut request: Request<Body>) -> Self::Future {
        ready(match self.find(&request) {
            Some(user) => {
                request.extensions_mut().insert(user);
                Ok(request)
            }
            None => {
                let mut response = Response::new(Body::empty());
                *response.status_mut() = StatusCode::UNAUTHORIZED;
                Err(response)
            }
        })
    }
}

fn bare() -> Router {
    Router::new().route(PATH, get(|| async { "ok" }))
}

struct Setups {
    /// The valid token's header value.
    valid: HeaderValue,
    /// A token of the same shape that no key has.
    wrong: HeaderValue,
    routers: Vec<(&'static str, Router)>,
}

fn setups() -> Setups {
    let store = MemoryStore::<String>::new();
    let issued = store
        .create(NewToken::new("demo".to_owned(), "bench"))
        .unwrap();
    let plain = issued.plain_text_token().as_str();
    let valid = HeaderValue::try_from(format!("Bearer {plain}")).unwrap();
    let wrong = {
        let (id, secret) = plain.split_once('|').unwrap();
        let flipped = if secret.starts_with('A') { "B" } else { "A" };
        HeaderValue::try_from(format!("Bearer {id}|{flipped}{}", &secret[1..])).unwrap()
    };

    let keys = DashMap::new();
    keys.insert(
        *issued.plain_text_token().hash().as_bytes(),
        User {
            id: issued.id(),
            owner: "demo".to_owned(),
            abilities: Abilities::all(),
        },
    );
    let hashed = HashedLookup {
        keys: Arc::new(keys),
    };

    let routers: Vec<(&'static str, Router)> = vec![
        ("bare", bare()),
        (
            "bearer-auth",
            bare().route_layer(BearerAuthLayer::new(store)),
        ),
        (
            "tower-http-static",
            #[allow(deprecated)] // tower-http keeps it, deprecated as "too basic"
            bare().route_layer(ValidateRequestHeaderLayer::bearer(plain)),
        ),
        (
            "tower-http-hashed",
            bare().route_layer(AsyncRequireAuthorizationLayer::new(hashed)),
        ),
    ];
    let routers = routers
        .into_iter()
        .map(|(name, router)| (name, router.with_state(())))
        .collect();
    Setups {
        valid,
        wrong,
        routers,
    }
}

fn request(authorization: &HeaderValue) -> Request<Body> {
    Request::get(PATH)
        .header(AUTHORIZATION, authorization.clone())
        .body(Body::empty())
        .unwrap()
}

/// Requests sent through one router before switching to the other.
const BLOCK: u64 = 16;

/// Sends `iters` requests through `setup` and as many through `bare`, alternating in
/// blocks, records both times and returns the setup's (what criterion reports).
async fn paired(
    setup: &Router,
    bare: &Router,
    valid: &HeaderValue,
    iters: u64,
    records: &Records,
) -> Duration {
    let (mut with, mut without) = (Duration::ZERO, Duration::ZERO);
    let mut done = 0;
    while done < iters {
        let n = BLOCK.min(iters - done);
        let start = Instant::now();
        for _ in 0..n {
            black_box(bare.clone().oneshot(request(valid)).await.unwrap());
        }
        without += start.elapsed();
        let start = Instant::now();
        for _ in 0..n {
            black_box(setup.clone().oneshot(request(valid)).await.unwrap());
        }
        with += start.elapsed();
        done += n;
    }
    records.borrow_mut().push((with, without, iters));
    with
}

fn router(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let setups = setups();

    // Every setup answers the valid request with 200 and the wrong one as intended.
    for (name, router) in &setups.routers {
        let ok = rt.block_on(router.clone().oneshot(request(&setups.valid)));
        assert_eq!(ok.unwrap().status(), StatusCode::OK, "{name}");
        let wrong = rt.block_on(router.clone().oneshot(request(&setups.wrong)));
        let expected = if *name == "bare" {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(wrong.unwrap().status(), expected, "{name}");
    }

    let bare = &setups.routers[0].1;
    let mut group = c.benchmark_group("router");
    group.sample_size(SAMPLES);
    for (name, router) in &setups.routers {
        let records = Records::default();
        group.bench_function(*name, |b| {
            b.to_async(&rt)
                .iter_custom(|iters| paired(router, bare, &setups.valid, iters, &records))
        });
        report_paired(&format!("router/{name}"), paired_overhead(&records));
    }
    group.finish();

    let mut group = c.benchmark_group("router-refused");
    group.sample_size(SAMPLES);
    for (name, router) in &setups.routers {
        if matches!(*name, "bearer-auth" | "tower-http-hashed") {
            group.bench_function(*name, |b| {
                b.to_async(&rt)
                    .iter(|| router.clone().oneshot(request(&setups.wrong)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, router);
criterion_main!(benches);

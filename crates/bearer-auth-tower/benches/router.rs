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
//!   its future is `std::future::Ready` (no allocation);
//! - `router/floor`: tower-http's `ValidateRequestHeaderLayer::custom` with a validator
//!   that reads the `Authorization` header, strips `Bearer `, takes the part after `|`,
//!   hashes it with `TokenHash::of` (SHA-256) and compares the 32-byte digest with `==`
//!   to the valid key's; 401 with an empty body otherwise. It inserts nothing into the
//!   extensions: a route layer plus one SHA-256, the floor our overhead is read against;
//! - `router/bearer-auth-layer`, `router/tower-http-static-layer`, `router/floor-layer`:
//!   the same layers applied with `Router::layer` instead of `Router::route_layer`.
//!
//! `router-floor/sha256-secret` times `TokenHash::of` alone on the issued key's
//! 48-character secret, so that bearer-auth's overhead ÷ (tower-http-static's overhead +
//! SHA-256) comes from one run. The bench prints it, in nanoseconds, for `route_layer`
//! and for `layer`, beside bearer-auth's paired overhead ÷ the floor's (both relative
//! to bare, which cancels the machine's drift).
//!
//! `router-refused/*` time a request with a wrong token of the same shape (401) through
//! the layers that hash tokens, paired like `router/*` with bare sent the same wrong token
//! (bare answers 200 to anything).
//!
//! Overhead of a layer = its time − the bare time. Timed apart, two medians drift by more
//! than some overheads on a shared machine, so every `router/*` bench is paired: each
//! call criterion makes sends its requests through the setup and as many through the
//! bare router, alternating in blocks of 16. Criterion reports the setup's own time;
//! the bench also prints, and writes to `<criterion dir>/router/<setup>/paired.json`, the
//! median over the samples of (time through the setup − time through bare) per request
//! (`router-refused/<setup>/paired.json` for the refused group). `router/bare` paired
//! with itself shows the noise of that difference.
//! BENCHMARKS.md at the repository root has the figures and the goals they are read
//! against.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a bench harness, not library code

#[path = "support/paired.rs"]
mod paired;
#[path = "support/setups.rs"]
mod setups;

use paired::{Records, SAMPLES, median, paired_overhead, report_paired};
use setups::{request, secret, setups};

use std::{
    cell::RefCell,
    hint::black_box,
    time::{Duration, Instant},
};

use axum::Router;
use bearer_auth::TokenHash;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderValue, StatusCode};
use tower::ServiceExt;

/// Requests sent through one router before switching to the other.
const BLOCK: u64 = 16;

/// Sends `iters` requests carrying `authorization` through `setup` and as many through
/// `bare`, alternating in blocks, records both times and returns the setup's (what
/// criterion reports).
async fn paired(
    setup: &Router,
    bare: &Router,
    authorization: &HeaderValue,
    iters: u64,
    records: &Records,
) -> Duration {
    let (mut with, mut without) = (Duration::ZERO, Duration::ZERO);
    let mut done = 0;
    while done < iters {
        let n = BLOCK.min(iters - done);
        let start = Instant::now();
        for _ in 0..n {
            black_box(bare.clone().oneshot(request(authorization)).await.unwrap());
        }
        without += start.elapsed();
        let start = Instant::now();
        for _ in 0..n {
            black_box(setup.clone().oneshot(request(authorization)).await.unwrap());
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
    let mut accepted = Vec::new();
    let mut group = c.benchmark_group("router");
    group.sample_size(SAMPLES);
    for (name, router) in &setups.routers {
        let records = Records::default();
        group.bench_function(*name, |b| {
            b.to_async(&rt)
                .iter_custom(|iters| paired(router, bare, &setups.valid, iters, &records))
        });
        let overhead = paired_overhead(&records);
        report_paired(&format!("router/{name}"), overhead);
        accepted.push((*name, overhead));
    }
    group.finish();

    // The floor's other half: one SHA-256 of the issued key's 48-character secret.
    let token = setups
        .valid
        .to_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap();
    let secret = secret(token);
    let sha256: RefCell<Vec<(Duration, u64)>> = RefCell::default();
    let mut group = c.benchmark_group("router-floor");
    group.sample_size(SAMPLES);
    group.bench_function("sha256-secret", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(TokenHash::of(black_box(secret)));
            }
            let elapsed = start.elapsed();
            sha256.borrow_mut().push((elapsed, iters));
            elapsed
        })
    });
    group.finish();
    let sha256 = {
        let records = sha256.borrow();
        let last = &records[records.len().saturating_sub(SAMPLES)..];
        median(
            last.iter()
                .map(|(elapsed, iters)| elapsed.as_secs_f64() * 1e9 / *iters as f64),
        )
    };
    let overhead = |name: &str| {
        accepted
            .iter()
            .find(|(setup, _)| *setup == name)
            .and_then(|(_, overhead)| *overhead)
    };
    for suffix in ["", "-layer"] {
        let ours = overhead(&format!("bearer-auth{suffix}"));
        let stat = overhead(&format!("tower-http-static{suffix}"));
        let floor = overhead(&format!("floor{suffix}"));
        if let (Some(ours), Some(stat), Some(floor), Some(sha256)) = (ours, stat, floor, sha256) {
            println!(
                "router-floor{suffix}: bearer-auth overhead ÷ (tower-http-static overhead + \
                 sha256-secret) = {:.3} ({:.1} ns ÷ ({:.1} ns + {sha256:.1} ns)); \
                 ÷ the floor's paired overhead = {:.3} ({:.1}% ÷ {:.1}% of bare)",
                ours.0 / (stat.0 + sha256),
                ours.0,
                stat.0,
                ours.1 / floor.1,
                ours.1 * 100.0,
                floor.1 * 100.0,
            );
        }
    }

    // Refused: the wrong token through the setup, beside bare sent the same wrong token
    // (bare answers it 200).
    let mut group = c.benchmark_group("router-refused");
    group.sample_size(SAMPLES);
    for (name, router) in &setups.routers {
        if matches!(*name, "bearer-auth" | "tower-http-hashed" | "floor") {
            let records = Records::default();
            group.bench_function(*name, |b| {
                b.to_async(&rt)
                    .iter_custom(|iters| paired(router, bare, &setups.wrong, iters, &records))
            });
            report_paired(&format!("router-refused/{name}"), paired_overhead(&records));
        }
    }
    group.finish();
}

criterion_group!(benches, router);
criterion_main!(benches);

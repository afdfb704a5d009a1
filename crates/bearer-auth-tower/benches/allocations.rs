//! Heap allocations per request through an axum `Router`, bare and behind each auth
//! layer, by a counting allocator: `cargo bench -p bearer-auth-tower --bench allocations`.
//!
//! The setups are `router.rs`'s (the same `support/setups.rs`). Each is sent 10,000
//! requests one by one with `oneshot` on a current-thread tokio runtime, each request
//! built in the loop as `router.rs` does, after a few untimed ones (first-use
//! allocations). The valid token goes through every setup, the wrong one through bare
//! and the setups that look tokens up. The bench prints the allocations (the
//! allocator's `alloc` calls; reallocations apart) and the bytes allocated per request,
//! and their difference from bare sent the same token. `tests/allocations.rs` holds our
//! layer to its count.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a bench harness, not library code

#[path = "support/setups.rs"]
mod setups;

use setups::{request, setups};

use std::{alloc::System, hint::black_box};

use axum::Router;
use http::{HeaderValue, StatusCode};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::ServiceExt;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Requests counted per setup.
const REQUESTS: u64 = 10_000;

/// Requests sent before counting.
const WARM_UP: u64 = 100;

/// Per request: allocations, reallocations, bytes allocated.
#[derive(Clone, Copy)]
struct PerRequest {
    allocations: f64,
    reallocations: f64,
    bytes: f64,
}

fn count(
    rt: &tokio::runtime::Runtime,
    router: &Router,
    authorization: &HeaderValue,
    expected: StatusCode,
) -> PerRequest {
    let send = |n: u64| {
        rt.block_on(async {
            for _ in 0..n {
                let response = router.clone().oneshot(request(authorization)).await;
                assert_eq!(black_box(response.unwrap()).status(), expected);
            }
        });
    };
    send(WARM_UP);
    let region = Region::new(GLOBAL);
    send(REQUESTS);
    let stats = region.change();
    let n = REQUESTS as f64;
    PerRequest {
        allocations: stats.allocations as f64 / n,
        reallocations: stats.reallocations as f64 / n,
        bytes: stats.bytes_allocated as f64 / n,
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let setups = setups();
    let (_, bare) = &setups.routers[0];

    println!("per request, over {REQUESTS} requests (difference from bare sent the same token):");
    println!(
        "{:<34} {:>12} {:>8} {:>14} {:>10} {:>12}",
        "setup", "allocations", "(+bare)", "reallocations", "bytes", "(+bare)"
    );
    let row = |name: &str, counted: PerRequest, baseline: PerRequest| {
        println!(
            "{name:<34} {:>12.2} {:>+8.2} {:>14.2} {:>10.1} {:>+12.1}",
            counted.allocations,
            counted.allocations - baseline.allocations,
            counted.reallocations,
            counted.bytes,
            counted.bytes - baseline.bytes,
        );
    };

    let baseline = count(&rt, bare, &setups.valid, StatusCode::OK);
    for (name, router) in &setups.routers {
        let counted = count(&rt, router, &setups.valid, StatusCode::OK);
        row(name, counted, baseline);
    }

    let baseline = count(&rt, bare, &setups.wrong, StatusCode::OK);
    for (name, router) in &setups.routers {
        let expected = match *name {
            "bare" => StatusCode::OK,
            "bearer-auth" | "tower-http-hashed" => StatusCode::UNAUTHORIZED,
            _ => continue,
        };
        let counted = count(&rt, router, &setups.wrong, expected);
        row(&format!("{name} (wrong token)"), counted, baseline);
    }
}

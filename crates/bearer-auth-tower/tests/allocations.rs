//! The heap allocations an accepted request through `BearerAuthLayer` adds, counted by a
//! counting global allocator (this test binary's own) against the same request through
//! tower-http's static bearer check. `benches/allocations.rs` prints the counts for every
//! setup.

// The helpers outside `#[test]` functions are test code too: a failed setup fails the test.
#![allow(clippy::unwrap_used)]

use std::alloc::System;

use axum::{Router, body::Body, routing::get};
use bearer_auth::{MemoryStore, NewToken};
use bearer_auth_tower::BearerAuthLayer;
use http::{HeaderValue, Request, StatusCode, header::AUTHORIZATION};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::ServiceExt;
use tower_http::validate_request::ValidateRequestHeaderLayer;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const PATH: &str = "/v1/auth/user";

/// The allocations an accepted request through `BearerAuthLayer` (as `route_layer`, over
/// a `MemoryStore<u64>`) makes beyond the same request through tower-http's
/// `ValidateRequestHeaderLayer::bearer`, which compares the header with `==` and inserts
/// nothing: the principal's insertion into the request extensions, i.e. the box holding
/// the `AccessToken<u64>`. Inserting into a request's extensions allocates the map and
/// the box of the value, but axum's router has already created the map by the time a
/// route layer runs (it inserts the matched route's URL parameters, even when there are
/// none), so only the box is ours. Parsing borrows the token, the lookups and the policy
/// allocate nothing.
const EXPECTED: usize = 1;

/// The same over a `MemoryStore<String>`: one more, the principal's own copy of its
/// `String` owner. The store clones the owner into each principal rather than sharing it
/// behind a reference count, which every core would write for one busy key (see
/// BENCHMARKS.md); an owner that is cheap to clone (an id) costs nothing.
const EXPECTED_STRING_OWNER: usize = 2;

/// Requests sent through each router before counting (first-use allocations).
const WARM_UP: usize = 16;

/// Requests counted one by one through each router; the fewest allocations any of them
/// made is the router's count (a rare allocation, such as a map growing, is not the
/// request's own).
const COUNTED: usize = 32;

/// The fewest allocations one request through `router` made, the request's building and
/// the response's dropping included (the same through every router).
fn allocations_per_request(
    rt: &tokio::runtime::Runtime,
    router: &Router,
    authorization: &HeaderValue,
) -> usize {
    let send = || {
        let request = Request::get(PATH)
            .header(AUTHORIZATION, authorization.clone())
            .body(Body::empty())
            .unwrap();
        let response = rt.block_on(router.clone().oneshot(request)).unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    };
    for _ in 0..WARM_UP {
        send();
    }
    (0..COUNTED)
        .map(|_| {
            let region = Region::new(GLOBAL);
            send();
            region.change().allocations
        })
        .min()
        .unwrap()
}

// One test only: the allocator counts every thread's allocations, so nothing else may run
// beside the counting.
#[test]
fn an_accepted_request_allocates_only_the_principals_insertion() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let by_id = MemoryStore::<u64>::new();
    let by_name = MemoryStore::<String>::new();
    // Two keys with the same secret length, one in each store.
    let id_key = by_id.create(NewToken::new(7, "test")).unwrap();
    let name_key = by_name
        .create(NewToken::new("demo".to_owned(), "test"))
        .unwrap();

    let bare = || Router::new().route(PATH, get(|| async { "ok" }));
    for (router, issued, expected) in [
        (
            bare().route_layer(BearerAuthLayer::new(by_id.clone())),
            &id_key,
            EXPECTED,
        ),
        (
            bare().route_layer(BearerAuthLayer::new(by_name.clone())),
            &name_key,
            EXPECTED_STRING_OWNER,
        ),
    ] {
        let plain = issued.plain_text_token().as_str();
        let authorization = HeaderValue::try_from(format!("Bearer {plain}")).unwrap();
        let ours = router.with_state(());
        #[allow(deprecated)] // tower-http keeps it, deprecated as "too basic"
        let peer = bare()
            .route_layer(ValidateRequestHeaderLayer::bearer(plain))
            .with_state(());

        let peer_count = allocations_per_request(&rt, &peer, &authorization);
        let ours_count = allocations_per_request(&rt, &ours, &authorization);
        println!(
            "allocations per accepted request: bearer-auth {ours_count}, tower-http static {peer_count}"
        );
        assert_eq!(
            ours_count.checked_sub(peer_count),
            Some(expected),
            "bearer-auth made {ours_count} allocations per accepted request, \
             tower-http's static check {peer_count}: {expected} more expected"
        );
    }
}

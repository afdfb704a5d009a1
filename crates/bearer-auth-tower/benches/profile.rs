//! Requests through one of the router bench's setups, in a loop, for a profiler:
//!
//! ```sh
//! cargo bench -p bearer-auth-tower --bench profile --no-run
//! valgrind --tool=callgrind target/release/deps/profile-<hash> bearer-auth
//! valgrind --tool=callgrind target/release/deps/profile-<hash> floor wrong
//! callgrind_annotate --inclusive=yes callgrind.out.<pid>
//! ```
//!
//! Arguments: the setup's name (`bare`, `bearer-auth`, `floor`, … as in
//! `benches/support/setups.rs`), then `wrong` to send the wrong token (401) instead of the
//! valid one. 20,000 requests, one at a time, each built in the loop as the router bench
//! does; instruction counts per request are the profile's totals divided by 20,000 (the
//! set-up, a few hundred thousand instructions, is in the totals too). Run by
//! `cargo bench` without arguments, it sends them through `bearer-auth`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a bench harness, not library code

#[path = "support/setups.rs"]
#[allow(dead_code)] // the router bench's setups; this binary uses one at a time
mod setups;

use std::hint::black_box;

use http::StatusCode;
use setups::{request, setups};
use tower::ServiceExt;

/// Requests sent.
const REQUESTS: usize = 20_000;

fn main() {
    // `cargo bench` passes `--bench`; the arguments that matter are the others.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let name = args.first().map_or("bearer-auth", String::as_str);
    let wrong = args.get(1).is_some_and(|arg| arg == "wrong");
    let setups = setups();
    let router = setups.router(name);
    let authorization = if wrong { &setups.wrong } else { &setups.valid };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let expected = if wrong && name != "bare" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    rt.block_on(async {
        for _ in 0..REQUESTS {
            let response = router
                .clone()
                .oneshot(request(authorization))
                .await
                .unwrap();
            assert_eq!(response.status(), expected);
            black_box(response);
        }
    });
    println!("{REQUESTS} requests through {name} ({expected})");
}

//! How verification scales with the cores: `cargo bench -p bearer-auth-tower --bench scaling`.
//!
//! The scaling figure of a setup = its requests per second with every core busy ÷ its
//! requests per second on one core. Measured for `bare` (no layer) and `bearer-auth`
//! (`BearerAuthLayer` over a `MemoryStore<String>` holding one key, as `route_layer`),
//! the same routers as `router.rs`, every request carrying the same valid
//! `Authorization: Bearer <token>`. A layer that serializes its callers (a lock, a
//! contended cache line: the store records `last_used_at` on every verification) scales
//! worse than bare; the ratio bearer-auth ÷ bare of the two figures reads how much.
//!
//! Each call criterion makes (`iter_custom`, `iters` requests) runs four batches of
//! `iters` requests: bare and bearer-auth, each with 1 thread and with T threads
//! (T = `std::thread::available_parallelism()`). A batch splits its requests across its
//! threads; each thread has its own tokio current-thread runtime and its own clone of the
//! finalized `Router`, sends a few requests untimed, then all start together behind a
//! `std::sync::Barrier`; the batch's time is the wall time from the first thread leaving
//! the barrier to the last one finishing. The four batches run in turn, in reverse order
//! every other call, so that the machine's drift affects both setups and both thread
//! counts alike. Criterion reports bearer-auth's wall time per request with T threads;
//! the bench prints, and writes to `<criterion dir>/scaling/bearer-auth/scaling.json`,
//! the medians over the samples of each scaling figure (time with 1 thread ÷ time with
//! T threads, for the same number of requests) and of their ratio bearer-auth ÷ bare.
//! Other processes competing for the cores lower the figures: run it on an idle machine.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a bench harness, not library code

#[path = "support/paired.rs"]
#[allow(dead_code)] // the router bench's pairing; this bench takes its median only
mod paired;
#[path = "support/setups.rs"]
mod setups;

use paired::{criterion_dir, median};

use setups::{request, setups};

use std::{
    cell::{Cell, RefCell},
    hint::black_box,
    sync::Barrier,
    thread,
    time::{Duration, Instant},
};

use axum::Router;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderValue, StatusCode};
use tokio::runtime::{Builder, Runtime};
use tower::ServiceExt;

/// Samples criterion takes; the figures are medians over exactly these.
const SAMPLES: usize = 20;

/// Requests each thread sends before the barrier, untimed (its runtime's and its
/// allocator's first use).
const WARM_UP: u64 = 16;

/// One call criterion made: the wall times of bare and bearer-auth, with 1 thread
/// (`[0]`) and with T threads (`[1]`), for `iters` requests each.
struct Sample {
    bare: [Duration; 2],
    ours: [Duration; 2],
    iters: u64,
}

/// Sends `n` requests through `router`, one by one, on `rt`.
fn send(rt: &Runtime, router: &Router, authorization: &HeaderValue, n: u64) {
    rt.block_on(async {
        for _ in 0..n {
            let response = router.clone().oneshot(request(authorization)).await;
            black_box(response.unwrap());
        }
    });
}

/// Sends `iters` requests through `router`, split across `threads` threads started
/// together, and returns the wall time from the first start to the last finish.
fn wall(router: &Router, authorization: &HeaderValue, threads: usize, iters: u64) -> Duration {
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|i| {
                let share = iters / threads as u64 + u64::from(i < iters % threads as u64);
                let router = router.clone();
                let barrier = &barrier;
                scope.spawn(move || {
                    let rt = Builder::new_current_thread().build().unwrap();
                    send(&rt, &router, authorization, WARM_UP);
                    barrier.wait();
                    let start = Instant::now();
                    send(&rt, &router, authorization, share);
                    (start, Instant::now())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let start = spans.iter().map(|(start, _)| *start).min().unwrap();
    let end = spans.iter().map(|(_, end)| *end).max().unwrap();
    end - start
}

/// Prints the scaling figures from the last [`SAMPLES`] samples and writes them to
/// `<criterion dir>/<id>/scaling.json`.
fn report(id: &str, threads: usize, samples: &[Sample]) {
    let last = &samples[samples.len().saturating_sub(SAMPLES)..];
    let ns = |time: Duration, iters: u64| time.as_secs_f64() * 1e9 / iters as f64;
    let scaling = |times: &[Duration; 2]| times[0].as_secs_f64() / times[1].as_secs_f64();
    if last.is_empty() {
        return; // the bench was filtered out of this run
    }
    let median = |figure: &dyn Fn(&Sample) -> f64| median(last.iter().map(figure)).unwrap();
    let bare = median(&|s| scaling(&s.bare));
    let ours = median(&|s| scaling(&s.ours));
    let ratio = median(&|s| scaling(&s.ours) / scaling(&s.bare));
    let (bare_1, bare_t) = (
        median(&|s| ns(s.bare[0], s.iters)),
        median(&|s| ns(s.bare[1], s.iters)),
    );
    let (ours_1, ours_t) = (
        median(&|s| ns(s.ours[0], s.iters)),
        median(&|s| ns(s.ours[1], s.iters)),
    );
    let n = last.len();
    println!(
        "{id}: requests per second with {threads} threads ÷ with 1 (medians of {n} samples): \
         bare {bare:.3} ({bare_1:.1} → {bare_t:.1} ns wall per request), \
         bearer-auth {ours:.3} ({ours_1:.1} → {ours_t:.1} ns), bearer-auth ÷ bare {ratio:.3}"
    );
    let dir = criterion_dir().join(id);
    if std::fs::create_dir_all(&dir).is_ok() {
        let json = format!(
            "{{\"threads\":{threads},\"bare_scaling\":{bare},\"bearer_auth_scaling\":{ours},\
             \"bearer_auth_over_bare\":{ratio},\"bare_ns_1\":{bare_1},\"bare_ns_threads\":{bare_t},\
             \"bearer_auth_ns_1\":{ours_1},\"bearer_auth_ns_threads\":{ours_t},\"samples\":{n}}}\n"
        );
        let _ = std::fs::write(dir.join("scaling.json"), json);
    }
}

fn scaling(c: &mut Criterion) {
    let setups = setups();
    let (bare, ours) = (setups.router("bare"), setups.router("bearer-auth"));
    let valid = &setups.valid;
    let threads = thread::available_parallelism().map_or(1, usize::from);

    // Both answer the valid request with 200; bearer-auth refuses the wrong one.
    let rt = Builder::new_current_thread().build().unwrap();
    let status = |router: &Router, authorization| {
        let response = rt.block_on(router.clone().oneshot(request(authorization)));
        response.unwrap().status()
    };
    assert_eq!(status(bare, valid), StatusCode::OK);
    assert_eq!(status(ours, valid), StatusCode::OK);
    assert_eq!(status(bare, &setups.wrong), StatusCode::OK);
    assert_eq!(status(ours, &setups.wrong), StatusCode::UNAUTHORIZED);

    let samples: RefCell<Vec<Sample>> = RefCell::default();
    let calls = Cell::new(0_u64);
    let mut group = c.benchmark_group("scaling");
    group
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("bearer-auth", |b| {
        b.iter_custom(|iters| {
            let mut sample = Sample {
                bare: [Duration::ZERO; 2],
                ours: [Duration::ZERO; 2],
                iters,
            };
            // (setup, thread-count index) in turn, reversed every other call.
            let mut order = [(false, 0), (true, 0), (false, 1), (true, 1)];
            if calls.get() % 2 == 1 {
                order.reverse();
            }
            calls.set(calls.get() + 1);
            for (is_ours, t) in order {
                let count = if t == 0 { 1 } else { threads };
                if is_ours {
                    sample.ours[t] = wall(ours, valid, count, iters);
                } else {
                    sample.bare[t] = wall(bare, valid, count, iters);
                }
            }
            let reported = sample.ours[1];
            samples.borrow_mut().push(sample);
            reported
        })
    });
    group.finish();
    report("scaling/bearer-auth", threads, &samples.borrow());
}

criterion_group!(benches, scaling);
criterion_main!(benches);

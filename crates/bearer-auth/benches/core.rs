//! The core's hot path, piece by piece: `cargo bench -p bearer-auth --bench core`.
//!
//! - `parse/header`: reading `Authorization: Bearer <sanctum token>` as the adapters do,
//!   borrowed from the header (`BearerTokenRef`); `parse/header-owned` with the owned
//!   copy (`BearerToken`) an awaited verifier gets, zeroed when dropped;
//! - `sha256/secret`: the digest of a 48-character secret alone, the floor of any
//!   verification that stores only digests;
//! - `verify/memory/N`: `MemoryStore` verification of a valid token with N keys stored,
//!   cycling through 1,024 tokens drawn from the store (all of them when N is smaller),
//!   so that larger stores are not flattered by one hot cache line. Each call criterion
//!   makes also verifies as many tokens against the one-key store, alternating in
//!   blocks of 64, and the bench prints and writes to
//!   `<criterion dir>/verify_memory/N/paired.json` the median over the samples of
//!   (time at N keys / time at 1 key measured beside it) − 1: the machine's speed drifts
//!   between benches, and this ratio cancels it. `verify/memory/1` paired with itself
//!   shows the noise.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a bench harness, not library code

use std::{
    future::Future,
    hint::black_box,
    path::{Path, PathBuf},
    pin::pin,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use bearer_auth::{BearerToken, BearerTokenRef, MemoryStore, NewToken, TokenHash, TokenVerifier};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// The store's verifier never waits, so one poll finishes it.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("MemoryStore verification never waits"),
    }
}

const SAMPLE: &str = "1|aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789ABCDc6c73a82";

fn parse(c: &mut Criterion) {
    let header = format!("Bearer {SAMPLE}");
    c.bench_function("parse/header", |b| {
        b.iter(|| BearerTokenRef::parse(black_box(header.as_bytes())).unwrap())
    });
    c.bench_function("parse/header-owned", |b| {
        b.iter(|| BearerToken::parse(black_box(header.as_bytes())).unwrap())
    });
}

fn sha256(c: &mut Criterion) {
    let secret = &SAMPLE[2..];
    c.bench_function("sha256/secret", |b| {
        b.iter(|| TokenHash::of(black_box(secret)))
    });
}

/// A store with `n` keys and up to 1,024 of their tokens, spread evenly over the ids.
fn store_with(n: usize) -> (MemoryStore<u64>, Vec<BearerToken>) {
    let store = MemoryStore::new();
    let every = (n / 1024).max(1);
    let mut tokens = Vec::with_capacity(1024);
    for i in 0..n {
        let issued = store.create(NewToken::new(i as u64, "bench")).unwrap();
        if i % every == 0 && tokens.len() < 1024 {
            tokens.push(BearerToken::from_token(issued.plain_text_token().as_str()).unwrap());
        }
    }
    (store, tokens)
}

/// Samples criterion takes of each bench (its default, set explicitly: the paired ratio
/// is the median over exactly these).
const SAMPLES: usize = 100;

/// Tokens verified against one store before switching to the other.
const BLOCK: u64 = 64;

/// Verifies `n` tokens from `next` against `store`; the time it took.
fn verify_n<'a>(
    store: &MemoryStore<u64>,
    next: &mut impl Iterator<Item = &'a BearerToken>,
    n: u64,
) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let token = next.next().unwrap();
        black_box(block_on(store.verify(black_box(token))).unwrap());
    }
    start.elapsed()
}

fn verify(c: &mut Criterion) {
    let (one, one_token) = store_with(1);
    let mut group = c.benchmark_group("verify/memory");
    group.sample_size(SAMPLES);
    for n in [1_usize, 1_000, 1_000_000] {
        let (store, tokens) = store_with(n);
        let mut ratios = Vec::new();
        group.bench_with_input(BenchmarkId::from_parameter(n), &tokens, |b, tokens| {
            let mut next = tokens.iter().cycle();
            let mut next_one = one_token.iter().cycle();
            b.iter_custom(|iters| {
                let (mut with, mut without) = (Duration::ZERO, Duration::ZERO);
                let mut done = 0;
                while done < iters {
                    let block = BLOCK.min(iters - done);
                    without += verify_n(&one, &mut next_one, block);
                    with += verify_n(&store, &mut next, block);
                    done += block;
                }
                ratios.push(with.as_secs_f64() / without.as_secs_f64() - 1.0);
                with
            })
        });
        report_paired(n, &ratios);
    }
    group.finish();
}

/// Prints the median of the last [`SAMPLES`] ratios and leaves it beside criterion's own
/// estimates, as `<criterion dir>/verify_memory/<n>/paired.json`.
fn report_paired(n: usize, ratios: &[f64]) {
    let mut last = ratios[ratios.len().saturating_sub(SAMPLES)..].to_vec();
    if last.is_empty() {
        return; // filtered out of this run
    }
    last.sort_by(f64::total_cmp);
    let mid = last.len() / 2;
    let relative = if last.len().is_multiple_of(2) {
        (last[mid - 1] + last[mid]) / 2.0
    } else {
        last[mid]
    };
    println!(
        "verify/memory/{n}: paired against 1 key (median of {SAMPLES} samples): {:.3}x",
        1.0 + relative
    );
    let root = std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR").map(|t| PathBuf::from(t).join("criterion"))
        })
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion"));
    let dir = root.join("verify_memory").join(n.to_string());
    if std::fs::create_dir_all(&dir).is_ok() {
        let json = format!("{{\"paired_relative_to_one_key\":{relative},\"samples\":{SAMPLES}}}\n");
        let _ = std::fs::write(dir.join("paired.json"), json);
    }
}

criterion_group!(benches, parse, sha256, verify);
criterion_main!(benches);

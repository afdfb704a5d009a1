//! The core's hot path, piece by piece: `cargo bench -p bearer-auth --bench core`.
//!
//! - `parse/header`: reading `Authorization: Bearer <sanctum token>`;
//! - `sha256/secret`: the digest of a 48-character secret alone, the floor of any
//!   verification that stores only digests;
//! - `verify/memory/N`: `MemoryStore` verification of a valid token with N keys stored,
//!   cycling through 1,024 tokens drawn from the store (all of them when N is smaller),
//!   so that larger stores are not flattered by one hot cache line.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a bench harness, not library code

use std::{
    future::Future,
    hint::black_box,
    pin::pin,
    task::{Context, Poll, Waker},
};

use bearer_auth::{BearerToken, MemoryStore, NewToken, TokenHash, TokenVerifier};
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

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify/memory");
    for n in [1_usize, 1_000, 1_000_000] {
        let (store, tokens) = store_with(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &tokens, |b, tokens| {
            let mut next = tokens.iter().cycle();
            b.iter(|| {
                let token = next.next().unwrap();
                block_on(store.verify(black_box(token))).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parse, sha256, verify);
criterion_main!(benches);

//! Memory a `MemoryStore` takes per key, by a counting allocator:
//! `cargo bench -p bearer-auth --bench memory_per_key`.
//!
//! Creates 1,000,000 keys owned by a `u64` with the default abilities and a short name,
//! and prints the heap bytes still held per key once they are all in, in total and
//! beyond the principal (the `AccessToken<u64>` a verification hands out: id, owner,
//! abilities, second-factor flag).

#![allow(clippy::expect_used, clippy::unwrap_used)] // a bench harness, not library code

use std::alloc::System;

use bearer_auth::{AccessToken, MemoryStore, NewToken};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
    const KEYS: usize = 1_000_000;
    let region = Region::new(GLOBAL);
    let store: MemoryStore<u64> = MemoryStore::new();
    for i in 0..KEYS {
        // The plain text token is dropped at once, as after an API response.
        store.create(NewToken::new(i as u64, "key")).unwrap();
    }
    let stats = region.change();
    let held = stats.bytes_allocated as f64 - stats.bytes_deallocated as f64;
    let per_key = held / KEYS as f64;
    let principal = std::mem::size_of::<AccessToken<u64>>() as f64;
    println!("keys stored:                   {KEYS}");
    println!("heap held per key:             {per_key:.1} bytes");
    println!("principal (AccessToken<u64>):  {principal:.0} bytes");
    println!(
        "per key beyond the principal:  {:.1} bytes",
        per_key - principal
    );
    println!(
        "allocations per key:           {:.2}",
        stats.allocations as f64 / KEYS as f64
    );
    drop(store);
}

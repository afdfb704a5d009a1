//! Timing-leak tests with dudect (run by hand, not in CI):
//!
//! ```sh
//! cargo bench -p bearer-auth --bench timing_leaks
//! cargo bench -p bearer-auth --bench timing_leaks -- --filter parse
//! ```
//!
//! Each bench times one operation on two classes of inputs that a leaky implementation
//! would tell apart, about 1,000,000 samples a class, and prints dudect's largest
//! |t| over its percentile crops. |t| above 4.5 is read as a leak. The operations are
//! those the adapters run: `BearerTokenRef::parse` on the header value, and `verify_now`
//! on the borrowed token.
//!
//! - `verify_wrong_secret_first_vs_last_byte`: a known id with a secret that differs from
//!   the stored one in its first character, or in its last (keys drawn from 2,000);
//! - `verify_unknown_id_vs_wrong_secret`: an id that does not exist, or one that does with
//!   a wrong secret (same number of digits, same secret length);
//! - `parse_equal_length_tokens`: two valid tokens of one length, one a single repeated
//!   character, the other random characters of the whole alphabet;
//! - `parse_bad_byte_first_vs_last`: an invalid byte in the first or the last position.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a bench harness, not library code

use bearer_auth::{BearerToken, BearerTokenRef, MemoryStore, NewToken, TokenVerifier};
use dudect_bencher::{
    BenchRng, Class, CtRunner,
    ctbench::{BenchFn, BenchMetadata, BenchName, BenchOpts, run_benches_console},
    rand::RngExt,
};

/// Samples drawn per bench; the coin flip splits them about evenly between the classes.
const SAMPLES: usize = 2_100_000;
const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const TOKEN_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/|";

fn pick(rng: &mut BenchRng, from: &[u8]) -> u8 {
    from[rng.random_range(0..from.len())]
}

/// Replaces the character at `at` by a different alphanumeric one.
fn flip(secret: &mut [u8], at: usize, rng: &mut BenchRng) {
    let old = secret[at];
    while secret[at] == old {
        secret[at] = pick(rng, ALPHANUMERIC);
    }
}

fn store_with_keys(n: usize) -> (MemoryStore<u64>, Vec<String>) {
    let store = MemoryStore::new();
    let tokens = (0..n)
        .map(|i| {
            let issued = store
                .create(NewToken::new(i as u64, "bench"))
                .expect("OS RNG");
            issued.plain_text_token().as_str().to_owned()
        })
        .collect();
    (store, tokens)
}

fn run_verify(runner: &mut CtRunner, store: &MemoryStore<u64>, inputs: Vec<(Class, BearerToken)>) {
    for (class, token) in inputs {
        runner.run_one(class, || {
            // What the adapters call: the token borrowed, answered at once.
            let refused = store
                .verify_now(token.as_borrowed())
                .is_some_and(|outcome| outcome.is_err());
            assert!(refused);
        });
    }
}

fn verify_wrong_secret_first_vs_last_byte(runner: &mut CtRunner, rng: &mut BenchRng) {
    // Each sample alters a key drawn from 2,000: with one key, a class would hold only
    // 61 distinct secrets (one altered character), and the places of their 61 digests in
    // the store's hash map, which depend on the presented secret and not on how close it
    // is to the stored one, would tell the two classes apart by themselves.
    let (store, tokens) = store_with_keys(2000);
    let inputs = (0..SAMPLES)
        .map(|_| {
            let (id, secret) = tokens[rng.random_range(0..tokens.len())]
                .split_once('|')
                .expect("id|secret");
            let mut wrong = secret.as_bytes().to_vec();
            let class = if rng.random::<bool>() {
                Class::Left
            } else {
                Class::Right
            };
            let at = if matches!(class, Class::Left) {
                0
            } else {
                wrong.len() - 1
            };
            flip(&mut wrong, at, rng);
            let token = format!("{id}|{}", String::from_utf8(wrong).expect("ASCII"));
            (class, BearerToken::from_token(&token).expect("valid"))
        })
        .collect();
    run_verify(runner, &store, inputs);
}

fn verify_unknown_id_vs_wrong_secret(runner: &mut CtRunner, rng: &mut BenchRng) {
    // Ids 1..=2000 exist; known ids are drawn from 1000..2000, unknown ones from
    // 5000..6000, so both have four digits.
    let (store, tokens) = store_with_keys(2000);
    let secret_len = tokens[0].split_once('|').expect("id|secret").1.len();
    let inputs = (0..SAMPLES)
        .map(|_| {
            let class = if rng.random::<bool>() {
                Class::Left
            } else {
                Class::Right
            };
            let id = match class {
                Class::Left => rng.random_range(5000..6000),
                Class::Right => rng.random_range(1000..2000),
            };
            let secret: String = (0..secret_len)
                .map(|_| char::from(pick(rng, ALPHANUMERIC)))
                .collect();
            (
                class,
                BearerToken::from_token(&format!("{id}|{secret}")).expect("valid"),
            )
        })
        .collect();
    run_verify(runner, &store, inputs);
}

fn run_parse(runner: &mut CtRunner, inputs: Vec<(Class, Vec<u8>)>, expect_ok: bool) {
    for (class, header) in inputs {
        runner.run_one(class, || {
            // What the adapters call: the token borrowed from the header.
            let parsed = BearerTokenRef::parse(&header);
            assert_eq!(parsed.is_ok(), expect_ok);
        });
    }
}

fn parse_equal_length_tokens(runner: &mut CtRunner, rng: &mut BenchRng) {
    const LEN: usize = 56;
    let inputs = (0..SAMPLES)
        .map(|_| {
            let class = if rng.random::<bool>() {
                Class::Left
            } else {
                Class::Right
            };
            let mut header = b"Bearer ".to_vec();
            match class {
                Class::Left => header.extend(std::iter::repeat_n(b'a', LEN)),
                Class::Right => header.extend((0..LEN).map(|_| pick(rng, TOKEN_CHARS))),
            }
            (class, header)
        })
        .collect();
    run_parse(runner, inputs, true);
}

fn parse_bad_byte_first_vs_last(runner: &mut CtRunner, rng: &mut BenchRng) {
    const LEN: usize = 56;
    const BAD: &[u8] = b",;\"\\@\x01\x7f\x80\xff";
    let inputs = (0..SAMPLES)
        .map(|_| {
            let class = if rng.random::<bool>() {
                Class::Left
            } else {
                Class::Right
            };
            let mut token: Vec<u8> = (0..LEN).map(|_| pick(rng, TOKEN_CHARS)).collect();
            let at = if matches!(class, Class::Left) {
                0
            } else {
                LEN - 1
            };
            token[at] = pick(rng, BAD);
            ([&b"Bearer "[..], &token].concat(), class)
        })
        .map(|(header, class)| (class, header))
        .collect();
    run_parse(runner, inputs, false);
}

/// dudect's own `ctbench_main!` refuses the `--bench` flag that `cargo bench` passes, so
/// the options are read here: `--filter NAME`, `--continuous NAME`, `--out FILE`, and
/// `--seed HEX` to replay a run's inputs.
fn main() -> std::io::Result<()> {
    let benches: [(&'static str, BenchFn); 4] = [
        (
            "verify_wrong_secret_first_vs_last_byte",
            verify_wrong_secret_first_vs_last_byte,
        ),
        (
            "verify_unknown_id_vs_wrong_secret",
            verify_unknown_id_vs_wrong_secret,
        ),
        ("parse_equal_length_tokens", parse_equal_length_tokens),
        ("parse_bad_byte_first_vs_last", parse_bad_byte_first_vs_last),
    ];
    let mut opts = BenchOpts::default();
    let mut seed = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--filter" => opts.filter = args.next(),
            "--continuous" => {
                opts.continuous = true;
                opts.filter = args.next();
            }
            "--out" => opts.file_out = args.next().map(std::path::PathBuf::from),
            "--seed" => {
                seed = args
                    .next()
                    .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok());
            }
            _ => {} // `--bench` and anything else cargo passes
        }
    }
    let benches = benches
        .into_iter()
        .map(|(name, benchfn)| BenchMetadata {
            name: BenchName(name),
            seed,
            benchfn,
        })
        .collect();
    run_benches_console(opts, benches)
}

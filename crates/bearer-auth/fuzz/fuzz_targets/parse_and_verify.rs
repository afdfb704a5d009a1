//! Arbitrary bytes through the whole request path of the core: Bearer parsing, the
//! Sanctum split and verification against a `MemoryStore`. Nothing may panic, and what
//! is accepted must follow the grammar.
//!
//! The first input byte picks how the rest is used, so that the fuzzer reaches the
//! verification paths and not only the parser's refusals:
//! - 0: the rest is a whole `Authorization` header value;
//! - 1: `Bearer ` followed by the rest;
//! - 2: `Bearer ` followed by a valid key's id, `|`, and the rest as the secret;
//! - 3: `Bearer ` followed by a valid key's whole token with the rest appended.

#![no_main]

use std::{
    future::Future,
    pin::pin,
    sync::OnceLock,
    task::{Context, Poll, Waker},
};

use bearer_auth::{
    Authenticator, BearerToken, BearerTokenRef, MemoryStore, NewToken, Policy, Rejection,
    TokenParts,
};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    auth: Authenticator<MemoryStore<u64>>,
    id: u64,
    token: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let store = MemoryStore::new();
        let issued = store
            .create(NewToken::new(1, "fuzz").abilities(["read"]))
            .expect("the OS RNG works");
        store
            .create(NewToken::new(2, "pending").second_factor_pending(true))
            .expect("the OS RNG works");
        let token = issued.plain_text_token().as_str().to_owned();
        Fixture {
            auth: Authenticator::new(store).with_policy(Policy::new().require_any(["read", "write"])),
            id: issued.id(),
            token,
        }
    })
}

/// The store's verifier never waits, so one poll finishes it.
fn run<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("MemoryStore verification returned Pending"),
    }
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/|=".contains(&b)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let header: Vec<u8> = match mode % 4 {
        0 => rest.to_vec(),
        1 => [b"Bearer ", rest].concat(),
        2 => [format!("Bearer {}|", f.id).as_bytes(), rest].concat(),
        _ => [format!("Bearer {}", f.token).as_bytes(), rest].concat(),
    };

    // Parsing: accepted tokens follow the grammar.
    if let Ok(token) = BearerToken::parse(&header) {
        let bytes = token.as_str().as_bytes();
        assert!(!bytes.is_empty());
        assert!(bytes.iter().all(|&b| is_token_char(b)));
        assert_ne!(bytes[0], b'=');
        // Padding only as a suffix.
        if let Some(at) = bytes.iter().position(|&b| b == b'=') {
            assert!(bytes[at..].iter().all(|&b| b == b'='));
        }
        if let Ok(parts) = TokenParts::split(token.as_str()) {
            assert!(!parts.secret().is_empty());
        }
    }

    // The borrowed reading gives the same answer, on the header's own bytes.
    match (BearerToken::parse(&header), BearerTokenRef::parse(&header)) {
        (Ok(owned), Ok(borrowed)) => {
            assert_eq!(owned.as_str(), borrowed.as_str());
            let start = borrowed.as_str().as_ptr() as usize - header.as_ptr() as usize;
            assert!(start + borrowed.len() <= header.len());
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("owned {:?} and borrowed {:?} disagree", a.is_ok(), b.is_ok()),
    }

    // The whole pipeline: one of the documented outcomes, never a panic.
    match run(f.auth.authenticate([&header[..]])) {
        Ok(Some(principal)) => {
            // Only the real key passes: its whole token, or its secret alone.
            assert_eq!(principal.id(), f.id);
            let presented = BearerToken::parse(&header).expect("accepted, so it parses");
            let secret = f.token.split_once('|').map_or("", |(_, s)| s);
            assert!(presented.as_str() == f.token || presented.as_str() == secret);
        }
        Ok(None) => unreachable!("the policy is not optional"),
        Err(
            Rejection::MissingCredentials
            | Rejection::InvalidToken(_)
            | Rejection::SecondFactorRequired
            | Rejection::MissingAbility,
        ) => {}
        Err(other) => panic!("unexpected rejection: {other}"),
    }
});

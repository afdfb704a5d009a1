//! Shared fixtures for the cross-adapter conformance suite of bearer-auth.

use bearer_auth::{MemoryStore, NewToken};

/// The documented response of every request in the suite: status and exact body.
pub fn expected_body(status: u16) -> Option<&'static [u8]> {
    match status {
        401 => Some(bearer_auth::UNAUTHENTICATED_BODY),
        503 => Some(bearer_auth::UNAVAILABLE_BODY),
        _ => None,
    }
}

/// A store with one ordinary key, returned with its plain text token.
pub fn store_with_key() -> Result<(MemoryStore<String>, String), bearer_auth::KeyError> {
    let store = MemoryStore::new();
    let issued = store.create(NewToken::new("alice".to_owned(), "conformance"))?;
    let token = issued.plain_text_token().as_str().to_owned();
    Ok((store, token))
}

/// The code blocks of the workspace README, compiled and run as doctests so that what a
/// newcomer reads first is known to build.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

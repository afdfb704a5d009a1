//! Bearer-token (API key) authentication for Rust web services: the framework-agnostic
//! core.
//!
//! This crate decides about a request; the adapters `bearer-auth-tower` (axum, hyper, any
//! Tower stack) and `bearer-auth-actix` (actix-web) only carry its decision. It holds:
//!
//! - [`BearerToken`] and [`BearerTokenRef`]: `Authorization: Bearer <token>` read to RFC
//!   6750's grammar (plus `|` for Laravel Sanctum tokens), with a check whose work depends
//!   only on the token's length; owned (zeroed when dropped) or borrowed from the header
//!   (no copy of the secret);
//! - [`TokenVerifier`]: the one extension point, implemented by your backend or made from
//!   a closure with [`verifier_fn`];
//! - [`Rejection`]: the documented answers (401 `{"message":"Unauthenticated."}`, the 403
//!   two-factor and ability bodies, 503 when the backend failed), rendered byte for byte
//!   with [`Rejection::to_response`];
//! - [`Policy`] and [`Authenticator`]: what a route asks beyond a valid token (optional
//!   authentication, abilities, a pending second factor), shared by the adapters;
//! - [`KeyGenerator`], [`TokenHash`], [`TokenParts`]: Sanctum-format keys
//!   (`{id}|{prefix}{40 random}{crc32b}`), stored only as SHA-256;
//! - [`TokenStore`]: what an account API does with keys (create, list, get, regenerate,
//!   revoke, revoke all, pass the second factor, prune), every operation scoped by owner,
//!   with the types every store speaks in ([`NewToken`], [`IssuedToken`], [`TokenInfo`],
//!   [`AccessToken`], [`StoreError`]);
//! - [`MemoryStore`]: keys in memory, a [`TokenStore`] and its verifier. Keys that
//!   survive a restart and are shared by several instances: `bearer-auth-sqlx`.
//!
//! # Example
//!
//! Issue a key, then verify the header a client sends with it:
//!
//! ```
//! use bearer_auth::{Authenticator, MemoryStore, NewToken, Rejection};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = MemoryStore::new();
//! let issued = store.create(NewToken::new("alice".to_owned(), "laptop")).unwrap();
//! // `plain_text_token` is shown once; the store keeps only its SHA-256.
//! let header = format!("Bearer {}", issued.plain_text_token().as_str());
//!
//! let auth = Authenticator::new(store.clone());
//! let principal = auth.authenticate([header.as_bytes()]).await.unwrap().unwrap();
//! assert_eq!(principal.owner(), "alice");
//!
//! // Revoked by its owner: refused at once, with the documented 401.
//! assert!(store.revoke(&"alice".to_owned(), issued.id()));
//! let rejection = auth.authenticate([header.as_bytes()]).await.unwrap_err();
//! assert!(matches!(rejection, Rejection::InvalidToken(_)));
//! let response: http::Response<bytes::Bytes> = auth.respond(&rejection);
//! assert_eq!(response.status(), 401);
//! assert_eq!(response.headers()["www-authenticate"], r#"Bearer error="invalid_token""#);
//! assert_eq!(response.body().as_ref(), br#"{"message":"Unauthenticated."}"#);
//! # }
//! ```
//!
//! # Security
//!
//! - **Secrets are not shown.** [`BearerToken`], [`BearerTokenRef`] and [`PlainTextToken`]
//!   print as `******` in `Debug` and have no `Display` and no `PartialEq`; the owned ones
//!   are zeroed when dropped. **Few copies**: a token answered at once
//!   ([`TokenVerifier::verify_now`]) is read where the request holds it, and only a
//!   verifier that must be awaited gets a copy (a [`BearerToken`]). [`TokenHash`] does not
//!   print its digest. Refusals are logged with their
//!   reason only (target `bearer_auth`), never with the token or its digest.
//! - **Only digests are stored**: SHA-256 of the secret, as Sanctum does.
//! - **Constant time, best effort.** Digests are compared with [`subtle`]'s
//!   `ConstantTimeEq`; the token's characters are checked without a branch or an early
//!   exit on their values. [`MemoryStore`] finds a key by the digest of the presented
//!   secret and only then checks the id, so an unknown id and a known id with a wrong
//!   secret take the very same path: a lookup that misses. As with `subtle`, this is
//!   best effort: the compiler and the processor are not bound by it, and the timing
//!   tests of this project (`benches/timing_leaks.rs`, dudect) measure rather than
//!   prove it.
//! - **Bounded work per request.** A token longer than [`DEFAULT_MAX_TOKEN_LEN`] (1 KiB,
//!   configurable with [`Authenticator::with_max_token_len`]) is refused with the 401 of
//!   an invalid token before it is copied, hashed or shown to the verifier, and no more of
//!   its header is read than the bound and a few bytes of framing.
//! - **Bounded logs.** Refusals are `debug` events, each logged. The `error` events (a
//!   verifier's backend failing, an extractor on a route no adapter covers) are logged
//!   the first time and then at most once per [`DEFAULT_ERROR_LOG_INTERVAL`], with the
//!   number not logged in between (`suppressed`), so that an outage cannot fill a disk.
//!   Each kind of error (each backend error text, each principal type of an uncovered
//!   route) has its own interval, so that an error a client can cause at will cannot
//!   hide another; the kinds followed are bounded ([`ErrorLogThrottle`]).
//! - **What is not constant time**, on purpose: the token's length; the scheme and the
//!   whitespace around it; whether the token was accepted; the key id (the digits before
//!   `|`), which is parsed with ordinary code. The id is not secret: it is a row number
//!   that Sanctum also shows, and it grants nothing without the secret, a 40-character
//!   random string (about 238 bits). The hash map lookup depends on the digest of the
//!   presented secret, through a randomly keyed hash, which tells an attacker nothing
//!   about any stored secret.

#![forbid(unsafe_code)]

mod authenticator;
mod clock;
mod extension;
mod key;
mod memory;
mod parse;
mod principal;
mod rejection;
mod store;
mod throttle;
mod verifier;

pub use authenticator::{Authenticator, Policy};
pub use extension::{MISSING_LAYER_BODY, Unauthenticated, missing_layer_response};
pub use key::{
    CHECKSUM_LEN, ENTROPY_LEN, KeyError, KeyGenerator, PlainTextToken, TokenHash, TokenParts,
    TokenSecret,
};
pub use memory::{MemoryStore, MemoryStoreBuilder};
pub use parse::{BearerToken, BearerTokenRef, DEFAULT_MAX_TOKEN_LEN, ParseError};
pub use principal::{Abilities, Principal};
pub use rejection::{
    BoxError, Challenge, InvalidRealm, InvalidReason, MISSING_ABILITY_BODY, Rejection,
    SECOND_FACTOR_BODY, UNAUTHENTICATED_BODY, UNAVAILABLE_BODY,
};
pub use store::{
    AccessToken, IssuedToken, NewToken, NewTokenParts, StoreError, TokenInfo, TokenStore,
};
pub use throttle::{DEFAULT_ERROR_LOG_INTERVAL, ErrorLogThrottle};
pub use verifier::{TokenVerifier, VerifierFn, verifier_fn};

/// Re-exported so that verifiers can be written without naming the dependency.
pub use async_trait::async_trait;

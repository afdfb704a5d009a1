//! bearer-auth-tower end to end: through an axum `Router` with `oneshot`, through a real
//! server with a real HTTP client, and through `tower::ServiceBuilder` with a hyper-style
//! body.

// The helpers outside `#[test]` functions are test code too: a failed setup fails the test.
#![allow(clippy::unwrap_used)]

mod fixture;
mod logs;
mod outer_middleware;
mod router;
mod sensitive_header;
mod server;
mod table;
mod token_length;
mod tower_stack;

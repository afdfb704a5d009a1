//! The axum setups the Tower benches compare, shared by
//! `crates/bearer-auth-tower/benches/router.rs`, `allocations.rs` and `scaling.rs`
//! (included with `#[path]`). `router.rs` documents each setup.

use std::{
    future::{Ready, ready},
    sync::Arc,
};

use axum::{Router, body::Body, routing::get};
use bearer_auth::{Abilities, MemoryStore, NewToken, TokenHash};
use bearer_auth_tower::BearerAuthLayer;
use dashmap::DashMap;
use http::{HeaderValue, Request, Response, StatusCode, header::AUTHORIZATION};
use tower_http::{
    auth::{AsyncAuthorizeRequest, AsyncRequireAuthorizationLayer},
    validate_request::ValidateRequestHeaderLayer,
};

pub(crate) const PATH: &str = "/v1/auth/user";

/// The peer's principal: what `AccessToken<String>` holds.
#[derive(Clone, Debug)]
#[allow(dead_code)] // carried to the handler like ours, never read by it
struct User {
    id: u64,
    owner: String,
    abilities: Abilities,
}

/// The secret of a Sanctum-format token: the part after the first `|`, or the whole token.
pub(crate) fn secret(token: &str) -> &str {
    token.split_once('|').map_or(token, |(_, secret)| secret)
}

/// 401 with an empty body.
fn unauthorized() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response
}

/// tower-http's asynchronous authorization doing a hashed lookup, as a user would write
/// it for an in-memory map.
#[derive(Clone)]
struct HashedLookup {
    keys: Arc<DashMap<[u8; 32], User>>,
}

impl HashedLookup {
    fn find(&self, request: &Request<Body>) -> Option<User> {
        let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
        let token = value.strip_prefix("Bearer ")?;
        let digest = TokenHash::of(secret(token));
        self.keys.get(digest.as_bytes()).map(|user| user.clone())
    }
}

impl AsyncAuthorizeRequest<Body> for HashedLookup {
    type RequestBody = Body;
    type ResponseBody = Body;
    type Future = Ready<Result<Request<Body>, Response<Body>>>;

    fn authorize(&mut self, mut request: Request<Body>) -> Self::Future {
        ready(match self.find(&request) {
            Some(user) => {
                request.extensions_mut().insert(user);
                Ok(request)
            }
            None => Err(unauthorized()),
        })
    }
}

/// The floor: tower-http's synchronous `ValidateRequestHeaderLayer` with one SHA-256 of
/// the secret compared with `==` to the one valid key's digest. Nothing goes into the
/// extensions.
#[allow(clippy::result_large_err)] // tower-http's validator returns the response as `Err`
fn floor(
    digest: [u8; 32],
) -> ValidateRequestHeaderLayer<
    impl FnMut(&mut Request<Body>) -> Result<(), Response<Body>> + Clone + Send + Sync + 'static,
> {
    ValidateRequestHeaderLayer::custom(move |request: &mut Request<Body>| {
        let accepted = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|token| TokenHash::of(secret(token)).as_bytes() == &digest);
        if accepted {
            Ok(())
        } else {
            Err(unauthorized())
        }
    })
}

pub(crate) fn bare() -> Router {
    Router::new().route(PATH, get(|| async { "ok" }))
}

pub(crate) struct Setups {
    /// The valid token's header value.
    pub(crate) valid: HeaderValue,
    /// A token of the same shape that no key has.
    pub(crate) wrong: HeaderValue,
    /// Each setup's name and its router, finalized with `with_state(())`; `bare` first.
    pub(crate) routers: Vec<(&'static str, Router)>,
}

impl Setups {
    /// The router of the setup `name`.
    ///
    /// # Panics
    ///
    /// When there is no such setup.
    #[allow(dead_code)] // the scaling and profile benches look setups up; the others walk them all
    pub(crate) fn router(&self, name: &str) -> &Router {
        self.routers
            .iter()
            .find(|(setup, _)| *setup == name)
            .map(|(_, router)| router)
            .unwrap_or_else(|| panic!("no setup named {name}"))
    }
}

pub(crate) fn setups() -> Setups {
    let store = MemoryStore::<String>::new();
    let issued = store
        .create(NewToken::new("demo".to_owned(), "bench"))
        .unwrap();
    let plain = issued.plain_text_token().as_str();
    let valid = HeaderValue::try_from(format!("Bearer {plain}")).unwrap();
    let wrong = {
        let (id, secret) = plain.split_once('|').unwrap();
        let flipped = if secret.starts_with('A') { "B" } else { "A" };
        HeaderValue::try_from(format!("Bearer {id}|{flipped}{}", &secret[1..])).unwrap()
    };
    let digest = *issued.plain_text_token().hash().as_bytes();

    let keys = DashMap::new();
    keys.insert(
        digest,
        User {
            id: issued.id(),
            owner: "demo".to_owned(),
            abilities: Abilities::all(),
        },
    );
    let hashed = HashedLookup {
        keys: Arc::new(keys),
    };

    #[allow(deprecated)] // tower-http keeps it, deprecated as "too basic"
    let routers: Vec<(&'static str, Router)> = vec![
        ("bare", bare()),
        (
            "bearer-auth",
            bare().route_layer(BearerAuthLayer::new(store.clone())),
        ),
        (
            "bearer-auth-layer",
            bare().layer(BearerAuthLayer::new(store)),
        ),
        (
            "tower-http-static",
            bare().route_layer(ValidateRequestHeaderLayer::bearer(plain)),
        ),
        (
            "tower-http-static-layer",
            bare().layer(ValidateRequestHeaderLayer::bearer(plain)),
        ),
        ("floor", bare().route_layer(floor(digest))),
        ("floor-layer", bare().layer(floor(digest))),
        (
            "tower-http-hashed",
            bare().route_layer(AsyncRequireAuthorizationLayer::new(hashed)),
        ),
    ];
    let routers = routers
        .into_iter()
        .map(|(name, router)| (name, router.with_state(())))
        .collect();
    Setups {
        valid,
        wrong,
        routers,
    }
}

/// The request every setup gets, built anew each time (in the timed loop).
pub(crate) fn request(authorization: &HeaderValue) -> Request<Body> {
    Request::get(PATH)
        .header(AUTHORIZATION, authorization.clone())
        .body(Body::empty())
        .unwrap()
}

//! Keys for every row of the response table, the application that serves them, and two
//! ways to send it a request: `oneshot` through the `Router`, and a real HTTP client
//! against a real server on loopback.

use std::{
    net::SocketAddr,
    time::{Duration, UNIX_EPOCH},
};

use axum::{
    Router,
    body::Body,
    routing::{get, post},
};
use bearer_auth::{
    AccessToken, BearerToken, MemoryStore, NewToken, Rejection, TokenVerifier, verifier_fn,
};
use bearer_auth_tower::{Authenticated, BearerAuthLayer};
use http::{HeaderMap, Method, Request, header::AUTHORIZATION};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// The token the test verifier answers 503 for, as if its backend were down.
pub(crate) const BACKEND_DOWN: &str = "backend-down";

/// A store holding one key of each kind, and their plain text tokens.
pub(crate) struct Keys {
    pub(crate) store: MemoryStore<String>,
    /// `alice`, every ability.
    pub(crate) ordinary: String,
    pub(crate) ordinary_id: u64,
    /// `bob`, only `servers:read`.
    pub(crate) limited: String,
    pub(crate) limited_id: u64,
    /// `carol`, expired in 1970.
    pub(crate) expired: String,
    /// `dave`, every ability, second factor pending.
    pub(crate) pending: String,
    pub(crate) pending_id: u64,
    /// `erin`, revoked after it was issued.
    pub(crate) revoked: String,
}

impl Keys {
    pub(crate) fn new() -> Self {
        let store = MemoryStore::new();
        let issue = |new: NewToken<String>| {
            let issued = store.create(new).unwrap();
            (issued.id(), issued.plain_text_token().as_str().to_owned())
        };
        let (ordinary_id, ordinary) = issue(NewToken::new("alice".to_owned(), "laptop"));
        let (limited_id, limited) =
            issue(NewToken::new("bob".to_owned(), "dashboard").abilities(["servers:read"]));
        let (_, expired) = issue(
            NewToken::new("carol".to_owned(), "old")
                .expires_at(UNIX_EPOCH + Duration::from_secs(1)),
        );
        let (pending_id, pending) =
            issue(NewToken::new("dave".to_owned(), "phone").second_factor_pending(true));
        let (revoked_id, revoked) = issue(NewToken::new("erin".to_owned(), "lost"));
        assert!(store.revoke(&"erin".to_owned(), revoked_id));
        Self {
            store,
            ordinary,
            ordinary_id,
            limited,
            limited_id,
            expired,
            pending,
            pending_id,
            revoked,
        }
    }

    /// The store's verifier, except that [`BACKEND_DOWN`] fails as a backend would.
    pub(crate) fn verifier(
        &self,
    ) -> impl TokenVerifier<Principal = AccessToken<String>> + Clone + 'static {
        let store = self.store.clone();
        verifier_fn(move |token: BearerToken| {
            let store = store.clone();
            async move {
                if token.as_str() == BACKEND_DOWN {
                    return Err(Rejection::unavailable(std::io::Error::other("store down")));
                }
                store.verify(&token).await
            }
        })
    }
}

/// The principal as the handlers answer it.
pub(crate) fn user_body(id: u64, owner: &str, abilities: &str) -> Vec<u8> {
    format!(r#"{{"abilities":{abilities},"owner":"{owner}","token_id":{id}}}"#).into_bytes()
}

async fn user(Authenticated(token): Authenticated<AccessToken<String>>) -> String {
    serde_json::json!({
        "token_id": token.id(),
        "owner": token.owner(),
        "abilities": token.abilities().iter().collect::<Vec<_>>(),
    })
    .to_string()
}

async fn greet(token: Option<Authenticated<AccessToken<String>>>) -> String {
    match token {
        Some(token) => format!("hello {}", token.owner()),
        None => "hello stranger".to_owned(),
    }
}

/// The application under test, one layer per route with `Router::route_layer`:
///
/// | route | layer |
/// |---|---|
/// | `GET /v1/auth/user` | default |
/// | `GET /v1/servers` | `require_all(["servers:read", "servers:write"])` |
/// | `GET /v1/servers/list` | `require_any(["servers:read", "servers:list"])` |
/// | `POST /v1/auth/two-factor-challenge` | `accept_pending_second_factor()` |
/// | `GET /v1/greet` | `optional()`, handler takes `Option<Authenticated<_>>` |
/// | `GET /v1/optional-strict` | `optional()`, handler takes `Authenticated<_>` |
/// | `GET /v1/uncovered` | none, handler takes `Authenticated<_>` |
/// | `GET /v1/uncovered-optional` | none, handler takes `Option<Authenticated<_>>` |
/// | `GET /health` | none |
pub(crate) fn app(keys: &Keys) -> Router {
    let layer = BearerAuthLayer::new(keys.verifier());
    let protected = |router: Router, layer: BearerAuthLayer<_>| router.route_layer(layer);
    Router::new()
        .merge(protected(
            Router::new().route("/v1/auth/user", get(user)),
            layer.clone(),
        ))
        .merge(protected(
            Router::new().route("/v1/servers", get(user)),
            layer.clone().require_all(["servers:read", "servers:write"]),
        ))
        .merge(protected(
            Router::new().route("/v1/servers/list", get(user)),
            layer.clone().require_any(["servers:read", "servers:list"]),
        ))
        .merge(protected(
            Router::new().route("/v1/auth/two-factor-challenge", post(user)),
            layer.clone().accept_pending_second_factor(),
        ))
        .merge(protected(
            Router::new()
                .route("/v1/greet", get(greet))
                .route("/v1/optional-strict", get(user)),
            layer.optional(),
        ))
        .route("/v1/uncovered", get(user))
        .route("/v1/uncovered-optional", get(greet))
        .route("/health", get(|| async { "ok" }))
}

/// What a request got back.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// Sends a request through the router with `oneshot`, one `Authorization` header per
/// entry of `authorization`.
pub(crate) async fn oneshot(
    app: &Router,
    method: Method,
    path: &str,
    authorization: &[&str],
) -> Reply {
    let mut request = Request::builder().method(method).uri(path);
    for value in authorization {
        request = request.header(AUTHORIZATION, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes().to_vec(),
    }
}

/// A real server on `127.0.0.1:0`, served in the background, and a client that does not
/// go through a proxy.
pub(crate) struct Server {
    addr: SocketAddr,
    client: reqwest::Client,
}

impl Server {
    pub(crate) async fn start(app: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        Self { addr, client }
    }

    /// Sends a request over HTTP/1.1, one `Authorization` header per entry.
    pub(crate) async fn send(&self, method: Method, path: &str, authorization: &[&str]) -> Reply {
        let mut request = self
            .client
            .request(method, format!("http://{}{path}", self.addr));
        for value in authorization {
            request = request.header(AUTHORIZATION, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap().to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }
}

//! What the axum and actix-web examples share, so that they answer alike.

use bearer_auth::{AccessToken, IssuedToken, KeyError, MemoryStore, NewToken};

/// Where the examples listen: `$BIND_ADDR`, by default `127.0.0.1:3000`.
pub(crate) fn bind_addr() -> String {
    std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned())
}

/// A store holding one key for the user `demo`, and that key.
pub(crate) fn demo_store() -> Result<(MemoryStore<String>, IssuedToken), KeyError> {
    let store = MemoryStore::new();
    let issued = store.create(NewToken::new("demo".to_owned(), "example"))?;
    Ok((store, issued))
}

/// The body of `GET /v1/auth/user`: the principal as JSON.
pub(crate) fn user_json(principal: &AccessToken<String>) -> String {
    serde_json::json!({
        "token_id": principal.id(),
        "owner": principal.owner(),
        "abilities": principal.abilities().iter().collect::<Vec<_>>(),
    })
    .to_string()
}

/// The body of `GET /health`.
pub(crate) const HEALTH_BODY: &str = r#"{"status":"ok"}"#;

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

/// With `DEMO_PENDING_KEY=1`, adds a key for `demo` whose second factor is pending (its
/// requests get the documented 403) and returns it; otherwise adds nothing.
pub(crate) fn pending_key(store: &MemoryStore<String>) -> Result<Option<IssuedToken>, KeyError> {
    if !std::env::var("DEMO_PENDING_KEY").is_ok_and(|v| v == "1") {
        return Ok(None);
    }
    let new = NewToken::new("demo".to_owned(), "example, second factor pending")
        .second_factor_pending(true);
    store.create(new).map(Some)
}

/// Writes the keys to stdout, the one time they are shown: `API key: <token>`, then
/// `Pending 2FA key: <token>` if there is one.
pub(crate) fn print_keys(key: &IssuedToken, pending: Option<&IssuedToken>) -> std::io::Result<()> {
    use std::io::Write as _;

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "API key: {}", key.plain_text_token().as_str())?;
    if let Some(pending) = pending {
        writeln!(
            stdout,
            "Pending 2FA key: {}",
            pending.plain_text_token().as_str()
        )?;
    }
    stdout.flush()
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

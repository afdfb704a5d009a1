//! The one verifier both servers share: a `MemoryStore` holding a key of each kind, plus a
//! few fixed tokens that show the grammar's accepted forms and one that fails like a
//! store that is down.

use std::time::{Duration, UNIX_EPOCH};

use bearer_auth::{Abilities, BearerToken, MemoryStore, NewToken, Principal, Rejection};
use bearer_auth::{TokenVerifier, verifier_fn};

/// The token the verifier answers 503 for, as if its backend were down.
pub(crate) const BACKEND_DOWN: &str = "backend-down";

/// Tokens the verifier accepts as the user `grammar` (no ability), without the store: they
/// show that the grammar lets these forms through to the verifier.
pub(crate) const GRAMMAR_TOKENS: [&str; 3] = ["abc", "abc==", "12|AbC-._~+/9"];

/// The owner of [`GRAMMAR_TOKENS`].
pub(crate) const GRAMMAR_OWNER: &str = "grammar";

/// What every route's handler gets for an accepted token.
#[derive(Clone, Debug)]
pub(crate) struct User {
    pub(crate) owner: String,
    abilities: Abilities,
    pending: bool,
}

impl Principal for User {
    fn has_ability(&self, ability: &str) -> bool {
        self.abilities.can(ability)
    }

    fn second_factor_pending(&self) -> bool {
        self.pending
    }
}

/// One issued key.
#[derive(Clone, Debug)]
pub(crate) struct Key {
    pub(crate) id: u64,
    pub(crate) token: String,
}

impl Key {
    /// The part after `|`.
    pub(crate) fn secret(&self) -> &str {
        self.token
            .split_once('|')
            .map_or(self.token.as_str(), |(_, secret)| secret)
    }
}

/// The store and its keys, one of each kind the matrix needs.
#[derive(Debug)]
pub(crate) struct Keys {
    pub(crate) store: MemoryStore<String>,
    /// `ordinary`: every ability.
    pub(crate) ordinary: Key,
    /// `reader`: `servers:read` only.
    pub(crate) reader: Key,
    /// `billing`: `billing:read` only, so it lacks `servers:read`.
    pub(crate) billing: Key,
    /// `expired`: expired in 1970.
    pub(crate) expired: Key,
    /// `pending`: every ability, second factor pending.
    pub(crate) pending: Key,
    /// `revoked`: revoked after it was issued.
    pub(crate) revoked: Key,
    /// `rotated`: its token before regeneration (refused).
    pub(crate) rotated_old: Key,
    /// `rotated`: its token after regeneration (accepted).
    pub(crate) rotated_new: Key,
}

impl Keys {
    pub(crate) fn new() -> Self {
        let store = MemoryStore::new();
        let issue = |new: NewToken<String>| {
            let issued = store.create(new).unwrap();
            Key {
                id: issued.id(),
                token: issued.plain_text_token().as_str().to_owned(),
            }
        };
        let ordinary = issue(NewToken::new("ordinary".to_owned(), "matrix"));
        let reader =
            issue(NewToken::new("reader".to_owned(), "matrix").abilities(["servers:read"]));
        let billing =
            issue(NewToken::new("billing".to_owned(), "matrix").abilities(["billing:read"]));
        let expired = issue(
            NewToken::new("expired".to_owned(), "matrix")
                .expires_at(UNIX_EPOCH + Duration::from_secs(1)),
        );
        let pending =
            issue(NewToken::new("pending".to_owned(), "matrix").second_factor_pending(true));
        let revoked = issue(NewToken::new("revoked".to_owned(), "matrix"));
        assert!(store.revoke(&"revoked".to_owned(), revoked.id));
        let rotated_old = issue(NewToken::new("rotated".to_owned(), "matrix"));
        let regenerated = store
            .regenerate(&"rotated".to_owned(), rotated_old.id)
            .unwrap();
        let rotated_new = Key {
            id: regenerated.id(),
            token: regenerated.plain_text_token().as_str().to_owned(),
        };
        Self {
            store,
            ordinary,
            reader,
            billing,
            expired,
            pending,
            revoked,
            rotated_old,
            rotated_new,
        }
    }

    /// The verifier both servers use: [`BACKEND_DOWN`] fails as a backend would, the
    /// [`GRAMMAR_TOKENS`] are accepted, everything else goes to the store.
    pub(crate) fn verifier(&self) -> impl TokenVerifier<Principal = User> + Clone + 'static {
        let store = self.store.clone();
        verifier_fn(move |token: BearerToken| {
            let store = store.clone();
            async move {
                let presented = token.as_str();
                if presented == BACKEND_DOWN {
                    return Err(Rejection::unavailable(std::io::Error::other("store down")));
                }
                if GRAMMAR_TOKENS.contains(&presented) {
                    return Ok(User {
                        owner: GRAMMAR_OWNER.to_owned(),
                        abilities: Abilities::none(),
                        pending: false,
                    });
                }
                let access = store.verify(&token).await?;
                Ok(User {
                    owner: access.owner().clone(),
                    abilities: access.abilities().clone(),
                    pending: access.is_second_factor_pending(),
                })
            }
        })
    }
}

/// The routes both servers serve, and the JSON their handlers answer.
pub(crate) mod routes {
    /// `GET`, the default policy.
    pub(crate) const USER: &str = "/v1/auth/user";
    /// `GET`, `require_all(["servers:read"])`.
    pub(crate) const SERVERS: &str = "/v1/servers";
    /// `POST`, `accept_pending_second_factor()`.
    pub(crate) const TWO_FACTOR: &str = "/v1/two-factor-challenge";
    /// `GET`, `optional()`.
    pub(crate) const OPTIONAL: &str = "/v1/optional";
    /// `GET`, open.
    pub(crate) const HEALTH: &str = "/health";

    /// The body of `/health`.
    pub(crate) const HEALTH_BODY: &str = r#"{"status":"ok"}"#;

    /// What a protected route's handler answers: its name and the principal's owner
    /// (`null` on the optional route without credentials).
    pub(crate) fn body(route: &str, owner: Option<&str>) -> String {
        match owner {
            Some(owner) => format!(r#"{{"route":"{route}","owner":"{owner}"}}"#),
            None => format!(r#"{{"route":"{route}","owner":null}}"#),
        }
    }
}

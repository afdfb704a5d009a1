//! What every key store shares: the [`TokenStore`] trait an account API is written
//! against, and the types it speaks in.
//!
//! A store keeps keys for owners (a user id, a service name) and answers what an account
//! API does with them: create a key, list an owner's keys, get one, regenerate it, revoke
//! it or all of an owner's keys, mark its second factor as passed, and drop keys expired
//! long ago. Every operation on one key names its owner too, and a key of another owner
//! is answered exactly as a key that does not exist ([`StoreError::NotFound`]), so an API
//! built on the trait cannot show or touch another user's key by guessing ids.
//!
//! [`MemoryStore`](crate::MemoryStore) implements it in this crate;
//! `bearer-auth-sqlx` implements it on SQL databases, on Laravel Sanctum's
//! `personal_access_tokens` table. Code written against the trait runs on either.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use http::StatusCode;

use crate::{Abilities, BoxError, KeyError, PlainTextToken, Principal};

/// What to create: owner, name, and optionally abilities, expiry and a pending second
/// factor. Abilities default to `["*"]`, as in Sanctum.
#[derive(Debug, Clone)]
pub struct NewToken<O> {
    pub(crate) owner: O,
    pub(crate) name: Box<str>,
    pub(crate) abilities: Abilities,
    pub(crate) expires_at: Option<SystemTime>,
    pub(crate) second_factor_pending: bool,
}

impl<O> NewToken<O> {
    /// A key for `owner`, named `name` (a label for its owner, such as "CI").
    pub fn new(owner: O, name: impl Into<Box<str>>) -> Self {
        Self {
            owner,
            name: name.into(),
            abilities: Abilities::all(),
            expires_at: None,
            second_factor_pending: false,
        }
    }

    /// The key's abilities (instead of `["*"]`).
    pub fn abilities<I, S>(mut self, abilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        self.abilities = Abilities::new(abilities);
        self
    }

    /// The key expires at `at`.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// The key expires `ttl` from now (or never, if that is beyond what a
    /// [`SystemTime`] holds).
    pub fn expires_in(self, ttl: Duration) -> Self {
        match SystemTime::now().checked_add(ttl) {
            Some(at) => self.expires_at(at),
            None => self,
        }
    }

    /// Whether the key waits for a second factor before it is fully usable.
    pub fn second_factor_pending(mut self, pending: bool) -> Self {
        self.second_factor_pending = pending;
        self
    }

    /// The request taken apart, for a store to keep.
    pub fn into_parts(self) -> NewTokenParts<O> {
        NewTokenParts {
            owner: self.owner,
            name: self.name,
            abilities: self.abilities,
            expires_at: self.expires_at,
            second_factor_pending: self.second_factor_pending,
        }
    }
}

/// A [`NewToken`] taken apart by [`NewToken::into_parts`]: what a store implementation
/// reads to create the key.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct NewTokenParts<O> {
    /// Whom the key belongs to.
    pub owner: O,
    /// Its label.
    pub name: Box<str>,
    /// Its abilities.
    pub abilities: Abilities,
    /// When it expires, if ever.
    pub expires_at: Option<SystemTime>,
    /// Whether its second factor is still pending.
    pub second_factor_pending: bool,
}

/// A key just created or regenerated: its id and its plain text token, shown this once.
///
/// `Debug` does not print the token.
#[derive(Debug)]
pub struct IssuedToken {
    id: u64,
    token: PlainTextToken,
}

impl IssuedToken {
    /// The key `id` with its new token (for store implementations).
    pub fn new(id: u64, token: PlainTextToken) -> Self {
        Self { id, token }
    }

    /// The key's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The token to hand to the client (`plain_text_token` in the API).
    pub fn plain_text_token(&self) -> &PlainTextToken {
        &self.token
    }

    /// The token, consuming the value.
    pub fn into_plain_text_token(self) -> PlainTextToken {
        self.token
    }
}

/// What a store tells about a key: never its secret or its digest.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct TokenInfo<O> {
    /// The key's id.
    pub id: u64,
    /// Whom the key belongs to.
    pub owner: O,
    /// Its label.
    pub name: Box<str>,
    /// Its abilities.
    pub abilities: Abilities,
    /// When it was created (or last regenerated).
    pub created_at: SystemTime,
    /// When it expires, if ever.
    pub expires_at: Option<SystemTime>,
    /// When it was last used, if ever. Stores may record it at a coarse grain (to the
    /// second) and some time after the use (`bearer-auth-sqlx` batches its writes).
    pub last_used_at: Option<SystemTime>,
    /// Whether its second factor is still pending.
    pub second_factor_pending: bool,
}

impl<O> TokenInfo<O> {
    /// A key that never expires, was never used and has no pending second factor; set
    /// the other fields as needed (for store implementations).
    pub fn new(
        id: u64,
        owner: O,
        name: impl Into<Box<str>>,
        abilities: Abilities,
        created_at: SystemTime,
    ) -> Self {
        Self {
            id,
            owner,
            name: name.into(),
            abilities,
            created_at,
            expires_at: None,
            last_used_at: None,
            second_factor_pending: false,
        }
    }
}

/// The principal of a key from a store: its id, owner, abilities and second-factor
/// state. Both [`MemoryStore`](crate::MemoryStore) and `bearer-auth-sqlx` hand it out, so
/// handlers do not change with the store.
#[derive(Debug, Clone)]
pub struct AccessToken<O> {
    id: u64,
    owner: O,
    abilities: Abilities,
    second_factor_pending: bool,
}

impl<O> AccessToken<O> {
    /// The principal of the key `id` (for store implementations).
    pub fn new(id: u64, owner: O, abilities: Abilities, second_factor_pending: bool) -> Self {
        Self {
            id,
            owner,
            abilities,
            second_factor_pending,
        }
    }

    /// The key's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whom the key belongs to.
    pub fn owner(&self) -> &O {
        &self.owner
    }

    /// The key's abilities.
    pub fn abilities(&self) -> &Abilities {
        &self.abilities
    }

    /// Whether the key's second factor is still pending.
    pub fn is_second_factor_pending(&self) -> bool {
        self.second_factor_pending
    }
}

impl<O: Clone + Send + Sync + 'static> Principal for AccessToken<O> {
    fn has_ability(&self, ability: &str) -> bool {
        self.abilities.can(ability)
    }

    fn second_factor_pending(&self) -> bool {
        self.second_factor_pending
    }
}

/// Why a store operation failed.
///
/// | variant | meaning | [`status`](Self::status) for an API |
/// |---|---|---|
/// | [`NotFound`](Self::NotFound) | no such key for this owner | 404 |
/// | [`Invalid`](Self::Invalid) | the request cannot be stored as asked | 422 |
/// | [`Key`](Self::Key) | no secret could be drawn | 500 |
/// | [`Backend`](Self::Backend) | the store's backend failed | 503 |
#[non_exhaustive]
#[derive(Debug)]
pub enum StoreError {
    /// No key has this id, or it belongs to another owner: the two are not told apart.
    NotFound(u64),
    /// A new key could not be issued: the OS random number generator failed.
    Key(KeyError),
    /// The request cannot be stored as asked, such as an expiry beyond what the
    /// database's column holds. The message says why; it never holds a secret.
    Invalid(Box<str>),
    /// The store's backend failed (a database error, no connection in time). Its error
    /// is kept as the [source](std::error::Error::source), for logs; it is the 503 case,
    /// never a reason to tell a client its key is wrong.
    Backend(BoxError),
}

impl StoreError {
    /// A [`StoreError::Backend`] carrying `error` as its source.
    pub fn backend<E>(error: E) -> Self
    where
        E: Into<BoxError>,
    {
        Self::Backend(error.into())
    }

    /// Whether the backend failed (the 503 case).
    pub fn is_backend(&self) -> bool {
        matches!(self, Self::Backend(_))
    }

    /// The status an HTTP API answers with: 404, 422, 500 or 503 (see the table above).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Key(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Backend(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound(id) => write!(f, "no key with id {id}"),
            Self::Key(e) => write!(f, "cannot issue a key: {e}"),
            Self::Invalid(why) => write!(f, "cannot store the key: {why}"),
            Self::Backend(e) => write!(f, "the key store failed: {e}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Key(e) => Some(e),
            Self::Backend(e) => Some(&**e),
            Self::NotFound(_) | Self::Invalid(_) => None,
        }
    }
}

impl From<KeyError> for StoreError {
    fn from(e: KeyError) -> Self {
        Self::Key(e)
    }
}

/// The operations an account API performs on keys, scoped by owner.
///
/// Implemented by [`MemoryStore`](crate::MemoryStore) and by `bearer-auth-sqlx`'s
/// `SqlStore`; a store also implements [`TokenVerifier`](crate::TokenVerifier) for the
/// requests. Every method that names one key takes its owner too: a key of another owner
/// is [`StoreError::NotFound`], exactly as a key that does not exist. A backend failure
/// is [`StoreError::Backend`].
///
/// The trait is object safe: `Arc<dyn TokenStore<Owner = u64>>` is a store too.
///
/// ```
/// use bearer_auth::{MemoryStore, NewToken, StoreError, TokenStore};
///
/// /// An account API's "revoke my key" route, written once for any store.
/// async fn revoke_mine<S: TokenStore<Owner = u64>>(store: &S, me: u64, id: u64) -> u16 {
///     match store.revoke(&me, id).await {
///         Ok(()) => 204,
///         Err(e) => e.status().as_u16(),
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store: MemoryStore<u64> = MemoryStore::new();
/// let alices = TokenStore::create(&store, NewToken::new(1, "laptop")).await.unwrap();
/// // Bob cannot revoke Alice's key: to him it does not exist.
/// assert_eq!(revoke_mine(&store, 2, alices.id()).await, 404);
/// assert_eq!(revoke_mine(&store, 1, alices.id()).await, 204);
/// assert_eq!(revoke_mine(&store, 1, alices.id()).await, 404);
/// # }
/// ```
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Whom keys belong to (a user id, a name).
    type Owner: Clone + Send + Sync + 'static;

    /// Creates a key and returns its plain text token, the only time it is shown. The key
    /// is stored (committed) before the token is returned.
    async fn create(&self, new: NewToken<Self::Owner>) -> Result<IssuedToken, StoreError>;

    /// The keys of `owner`, by id. Never their secrets.
    async fn list(&self, owner: &Self::Owner) -> Result<Vec<TokenInfo<Self::Owner>>, StoreError>;

    /// The key `id` of `owner`.
    async fn get(&self, owner: &Self::Owner, id: u64)
    -> Result<TokenInfo<Self::Owner>, StoreError>;

    /// Gives the key `id` of `owner` a new secret and returns its token. The old token is
    /// refused from the moment this returns. The key keeps its id, name, abilities,
    /// expiry and second-factor state; its creation time restarts (for the maximum age).
    async fn regenerate(&self, owner: &Self::Owner, id: u64) -> Result<IssuedToken, StoreError>;

    /// Deletes the key `id` of `owner`; its token is refused from the moment this returns.
    async fn revoke(&self, owner: &Self::Owner, id: u64) -> Result<(), StoreError>;

    /// Deletes every key of `owner` (a logout everywhere); how many there were.
    async fn revoke_all(&self, owner: &Self::Owner) -> Result<u64, StoreError>;

    /// Records that the key `id` of `owner` passed its second factor.
    async fn confirm_second_factor(&self, owner: &Self::Owner, id: u64) -> Result<(), StoreError>;

    /// Deletes the keys expired for longer than `older_than` (Sanctum's
    /// `sanctum:prune-expired --hours`): those whose `expires_at` is that far in the past
    /// and, when the store has a maximum age, those created longer than the maximum age
    /// plus `older_than` ago. How many were deleted.
    async fn prune_expired(&self, older_than: Duration) -> Result<u64, StoreError>;
}

macro_rules! forward_store {
    ($($ty:ty),*) => {
        $(
            #[async_trait]
            impl<S: TokenStore + ?Sized> TokenStore for $ty {
                type Owner = S::Owner;

                async fn create(&self, new: NewToken<S::Owner>) -> Result<IssuedToken, StoreError> {
                    (**self).create(new).await
                }
                async fn list(&self, owner: &S::Owner) -> Result<Vec<TokenInfo<S::Owner>>, StoreError> {
                    (**self).list(owner).await
                }
                async fn get(&self, owner: &S::Owner, id: u64) -> Result<TokenInfo<S::Owner>, StoreError> {
                    (**self).get(owner, id).await
                }
                async fn regenerate(&self, owner: &S::Owner, id: u64) -> Result<IssuedToken, StoreError> {
                    (**self).regenerate(owner, id).await
                }
                async fn revoke(&self, owner: &S::Owner, id: u64) -> Result<(), StoreError> {
                    (**self).revoke(owner, id).await
                }
                async fn revoke_all(&self, owner: &S::Owner) -> Result<u64, StoreError> {
                    (**self).revoke_all(owner).await
                }
                async fn confirm_second_factor(&self, owner: &S::Owner, id: u64) -> Result<(), StoreError> {
                    (**self).confirm_second_factor(owner, id).await
                }
                async fn prune_expired(&self, older_than: Duration) -> Result<u64, StoreError> {
                    (**self).prune_expired(older_than).await
                }
            }
        )*
    };
}

forward_store!(Arc<S>, Box<S>, &S);

/// Milliseconds since the Unix epoch, saturating (0 before it).
pub(crate) fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn store_errors_answer_their_documented_status() {
        assert_eq!(StoreError::NotFound(3).status(), 404);
        assert_eq!(StoreError::Invalid("no".into()).status(), 422);
        assert_eq!(StoreError::Key(KeyError::InvalidPrefix).status(), 500);
        let backend = StoreError::backend(std::io::Error::other("connection refused"));
        assert_eq!(backend.status(), 503);
        assert!(backend.is_backend());
        assert!(!StoreError::NotFound(3).is_backend());
    }

    #[test]
    fn backend_error_keeps_its_source() {
        let backend = StoreError::backend(std::io::Error::other("pool timed out"));
        assert_eq!(backend.to_string(), "the key store failed: pool timed out");
        assert_eq!(backend.source().unwrap().to_string(), "pool timed out");
        assert!(StoreError::NotFound(1).source().is_none());
    }

    #[test]
    fn an_access_token_answers_with_its_keys_fields() {
        let token = AccessToken::new(
            17,
            "alice".to_owned(),
            Abilities::new(["servers:read"]),
            true,
        );
        assert_eq!(token.id(), 17);
        assert_eq!(token.owner(), "alice");
        assert!(token.has_ability("servers:read"));
        assert!(!token.has_ability("servers:write"));
        assert!(Principal::second_factor_pending(&token));
        assert!(token.is_second_factor_pending());
        let plain = AccessToken::new(3, (), Abilities::all(), false);
        assert!(plain.has_ability("anything"));
        assert!(!Principal::second_factor_pending(&plain));
    }

    #[test]
    fn expires_in_beyond_system_time_never_expires() {
        let new = NewToken::new(1_u64, "k")
            .expires_in(Duration::MAX)
            .into_parts();
        assert!(new.expires_at.is_none());
        let new = NewToken::new(1_u64, "k")
            .expires_in(Duration::from_secs(60))
            .into_parts();
        assert!(new.expires_at.is_some());
    }
}

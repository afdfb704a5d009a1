//! An in-memory key store for one process, and its verifier.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use dashmap::{DashMap, Entry};
use subtle::{Choice, ConstantTimeEq};

use crate::{
    Abilities, BearerToken, InvalidReason, KeyError, KeyGenerator, PlainTextToken, Principal,
    Rejection, TokenHash, TokenParts, TokenVerifier,
};

/// `expires_at` of a key that never expires.
const NEVER: u64 = u64::MAX;

/// Keys kept in memory: for a single process, tests and examples.
///
/// Cloning is cheap and every clone sees the same keys. A key is found by the SHA-256 of
/// the presented secret, with one lookup (its first 8 bytes index the keys, and the store
/// keeps them unique), then the rest of its digest is compared in constant time and the
/// id before the `|` must match. A wrong secret with a known id and any secret with an
/// unknown id thus take the very same path: an index lookup that misses. The maps are
/// sharded, so verifying takes no lock over the whole store and costs about the same
/// however many keys there are. `last_used_at` is an atomic per key, written at most once
/// a second.
///
/// ```
/// use bearer_auth::{BearerToken, MemoryStore, NewToken, TokenVerifier};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryStore::new();
/// let issued = store
///     .create(NewToken::new(42_u64, "deploy bot").abilities(["servers:write"]))
///     .unwrap();
///
/// // Shown once: only its SHA-256 is kept.
/// let plain = issued.plain_text_token().as_str().to_owned();
///
/// let token = BearerToken::from_token(&plain).unwrap();
/// let principal = store.verify(&token).await.unwrap();
/// assert_eq!(*principal.owner(), 42);
/// assert!(principal.abilities().can("servers:write"));
///
/// store.revoke(issued.id());
/// assert_eq!(store.verify(&token).await.unwrap_err().status(), 401);
/// # }
/// ```
pub struct MemoryStore<O = String> {
    inner: Arc<Inner<O>>,
}

struct Inner<O> {
    /// The keys, by the first 8 bytes of their digest: what a verification reads, with
    /// one lookup. Unique: a new secret whose prefix is taken is drawn again. `None`
    /// while a prefix is reserved for a key being issued. Boxed: a map keeps free slots,
    /// and a free slot of a pointer costs less than one of a whole entry.
    by_prefix: DashMap<u64, Option<Box<Key<O>>>>,
    /// Each key's id, to its digest prefix: for the operations by id. Lock order: an
    /// entry of `by_id` may be held while `by_prefix` is used, never the other way
    /// round.
    by_id: DashMap<u64, u64>,
    next_id: AtomicU64,
    keys: KeyGenerator,
    /// Sanctum's `expiration`: keys older than this are refused. In milliseconds.
    max_age: Option<u64>,
}

struct Key<O> {
    id: u64,
    /// The digest's last 24 bytes, as words; its first 8 are the key's index in
    /// `by_prefix`.
    digest_rest: [u64; 3],
    owner: O,
    name: Box<str>,
    abilities: Abilities,
    /// Unix milliseconds.
    created_at: u64,
    /// Unix milliseconds, or [`NEVER`].
    expires_at: u64,
    /// Unix milliseconds, 0 when never used.
    last_used_at: AtomicU64,
    second_factor_pending: AtomicBool,
}

impl<O> Clone for MemoryStore<O> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<O> fmt::Debug for MemoryStore<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("keys", &self.inner.by_id.len())
            .field("prefix", &self.inner.keys.prefix())
            .field("max_age_ms", &self.inner.max_age)
            .finish()
    }
}

impl<O: Clone + Send + Sync + 'static> Default for MemoryStore<O> {
    fn default() -> Self {
        Self::new()
    }
}

/// Configures a [`MemoryStore`].
#[derive(Debug, Clone, Default)]
pub struct MemoryStoreBuilder {
    keys: KeyGenerator,
    max_age: Option<Duration>,
}

impl MemoryStoreBuilder {
    /// The defaults: keys without a prefix, no maximum age.
    pub fn new() -> Self {
        Self::default()
    }

    /// Issues keys with this generator (for a prefix: [`KeyGenerator::with_prefix`]).
    pub fn key_generator(mut self, keys: KeyGenerator) -> Self {
        self.keys = keys;
        self
    }

    /// Refuses keys older than `max_age`, whatever their own `expires_at` (Sanctum's
    /// `expiration` setting).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// The store.
    pub fn build<O: Clone + Send + Sync + 'static>(self) -> MemoryStore<O> {
        MemoryStore {
            inner: Arc::new(Inner {
                by_id: DashMap::new(),
                by_prefix: DashMap::new(),
                next_id: AtomicU64::new(1),
                keys: self.keys,
                max_age: self
                    .max_age
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(NEVER)),
            }),
        }
    }
}

/// What to create: owner, name, and optionally abilities, expiry and a pending second
/// factor. Abilities default to `["*"]`, as in Sanctum.
#[derive(Debug, Clone)]
pub struct NewToken<O> {
    owner: O,
    name: Box<str>,
    abilities: Abilities,
    expires_at: Option<SystemTime>,
    second_factor_pending: bool,
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

    /// The key expires `ttl` from now.
    pub fn expires_in(self, ttl: Duration) -> Self {
        let at = SystemTime::now()
            .checked_add(ttl)
            .unwrap_or(UNIX_EPOCH + Duration::from_millis(NEVER));
        self.expires_at(at)
    }

    /// Whether the key waits for a second factor before it is fully usable.
    pub fn second_factor_pending(mut self, pending: bool) -> Self {
        self.second_factor_pending = pending;
        self
    }
}

/// A key just created or regenerated: its id and its plain text token, shown this once.
#[derive(Debug)]
pub struct IssuedToken {
    id: u64,
    token: PlainTextToken,
}

impl IssuedToken {
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
    /// When it was last used, to the second.
    pub last_used_at: Option<SystemTime>,
    /// Whether its second factor is still pending.
    pub second_factor_pending: bool,
}

/// The principal of a key from a [`MemoryStore`].
#[derive(Debug, Clone)]
pub struct AccessToken<O> {
    id: u64,
    owner: O,
    abilities: Abilities,
    second_factor_pending: bool,
}

impl<O> AccessToken<O> {
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
#[non_exhaustive]
#[derive(Debug)]
pub enum StoreError {
    /// No key has this id.
    NotFound(u64),
    /// A new key could not be issued.
    Key(KeyError),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound(id) => write!(f, "no key with id {id}"),
            Self::Key(e) => write!(f, "cannot issue a key: {e}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Key(e) => Some(e),
            Self::NotFound(_) => None,
        }
    }
}

impl From<KeyError> for StoreError {
    fn from(e: KeyError) -> Self {
        Self::Key(e)
    }
}

impl MemoryStore {
    /// Configures a store. The owner type is chosen by
    /// [`build`](MemoryStoreBuilder::build).
    ///
    /// ```
    /// use std::time::Duration;
    /// use bearer_auth::{KeyGenerator, MemoryStore};
    ///
    /// let store: MemoryStore<u64> = MemoryStore::builder()
    ///     .key_generator(KeyGenerator::with_prefix("ph_").unwrap())
    ///     .max_age(Duration::from_secs(30 * 24 * 3600))
    ///     .build();
    /// # let _ = store;
    /// ```
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder::default()
    }
}

impl<O: Clone + Send + Sync + 'static> MemoryStore<O> {
    /// An empty store issuing keys without a prefix, with no maximum age.
    pub fn new() -> Self {
        MemoryStoreBuilder::default().build()
    }

    /// Creates a key and returns its plain text token, the only time it is shown.
    pub fn create(&self, new: NewToken<O>) -> Result<IssuedToken, KeyError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (token, hash) = self.reserve(id)?;
        let key = Key {
            id,
            digest_rest: rest(&hash),
            owner: new.owner,
            name: new.name,
            abilities: new.abilities,
            created_at: now_ms(),
            expires_at: new.expires_at.map_or(NEVER, to_ms),
            last_used_at: AtomicU64::new(0),
            second_factor_pending: AtomicBool::new(new.second_factor_pending),
        };
        self.fill(&hash, Box::new(key));
        self.inner.by_id.insert(id, prefix(&hash));
        Ok(IssuedToken { id, token })
    }

    /// Draws a secret for the key `id` whose digest prefix no other key has, and
    /// reserves that prefix (an empty slot, which no token matches) for it.
    fn reserve(&self, id: u64) -> Result<(PlainTextToken, TokenHash), KeyError> {
        loop {
            let token = self.inner.keys.generate(id)?;
            let hash = token.hash();
            if let Entry::Vacant(slot) = self.inner.by_prefix.entry(prefix(&hash)) {
                slot.insert(None);
                return Ok((token, hash));
            }
        }
    }

    /// Puts `key` in the slot [`reserve`](Self::reserve) kept for the digest `hash`.
    fn fill(&self, hash: &TokenHash, key: Box<Key<O>>) {
        if let Some(mut slot) = self.inner.by_prefix.get_mut(&prefix(hash)) {
            *slot = Some(key);
        }
    }

    /// Gives the key a new secret and returns it. The old token is refused from this
    /// moment. The key keeps its id, owner, name, abilities, expiry and second-factor
    /// state; its creation time restarts (for the maximum age) and it counts as unused.
    pub fn regenerate(&self, id: u64) -> Result<IssuedToken, StoreError> {
        // Held to the end: no other operation on this id runs meanwhile.
        let mut current = self
            .inner
            .by_id
            .get_mut(&id)
            .ok_or(StoreError::NotFound(id))?;
        let (token, hash) = self.reserve(id)?;
        let Some(mut key) = self
            .inner
            .by_prefix
            .remove(&*current)
            .and_then(|(_, key)| key)
        else {
            // Every id in `by_id` has its key in `by_prefix`; give the slot back.
            self.inner.by_prefix.remove(&prefix(&hash));
            return Err(StoreError::NotFound(id));
        };
        key.digest_rest = rest(&hash);
        key.created_at = now_ms();
        key.last_used_at.store(0, Ordering::Relaxed);
        self.fill(&hash, key);
        *current = prefix(&hash);
        Ok(IssuedToken { id, token })
    }

    /// Deletes the key; its token is refused from this moment. `false` if there was none.
    pub fn revoke(&self, id: u64) -> bool {
        match self.inner.by_id.remove(&id) {
            Some((_, at)) => {
                self.inner.by_prefix.remove(&at);
                true
            }
            None => false,
        }
    }

    /// Records that the key's second factor was passed. `false` if there is no such key.
    pub fn confirm_second_factor(&self, id: u64) -> bool {
        self.with_key(id, |key| {
            key.second_factor_pending.store(false, Ordering::Release);
        })
        .is_some()
    }

    /// What the store knows of one key.
    pub fn get(&self, id: u64) -> Option<TokenInfo<O>> {
        self.with_key(id, info)
    }

    /// Runs `f` on the key `id`, if there is one.
    fn with_key<T>(&self, id: u64, f: impl FnOnce(&Key<O>) -> T) -> Option<T> {
        // Held while the key is read: it cannot move to another prefix meanwhile.
        let at = self.inner.by_id.get(&id)?;
        let slot = self.inner.by_prefix.get(&*at)?;
        slot.as_deref().map(f)
    }

    /// Every key, by id.
    pub fn list(&self) -> Vec<TokenInfo<O>> {
        let mut all: Vec<_> = self
            .inner
            .by_prefix
            .iter()
            .filter_map(|slot| slot.value().as_deref().map(info))
            .collect();
        all.sort_by_key(|i| i.id);
        all
    }

    /// The keys of one owner, by id.
    pub fn list_for(&self, owner: &O) -> Vec<TokenInfo<O>>
    where
        O: PartialEq,
    {
        let mut mine: Vec<_> = self
            .inner
            .by_prefix
            .iter()
            .filter_map(|slot| {
                slot.value()
                    .as_deref()
                    .filter(|key| key.owner == *owner)
                    .map(info)
            })
            .collect();
        mine.sort_by_key(|i| i.id);
        mine
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.inner.by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.inner.by_id.is_empty()
    }

    fn check(&self, token: &BearerToken) -> Result<AccessToken<O>, Rejection> {
        let unknown = || Rejection::InvalidToken(InvalidReason::Unknown);
        let parts = TokenParts::split(token.as_str())?;
        let digest = parts.hash();
        // Any wrong secret, whatever the id, ends here: the same miss.
        let slot = self
            .inner
            .by_prefix
            .get(&prefix(&digest))
            .ok_or_else(unknown)?;
        let entry = slot.as_deref().ok_or_else(unknown)?;
        let id = entry.id;
        let matched = entry.digest_rest.ct_eq(&rest(&digest))
            & Choice::from(u8::from(parts.id().is_none_or(|presented| presented == id)));
        if !bool::from(matched) {
            return Err(unknown());
        }
        let now = now_ms();
        let too_old = self
            .inner
            .max_age
            .is_some_and(|max| entry.created_at.saturating_add(max) <= now);
        if entry.expires_at <= now || too_old {
            return Err(Rejection::InvalidToken(InvalidReason::Expired));
        }
        // Written at most once a second per key, to keep the cache line shared.
        if entry.last_used_at.load(Ordering::Relaxed) / 1000 != now / 1000 {
            entry.last_used_at.store(now, Ordering::Relaxed);
        }
        Ok(AccessToken {
            id,
            owner: entry.owner.clone(),
            abilities: entry.abilities.clone(),
            second_factor_pending: entry.second_factor_pending.load(Ordering::Acquire),
        })
    }
}

#[async_trait]
impl<O: Clone + Send + Sync + 'static> TokenVerifier for MemoryStore<O> {
    type Principal = AccessToken<O>;

    async fn verify(&self, token: &BearerToken) -> Result<AccessToken<O>, Rejection> {
        self.check(token)
    }

    /// Always `Some`: the store never waits.
    fn verify_now(&self, token: &BearerToken) -> Option<Result<AccessToken<O>, Rejection>> {
        Some(self.check(token))
    }
}

fn info<O: Clone>(e: &Key<O>) -> TokenInfo<O> {
    let last_used = e.last_used_at.load(Ordering::Relaxed);
    TokenInfo {
        id: e.id,
        owner: e.owner.clone(),
        name: e.name.clone(),
        abilities: e.abilities.clone(),
        created_at: from_ms(e.created_at),
        expires_at: (e.expires_at != NEVER).then(|| from_ms(e.expires_at)),
        last_used_at: (last_used != 0).then(|| from_ms(last_used)),
        second_factor_pending: e.second_factor_pending.load(Ordering::Acquire),
    }
}

/// The index key of a digest: its first 8 bytes.
fn prefix(hash: &TokenHash) -> u64 {
    let [a, b, c, d, e, f, g, h, ..] = *hash.as_bytes();
    u64::from_le_bytes([a, b, c, d, e, f, g, h])
}

/// The rest of a digest, after its [`prefix`]: what a key keeps of it.
fn rest(hash: &TokenHash) -> [u64; 3] {
    crate::key::words(&hash.as_bytes()[8..])
}

fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(NEVER))
}

fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn now_ms() -> u64 {
    to_ms(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(s: &str) -> BearerToken {
        BearerToken::from_token(s).unwrap()
    }

    fn reason(r: Result<AccessToken<String>, Rejection>) -> &'static str {
        r.map(|_| "ok").unwrap_or_else(|e| e.reason())
    }

    fn store() -> MemoryStore<String> {
        MemoryStore::new()
    }

    #[tokio::test]
    async fn issued_key_verifies_with_its_principal() {
        let s = store();
        let issued = s
            .create(NewToken::new("alice".into(), "ci").abilities(["read"]))
            .unwrap();
        let p = s
            .verify(&bearer(issued.plain_text_token().as_str()))
            .await
            .unwrap();
        assert_eq!(p.id(), issued.id());
        assert_eq!(p.owner(), "alice");
        assert!(p.abilities().can("read") && !p.abilities().can("write"));
        assert!(!p.is_second_factor_pending());
    }

    #[tokio::test]
    async fn secret_alone_is_looked_up_by_digest() {
        let s = store();
        let issued = s.create(NewToken::new("alice".into(), "ci")).unwrap();
        let p = s
            .verify(&bearer(issued.plain_text_token().secret()))
            .await
            .unwrap();
        assert_eq!(p.id(), issued.id());
    }

    #[tokio::test]
    async fn unknown_id_and_wrong_secret_are_both_unknown() {
        let s = store();
        let issued = s.create(NewToken::new("alice".into(), "ci")).unwrap();
        let secret = issued.plain_text_token().secret();
        assert_eq!(
            reason(s.verify(&bearer(&format!("999|{secret}"))).await),
            "unknown"
        );
        assert_eq!(
            reason(s.verify(&bearer(&format!("{}|wrong", issued.id()))).await),
            "unknown"
        );
        assert_eq!(reason(s.verify(&bearer("no-such-secret")).await), "unknown");
        // Id 0 is never issued: with the right secret it still names no key, and is refused.
        assert_eq!(
            reason(s.verify(&bearer(&format!("0|{secret}"))).await),
            "unknown"
        );
    }

    #[tokio::test]
    async fn malformed_split_is_refused_before_lookup() {
        let s = store();
        assert_eq!(reason(s.verify(&bearer("x1|abc")).await), "malformed");
        assert_eq!(reason(s.verify(&bearer("1|")).await), "malformed");
    }

    #[tokio::test]
    async fn expired_key_is_refused() {
        let s = store();
        let past = SystemTime::now() - Duration::from_secs(1);
        let issued = s
            .create(NewToken::new("a".into(), "old").expires_at(past))
            .unwrap();
        assert_eq!(
            reason(s.verify(&bearer(issued.plain_text_token().as_str())).await),
            "expired"
        );
        let fresh = s
            .create(NewToken::new("a".into(), "new").expires_in(Duration::from_secs(3600)))
            .unwrap();
        assert_eq!(
            reason(s.verify(&bearer(fresh.plain_text_token().as_str())).await),
            "ok"
        );
    }

    #[tokio::test]
    async fn max_age_refuses_old_keys() {
        let s: MemoryStore<String> = MemoryStore::builder().max_age(Duration::ZERO).build();
        let issued = s.create(NewToken::new("a".into(), "k")).unwrap();
        assert_eq!(
            reason(s.verify(&bearer(issued.plain_text_token().as_str())).await),
            "expired"
        );
        let s: MemoryStore<String> = MemoryStore::builder()
            .max_age(Duration::from_secs(60))
            .build();
        let issued = s.create(NewToken::new("a".into(), "k")).unwrap();
        assert_eq!(
            reason(s.verify(&bearer(issued.plain_text_token().as_str())).await),
            "ok"
        );
    }

    #[tokio::test]
    async fn revoked_key_is_refused_at_once() {
        let s = store();
        let issued = s.create(NewToken::new("a".into(), "k")).unwrap();
        let plain = issued.plain_text_token().as_str().to_owned();
        assert!(s.revoke(issued.id()));
        assert!(!s.revoke(issued.id()));
        assert_eq!(reason(s.verify(&bearer(&plain)).await), "unknown");
        assert_eq!(
            reason(s.verify(&bearer(issued.plain_text_token().secret())).await),
            "unknown"
        );
        assert!(s.is_empty());
    }

    #[tokio::test]
    async fn regenerated_key_refuses_the_old_token() {
        let s = store();
        let old = s.create(NewToken::new("a".into(), "k")).unwrap();
        let new = s.regenerate(old.id()).unwrap();
        assert_eq!(new.id(), old.id());
        assert_ne!(
            new.plain_text_token().as_str(),
            old.plain_text_token().as_str()
        );
        assert_eq!(
            reason(s.verify(&bearer(old.plain_text_token().as_str())).await),
            "unknown"
        );
        assert_eq!(
            reason(s.verify(&bearer(old.plain_text_token().secret())).await),
            "unknown"
        );
        assert_eq!(
            reason(s.verify(&bearer(new.plain_text_token().as_str())).await),
            "ok"
        );
        assert_eq!(
            reason(s.verify(&bearer(new.plain_text_token().secret())).await),
            "ok"
        );
        assert!(matches!(
            s.regenerate(12345),
            Err(StoreError::NotFound(12345))
        ));
    }

    #[tokio::test]
    async fn pending_second_factor_is_reported_until_confirmed() {
        let s = store();
        let issued = s
            .create(NewToken::new("a".into(), "k").second_factor_pending(true))
            .unwrap();
        let t = bearer(issued.plain_text_token().as_str());
        assert!(s.verify(&t).await.unwrap().is_second_factor_pending());
        // The default policy turns it into the 403 two-factor rejection.
        let refused = crate::Authenticator::new(s.clone())
            .verify(&t)
            .await
            .unwrap_err();
        assert!(matches!(refused, Rejection::SecondFactorRequired));
        assert!(s.confirm_second_factor(issued.id()));
        assert!(!s.verify(&t).await.unwrap().is_second_factor_pending());
        assert!(!s.confirm_second_factor(999));
    }

    #[tokio::test]
    async fn list_shows_metadata_never_secrets() {
        let s = store();
        let a = s.create(NewToken::new("alice".into(), "one")).unwrap();
        let _b = s.create(NewToken::new("bob".into(), "two")).unwrap();
        let all = s.list();
        assert_eq!(
            all.iter().map(|i| &*i.name).collect::<Vec<_>>(),
            ["one", "two"]
        );
        let mine = s.list_for(&"alice".to_owned());
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].id, a.id());
        assert!(mine[0].last_used_at.is_none());
        let printed = format!("{all:?}");
        assert!(!printed.contains(a.plain_text_token().secret()));
        assert!(!printed.contains(&a.plain_text_token().hash().to_hex()));
        s.verify(&bearer(a.plain_text_token().as_str()))
            .await
            .unwrap();
        assert!(s.get(a.id()).unwrap().last_used_at.is_some());
    }

    #[tokio::test]
    async fn ids_are_distinct_and_start_at_one() {
        let s = store();
        let ids: Vec<_> = (0..3)
            .map(|_| s.create(NewToken::new("a".into(), "k")).unwrap().id())
            .collect();
        assert_eq!(ids, [1, 2, 3]);
    }

    #[test]
    fn prefix_is_used() {
        let s: MemoryStore<String> = MemoryStore::builder()
            .key_generator(KeyGenerator::with_prefix("ph_").unwrap())
            .build();
        let issued = s.create(NewToken::new("a".into(), "k")).unwrap();
        assert!(issued.plain_text_token().secret().starts_with("ph_"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_create_verify_revoke() {
        let s = store();
        let mut tasks = Vec::new();
        for t in 0..32 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..200 {
                    let issued = s
                        .create(NewToken::new(format!("user{t}"), format!("k{i}")))
                        .unwrap();
                    let token = bearer(issued.plain_text_token().as_str());
                    let p = s.verify(&token).await.unwrap();
                    assert_eq!(p.owner(), &format!("user{t}"));
                    if i % 2 == 0 {
                        assert!(s.revoke(issued.id()));
                        assert!(s.verify(&token).await.is_err());
                    } else {
                        let new = s.regenerate(issued.id()).unwrap();
                        assert!(s.verify(&token).await.is_err());
                        assert!(
                            s.verify(&bearer(new.plain_text_token().as_str()))
                                .await
                                .is_ok()
                        );
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(s.len(), 32 * 100);
        assert_eq!(s.inner.by_prefix.len(), 32 * 100);
        assert_eq!(s.inner.by_id.len(), 32 * 100);
        for info in s.list() {
            assert_eq!(s.get(info.id).unwrap().id, info.id);
        }
    }
}

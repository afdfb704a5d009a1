//! An in-memory key store for one process, and its verifier.

use std::{
    fmt,
    hash::Hash,
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
    AccessToken, BearerToken, BearerTokenRef, InvalidReason, IssuedToken, KeyError, KeyGenerator,
    NewToken, Rejection, StoreError, TokenHash, TokenInfo, TokenParts, TokenSecret, TokenStore,
    TokenVerifier,
    clock::{coarse_now_ms, now_ms},
    store::to_ms,
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
/// however many keys there are. An index by owner lists one owner's keys without looking
/// at anyone else's. `last_used_at` is an atomic per key, written at most once a second.
///
/// The store implements [`TokenStore`], the interface an account API is written against,
/// and [`TokenVerifier`]. Since it never waits, it also has the same operations as plain
/// methods (the compiler picks them over the trait's when the type is known): they return
/// `bool` and `Option` where the trait returns [`StoreError::NotFound`].
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
/// // Another owner cannot revoke it; its owner can.
/// assert!(!store.revoke(&7, issued.id()));
/// assert!(store.revoke(&42, issued.id()));
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
    by_prefix: Slots<Option<Box<Key<O>>>>,
    /// Each key's id, to its digest prefix: for the operations by id. Lock order: an
    /// entry of `by_id` may be held while `by_prefix` is used, never the other way
    /// round. `by_owner` is used with no other entry held.
    by_id: DashMap<u64, u64>,
    /// The ids of each owner's keys: to list them without reading anyone else's.
    by_owner: DashMap<O, OwnedIds>,
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
    abilities: crate::Abilities,
    /// Unix milliseconds.
    created_at: u64,
    /// Unix milliseconds, or [`NEVER`].
    expires_at: u64,
    /// Unix milliseconds, 0 when never used.
    last_used_at: AtomicU64,
    second_factor_pending: AtomicBool,
}

/// One owner's key ids. Most owners have one key: it is kept inline.
enum OwnedIds {
    One(u64),
    Many(Vec<u64>),
}

impl OwnedIds {
    fn push(&mut self, id: u64) {
        match self {
            Self::One(first) => *self = Self::Many(vec![*first, id]),
            Self::Many(ids) => ids.push(id),
        }
    }

    /// Removes `id`; whether none is left.
    fn remove(&mut self, id: u64) -> bool {
        match self {
            Self::One(only) => *only == id,
            Self::Many(ids) => {
                ids.retain(|&i| i != id);
                ids.is_empty()
            }
        }
    }

    fn to_vec(&self) -> Vec<u64> {
        match self {
            Self::One(id) => vec![*id],
            Self::Many(ids) => ids.clone(),
        }
    }
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

impl<O: Clone + Eq + Hash + Send + Sync + 'static> Default for MemoryStore<O> {
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
    pub fn build<O: Clone + Eq + Hash + Send + Sync + 'static>(self) -> MemoryStore<O> {
        MemoryStore {
            inner: Arc::new(Inner {
                by_id: DashMap::new(),
                by_prefix: Slots::default(),
                by_owner: DashMap::new(),
                next_id: AtomicU64::new(1),
                keys: self.keys,
                max_age: self.max_age.map(duration_ms),
            }),
        }
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

impl<O: Clone + Eq + Hash + Send + Sync + 'static> MemoryStore<O> {
    /// An empty store issuing keys without a prefix, with no maximum age.
    pub fn new() -> Self {
        MemoryStoreBuilder::default().build()
    }

    /// Creates a key and returns its plain text token, the only time it is shown.
    pub fn create(&self, new: NewToken<O>) -> Result<IssuedToken, KeyError> {
        let (secret, hash) = self.reserve()?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let key = Key {
            id,
            digest_rest: rest(&hash),
            owner: new.owner.clone(),
            name: new.name,
            abilities: new.abilities,
            created_at: now_ms(),
            expires_at: new.expires_at.map_or(NEVER, to_ms),
            last_used_at: AtomicU64::new(0),
            second_factor_pending: AtomicBool::new(new.second_factor_pending),
        };
        self.fill(&hash, Box::new(key));
        self.inner.by_id.insert(id, prefix(&hash));
        match self.inner.by_owner.entry(new.owner) {
            Entry::Occupied(mut ids) => ids.get_mut().push(id),
            Entry::Vacant(slot) => {
                slot.insert(OwnedIds::One(id));
            }
        }
        Ok(IssuedToken::new(id, secret.into_token(id)))
    }

    /// Draws a secret whose digest prefix no other key has, and reserves that prefix (an
    /// empty slot, which no token matches) for it.
    ///
    /// Two digests share a prefix with a chance of about one in 2^64 per key held: 64
    /// draws in a row that all collide mean a broken generator, and get
    /// [`KeyError::Exhausted`].
    fn reserve(&self) -> Result<(TokenSecret, TokenHash), KeyError> {
        reserve_with(&self.inner.by_prefix, || self.inner.keys.generate_secret())
    }

    /// Puts `key` in the slot [`reserve`](Self::reserve) kept for the digest `hash`.
    fn fill(&self, hash: &TokenHash, key: Box<Key<O>>) {
        if let Some(mut slot) = self.inner.by_prefix.get_mut(&prefix(hash)) {
            *slot = Some(key);
        }
    }

    /// Gives the key `id` of `owner` a new secret and returns it. The old token is
    /// refused from this moment. The key keeps its id, owner, name, abilities, expiry and
    /// second-factor state; its creation time restarts (for the maximum age) and it
    /// counts as unused. [`StoreError::NotFound`] if `owner` has no such key.
    pub fn regenerate(&self, owner: &O, id: u64) -> Result<IssuedToken, StoreError> {
        // Held to the end: no other operation on this id runs meanwhile.
        let mut current = self
            .inner
            .by_id
            .get_mut(&id)
            .ok_or(StoreError::NotFound(id))?;
        let owned = self
            .inner
            .by_prefix
            .get(&*current)
            .is_some_and(|slot| slot.as_deref().is_some_and(|key| key.owner == *owner));
        if !owned {
            return Err(StoreError::NotFound(id));
        }
        let (secret, hash) = self.reserve()?;
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
        Ok(IssuedToken::new(id, secret.into_token(id)))
    }

    /// Deletes the key `id` of `owner`; its token is refused from this moment. `false`
    /// if `owner` has no such key.
    pub fn revoke(&self, owner: &O, id: u64) -> bool {
        self.remove_where(id, |key| key.owner == *owner)
    }

    /// Deletes every key of `owner`; how many there were.
    pub fn revoke_all(&self, owner: &O) -> usize {
        let Some((_, ids)) = self.inner.by_owner.remove(owner) else {
            return 0;
        };
        ids.to_vec()
            .into_iter()
            .filter(|&id| self.take_where(id, |key| key.owner == *owner).is_some())
            .count()
    }

    /// Records that the key `id` of `owner` passed its second factor. `false` if `owner`
    /// has no such key.
    pub fn confirm_second_factor(&self, owner: &O, id: u64) -> bool {
        self.with_key(id, |key| {
            let mine = key.owner == *owner;
            if mine {
                key.second_factor_pending.store(false, Ordering::Release);
            }
            mine
        })
        .unwrap_or(false)
    }

    /// What the store knows of the key `id` of `owner`.
    pub fn get(&self, owner: &O, id: u64) -> Option<TokenInfo<O>> {
        self.with_key(id, |key| (key.owner == *owner).then(|| info(key)))
            .flatten()
    }

    /// The keys of `owner`, by id. Reads only that owner's keys.
    pub fn list(&self, owner: &O) -> Vec<TokenInfo<O>> {
        let ids = match self.inner.by_owner.get(owner) {
            Some(ids) => ids.to_vec(),
            None => return Vec::new(),
        };
        let mut mine: Vec<_> = ids
            .into_iter()
            .filter_map(|id| self.get(owner, id))
            .collect();
        mine.sort_by_key(|i| i.id);
        mine
    }

    /// Deletes the keys expired for longer than `older_than`: those whose `expires_at` is
    /// more than `older_than` in the past and, with a [maximum
    /// age](MemoryStoreBuilder::max_age), those created more than the maximum age plus
    /// `older_than` ago (Sanctum's `sanctum:prune-expired --hours`). How many were
    /// deleted. Reads every key: call it from time to time, not per request.
    pub fn prune_expired(&self, older_than: Duration) -> usize {
        self.prune_expired_at(older_than, now_ms())
    }

    /// [`prune_expired`](Self::prune_expired) as of `now` (Unix milliseconds): tests pass
    /// their own clock.
    fn prune_expired_at(&self, older_than: Duration, now: u64) -> usize {
        let grace = duration_ms(older_than);
        let max_age = self.inner.max_age;
        let doomed = |key: &Key<O>| {
            let expired = key.expires_at != NEVER && key.expires_at.saturating_add(grace) < now;
            let too_old = max_age
                .is_some_and(|max| key.created_at.saturating_add(max).saturating_add(grace) < now);
            expired || too_old
        };
        let candidates: Vec<u64> = self
            .inner
            .by_prefix
            .iter()
            .filter_map(|slot| slot.value().as_deref().filter(|k| doomed(k)).map(|k| k.id))
            .collect();
        candidates
            .into_iter()
            // Checked again under the key's lock: it may have been regenerated meanwhile.
            .filter(|&id| self.remove_where(id, doomed))
            .count()
    }

    /// Deletes the key `id` if `condition` holds for it, and drops it from its owner's
    /// index; whether it did.
    fn remove_where(&self, id: u64, condition: impl FnOnce(&Key<O>) -> bool) -> bool {
        match self.take_where(id, condition) {
            Some(owner) => {
                self.inner
                    .by_owner
                    .remove_if_mut(&owner, |_, ids| ids.remove(id));
                true
            }
            None => false,
        }
    }

    /// Deletes the key `id` if `condition` holds for it, leaving the owner index alone;
    /// its owner if it did.
    fn take_where(&self, id: u64, condition: impl FnOnce(&Key<O>) -> bool) -> Option<O> {
        // Held while the key is read and removed: no other operation on this id meanwhile.
        let Entry::Occupied(at) = self.inner.by_id.entry(id) else {
            return None;
        };
        let owner = {
            let slot = self.inner.by_prefix.get(at.get())?;
            let key = slot.as_deref()?;
            if !condition(key) {
                return None;
            }
            key.owner.clone()
        };
        let (_, at) = at.remove_entry();
        self.inner.by_prefix.remove(&at);
        Some(owner)
    }

    /// Runs `f` on the key `id`, if there is one.
    fn with_key<T>(&self, id: u64, f: impl FnOnce(&Key<O>) -> T) -> Option<T> {
        // Held while the key is read: it cannot move to another prefix meanwhile.
        let at = self.inner.by_id.get(&id)?;
        let slot = self.inner.by_prefix.get(&*at)?;
        slot.as_deref().map(f)
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.inner.by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.inner.by_id.is_empty()
    }

    fn check(&self, token: &str) -> Result<AccessToken<O>, Rejection> {
        let unknown = || Rejection::InvalidToken(InvalidReason::Unknown);
        let parts = TokenParts::split(token)?;
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
        // A key that can expire is checked against the exact clock; one that cannot
        // reads only the coarse clock, for `last_used_at`, kept to the second.
        let now = if entry.expires_at != NEVER || self.inner.max_age.is_some() {
            let now = now_ms();
            let too_old = self
                .inner
                .max_age
                .is_some_and(|max| entry.created_at.saturating_add(max) <= now);
            if entry.expires_at <= now || too_old {
                return Err(Rejection::InvalidToken(InvalidReason::Expired));
            }
            now
        } else {
            // Never before its creation, which the exact clock dated.
            coarse_now_ms().max(entry.created_at)
        };
        // Written at most once a second per key, to keep the cache line shared.
        if entry.last_used_at.load(Ordering::Relaxed) / 1000 != now / 1000 {
            entry.last_used_at.store(now, Ordering::Relaxed);
        }
        // The owner is cloned, not shared: a reference count shared by every request
        // of one key would be written by every core at once (BENCHMARKS.md, scaling).
        Ok(AccessToken::new(
            id,
            entry.owner.clone(),
            entry.abilities.clone(),
            entry.second_factor_pending.load(Ordering::Acquire),
        ))
    }
}

#[async_trait]
impl<O: Clone + Eq + Hash + Send + Sync + 'static> TokenVerifier for MemoryStore<O> {
    type Principal = AccessToken<O>;

    async fn verify(&self, token: &BearerToken) -> Result<AccessToken<O>, Rejection> {
        self.check(token.as_str())
    }

    /// Always `Some`: the store never waits.
    fn verify_now(&self, token: BearerTokenRef<'_>) -> Option<Result<AccessToken<O>, Rejection>> {
        Some(self.check(token.as_str()))
    }
}

#[async_trait]
impl<O: Clone + Eq + Hash + Send + Sync + 'static> TokenStore for MemoryStore<O> {
    type Owner = O;

    async fn create(&self, new: NewToken<O>) -> Result<IssuedToken, StoreError> {
        Ok(Self::create(self, new)?)
    }

    async fn list(&self, owner: &O) -> Result<Vec<TokenInfo<O>>, StoreError> {
        Ok(Self::list(self, owner))
    }

    async fn get(&self, owner: &O, id: u64) -> Result<TokenInfo<O>, StoreError> {
        Self::get(self, owner, id).ok_or(StoreError::NotFound(id))
    }

    async fn regenerate(&self, owner: &O, id: u64) -> Result<IssuedToken, StoreError> {
        Self::regenerate(self, owner, id)
    }

    async fn revoke(&self, owner: &O, id: u64) -> Result<(), StoreError> {
        found(Self::revoke(self, owner, id), id)
    }

    async fn revoke_all(&self, owner: &O) -> Result<u64, StoreError> {
        Ok(count(Self::revoke_all(self, owner)))
    }

    async fn confirm_second_factor(&self, owner: &O, id: u64) -> Result<(), StoreError> {
        found(Self::confirm_second_factor(self, owner, id), id)
    }

    async fn prune_expired(&self, older_than: Duration) -> Result<u64, StoreError> {
        Ok(count(Self::prune_expired(self, older_than)))
    }
}

fn found(yes: bool, id: u64) -> Result<(), StoreError> {
    if yes {
        Ok(())
    } else {
        Err(StoreError::NotFound(id))
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn info<O: Clone>(e: &Key<O>) -> TokenInfo<O> {
    let last_used = e.last_used_at.load(Ordering::Relaxed);
    let mut info = TokenInfo::new(
        e.id,
        e.owner.clone(),
        e.name.clone(),
        e.abilities.clone(),
        from_ms(e.created_at),
    );
    info.expires_at = (e.expires_at != NEVER).then(|| from_ms(e.expires_at));
    info.last_used_at = (last_used != 0).then(|| from_ms(last_used));
    info.second_factor_pending = e.second_factor_pending.load(Ordering::Acquire);
    info
}

/// Draws secrets with `draw` until one's digest [`prefix`] is free in `slots`, and
/// reserves it there (an empty slot); at most [`MAX_DRAWS`] draws, then
/// [`KeyError::Exhausted`].
fn reserve_with<V>(
    slots: &Slots<Option<V>>,
    mut draw: impl FnMut() -> Result<TokenSecret, KeyError>,
) -> Result<(TokenSecret, TokenHash), KeyError> {
    for _ in 0..MAX_DRAWS {
        let secret = draw()?;
        let hash = secret.hash();
        if let Entry::Vacant(slot) = slots.entry(prefix(&hash)) {
            slot.insert(None);
            return Ok((secret, hash));
        }
    }
    Err(KeyError::Exhausted)
}

/// A map by digest [`prefix`], hashed by foldhash with a random seed of each map.
///
/// The prefix is 8 bytes of a SHA-256 digest, already uniform: SipHash over it (the
/// default) costs a verification about as much as the lookup itself, where foldhash's
/// folded multiply costs a nanosecond. Its work is not needed for spread, but a key is:
/// with the prefix as its own hash, a client that can issue and revoke keys (an account
/// API) could keep only those whose prefixes fall in one region of the table, then send
/// tokens ground offline to look up there, and slow lookups a little for everyone. With
/// a seed unknown outside the process, where a prefix lands cannot be told from the
/// prefix.
type Slots<V> = DashMap<u64, V, PrefixState>;

/// The hasher of [`Slots`].
type PrefixState = foldhash::fast::RandomState;

/// How many secrets [`reserve_with`] draws before it gives up.
const MAX_DRAWS: usize = 64;

/// The index key of a digest: its first 8 bytes.
fn prefix(hash: &TokenHash) -> u64 {
    let [a, b, c, d, e, f, g, h, ..] = *hash.as_bytes();
    u64::from_le_bytes([a, b, c, d, e, f, g, h])
}

/// The rest of a digest, after its [`prefix`]: what a key keeps of it.
fn rest(hash: &TokenHash) -> [u64; 3] {
    crate::key::words(&hash.as_bytes()[8..])
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(NEVER)
}

fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
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

    /// Where a prefix lands depends on the store's random key: not the prefix itself,
    /// and not the same in two stores.
    #[test]
    fn prefixes_are_hashed_with_a_key_of_each_store() {
        use std::hash::BuildHasher;

        let (one, two) = (PrefixState::default(), PrefixState::default());
        let prefix = 0x0123_4567_89ab_cdef_u64;
        assert_ne!(one.hash_one(prefix), prefix);
        assert_ne!(one.hash_one(prefix), two.hash_one(prefix));
        assert_eq!(one.hash_one(prefix), one.clone().hash_one(prefix));
        // Neighbouring prefixes spread over the table's low bits (its bucket index).
        let buckets: std::collections::HashSet<u64> =
            (0..64_u64).map(|p| one.hash_one(p) & 0xfff).collect();
        assert!(buckets.len() > 56, "{}", buckets.len());
    }

    #[test]
    fn reserve_gives_up_after_64_draws_that_all_collide() {
        let slots = Slots::<Option<()>>::default();
        let secret = "ph_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789ABCDc6c73a82";
        let (_, hash) = reserve_with(&slots, || Ok(TokenSecret::for_test(secret))).unwrap();
        assert_eq!(hash, TokenHash::of(secret));
        assert_eq!(slots.len(), 1);
        assert!(matches!(slots.get(&prefix(&hash)).as_deref(), Some(None)));

        let mut draws = 0;
        let result = reserve_with(&slots, || {
            draws += 1;
            Ok(TokenSecret::for_test(secret))
        });
        assert!(matches!(result, Err(KeyError::Exhausted)));
        assert_eq!(draws, MAX_DRAWS);
        assert_eq!(slots.len(), 1);

        // A fresh secret on the last allowed draw is still taken.
        let mut draws = 0;
        let (_, other) = reserve_with(&slots, || {
            draws += 1;
            Ok(TokenSecret::for_test(if draws < MAX_DRAWS {
                secret
            } else {
                "other"
            }))
        })
        .unwrap();
        assert_eq!(other, TokenHash::of("other"));
        assert_eq!(slots.len(), 2);
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
        assert!(!s.revoke(&"b".into(), issued.id()));
        assert!(s.revoke(&"a".into(), issued.id()));
        assert!(!s.revoke(&"a".into(), issued.id()));
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
        assert!(matches!(
            s.regenerate(&"b".into(), old.id()),
            Err(StoreError::NotFound(_))
        ));
        let new = s.regenerate(&"a".into(), old.id()).unwrap();
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
            s.regenerate(&"a".into(), 12345),
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
        // Another owner cannot pass it.
        assert!(!s.confirm_second_factor(&"b".into(), issued.id()));
        assert!(s.verify(&t).await.unwrap().is_second_factor_pending());
        assert!(s.confirm_second_factor(&"a".into(), issued.id()));
        assert!(!s.verify(&t).await.unwrap().is_second_factor_pending());
        assert!(!s.confirm_second_factor(&"a".into(), 999));
    }

    #[tokio::test]
    async fn list_shows_metadata_never_secrets() {
        let s = store();
        let a = s.create(NewToken::new("alice".into(), "one")).unwrap();
        let b = s.create(NewToken::new("bob".into(), "two")).unwrap();
        let a2 = s.create(NewToken::new("alice".into(), "three")).unwrap();
        let mine = s.list(&"alice".to_owned());
        assert_eq!(
            mine.iter().map(|i| (i.id, &*i.name)).collect::<Vec<_>>(),
            [(a.id(), "one"), (a2.id(), "three")]
        );
        assert!(mine[0].last_used_at.is_none());
        assert_eq!(s.list(&"bob".to_owned())[0].id, b.id());
        assert!(s.list(&"carol".to_owned()).is_empty());
        let printed = format!("{mine:?}");
        assert!(!printed.contains(a.plain_text_token().secret()));
        assert!(!printed.contains(&a.plain_text_token().hash().to_hex()));
        s.verify(&bearer(a.plain_text_token().as_str()))
            .await
            .unwrap();
        let alice = "alice".to_owned();
        assert!(s.get(&alice, a.id()).unwrap().last_used_at.is_some());
        // Bob's key, asked for as Alice's, does not exist.
        assert!(s.get(&alice, b.id()).is_none());
    }

    /// Milliseconds since the epoch of a time the store reported.
    fn ms(t: SystemTime) -> u64 {
        to_ms(t)
    }

    #[tokio::test]
    async fn a_listing_shows_exact_times_to_the_millisecond() {
        let s = store();
        let alice = "alice".to_owned();
        // Ids 1 and 2 first: the key looked at below is not the first one.
        s.create(NewToken::new("bob".into(), "x")).unwrap();
        s.create(NewToken::new("bob".into(), "y")).unwrap();
        let expires = UNIX_EPOCH + Duration::from_millis(now_ms() + 3_600_123);
        let before = now_ms();
        let expiring = s
            .create(NewToken::new(alice.clone(), "expiring").expires_at(expires))
            .unwrap();
        let never = s.create(NewToken::new(alice.clone(), "never")).unwrap();
        let after = now_ms();
        assert_eq!((expiring.id(), never.id()), (3, 4));

        let listed = s.list(&alice);
        assert_eq!(listed.len(), 2);
        let (e, n) = (&listed[0], &listed[1]);
        assert_eq!((e.id, &*e.name, &e.owner), (3, "expiring", &alice));
        assert_eq!(e.expires_at, Some(expires));
        assert_eq!(n.expires_at, None);
        for info in &listed {
            assert!((before..=after).contains(&ms(info.created_at)));
            assert_eq!(info.last_used_at, None);
            assert!(!info.second_factor_pending);
        }

        // Used: `last_used_at` is the time of the use, to the millisecond.
        let before = now_ms();
        s.verify(&bearer(expiring.plain_text_token().as_str()))
            .await
            .unwrap();
        let after = now_ms();
        let used = s.get(&alice, expiring.id()).unwrap();
        let at = ms(used.last_used_at.unwrap());
        assert!(
            (before..=after).contains(&at),
            "{before} <= {at} <= {after}"
        );
        assert_eq!(used.expires_at, Some(expires));
        // The other key was not used.
        assert_eq!(s.get(&alice, never.id()).unwrap().last_used_at, None);
        assert_eq!(s.list(&alice)[0].last_used_at, used.last_used_at);
    }

    #[tokio::test]
    async fn last_used_at_is_written_at_most_once_a_second() {
        let s = store();
        let issued = s.create(NewToken::new("a".into(), "k")).unwrap();
        let token = bearer(issued.plain_text_token().as_str());
        let last_used = || {
            ms(s.get(&"a".into(), issued.id())
                .unwrap()
                .last_used_at
                .unwrap())
        };
        // A second use in the same second as the first leaves the first one's time.
        for attempt in 0.. {
            assert!(attempt < 20, "no two uses fell in one second");
            let before = now_ms();
            s.verify(&token).await.unwrap();
            let first = last_used();
            // The coarse clock may lag the exact one by a tick.
            assert!(first + COARSE_LAG_MS >= before, "{first} >= {before}");
            std::thread::sleep(Duration::from_millis(5));
            let before = now_ms();
            s.verify(&token).await.unwrap();
            let after = now_ms();
            if before / 1000 == first / 1000 && after / 1000 == first / 1000 {
                assert_eq!(last_used(), first);
                break;
            }
            // The second use fell in another second: try again.
            std::thread::sleep(Duration::from_millis(50));
        }
        // A use in a later second is written, with its own time.
        let first = last_used();
        std::thread::sleep(Duration::from_millis(1000 - first % 1000 + 5));
        let before = now_ms();
        s.verify(&token).await.unwrap();
        let after = now_ms();
        let second = last_used();
        assert!(second / 1000 > first / 1000);
        assert!(
            (before - COARSE_LAG_MS..=after).contains(&second),
            "{before} <= {second} <= {after}"
        );
    }

    /// The most the coarse clock of `last_used_at` lags the exact one in these tests: a
    /// tick is 4 ms at the slowest kernel setting.
    const COARSE_LAG_MS: u64 = 10;

    #[tokio::test]
    async fn the_principal_carries_its_keys_id() {
        let s = store();
        for _ in 0..4 {
            s.create(NewToken::new("b".into(), "k")).unwrap();
        }
        let issued = s.create(NewToken::new("a".into(), "k")).unwrap();
        assert_eq!(issued.id(), 5);
        let by_token = s
            .verify(&bearer(issued.plain_text_token().as_str()))
            .await
            .unwrap();
        assert_eq!(by_token.id(), 5);
        let by_secret = s
            .verify_now(bearer(issued.plain_text_token().secret()).as_borrowed())
            .unwrap()
            .unwrap();
        assert_eq!(by_secret.id(), 5);
        assert_eq!(by_secret.owner(), "a");
    }

    #[test]
    fn prune_expired_deletes_a_key_only_once_its_grace_is_over() {
        let s = store();
        let now = now_ms();
        let expires = now - 10_000;
        let key = s
            .create(
                NewToken::new("a".into(), "k")
                    .expires_at(UNIX_EPOCH + Duration::from_millis(expires)),
            )
            .unwrap();
        let grace = Duration::from_millis(2_000);
        // `expires_at` plus the grace is now: not yet past.
        assert_eq!(s.prune_expired_at(grace, expires + 2_000), 0);
        assert_eq!(s.len(), 1);
        assert_eq!(s.prune_expired_at(grace, expires + 2_001), 1);
        assert!(s.get(&"a".into(), key.id()).is_none());
    }

    #[test]
    fn prune_expired_deletes_a_key_only_once_its_maximum_age_and_grace_are_over() {
        let s: MemoryStore<String> = MemoryStore::builder()
            .max_age(Duration::from_millis(5_000))
            .build();
        let key = s.create(NewToken::new("a".into(), "k")).unwrap();
        let created = ms(s.get(&"a".into(), key.id()).unwrap().created_at);
        let grace = Duration::from_millis(2_000);
        assert_eq!(s.prune_expired_at(grace, created + 7_000), 0);
        assert_eq!(s.len(), 1);
        assert_eq!(s.prune_expired_at(grace, created + 7_001), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn a_digest_is_split_into_its_index_and_the_rest_it_keeps() {
        let bytes: [u8; 32] = std::array::from_fn(|i| u8::try_from(i + 1).unwrap());
        let hash = TokenHash::from_bytes(bytes);
        assert_eq!(prefix(&hash), u64::from_le_bytes([1, 2, 3, 4, 5, 6, 7, 8]));
        let word = |at: usize| u64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap());
        assert_eq!(rest(&hash), [word(8), word(16), word(24)]);
    }

    #[test]
    fn debug_shows_the_count_the_prefix_and_the_maximum_age() {
        let s: MemoryStore<String> = MemoryStore::builder()
            .key_generator(KeyGenerator::with_prefix("ph_").unwrap())
            .max_age(Duration::from_secs(60))
            .build();
        assert!(s.is_empty());
        s.create(NewToken::new("a".into(), "k")).unwrap();
        assert!(!s.is_empty());
        assert_eq!(s.len(), 1);
        assert_eq!(
            format!("{s:?}"),
            r#"MemoryStore { keys: 1, prefix: "ph_", max_age_ms: Some(60000) }"#
        );
    }

    #[tokio::test]
    async fn the_store_trait_answers_what_the_methods_do() {
        let s = store();
        let alice = "alice".to_owned();
        let now = SystemTime::now();
        let mut ids = Vec::new();
        for name in ["one", "two", "three"] {
            let key = TokenStore::create(
                &s,
                NewToken::new(alice.clone(), name).expires_at(now - Duration::from_secs(7200)),
            )
            .await
            .unwrap();
            ids.push(key.id());
        }
        let listed = TokenStore::list(&s, &alice).await.unwrap();
        assert_eq!(listed.iter().map(|i| i.id).collect::<Vec<_>>(), ids);
        assert_eq!(&*listed[1].name, "two");
        TokenStore::revoke(&s, &alice, ids[0]).await.unwrap();
        // Two keys expired two hours ago: both pruned, and the count says so.
        assert_eq!(
            TokenStore::prune_expired(&s, Duration::from_secs(60))
                .await
                .unwrap(),
            2
        );
        for _ in 0..3 {
            TokenStore::create(&s, NewToken::new(alice.clone(), "k"))
                .await
                .unwrap();
        }
        assert_eq!(TokenStore::revoke_all(&s, &alice).await.unwrap(), 3);
        assert_eq!(TokenStore::revoke_all(&s, &alice).await.unwrap(), 0);
        assert_eq!(count(7), 7);
    }

    #[tokio::test]
    async fn revoke_all_deletes_only_that_owners_keys() {
        let s = store();
        let a1 = s.create(NewToken::new("alice".into(), "one")).unwrap();
        let a2 = s.create(NewToken::new("alice".into(), "two")).unwrap();
        let b = s.create(NewToken::new("bob".into(), "three")).unwrap();
        assert_eq!(s.revoke_all(&"alice".into()), 2);
        assert_eq!(s.revoke_all(&"alice".into()), 0);
        for gone in [&a1, &a2] {
            assert_eq!(
                reason(s.verify(&bearer(gone.plain_text_token().as_str())).await),
                "unknown"
            );
        }
        assert_eq!(
            reason(s.verify(&bearer(b.plain_text_token().as_str())).await),
            "ok"
        );
        assert!(s.list(&"alice".into()).is_empty());
        assert_eq!(s.len(), 1);
        // The index keeps no entry for an owner without keys.
        assert!(s.revoke(&"bob".into(), b.id()));
        assert!(s.inner.by_owner.is_empty());
    }

    #[tokio::test]
    async fn prune_expired_deletes_keys_expired_longer_than_asked() {
        let s = store();
        let now = SystemTime::now();
        let long_ago = s
            .create(NewToken::new("a".into(), "k").expires_at(now - Duration::from_secs(7200)))
            .unwrap();
        let recently = s
            .create(NewToken::new("a".into(), "k").expires_at(now - Duration::from_secs(60)))
            .unwrap();
        let later = s
            .create(NewToken::new("a".into(), "k").expires_at(now + Duration::from_secs(60)))
            .unwrap();
        let never = s.create(NewToken::new("b".into(), "k")).unwrap();
        assert_eq!(s.prune_expired(Duration::from_secs(3600)), 1);
        let left: Vec<_> = s.list(&"a".into()).iter().map(|i| i.id).collect();
        assert_eq!(left, [recently.id(), later.id()]);
        assert!(s.get(&"a".into(), long_ago.id()).is_none());
        assert_eq!(s.prune_expired(Duration::ZERO), 1);
        assert_eq!(s.list(&"a".into())[0].id, later.id());
        assert_eq!(s.list(&"b".into())[0].id, never.id());
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn prune_expired_counts_the_maximum_age_from_creation() {
        let s: MemoryStore<String> = MemoryStore::builder()
            .max_age(Duration::from_millis(1))
            .build();
        let old = s.create(NewToken::new("a".into(), "k")).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(s.prune_expired(Duration::from_secs(60)), 0);
        assert_eq!(s.prune_expired(Duration::ZERO), 1);
        assert!(s.get(&"a".into(), old.id()).is_none());
        assert!(s.inner.by_owner.is_empty());
    }

    #[tokio::test]
    async fn the_store_trait_scopes_every_key_by_owner() {
        let s = store();
        let alice = "alice".to_owned();
        let bob = "bob".to_owned();
        let key = TokenStore::create(&s, NewToken::new(alice.clone(), "k"))
            .await
            .unwrap();
        let id = key.id();
        // To Bob, Alice's key answers exactly as a key that does not exist.
        for other in [&bob] {
            assert!(
                matches!(TokenStore::get(&s, other, id).await, Err(StoreError::NotFound(i)) if i == id)
            );
            assert!(
                matches!(TokenStore::revoke(&s, other, id).await, Err(StoreError::NotFound(i)) if i == id)
            );
            assert!(
                matches!(TokenStore::regenerate(&s, other, id).await, Err(StoreError::NotFound(i)) if i == id)
            );
            assert!(matches!(
                TokenStore::confirm_second_factor(&s, other, id).await,
                Err(StoreError::NotFound(i)) if i == id
            ));
            assert_eq!(TokenStore::revoke_all(&s, other).await.unwrap(), 0);
            assert!(TokenStore::list(&s, other).await.unwrap().is_empty());
        }
        assert_eq!(
            reason(s.verify(&bearer(key.plain_text_token().as_str())).await),
            "ok"
        );
        assert_eq!(TokenStore::get(&s, &alice, id).await.unwrap().id, id);
        TokenStore::revoke(&s, &alice, id).await.unwrap();
        assert!(matches!(
            TokenStore::revoke(&s, &alice, id).await,
            Err(StoreError::NotFound(_))
        ));
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
                    let owner = format!("user{t}");
                    if i % 2 == 0 {
                        assert!(s.revoke(&owner, issued.id()));
                        assert!(s.verify(&token).await.is_err());
                    } else {
                        let new = s.regenerate(&owner, issued.id()).unwrap();
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
        for t in 0..32 {
            let owner = format!("user{t}");
            let mine = s.list(&owner);
            assert_eq!(mine.len(), 100);
            for info in mine {
                assert_eq!(s.get(&owner, info.id).unwrap().id, info.id);
            }
        }
    }
}

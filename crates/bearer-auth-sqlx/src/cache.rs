//! The cache in front of the one query on the request path.
//!
//! Two caches of [quick_cache](quick_cache::sync::Cache), both bounded in entries, keyed
//! by the digest of the presented secret:
//!
//! - **rows**: the rows of keys in force (not expired, not too old), as the lookup read
//!   them. Only a token whose secret is a real key's gets an entry here, so no flood of
//!   made-up tokens can push a good key out. A hit still goes through every check of a
//!   row from the database (the id, `expires_at`, the maximum age), against the clock of
//!   that moment.
//! - **refusals**: digests with no row in force (no such row, another `tokenable_type`,
//!   expired), bounded on its own. quick_cache's admission (a small queue for new
//!   entries, promotion of those read again, a ghost list of recent evictions) keeps a
//!   token retried again and again (a client stuck on a revoked key) over the one-off
//!   guesses of a flood.
//!
//! quick_cache has no time to live of its own, and keeps no log of reads: a hit is one
//! lookup under a shard's read lock. Each entry carries the time its query started, and
//! a hit checks it against the clock reading the verification makes anyway (for
//! `expires_at`): no clock read of the cache's own. An entry past its time to live is a
//! miss (and removed); a clock stepped back before an entry's time makes it a miss too.
//!
//! The synchronous cache is used because [`verify_now`](bearer_auth::TokenVerifier::verify_now)
//! must answer a hit without awaiting. Identical concurrent misses are joined here: the
//! first runs the query, the others await its answer ([`Cache::load`]). The lookup in
//! flight stays there to be joined until its answer is in, or until the last of the
//! requests waiting for it is gone: one that gives up (its client went away) leaves it to
//! the others. Should the one running the query give up, the next waiting runs it anew.
//!
//! An eviction (a write on this instance, a notification) takes effect at once, for that
//! digest only: the entries go, and the lookup of that digest in flight is taken out of
//! the ones in flight, so that no later request joins it and what it brings back is not
//! kept. An answer is kept only while its lookup is still the one in flight for its
//! digest, checked and stored under the lock an eviction takes to take the lookup out:
//! the eviction comes either before (nothing is kept) or after the answer is stored (and
//! removes it), so a key revoked through this store is never answered from the cache once
//! the revocation returned. Another digest's eviction, or one's own key regenerated again
//! and again, costs a lookup in flight nothing.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bearer_auth::{InvalidReason, TokenHash};
use dashmap::{DashMap, Entry};
use quick_cache::sync::Cache as Quick;
use tokio::sync::OnceCell;

use crate::{error::BackendError, store::TokenRow};

/// How long a cached answer is used, unless told otherwise: the longest a key revoked on
/// another instance stays accepted here without the PostgreSQL notifications.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5);

/// How many keys in force are cached at most, unless told otherwise.
pub const DEFAULT_CACHE_CAPACITY: u64 = 10_000;

/// How many refused digests are cached at most, unless told otherwise.
pub const DEFAULT_REFUSAL_CACHE_CAPACITY: u64 = 10_000;

/// What the lookup of a digest found, as the cache keeps it.
#[derive(Debug, Clone)]
pub(crate) enum Found {
    /// A row in force: accepted once the presented id matches and the clock agrees.
    Row(Arc<TokenRow>),
    /// No row in force for this digest.
    Refused(InvalidReason),
}

/// The answer of one lookup, shared by every request that waited for it.
pub(crate) type Loaded = Result<Found, Arc<BackendError>>;

/// How the cache is sized.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CacheConfig {
    pub(crate) ttl: Duration,
    pub(crate) capacity: u64,
    pub(crate) refusal_capacity: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl: DEFAULT_CACHE_TTL,
            capacity: DEFAULT_CACHE_CAPACITY,
            refusal_capacity: DEFAULT_REFUSAL_CACHE_CAPACITY,
        }
    }
}

/// A cached answer and when the query that found it started.
#[derive(Clone)]
struct Kept<V> {
    value: V,
    since: SystemTime,
}

/// One bounded cache of answers with a time to live.
struct Bounded<V> {
    entries: Quick<TokenHash, Kept<V>>,
    ttl: Duration,
    /// When the stale entries were last swept out, in ms since the Unix epoch.
    swept: AtomicU64,
}

impl<V: Clone> Bounded<V> {
    fn new(capacity: u64, ttl: Duration) -> Option<Self> {
        (capacity > 0 && !ttl.is_zero()).then(|| Self {
            entries: Quick::new(usize::try_from(capacity).unwrap_or(usize::MAX)),
            ttl,
            swept: AtomicU64::new(0),
        })
    }

    /// Whether an entry kept `since` is still in force at `now`.
    fn fresh(&self, since: SystemTime, now: SystemTime) -> bool {
        now.duration_since(since).is_ok_and(|age| age < self.ttl)
    }

    /// The entry for `digest` if in force at `now`; with `capped`, only if also younger
    /// than [`DEFAULT_CACHE_TTL`].
    fn get(&self, digest: &TokenHash, now: SystemTime, capped: bool) -> Option<V> {
        let kept = self.entries.get(digest)?;
        let in_force = if capped {
            now.duration_since(kept.since)
                .is_ok_and(|age| age < self.ttl.min(DEFAULT_CACHE_TTL))
        } else {
            self.fresh(kept.since, now)
        };
        if in_force {
            return Some(kept.value);
        }
        // Gone stale: taken out unless a fresher answer replaced it meanwhile.
        self.entries
            .remove_if(digest, |current| current.since == kept.since);
        None
    }

    fn insert(&self, digest: TokenHash, value: V, since: SystemTime) {
        self.sweep(since);
        self.entries.insert(digest, Kept { value, since });
    }

    /// Takes the stale entries out, at most once per tenth of the time to live (a scan
    /// of the cache, about a millisecond at 10,000 entries). quick_cache has no expiry:
    /// an entry past its time to live goes only when it is read again or pushed out. A
    /// full cache of such entries would leave new ones only its small admission queue,
    /// so that a flood of new tokens, each sent a few times within the time to live,
    /// pushed its own refusals out before their repeats came and made a query for each
    /// repeat. Swept, the stale entries make room first.
    fn sweep(&self, now: SystemTime) {
        let Ok(now_ms) = now.duration_since(UNIX_EPOCH).map(|d| d.as_millis()) else {
            return;
        };
        let now_ms = u64::try_from(now_ms).unwrap_or(u64::MAX);
        let every = u64::try_from(self.ttl.as_millis() / 10)
            .unwrap_or(u64::MAX)
            .max(1);
        let last = self.swept.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < every
            || self
                .swept
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.entries.retain(|_, kept| self.fresh(kept.since, now));
    }

    /// How many entries are in force at `now`, the stale ones removed first.
    fn count(&self, now: SystemTime) -> u64 {
        self.entries.retain(|_, kept| self.fresh(kept.since, now));
        u64::try_from(self.entries.len()).unwrap_or(u64::MAX)
    }
}

/// A lookup in flight: its answer once in, and how many requests wait for it.
#[derive(Default)]
struct Flight {
    answer: OnceCell<Loaded>,
    /// The requests that joined it and have not left, counted (up and down) only under
    /// the lock of its shard of the lookups in flight, while it is there.
    waiters: AtomicUsize,
}

/// The two caches, the lookups in flight, and the counters.
pub(crate) struct Cache {
    rows: Option<Bounded<Arc<TokenRow>>>,
    refusals: Option<Bounded<InvalidReason>>,
    /// The lookup in flight for each digest. Taken out by an eviction of the digest: an
    /// answer is kept only while its lookup is still here.
    in_flight: DashMap<TokenHash, Arc<Flight>>,
    /// Queries run by [`load`](Self::load).
    lookups: AtomicU64,
    /// Set while the notifications listener is away (lost its connection, not back yet):
    /// evictions sent meanwhile are lost, so an entry is used only within
    /// [`DEFAULT_CACHE_TTL`], whatever longer time to live the notifications allowed.
    unwatched: AtomicBool,
    pub(crate) config: CacheConfig,
}

impl Cache {
    pub(crate) fn new(config: CacheConfig) -> Self {
        Self {
            rows: Bounded::new(config.capacity, config.ttl),
            refusals: Bounded::new(config.refusal_capacity, config.ttl),
            in_flight: DashMap::new(),
            unwatched: AtomicBool::new(false),
            lookups: AtomicU64::new(0),
            config,
        }
    }

    /// The cached answer for `digest` still in force at `now` (the caller's reading of
    /// the clock), if any. Never waits.
    pub(crate) fn get(&self, digest: &TokenHash, now: SystemTime) -> Option<Found> {
        let capped = self.unwatched.load(Ordering::Acquire);
        if let Some(row) = self
            .rows
            .as_ref()
            .and_then(|rows| rows.get(digest, now, capped))
        {
            return Some(Found::Row(row));
        }
        self.refusals
            .as_ref()
            .and_then(|refusals| refusals.get(digest, now, capped))
            .map(Found::Refused)
    }

    /// Whether the notifications listener is away ([`unwatched`](Self::unwatched)).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn set_unwatched(&self, unwatched: bool) {
        self.unwatched.store(unwatched, Ordering::Release);
    }

    /// The answer for `digest`: from the cache, or from `query`, run once for all the
    /// callers that arrive while it runs, its answer kept (its time to live counted from
    /// the start of the query) unless the digest was evicted meanwhile. A failure is
    /// shared by those callers and never kept. A caller that gives up (its future
    /// dropped) leaves the query to the others.
    pub(crate) async fn load<F, Fut>(&self, digest: TokenHash, query: F) -> Loaded
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Loaded>,
    {
        let joined = Joined::new(&self.in_flight, digest);
        let flight = &joined.flight;
        let answer = flight
            .answer
            .get_or_init(|| async {
                let since = SystemTime::now();
                // Kept by a query that ended just before this one was joined.
                if let Some(found) = self.get(&digest, since) {
                    return Ok(found);
                }
                self.lookups.fetch_add(1, Ordering::Relaxed);
                let loaded = query().await;
                if let Ok(found) = &loaded {
                    self.keep(digest, flight, found, since);
                }
                loaded
            })
            .await
            .clone();
        #[cfg(test)]
        tests::after_answer();
        answer
    }

    /// Keeps an answer whose query started at `since`, unless `flight` is no longer the
    /// digest's lookup in flight (an eviction took it out). Stored under the read lock of
    /// the digest's shard of the lookups in flight, which an eviction takes for writing to
    /// take the lookup out before it removes the entries: the eviction comes either
    /// before the check (nothing is stored) or after the entry is stored (and removes
    /// it). Never is an evicted answer in the cache, not even for a moment.
    fn keep(&self, digest: TokenHash, flight: &Arc<Flight>, found: &Found, since: SystemTime) {
        let Some(current) = self.in_flight.get(&digest) else {
            return;
        };
        if !Arc::ptr_eq(&current, flight) {
            return;
        }
        match found {
            Found::Row(row) => {
                if let Some(rows) = &self.rows {
                    rows.insert(digest, Arc::clone(row), since);
                }
            }
            Found::Refused(reason) => {
                if let Some(refusals) = &self.refusals {
                    refusals.insert(digest, *reason, since);
                }
            }
        }
        drop(current);
    }

    fn forget(&self, digest: &TokenHash) {
        if let Some(rows) = &self.rows {
            rows.entries.remove(digest);
        }
        if let Some(refusals) = &self.refusals {
            refusals.entries.remove(digest);
        }
    }

    /// Forgets `digest` (a row written on this instance, or a notification): the next
    /// request for it queries the database. Its lookup in flight is taken out first (no
    /// later request joins it, its answer is not kept), then its entries.
    pub(crate) fn evict(&self, digest: &TokenHash) {
        self.in_flight.remove(digest);
        self.forget_and_leave(digest);
    }

    /// The rest of [`evict`](Self::evict): the entries go, then the lookup in flight
    /// again. A lookup begun since the first removal may have answered from the entry
    /// just forgotten; nobody may join it once the eviction returns.
    fn forget_and_leave(&self, digest: &TokenHash) {
        self.forget(digest);
        self.in_flight.remove(digest);
    }

    /// Forgets everything (the notifications listener reconnected: what was sent while it
    /// was away is lost).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn evict_all(&self) {
        self.in_flight.clear();
        if let Some(rows) = &self.rows {
            rows.entries.clear();
        }
        if let Some(refusals) = &self.refusals {
            refusals.entries.clear();
        }
        // Again, as in `evict`: no lookup answered from a forgotten entry stays joinable.
        self.in_flight.clear();
    }

    /// The counters, with the entries past their time to live removed first so that the
    /// entry counts are current.
    pub(crate) fn stats(&self) -> CacheStats {
        let now = SystemTime::now();
        CacheStats {
            rows: self.rows.as_ref().map_or(0, |rows| rows.count(now)),
            refusals: self
                .refusals
                .as_ref()
                .map_or(0, |refusals| refusals.count(now)),
            lookups: self.lookups.load(Ordering::Relaxed),
            listener_away: self.unwatched.load(Ordering::Acquire),
        }
    }
}

/// A caller of [`Cache::load`] joined to the lookup in flight for its digest (started by
/// it, when there was none).
struct Joined<'a> {
    in_flight: &'a DashMap<TokenHash, Arc<Flight>>,
    digest: TokenHash,
    flight: Arc<Flight>,
}

impl<'a> Joined<'a> {
    fn new(in_flight: &'a DashMap<TokenHash, Arc<Flight>>, digest: TokenHash) -> Self {
        let entry = in_flight.entry(digest).or_default();
        entry.waiters.fetch_add(1, Ordering::Relaxed);
        let flight = Arc::clone(&entry);
        drop(entry);
        Self {
            in_flight,
            digest,
            flight,
        }
    }
}

/// Leaving: the lookup is taken out of the ones in flight once its answer is in (later
/// callers find it in the cache, or start a query of their own), or when its last
/// waiting caller is gone (nobody awaits the query any more: it was dropped with the
/// last future). A caller that gives up while others still wait leaves it there, to be
/// joined. Nothing is done to a lookup an eviction already took out.
impl Drop for Joined<'_> {
    fn drop(&mut self) {
        if let Entry::Occupied(entry) = self.in_flight.entry(self.digest)
            && Arc::ptr_eq(entry.get(), &self.flight)
        {
            let left = self.flight.waiters.fetch_sub(1, Ordering::Relaxed) <= 1;
            if left || self.flight.answer.initialized() {
                entry.remove();
            }
        }
    }
}

/// What the cache of a [`SqlStore`](crate::SqlStore) holds, and how many lookups it ran:
/// [`SqlStore::cache_stats`](crate::SqlStore::cache_stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Keys in force cached.
    pub rows: u64,
    /// Refused digests cached.
    pub refusals: u64,
    /// Queries by digest run on the request path since the store was built: every
    /// database read a verification made.
    pub lookups: u64,
    /// The notifications listener lost its connection and has not got another yet:
    /// meanwhile the cache answers only within [`DEFAULT_CACHE_TTL`]. `false` without a
    /// listener.
    pub listener_away: bool,
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use bearer_auth::Abilities;

    use super::*;

    fn row(id: u64) -> Found {
        Found::Row(Arc::new(TokenRow {
            id,
            owner: 7,
            abilities: Abilities::all(),
            expires_at: None,
            created_at: None,
            second_factor_pending: false,
            noted: std::sync::atomic::AtomicI64::new(0),
        }))
    }

    /// A full cache of entries read often (so kept by quick_cache's admission) whose
    /// time to live has run out: new refusals, each repeated, are kept for their repeats
    /// (the stale entries are swept out first), not pushed out of the small admission
    /// queue before their repeat comes (a query per repeat under a flood).
    #[test]
    fn stale_entries_make_room_for_new_ones() {
        let ttl = Duration::from_secs(5);
        let refusals = Bounded::new(1000, ttl).unwrap();
        let digest = |n: u32| TokenHash::of(&format!("token {n}"));
        let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        // 700 entries in a cache of 1000 (quick_cache's 8 or so shards each hold an
        // eighth: a margin for an uneven spread), each read twice.
        for n in 0..700 {
            refusals.insert(digest(n), InvalidReason::Unknown, start);
        }
        for _ in 0..2 {
            for n in 0..700 {
                refusals.get(&digest(n), start, false);
            }
        }
        // The time to live ran out: a flood of 700 new tokens, each sent twice.
        let later = start + ttl + Duration::from_secs(1);
        let mut kept = 0;
        for n in 700..1400 {
            refusals.insert(digest(n), InvalidReason::Unknown, later);
        }
        for n in 700..1400 {
            kept += usize::from(refusals.get(&digest(n), later, false).is_some());
        }
        assert_eq!(kept, 700);
    }

    /// An entry is in force for exactly its time to live: at `since + ttl - 1 ms` yes, at
    /// `since + ttl` no, in both the plain and the capped reads.
    #[test]
    fn an_entry_is_in_force_until_its_time_to_live_has_passed() {
        let ttl = Duration::from_secs(2);
        let cache = Bounded::new(10, ttl).unwrap();
        let digest = TokenHash::of("a");
        let since = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        cache.insert(digest, InvalidReason::Unknown, since);
        let last = since + ttl - Duration::from_millis(1);
        for capped in [false, true] {
            assert_eq!(
                cache.get(&digest, since, capped),
                Some(InvalidReason::Unknown)
            );
            assert_eq!(
                cache.get(&digest, last, capped),
                Some(InvalidReason::Unknown)
            );
        }
        assert!(cache.fresh(since, last));
        assert!(!cache.fresh(since, since + ttl));
        // Read before it was kept (a clock gone back): not in force either.
        assert!(!cache.fresh(since, since - Duration::from_millis(1)));
        assert_eq!(cache.entries.len(), 1);
        assert_eq!(cache.get(&digest, since + ttl, false), None);
        // The stale entry read is taken out.
        assert_eq!(cache.entries.len(), 0);
        cache.insert(digest, InvalidReason::Unknown, since);
        assert_eq!(cache.get(&digest, since + ttl, true), None);
        assert_eq!(cache.entries.len(), 0);
    }

    /// Stale entries are swept out when an answer is stored, at most once per tenth of
    /// the time to live.
    #[test]
    fn stale_entries_are_swept_at_most_once_per_tenth_of_the_time_to_live() {
        let ttl = Duration::from_secs(2);
        let cache = Bounded::new(100, ttl).unwrap();
        let digest = |n: u32| TokenHash::of(&format!("token {n}"));
        let ms = Duration::from_millis;
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        cache.insert(digest(1), InvalidReason::Unknown, t0);
        cache.insert(digest(2), InvalidReason::Unknown, t0);
        // 1 and 2 stale: the next answer stored sweeps them out.
        let t1 = t0 + ttl;
        cache.insert(digest(3), InvalidReason::Unknown, t1);
        assert_eq!(cache.entries.len(), 1);
        // An answer kept since long ago (stored with its own time, no sweep then).
        cache.insert(digest(4), InvalidReason::Unknown, t1 - ttl);
        // 199 ms after the sweep: none.
        cache.insert(digest(5), InvalidReason::Unknown, t1 + ms(199));
        assert_eq!(cache.entries.len(), 3);
        // 200 ms after it: 4 goes.
        cache.insert(digest(6), InvalidReason::Unknown, t1 + ms(200));
        assert_eq!(cache.entries.len(), 3);
        assert_eq!(cache.get(&digest(4), t1, false), None);
        for n in [3, 5, 6] {
            assert!(cache.get(&digest(n), t1 + ms(200), false).is_some(), "{n}");
        }
    }

    thread_local! {
        /// Run by `load` once it has its answer, before it leaves the lookup: stands for
        /// a request preempted at that point.
        static AFTER_ANSWER: std::cell::RefCell<Option<Box<dyn FnOnce()>>> =
            std::cell::RefCell::new(None);
    }

    pub(super) fn after_answer() {
        if let Some(hook) = AFTER_ANSWER.with(|h| h.borrow_mut().take()) {
            hook();
        }
    }

    fn now_or_never<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        match future
            .as_mut()
            .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
        {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("pending"),
        }
    }

    /// A request that misses just as `evict` runs may answer from the entry `evict` is
    /// about to forget; a request that starts once `evict` returned never joins it.
    #[test]
    fn no_request_after_an_eviction_joins_a_lookup_answered_from_the_evicted_entry() {
        let cache = Arc::new(Cache::new(CacheConfig::default()));
        let digest = TokenHash::of("a");
        now_or_never(cache.load(digest, || async { Ok(row(1)) })).unwrap();
        // The first half of `evict` (the revocation committed: version 2 in the table).
        cache.in_flight.remove(&digest);
        let later = Arc::new(std::sync::Mutex::new(None));
        AFTER_ANSWER.with(|hook| {
            let (cache, later) = (Arc::clone(&cache), Arc::clone(&later));
            *hook.borrow_mut() = Some(Box::new(move || {
                // The rest of `evict`: then `revoke` returns, and another request comes.
                cache.forget_and_leave(&digest);
                let answer = now_or_never(cache.load(digest, || async { Ok(row(2)) }));
                *later.lock().unwrap() = id_of(answer.ok());
            }));
        });
        // The request that missed during `evict`: answered from version 1.
        now_or_never(cache.load(digest, || async { Ok(row(2)) })).unwrap();
        assert_eq!(*later.lock().unwrap(), Some(2));
    }

    fn id_of(found: Option<Found>) -> Option<u64> {
        match found {
            Some(Found::Row(row)) => Some(row.id),
            _ => None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn identical_concurrent_misses_run_one_query() {
        let cache = Arc::new(Cache::new(CacheConfig::default()));
        let runs = Arc::new(AtomicUsize::new(0));
        let digest = TokenHash::of("a");
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (cache, runs) = (Arc::clone(&cache), Arc::clone(&runs));
            tasks.push(tokio::spawn(async move {
                cache
                    .load(digest, || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(row(1))
                    })
                    .await
            }));
        }
        for task in tasks {
            assert!(matches!(task.await.unwrap(), Ok(Found::Row(_))));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(cache.stats().lookups, 1);
        assert!(cache.in_flight.is_empty());
    }

    #[tokio::test]
    async fn a_failure_is_not_kept() {
        let cache = Cache::new(CacheConfig::default());
        let digest = TokenHash::of("a");
        let failed = cache
            .load(digest, || async {
                Err(Arc::new(BackendError {
                    operation: "token lookup",
                    engine: crate::Engine::Sqlite,
                    failure: crate::error::Failure::Sql(sqlx::Error::PoolClosed),
                }))
            })
            .await;
        assert!(failed.is_err());
        assert!(cache.get(&digest, SystemTime::now()).is_none());
        assert!(cache.load(digest, || async { Ok(row(1)) }).await.is_ok());
        assert_eq!(id_of(cache.get(&digest, SystemTime::now())), Some(1));
    }

    #[tokio::test]
    async fn an_answer_loaded_across_an_eviction_is_not_kept() {
        let cache = Cache::new(CacheConfig::default());
        let digest = TokenHash::of("a");
        let loaded = cache
            .load(digest, || async {
                // The row is revoked while its old version is on its way back.
                cache.evict(&digest);
                Ok(row(1))
            })
            .await;
        assert!(matches!(loaded, Ok(Found::Row(_))));
        assert!(cache.get(&digest, SystemTime::now()).is_none());
        // Another digest's eviction meanwhile costs this one its entry, nothing else.
        let other = TokenHash::of("b");
        cache.evict(&other);
        cache.load(digest, || async { Ok(row(1)) }).await.unwrap();
        assert_eq!(id_of(cache.get(&digest, SystemTime::now())), Some(1));
    }

    #[tokio::test]
    async fn another_digests_eviction_keeps_an_answer_in_flight() {
        let cache = Cache::new(CacheConfig::default());
        let (digest, other) = (TokenHash::of("a"), TokenHash::of("b"));
        cache
            .load(digest, || async {
                cache.evict(&other);
                Ok(row(1))
            })
            .await
            .unwrap();
        assert_eq!(id_of(cache.get(&digest, SystemTime::now())), Some(1));
        // Everything evicted: not kept.
        let third = TokenHash::of("c");
        cache
            .load(third, || async {
                cache.evict_all();
                Ok(row(3))
            })
            .await
            .unwrap();
        assert!(cache.get(&third, SystemTime::now()).is_none());
    }

    /// The answer of a query across which its digest was evicted is never seen, not even
    /// for a moment, by a reader on another thread.
    #[test]
    fn an_answer_loaded_across_an_eviction_is_never_seen() {
        use std::sync::atomic::AtomicBool;
        let cache = Arc::new(Cache::new(CacheConfig::default()));
        let digest = TokenHash::of("a");
        let done = Arc::new(AtomicBool::new(false));
        let reader = std::thread::spawn({
            let (cache, done) = (Arc::clone(&cache), Arc::clone(&done));
            move || {
                let mut seen = 0_u64;
                while !done.load(Ordering::Relaxed) {
                    if cache.get(&digest, SystemTime::now()).is_some() {
                        seen += 1;
                    }
                }
                seen
            }
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            for _ in 0..50_000 {
                cache
                    .load(digest, || async {
                        cache.evict(&digest);
                        Ok(row(1))
                    })
                    .await
                    .unwrap();
            }
        });
        done.store(true, Ordering::Relaxed);
        assert_eq!(reader.join().unwrap(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_waiter_leaves_the_others_joined() {
        let cache = Arc::new(Cache::new(CacheConfig::default()));
        let runs = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let digest = TokenHash::of("a");
        let spawn = || {
            let (cache, runs, release) =
                (Arc::clone(&cache), Arc::clone(&runs), Arc::clone(&release));
            tokio::spawn(async move {
                cache
                    .load(digest, || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        drop(release.acquire().await);
                        Ok(row(1))
                    })
                    .await
            })
        };
        let first = spawn();
        let mut others = Vec::new();
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let quitter = spawn();
            tokio::time::sleep(Duration::from_millis(10)).await;
            quitter.abort();
            assert!(quitter.await.unwrap_err().is_cancelled());
            others.push(spawn());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        release.add_permits(1);
        assert!(first.await.unwrap().is_ok());
        for other in others {
            assert!(other.await.unwrap().is_ok());
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(cache.in_flight.is_empty());
        // The last waiter gone, the lookup goes with it: nothing left behind.
        cache.evict(&digest);
        release.forget_permits(1);
        let alone = spawn();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(cache.in_flight.len(), 1);
        alone.abort();
        assert!(alone.await.unwrap_err().is_cancelled());
        assert!(cache.in_flight.is_empty());
    }

    #[tokio::test]
    async fn refusals_live_in_their_own_cache() {
        let cache = Cache::new(CacheConfig {
            refusal_capacity: 4,
            ..CacheConfig::default()
        });
        cache
            .load(TokenHash::of("good"), || async { Ok(row(1)) })
            .await
            .unwrap();
        for i in 0..200 {
            let digest = TokenHash::of(&format!("guess {i}"));
            cache
                .load(digest, || async {
                    Ok(Found::Refused(InvalidReason::Unknown))
                })
                .await
                .unwrap();
        }
        let stats = cache.stats();
        assert_eq!(stats.rows, 1);
        assert!(stats.refusals <= 4, "{stats:?}");
        assert_eq!(
            id_of(cache.get(&TokenHash::of("good"), SystemTime::now())),
            Some(1)
        );
    }

    #[tokio::test]
    async fn evict_all_forgets_everything() {
        let cache = Cache::new(CacheConfig::default());
        let (a, b) = (TokenHash::of("a"), TokenHash::of("b"));
        cache.load(a, || async { Ok(row(1)) }).await.unwrap();
        cache
            .load(b, || async { Ok(Found::Refused(InvalidReason::Expired)) })
            .await
            .unwrap();
        assert!(matches!(
            cache.get(&b, SystemTime::now()),
            Some(Found::Refused(InvalidReason::Expired))
        ));
        cache.evict_all();
        assert!(cache.get(&a, SystemTime::now()).is_none());
        assert!(cache.get(&b, SystemTime::now()).is_none());
    }

    #[tokio::test]
    async fn entries_expire_after_their_time_to_live() {
        let cache = Cache::new(CacheConfig {
            ttl: Duration::from_millis(100),
            ..CacheConfig::default()
        });
        let digest = TokenHash::of("a");
        cache.load(digest, || async { Ok(row(1)) }).await.unwrap();
        for _ in 0..5 {
            // Read again and again: the time to live counts from the insertion.
            assert!(cache.get(&digest, SystemTime::now()).is_some());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(cache.get(&digest, SystemTime::now()).is_none());
    }

    #[tokio::test]
    async fn without_capacity_nothing_is_kept_but_misses_are_still_joined() {
        let cache = Cache::new(CacheConfig {
            capacity: 0,
            refusal_capacity: 0,
            ..CacheConfig::default()
        });
        let digest = TokenHash::of("a");
        cache.load(digest, || async { Ok(row(1)) }).await.unwrap();
        assert!(cache.get(&digest, SystemTime::now()).is_none());
        assert_eq!(
            cache.stats(),
            CacheStats {
                rows: 0,
                refusals: 0,
                lookups: 1,
                listener_away: false,
            }
        );
    }
}

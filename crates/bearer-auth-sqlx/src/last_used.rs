//! `last_used_at` without a write per request: uses are noted in memory, one entry per
//! key holding its latest use, and written in batches by a background task.

use std::{
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicI64, AtomicU8, Ordering},
    },
    time::Duration,
};

use bearer_auth::TokenHash;
use dashmap::DashMap;
use tokio::{sync::Notify, task::JoinHandle};

/// A key's latest use, waiting to be written.
pub(crate) struct Use {
    /// Unix seconds of the latest use.
    at: AtomicI64,
    /// The digest of the token used: a write lands only on the row that still holds it,
    /// never on a row regenerated since.
    digest: TokenHash,
}

/// One entry of a batch: key id, Unix seconds of its latest use, digest.
pub(crate) type Pending = (u64, i64, TokenHash);

const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const STOPPED: u8 = 2;

/// The uses not yet written, and the task that writes them.
pub(crate) struct Recorder {
    pending: DashMap<u64, Use>,
    pub(crate) interval: Duration,
    state: AtomicU8,
    task: Mutex<Option<JoinHandle<()>>>,
    pub(crate) stop: Notify,
}

impl Recorder {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            pending: DashMap::new(),
            interval,
            state: AtomicU8::new(IDLE),
            task: Mutex::new(None),
            stop: Notify::new(),
        }
    }

    /// Notes a use of the key `id` at `at` (Unix seconds). No I/O, no lock over all keys:
    /// one sharded map entry, and an atomic maximum when the key already has one.
    pub(crate) fn record(&self, id: u64, digest: TokenHash, at: i64) {
        if let Some(entry) = self.pending.get(&id)
            && entry.digest == digest
        {
            entry.at.fetch_max(at, Ordering::Relaxed);
            return;
        }
        self.pending.insert(
            id,
            Use {
                at: AtomicI64::new(at),
                digest,
            },
        );
    }

    /// Takes every noted use, by key id (the order in which rows are locked, the same on
    /// every instance, so two instances writing at once cannot deadlock).
    pub(crate) fn drain(&self) -> Vec<Pending> {
        let ids: Vec<u64> = self.pending.iter().map(|entry| *entry.key()).collect();
        let mut batch: Vec<Pending> = ids
            .into_iter()
            .filter_map(|id| self.pending.remove(&id))
            .map(|(id, used)| (id, used.at.into_inner(), used.digest))
            .collect();
        batch.sort_unstable_by_key(|&(id, _, _)| id);
        batch
    }

    /// Puts back a batch that could not be written, keeping any later use noted
    /// meanwhile.
    pub(crate) fn requeue(&self, batch: Vec<Pending>) {
        for (id, at, digest) in batch {
            match self.pending.entry(id) {
                dashmap::Entry::Occupied(newer) => {
                    if newer.get().digest == digest {
                        newer.get().at.fetch_max(at, Ordering::Relaxed);
                    }
                }
                dashmap::Entry::Vacant(slot) => {
                    slot.insert(Use {
                        at: AtomicI64::new(at),
                        digest,
                    });
                }
            }
        }
    }

    /// How many keys have a use waiting to be written.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether the writer should be started: true once, for the first caller.
    pub(crate) fn should_start(&self) -> bool {
        self.state.load(Ordering::Relaxed) == IDLE
            && self
                .state
                .compare_exchange(IDLE, RUNNING, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// Gives the start back (no runtime to start the writer on).
    pub(crate) fn unstart(&self) {
        // Only from RUNNING: a stop meanwhile stays a stop.
        let _ = self
            .state
            .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Relaxed);
    }

    pub(crate) fn set_task(&self, task: JoinHandle<()>) {
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
    }

    /// Stops the writer for good; its task, to wait for.
    pub(crate) fn stop(&self) -> Option<JoinHandle<()>> {
        self.state.store(STOPPED, Ordering::Release);
        self.stop.notify_one();
        self.task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_key_with_its_latest_use() {
        let r = Recorder::new(Duration::from_secs(60));
        let d = TokenHash::of("a");
        for at in [10, 30, 20] {
            r.record(7, d, at);
        }
        r.record(3, TokenHash::of("b"), 5);
        assert_eq!(r.len(), 2);
        let batch = r.drain();
        assert_eq!(
            batch
                .iter()
                .map(|&(id, at, _)| (id, at))
                .collect::<Vec<_>>(),
            [(3, 5), (7, 30)]
        );
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn a_regenerated_key_keeps_only_its_new_digest() {
        let r = Recorder::new(Duration::from_secs(60));
        r.record(7, TokenHash::of("old"), 50);
        r.record(7, TokenHash::of("new"), 40);
        let batch = r.drain();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].1, 40);
        assert_eq!(batch[0].2, TokenHash::of("new"));
    }

    #[test]
    fn requeue_keeps_the_later_use() {
        let r = Recorder::new(Duration::from_secs(60));
        let d = TokenHash::of("a");
        r.record(7, d, 10);
        let batch = r.drain();
        r.record(7, d, 20);
        r.requeue(batch);
        assert_eq!(r.drain()[0].1, 20);
        r.record(8, d, 5);
        let batch = r.drain();
        r.requeue(batch);
        assert_eq!(r.drain()[0].1, 5);
    }

    #[test]
    fn requeue_moves_a_later_use_of_the_same_digest_only() {
        let r = Recorder::new(Duration::from_secs(60));
        let (old, new) = (TokenHash::of("old"), TokenHash::of("new"));
        // The failed batch's use is later than the one noted meanwhile: it wins.
        r.record(7, old, 30);
        let batch = r.drain();
        r.record(7, old, 20);
        r.requeue(batch);
        assert_eq!(r.drain(), [(7, 30, old)]);
        // Regenerated meanwhile: the new digest's use stays as it is, whatever the time.
        r.record(7, old, 30);
        let batch = r.drain();
        r.record(7, new, 20);
        r.requeue(batch);
        assert_eq!(r.drain(), [(7, 20, new)]);
    }

    #[test]
    fn a_start_given_back_can_be_taken_again_unless_stopped() {
        let r = Recorder::new(Duration::from_secs(60));
        assert!(r.should_start());
        r.unstart();
        assert!(r.should_start());
        assert!(!r.should_start());
        assert!(r.stop().is_none());
        r.unstart();
        assert!(!r.should_start());
    }

    #[test]
    fn the_writer_starts_once() {
        let r = Recorder::new(Duration::from_secs(60));
        assert!(r.should_start());
        assert!(!r.should_start());
        assert!(r.stop().is_none());
        assert!(!r.should_start());
    }
}

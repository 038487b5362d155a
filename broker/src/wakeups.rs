//! Wake-ups of long-polling fetches: which topics each commit touched, so that a waiting
//! fetch re-reads partition heads only when a commit may concern it. With group commit an
//! agent on a `file://` bucket commits hundreds of times a second under load; without this,
//! every idle consumer of every topic would query its heads on each commit.
//!
//! Commits of this agent name their topics; a commit of another agent (seen through
//! [`crate::commit_watch`]) names none, so it concerns every fetch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::watch;

pub struct Wakeups {
    /// The sequence number of the latest commit; every commit bumps it.
    seq: watch::Sender<u64>,
    /// Topic id to the sequence number of the latest local commit that touched it.
    topics: Mutex<HashMap<i64, u64>>,
    /// The sequence number of the latest commit of another agent.
    remote: AtomicU64,
}

impl Default for Wakeups {
    fn default() -> Self {
        Wakeups {
            seq: watch::channel(0).0,
            topics: Mutex::new(HashMap::new()),
            remote: AtomicU64::new(0),
        }
    }
}

impl Wakeups {
    /// A receiver that changes after every commit; its value is the sequence number to
    /// pass to [`Wakeups::concerns`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.seq.subscribe()
    }

    /// This agent committed batches of `topic_ids`.
    pub fn local_commit(&self, topic_ids: impl IntoIterator<Item = i64>) {
        self.seq.send_modify(|n| {
            *n += 1;
            // Recorded before the new number is visible (the watch is locked meanwhile).
            let mut topics = self.lock();
            for t in topic_ids {
                topics.insert(t, *n);
            }
        });
    }

    /// Another agent committed (which topics is unknown).
    pub fn remote_commit(&self) {
        self.seq.send_modify(|n| {
            *n += 1;
            self.remote.store(*n, Ordering::Release);
        });
    }

    /// Whether a commit after `since` may have touched any of `topic_ids`.
    pub fn concerns(&self, topic_ids: &[i64], since: u64) -> bool {
        if self.remote.load(Ordering::Acquire) > since {
            return true;
        }
        let topics = self.lock();
        topic_ids
            .iter()
            .any(|t| topics.get(t).is_some_and(|&s| s > since))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, u64>> {
        self.topics.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_commits_of_the_fetched_topics_concern_a_fetch() {
        let w = Wakeups::default();
        let rx = w.subscribe();
        let since = *rx.borrow();
        w.local_commit([7]);
        assert!(!w.concerns(&[1, 2], since));
        assert!(w.concerns(&[2, 7], since));
        let since = *w.subscribe().borrow();
        assert!(!w.concerns(&[7], since), "already seen");
        w.remote_commit();
        assert!(
            w.concerns(&[1], since),
            "another agent's commit concerns everyone"
        );
    }
}

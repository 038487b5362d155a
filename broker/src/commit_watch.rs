//! Cross-agent fetch wake-ups: a fetch long-polls on this agent's commit signal, which the
//! local segment writer bumps; this task bumps it when *another* agent commits, so a
//! consumer on one agent sees records produced through another about as soon as they are
//! committed.
//!
//! * Postgres: the committing transaction notifies [`crate::store::COMMIT_CHANNEL`] with
//!   its agent id; the listener wakes fetches on every other agent within milliseconds.
//! * SQLite (agents sharing one database file on one machine) has no notifications: the
//!   newest segment-file id is polled every [`POLL`] while other agents are live, and not
//!   at all while this agent is alone.
//! * A lost Postgres listener falls back to the poll until it reconnects, and the mark is
//!   re-read after every reconnect, so a commit made while it was away still wakes fetches.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::state::Broker;
use crate::store::CommitListener;

/// How often the commit mark is polled without notifications (or while they are down).
pub const POLL: Duration = Duration::from_millis(50);
/// How often the mark is re-read while notifications work: a safety net only.
const POLL_WITH_NOTIFY: Duration = Duration::from_secs(1);
/// The wait before connecting a lost listener again.
const RECONNECT: Duration = Duration::from_secs(1);

/// Runs until `cancel` fires.
pub async fn run(broker: Arc<Broker>, cancel: CancellationToken) {
    let postgres = broker.meta.backend() == "postgres";
    let mut listener: Option<CommitListener> = None;
    let mut next_connect = tokio::time::Instant::now();
    let mut mark = broker.meta.commit_mark().await.unwrap_or(0);
    loop {
        if postgres && listener.is_none() && tokio::time::Instant::now() >= next_connect {
            match broker.meta.listen_commits().await {
                Ok(l) => {
                    listener = l;
                    // Commits made while nobody listened.
                    poll_mark(&broker, &mut mark).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listening for commits failed; polling meanwhile");
                    next_connect = tokio::time::Instant::now() + RECONNECT;
                }
            }
        }
        let every = if listener.is_some() {
            POLL_WITH_NOTIFY
        } else {
            POLL
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            got = next_notification(&mut listener) => match got {
                Ok(from) if from != broker.agent_id => broker.wake_fetches(),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "commit listener lost; polling until it reconnects");
                    listener = None;
                    next_connect = tokio::time::Instant::now() + RECONNECT;
                }
            },
            _ = tokio::time::sleep(every) => {
                if broker.membership.live().len() > 1 {
                    poll_mark(&broker, &mut mark).await;
                }
            }
        }
    }
}

async fn next_notification(
    listener: &mut Option<CommitListener>,
) -> Result<String, crate::store::StoreError> {
    match listener {
        Some(l) => l.next().await,
        None => std::future::pending().await,
    }
}

/// Wakes fetches when the mark moved since `mark` (a local commit moves it too: one
/// spurious wake-up per poll at most).
async fn poll_mark(broker: &Broker, mark: &mut i64) {
    match broker.meta.commit_mark().await {
        Ok(now) if now != *mark => {
            *mark = now;
            broker.wake_fetches();
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "reading the commit mark failed"),
    }
}

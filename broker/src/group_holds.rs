//! Holding a consumer group empty for an offset reset, whichever agent coordinates it.
//!
//! The group's live members are known only to its coordinating agent. An agent that
//! coordinates the group itself holds it in memory ([`Coordinator::hold_empty`]). Any other
//! agent asks through the database: it writes a request row, the coordinator's
//! [`serve`] task (on every agent serving Kafka) takes the in-memory hold and answers
//! `granted`, or `refused` with the member count; the asking agent commits the new offsets
//! and deletes the row, which ends the hold.
//!
//! # Consistency
//! * While the row lives the coordinator keeps the group empty: a JoinGroup waits (up to the
//!   coordinator's hold wait), then joins and reads the reset offsets.
//! * If the coordinator changes during a granted hold, the new one sees the granted row and
//!   holds the group too (unless members already joined it; then the reset still commits
//!   and the members read it at their next rebalance, as with any admin commit).
//! * A row lives at most [`HOLD_TTL`]: an asking agent that crashed mid-reset leaves no
//!   group held for longer.
//!
//! [`Coordinator::hold_empty`]: crate::groups::Coordinator::hold_empty

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::groups::EmptyHold;
use crate::state::Broker;
use crate::store::{HoldState, Metadata, StoreError};

/// The longest a hold asked through the database lives.
pub const HOLD_TTL: Duration = Duration::from_secs(30);
/// How long an asking agent waits for the coordinator's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// How often an asking agent re-reads its request.
const ASK_POLL: Duration = Duration::from_millis(100);
/// How often coordinators read requests (only while other agents are live).
const SERVE_POLL: Duration = Duration::from_millis(500);

/// Why a group could not be held.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("another offset reset of group {0} is in progress; try again")]
    Busy(String),
    #[error("group {group} has {members} active members; stop its consumers first")]
    Members { group: String, members: i64 },
    #[error("the agent coordinating group {0} did not answer within 10 s; try again")]
    NoAnswer(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A group held empty; [`GroupHold::release`] ends it (dropping it does too, later).
pub enum GroupHold {
    Local(EmptyHold),
    Remote(RemoteHold),
}

pub struct RemoteHold {
    meta: Metadata,
    cluster: String,
    group: String,
    holder: String,
    released: bool,
}

impl GroupHold {
    /// Ends the hold now.
    pub async fn release(self) {
        match self {
            GroupHold::Local(hold) => drop(hold),
            GroupHold::Remote(mut r) => {
                r.released = true;
                if let Err(e) = r.meta.end_hold(&r.cluster, &r.group, &r.holder).await {
                    tracing::warn!(error = %e, group = %r.group, "ending a group hold failed; it expires by itself");
                }
            }
        }
    }
}

impl Drop for RemoteHold {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // An early return of the reset: end the hold in the background.
        let (meta, cluster, group, holder) = (
            self.meta.clone(),
            self.cluster.clone(),
            self.group.clone(),
            self.holder.clone(),
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = meta.end_hold(&cluster, &group, &holder).await;
            });
        }
    }
}

/// Holds `group` empty, here or at the agent that coordinates it.
pub async fn hold(broker: &Broker, cluster: &str, group: &str) -> Result<GroupHold, HoldError> {
    if broker.membership.is_coordinator(cluster, group) {
        return match broker.groups.hold_empty(cluster, group) {
            Ok(h) => Ok(GroupHold::Local(h)),
            Err(0) => Err(HoldError::Busy(group.to_string())),
            Err(n) => Err(HoldError::Members {
                group: group.to_string(),
                members: n as i64,
            }),
        };
    }
    let holder = format!("{}:{}", broker.agent_id, uuid::Uuid::new_v4().simple());
    let now = now_ms();
    if !broker
        .meta
        .request_hold(
            cluster,
            group,
            &holder,
            now,
            now + HOLD_TTL.as_millis() as i64,
        )
        .await?
    {
        return Err(HoldError::Busy(group.to_string()));
    }
    let remote = RemoteHold {
        meta: broker.meta.clone(),
        cluster: cluster.to_string(),
        group: group.to_string(),
        holder,
        released: false,
    };
    let deadline = tokio::time::Instant::now() + ANSWER_WAIT;
    let refused = loop {
        match broker.meta.hold_state(cluster, group, &remote.holder).await {
            Ok(Some(HoldState::Granted)) => return Ok(GroupHold::Remote(remote)),
            Ok(Some(HoldState::Refused(members))) => {
                break HoldError::Members {
                    group: group.to_string(),
                    members,
                }
            }
            Ok(Some(HoldState::Requested)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(ASK_POLL).await
            }
            Ok(_) => break HoldError::NoAnswer(group.to_string()),
            Err(e) => break HoldError::Store(e),
        }
    };
    // Withdrawn before answering, so the next reset is not refused as busy.
    GroupHold::Remote(remote).release().await;
    Err(refused)
}

/// Answers hold requests for the groups this agent coordinates, until `cancel` fires.
pub async fn serve(broker: Arc<Broker>, cancel: CancellationToken) {
    // (cluster, group) -> (the request's holder, the in-memory hold)
    let mut held: HashMap<(String, String), (String, EmptyHold)> = HashMap::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(SERVE_POLL) => {}
        }
        if broker.membership.live().len() < 2 && held.is_empty() {
            continue; // alone: every reset is local
        }
        let rows = match broker.meta.live_holds(now_ms()).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::debug!(error = %e, "reading group hold requests failed");
                continue;
            }
        };
        held.retain(|(c, g), (holder, _)| {
            rows.iter()
                .any(|r| &r.cluster == c && &r.group == g && &r.holder == holder)
        });
        for r in rows {
            let k = (r.cluster.clone(), r.group.clone());
            if held.contains_key(&k) || !broker.membership.is_coordinator(&r.cluster, &r.group) {
                continue;
            }
            match (r.state, broker.groups.hold_empty(&r.cluster, &r.group)) {
                (HoldState::Requested, Ok(h)) => {
                    match broker
                        .meta
                        .answer_hold(&r.cluster, &r.group, &r.holder, HoldState::Granted)
                        .await
                    {
                        Ok(true) => {
                            held.insert(k, (r.holder, h));
                        }
                        Ok(false) => {} // withdrawn meanwhile
                        Err(e) => tracing::debug!(error = %e, "answering a group hold failed"),
                    }
                }
                (HoldState::Requested, Err(members)) if members > 0 => {
                    let refused = HoldState::Refused(members as i64);
                    if let Err(e) = broker
                        .meta
                        .answer_hold(&r.cluster, &r.group, &r.holder, refused)
                        .await
                    {
                        tracing::debug!(error = %e, "answering a group hold failed");
                    }
                }
                // A local reset holds it: answer once that one is done.
                (HoldState::Requested, Err(_)) => {}
                // Granted by an agent that coordinated the group before this one.
                (HoldState::Granted, Ok(h)) => {
                    held.insert(k, (r.holder, h));
                }
                _ => {}
            }
        }
    }
}

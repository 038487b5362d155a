//! Consumer groups: the coordinator that drives [`state::Group`] machines.
//!
//! Membership lives in memory on the coordinating agent (with one agent, this one; with
//! several, the agent FindCoordinator names by hashing the group id over the live agents).
//! Committed offsets live in the metadata database, so a coordinator change or a restart
//! costs one rebalance, never an offset.
//!
//! The driver is thin: it keeps one machine per (cluster, group) behind a mutex (never held
//! across an await), hands the machine a oneshot sender for requests that must wait, and a
//! ticker expires sessions and rebalance deadlines.

pub mod member_id;
pub mod messages;
pub mod state;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::codes;
use state::{Answer, Group, Join, JoinAnswer, MemberView, Phase, SyncAnswer};

type Waiter = oneshot::Sender<Answer>;

/// Longest a JoinGroup waits for an admin hold on its group (see [`Coordinator::hold_empty`]).
const HOLD_WAIT_MAX: Duration = Duration::from_secs(10);
type Key = (String, String);

/// What DescribeGroups reports.
#[derive(Debug, Clone)]
pub struct GroupView {
    pub phase: Phase,
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberView>,
}

impl GroupView {
    /// Topics the members subscribe to, sorted and without repeats (consumer protocol only:
    /// other protocols' metadata is opaque).
    pub fn subscribed_topics(&self) -> Vec<String> {
        if self.protocol_type != "consumer" {
            return Vec::new();
        }
        let mut topics: Vec<String> = self
            .members
            .iter()
            .filter_map(|m| consumer_protocol::<ConsumerProtocolSubscription>(&m.metadata))
            .flat_map(|sub| sub.topics.into_iter().map(|t| t.to_string()))
            .collect();
        topics.sort_unstable();
        topics.dedup();
        topics
    }

    /// A member's assignment as (topic, partitions), when the group speaks the consumer
    /// protocol and the leader's bytes decode; empty otherwise.
    pub fn assignment_of(&self, member: &MemberView) -> Vec<(String, Vec<i32>)> {
        if self.protocol_type != "consumer" {
            return Vec::new();
        }
        consumer_protocol::<ConsumerProtocolAssignment>(&member.assignment)
            .map(|a| {
                a.assigned_partitions
                    .into_iter()
                    .map(|tp| (tp.topic.to_string(), tp.partitions))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Decodes consumer-protocol bytes: a version (i16) then the message of that version.
fn consumer_protocol<T: Decodable>(bytes: &Bytes) -> Option<T> {
    let mut buf = bytes.clone();
    if buf.len() < 2 {
        return None;
    }
    let version = buf.get_i16();
    T::decode(&mut buf, version.clamp(0, 3)).ok()
}

pub struct Coordinator {
    groups: Mutex<HashMap<Key, Group<Waiter>>>,
    /// Groups an admin operation (offset reset) holds empty: joins wait until it ends.
    /// Always locked after `groups`, never before.
    held: Mutex<HashSet<Key>>,
    initial_delay_ms: u64,
    initial_quiet_ms: u64,
    max_size: usize,
    epoch: Instant,
}

/// Members told MEMBER_ID_REQUIRED and not yet joined, over all groups of this agent: new
/// members beyond it are refused (GROUP_MAX_SIZE_REACHED) until offers expire, so a flood
/// of joins with fresh group ids cannot grow memory without bound.
pub const MAX_PENDING_MEMBERS: usize = 20_000;

/// Deadlines at most this far away get their own timer (see `Coordinator::wake_at`).
const PRECISE_WAKE_MAX_MS: u64 = 1_000;

/// Keeps a group empty while alive (see [`Coordinator::hold_empty`]).
pub struct EmptyHold {
    coordinator: Arc<Coordinator>,
    key: Key,
}

impl Drop for EmptyHold {
    fn drop(&mut self) {
        self.coordinator
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

fn deliver(out: Vec<(Waiter, Answer)>) {
    for (w, a) in out {
        // The client may have gone away; its answer is simply dropped.
        let _ = w.send(a);
    }
}

fn key(cluster: &str, group: &str) -> Key {
    (cluster.to_string(), group.to_string())
}

impl Coordinator {
    /// `initial_rebalance_delay` is the longest the first rebalance of an empty group waits
    /// for more members; it ends sooner once `initial_quiet` passes without a new one.
    pub fn new(
        initial_rebalance_delay: Duration,
        initial_quiet: Duration,
        max_group_size: usize,
    ) -> Arc<Self> {
        Arc::new(Coordinator {
            groups: Mutex::new(HashMap::new()),
            held: Mutex::new(HashSet::new()),
            initial_delay_ms: initial_rebalance_delay.as_millis() as u64,
            initial_quiet_ms: initial_quiet.as_millis() as u64,
            max_size: max_group_size,
            epoch: Instant::now(),
        })
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Group<Waiter>>> {
        // A poisoned lock means a panic mid-update elsewhere; the map itself is intact.
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Handles a JoinGroup, waiting until the rebalance completes.
    pub async fn join(self: &Arc<Self>, cluster: &str, group: &str, req: Join) -> JoinAnswer {
        let wait = Duration::from_millis(
            req.rebalance_timeout_ms.max(req.session_timeout_ms).max(0) as u64,
        ) + Duration::from_secs(5);
        let (tx, rx) = oneshot::channel();
        let k = key(cluster, group);
        let mut tx = Some(tx);
        let mut req = Some(req);
        let held_since = Instant::now();
        let (out, deadline) = loop {
            {
                let mut groups = self.lock();
                let held = self
                    .held
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&k);
                // An offset reset holds the group for one metadata transaction; past a
                // few seconds something is wrong and the join goes ahead.
                if !held || held_since.elapsed() > HOLD_WAIT_MAX {
                    let (delay, quiet, max_size) =
                        (self.initial_delay_ms, self.initial_quiet_ms, self.max_size);
                    let now = self.now();
                    let (Some(tx), Some(req)) = (tx.take(), req.take()) else {
                        unreachable!("taken once, when the loop ends");
                    };
                    let new_member = req.member_id.is_empty();
                    if new_member
                        && groups.values().map(Group::pending_count).sum::<usize>()
                            >= MAX_PENDING_MEMBERS
                    {
                        return JoinAnswer {
                            error: codes::GROUP_MAX_SIZE_REACHED,
                            generation: -1,
                            ..Default::default()
                        };
                    }
                    let g = groups.entry(k.clone()).or_insert_with(|| {
                        Group::new(delay)
                            .with_initial_quiet(quiet)
                            .with_max_size(max_size)
                    });
                    let out = g.join(req, tx, now);
                    break (out, g.deadline());
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        deliver(out);
        if let Some(at) = deadline {
            self.wake_at(k, at);
        }
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(Answer::Join(j))) => j,
            _ => JoinAnswer {
                error: codes::REBALANCE_IN_PROGRESS,
                generation: -1,
                ..Default::default()
            },
        }
    }

    /// Handles a SyncGroup, waiting for the leader's assignment when needed.
    pub async fn sync(
        &self,
        cluster: &str,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncAnswer {
        let (tx, rx) = oneshot::channel();
        let now = self.now();
        let out = {
            let mut groups = self.lock();
            match groups.get_mut(&key(cluster, group)) {
                Some(g) => g.sync(member_id, instance_id, generation, assignments, tx, now),
                None => {
                    return SyncAnswer {
                        error: codes::UNKNOWN_MEMBER_ID,
                        ..Default::default()
                    }
                }
            }
        };
        deliver(out);
        match tokio::time::timeout(Duration::from_secs(300), rx).await {
            Ok(Ok(Answer::Sync(s))) => s,
            _ => SyncAnswer {
                error: codes::REBALANCE_IN_PROGRESS,
                ..Default::default()
            },
        }
    }

    pub fn heartbeat(
        &self,
        cluster: &str,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        let now = self.now();
        match self.lock().get_mut(&key(cluster, group)) {
            Some(g) => g.heartbeat(member_id, instance_id, generation, now),
            None => codes::UNKNOWN_MEMBER_ID,
        }
    }

    /// Removes members; returns one code per member (an unknown group answers every
    /// member with UNKNOWN_MEMBER_ID).
    pub fn leave(
        &self,
        cluster: &str,
        group: &str,
        members: &[(String, Option<String>)],
    ) -> Vec<i16> {
        let now = self.now();
        let (codes_out, out) = match self.lock().get_mut(&key(cluster, group)) {
            Some(g) => g.leave(members, now),
            None => (vec![codes::UNKNOWN_MEMBER_ID; members.len()], Vec::new()),
        };
        deliver(out);
        codes_out
    }

    /// Whether an OffsetCommit may be stored for this member and generation.
    pub fn commit_allowed(
        &self,
        cluster: &str,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        match self.lock().get(&key(cluster, group)) {
            Some(g) => g.commit_allowed(member_id, instance_id, generation),
            // No live membership: only commits from outside the group protocol are valid.
            None if generation < 0 => codes::NONE,
            None => codes::ILLEGAL_GENERATION,
        }
    }

    /// Holds a group empty for an admin operation: refused with the member count when it
    /// has live members; while the hold lives, JoinGroup requests wait. Checked and taken
    /// under the coordinator's lock, so no member can slip in between.
    pub fn hold_empty(self: &Arc<Self>, cluster: &str, group: &str) -> Result<EmptyHold, usize> {
        let groups = self.lock();
        let k = key(cluster, group);
        let members = groups.get(&k).map(|g| g.members().len()).unwrap_or(0);
        if members > 0 {
            return Err(members);
        }
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if !held.insert(k.clone()) {
            // Another admin operation holds it; treat as busy.
            return Err(0);
        }
        Ok(EmptyHold {
            coordinator: self.clone(),
            key: k,
        })
    }

    pub fn describe(&self, cluster: &str, group: &str) -> Option<GroupView> {
        self.lock().get(&key(cluster, group)).map(|g| GroupView {
            phase: g.phase(),
            generation: g.generation(),
            protocol_type: g.protocol_type().unwrap_or_default().to_string(),
            protocol: g.protocol().unwrap_or_default().to_string(),
            members: g.members(),
        })
    }

    /// Live groups of a cluster: (group id, phase, protocol type).
    /// Every group this coordinator holds, of every cluster.
    pub fn keys(&self) -> Vec<(String, String)> {
        self.lock().keys().cloned().collect()
    }

    pub fn list(&self, cluster: &str) -> Vec<(String, Phase, String)> {
        self.lock()
            .iter()
            .filter(|((c, _), _)| c == cluster)
            .map(|((_, g), grp)| {
                (
                    g.clone(),
                    grp.phase(),
                    grp.protocol_type().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Forgets an empty group's membership; NON_EMPTY_GROUP (68) while members remain.
    /// Returns whether the group was known in memory.
    pub fn forget_if_empty(&self, cluster: &str, group: &str) -> Result<bool, i16> {
        let mut groups = self.lock();
        match groups.get(&key(cluster, group)) {
            Some(g) if !g.is_empty() => Err(68),
            _ => Ok(groups.remove(&key(cluster, group)).is_some()),
        }
    }

    /// Every (cluster, group, generation, members, phase) for metrics.
    pub fn snapshot(&self) -> Vec<(String, String, i32, usize, Phase)> {
        self.lock()
            .iter()
            .map(|((c, g), grp)| {
                (
                    c.clone(),
                    g.clone(),
                    grp.generation(),
                    grp.member_count(),
                    grp.phase(),
                )
            })
            .collect()
    }

    /// Ticks one group at `at` (coordinator milliseconds): a short wait (the first
    /// rebalance's quiet window) ends at its deadline rather than at the next tick of
    /// [`Coordinator::run_ticker`]. Longer deadlines (rebalance timeouts, minutes) are left
    /// to the ticker, so a join does not leave a task sleeping for minutes.
    fn wake_at(self: &Arc<Self>, key: Key, at: u64) {
        let delay = at.saturating_sub(self.now());
        if delay == 0 || delay > PRECISE_WAKE_MAX_MS {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let now = this.now();
            let out = match this.lock().get_mut(&key) {
                Some(g) => g.tick(now),
                None => Vec::new(),
            };
            deliver(out);
        });
    }

    /// Expires sessions and deadlines every 100 ms; empty groups are dropped from memory
    /// (their offsets stay in the database).
    pub async fn run_ticker(self: Arc<Self>, cancel: CancellationToken) {
        let mut interval = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = cancel.cancelled() => break,
            }
            let now = self.now();
            let mut out = Vec::new();
            {
                let mut groups = self.lock();
                for g in groups.values_mut() {
                    out.extend(g.tick(now));
                }
                groups.retain(|_, g| !g.is_idle());
            }
            deliver(out);
        }
    }
}

#[cfg(test)]
mod hold_tests {
    use super::*;

    fn join_req() -> Join {
        Join {
            member_id: String::new(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::new())],
            member_id_required: false,
        }
    }

    #[tokio::test]
    async fn joins_wait_while_a_group_is_held_empty() {
        let c = Coordinator::new(Duration::ZERO, Duration::ZERO, 1000);
        let hold = c.hold_empty("k", "g").expect("an unknown group is empty");
        assert_eq!(c.hold_empty("k", "g").err(), Some(0), "one hold at a time");
        let joiner = {
            let c = c.clone();
            tokio::spawn(async move { c.join("k", "g", join_req()).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!joiner.is_finished(), "the join waits for the hold");
        assert!(c.describe("k", "g").is_none(), "nobody joined while held");
        drop(hold);
        let answer = tokio::time::timeout(Duration::from_secs(5), joiner)
            .await
            .expect("the join goes ahead once the hold is gone")
            .unwrap();
        assert_eq!(answer.error, 0);
        // Now the group has a member: holding it is refused with the member count.
        assert_eq!(c.hold_empty("k", "g").err(), Some(1));
    }
}

//! Consumer groups seen from any agent: a group's members live in the memory of its
//! coordinating agent, so the console on another agent would show it without members. Each
//! agent publishes the groups it coordinates to the database ([`publish`], once a second,
//! only what changed, only while other agents are live) and reads other agents' snapshots
//! for groups it does not hold ([`remote_view`], [`remote_views`]).
//!
//! # Consistency
//! A snapshot is at most about a second old. One written by an agent that is no longer
//! live is ignored (it died or left; the group's new coordinator publishes its own).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::groups::state::{MemberView, Phase};
use crate::groups::GroupView;
use crate::state::Broker;
use crate::store::{GroupSnapshot, PublishedGroup, SnapshotMember, StoreError};

/// How often the groups this agent coordinates are compared with what it published.
const EVERY: Duration = Duration::from_secs(1);
/// Every group is written again this often even unchanged, so a snapshot overwritten by a
/// former coordinator (in the second before it learnt of the move) is put right.
const REFRESH_PASSES: u64 = 60;

fn snapshot_of(v: &GroupView) -> GroupSnapshot {
    GroupSnapshot {
        phase: v.phase.name().to_string(),
        generation: v.generation,
        protocol_type: v.protocol_type.clone(),
        protocol: v.protocol.clone(),
        members: v
            .members
            .iter()
            .map(|m| SnapshotMember {
                member_id: m.member_id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m.metadata.to_vec(),
                assignment: m.assignment.to_vec(),
            })
            .collect(),
    }
}

fn view_of(s: GroupSnapshot) -> GroupView {
    GroupView {
        phase: Phase::from_name(&s.phase).unwrap_or(Phase::Empty),
        generation: s.generation,
        protocol_type: s.protocol_type,
        protocol: s.protocol,
        members: s
            .members
            .into_iter()
            .map(|m| MemberView {
                member_id: m.member_id,
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                metadata: Bytes::from(m.metadata),
                assignment: Bytes::from(m.assignment),
            })
            .collect(),
    }
}

/// Publishes the groups this agent coordinates until `cancel` fires.
pub async fn publish(broker: Arc<Broker>, cancel: CancellationToken) {
    let mut published: HashMap<(String, String), GroupSnapshot> = HashMap::new();
    let mut passes: u64 = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        if broker.membership.live().len() < 2 && published.is_empty() {
            continue; // alone: nobody reads them
        }
        passes += 1;
        let rewrite_all = passes.is_multiple_of(REFRESH_PASSES);
        if let Err(e) = publish_once(&broker, &mut published, rewrite_all).await {
            tracing::debug!(error = %e, "publishing group snapshots failed; retrying");
        }
    }
}

async fn publish_once(
    broker: &Broker,
    published: &mut HashMap<(String, String), GroupSnapshot>,
    rewrite_all: bool,
) -> Result<(), StoreError> {
    let mut current = HashMap::new();
    for (cluster, group) in broker.groups.keys() {
        // A group that moved away is the new coordinator's to publish.
        if !broker.membership.is_coordinator(&cluster, &group) {
            continue;
        }
        if let Some(v) = broker.groups.describe(&cluster, &group) {
            current.insert((cluster, group), snapshot_of(&v));
        }
    }
    let me = broker.agent_id.as_str();
    for (k, snap) in &current {
        if rewrite_all || published.get(k) != Some(snap) {
            broker
                .meta
                .publish_group(&k.0, &k.1, me, snap, now_ms())
                .await?;
            published.insert(k.clone(), snap.clone());
        }
    }
    let gone: Vec<(String, String)> = published
        .keys()
        .filter(|k| !current.contains_key(*k))
        .cloned()
        .collect();
    for k in gone {
        broker.meta.withdraw_group(&k.0, &k.1, me).await?;
        published.remove(&k);
    }
    Ok(())
}

/// Snapshots written by other live agents.
fn live_remote(broker: &Broker, all: Vec<PublishedGroup>) -> Vec<PublishedGroup> {
    let live: HashSet<String> = broker
        .membership
        .live()
        .iter()
        .map(|a| a.agent_id.clone())
        .collect();
    all.into_iter()
        .filter(|p| p.agent_id != broker.agent_id && live.contains(&p.agent_id))
        .collect()
}

/// A group another live agent coordinates, as it last published it.
pub async fn remote_view(
    broker: &Broker,
    cluster: &str,
    group: &str,
) -> Result<Option<GroupView>, StoreError> {
    if broker.membership.live().len() < 2 {
        return Ok(None);
    }
    let all = broker.meta.group_snapshots(cluster, Some(group)).await?;
    Ok(live_remote(broker, all)
        .into_iter()
        .next()
        .map(|p| view_of(p.snapshot)))
}

/// Every group of `cluster` other live agents coordinate: (group id, view).
pub async fn remote_views(
    broker: &Broker,
    cluster: &str,
) -> Result<Vec<(String, GroupView)>, StoreError> {
    if broker.membership.live().len() < 2 {
        return Ok(Vec::new());
    }
    let all = broker.meta.group_snapshots(cluster, None).await?;
    Ok(live_remote(broker, all)
        .into_iter()
        .map(|p| (p.group, view_of(p.snapshot)))
        .collect())
}

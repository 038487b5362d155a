//! Which agent owns what: rendezvous (highest-random-weight) hashing over the live agents.
//!
//! Every agent computes the same answer from the same agent list, with no coordination:
//! each candidate scores `hash(key, candidate id)` and the highest score wins. Removing an
//! agent moves only the keys it owned (each to its own runner-up); adding one moves to it
//! about `1/N` of the keys and nothing else.
//!
//! The hash must agree between processes, machines and Rust releases, so it is written out
//! here (FNV-1a 64 over the bytes, then the 64-bit finaliser of MurmurHash3 to spread the
//! result) rather than taken from `std`, whose `DefaultHasher` is seeded per process. A
//! golden test pins its output: changing it would move every partition and group at once
//! during a rolling upgrade.
//!
//! Pure functions, no I/O: callers pass the agents that may own the key (live, in the right
//! group, with the right role).

use crate::store::AgentInfo;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64, continuing from `state` (start from [`FNV_OFFSET`]).
fn fnv1a(mut state: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        state ^= u64::from(b);
        state = state.wrapping_mul(FNV_PRIME);
    }
    state
}

/// MurmurHash3's `fmix64`: every input bit flips about half the output bits, so scores of
/// ids that differ in one byte are unrelated.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// The weight of candidate `id` for `key`.
fn score(key: &[u8], id: u64) -> u64 {
    fmix64(fnv1a(fnv1a(FNV_OFFSET, key), &id.to_le_bytes()))
}

/// The candidate with the highest score for `key`; `None` when there are none. Ties (only
/// possible for equal scores) go to the larger id, so the answer does not depend on the
/// order of `candidates` unless two of them share an id.
pub fn rendezvous<'a, T>(key: &[u8], candidates: &'a [T], id: impl Fn(&T) -> u64) -> Option<&'a T> {
    candidates.iter().max_by_key(|c| {
        let id = id(c);
        (score(key, id), id)
    })
}

/// Appends `s` with its length in front, so that adjacent strings cannot run into each other
/// (`("ab", "c")` and `("a", "bc")` are different keys).
fn push_str(key: &mut Vec<u8>, s: &str) {
    key.extend_from_slice(&(s.len() as u64).to_be_bytes());
    key.extend_from_slice(s.as_bytes());
}

fn node_id(a: &AgentInfo) -> u64 {
    // Node ids are never negative; the cast only has to be the same everywhere.
    a.node_id as u64
}

/// The node id that leads `partition` of a topic (named by its UUID, or by name where the
/// UUID is not known: callers must pick one and stick to it).
pub fn partition_leader(
    topic_uuid_or_name: &str,
    partition: i32,
    agents: &[AgentInfo],
) -> Option<i32> {
    let mut key = b"partition\0".to_vec();
    push_str(&mut key, topic_uuid_or_name);
    key.extend_from_slice(&partition.to_be_bytes());
    rendezvous(&key, agents, node_id).map(|a| a.node_id)
}

/// The node id that coordinates consumer group `group` of virtual cluster `cluster`.
pub fn group_coordinator(cluster: &str, group: &str, agents: &[AgentInfo]) -> Option<i32> {
    let mut key = b"group\0".to_vec();
    push_str(&mut key, cluster);
    push_str(&mut key, group);
    rendezvous(&key, agents, node_id).map(|a| a.node_id)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn agent(node_id: i32) -> AgentInfo {
        AgentInfo {
            node_id,
            agent_id: format!("agent-{node_id}"),
            host: "127.0.0.1".into(),
            port: 9092 + node_id,
            tls_host: None,
            tls_port: None,
            rack: None,
            agent_group: "default".into(),
            roles: vec!["produce".into(), "fetch".into()],
            version: "test".into(),
            started_at_ms: 0,
            last_seen_ms: 0,
            load: Default::default(),
        }
    }

    fn agents(ids: &[i32]) -> Vec<AgentInfo> {
        ids.iter().copied().map(agent).collect()
    }

    fn owners(keys: &[String], ids: &[u64]) -> Vec<u64> {
        keys.iter()
            .map(|k| *rendezvous(k.as_bytes(), ids, |id| *id).expect("candidates"))
            .collect()
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("key-{i}")).collect()
    }

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn choices_are_pinned_across_builds() {
        // Golden values: if this fails, the hash changed and a rolling upgrade would move
        // partitions and groups between agents that disagree.
        let three = agents(&[1, 2, 3]);
        let leaders: Vec<i32> = (0..12)
            .map(|p| partition_leader("orders", p, &three).expect("agents"))
            .collect();
        assert_eq!(leaders, GOLDEN_LEADERS);
        assert_eq!(
            group_coordinator("c-1", "billing", &three),
            Some(GOLDEN_COORDINATOR)
        );
    }

    // Computed once by an independent implementation of the same hash (a few lines of
    // Python), not by this code.
    const GOLDEN_LEADERS: [i32; 12] = [1, 1, 3, 1, 3, 2, 1, 3, 1, 1, 2, 1];
    const GOLDEN_COORDINATOR: i32 = 2;

    #[test]
    fn deterministic_and_independent_of_candidate_order() {
        let forward = agents(&[1, 2, 3, 4, 5]);
        let mut backward = forward.clone();
        backward.reverse();
        for p in 0..100 {
            let a = partition_leader("t", p, &forward);
            assert_eq!(a, partition_leader("t", p, &forward));
            assert_eq!(a, partition_leader("t", p, &backward));
        }
        assert_eq!(
            group_coordinator("c", "g", &forward),
            group_coordinator("c", "g", &backward)
        );
    }

    #[test]
    fn no_candidates_no_owner() {
        assert_eq!(partition_leader("t", 0, &[]), None);
        assert_eq!(group_coordinator("c", "g", &[]), None);
        assert!(rendezvous(b"k", &[] as &[u64], |id| *id).is_none());
    }

    #[test]
    fn twelve_partitions_use_all_three_agents() {
        let three = agents(&[1, 2, 3]);
        let used: BTreeSet<i32> = (0..12)
            .map(|p| partition_leader("orders", p, &three).expect("agents"))
            .collect();
        assert_eq!(used, BTreeSet::from([1, 2, 3]));
    }

    #[test]
    fn keys_spread_evenly() {
        let ids = [1, 2, 3, 4];
        let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
        for owner in owners(&keys(4000), &ids) {
            *counts.entry(owner).or_default() += 1;
        }
        // 1000 expected each; the standard deviation is about 27.
        for (id, n) in counts {
            assert!(
                (850..=1150).contains(&n),
                "agent {id} owns {n} of 4000 keys"
            );
        }
    }

    #[test]
    fn removing_an_agent_moves_only_its_keys() {
        let keys = keys(1000);
        let before = owners(&keys, &[1, 2, 3, 4]);
        let after = owners(&keys, &[1, 2, 4]);
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if *b == 3 {
                assert_ne!(*a, 3);
                moved += 1;
            } else {
                assert_eq!(a, b, "a key of agent {b} moved when agent 3 left");
            }
        }
        assert!(moved > 0, "agent 3 owned no keys");
    }

    #[test]
    fn adding_an_agent_moves_about_one_in_n_keys_to_it() {
        let keys = keys(1000);
        let before = owners(&keys, &[1, 2, 3]);
        let after = owners(&keys, &[1, 2, 3, 4]);
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if a != b {
                assert_eq!(*a, 4, "a key moved between two old agents");
                moved += 1;
            }
        }
        // 250 expected (1/4 of 1000); the standard deviation is about 14.
        assert!((180..=320).contains(&moved), "{moved} of 1000 keys moved");
    }

    #[test]
    fn adjacent_fields_cannot_run_into_each_other() {
        let key = |a: &str, b: &str| {
            let mut k = Vec::new();
            push_str(&mut k, a);
            push_str(&mut k, b);
            k
        };
        assert_ne!(key("ab", "c"), key("a", "bc"));
    }
}

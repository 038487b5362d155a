//! One conformance suite for the metadata store, run on SQLite always and on Postgres when
//! `SLUICE_TEST_POSTGRES_URL` is set (CI sets it). Each test works in its own virtual
//! cluster so runs can share one Postgres database; the agent registry tests, whose node ids
//! are one space per database, take turns on an emptied table instead (`agents.rs`). (The console's accounts have their own
//! suite: `app/tests/platform_store.rs`.)

use std::collections::BTreeMap;
use std::sync::Arc;

// The registry and lease tests, in a file of their own (this one is long enough).
#[path = "store_conformance/agents.rs"]
mod agents;
use agents::*;
#[path = "store_conformance/acls.rs"]
mod acls;
use acls::*;

use broker::store::plan::{AppendGroup, GroupOutcome, PendingBatch};
use broker::store::{CommittedOffset, Metadata, SegmentCommit, StoreError};

/// A fresh virtual cluster (topics are created only in clusters that exist).
async fn cluster(m: &Metadata) -> String {
    let name = format!("c-{}", uuid::Uuid::new_v4().simple());
    m.create_virtual_cluster("test-org", &name)
        .await
        .unwrap()
        .id
}

fn plain(n: i64, ts: i64) -> PendingBatch {
    PendingBatch {
        byte_offset: 0,
        byte_len: 100,
        offset_count: n,
        record_count: n,
        max_timestamp: ts,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        last_sequence: -1,
        transactional: false,
    }
}

fn seg() -> String {
    format!("segments/test/{}", uuid::Uuid::new_v4().simple())
}

async fn cluster_id_is_stable(m: &Metadata) {
    let a = m.cluster_id().await.unwrap();
    let b = m.cluster_id().await.unwrap();
    assert_eq!(a, b);
    assert!(!a.is_empty());
}

async fn topic_lifecycle(m: &Metadata) {
    let c = cluster(m).await;
    let mut configs = BTreeMap::new();
    configs.insert("retention.ms".to_string(), "1000".to_string());
    let t = m.create_topic(&c, "orders", 3, &configs).await.unwrap();
    assert_eq!(t.partitions, 3);
    assert!(matches!(
        m.create_topic(&c, "orders", 1, &BTreeMap::new()).await,
        Err(StoreError::TopicExists(_))
    ));
    // Topics live only in clusters that exist (a deleted cluster gets none).
    assert!(matches!(
        m.create_topic("no-such-cluster", "orders", 1, &BTreeMap::new())
            .await,
        Err(broker::store::StoreError::UnknownCluster(_))
    ));
    // Names repeat across clusters.
    let other = cluster(m).await;
    m.create_topic(&other, "orders", 1, &BTreeMap::new())
        .await
        .unwrap();

    let got = m.topic(&c, "orders").await.unwrap().unwrap();
    assert_eq!(got.uuid, t.uuid);
    assert_eq!(got.configs["retention.ms"], "1000");
    assert_eq!(
        m.topic_by_uuid(&c, t.uuid).await.unwrap().unwrap().name,
        "orders"
    );
    assert!(
        m.topic_by_uuid(&other, t.uuid).await.unwrap().is_none(),
        "ids do not leak across clusters"
    );
    assert_eq!(m.list_topics(&c).await.unwrap().len(), 1);

    m.alter_topic_configs(
        t.id,
        false,
        &[("cleanup.policy".into(), "compact".into())],
        &["retention.ms".into()],
    )
    .await
    .unwrap();
    let got = m.topic(&c, "orders").await.unwrap().unwrap();
    assert_eq!(got.configs.len(), 1);
    assert_eq!(got.configs["cleanup.policy"], "compact");
    m.alter_topic_configs(t.id, true, &[("retention.bytes".into(), "5".into())], &[])
        .await
        .unwrap();
    let got = m.topic(&c, "orders").await.unwrap().unwrap();
    assert_eq!(
        got.configs.keys().collect::<Vec<_>>(),
        vec!["retention.bytes"]
    );

    m.create_partitions(t.id, 5).await.unwrap();
    assert!(matches!(
        m.create_partitions(t.id, 4).await,
        Err(StoreError::InvalidPartitions(_))
    ));
    assert_eq!(m.topic(&c, "orders").await.unwrap().unwrap().partitions, 5);
    let s = m.partition_state(t.id, 4).await.unwrap().unwrap();
    assert_eq!((s.next_offset, s.log_start_offset), (0, 0));
    assert!(m.partition_state(t.id, 5).await.unwrap().is_none());

    assert!(m.delete_topic(&c, "orders").await.unwrap());
    assert!(!m.delete_topic(&c, "orders").await.unwrap());
    assert!(m.topic(&c, "orders").await.unwrap().is_none());
    assert!(m.partition_state(t.id, 0).await.unwrap().is_none());
    assert!(
        m.topic(&other, "orders").await.unwrap().is_some(),
        "the other cluster's topic stays"
    );
}

async fn commit_assigns_offsets_and_indexes_batches(m: &Metadata) {
    let c = cluster(m).await;
    let t = m
        .create_topic(&c, "events", 2, &BTreeMap::new())
        .await
        .unwrap();
    let groups = vec![
        AppendGroup {
            topic_id: t.id,
            partition: 0,
            batches: vec![plain(3, 100), plain(2, 200)],
        },
        AppendGroup {
            topic_id: t.id,
            partition: 1,
            batches: vec![plain(4, 150)],
        },
        AppendGroup {
            topic_id: t.id,
            partition: 7,
            batches: vec![plain(1, 1)],
        },
    ];
    let out = m
        .commit_segment(&seg(), 1000, "agent", &groups)
        .await
        .unwrap();
    assert_eq!(
        out[0],
        GroupOutcome::Appended {
            base_offset: 0,
            log_start_offset: 0
        }
    );
    assert_eq!(
        out[1],
        GroupOutcome::Appended {
            base_offset: 0,
            log_start_offset: 0
        }
    );
    assert_eq!(out[2], GroupOutcome::Failed(3));
    let key = seg();
    let out = m
        .commit_segment(
            &key,
            500,
            "agent",
            &[AppendGroup {
                topic_id: t.id,
                partition: 0,
                batches: vec![plain(10, 300)],
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        out[0],
        GroupOutcome::Appended {
            base_offset: 5,
            log_start_offset: 0
        }
    );
    assert_eq!(
        m.partition_state(t.id, 0)
            .await
            .unwrap()
            .unwrap()
            .next_offset,
        15
    );
    assert_eq!(
        m.partition_state(t.id, 1)
            .await
            .unwrap()
            .unwrap()
            .next_offset,
        4
    );

    let from_mid = m.batches_from(t.id, 0, 4, 100).await.unwrap();
    assert_eq!(
        from_mid
            .iter()
            .map(|b| (b.base_offset, b.last_offset))
            .collect::<Vec<_>>(),
        vec![(3, 4), (5, 14)]
    );
    assert_eq!(&*from_mid[1].object_key, key.as_str());
    assert_eq!(from_mid[1].object_size, 500);
    assert_eq!(
        m.batches_from(t.id, 0, 0, 1).await.unwrap().len(),
        1,
        "limit applies"
    );
    assert!(m.batches_from(t.id, 0, 15, 100).await.unwrap().is_empty());

    assert_eq!(
        m.offset_for_timestamp(t.id, 0, 150).await.unwrap(),
        Some((3, 200))
    );
    assert_eq!(m.offset_for_timestamp(t.id, 0, 301).await.unwrap(), None);
    assert_eq!(
        m.max_timestamp_offset(t.id, 0).await.unwrap(),
        Some((5, 300))
    );
}

async fn concurrent_commits_leave_no_gaps(m: &Metadata) {
    let c = cluster(m).await;
    let t = m
        .create_topic(&c, "hot", 2, &BTreeMap::new())
        .await
        .unwrap();
    let m = Arc::new(m.clone());
    let mut tasks = Vec::new();
    for _agent in 0..6 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..15 {
                let groups = vec![
                    AppendGroup {
                        topic_id: t.id,
                        partition: (i % 2) as i32,
                        batches: vec![plain(3, i)],
                    },
                    AppendGroup {
                        topic_id: t.id,
                        partition: ((i + 1) % 2) as i32,
                        batches: vec![plain(2, i)],
                    },
                ];
                m.commit_segment(&seg(), 10, "agent", &groups)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for p in 0..2 {
        let rows = m.batches_from(t.id, p, 0, 10_000).await.unwrap();
        let mut next = 0;
        for r in &rows {
            assert_eq!(
                r.base_offset, next,
                "no gap and no overlap in partition {p}"
            );
            next = r.last_offset + 1;
        }
        let per_agent: i64 = (0..15).map(|i| if i % 2 == p as i64 { 3 } else { 2 }).sum();
        assert_eq!(next, 6 * per_agent, "every record counted once");
        assert_eq!(
            m.partition_state(t.id, p)
                .await
                .unwrap()
                .unwrap()
                .next_offset,
            next
        );
    }
}

async fn producer_state_survives_between_commits(m: &Metadata) {
    let c = cluster(m).await;
    let t = m
        .create_topic(&c, "idem", 1, &BTreeMap::new())
        .await
        .unwrap();
    let (pid, epoch) = m.init_producer_id("default", None, None).await.unwrap();
    let b = |first: i32, n: i32| PendingBatch {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: first,
        last_sequence: first + n - 1,
        ..plain(n as i64, 1)
    };
    let group = |batch| {
        vec![AppendGroup {
            topic_id: t.id,
            partition: 0,
            batches: vec![batch],
        }]
    };
    assert_eq!(
        m.commit_segment(&seg(), 1, "a", &group(b(0, 4)))
            .await
            .unwrap()[0],
        GroupOutcome::Appended {
            base_offset: 0,
            log_start_offset: 0
        }
    );
    assert_eq!(
        m.commit_segment(&seg(), 1, "a", &group(b(4, 4)))
            .await
            .unwrap()[0],
        GroupOutcome::Appended {
            base_offset: 4,
            log_start_offset: 0
        }
    );
    assert_eq!(
        m.commit_segment(&seg(), 1, "a", &group(b(0, 4)))
            .await
            .unwrap()[0],
        GroupOutcome::Duplicate {
            base_offset: 0,
            log_start_offset: 0
        }
    );
    assert_eq!(
        m.commit_segment(&seg(), 1, "a", &group(b(9, 1)))
            .await
            .unwrap()[0],
        GroupOutcome::Failed(45)
    );
    assert_eq!(
        m.partition_state(t.id, 0)
            .await
            .unwrap()
            .unwrap()
            .next_offset,
        8
    );
}

async fn producer_ids_and_epochs(m: &Metadata) {
    let (a, ea) = m.init_producer_id("default", None, None).await.unwrap();
    let (b, _) = m.init_producer_id("default", None, None).await.unwrap();
    assert_ne!(a, b);
    assert_eq!(ea, 0);
    assert_eq!(
        m.init_producer_id("default", None, Some((a, 0)))
            .await
            .unwrap(),
        (a, 1),
        "keeping the id bumps the epoch"
    );
    let tid = format!("tx-{}", uuid::Uuid::new_v4());
    let (t1, e1) = m
        .init_producer_id("default", Some(&tid), None)
        .await
        .unwrap();
    let (t2, e2) = m
        .init_producer_id("default", Some(&tid), None)
        .await
        .unwrap();
    assert_eq!(t1, t2);
    assert_eq!(e2, e1 + 1);
    // The same transactional id in another cluster is another producer: it neither gets
    // nor bumps the first cluster's id.
    let other = format!("c-{}", uuid::Uuid::new_v4().simple());
    let (o1, oe1) = m.init_producer_id(&other, Some(&tid), None).await.unwrap();
    assert_ne!(o1, t1);
    assert_eq!(oe1, 0);
    let (t3, e3) = m
        .init_producer_id("default", Some(&tid), None)
        .await
        .unwrap();
    assert_eq!((t3, e3), (t1, e2 + 1));
    // Nor can it keep (and bump) a producer id of another cluster.
    let (x, xe) = m
        .init_producer_id(&other, None, Some((a, 1)))
        .await
        .unwrap();
    assert_ne!(x, a);
    assert_eq!(xe, 0);
}

async fn group_offsets_round_trip(m: &Metadata) {
    let c = cluster(m).await;
    m.create_topic(&c, "t", 2, &BTreeMap::new()).await.unwrap();
    let o = |p: i32, offset: i64, md: Option<&str>| CommittedOffset {
        topic: "t".into(),
        partition: p,
        offset,
        leader_epoch: 3,
        metadata: md.map(String::from),
        commit_time_ms: 0,
    };
    m.commit_offsets(&c, "g1", &[o(0, 10, Some("meta")), o(1, 20, None)])
        .await
        .unwrap();
    m.commit_offsets(&c, "g1", &[o(0, 11, Some(""))])
        .await
        .unwrap();
    m.commit_offsets(&c, "g2", &[o(0, 5, None)]).await.unwrap();
    let got = m.group_offsets(&c, "g1").await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(
        (
            got[0].offset,
            got[0].metadata.as_deref(),
            got[0].leader_epoch
        ),
        (11, Some(""), 3)
    );
    assert_eq!(
        (got[1].offset, got[1].metadata.as_deref()),
        (20, None),
        "null metadata stays null"
    );
    assert!(got[0].commit_time_ms > 0);
    assert_eq!(
        m.groups_with_offsets(&c).await.unwrap(),
        vec!["g1".to_string(), "g2".to_string()]
    );
    assert_eq!(
        m.delete_group_offsets(&c, "g1", Some(("t", &[1])))
            .await
            .unwrap(),
        1
    );
    assert_eq!(m.group_offsets(&c, "g1").await.unwrap().len(), 1);
    assert_eq!(m.delete_group_offsets(&c, "g2", None).await.unwrap(), 1);
    assert!(m.delete_topic(&c, "t").await.unwrap());
    assert!(
        m.group_offsets(&c, "g1").await.unwrap().is_empty(),
        "a deleted topic takes its offsets along"
    );
}

async fn group_commit_keeps_segment_order_and_files(m: &Metadata) {
    let c = cluster(m).await;
    let t = m.create_topic(&c, "gc", 1, &BTreeMap::new()).await.unwrap();
    let (k1, k2) = (seg(), seg());
    let g1 = vec![AppendGroup {
        topic_id: t.id,
        partition: 0,
        batches: vec![plain(2, 1)],
    }];
    let g2 = vec![
        AppendGroup {
            topic_id: t.id,
            partition: 0,
            batches: vec![plain(3, 2)],
        },
        AppendGroup {
            topic_id: t.id,
            partition: 9,
            batches: vec![plain(1, 2)],
        },
    ];
    let out = m
        .commit_segments(
            "agent",
            &[
                SegmentCommit {
                    object_key: &k1,
                    size_bytes: 10,
                    groups: &g1,
                },
                SegmentCommit {
                    object_key: &k2,
                    size_bytes: 20,
                    groups: &g2,
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0],
        vec![GroupOutcome::Appended {
            base_offset: 0,
            log_start_offset: 0
        }]
    );
    assert_eq!(
        out[1][0],
        GroupOutcome::Appended {
            base_offset: 2,
            log_start_offset: 0
        }
    );
    assert_eq!(out[1][1], GroupOutcome::Failed(3));
    let rows = m.batches_from(t.id, 0, 0, 10).await.unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.base_offset, &*r.object_key))
            .collect::<Vec<_>>(),
        vec![(0, k1.as_str()), (2, k2.as_str())]
    );
}

async fn retention_and_file_collection(m: &Metadata) {
    let c = cluster(m).await;
    let t = m.create_topic(&c, "r", 1, &BTreeMap::new()).await.unwrap();
    let (k1, k2) = (seg(), seg());
    let g = |ts: i64| {
        vec![AppendGroup {
            topic_id: t.id,
            partition: 0,
            batches: vec![plain(10, ts)],
        }]
    };
    m.commit_segment(&k1, 100, "a", &g(100)).await.unwrap();
    m.commit_segment(&k2, 100, "a", &g(200)).await.unwrap();
    assert_eq!(
        m.first_offset_at_or_after(t.id, 0, 150).await.unwrap(),
        Some(10)
    );
    assert_eq!(
        m.first_offset_at_or_after(t.id, 0, 999).await.unwrap(),
        None
    );
    assert_eq!(
        m.start_for_size_limit(t.id, 0, 100).await.unwrap(),
        Some(10),
        "one 100-byte batch fits"
    );
    assert_eq!(m.start_for_size_limit(t.id, 0, 500).await.unwrap(), None);
    assert!(m
        .unreferenced_files(i64::MAX)
        .await
        .unwrap()
        .iter()
        .all(|(_, k)| *k != k1));
    assert_eq!(m.advance_log_start(t.id, 0, 10).await.unwrap(), 1);
    assert_eq!(
        m.advance_log_start(t.id, 0, 5).await.unwrap(),
        0,
        "never backwards"
    );
    assert_eq!(
        m.advance_log_start(t.id, 0, 99).await.unwrap(),
        0,
        "never past the end"
    );
    let s = m.partition_state(t.id, 0).await.unwrap().unwrap();
    assert_eq!((s.log_start_offset, s.next_offset), (10, 20));
    let unref = m.unreferenced_files(i64::MAX).await.unwrap();
    let (id, _) = unref
        .iter()
        .find(|(_, k)| *k == k1)
        .expect("the expired batch's file is unreferenced")
        .clone();
    assert!(!unref.iter().any(|(_, k)| *k == k2));
    let known = m
        .known_object_keys(&[k1.clone(), k2.clone(), "segments/none".to_string()])
        .await
        .unwrap();
    assert!(known.contains(&k1) && known.contains(&k2) && known.len() == 2);
    m.delete_file_row(id).await.unwrap();
    assert!(!m
        .known_object_keys(std::slice::from_ref(&k1))
        .await
        .unwrap()
        .contains(&k1));
}

async fn clusters_and_api_keys(m: &Metadata) {
    use broker::auth::scram::Hash;
    let org = format!("org-{}", uuid::Uuid::new_v4().simple());
    let vc = m.create_virtual_cluster(&org, "prod").await.unwrap();
    assert!(matches!(
        m.create_virtual_cluster(&org, "prod").await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(m.virtual_clusters(&org).await.unwrap(), vec![vc.clone()]);
    assert_eq!(
        m.virtual_cluster(&vc.id).await.unwrap().unwrap().name,
        "prod"
    );
    let (key, secret) = m.create_api_key(&vc.id, "ci", "alice").await.unwrap();
    let cred = m.api_key_credential(&key.id).await.unwrap().unwrap();
    assert_eq!(cred.cluster_id, vc.id);
    assert!(!cred.revoked);
    assert!(cred
        .sha256
        .matches_password(Hash::Sha256, secret.as_bytes()));
    assert!(cred
        .sha512
        .matches_password(Hash::Sha512, secret.as_bytes()));
    assert!(!cred.sha256.matches_password(Hash::Sha256, b"guess"));
    m.touch_api_key(&key.id, 1234).await.unwrap();
    let listed = m.api_keys(&vc.id).await.unwrap();
    assert_eq!(
        (
            listed.len(),
            listed[0].last_used_at_ms,
            listed[0].created_by.as_str()
        ),
        (1, Some(1234), "alice")
    );
    assert!(m.revoke_api_key(&key.id).await.unwrap());
    assert!(!m.revoke_api_key(&key.id).await.unwrap(), "already revoked");
    assert!(
        m.api_key_credential(&key.id)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(m.api_key_credential("KNOPE").await.unwrap().is_none());
}

async fn cluster_rename_settings_delete(m: &Metadata) {
    let org = format!("org-{}", uuid::Uuid::new_v4().simple());
    let a = m.create_virtual_cluster(&org, "a").await.unwrap();
    m.create_virtual_cluster(&org, "b").await.unwrap();
    assert!(matches!(
        m.rename_virtual_cluster(&a.id, "b").await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(m.rename_virtual_cluster(&a.id, "prod").await.unwrap());
    assert!(m
        .update_cluster_settings(&a.id, false, 3, 3_600_000)
        .await
        .unwrap());
    let got = m.virtual_cluster(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (
            got.name.as_str(),
            got.auto_create_topics,
            got.default_partitions,
            got.default_retention_ms
        ),
        ("prod", false, 3, 3_600_000)
    );
    m.create_topic(&a.id, "t1", 2, &BTreeMap::new())
        .await
        .unwrap();
    let (key, _) = m.create_api_key(&a.id, "k", "me").await.unwrap();
    let deleted = m.delete_virtual_cluster(&a.id).await.unwrap();
    assert_eq!(deleted, vec!["t1".to_string()]);
    assert!(m.virtual_cluster(&a.id).await.unwrap().is_none());
    assert!(m.topic(&a.id, "t1").await.unwrap().is_none());
    assert!(m.api_key_credential(&key.id).await.unwrap().is_none());
}

async fn sqlite() -> (Metadata, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    (Metadata::connect(&url).await.unwrap(), dir)
}

async fn postgres() -> Option<Metadata> {
    let url = std::env::var("SLUICE_TEST_POSTGRES_URL").ok()?;
    Some(
        Metadata::connect(&url)
            .await
            .expect("SLUICE_TEST_POSTGRES_URL is reachable"),
    )
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (m, _dir) = super::sqlite().await;
                    super::$name(&m).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(m) = super::postgres().await else {
                        eprintln!("skipped: SLUICE_TEST_POSTGRES_URL is not set, the Postgres half of the store suite did not run");
                        return;
                    };
                    super::$name(&m).await;
                }
            )*
        }
    };
}

conformance!(
    cluster_id_is_stable,
    topic_lifecycle,
    commit_assigns_offsets_and_indexes_batches,
    concurrent_commits_leave_no_gaps,
    producer_state_survives_between_commits,
    producer_ids_and_epochs,
    group_offsets_round_trip,
    group_commit_keeps_segment_order_and_files,
    retention_and_file_collection,
    clusters_and_api_keys,
    cluster_rename_settings_delete,
    node_ids_requested_free_taken_expired,
    an_agent_holds_one_node_id,
    heartbeat_after_takeover_returns_false,
    deregistration_frees_the_id,
    live_agents_lists_only_fresh_rows,
    agents_publish_their_tls_listener,
    concurrent_registrations_get_distinct_ids,
    lease_acquire_renew_refuse_take_over,
    lease_release,
    concurrent_lease_acquisition_has_one_winner,
    acls_stored_filtered_deleted,
    client_quotas_set_replaced_removed,
);

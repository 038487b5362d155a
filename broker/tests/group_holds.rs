//! Offset resets hold a group empty whichever agent coordinates it: two in-process agents
//! share one metadata database; the reset is asked at the agent that does not coordinate.
//!
//! Runs on SQLite always and on Postgres (a fresh database next to
//! `SLUICE_TEST_POSTGRES_URL`'s, so no other test's agents join this cluster) when set.

use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::group_holds::{self, GroupHold};
use broker::groups::state::Join;
use broker::inspect::{self, InspectError, ResetTo};
use broker::{Broker, BrokerConfig, Metrics, Running};
use tokio_util::sync::CancellationToken;

const DEFAULT: &str = "default";

async fn agent(url: &str) -> Running {
    let mut config = BrokerConfig::for_tests(url.to_string());
    config.lag_interval = Duration::from_secs(3600);
    config.retention_interval = Duration::from_secs(3600);
    broker::start(config, Metrics::new(), CancellationToken::new())
        .await
        .unwrap()
}

fn join_request() -> Join {
    Join {
        member_id: String::new(),
        instance_id: None,
        client_id: "hold-test".to_string(),
        client_host: "/127.0.0.1".to_string(),
        session_timeout_ms: 30_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".to_string(),
        protocols: vec![("range".to_string(), bytes::Bytes::new())],
        member_id_required: false,
    }
}

async fn resets_hold_at_the_coordinator(url: &str) {
    let (a, b) = (agent(url).await, agent(url).await);
    let (a, b): (Arc<Broker>, Arc<Broker>) = (a.broker.clone(), b.broker.clone());
    // Both see both (the live list refreshes every second).
    let started = Instant::now();
    while a.membership().live().len() < 2 || b.membership().live().len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "agents never met"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A group that agent `a` coordinates, seen the same from `b`.
    let group = (0..)
        .map(|i| format!("held-{i}-{}", uuid::Uuid::new_v4().simple()))
        .find(|g| a.membership().is_coordinator(DEFAULT, g))
        .unwrap();
    assert!(!b.membership().is_coordinator(DEFAULT, &group));
    let topic = format!("held-topic-{}", uuid::Uuid::new_v4().simple());
    inspect::create_topic(&a, DEFAULT, &topic, 2, &[])
        .await
        .unwrap();

    // A live member at the coordinator: a reset asked at `b` is refused with its count.
    let joined = a.groups().join(DEFAULT, &group, join_request()).await;
    assert_eq!(joined.error, 0);
    // The console at `b` shows the member the coordinator published.
    let started = Instant::now();
    loop {
        let d = inspect::group_detail(&b, DEFAULT, &group).await;
        if let Ok(d) = d {
            if d.members.len() == 1 {
                assert_eq!(d.members[0].client_id, "hold-test");
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no snapshot of the group at b"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed = inspect::list_groups(&b, DEFAULT).await.unwrap();
    assert!(listed.iter().any(|g| g.group_id == group && g.members == 1));
    match inspect::reset_group_offsets(&b, DEFAULT, &group, Some(&topic), ResetTo::Earliest).await {
        Err(InspectError::Conflict(m)) => assert!(m.contains("1 active members"), "{m}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(
        a.groups()
            .leave(DEFAULT, &group, &[(joined.member_id.clone(), None)]),
        [0]
    );

    // Once it left, the hold is granted by the coordinator, and a joiner there waits.
    let hold = group_holds::hold(&b, DEFAULT, &group).await.unwrap();
    assert!(matches!(hold, GroupHold::Remote(_)));
    assert!(
        group_holds::hold(&b, DEFAULT, &group).await.is_err(),
        "one hold at a time"
    );
    let joiner = {
        let (a, group) = (a.clone(), group.clone());
        tokio::spawn(async move { a.groups().join(DEFAULT, &group, join_request()).await })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!joiner.is_finished(), "the join waits for the hold");
    let released = Instant::now();
    hold.release().await;
    let joined = tokio::time::timeout(Duration::from_secs(5), joiner)
        .await
        .expect("the join goes ahead once the hold ends")
        .unwrap();
    assert_eq!(joined.error, 0);
    eprintln!(
        "join admitted {:?} after the hold ended",
        released.elapsed()
    );
    a.groups()
        .leave(DEFAULT, &group, &[(joined.member_id.clone(), None)]);

    // The reset itself from `b`: offsets land in the shared database.
    let resets = inspect::reset_group_offsets(&b, DEFAULT, &group, Some(&topic), ResetTo::Latest)
        .await
        .unwrap();
    assert_eq!(resets.len(), 2);
    let stored = a.meta().group_offsets(DEFAULT, &group).await.unwrap();
    assert_eq!(stored.len(), 2);
    // And the hold row is gone: a second reset goes through at once.
    inspect::reset_group_offsets(&b, DEFAULT, &group, Some(&topic), ResetTo::Earliest)
        .await
        .unwrap();

    // Neither agent has run a lag pass: both compute the group's current lag on request.
    for agent in [&a, &b] {
        let lag = inspect::ClusterView::new(agent.clone())
            .current_lag(DEFAULT, &group)
            .await
            .unwrap()
            .expect("a group with committed offsets has a lag");
        assert_eq!((lag.partitions.len(), lag.total_offset_lag), (2, 0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    resets_hold_at_the_coordinator(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres() {
    use sqlx::{Connection, Executor};
    let Ok(base) = std::env::var("SLUICE_TEST_POSTGRES_URL") else {
        eprintln!("skipped: SLUICE_TEST_POSTGRES_URL is not set, the Postgres half did not run");
        return;
    };
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h.to_string(), format!("?{q}")),
        None => (base.clone(), String::new()),
    };
    let server = head.rsplit_once('/').expect("url ends in /DATABASE").0;
    let name = format!("holds_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    admin
        .execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .unwrap();
    resets_hold_at_the_coordinator(&format!("{server}/{name}{query}")).await;
}

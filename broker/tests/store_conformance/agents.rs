//! The agent registry and job leases, part of the store conformance suite.
//!
//! Node ids are one space per database, and on Postgres every test of the suite shares one
//! database: the registry tests take [`AGENTS_TABLE`] and start from an empty `agents`
//! table. Job leases are keyed by a unique job name per test, so they need neither.
//!
//! Emptying the table also removes rows another process wrote to the same database: point
//! `SLUICE_TEST_POSTGRES_URL` at a database used only by tests.

use std::collections::BTreeSet;

use broker::store::{AgentLoad, Metadata, NewAgent, StoreError};
use tokio::sync::{Mutex, MutexGuard};

/// Serialises the tests that use the `agents` table (within this test binary).
static AGENTS_TABLE: Mutex<()> = Mutex::const_new(());

const TIMEOUT: i64 = 10_000;
const T0: i64 = 1_000_000;

async fn empty_agents_table(m: &Metadata) -> MutexGuard<'static, ()> {
    let guard = AGENTS_TABLE.lock().await;
    if m.backend() == "postgres" {
        let url = std::env::var("SLUICE_TEST_POSTGRES_URL").expect("set for the postgres run");
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query("DELETE FROM agents")
            .execute(&pool)
            .await
            .unwrap();
    }
    guard
}

fn agent(name: &str) -> NewAgent {
    NewAgent {
        agent_id: format!("{name}-{}", uuid::Uuid::new_v4().simple()),
        host: format!("{name}.internal"),
        port: 9092,
        tls: None,
        rack: None,
        agent_group: "default".into(),
        roles: vec!["produce".into(), "fetch".into()],
        version: "0.1.0".into(),
        started_at_ms: T0,
    }
}

fn new_job() -> String {
    format!("job-{}", uuid::Uuid::new_v4().simple())
}

pub(crate) async fn node_ids_requested_free_taken_expired(m: &Metadata) {
    let _table = empty_agents_table(m).await;
    let (a, b, c, d) = (agent("a"), agent("b"), agent("c"), agent("d"));

    // A requested id that is free is taken as is.
    assert_eq!(m.register_agent(&a, Some(3), T0, TIMEOUT).await.unwrap(), 3);
    // Held by a live agent: refused, with what an operator needs to act.
    let err = m
        .register_agent(&b, Some(3), T0 + 1_000, TIMEOUT)
        .await
        .unwrap_err();
    match &err {
        StoreError::NodeIdTaken {
            node_id,
            holder,
            seen_ms_ago,
        } => assert_eq!(
            (*node_id, holder.as_str(), *seen_ms_ago),
            (3, "a.internal:9092", 1_000)
        ),
        other => panic!("expected NodeIdTaken, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("node id 3 is held by a live agent")
            && message.contains("1000 ms ago")
            && message.contains("pick another --node-id or stop that agent"),
        "{message}"
    );
    // Already ours: taken again, with the new details.
    let a_moved = NewAgent {
        port: 9192,
        ..a.clone()
    };
    assert_eq!(
        m.register_agent(&a_moved, Some(3), T0 + 1_000, TIMEOUT)
            .await
            .unwrap(),
        3
    );
    // Without a request: the smallest free ids, around the requested one.
    assert_eq!(m.register_agent(&b, None, T0, TIMEOUT).await.unwrap(), 1);
    assert_eq!(m.register_agent(&c, None, T0, TIMEOUT).await.unwrap(), 2);
    assert_eq!(m.register_agent(&d, None, T0, TIMEOUT).await.unwrap(), 4);
    // Registering again is idempotent: an agent keeps the id it has.
    assert_eq!(m.register_agent(&b, None, T0, TIMEOUT).await.unwrap(), 1);
    let live = m.live_agents(T0 + 1_000, TIMEOUT).await.unwrap();
    let ids: Vec<(i32, i32)> = live.iter().map(|x| (x.node_id, x.port)).collect();
    assert_eq!(ids, vec![(1, 9092), (2, 9092), (3, 9192), (4, 9092)]);

    // Everyone but c heartbeats; once c is older than the timeout its id is free again.
    let t1 = T0 + TIMEOUT + 5_000;
    for (id, x) in [(1, &b), (3, &a), (4, &d)] {
        assert!(m
            .heartbeat_agent(id, &x.agent_id, t1, AgentLoad::default())
            .await
            .unwrap());
    }
    // A heartbeat carries the agent's load, which the registry lists.
    let load = AgentLoad {
        produce_bytes_per_s: 5_000_000,
        fetch_bytes_per_s: 7_000_000,
        inflight_bytes: 1 << 20,
    };
    assert!(m.heartbeat_agent(1, &b.agent_id, t1, load).await.unwrap());
    let listed = m.live_agents(t1, TIMEOUT).await.unwrap();
    assert_eq!(listed[0].load, load);
    assert_eq!(
        listed[1].load,
        AgentLoad::default(),
        "an agent reporting no load"
    );
    let e = agent("e");
    assert_eq!(m.register_agent(&e, None, t1, TIMEOUT).await.unwrap(), 2);
    assert!(
        !m.heartbeat_agent(2, &c.agent_id, t1, AgentLoad::default())
            .await
            .unwrap(),
        "c's id was taken over"
    );
    assert_eq!(
        m.live_agents(t1, TIMEOUT).await.unwrap()[1].agent_id,
        e.agent_id
    );

    // An expired row is taken over on request too.
    let t2 = t1 + TIMEOUT + 1;
    assert!(m
        .heartbeat_agent(2, &e.agent_id, t2, AgentLoad::default())
        .await
        .unwrap());
    let f = agent("f");
    assert_eq!(m.register_agent(&f, Some(4), t2, TIMEOUT).await.unwrap(), 4);
    assert!(!m
        .heartbeat_agent(4, &d.agent_id, t2, AgentLoad::default())
        .await
        .unwrap());
    // A request far from the handed-out range leaves the range alone.
    let g = agent("g");
    assert_eq!(
        m.register_agent(&g, Some(1_000), t2, TIMEOUT)
            .await
            .unwrap(),
        1_000
    );
    // Node id 0 is a valid Kafka id on request; negative ones are not.
    assert_eq!(
        m.register_agent(&agent("z"), Some(0), t2, TIMEOUT)
            .await
            .unwrap(),
        0
    );
    assert!(matches!(
        m.register_agent(&agent("n"), Some(-1), t2, TIMEOUT).await,
        Err(StoreError::InvalidNodeId(-1))
    ));
    // Expired ids (1 and 3: b and a stopped at t1) are reused smallest first.
    let h = agent("h");
    assert_eq!(m.register_agent(&h, None, t2, TIMEOUT).await.unwrap(), 1);
}

pub(crate) async fn an_agent_holds_one_node_id(m: &Metadata) {
    let _table = empty_agents_table(m).await;
    let a = agent("a");
    assert_eq!(m.register_agent(&a, None, T0, TIMEOUT).await.unwrap(), 1);
    // Asking for another id gives the first one up.
    assert_eq!(m.register_agent(&a, Some(5), T0, TIMEOUT).await.unwrap(), 5);
    let live = m.live_agents(T0, TIMEOUT).await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!((live[0].node_id, &live[0].agent_id), (5, &a.agent_id));
    assert!(!m
        .heartbeat_agent(1, &a.agent_id, T0, AgentLoad::default())
        .await
        .unwrap());
}

pub(crate) async fn heartbeat_after_takeover_returns_false(m: &Metadata) {
    let _table = empty_agents_table(m).await;
    let (a, b) = (agent("a"), agent("b"));
    assert_eq!(m.register_agent(&a, Some(7), T0, TIMEOUT).await.unwrap(), 7);
    assert!(m
        .heartbeat_agent(7, &a.agent_id, T0 + 5_000, AgentLoad::default())
        .await
        .unwrap());
    // Still live at 5 s + timeout − 1.
    assert!(m
        .register_agent(&b, Some(7), T0 + 5_000 + TIMEOUT, TIMEOUT)
        .await
        .is_err());
    // a stalls; b takes the id once a's last heartbeat is older than the timeout.
    let later = T0 + 5_000 + TIMEOUT + 1;
    assert_eq!(
        m.register_agent(&b, Some(7), later, TIMEOUT).await.unwrap(),
        7
    );
    assert!(
        !m.heartbeat_agent(7, &a.agent_id, later + 1, AgentLoad::default())
            .await
            .unwrap(),
        "the old holder learns it lost the id"
    );
    assert!(m
        .heartbeat_agent(7, &b.agent_id, later + 1, AgentLoad::default())
        .await
        .unwrap());
    // The old holder cannot deregister the new holder's row either.
    assert!(!m.deregister_agent(7, &a.agent_id).await.unwrap());
    let live = m.live_agents(later + 1, TIMEOUT).await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].agent_id, b.agent_id);
    assert_eq!(live[0].last_seen_ms, later + 1);
}

pub(crate) async fn deregistration_frees_the_id(m: &Metadata) {
    let _table = empty_agents_table(m).await;
    let (a, b) = (agent("a"), agent("b"));
    assert_eq!(m.register_agent(&a, None, T0, TIMEOUT).await.unwrap(), 1);
    assert!(m.deregister_agent(1, &a.agent_id).await.unwrap());
    assert!(!m.deregister_agent(1, &a.agent_id).await.unwrap());
    assert!(m.live_agents(T0, TIMEOUT).await.unwrap().is_empty());
    assert!(!m
        .heartbeat_agent(1, &a.agent_id, T0, AgentLoad::default())
        .await
        .unwrap());
    // Free at once, without waiting for the timeout.
    assert_eq!(m.register_agent(&b, Some(1), T0, TIMEOUT).await.unwrap(), 1);
}

pub(crate) async fn agents_publish_their_tls_listener(m: &Metadata) {
    let _table = empty_agents_table(m).await;
    let a = NewAgent {
        tls: Some(("a.internal".into(), 9093)),
        ..agent("a")
    };
    let b = agent("b");
    m.register_agent(&a, Some(1), T0, TIMEOUT).await.unwrap();
    m.register_agent(&b, Some(2), T0, TIMEOUT).await.unwrap();
    let tls = |live: &[broker::store::AgentInfo]| {
        live.iter()
            .map(|x| (x.node_id, x.port, x.tls_host.clone(), x.tls_port))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        tls(&m.live_agents(T0, TIMEOUT).await.unwrap()),
        vec![
            (1, 9092, Some("a.internal".to_string()), Some(9093)),
            (2, 9092, None, None)
        ]
    );
    // Re-registering (a restart with other listeners) replaces the address, both ways.
    let a_plain = NewAgent {
        tls: None,
        ..a.clone()
    };
    let b_tls = NewAgent {
        tls: Some(("b.internal".into(), 19093)),
        ..b.clone()
    };
    m.register_agent(&a_plain, Some(1), T0 + 1, TIMEOUT)
        .await
        .unwrap();
    m.register_agent(&b_tls, Some(2), T0 + 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        tls(&m.live_agents(T0 + 1, TIMEOUT).await.unwrap()),
        vec![
            (1, 9092, None, None),
            (2, 9092, Some("b.internal".to_string()), Some(19093))
        ]
    );
}

pub(crate) async fn live_agents_lists_only_fresh_rows(m: &Metadata) {
    let _table = empty_agents_table(m).await;
    let a = NewAgent {
        rack: Some("eu-west-1a".into()),
        agent_group: "producers".into(),
        roles: vec!["produce".into()],
        ..agent("a")
    };
    let (b, c) = (agent("b"), agent("c"));
    m.register_agent(&b, Some(9), T0, TIMEOUT).await.unwrap();
    m.register_agent(&a, Some(5), T0 + 4_000, TIMEOUT)
        .await
        .unwrap();
    m.register_agent(&c, Some(7), T0 + 8_000, TIMEOUT)
        .await
        .unwrap();

    let all = m.live_agents(T0 + 8_000, TIMEOUT).await.unwrap();
    assert_eq!(
        all.iter().map(|x| x.node_id).collect::<Vec<_>>(),
        vec![5, 7, 9]
    );
    let five = &all[0];
    assert_eq!(five.agent_id, a.agent_id);
    assert_eq!((five.host.as_str(), five.port), ("a.internal", 9092));
    assert_eq!(five.rack.as_deref(), Some("eu-west-1a"));
    assert_eq!(five.agent_group, "producers");
    assert_eq!(five.roles, vec!["produce".to_string()]);
    assert_eq!(five.version, "0.1.0");
    assert_eq!((five.started_at_ms, five.last_seen_ms), (T0, T0 + 4_000));
    assert_eq!(all[1].rack, None);
    assert_eq!(
        all[1].roles,
        vec!["produce".to_string(), "fetch".to_string()]
    );

    // Seen exactly `timeout` ago is still live; a millisecond more is not.
    let ids = |at: i64| async move {
        m.live_agents(at, TIMEOUT)
            .await
            .unwrap()
            .into_iter()
            .map(|x| x.node_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(T0 + TIMEOUT).await, vec![5, 7, 9]);
    assert_eq!(ids(T0 + TIMEOUT + 1).await, vec![5, 7]);
    assert_eq!(ids(T0 + 4_000 + TIMEOUT + 1).await, vec![7]);
    assert!(ids(T0 + 8_000 + TIMEOUT + 1).await.is_empty());
}

pub(crate) async fn concurrent_registrations_get_distinct_ids(m: &Metadata) {
    let _table = empty_agents_table(m).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            m.register_agent(&agent(&format!("free-{i}")), None, T0, TIMEOUT)
                .await
        }));
    }
    let mut ids = BTreeSet::new();
    for task in tasks {
        ids.insert(task.await.unwrap().unwrap());
    }
    assert_eq!(ids, (1..=8).collect(), "eight agents, eight distinct ids");

    // Eight agents asking for the same id: exactly one gets it.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            m.register_agent(&agent(&format!("same-{i}")), Some(42), T0, TIMEOUT)
                .await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(id) => {
                assert_eq!(id, 42);
                won += 1;
            }
            Err(StoreError::NodeIdTaken { node_id: 42, .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);

    // Eight agents racing for the expired ids 1..=8 (all stale by now) and the free ones.
    let later = T0 + TIMEOUT + 1;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            m.register_agent(&agent(&format!("late-{i}")), None, later, TIMEOUT)
                .await
        }));
    }
    let mut ids = BTreeSet::new();
    for task in tasks {
        ids.insert(task.await.unwrap().unwrap());
    }
    assert_eq!(ids, (1..=8).collect(), "expired ids reused, none twice");
    assert_eq!(m.live_agents(later, TIMEOUT).await.unwrap().len(), 8);
}

pub(crate) async fn lease_acquire_renew_refuse_take_over(m: &Metadata) {
    let job = new_job();
    let ttl = 1_000;
    assert_eq!(m.lease_holder(&job, T0).await.unwrap(), None);
    assert_eq!(m.acquire_lease(&job, "a", T0, ttl).await.unwrap(), Some(1));
    // Renewal keeps the token and moves the expiry.
    assert_eq!(
        m.acquire_lease(&job, "a", T0 + 500, ttl).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        m.lease_holder(&job, T0 + 1_200).await.unwrap(),
        Some(("a".to_string(), 1))
    );
    // Refused while a's lease is live (renewed until T0 + 1500).
    assert_eq!(
        m.acquire_lease(&job, "b", T0 + 1_499, ttl).await.unwrap(),
        None
    );
    assert_eq!(m.lease_holder(&job, T0 + 1_500).await.unwrap(), None);
    // Expired: b takes over with the next token, and a is now the one refused.
    assert_eq!(
        m.acquire_lease(&job, "b", T0 + 1_500, ttl).await.unwrap(),
        Some(2)
    );
    assert_eq!(
        m.acquire_lease(&job, "a", T0 + 1_600, ttl).await.unwrap(),
        None
    );
    assert_eq!(
        m.lease_holder(&job, T0 + 1_600).await.unwrap(),
        Some(("b".to_string(), 2))
    );
    assert_eq!(
        m.acquire_lease(&job, "a", T0 + 3_000, ttl).await.unwrap(),
        Some(3)
    );
    // A holder taking back its own expired lease starts a new tenure: work fenced by the
    // old token may have been interrupted.
    assert_eq!(
        m.acquire_lease(&job, "a", T0 + 5_000, ttl).await.unwrap(),
        Some(4)
    );
    // Other jobs are independent.
    assert_eq!(
        m.acquire_lease(&new_job(), "b", T0, ttl).await.unwrap(),
        Some(1)
    );
}

pub(crate) async fn lease_release(m: &Metadata) {
    let job = new_job();
    let ttl = 60_000;
    assert_eq!(m.acquire_lease(&job, "a", T0, ttl).await.unwrap(), Some(1));
    assert!(!m.release_lease(&job, "b").await.unwrap(), "not b's lease");
    assert_eq!(
        m.lease_holder(&job, T0).await.unwrap(),
        Some(("a".to_string(), 1))
    );
    assert!(m.release_lease(&job, "a").await.unwrap());
    assert!(
        !m.release_lease(&job, "a").await.unwrap(),
        "already released"
    );
    assert_eq!(m.lease_holder(&job, T0).await.unwrap(), None);
    // Free at once, and the token keeps growing.
    assert_eq!(
        m.acquire_lease(&job, "b", T0 + 1, ttl).await.unwrap(),
        Some(2)
    );
    assert_eq!(m.acquire_lease(&job, "a", T0 + 1, ttl).await.unwrap(), None);
    assert!(m.release_lease(&job, "b").await.unwrap());
    assert_eq!(
        m.acquire_lease(&job, "b", T0 + 2, ttl).await.unwrap(),
        Some(3)
    );
    assert!(
        !m.release_lease(&new_job(), "a").await.unwrap(),
        "no such job"
    );
}

pub(crate) async fn concurrent_lease_acquisition_has_one_winner(m: &Metadata) {
    let job = new_job();
    let ttl = 1_000;
    for (round, now) in [(1, T0), (2, T0 + 5_000)] {
        // Round 1 races for a new row, round 2 for an expired one.
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (m, job) = (m.clone(), job.clone());
            tasks.push(tokio::spawn(async move {
                let holder = format!("holder-{i}");
                let token = m.acquire_lease(&job, &holder, now, ttl).await;
                (holder, token)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (holder, token) = task.await.unwrap();
            if let Some(token) = token.unwrap() {
                winners.push((holder, token));
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(winners[0].1, round);
        assert_eq!(
            m.lease_holder(&job, now).await.unwrap(),
            Some(winners[0].clone())
        );
    }
}

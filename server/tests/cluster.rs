//! Several agents on one metadata database and one bucket form one cluster: Metadata from
//! any agent lists every live agent, leaders spread over them, FindCoordinator agrees,
//! group requests at another agent get NOT_COORDINATOR, a stopped agent leaves, records
//! produced through one agent are read through another.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{consume, consumer, decode, http_get, producer, raw_request, Server};
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse,
    MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;

/// Three agents sharing one database and bucket ([`common::shared_stores`]: Postgres and S3
/// when the test environment has them), in racks z1, z2, z3.
fn three_agents(dir: &std::path::Path, extra: &[&str]) -> Vec<Server> {
    let (db, bucket) = common::shared_stores(dir);
    eprintln!(
        "three agents on {} and {bucket}",
        db.split('@').next_back().unwrap_or(&db)
    );
    (1..=3)
        .map(|i| {
            let own = dir.join(format!("agent{i}"));
            std::fs::create_dir_all(&own).unwrap();
            let rack = format!("z{i}");
            let mut args = vec![
                "--database-url",
                &db,
                "--bucket-url",
                &bucket,
                "--rack",
                &rack,
                "--agent-session-timeout",
                "2s",
            ];
            args.extend_from_slice(extra);
            Server::start(&own, &args)
        })
        .collect()
}

fn metadata(addr: &str, topic: &str) -> MetadataResponse {
    let req = MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_name(Some(StrBytes::from_string(topic.to_string()).into())),
    ]));
    decode(raw_request(addr, ApiKey::Metadata, 12, &req), 12)
}

/// Waits until Metadata from `addr` lists `n` brokers.
fn wait_for_brokers(addr: &str, n: usize) -> MetadataResponse {
    let started = Instant::now();
    loop {
        let m = metadata(addr, "spread");
        if m.brokers.len() == n {
            return m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "metadata from {addr} lists {} brokers, not {n}",
            m.brokers.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn coordinator(addr: &str, group: &str) -> i32 {
    let req = FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string()));
    let r: FindCoordinatorResponse = decode(raw_request(addr, ApiKey::FindCoordinator, 2, &req), 2);
    assert_eq!(r.error_code, 0);
    r.node_id.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_are_one_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let mut agents = three_agents(dir.path(), &["--default-partitions", "12"]);
    let addrs: Vec<String> = agents.iter().map(|a| a.kafka.clone()).collect();

    // Every agent lists all three, with distinct node ids and their racks.
    let mut ids = BTreeSet::new();
    for a in &addrs {
        let m = wait_for_brokers(a, 3);
        let listed: BTreeSet<i32> = m.brokers.iter().map(|b| b.node_id.0).collect();
        assert_eq!(listed.len(), 3);
        ids.extend(listed);
        let leaders: BTreeSet<i32> = m.topics[0]
            .partitions
            .iter()
            .map(|p| p.leader_id.0)
            .collect();
        assert!(leaders.len() > 1, "leaders spread over agents: {leaders:?}");
        assert!(m.brokers.iter().all(|b| b.rack.is_some()));
    }
    assert_eq!(ids.len(), 3, "all agents agree on the same three ids");

    // The agents API lists them too (no credentials needed while --kafka-auth none).
    let (status, body) = http_get(&agents[2].http, "/api/v1/agents");
    assert_eq!(status, 200, "{body}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(listed.len(), 3, "{body}");
    for a in &listed {
        assert!(ids.contains(&(a["node_id"].as_i64().unwrap() as i32)));
        assert!(a["advertised"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(a["rack"].as_str().unwrap().starts_with('z'));
        assert_eq!(a["agent_group"], "default");
        assert!(a["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "produce"));
        assert!(a["last_seen_ms"].as_i64().unwrap() > 0);
    }

    // FindCoordinator agrees across agents, and only the coordinator serves the group.
    for g in ["orders", "billing", "audit", "search"] {
        let c: BTreeSet<i32> = addrs.iter().map(|a| coordinator(a, g)).collect();
        assert_eq!(c.len(), 1, "one coordinator for group {g}: {c:?}");
        let chosen = *c.iter().next().unwrap();
        for a in &addrs {
            let m = metadata(a, "spread");
            let me = m
                .brokers
                .iter()
                .find(|b| a.ends_with(&format!(":{}", b.port)))
                .expect("the agent lists itself")
                .node_id
                .0;
            let hb = HeartbeatRequest::default()
                .with_group_id(StrBytes::from_string(g.to_string()).into())
                .with_member_id(StrBytes::from_static_str("nobody"))
                .with_generation_id(1);
            let r: HeartbeatResponse = decode(raw_request(a, ApiKey::Heartbeat, 3, &hb), 3);
            if me == chosen {
                assert_ne!(r.error_code, 16, "the coordinator answers for {g}");
            } else {
                assert_eq!(r.error_code, 16, "NOT_COORDINATOR from {a} for {g}");
            }
        }
    }

    // A client in zone z1 is given agent 1 only: produce through it, read through zone z3.
    let p = producer(
        &addrs[0],
        &[("acks", "all"), ("client.id", "writer-sluice_az=z1")],
    );
    let m = metadata(&addrs[0], "zoned");
    assert_eq!(m.topics[0].partitions.len(), 12);
    for i in 0..120 {
        p.send(
            FutureRecord::to("zoned")
                .key("k")
                .payload(&format!("v{i}"))
                .partition(i % 12),
            Duration::from_secs(30),
        )
        .await
        .expect("produced through agent 1");
    }
    // The agent that took them reports a produce rate in its heartbeat.
    let started = Instant::now();
    loop {
        let (_, body) = http_get(&agents[1].http, "/api/v1/agents");
        let listed: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        let busy: Vec<&serde_json::Value> = listed
            .iter()
            .filter(|a| a["produce_bytes_per_s"].as_i64().unwrap() > 0)
            .collect();
        if let [one] = busy[..] {
            assert!(addrs[0].ends_with(&format!(
                ":{}",
                one["advertised"]
                    .as_str()
                    .unwrap()
                    .rsplit(':')
                    .next()
                    .unwrap()
            )));
            assert!(one["inflight_bytes"].as_i64().is_some());
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no single agent reports the produce load: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let c = consumer(&addrs[2], &[("client.id", "reader-sluice_az=z3")]);
    let got = consume(
        &c,
        "zoned",
        &(0..12).map(|p| (p, Offset::Beginning)).collect::<Vec<_>>(),
        120,
        Duration::from_secs(60),
    );
    assert_eq!(got.len(), 120, "every record once");
    for part in 0..12 {
        let offsets: Vec<i64> = got
            .iter()
            .filter(|g| g.partition == part)
            .map(|g| g.offset)
            .collect();
        assert_eq!(offsets, (0..10).collect::<Vec<i64>>(), "in order on {part}");
    }

    // A stopped agent leaves Metadata; a restarted one rejoins.
    assert!(agents[1].terminate(Duration::from_secs(10)).is_some());
    wait_for_brokers(&addrs[0], 2);
    agents[1].start_again();
    wait_for_brokers(&addrs[0], 3);
    // kill -9: gone within the session timeout.
    agents[2].kill9();
    wait_for_brokers(&addrs[0], 2);
}

fn member(bootstrap: &str, group: &str) -> rdkafka::consumer::BaseConsumer {
    rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300")
        .create()
        .expect("consumer config is valid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_spread_over_agents_consumes_each_record_once() {
    use rdkafka::consumer::{CommitMode, Consumer};
    use rdkafka::Message;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let dir = tempfile::tempdir().unwrap();
    let agents = three_agents(dir.path(), &["--default-partitions", "12"]);
    let addrs: Vec<String> = agents.iter().map(|a| a.kafka.clone()).collect();
    for a in &addrs {
        wait_for_brokers(a, 3);
    }
    let topic = "spread-group";
    metadata(&addrs[0], topic); // auto-creates it with 12 partitions
    let group = "across-agents";

    // Three members, each bootstrapping at a different agent.
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let assigned: Arc<Mutex<HashMap<usize, usize>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let members: Vec<_> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let c = member(a, group);
            c.subscribe(&[topic]).unwrap();
            let (seen, assigned, stop) = (seen.clone(), assigned.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match c.poll(Duration::from_millis(100)) {
                        Some(Ok(m)) => {
                            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
                            *seen.lock().unwrap().entry(key).or_default() += 1;
                            c.commit_message(&m, CommitMode::Sync).expect("commit");
                        }
                        Some(Err(e)) => eprintln!("consumer {i}: {e}"),
                        None => {}
                    }
                    let n = c.assignment().map(|a| a.count()).unwrap_or(0);
                    assigned.lock().unwrap().insert(i, n);
                }
            })
        })
        .collect();
    // Wait until the group is stable with all three sharing the 12 partitions.
    let started = Instant::now();
    loop {
        let a = assigned.lock().unwrap().clone();
        if a.len() == 3 && a.values().all(|n| *n > 0) && a.values().sum::<usize>() == 12 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "group did not settle: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let p = producer(&addrs[1], &[("acks", "all")]);
    for i in 0..600 {
        let key = format!("k{i}");
        p.send(
            FutureRecord::to(topic)
                .key(&key)
                .payload("v")
                .partition(i % 12),
            Duration::from_secs(30),
        )
        .await
        .expect("produced");
    }
    let started = Instant::now();
    while seen.lock().unwrap().len() < 600 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "consumed {} of 600",
            seen.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for m in members {
        m.join().unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 600);
    assert!(
        seen.values().all(|n| *n == 1),
        "every record once: {:?}",
        seen.iter()
            .filter(|(_, n)| **n != 1)
            .take(5)
            .collect::<Vec<_>>()
    );
    // The commits are in the database: a fresh member at another agent sees them all.
    let check = member(&addrs[2], group);
    let mut tpl = rdkafka::TopicPartitionList::new();
    for part in 0..12 {
        tpl.add_partition(topic, part);
    }
    let committed = check
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    for e in committed.elements() {
        assert_eq!(
            e.offset(),
            Offset::Offset(50),
            "partition {}",
            e.partition()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_moves_when_its_coordinator_is_killed() {
    use rdkafka::consumer::{CommitMode, Consumer};
    use rdkafka::Message;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let dir = tempfile::tempdir().unwrap();
    let mut agents = three_agents(dir.path(), &["--default-partitions", "6"]);
    let addrs: Vec<String> = agents.iter().map(|a| a.kafka.clone()).collect();
    for a in &addrs {
        wait_for_brokers(a, 3);
    }
    let (topic, group) = ("moving", "follows-the-coordinator");
    metadata(&addrs[0], topic);
    // Which agent coordinates the group, and two others to bootstrap from.
    let coordinator_id = coordinator(&addrs[0], group);
    let by_id = |id: i32| {
        let m = metadata(&addrs[0], topic);
        let b = m.brokers.iter().find(|b| b.node_id.0 == id).unwrap();
        addrs
            .iter()
            .position(|a| a.ends_with(&format!(":{}", b.port)))
            .unwrap()
    };
    let doomed = by_id(coordinator_id);
    let live: Vec<usize> = (0..3).filter(|i| *i != doomed).collect();

    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let bootstrap = live
        .iter()
        .map(|i| addrs[*i].clone())
        .collect::<Vec<_>>()
        .join(",");
    let consumer = {
        let c = member(&bootstrap, group);
        c.subscribe(&[topic]).unwrap();
        let (seen, stop) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                    let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
                    *seen.lock().unwrap().entry(key).or_default() += 1;
                    // A commit during the move may fail; the record is then read again.
                    let _ = c.commit_message(&m, CommitMode::Sync);
                }
            }
        })
    };
    let p = producer(&addrs[live[0]], &[("acks", "all"), ("client.id", "p")]);
    let produce = |from: usize, to: usize| {
        let p = p.clone();
        async move {
            for i in from..to {
                let key = format!("k{i}");
                p.send(
                    FutureRecord::to(topic)
                        .key(&key)
                        .payload("v")
                        .partition((i % 6) as i32),
                    Duration::from_secs(30),
                )
                .await
                .expect("produced");
            }
        }
    };
    let wait_for = |n: usize| {
        let seen = seen.clone();
        async move {
            let started = Instant::now();
            while seen.lock().unwrap().len() < n {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "consumed {} of {n}",
                    seen.lock().unwrap().len()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    produce(0, 120).await;
    wait_for(120).await;

    // kill -9 of the coordinator: the group moves to a live agent and keeps consuming.
    agents[doomed].kill9();
    let moved = Instant::now();
    produce(120, 240).await;
    wait_for(240).await;
    eprintln!("group consumed again {:?} after the kill", moved.elapsed());
    assert!(moved.elapsed() < Duration::from_secs(30));
    let now_coordinator = coordinator(&addrs[live[0]], group);
    assert_ne!(now_coordinator, coordinator_id, "the group moved");
    assert_eq!(now_coordinator, coordinator(&addrs[live[1]], group));
    stop.store(true, Ordering::Relaxed);
    consumer.join().unwrap();
    // Committed offsets were never lost: at most the record being handled at the kill is
    // read twice per partition.
    let seen = seen.lock().unwrap().clone();
    let again = seen.values().filter(|n| **n > 1).count();
    assert!(again <= 6, "{again} records read twice");
}

/// A transaction whose coordinator agent is killed with SIGKILL mid-way is aborted by
/// another agent once it times out: never half visible, and its transactional id is
/// served again by the survivors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_outlives_its_coordinator() {
    use kafka_protocol::messages::{
        DescribeTransactionsRequest, DescribeTransactionsResponse, TransactionalId,
    };
    use rdkafka::producer::Producer;

    let dir = tempfile::tempdir().unwrap();
    let mut agents = three_agents(
        dir.path(),
        &[
            "--default-partitions",
            "6",
            "--transaction-abort-interval",
            "500ms",
        ],
    );
    let addrs: Vec<String> = agents.iter().map(|a| a.kafka.clone()).collect();
    for a in &addrs {
        wait_for_brokers(a, 3);
    }
    let (topic, txn_id) = ("txn-kill", "killed-coordinator");
    metadata(&addrs[0], topic);
    let req = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_static_str(txn_id))
        .with_key_type(1);
    let found: FindCoordinatorResponse =
        decode(raw_request(&addrs[0], ApiKey::FindCoordinator, 2, &req), 2);
    assert_eq!(found.error_code, 0);
    let doomed = addrs
        .iter()
        .position(|a| a.ends_with(&format!(":{}", found.port)))
        .unwrap();
    let live: Vec<String> = (0..3)
        .filter(|i| *i != doomed)
        .map(|i| addrs[i].clone())
        .collect();

    let txn_producer = |bootstrap: &str| {
        let p = producer(
            bootstrap,
            &[
                ("transactional.id", txn_id),
                ("transaction.timeout.ms", "4000"),
                ("message.timeout.ms", "4000"),
            ],
        );
        p.init_transactions(Duration::from_secs(30)).unwrap();
        p
    };
    let first = txn_producer(&addrs.join(","));
    first.begin_transaction().unwrap();
    for i in 0..12 {
        first
            .send(
                FutureRecord::to(topic)
                    .key(&format!("open{i}"))
                    .payload("v")
                    .partition(i % 6),
                Duration::from_secs(10),
            )
            .await
            .expect("acked");
    }
    agents[doomed].kill9();
    // librdkafka would wait for the dead coordinator when dropped.
    std::mem::forget(first);

    // A surviving agent aborts it after its timeout (taking the job's lease over).
    let describe = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(StrBytes::from_static_str(txn_id))]);
    let started = Instant::now();
    loop {
        let r: DescribeTransactionsResponse = decode(
            raw_request(&live[0], ApiKey::DescribeTransactions, 0, &describe),
            0,
        );
        let state = r.transaction_states[0].transaction_state.to_string();
        if state == "CompleteAbort" {
            break;
        }
        assert_eq!(state, "Ongoing");
        assert!(started.elapsed() < Duration::from_secs(40), "still {state}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let read = |isolation: &str| {
        let c = consumer(&live.join(","), &[("isolation.level", isolation)]);
        let starts: Vec<(i32, Offset)> = (0..6).map(|p| (p, Offset::Beginning)).collect();
        consume(&c, topic, &starts, usize::MAX, Duration::from_secs(4))
    };
    assert_eq!(
        read("read_committed").len(),
        0,
        "an aborted transaction stays invisible"
    );
    assert_eq!(read("read_uncommitted").len(), 12);

    // The survivors serve the transactional id: a new instance commits.
    let second = txn_producer(&live.join(","));
    second.begin_transaction().unwrap();
    for i in 0..6 {
        second
            .send(
                FutureRecord::to(topic)
                    .key(&format!("new{i}"))
                    .payload("v")
                    .partition(i),
                Duration::from_secs(10),
            )
            .await
            .expect("acked");
    }
    second.commit_transaction(Duration::from_secs(30)).unwrap();
    let got = read("read_committed");
    let keys: BTreeSet<String> = got
        .iter()
        .map(|g| String::from_utf8(g.key.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(keys, (0..6).map(|i| format!("new{i}")).collect());
}

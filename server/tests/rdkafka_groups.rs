//! Consumer groups with librdkafka's balanced consumer against the real broker binary.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{metric, producer, Server};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};

fn group_consumer(bootstrap: &str, group: &str, strategy: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300")
        .set("partition.assignment.strategy", strategy)
        .create()
        .expect("consumer config is valid")
}

async fn produce_keys(bootstrap: &str, topic: &str, from: usize, to: usize) {
    let p = producer(bootstrap, &[("acks", "all")]);
    let mut pending = Vec::new();
    for i in from..to {
        let key = format!("k{i}");
        let record = FutureRecord::to(topic)
            .key(&key)
            .payload("v")
            .partition((i % 12) as i32);
        pending.push(p.send_result(record).map_err(|(e, _)| e).expect("queued"));
    }
    for f in pending {
        f.await.expect("delivery").expect("acked");
    }
}

/// Polls until stopped, recording keys and committing synchronously after each record.
fn run_member(
    c: BaseConsumer,
    seen: Arc<Mutex<HashSet<String>>>,
    stop: Arc<AtomicBool>,
) -> BaseConsumer {
    while !stop.load(Ordering::Relaxed) {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let key = String::from_utf8(m.key().unwrap_or_default().to_vec()).unwrap();
                seen.lock().unwrap().insert(key);
                // Commit failures during a rebalance are normal; the record is re-read.
                let _ = c.commit_message(&m, CommitMode::Sync);
            }
            Some(Err(e)) => eprintln!("consumer error (retried): {e}"),
            None => {}
        }
    }
    c
}

fn assigned(c: &BaseConsumer) -> usize {
    c.assignment().map(|a| a.count()).unwrap_or(0)
}

async fn group_scenario(strategy: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        &[
            "--default-partitions",
            "12",
            "--group-initial-rebalance-delay",
            "200ms",
        ],
    );
    let topic = "shared";
    let group = format!("g-{}", strategy.replace(',', "-"));
    produce_keys(&server.kafka, topic, 0, 3000).await;

    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut members = Vec::new();
    for _ in 0..3 {
        let c = group_consumer(&server.kafka, &group, strategy);
        c.subscribe(&[topic]).unwrap();
        let (seen, stop) = (seen.clone(), stop.clone());
        members.push(std::thread::spawn(move || run_member(c, seen, stop)));
    }
    // Mid-stream: more records, one member leaves, a new one joins.
    tokio::time::sleep(Duration::from_secs(3)).await;
    produce_keys(&server.kafka, topic, 3000, 4500).await;
    stop.store(true, Ordering::Relaxed);
    let mut stopped: Vec<BaseConsumer> = members.drain(..).map(|m| m.join().unwrap()).collect();
    drop(stopped.remove(0)); // closing sends LeaveGroup
    stop.store(false, Ordering::Relaxed);
    let joined_at = Instant::now();
    let newcomer = group_consumer(&server.kafka, &group, strategy);
    newcomer.subscribe(&[topic]).unwrap();
    for c in stopped {
        let (seen, stop) = (seen.clone(), stop.clone());
        members.push(std::thread::spawn(move || run_member(c, seen, stop)));
    }
    let (seen2, stop2) = (seen.clone(), stop.clone());
    let rebalance = Arc::new(Mutex::new(None));
    let rebalance2 = rebalance.clone();
    members.push(std::thread::spawn(move || {
        while assigned(&newcomer) == 0 && joined_at.elapsed() < Duration::from_secs(30) {
            let _ = newcomer.poll(Duration::from_millis(50));
        }
        *rebalance2.lock().unwrap() = Some(joined_at.elapsed());
        run_member(newcomer, seen2, stop2)
    }));
    produce_keys(&server.kafka, topic, 4500, 6000).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().len() < 6000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = rebalance
        .lock()
        .unwrap()
        .expect("the newcomer got partitions");
    eprintln!("[{strategy}] newcomer assigned after {took:?} (rebalance of a 3-member group)");
    let group_label = format!("group=\"{group}\"");
    assert_eq!(
        metric(
            &server.http,
            "sluice_consumer_group_members",
            &[&group_label]
        ),
        Some(3.0)
    );
    assert_eq!(
        metric(
            &server.http,
            "sluice_consumer_group_state",
            &[&group_label, "state=\"Stable\""]
        ),
        Some(1.0)
    );
    assert!(
        metric(
            &server.http,
            "sluice_consumer_group_generation_id",
            &[&group_label]
        )
        .unwrap()
            >= 2.0
    );
    // Let the last commits land, then stop everyone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let consumers: Vec<BaseConsumer> = members.into_iter().map(|m| m.join().unwrap()).collect();
    let total: usize = consumers.iter().map(assigned).sum();
    assert_eq!(
        total, 12,
        "the remaining three members share all 12 partitions"
    );
    let mut owned = HashSet::new();
    for c in &consumers {
        for e in c.assignment().unwrap().elements() {
            assert!(
                owned.insert(e.partition()),
                "partition {} assigned twice",
                e.partition()
            );
        }
    }
    assert_eq!(
        seen.lock().unwrap().len(),
        6000,
        "every record consumed at least once"
    );
    drop(consumers);

    // Committed offsets equal the end of every partition, and survive a server restart.
    let mut tpl = TopicPartitionList::new();
    for p in 0..12 {
        tpl.add_partition(topic, p);
    }
    let check = |bootstrap: &str| {
        let c = group_consumer(bootstrap, &group, strategy);
        let committed = c
            .committed_offsets(tpl.clone(), Duration::from_secs(10))
            .unwrap();
        let offsets: HashMap<i32, Offset> = committed
            .elements()
            .iter()
            .map(|e| (e.partition(), e.offset()))
            .collect();
        for p in 0..12 {
            assert_eq!(
                offsets[&p],
                Offset::Offset(500),
                "partition {p} committed at its end"
            );
        }
    };
    check(&server.kafka);
    server.restart();
    check(&server.kafka);

    // A restarted member resumes right after the committed offset.
    produce_keys(&server.kafka, topic, 6000, 6012).await;
    let c = group_consumer(&server.kafka, &group, strategy);
    c.subscribe(&[topic]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 12 && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            got.push((m.partition(), m.offset()));
        }
    }
    got.sort();
    assert_eq!(
        got,
        (0..12).map(|p| (p, 500)).collect::<Vec<_>>(),
        "only the new records, from the committed offsets"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_group_shares_partitions_and_keeps_offsets() {
    group_scenario("range,roundrobin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_group_shares_partitions_and_keeps_offsets() {
    group_scenario("cooperative-sticky").await;
}

//! Time lag end to end: a paused consumer's lag grows on /metrics and falls to 0 once it
//! catches up; the JSON lag API serves the current value and the history.

mod common;

use std::time::Duration;

use common::{http_get, metric, producer, Server};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

fn commit(c: &BaseConsumer, topic: &str, offset: i64) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .unwrap();
    c.commit(&tpl, CommitMode::Sync).expect("commit works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_consumer_lag_grows_then_falls_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--lag-interval", "200ms"]);
    let p = producer(&server.kafka, &[]);
    for i in 0..100 {
        p.send(
            FutureRecord::to("lagged").key("k").payload(&format!("{i}")),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    }
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &server.kafka)
        .set("group.id", "lagger")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    commit(&c, "lagged", 10);

    let labels = ["group=\"lagger\"", "topic=\"lagged\"", "partition=\"0\""];
    let mut first = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        first = metric(
            &server.http,
            "sluice_consumer_group_time_lag_seconds",
            &labels,
        )
        .filter(|v| *v > 0.0);
        if first.is_some() {
            break;
        }
    }
    let first = first.expect("time lag appears for the paused consumer");
    assert_eq!(
        metric(&server.http, "sluice_consumer_group_offset_lag", &labels),
        Some(90.0)
    );
    // Producers have stopped; the consumer stays paused: its time lag keeps growing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = metric(
        &server.http,
        "sluice_consumer_group_time_lag_seconds",
        &labels,
    )
    .unwrap();
    assert!(
        later >= first + 1.0,
        "time lag grew from {first} to {later}"
    );
    let max = metric(
        &server.http,
        "sluice_consumer_group_max_time_lag_seconds",
        &["group=\"lagger\""],
    )
    .unwrap();
    assert!(max >= later);

    // It catches up: lag falls to 0.
    commit(&c, "lagged", 100);
    let mut caught_up = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if metric(
            &server.http,
            "sluice_consumer_group_time_lag_seconds",
            &labels,
        ) == Some(0.0)
        {
            caught_up = true;
            break;
        }
    }
    assert!(caught_up, "time lag is 0 once the consumer has everything");
    assert_eq!(
        metric(&server.http, "sluice_consumer_group_offset_lag", &labels),
        Some(0.0)
    );

    let (status, body) = http_get(
        &server.http,
        "/api/v1/clusters/default/consumer-groups/lagger/lag",
    );
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["current"]["total_offset_lag"], 0);
    assert_eq!(json["current"]["partitions"][0]["log_end_offset"], 100);
    assert!(
        !json["history"].as_array().unwrap().is_empty(),
        "history is kept"
    );
    let (status, _) = http_get(
        &server.http,
        "/api/v1/clusters/default/consumer-groups/nobody/lag",
    );
    assert_eq!(status, 404);
    let (status, _) = http_get(
        &server.http,
        "/api/v1/clusters/default/consumer-groups/lagger/lag?window=7y",
    );
    assert_eq!(status, 400);
}

//! Issue 14, point 5: consumer groups as an operator drives them. Offset resets to an
//! offset or by a shift, on chosen partitions, planned with a dry run first (through the
//! JSON API and the group page's Preview / Apply forms); deleting a group and its offsets
//! of one topic with Kafka's rules (refused while members are live or subscribed); and the
//! time-lag trend fields of the group and lag answers.
//!
//! Records are produced over the Kafka port into the built-in `default` cluster; live
//! members join through the broker's coordinator directly (as the Kafka handlers do).

mod common;

use std::net::SocketAddr;

use axum::http::StatusCode;
use broker::groups::state::Join;
use broker::store::CommittedOffset;
use bytes::{BufMut, Bytes, BytesMut};
use common::{app, App, Browser};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolSubscription, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use serde_json::{json, Value};

const GROUPS: &str = "/api/v1/clusters/default/consumer-groups";

fn zigzag(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// An uncompressed v2 batch of `count` records with values "record 0", "record 1", ….
fn batch_of(count: i32) -> Vec<u8> {
    let mut records = Vec::new();
    for i in 0..count {
        let value = format!("record {i}");
        let mut r = vec![0u8]; // attributes
        zigzag(&mut r, 0); // timestamp delta
        zigzag(&mut r, i64::from(i)); // offset delta
        zigzag(&mut r, -1); // no key
        zigzag(&mut r, value.len() as i64);
        r.extend_from_slice(value.as_bytes());
        zigzag(&mut r, 0); // no headers
        zigzag(&mut records, r.len() as i64);
        records.extend_from_slice(&r);
    }
    let now = broker::clock::now_ms();
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&0i32.to_be_bytes()); // batch length, set below
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, set below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes: uncompressed
    b.extend_from_slice(&(count - 1).to_be_bytes()); // last offset delta
    b.extend_from_slice(&now.to_be_bytes()); // first timestamp
    b.extend_from_slice(&now.to_be_bytes()); // max timestamp
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&records);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Produces `count` records to one partition (acks=all); returns the partition's error code.
fn produce_blocking(addr: SocketAddr, topic: &str, partition: i32, count: i32) -> i16 {
    const VERSION: i16 = 9;
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch_of(count).into()))])]);
    let resp: ProduceResponse = common::kafka_call(addr, ApiKey::Produce, VERSION, &req);
    resp.responses[0].partition_responses[0].error_code
}

async fn produce(app: &App, topic: &str, partition: i32, count: i32) {
    let addr = app.running.kafka_addr;
    let topic = topic.to_string();
    let code =
        tokio::task::spawn_blocking(move || produce_blocking(addr, &topic, partition, count))
            .await
            .unwrap();
    assert_eq!(code, 0, "produce accepted");
}

/// Commits offsets for `group` as a client outside the group protocol would.
async fn commit(app: &App, group: &str, offsets: &[(&str, i32, i64)]) {
    let offsets: Vec<CommittedOffset> = offsets
        .iter()
        .map(|(topic, partition, offset)| CommittedOffset {
            topic: topic.to_string(),
            partition: *partition,
            offset: *offset,
            leader_epoch: -1,
            metadata: None,
            commit_time_ms: 0,
        })
        .collect();
    app.running
        .broker
        .meta()
        .commit_offsets("default", group, &offsets)
        .await
        .unwrap();
}

/// A live member of `group` subscribed to `topic` (joined and synced); returns its id.
async fn join(app: &App, group: &str, topic: &str) -> String {
    let mut metadata = BytesMut::new();
    metadata.put_i16(0);
    ConsumerProtocolSubscription::default()
        .with_topics(vec![StrBytes::from_string(topic.to_string())])
        .encode(&mut metadata, 0)
        .unwrap();
    let coordinator = app.running.broker.groups();
    let joined = coordinator
        .join(
            "default",
            group,
            Join {
                member_id: String::new(),
                instance_id: None,
                client_id: "groups-test".to_string(),
                client_host: "/127.0.0.1".to_string(),
                session_timeout_ms: 60_000,
                rebalance_timeout_ms: 60_000,
                protocol_type: "consumer".to_string(),
                protocols: vec![("range".to_string(), metadata.freeze())],
                member_id_required: false,
            },
        )
        .await;
    assert_eq!(joined.error, 0, "joined");
    let synced = coordinator
        .sync(
            "default",
            group,
            &joined.member_id,
            None,
            joined.generation,
            vec![(joined.member_id.clone(), Bytes::new())],
        )
        .await;
    assert_eq!(synced.error, 0, "synced");
    joined.member_id
}

fn leave(app: &App, group: &str, member: &str) {
    let left = app
        .running
        .broker
        .groups()
        .leave("default", group, &[(member.to_string(), None)]);
    assert_eq!(left, [0], "left");
}

/// The group's committed offsets as the API shows them: (topic, partition, offset).
async fn committed(b: &mut Browser<'_>, group: &str) -> Vec<(String, i64, i64)> {
    let (status, g) = b
        .json("GET", &format!("{GROUPS}/{group}"), None, false)
        .await;
    assert_eq!(status, StatusCode::OK, "{g}");
    g["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["topic"].as_str().unwrap().to_string(),
                p["partition"].as_i64().unwrap(),
                p["committed_offset"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// A reset answer as (topic, partition, previous offset, new offset).
fn plan(v: &Value) -> Vec<(String, i64, Option<i64>, i64)> {
    v.as_array()
        .unwrap_or_else(|| panic!("a reset answers an array: {v}"))
        .iter()
        .map(|r| {
            (
                r["topic"].as_str().unwrap().to_string(),
                r["partition"].as_i64().unwrap(),
                r["previous_offset"].as_i64(),
                r["new_offset"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn reset(b: &mut Browser<'_>, group: &str, body: Value) -> (StatusCode, Value) {
    b.json(
        "POST",
        &format!("{GROUPS}/{group}/reset-offsets"),
        Some(body),
        true,
    )
    .await
}

fn row(topic: &str, partition: i64, offset: i64) -> (String, i64, i64) {
    (topic.to_string(), partition, offset)
}

fn moved(
    topic: &str,
    partition: i64,
    previous: Option<i64>,
    new: i64,
) -> (String, i64, Option<i64>, i64) {
    (topic.to_string(), partition, previous, new)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_to_offsets_and_shifts_are_planned_then_applied() {
    let app = app().await;
    let mut b = Browser::new(&app);
    b.sign_up("owner@example.com", "Groups").await;
    let view = &app.console.view;
    view.create_topic("default", "orders", 2, &[])
        .await
        .unwrap();
    view.create_topic("default", "fresh", 1, &[]).await.unwrap();
    produce(&app, "orders", 0, 10).await;
    produce(&app, "orders", 1, 5).await;
    commit(&app, "g1", &[("orders", 0, 4), ("orders", 1, 2)]).await;

    // A dry run answers the plan (shifted back by 3, clamped at the log start) and commits
    // nothing.
    let (status, r) = reset(
        &mut b,
        "g1",
        json!({"to": "shift", "shift": -3, "topic": "orders", "dry_run": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(
        plan(&r),
        [
            moved("orders", 0, Some(4), 1),
            moved("orders", 1, Some(2), 0)
        ]
    );
    assert_eq!(
        committed(&mut b, "g1").await,
        [row("orders", 0, 4), row("orders", 1, 2)],
        "a dry run changes nothing"
    );

    // To an offset, on one partition only.
    let (status, r) = reset(
        &mut b,
        "g1",
        json!({"to": "offset", "offset": 7, "topic": "orders", "partitions": [0]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(plan(&r), [moved("orders", 0, Some(4), 7)]);
    assert_eq!(
        committed(&mut b, "g1").await,
        [row("orders", 0, 7), row("orders", 1, 2)]
    );
    // Past the log end: the log end, as Kafka clamps it.
    let (status, r) = reset(
        &mut b,
        "g1",
        json!({"to": "offset", "offset": 999, "topic": "orders", "partitions": [1]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(plan(&r), [moved("orders", 1, Some(2), 5)]);
    // Shift forward on every committed partition (as a string, as forms send it).
    let (status, r) = reset(&mut b, "g1", json!({"to": "shift", "shift": "2"})).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(
        plan(&r),
        [
            moved("orders", 0, Some(7), 9),
            moved("orders", 1, Some(5), 5)
        ]
    );
    assert_eq!(
        committed(&mut b, "g1").await,
        [row("orders", 0, 9), row("orders", 1, 5)]
    );
    // A partition never committed on, named explicitly.
    let (status, r) = reset(
        &mut b,
        "g1",
        json!({"to": "offset", "offset": 0, "topic": "fresh", "partitions": [0], "dry_run": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(plan(&r), [moved("fresh", 0, None, 0)]);

    // Refusals, each with a plain message.
    for (body, want, says) in [
        (
            json!({"to": "earliest", "partitions": [0]}),
            StatusCode::BAD_REQUEST,
            "name the topic",
        ),
        (
            json!({"to": "earliest", "topic": "orders", "partitions": [5]}),
            StatusCode::NOT_FOUND,
            "partition 5 of topic 'orders' does not exist",
        ),
        (
            json!({"to": "shift", "shift": 1, "topic": "fresh"}),
            StatusCode::BAD_REQUEST,
            "no committed offset",
        ),
        (
            json!({"to": "offset", "topic": "orders"}),
            StatusCode::BAD_REQUEST,
            "offset to move to",
        ),
        (
            json!({"to": "sideways"}),
            StatusCode::BAD_REQUEST,
            "Unknown reset target",
        ),
    ] {
        let (status, e) = reset(&mut b, "g1", body.clone()).await;
        assert_eq!(status, want, "{body}: {e}");
        let message = e["error"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body}: {message}");
    }
    assert_eq!(
        committed(&mut b, "g1").await,
        [row("orders", 0, 9), row("orders", 1, 5)],
        "refusals change nothing"
    );

    // The page: Preview renders the plan and an Apply form with the same values, and
    // changes nothing; Apply commits it.
    let page = "/clusters/default/groups/g1";
    let preview = b
        .get(&format!(
            "{page}?preview=1&topic=orders&partitions=&to=offset&time=&offset=3&shift="
        ))
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert!(
        preview.body.contains("id=\"reset-plan\"")
            && preview.body.contains("Apply to 2 partitions"),
        "{}",
        preview.body
    );
    assert_eq!(
        committed(&mut b, "g1").await,
        [row("orders", 0, 9), row("orders", 1, 5)],
        "a preview changes nothing"
    );
    let bad = b
        .get(&format!("{page}?preview=1&to=earliest&partitions=x"))
        .await;
    assert_eq!(bad.status, StatusCode::OK);
    assert!(bad.body.contains("is not a partition"), "{}", bad.body);
    let applied = b
        .submit(
            page,
            &format!("{page}/reset"),
            &[
                ("topic", "orders"),
                ("partitions", ""),
                ("to", "offset"),
                ("time", ""),
                ("offset", "3"),
                ("shift", ""),
            ],
        )
        .await;
    assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.body);
    assert_eq!(applied.location, page);
    assert_eq!(
        committed(&mut b, "g1").await,
        [row("orders", 0, 3), row("orders", 1, 3)]
    );

    // A live member: a dry run still plans; applying is refused.
    let member = join(&app, "g1", "orders").await;
    let (status, r) = reset(
        &mut b,
        "g1",
        json!({"to": "latest", "topic": "orders", "dry_run": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(
        plan(&r),
        [
            moved("orders", 0, Some(3), 10),
            moved("orders", 1, Some(3), 5)
        ]
    );
    let (status, e) = reset(&mut b, "g1", json!({"to": "latest", "topic": "orders"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    leave(&app, "g1", &member);
    assert_eq!(
        committed(&mut b, "g1").await,
        [row("orders", 0, 3), row("orders", 1, 3)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_their_topic_offsets_are_deleted_with_kafkas_rules() {
    let app = app().await;
    let mut b = Browser::new(&app);
    b.sign_up("owner@example.com", "Groups").await;
    let view = &app.console.view;
    view.create_topic("default", "orders", 2, &[])
        .await
        .unwrap();
    view.create_topic("default", "audit", 1, &[]).await.unwrap();
    commit(
        &app,
        "g2",
        &[("orders", 0, 0), ("orders", 1, 0), ("audit", 0, 0)],
    )
    .await;
    let member = join(&app, "g2", "orders").await;
    let offsets = |topic: &str| format!("{GROUPS}/g2/offsets?topic={topic}");

    // OffsetDelete: refused for the topic a live member subscribes to, done for another.
    let (status, e) = b.json("DELETE", &offsets("orders"), None, true).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("subscribe to topic 'orders'"),
        "{e}"
    );
    let (status, e) = b.json("DELETE", &offsets("audit"), None, true).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{e}");
    assert_eq!(
        committed(&mut b, "g2").await,
        [row("orders", 0, 0), row("orders", 1, 0)]
    );
    let (status, _) = b.json("DELETE", &offsets("audit"), None, true).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no offsets left there");
    let (status, _) = b
        .json("DELETE", &format!("{GROUPS}/g2/offsets"), None, true)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a topic is required");

    // DeleteGroups: refused while the member is live (NON_EMPTY_GROUP), done once it left.
    let (status, e) = b.json("DELETE", &format!("{GROUPS}/g2"), None, true).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("1 active member"),
        "{e}"
    );
    assert_eq!(committed(&mut b, "g2").await.len(), 2, "nothing deleted");
    leave(&app, "g2", &member);
    let (status, e) = b.json("DELETE", &format!("{GROUPS}/g2"), None, true).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{e}");
    let (status, _) = b.json("GET", &format!("{GROUPS}/g2"), None, false).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the group is gone");
    let (status, _) = b.json("DELETE", &format!("{GROUPS}/g2"), None, true).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The page: the danger zone deletes a topic's offsets, and the group once its id is
    // typed.
    commit(&app, "g3", &[("orders", 0, 0), ("audit", 0, 0)]).await;
    let page = "/clusters/default/groups/g3";
    let shown = b.get(page).await;
    assert!(
        shown.body.contains("id=\"delete-group\"")
            && shown.body.contains("Delete offsets of audit"),
        "{}",
        shown.body
    );
    let dropped = b
        .submit(
            page,
            &format!("{page}/offsets/delete"),
            &[("topic", "audit")],
        )
        .await;
    assert_eq!(dropped.status, StatusCode::SEE_OTHER, "{}", dropped.body);
    assert_eq!(dropped.location, page);
    assert_eq!(committed(&mut b, "g3").await, [row("orders", 0, 0)]);
    let wrong = b
        .submit(page, &format!("{page}/delete"), &[("confirm", "g4")])
        .await;
    assert_eq!(wrong.status, StatusCode::SEE_OTHER);
    assert_eq!(wrong.location, page, "back to the group, which stays");
    assert_eq!(committed(&mut b, "g3").await.len(), 1);
    let deleted = b
        .submit(page, &format!("{page}/delete"), &[("confirm", "g3")])
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    assert_eq!(deleted.location, "/clusters/default/groups");
    assert_eq!(b.get(page).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_and_lag_answers_carry_the_time_lag_trend() {
    let app = app().await;
    let mut b = Browser::new(&app);
    b.sign_up("owner@example.com", "Groups").await;
    app.console
        .view
        .create_topic("default", "orders", 1, &[])
        .await
        .unwrap();
    produce(&app, "orders", 0, 4).await;
    commit(&app, "g5", &[("orders", 0, 1)]).await;

    // Seconds of history only: no trend yet, so no time to catch up either.
    let (status, g) = b.json("GET", &format!("{GROUPS}/g5"), None, false).await;
    assert_eq!(status, StatusCode::OK, "{g}");
    let (status, lag) = b
        .json("GET", &format!("{GROUPS}/g5/lag"), None, false)
        .await;
    assert_eq!(status, StatusCode::OK, "{lag}");
    for answer in [&g, &lag] {
        let fields = answer.as_object().unwrap();
        for key in ["trend_seconds_per_minute", "catch_up_eta_seconds"] {
            assert!(fields.contains_key(key), "{key} in {answer}");
            assert!(fields[key].is_null(), "{key} without history: {answer}");
        }
    }
    assert_eq!(g["group_id"], "g5", "the group's own fields stay: {g}");
    let page = b.get("/clusters/default/groups/g5").await;
    assert!(
        page.body.contains("id=\"group-trend\"") && page.body.contains("No time-lag trend yet"),
        "{}",
        page.body
    );
}

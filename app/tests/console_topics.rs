//! Console HTTP tests of topics (issue 14, point 4): adding partitions through the API and
//! the topic page (seen afterwards by Kafka's Metadata), the topic list's search, sort and
//! pages, a refused "new topic" form coming back filled in, and the topic page's consumer
//! groups and readable configs. All on the built-in `default` cluster, which the first
//! organisation owns.

mod common;

use std::net::SocketAddr;

use axum::http::StatusCode;
use common::{app, Browser};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;

const TOPICS: &str = "/clusters/default/topics";

/// The partitions Kafka's Metadata (v9) lists for `topic` of the `default` cluster.
fn kafka_partitions(addr: SocketAddr, topic: &str) -> usize {
    const VERSION: i16 = 9;
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_string())),
        ))]));
    let resp: MetadataResponse = common::kafka_call(addr, ApiKey::Metadata, VERSION, &req);
    let t = resp
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))
        .unwrap_or_else(|| panic!("'{topic}' missing from Metadata"));
    assert_eq!(t.error_code, 0, "Metadata error for '{topic}'");
    t.partitions.len()
}

async fn metadata_partitions(addr: SocketAddr, topic: &str) -> usize {
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || kafka_partitions(addr, &topic))
        .await
        .unwrap()
}

fn error_of(v: &serde_json::Value) -> &str {
    v["error"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_grow_to_a_new_total_and_never_shrink() {
    let app = app().await;
    let mut b = Browser::new(&app);
    b.sign_up("ops@example.com", "Ops").await;
    let (status, t) = b
        .json(
            "POST",
            &format!("/api/v1{TOPICS}"),
            Some(json!({"name": "orders", "partitions": 2})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let addr = app.running.kafka_addr;
    // Read once through Kafka first, so the broker's topic cache holds the old count.
    assert_eq!(metadata_partitions(addr, "orders").await, 2);

    let grow = format!("/api/v1{TOPICS}/orders/partitions");
    let (status, t) = b.json("POST", &grow, Some(json!({"count": 6})), true).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(t["name"], "orders");
    assert_eq!(t["partitions"].as_array().map(Vec::len), Some(6), "{t}");
    assert!(t["consumer_groups"].is_array(), "{t}");
    assert_eq!(
        metadata_partitions(addr, "orders").await,
        6,
        "Kafka clients see the new partitions at once"
    );

    let kept = "Topic 'orders' already has 6 partitions; the count can only grow \
                (Kafka cannot remove partitions)";
    for count in [6, 3, 0, -1] {
        let (status, e) = b
            .json("POST", &grow, Some(json!({"count": count})), true)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "count {count}: {e}");
        assert!(error_of(&e).contains(kept), "count {count}: {e}");
    }
    let (status, e) = b
        .json("POST", &grow, Some(json!({"count": 20000})), true)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        error_of(&e).contains("at most 10000 partitions (you asked for 20000)"),
        "{e}"
    );
    let (status, e) = b
        .json(
            "POST",
            &grow,
            Some(json!({"count": 5_000_000_000i64})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert!(error_of(&e).contains("at most 10000 partitions"), "{e}");
    let (status, e) = b.json("POST", &grow, Some(json!({})), true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert!(error_of(&e).contains("Give the new total"), "{e}");
    let (status, e) = b
        .json(
            "POST",
            &format!("/api/v1{TOPICS}/nope/partitions"),
            Some(json!({"count": 3})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
    assert_eq!(
        metadata_partitions(addr, "orders").await,
        6,
        "refusals change nothing"
    );

    // The topic page's form does the same, and says what happened.
    let page = format!("{TOPICS}/orders");
    let form = b.get(&page).await;
    assert!(
        form.body.contains("id=\"add-partitions\"") && form.body.contains("now 6 partitions"),
        "{}",
        form.body
    );
    let grown = b
        .submit(&page, &format!("{page}/partitions"), &[("count", "8")])
        .await;
    assert_eq!(grown.status, StatusCode::SEE_OTHER);
    assert_eq!(grown.location, page);
    let after = b.get(&page).await;
    assert!(
        after.body.contains("now has 8 partitions"),
        "{}",
        after.body
    );
    assert!(
        after.body.contains("8 partitions · 0 records"),
        "{}",
        after.body
    );
    assert_eq!(metadata_partitions(addr, "orders").await, 8);
    let refused = b
        .submit(&page, &format!("{page}/partitions"), &[("count", "4")])
        .await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    let shown = b.get(&page).await;
    assert!(
        shown
            .body
            .contains("already has 8 partitions; the count can only grow"),
        "{}",
        shown.body
    );
    assert_eq!(metadata_partitions(addr, "orders").await, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topic_list_searches_sorts_and_pages() {
    let app = app().await;
    let mut b = Browser::new(&app);
    b.sign_up("ops@example.com", "Ops").await;
    let view = &app.console.view;
    for i in 0..120 {
        view.create_topic("default", &format!("t{i:03}"), 1, &[])
            .await
            .unwrap();
    }
    for (name, partitions) in [
        ("big", 7),
        ("orders", 3),
        ("orders.dlq", 1),
        ("payments", 2),
    ] {
        view.create_topic("default", name, partitions, &[])
            .await
            .unwrap();
    }
    let row = |name: &str| format!("href=\"{TOPICS}/{name}\"");

    // Page 1 of 3, by name: big, orders, orders.dlq, payments, t000 … t045.
    let first = b.get(TOPICS).await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(
        first.body.contains("Showing 1–50 of 124 topics"),
        "{}",
        first.body
    );
    assert!(first.body.contains(&row("big")) && first.body.contains(&row("t045")));
    assert!(!first.body.contains(&row("t046")));
    assert!(first.body.contains("rel=\"next\"") && !first.body.contains("rel=\"prev\""));
    // The create form comes before the list, folded away.
    let form_at = first.body.find("id=\"create-topic\"").expect("create form");
    let list_at = first.body.find("id=\"topics\"").expect("topic table");
    assert!(form_at < list_at, "the form is above the list");
    assert!(
        !first.body.contains("<details open"),
        "folded while topics exist"
    );

    let second = b.get(&format!("{TOPICS}?page=2")).await;
    assert!(
        second.body.contains("Showing 51–100 of 124 topics"),
        "{}",
        second.body
    );
    assert!(second.body.contains(&row("t046")) && second.body.contains(&row("t095")));
    assert!(!second.body.contains(&row("t045")) && !second.body.contains(&row("t096")));
    assert!(second.body.contains("rel=\"prev\"") && second.body.contains("rel=\"next\""));
    let third = b.get(&format!("{TOPICS}?page=3")).await;
    assert!(
        third.body.contains("Showing 101–124 of 124 topics"),
        "{}",
        third.body
    );
    assert!(third.body.contains(&row("t119")) && !third.body.contains("rel=\"next\""));
    let beyond = b.get(&format!("{TOPICS}?page=9")).await;
    assert!(
        beyond.body.contains("Showing 101–124"),
        "a page past the end shows the last"
    );

    // Search: part of the name, any letter case; the box keeps what was typed.
    let found = b.get(&format!("{TOPICS}?q=ORD")).await;
    assert!(
        found.body.contains("Showing 1–2 of 2 topics"),
        "{}",
        found.body
    );
    assert!(found.body.contains(&row("orders")) && found.body.contains(&row("orders.dlq")));
    assert!(!found.body.contains(&row("payments")) && !found.body.contains(&row("t000")));
    assert!(found.body.contains("value=\"ORD\""));
    let none = b.get(&format!("{TOPICS}?q=zzz")).await;
    assert!(
        none.body.contains("No topic name contains"),
        "{}",
        none.body
    );

    // Sort by partitions: largest first, and its header now links to the other direction.
    let sorted = b.get(&format!("{TOPICS}?sort=partitions")).await;
    let at = |body: &str, name: &str| body.find(&row(name)).unwrap_or(usize::MAX);
    assert!(at(&sorted.body, "big") < at(&sorted.body, "orders"));
    assert!(at(&sorted.body, "orders") < at(&sorted.body, "payments"));
    assert!(at(&sorted.body, "payments") < at(&sorted.body, "orders.dlq"));
    assert!(
        sorted.body.contains("sort=partitions&amp;dir=asc")
            || sorted.body.contains("sort=partitions&dir=asc"),
        "{}",
        sorted.body
    );
    assert!(sorted.body.contains("aria-sort=\"descending\""));
    let reversed = b.get(&format!("{TOPICS}?sort=name&dir=desc")).await;
    assert!(at(&reversed.body, "t119") < at(&reversed.body, "t118"));
    assert!(
        !reversed.body.contains(&row("big")),
        "big is on the last page now"
    );
    let bad = b.get(&format!("{TOPICS}?sort=colour")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("cannot be sorted by"), "{}", bad.body);

    // The JSON API takes the same query and stays an array.
    let api = format!("/api/v1{TOPICS}");
    let (status, list) = b.json("GET", &format!("{api}?q=ord"), None, false).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orders", "orders.dlq"]);
    let (_, top) = b
        .json(
            "GET",
            &format!("{api}?sort=partitions&limit=1"),
            None,
            false,
        )
        .await;
    assert_eq!(top.as_array().map(Vec::len), Some(1));
    assert_eq!(top[0]["name"], "big");
    let (_, tail) = b
        .json("GET", &format!("{api}?offset=120"), None, false)
        .await;
    assert_eq!(tail.as_array().map(Vec::len), Some(4), "{tail}");
    let (_, all) = b.json("GET", &api, None, false).await;
    assert_eq!(all.as_array().map(Vec::len), Some(124));
    let (status, e) = b
        .json("GET", &format!("{api}?limit=ten"), None, false)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_new_topic_form_comes_back_as_it_was_typed() {
    let app = app().await;
    let mut b = Browser::new(&app);
    b.sign_up("ops@example.com", "Ops").await;
    let typed_configs = "retention.ms=3600000\ncleanup.policy=compact";
    let bad = b
        .submit(
            TOPICS,
            TOPICS,
            &[
                ("name", "orders"),
                ("partitions", "-3"),
                ("configs", typed_configs),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::SEE_OTHER);
    assert_eq!(bad.location, TOPICS);
    let page = b.get(TOPICS).await;
    assert!(
        page.body
            .contains("Partitions must be between 1 and 10000 (you gave -3)."),
        "{}",
        page.body
    );
    assert!(page.body.contains("value=\"orders\""), "{}", page.body);
    assert!(page.body.contains("value=\"-3\""));
    assert!(
        page.body.contains("retention.ms=3600000") && page.body.contains("cleanup.policy=compact")
    );
    assert!(page.body.contains("<details open"), "the form is unfolded");
    // Kept for one page only.
    let again = b.get(TOPICS).await;
    assert!(!again.body.contains("value=\"-3\"") && !again.body.contains("cleanup.policy=compact"));

    let unnamed = b
        .submit(
            TOPICS,
            TOPICS,
            &[("name", "  "), ("partitions", "3"), ("configs", "")],
        )
        .await;
    assert_eq!(unnamed.status, StatusCode::SEE_OTHER);
    let page = b.get(TOPICS).await;
    assert!(
        page.body.contains("Give the topic a name: letters, digits"),
        "{}",
        page.body
    );
    assert!(page.body.contains("value=\"3\""));
    assert!(!page.body.contains("is not a valid topic name"));

    b.submit(
        TOPICS,
        TOPICS,
        &[("name", "my orders"), ("partitions", "1"), ("configs", "")],
    )
    .await;
    let page = b.get(TOPICS).await;
    assert!(page.body.contains("contains a space"), "{}", page.body);
    assert!(page.body.contains("value=\"my orders\""));

    b.submit(
        TOPICS,
        TOPICS,
        &[
            ("name", "orders"),
            ("partitions", "1"),
            ("configs", "retention.ms=soon"),
        ],
    )
    .await;
    let page = b.get(TOPICS).await;
    assert!(page.body.contains("Invalid value"), "{}", page.body);
    assert!(page.body.contains("retention.ms=soon"));

    // Created, then the same name again: a conflict, worded as such.
    let made = b
        .submit(
            TOPICS,
            TOPICS,
            &[("name", "orders"), ("partitions", "2"), ("configs", "")],
        )
        .await;
    assert_eq!(made.location, format!("{TOPICS}/orders"));
    b.submit(
        TOPICS,
        TOPICS,
        &[("name", "orders"), ("partitions", "4"), ("configs", "")],
    )
    .await;
    let page = b.get(TOPICS).await;
    assert!(
        page.body.contains("already exists in this cluster"),
        "{}",
        page.body
    );
    assert!(page.body.contains("value=\"4\""));

    // The API words it the same way.
    let (status, e) = b
        .json(
            "POST",
            &format!("/api/v1{TOPICS}"),
            Some(json!({"name": "x", "partitions": -3})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_of(&e),
        "Partitions must be between 1 and 10000 (you gave -3)."
    );
    let (status, e) = b
        .json(
            "POST",
            &format!("/api/v1{TOPICS}"),
            Some(json!({"name": ""})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_of(&e),
        "Give the topic a name: letters, digits, '.', '_' and '-', up to 249 characters."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topic_page_lists_its_groups_and_reads_its_configs() {
    let app = app().await;
    let mut b = Browser::new(&app);
    b.sign_up("ops@example.com", "Ops").await;
    let view = &app.console.view;
    view.create_topic(
        "default",
        "orders",
        2,
        &[("retention.ms".to_string(), "-1".to_string())],
    )
    .await
    .unwrap();
    view.create_topic("default", "payments", 1, &[])
        .await
        .unwrap();
    // A group that committed offsets on `orders` only (as a consumer's commit stores them).
    let committed = broker::store::CommittedOffset {
        topic: "orders".to_string(),
        partition: 0,
        offset: 0,
        leader_epoch: -1,
        metadata: None,
        commit_time_ms: 0,
    };
    app.running
        .broker
        .meta()
        .commit_offsets("default", "billing", &[committed])
        .await
        .unwrap();

    let page = b.get(&format!("{TOPICS}/orders")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("href=\"/clusters/default/groups/billing\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"topic-groups\""));
    // Configs in words, the raw value on hover.
    assert!(
        page.body.contains("<span title=\"-1\">unlimited</span>"),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains("<span title=\"9223372036854775807\">unlimited</span>"));
    assert!(page
        .body
        .contains("<span title=\"1073741824\">1 GiB</span>"));
    assert!(page.body.contains("<span title=\"86400000\">1 day</span>"));
    let other = b.get(&format!("{TOPICS}/payments")).await;
    assert!(!other.body.contains("groups/billing"));
    assert!(other.body.contains("No consumer group reads this topic"));

    let (status, t) = b
        .json("GET", &format!("/api/v1{TOPICS}/orders"), None, false)
        .await;
    assert_eq!(status, StatusCode::OK);
    let groups = t["consumer_groups"].as_array().expect("consumer_groups");
    assert_eq!(groups.len(), 1, "{t}");
    assert_eq!(groups[0]["group_id"], "billing");
    assert_eq!(groups[0]["state"], "Empty");
    assert_eq!(groups[0]["members"], 0);
    assert_eq!(groups[0]["offset_lag"], 0);
    assert_eq!(
        t["partitions"].as_array().map(Vec::len),
        Some(2),
        "fields as before"
    );
    let (_, p) = b
        .json("GET", &format!("/api/v1{TOPICS}/payments"), None, false)
        .await;
    assert_eq!(p["consumer_groups"], json!([]));
}

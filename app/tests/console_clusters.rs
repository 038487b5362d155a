//! Console HTTP tests of clusters, API keys, topics and groups: the JSON API with keys and
//! sessions, isolation between clusters, and every cluster page.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{app, key_call, Browser};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_keys_and_isolation_over_the_api() {
    let app = app().await;
    let mut b = Browser::new(&app);
    b.sign_up("admin@example.com", "Keys").await;
    let (status, a) = b
        .json(
            "POST",
            "/api/v1/clusters",
            Some(serde_json::json!({"name": "a"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    let (_, bc) = b
        .json(
            "POST",
            "/api/v1/clusters",
            Some(serde_json::json!({"name": "b"})),
            true,
        )
        .await;
    let (a, bc) = (
        a["id"].as_str().unwrap().to_string(),
        bc["id"].as_str().unwrap().to_string(),
    );
    let (status, dup) = b
        .json(
            "POST",
            "/api/v1/clusters",
            Some(serde_json::json!({"name": "a"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{dup}");

    let (status, key_a) = b
        .json(
            "POST",
            &format!("/api/v1/clusters/{a}/api-keys"),
            Some(serde_json::json!({"name": "svc"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let cred_a = format!(
        "{}:{}",
        key_a["key"]["id"].as_str().unwrap(),
        key_a["secret"].as_str().unwrap()
    );
    let (_, key_b) = b
        .json(
            "POST",
            &format!("/api/v1/clusters/{bc}/api-keys"),
            Some(serde_json::json!({"name": "svc"})),
            true,
        )
        .await;
    let cred_b = format!(
        "{}:{}",
        key_b["key"]["id"].as_str().unwrap(),
        key_b["secret"].as_str().unwrap()
    );
    // The secret is not stored or listed.
    let (_, keys) = b
        .json(
            "GET",
            &format!("/api/v1/clusters/{a}/api-keys"),
            None,
            false,
        )
        .await;
    assert!(!keys.to_string().contains(key_a["secret"].as_str().unwrap()));
    assert_eq!(keys[0]["created_by"], "admin@example.com");

    // Cluster settings apply to topics created afterwards.
    let (status, patched) = b
        .json(
            "PATCH",
            &format!("/api/v1/clusters/{a}"),
            Some(serde_json::json!({"default_retention_ms": 7_200_000, "name": "a2"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        (
            patched["name"].as_str(),
            patched["default_retention_ms"].as_i64()
        ),
        (Some("a2"), Some(7_200_000))
    );

    // Each key creates the same topic name in its own cluster.
    for (cluster, cred) in [(&a, &cred_a), (&bc, &cred_b)] {
        let (status, t) = key_call(
            &app,
            "POST",
            &format!("/api/v1/clusters/{cluster}/topics"),
            cred,
            Some(serde_json::json!({"name": "orders", "partitions": 2})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
    }
    let (_, t) = key_call(
        &app,
        "GET",
        &format!("/api/v1/clusters/{a}/topics/orders"),
        &cred_a,
        None,
    )
    .await;
    assert!(
        t["configs"].to_string().contains("7200000"),
        "default retention applied: {t}"
    );
    let (status, _) = key_call(
        &app,
        "GET",
        &format!("/api/v1/clusters/{bc}/topics"),
        &cred_a,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "key of A reading B");
    let (status, _) = key_call(
        &app,
        "DELETE",
        &format!("/api/v1/clusters/{bc}/topics/orders"),
        &cred_a,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = key_call(
        &app,
        "POST",
        &format!("/api/v1/clusters/{bc}/consumer-groups/g/reset-offsets"),
        &cred_a,
        Some(serde_json::json!({"to": "earliest", "topic": "orders"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = key_call(&app, "GET", "/api/v1/team/members", &cred_a, None).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "keys do not reach the organisation"
    );
    let (status, _) = key_call(
        &app,
        "GET",
        &format!("/api/v1/clusters/{a}/topics"),
        "KNOPE:secret",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let wrong_secret = format!("{}:nope", key_a["key"]["id"].as_str().unwrap());
    let (status, _) = key_call(
        &app,
        "GET",
        &format!("/api/v1/clusters/{a}/topics"),
        &wrong_secret,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Bad input gets a clear refusal.
    let (status, e) = key_call(
        &app,
        "POST",
        &format!("/api/v1/clusters/{a}/topics"),
        &cred_a,
        Some(serde_json::json!({"name": "bad name!"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    let (status, e) = key_call(
        &app,
        "PATCH",
        &format!("/api/v1/clusters/{a}/topics/orders/configs"),
        &cred_a,
        Some(serde_json::json!({"set": {"retention.ms": "soon"}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    let (status, t) = key_call(
        &app,
        "PATCH",
        &format!("/api/v1/clusters/{a}/topics/orders/configs"),
        &cred_a,
        Some(serde_json::json!({"set": {"retention.ms": "60000"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert!(t["configs"].to_string().contains("60000"));

    // Revoked keys stop working within seconds.
    let key_id = key_a["key"]["id"].as_str().unwrap();
    let (status, _) = b
        .json(
            "DELETE",
            &format!("/api/v1/clusters/{a}/api-keys/{key_id}"),
            None,
            true,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _) = key_call(
            &app,
            "GET",
            &format!("/api/v1/clusters/{a}/topics"),
            &cred_a,
            None,
        )
        .await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "revoked key still accepted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Deleting a cluster needs its name; it takes its topics with it.
    let (status, _) = b
        .json(
            "DELETE",
            &format!("/api/v1/clusters/{bc}?confirm=wrong"),
            None,
            true,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = b
        .json(
            "DELETE",
            &format!("/api/v1/clusters/{bc}?confirm=b"),
            None,
            true,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(app
        .console
        .view
        .topic(&bc, "orders")
        .await
        .unwrap()
        .is_none());
    let (status, _) = key_call(
        &app,
        "GET",
        &format!("/api/v1/clusters/{bc}/topics"),
        &cred_b,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "its keys went with it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_for_a_cluster() {
    let app = app().await;
    let mut b = Browser::new(&app);
    b.sign_up("p@example.com", "Pages").await;
    let made = b
        .submit("/clusters", "/clusters", &[("name", "prod")])
        .await;
    let cluster = made.location.clone();
    assert!(cluster.starts_with("/clusters/"), "{}", made.location);
    let page = b.get(&cluster).await;
    assert!(page.body.contains("Cluster prod") && page.body.contains("SCRAM-SHA-256"));
    let key = b
        .submit(
            &format!("{cluster}/keys"),
            &format!("{cluster}/keys"),
            &[("name", "svc")],
        )
        .await;
    assert_eq!(key.status, StatusCode::SEE_OTHER);
    let keys = b.get(&format!("{cluster}/keys")).await;
    assert!(keys.body.contains("secret-value"), "secret shown once");
    // The connect snippets carry the new key, with copy buttons.
    let secret = keys
        .body
        .split("class=\"secret-value\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap_or_else(|| panic!("no secret in {}", keys.body))
        .to_string();
    assert!(
        keys.body.contains("id=\"connect-new-key\""),
        "{}",
        keys.body
    );
    assert!(
        keys.body.contains(&format!("sasl.password={secret}")),
        "snippets filled in: {}",
        keys.body
    );
    assert!(!keys.body.contains("KEY_SECRET"));
    assert!(keys.body.contains("data-copy=\"snippet-kcat\""));
    let again = b.get(&format!("{cluster}/keys")).await;
    assert!(!again.body.contains("secret-value"));
    assert!(!again.body.contains(&secret) && !again.body.contains("connect-new-key"));

    let t = b
        .submit(
            &format!("{cluster}/topics"),
            &format!("{cluster}/topics"),
            &[
                ("name", "events"),
                ("partitions", "3"),
                ("configs", "retention.ms=3600000"),
            ],
        )
        .await;
    assert_eq!(t.location, format!("{cluster}/topics/events"));
    let topic = b.get(&t.location).await;
    assert!(topic.body.contains("3600000") && topic.body.contains("id=\"partitions\""));
    let bad = b
        .submit(
            &format!("{cluster}/topics"),
            &format!("{cluster}/topics"),
            &[("name", "x"), ("partitions", "1"), ("configs", "nonsense")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::SEE_OTHER);
    assert!(b
        .get(&format!("{cluster}/topics"))
        .await
        .body
        .contains("is not a config"));
    let msgs = b.get(&format!("{cluster}/topics/events/messages")).await;
    assert_eq!(msgs.status, StatusCode::OK);
    assert!(msgs.body.contains("No records here"));
    let bad_time = b
        .get(&format!(
            "{cluster}/topics/events/messages?from=time&time=yesterday"
        ))
        .await;
    assert!(bad_time.body.contains("Give a start time"));
    assert_eq!(
        b.get(&format!("{cluster}/groups")).await.status,
        StatusCode::OK
    );
    let missing = b.get(&format!("{cluster}/groups/none")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let svg = b
        .get(&format!(
            "{cluster}/groups/none/lag.svg?window=1h&metric=time"
        ))
        .await;
    assert_eq!(
        svg.status,
        StatusCode::NOT_FOUND,
        "no chart for an unknown group"
    );
    let deleted = b
        .submit(
            &format!("{cluster}/topics/events"),
            &format!("{cluster}/topics/events/delete"),
            &[("confirm", "events")],
        )
        .await;
    assert_eq!(deleted.location, format!("{cluster}/topics"));
    // Someone else's cluster is invisible.
    let mut other = Browser::new(&app);
    other.sign_up("q@example.com", "Other").await;
    assert_eq!(other.get(&cluster).await.status, StatusCode::NOT_FOUND);
    // The static assets are served.
    assert!(b.get("/style.css").await.body.contains(".card"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_page_and_api_list_this_agent() {
    let app = app().await;
    let mut b = Browser::new(&app);
    // Before signing in, the page sends the visitor to the log-in form.
    let anonymous = b.get("/agents").await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    b.sign_up("ops@example.com", "Ops").await;
    let page = b.get("/agents").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("(this agent)") && page.body.contains("produce, fetch"),
        "{}",
        page.body
    );
    let api = b.get("/api/v1/agents").await;
    assert_eq!(api.status, StatusCode::OK);
    let listed: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{}", api.body);
    assert_eq!(listed[0]["this_agent"], true);
    assert_eq!(listed[0]["agent_group"], "default");
}

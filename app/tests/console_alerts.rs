//! Console tests of lag alerts: the JSON API's shape (create, list with state, delete),
//! its refusals, who may change rules and who sees whole webhook URLs, the forms, and a
//! firing rule on the overview. (The lag job firing and resolving a rule through a real
//! webhook is `broker/tests/lag_alerts.rs`.)

mod common;

use axum::http::StatusCode;
use broker::inspect::{AlertState, AlertStatus};
use common::{app, key_call, Browser};
use serde_json::json;

/// Port 9 (discard) on loopback: should the agent's lag job resolve the rule this test marks
/// firing, its webhook call goes nowhere.
const HOOK: &str = "http://127.0.0.1:9/services/secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_alerts_over_the_api() {
    let app = app().await;
    let mut b = Browser::new(&app);
    b.sign_up("alerts@example.com", "Alerts").await;
    let (status, cl) = b
        .json(
            "POST",
            "/api/v1/clusters",
            Some(json!({"name": "prod"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{cl}");
    let c = cl["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/clusters/{c}/alerts");

    // Refusals say what is wrong.
    let refused = [
        (
            json!({"group": "orders", "max_time_lag_seconds": 60, "for_seconds": 30, "webhook_url": "ftp://hooks.example.com/x"}),
            "http:// or https://",
        ),
        (
            json!({"group": "orders", "max_time_lag_seconds": 60, "for_seconds": 30, "webhook_url": "not a url"}),
            "not a valid URL",
        ),
        (
            json!({"group": "", "max_time_lag_seconds": 60, "webhook_url": HOOK}),
            "consumer group",
        ),
        (
            json!({"group": "orders", "max_time_lag_seconds": -1, "webhook_url": HOOK}),
            "max_time_lag_seconds",
        ),
        (
            json!({"group": "orders", "max_time_lag_seconds": 60, "for_seconds": -5, "webhook_url": HOOK}),
            "for_seconds",
        ),
        (
            json!({"group": "orders", "webhook_url": HOOK}),
            "max_time_lag_seconds",
        ),
    ];
    for (body, says) in refused {
        let (status, e) = b.json("POST", &path, Some(body), true).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
        assert!(e["error"].as_str().unwrap().contains(says), "{e}");
    }

    // Created: 201 with the rule, ok.
    let (status, made) = b
        .json(
            "POST",
            &path,
            Some(json!({"group": "orders", "max_time_lag_seconds": 60, "for_seconds": 30, "webhook_url": HOOK})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["id"].as_str().expect("an id").to_string();
    assert_eq!(made["cluster"], c.as_str());
    assert_eq!(made["group"], "orders");
    assert_eq!(made["max_time_lag_seconds"], 60.0);
    assert_eq!(made["for_seconds"], 30);
    assert_eq!(made["webhook_url"], HOOK);
    assert_eq!(made["state"], "ok");
    assert!(made["since_ms"].is_null() && made["last_time_lag_seconds"].is_null());

    // Listed with its state, for the cluster or one group.
    let (status, list) = b.json("GET", &path, None, false).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["state"], "ok");
    let (_, other_group) = b
        .json("GET", &format!("{path}?group=billing"), None, false)
        .await;
    assert_eq!(other_group, json!([]));

    // A key of the cluster may read and change its rules, so it sees whole URLs.
    let (_, key) = b
        .json(
            "POST",
            &format!("/api/v1/clusters/{c}/api-keys"),
            Some(json!({"name": "svc"})),
            true,
        )
        .await;
    let cred = format!(
        "{}:{}",
        key["key"]["id"].as_str().unwrap(),
        key["secret"].as_str().unwrap()
    );
    let (status, by_key) = key_call(&app, "GET", &path, &cred, None).await;
    assert_eq!(status, StatusCode::OK, "{by_key}");
    assert_eq!(by_key[0]["webhook_url"], HOOK);

    // A member reads the rules without the URL's secret path, and may not change them.
    let mut member = Browser::new(&app);
    common::join_as(&mut b, &mut member, "member", "member@example.com").await;
    let (status, seen) = member.json("GET", &path, None, false).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen[0]["webhook_url"], "http://127.0.0.1:9/…");
    let (status, _) = member
        .json(
            "POST",
            &path,
            Some(json!({"group": "orders", "max_time_lag_seconds": 1, "webhook_url": HOOK})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = member
        .json("DELETE", &format!("{path}/{id}"), None, true)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Another organisation does not see the cluster.
    let mut stranger = Browser::new(&app);
    stranger.sign_up("stranger@example.com", "Elsewhere").await;
    let (status, _) = stranger.json("GET", &path, None, false).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Firing (as the lag job stores it): the state shows in the API and on the overview.
    let now = broker::clock::now_ms();
    app.running
        .broker
        .meta()
        .save_lag_alert_states(&[(
            id.clone(),
            AlertState {
                state: AlertStatus::Firing,
                since_ms: Some(now),
                above_since_ms: Some(now - 60_000),
                last_time_lag_seconds: Some(125.0),
                evaluated_at_ms: Some(now),
            },
        )])
        .await
        .unwrap();
    let (_, list) = b.json("GET", &path, None, false).await;
    assert_eq!(list[0]["state"], "firing", "{list}");
    assert_eq!(list[0]["since_ms"], now);
    assert_eq!(list[0]["last_time_lag_seconds"], 125.0);
    let overview = b.get("/").await;
    assert!(
        overview.body.contains("Firing lag alerts")
            && overview.body.contains("orders")
            && overview.body.contains("2.1 min"),
        "{}",
        overview.body
    );

    // Deleted: 204, then 404.
    let (status, _) = b.json("DELETE", &format!("{path}/{id}"), None, true).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, e) = b.json("DELETE", &format!("{path}/{id}"), None, true).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
    let (_, list) = b.json("GET", &path, None, false).await;
    assert_eq!(list, json!([]));
    assert!(!b.get("/").await.body.contains("Firing lag alerts"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_alert_forms() {
    let app = app().await;
    let mut b = Browser::new(&app);
    b.sign_up("forms@example.com", "Forms").await;
    let made = b
        .submit("/clusters", "/clusters", &[("name", "prod")])
        .await;
    let cluster = made.location.clone();
    assert!(cluster.starts_with("/clusters/"), "{}", made.location);
    let list = format!("{cluster}/alerts");
    let page = b.get(&list).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("create-lag-alert")
            && page.body.contains("No lag alerts in this cluster yet."),
        "{}",
        page.body
    );

    let fields = |back: &'static str, group: &'static str, max: &'static str| {
        vec![
            ("back", back),
            ("group", group),
            ("max_time_lag_seconds", max),
            ("for_seconds", "60"),
            ("webhook_url", "https://hooks.example.com/x"),
        ]
    };
    let added = b
        .submit(&list, &list, &fields("list", "orders", "300"))
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER);
    assert_eq!(added.location, list);
    let page = b.get(&list).await;
    assert!(
        page.body.contains("Lag alert added") && page.body.contains("hooks.example.com/x"),
        "{}",
        page.body
    );

    // A refusal goes back to where the form was (here a group's page) as a flash message.
    let bad = b
        .submit(&list, &list, &fields("group", "billing", "soon"))
        .await;
    assert_eq!(bad.status, StatusCode::SEE_OTHER);
    assert_eq!(bad.location, format!("{cluster}/groups/billing"));
    assert!(b
        .get(&list)
        .await
        .body
        .contains("Give the time lag threshold as a number of seconds"));

    let c = cluster.trim_start_matches("/clusters/");
    let (_, rules) = b
        .json("GET", &format!("/api/v1/clusters/{c}/alerts"), None, false)
        .await;
    let id = rules[0]["id"].as_str().expect("the rule added").to_string();
    let deleted = b
        .submit(
            &list,
            &format!("{list}/{id}/delete"),
            &[("back", "list"), ("group", "orders")],
        )
        .await;
    assert_eq!(deleted.location, list);
    let page = b.get(&list).await;
    assert!(
        page.body.contains("Lag alert deleted.")
            && page.body.contains("No lag alerts in this cluster yet."),
        "{}",
        page.body
    );
}

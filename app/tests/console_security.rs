//! Console and API tests of issue 12's HTTP findings: the built-in `default` cluster
//! belongs to the first organisation only; `next=` after log-in stays on this site; the
//! log-in throttle slows guessing without locking the owner out; the CSRF token and the
//! session id are renewed at log-in; members cannot list API keys; reserved cluster names.

mod common;

use std::time::{Duration, Instant};

use app::auth::LoginLimiter;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::{app, Browser};

/// A topic in `default`, made by the first organisation's owner.
async fn default_topic(b: &mut Browser<'_>, name: &str) {
    let (status, t) = b
        .json(
            "POST",
            "/api/v1/clusters/default/topics",
            Some(serde_json::json!({"name": name, "partitions": 1})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_cluster_belongs_to_the_first_organisation() {
    let app = app().await;
    let mut owner = Browser::new(&app);
    owner.sign_up("owner@example.com", "First").await;
    default_topic(&mut owner, "owner-secrets").await;
    let (status, list) = owner.json("GET", "/api/v1/clusters", None, false).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        list.as_array().unwrap().iter().any(|c| c["id"] == "default"),
        "the first organisation lists default: {list}"
    );
    assert!(owner.get("/").await.body.contains("Try it"));
    assert_eq!(
        owner
            .get("/clusters/default/topics/owner-secrets/messages")
            .await
            .status,
        StatusCode::OK
    );

    // A stranger signs up (open sign-up) and starts a second organisation.
    let mut stranger = Browser::new(&app);
    let made = stranger.sign_up("stranger@example.com", "Second").await;
    assert_eq!(made.status, StatusCode::SEE_OTHER);
    let (status, list) = stranger.json("GET", "/api/v1/clusters", None, false).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        list.as_array().unwrap().iter().all(|c| c["id"] != "default"),
        "a second organisation must not list default: {list}"
    );
    let home = stranger.get("/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(
        !home.body.contains("/clusters/default") && !home.body.contains("Try it"),
        "{}",
        home.body
    );
    let clusters = stranger.get("/clusters").await;
    assert!(
        !clusters.body.contains("/clusters/default"),
        "{}",
        clusters.body
    );
    for page in [
        "/clusters/default",
        "/clusters/default/topics",
        "/clusters/default/topics/owner-secrets",
        "/clusters/default/topics/owner-secrets/messages",
        "/clusters/default/groups",
    ] {
        let a = stranger.get(page).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{page}: {}", a.body);
        assert!(!a.body.contains("owner-secrets") || page.contains("owner-secrets"));
    }
    for path in [
        "/api/v1/clusters/default",
        "/api/v1/clusters/default/topics",
        "/api/v1/clusters/default/topics/owner-secrets",
        "/api/v1/clusters/default/topics/owner-secrets/messages",
        "/api/v1/clusters/default/consumer-groups",
    ] {
        let (status, body) = stranger.json("GET", path, None, false).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("no cluster 'default'"),
            "{body}"
        );
    }
    // Nor can it change anything there.
    let (status, _) = stranger
        .json(
            "POST",
            "/api/v1/clusters/default/topics",
            Some(serde_json::json!({"name": "planted", "partitions": 1})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = stranger
        .json(
            "DELETE",
            "/api/v1/clusters/default/topics/owner-secrets",
            None,
            true,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let denied = stranger
        .submit(
            "/",
            "/clusters/default/topics",
            &[("name", "planted"), ("partitions", "1"), ("configs", "")],
        )
        .await;
    assert_eq!(denied.status, StatusCode::NOT_FOUND);
    // The owner still has it, and the topic is untouched.
    let (status, t) = owner
        .json(
            "GET",
            "/api/v1/clusters/default/topics/owner-secrets",
            None,
            false,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{t}");
}

//! Console and API tests of issue 12's HTTP findings: the built-in `default` cluster
//! belongs to the first organisation only; `next=` after log-in stays on this site; the
//! log-in throttle slows guessing without locking the owner out; the CSRF token and the
//! session id are renewed at log-in; members cannot list API keys; reserved cluster names.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use app::auth::{LoginLimiter, Throttle};
use app::Settings;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use common::{app, app_with, Browser};

const PASSWORD: &str = "correct horse battery";

/// Posts the log-in form (with the log-in page's CSRF token) from client address `ip`.
async fn log_in_from(
    b: &mut Browser<'_>,
    ip: &str,
    action: &str,
    email: &str,
    password: &str,
) -> common::Answer {
    let csrf = b.get("/login").await.csrf();
    let form = format!(
        "csrf={}&email={}&password={}",
        app::views::enc(&csrf),
        app::views::enc(email),
        app::views::enc(password)
    );
    let mut req = Request::post(action)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    b.send(req).await
}

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
        list.as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "default"),
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
        list.as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != "default"),
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
            body["error"]
                .as_str()
                .unwrap()
                .contains("no cluster 'default'"),
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

#[test]
fn next_paths_stay_on_this_site() {
    use app::views::account::safe_next;
    for ok in [
        "/",
        "/clusters",
        "/clusters/x/topics?from=offset&offset=3",
        "/a%2F%2Fb",
    ] {
        assert_eq!(safe_next(Some(ok)), ok);
    }
    for bad in [
        "//evil.example",
        "/\\evil.example",
        "/\tevil",
        "/\t/evil.example",
        "/\n/x",
        "/\r\nSet-Cookie: x=1",
        "/a\\b",
        "/a b",
        "/caf\u{e9}",
        "https://evil.example",
        "javascript:alert(1)",
        "evil",
        "",
    ] {
        assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
    }
    assert_eq!(safe_next(Some(&format!("/{}", "a".repeat(5000)))), "/");
    assert_eq!(safe_next(None), "/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_follows_only_same_site_next_paths() {
    let app = app().await;
    let mut b = Browser::new(&app);
    b.sign_up("ada@example.com", "Acme").await;
    for (next, to) in [
        ("%2F%09%2Fevil.example", "/"),
        ("%2F%0A%2Fx", "/"),
        ("%2F%0D%0ASet-Cookie%3A%20a%3Db", "/"),
        ("%2F%5Cevil.example", "/"),
        ("%2F%2Fevil.example", "/"),
        ("https%3A%2F%2Fevil.example", "/"),
        ("%2Fclusters", "/clusters"),
    ] {
        b.submit("/", "/logout", &[]).await;
        let a = log_in_from(
            &mut b,
            "10.0.0.1",
            &format!("/login?next={next}"),
            "ada@example.com",
            PASSWORD,
        )
        .await;
        assert_eq!(
            (a.status, a.location.as_str()),
            (StatusCode::SEE_OTHER, to),
            "next={next}: {}",
            a.body
        );
        assert_eq!(b.get("/").await.status, StatusCode::OK, "logged in");
    }
}

#[test]
fn throttle_delays_grow_and_stay_bounded() {
    let l = LoginLimiter::new(Throttle {
        max_entries: 100,
        ..Throttle::default()
    });
    let d: Vec<u128> = (0..10).map(|n| l.delay_after(n).as_millis()).collect();
    assert_eq!(d, [0, 0, 0, 0, 250, 500, 1000, 2000, 4000, 4000]);
    assert_eq!(l.delay_after(u32::MAX), Duration::from_secs(4));
    // Failures from many addresses never grow the table past its bound.
    for i in 0..1000 {
        l.failed(
            &format!("u{i}@example.com"),
            &format!("10.1.{}.{}", i / 250, i % 250),
        );
    }
    assert!(l.remembered() <= 100, "{}", l.remembered());
    // The most recent keys are the ones kept.
    for _ in 0..5 {
        l.failed("last@example.com", "10.9.9.9");
    }
    assert_eq!(
        l.attempt("last@example.com", "10.9.9.10").unwrap().delay,
        Duration::from_millis(500)
    );
    // One address may have only a few attempts in flight.
    let held: Vec<_> = (0..4)
        .map(|_| l.attempt("x@example.com", "10.7.7.7").unwrap())
        .collect();
    assert_eq!(
        l.attempt("x@example.com", "10.7.7.7")
            .err()
            .map(|r| r.status),
        Some(StatusCode::TOO_MANY_REQUESTS)
    );
    assert!(
        l.attempt("x@example.com", "10.7.7.8").is_ok(),
        "another address is not held up"
    );
    drop(held);
    assert!(l.attempt("x@example.com", "10.7.7.7").is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_slow_the_guesser_but_never_lock_the_owner_out() {
    let app = app_with(Settings {
        login_throttle: Throttle {
            step: Duration::from_millis(100),
            max_delay: Duration::from_millis(800),
            ..Throttle::default()
        },
        ..Settings::default()
    })
    .await;
    let mut owner = Browser::new(&app);
    owner.sign_up("owner@example.com", "Acme").await;
    owner.submit("/", "/logout", &[]).await;

    // A stranger guesses from one address: answers slow down, none is a lock.
    let mut stranger = Browser::new(&app);
    let mut took = Vec::new();
    for _ in 0..8 {
        let t = Instant::now();
        let a = log_in_from(
            &mut stranger,
            "192.0.2.66",
            "/login",
            "owner@example.com",
            "wrong password!",
        )
        .await;
        took.push(t.elapsed());
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
        assert!(a.body.contains("Wrong e-mail address or password"));
    }
    // The first guesses are free: only the password check's time (which a loaded machine
    // stretches, hence relative to the throttled ones).
    assert!(took[0] + Duration::from_millis(500) < took[7], "{took:?}");
    assert!(
        took[6] >= Duration::from_millis(400) && took[7] >= Duration::from_millis(800),
        "delays grow: {took:?}"
    );
    assert!(took[7] < Duration::from_millis(2500), "bounded: {took:?}");

    // The owner, from another address, gets in with the right password (slowed by at
    // most the account's bounded delay).
    let t = Instant::now();
    let ok = log_in_from(
        &mut owner,
        "198.51.100.7",
        "/login",
        "owner@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(
        (ok.status, ok.location.as_str()),
        (StatusCode::SEE_OTHER, "/"),
        "{}",
        ok.body
    );
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(owner.get("/").await.status, StatusCode::OK);

    // The right password works from the guesser's address too, just late.
    let mut late = Browser::new(&app);
    owner.submit("/", "/logout", &[]).await;
    let ok = log_in_from(
        &mut late,
        "192.0.2.66",
        "/login",
        "owner@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_renews_the_session_id_and_the_csrf_token() {
    let app = app().await;
    let mut b = Browser::new(&app);
    b.sign_up("ada@example.com", "Acme").await;
    b.submit("/", "/logout", &[]).await;

    // What an attacker could know before the log-in: the form's token and the cookie.
    let form = b.get("/login").await;
    let token_before = form.csrf();
    let cookie_before = b.cookie().unwrap().to_string();
    let ok = log_in_from(&mut b, "10.0.0.5", "/login", "ada@example.com", PASSWORD).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let cookie_after = b.cookie().unwrap().to_string();
    assert_ne!(cookie_before, cookie_after, "a new session id");
    let token_after = b.get("/").await.csrf();
    assert_ne!(token_before, token_after, "a new CSRF token");

    // The old token is refused on a form and on the API; the new one works.
    let stale = b
        .post(
            "/clusters",
            &[("csrf", token_before.as_str()), ("name", "x")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN, "{}", stale.body);
    let req = Request::post("/api/v1/clusters")
        .header("x-csrf-token", token_before.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"name":"y"}"#))
        .unwrap();
    assert_eq!(b.send(req).await.status, StatusCode::FORBIDDEN);
    let fresh = b
        .post(
            "/clusters",
            &[("csrf", token_after.as_str()), ("name", "z")],
        )
        .await;
    assert_eq!(fresh.status, StatusCode::SEE_OTHER, "{}", fresh.body);

    // The pre-log-in cookie is not logged in.
    let mut old = Browser::with_cookie(&app, &cookie_before);
    assert_eq!(old.get("/clusters").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_cannot_list_api_keys() {
    let app = app().await;
    let mut owner = Browser::new(&app);
    owner.sign_up("owner@example.com", "Team").await;
    let (_, c) = owner
        .json(
            "POST",
            "/api/v1/clusters",
            Some(serde_json::json!({"name": "prod"})),
            true,
        )
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    let (status, _) = owner
        .json(
            "POST",
            &format!("/api/v1/clusters/{id}/api-keys"),
            Some(serde_json::json!({"name": "billing"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut member = Browser::new(&app);
    common::join_as(&mut owner, &mut member, "member", "member@example.com").await;
    let mut admin = Browser::new(&app);
    common::join_as(&mut owner, &mut admin, "admin", "admin@example.com").await;

    let (status, body) = member
        .json(
            "GET",
            &format!("/api/v1/clusters/{id}/api-keys"),
            None,
            false,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(!body.to_string().contains("billing"));
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("owners and admins"));
    let page = member.get(&format!("/clusters/{id}/keys")).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(!page.body.contains("billing"));
    // Members still read the cluster itself, without an API keys tab.
    let overview = member.get(&format!("/clusters/{id}")).await;
    assert_eq!(overview.status, StatusCode::OK);
    let keys_link = format!("/clusters/{id}/keys\"");
    assert!(!overview.body.contains(&keys_link), "{}", overview.body);
    assert!(owner
        .get(&format!("/clusters/{id}"))
        .await
        .body
        .contains(&keys_link));
    for who in [&mut owner, &mut admin] {
        let (status, keys) = who
            .json(
                "GET",
                &format!("/api/v1/clusters/{id}/api-keys"),
                None,
                false,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(keys[0]["name"], "billing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_cannot_be_named_default() {
    let app = app().await;
    let mut b = Browser::new(&app);
    b.sign_up("owner@example.com", "Team").await;
    for name in ["default", "Default", " DEFAULT "] {
        let (status, body) = b
            .json(
                "POST",
                "/api/v1/clusters",
                Some(serde_json::json!({ "name": name })),
                true,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name:?}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("name of the built-in cluster"),
            "{body}"
        );
    }
    let (_, c) = b
        .json(
            "POST",
            "/api/v1/clusters",
            Some(serde_json::json!({"name": "prod"})),
            true,
        )
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    let (status, body) = b
        .json(
            "PATCH",
            &format!("/api/v1/clusters/{id}"),
            Some(serde_json::json!({"name": "default"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // The pages say so too.
    let page = format!("/clusters/{id}");
    let renamed = b
        .submit(&page, &format!("{page}/rename"), &[("name", "default")])
        .await;
    assert_eq!(renamed.status, StatusCode::SEE_OTHER);
    assert!(b
        .get(&page)
        .await
        .body
        .contains("name of the built-in cluster"));
    let made = b
        .submit("/clusters", "/clusters", &[("name", "default")])
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER);
    assert!(b
        .get("/clusters")
        .await
        .body
        .contains("name of the built-in cluster"));
    let (_, c) = b
        .json("GET", &format!("/api/v1/clusters/{id}"), None, false)
        .await;
    assert_eq!(c["name"], "prod");
}

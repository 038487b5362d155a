//! Console HTTP tests of accounts and teams: sign-up, log-in, CSRF, the log-in rate limit,
//! invites, roles and the last owner. The SQL behind these rules also runs on Postgres in
//! the platform store's conformance suite (`platform_store.rs`).

mod common;

use std::time::Duration;

use app::Settings;
use axum::http::StatusCode;
use common::{app, app_with, Browser};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_log_in_and_out() {
    let app = app().await;
    let mut b = Browser::new(&app);
    let first = b.get("/").await;
    assert_eq!(
        (first.status, first.location.as_str()),
        (StatusCode::SEE_OTHER, "/signup")
    );

    // A form without its CSRF token is refused and creates nothing.
    let forged = b
        .post(
            "/signup",
            &[
                ("email", "ada@example.com"),
                ("password", "correct horse battery"),
                ("org", "Acme"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(
        forged.body.contains("did not come from this console"),
        "{}",
        forged.body
    );
    assert_eq!(app.console.platform.user_count().await.unwrap(), 0);

    // Too short a password: back to the form with the reason.
    let short = b
        .submit(
            "/signup",
            "/signup",
            &[
                ("email", "ada@example.com"),
                ("password", "short"),
                ("org", "Acme"),
            ],
        )
        .await;
    assert_eq!(
        (short.status, short.location.as_str()),
        (StatusCode::SEE_OTHER, "/signup")
    );
    assert!(b
        .get("/signup")
        .await
        .body
        .contains("at least 10 characters"));
    assert_eq!(app.console.platform.user_count().await.unwrap(), 0);

    let ok = b.sign_up("Ada@Example.com", "Acme").await;
    assert_eq!(
        (ok.status, ok.location.as_str()),
        (StatusCode::SEE_OTHER, "/")
    );
    let home = b.get("/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(
        home.body.contains("Welcome, ada@example.com"),
        "{}",
        home.body
    );
    assert!(home.body.contains("Acme"));

    // The same address cannot sign up twice.
    let mut other = Browser::new(&app);
    other.sign_up("ada@example.com", "Other").await;
    assert!(other.get("/signup").await.body.contains("already exists"));

    let out = b.submit("/", "/logout", &[]).await;
    assert_eq!(
        (out.status, out.location.as_str()),
        (StatusCode::SEE_OTHER, "/login")
    );
    let gone = b.get("/clusters").await;
    assert_eq!(
        (gone.status, gone.location.as_str()),
        (StatusCode::SEE_OTHER, "/login?next=%2Fclusters")
    );

    let wrong = b
        .submit(
            "/login",
            "/login",
            &[
                ("email", "ada@example.com"),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Wrong e-mail address or password"));
    let unknown = b
        .submit(
            "/login",
            "/login",
            &[
                ("email", "nobody@example.com"),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(
        unknown.body.contains("Wrong e-mail address or password"),
        "same answer for unknown users"
    );

    let back = b
        .submit(
            "/login",
            "/login?next=%2Fclusters",
            &[
                ("email", "ada@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(
        (back.status, back.location.as_str()),
        (StatusCode::SEE_OTHER, "/clusters")
    );
    assert_eq!(b.get("/clusters").await.status, StatusCode::OK);

    // Only local paths are followed after log-in.
    b.submit("/", "/logout", &[]).await;
    let evil = b
        .submit(
            "/login",
            "/login?next=%2F%2Fevil.example",
            &[
                ("email", "ada@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(evil.location, "/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_log_ins_slow_down_but_do_not_lock_the_account() {
    let app = app_with(Settings {
        login_throttle: app::auth::Throttle {
            step: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
            ..Default::default()
        },
        ..Settings::default()
    })
    .await;
    let mut b = Browser::new(&app);
    b.sign_up("bob@example.com", "Bob's").await;
    b.submit("/", "/logout", &[]).await;
    for _ in 0..6 {
        let a = b
            .submit(
                "/login",
                "/login",
                &[
                    ("email", "bob@example.com"),
                    ("password", "wrong password!"),
                ],
            )
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }
    // The right password is slowed down (the throttle's delay), not refused.
    let started = std::time::Instant::now();
    let ok = b
        .submit(
            "/login",
            "/login",
            &[
                ("email", "bob@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_roles_and_the_last_owner() {
    let app = app().await;
    let mut owner = Browser::new(&app);
    owner.sign_up("owner@example.com", "Team").await;

    let made = owner
        .submit(
            "/team",
            "/team/invites",
            &[("role", "member"), ("note", "for Carol")],
        )
        .await;
    assert_eq!(made.location, "/team");
    let team = owner.get("/team").await;
    let at = team.body.find("/invite/").expect("invite link shown");
    let link = &team.body[at..at + 8 + 64];
    assert!(
        !owner.get("/team").await.body.contains(link),
        "the link is shown once"
    );

    // A logged-out visitor signs up through the invite and joins as a member.
    let mut carol = Browser::new(&app);
    let page = carol.get(link).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("You are invited to join") && page.body.contains("member"));
    let token = &link[8..];
    let joined = carol
        .submit(
            link,
            &format!("/signup?invite={token}"),
            &[
                ("email", "carol@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(
        (joined.status, joined.location.as_str()),
        (StatusCode::SEE_OTHER, "/")
    );
    assert!(carol.get("/").await.body.contains("Team"));

    // The link is single use.
    let mut dave = Browser::new(&app);
    let reused = dave.get(link).await;
    assert_eq!(reused.status, StatusCode::GONE);
    assert!(reused.body.contains("already been used"));

    // A member reads but cannot change anything.
    let clusters = carol.get("/clusters").await;
    assert_eq!(clusters.status, StatusCode::OK);
    assert!(!clusters.body.contains("create-cluster"));
    let refused = carol
        .submit("/clusters", "/clusters", &[("name", "sneaky")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("Only owners and admins"));
    let refused = carol
        .submit("/team", "/team/invites", &[("role", "admin")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let (status, _) = carol
        .json(
            "POST",
            "/api/v1/clusters",
            Some(serde_json::json!({"name": "x"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, list) = owner.json("GET", "/api/v1/clusters", None, false).await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "only the built-in cluster: {list}"
    );

    // The last owner can neither leave nor be demoted.
    let (_, members) = owner.json("GET", "/api/v1/team/members", None, false).await;
    let owner_id = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "owner@example.com")
        .unwrap()["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let carol_id = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "carol@example.com")
        .unwrap()["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let demote = owner
        .submit(
            "/team",
            &format!("/team/members/{owner_id}/role"),
            &[("role", "admin")],
        )
        .await;
    assert_eq!(demote.location, "/team");
    assert!(owner.get("/team").await.body.contains("at least one owner"));
    let (status, body) = owner
        .json(
            "DELETE",
            &format!("/api/v1/team/members/{owner_id}"),
            None,
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // Promote Carol to admin: now she may create clusters.
    let (status, _) = owner
        .json(
            "PATCH",
            &format!("/api/v1/team/members/{carol_id}"),
            Some(serde_json::json!({"role": "admin"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = carol
        .json(
            "POST",
            "/api/v1/clusters",
            Some(serde_json::json!({"name": "x"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // An admin cannot make herself owner.
    let (status, _) = carol
        .json(
            "PATCH",
            &format!("/api/v1/team/members/{carol_id}"),
            Some(serde_json::json!({"role": "owner"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A session call that changes something needs the CSRF header.
    let (status, body) = carol
        .json(
            "POST",
            "/api/v1/clusters",
            Some(serde_json::json!({"name": "y"})),
            false,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_revoked_invites_are_refused() {
    let app = app_with(Settings {
        invite_ttl: Duration::ZERO,
        ..Settings::default()
    })
    .await;
    let mut owner = Browser::new(&app);
    owner.sign_up("o@example.com", "Org").await;
    let (status, made) = owner
        .json(
            "POST",
            "/api/v1/team/invites",
            Some(serde_json::json!({"role": "member"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let url = made["url"].as_str().unwrap();
    let path = &url[url.find("/invite/").unwrap()..];
    let mut late = Browser::new(&app);
    let page = late.get(path).await;
    assert_eq!(page.status, StatusCode::GONE);
    assert!(page.body.contains("expired"));
    let signup = late
        .submit(
            "/login",
            &format!("/signup?invite={}", &path[8..]),
            &[
                ("email", "late@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(signup.status, StatusCode::GONE);
    assert!(app
        .console
        .platform
        .user_by_email("late@example.com")
        .await
        .unwrap()
        .is_none());

    let (_, unknown) = owner.json("GET", "/api/v1/team/invites", None, false).await;
    assert_eq!(
        unknown.as_array().unwrap().len(),
        0,
        "an expired invite is not open"
    );
    let mut nobody = Browser::new(&app);
    assert_eq!(
        nobody.get("/invite/0123456789abcdef").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_sign_up_needs_an_invite() {
    let app = app_with(Settings {
        open_signup: false,
        ..Settings::default()
    })
    .await;
    let mut first = Browser::new(&app);
    let ok = first.sign_up("first@example.com", "Only").await;
    assert_eq!(ok.location, "/", "the first account is always possible");
    let mut second = Browser::new(&app);
    let refused = second.sign_up("second@example.com", "Mine").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("by invitation"), "{}", refused.body);
    assert!(app
        .console
        .platform
        .user_by_email("second@example.com")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_joins_a_second_organisation_and_switches() {
    let app = app().await;
    let mut owner = Browser::new(&app);
    owner.sign_up("lead@example.com", "Platform").await;
    let (_, made) = owner
        .json(
            "POST",
            "/api/v1/team/invites",
            Some(serde_json::json!({"role": "admin"})),
            true,
        )
        .await;
    let url = made["url"].as_str().unwrap();
    let token = &url[url.find("/invite/").unwrap() + 8..];

    let mut eve = Browser::new(&app);
    eve.sign_up("eve@example.com", "Eve's own").await;
    let (status, joined) = eve
        .json(
            "POST",
            &format!("/api/v1/invites/{token}/accept"),
            None,
            true,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    let (status, again) = eve
        .json(
            "POST",
            &format!("/api/v1/invites/{token}/accept"),
            None,
            true,
        )
        .await;
    assert_eq!(status, StatusCode::GONE, "{again}");

    // Two organisations: the header offers a switch, and switching changes what she sees.
    let home = eve.get("/").await;
    assert!(home.body.contains("/org/switch"), "{}", home.body);
    let org_id = joined["organisation"].as_str().unwrap();
    let switched = eve.submit("/", "/org/switch", &[("org", org_id)]).await;
    assert_eq!(switched.location, "/");
    let (_, me) = eve.json("GET", "/api/v1/me", None, false).await;
    assert_eq!(
        (me["organisation"]["name"].as_str(), me["role"].as_str()),
        (Some("Platform"), Some("admin"))
    );
    // Switching to an organisation she is not in is refused.
    let refused = eve.submit("/", "/org/switch", &[("org", "not-mine")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

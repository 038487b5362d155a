//! HTTP tests of the console and its JSON API: the router is called with `oneshot`, as a
//! browser would (cookies, forms, redirects), against a real broker on SQLite. The SQL
//! behind these rules (single-use invites, the last owner) also runs on Postgres in the
//! broker's store conformance suite.

use std::sync::Arc;
use std::time::Duration;

use app::{Console, Settings};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

struct App {
    router: Router,
    console: Arc<Console>,
    _running: broker::Running,
    _dir: tempfile::TempDir,
}

async fn app_with(settings: Settings) -> App {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    let config = broker::BrokerConfig::for_tests(url);
    let running = broker::start(config, broker::Metrics::new(), CancellationToken::new())
        .await
        .unwrap();
    let console = Console::new(running.broker.clone(), settings);
    let router = app::router(console.clone()).await.unwrap();
    App {
        router,
        console,
        _running: running,
        _dir: dir,
    }
}

async fn app() -> App {
    app_with(Settings::default()).await
}

/// A browser: keeps the session cookie, sends forms, does not follow redirects.
struct Browser<'a> {
    app: &'a App,
    cookie: Option<String>,
}

struct Answer {
    status: StatusCode,
    location: String,
    body: String,
}

impl Answer {
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no csrf field in: {}", self.body));
        let rest = &self.body[at + 19..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", app::views::enc(k), app::views::enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl<'a> Browser<'a> {
    fn new(app: &'a App) -> Self {
        Browser { app, cookie: None }
    }

    async fn send(&mut self, mut req: Request<Body>) -> Answer {
        if let Some(c) = &self.cookie {
            req.headers_mut().insert(header::COOKIE, c.parse().unwrap());
        }
        let res = self.app.router.clone().oneshot(req).await.unwrap();
        if let Some(set) = res.headers().get(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            self.cookie = Some(set.split(';').next().unwrap().to_string());
        }
        let status = res.status();
        let location = res
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            location,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        self.send(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form(fields)))
                .unwrap(),
        )
        .await
    }

    /// Posts a form with the CSRF token of the page it is on.
    async fn submit(&mut self, page: &str, action: &str, fields: &[(&str, &str)]) -> Answer {
        let csrf = self.get(page).await.csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all).await
    }

    async fn json(
        &mut self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        csrf: bool,
    ) -> (StatusCode, serde_json::Value) {
        let mut req = Request::builder().method(method).uri(path);
        if csrf {
            let me = self.get("/api/v1/me").await;
            let v: serde_json::Value = serde_json::from_str(&me.body).unwrap();
            req = req.header("x-csrf-token", v["csrf_token"].as_str().unwrap());
        }
        let req = req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
            .unwrap();
        let a = self.send(req).await;
        (
            a.status,
            serde_json::from_str(&a.body).unwrap_or(serde_json::Value::Null),
        )
    }

    async fn sign_up(&mut self, email: &str, org: &str) -> Answer {
        self.submit(
            "/signup",
            "/signup",
            &[
                ("email", email),
                ("password", "correct horse battery"),
                ("org", org),
            ],
        )
        .await
    }
}

async fn key_call(
    app: &App,
    method: &str,
    path: &str,
    key: &str,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
        .unwrap();
    let res = app.router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

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
    assert_eq!(app.console.meta().user_count().await.unwrap(), 0);

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
    assert_eq!(app.console.meta().user_count().await.unwrap(), 0);

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
async fn log_in_attempts_are_rate_limited() {
    let app = app().await;
    let mut b = Browser::new(&app);
    b.sign_up("bob@example.com", "Bob's").await;
    b.submit("/", "/logout", &[]).await;
    for _ in 0..5 {
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
    // Now even the right password waits.
    let limited = b
        .submit(
            "/login",
            "/login",
            &[
                ("email", "bob@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        limited.body.contains("Too many failed log-in attempts"),
        "{}",
        limited.body
    );
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
        .meta()
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
        .meta()
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
    assert!(!b
        .get(&format!("{cluster}/keys"))
        .await
        .body
        .contains("secret-value"));

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
        .meta()
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

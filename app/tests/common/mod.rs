//! The console tests' harness: a real broker on SQLite behind the console router (its
//! accounts in the same database, as `sluice serve` does by default), and a
//! `Browser` that calls the router with `oneshot` the way a browser would (keeps the
//! session cookie, posts forms with the page's CSRF token, does not follow redirects).

#![allow(dead_code)]

use std::sync::Arc;

use app::{Console, Settings};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use broker::inspect::ClusterView;
use http_body_util::BodyExt;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub struct App {
    pub router: Router,
    pub console: Arc<Console>,
    pub running: broker::Running,
    _dir: Option<tempfile::TempDir>,
}

pub async fn app_with(settings: Settings) -> App {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    let mut app = app_on(&url, &url, settings).await;
    app._dir = Some(dir);
    app
}

/// The console on a cluster metadata database and a platform database of its choosing
/// (the same url for both is the default set-up).
pub async fn app_on(cluster_url: &str, platform_url: &str, settings: Settings) -> App {
    let config = broker::BrokerConfig::for_tests(cluster_url.to_string());
    let running = broker::start(config, broker::Metrics::new(), CancellationToken::new())
        .await
        .unwrap();
    let platform = app::store::Platform::connect(platform_url).await.unwrap();
    let console = Console::new(ClusterView::new(running.broker.clone()), platform, settings);
    let router = app::router(console.clone()).await.unwrap();
    App {
        router,
        console,
        running,
        _dir: None,
    }
}

pub async fn app() -> App {
    app_with(Settings::default()).await
}

/// A browser: keeps the session cookie, sends forms, does not follow redirects.
pub struct Browser<'a> {
    app: &'a App,
    cookie: Option<String>,
}

pub struct Answer {
    pub status: StatusCode,
    pub location: String,
    pub body: String,
}

impl Answer {
    pub fn csrf(&self) -> String {
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
    pub fn new(app: &'a App) -> Self {
        Browser { app, cookie: None }
    }

    /// A browser that sends this cookie (`name=value`), e.g. one seen earlier.
    pub fn with_cookie(app: &'a App, cookie: &str) -> Self {
        Browser {
            app,
            cookie: Some(cookie.to_string()),
        }
    }

    /// The session cookie this browser sends (`name=value`).
    pub fn cookie(&self) -> Option<&str> {
        self.cookie.as_deref()
    }

    pub async fn send(&mut self, mut req: Request<Body>) -> Answer {
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

    pub async fn get(&mut self, path: &str) -> Answer {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        self.send(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form(fields)))
                .unwrap(),
        )
        .await
    }

    /// Posts a form with the CSRF token of the page it is on.
    pub async fn submit(&mut self, page: &str, action: &str, fields: &[(&str, &str)]) -> Answer {
        let csrf = self.get(page).await.csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all).await
    }

    pub async fn json(
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

    pub async fn sign_up(&mut self, email: &str, org: &str) -> Answer {
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

/// `owner` invites someone as `role`; `joiner` (logged out) signs up through the link.
pub async fn join_as(owner: &mut Browser<'_>, joiner: &mut Browser<'_>, role: &str, email: &str) {
    owner
        .submit("/team", "/team/invites", &[("role", role), ("note", "")])
        .await;
    let team = owner.get("/team").await;
    let at = team.body.find("/invite/").expect("invite link shown");
    let link = team.body[at..at + 8 + 64].to_string();
    let token = &link[8..];
    let joined = joiner
        .submit(
            &link,
            &format!("/signup?invite={token}"),
            &[("email", email), ("password", "correct horse battery")],
        )
        .await;
    assert_eq!(joined.status, StatusCode::SEE_OTHER, "{}", joined.body);
}

pub async fn key_call(
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

/// Sends one Kafka request over a fresh connection to `addr` and decodes the answer, the
/// way a client of that API version would (blocking: call it from `spawn_blocking`).
pub fn kafka_call<Req, Resp>(
    addr: std::net::SocketAddr,
    key: kafka_protocol::messages::ApiKey,
    version: i16,
    req: &Req,
) -> Resp
where
    Req: kafka_protocol::protocol::Encodable,
    Resp: kafka_protocol::protocol::Decodable,
{
    use std::io::{Read, Write};

    use kafka_protocol::messages::{RequestHeader, ResponseHeader};
    use kafka_protocol::protocol::{Decodable, Encodable};

    let mut buf = bytes::BytesMut::new();
    buf.extend_from_slice(&[0; 4]);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    req.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(&buf).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    let mut b = bytes::Bytes::from(body);
    ResponseHeader::decode(&mut b, key.response_header_version(version)).unwrap();
    Resp::decode(&mut b, version).unwrap()
}

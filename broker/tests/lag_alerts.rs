//! Lag alerts: the store functions on SQLite always and on Postgres when
//! `SLUICE_TEST_POSTGRES_URL` is set (each test in clusters of its own, so runs can share
//! the database), and one agent whose lag job fires and resolves a rule through a real
//! webhook (SQLite only: on a shared Postgres another test's agent may hold the lag lease).

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use broker::inspect::{
    AlertState, AlertStatus, ClusterView, LagAlert, NewAlertRule, MAX_ALERTS_PER_CLUSTER,
};
use broker::store::{CommittedOffset, Metadata, StoreError};
use broker::Broker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const T0: i64 = 1_700_000_000_000;

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

// =========================================================================================
// The store, on both backends
// =========================================================================================

/// A metadata store and the url it was opened with (the bound test fills the table
/// through a pool of its own).
struct Db {
    meta: Metadata,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    Db {
        meta: Metadata::connect(&url).await.unwrap(),
        url,
        _dir: Some(dir),
    }
}

async fn postgres() -> Option<Db> {
    let url = std::env::var("SLUICE_TEST_POSTGRES_URL").ok()?;
    Some(Db {
        meta: Metadata::connect(&url)
            .await
            .expect("SLUICE_TEST_POSTGRES_URL is reachable"),
        url,
        _dir: None,
    })
}

/// A fresh virtual cluster.
async fn cluster(m: &Metadata) -> String {
    m.create_virtual_cluster("test-org", &unique("c"))
        .await
        .unwrap()
        .id
}

fn rule<'a>(group: &'a str, max: f64, for_seconds: i64, url: &'a str) -> NewAlertRule<'a> {
    NewAlertRule {
        group,
        max_time_lag_seconds: max,
        for_seconds,
        webhook_url: url,
    }
}

/// Inserts `n` rules into a cluster in one transaction, past the store's API (which takes
/// one transaction per rule).
async fn fill(db: &Db, cluster: &str, n: usize) {
    const SQL: &str = "INSERT INTO lag_alerts (id, cluster, group_id, max_time_lag_seconds, \
         for_seconds, webhook_url, created_at_ms, state) VALUES ($1, $2, $3, $4, $5, $6, $7, 'ok')";
    macro_rules! fill_with {
        ($pool:expr) => {{
            let pool = $pool;
            let mut tx = pool.begin().await.unwrap();
            for i in 0..n {
                sqlx::query(SQL)
                    .bind(format!("fill-{cluster}-{i}"))
                    .bind(cluster)
                    .bind(format!("g{i}"))
                    .bind(60.0f64)
                    .bind(0i64)
                    .bind("http://127.0.0.1:9/")
                    .bind(0i64)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
        }};
    }
    if db.meta.backend() == "postgres" {
        fill_with!(sqlx::PgPool::connect(&db.url).await.unwrap());
    } else {
        fill_with!(sqlx::SqlitePool::connect(&db.url).await.unwrap());
    }
}

async fn rules_stored_listed_deleted(db: &Db) {
    let m = &db.meta;
    let c = cluster(m).await;
    let a = m
        .create_lag_alert(&c, &rule("orders", 60.0, 30, "https://hooks.example.com/a"))
        .await
        .unwrap()
        .expect("room for a rule");
    assert_eq!(
        (
            a.rule.cluster.as_str(),
            a.rule.group.as_str(),
            a.rule.max_time_lag_seconds,
            a.rule.for_seconds,
            a.rule.webhook_url.as_str()
        ),
        (
            c.as_str(),
            "orders",
            60.0,
            30,
            "https://hooks.example.com/a"
        )
    );
    assert_eq!(a.status, AlertState::default(), "a new rule is ok");
    let b = m
        .create_lag_alert(&c, &rule("billing", 0.25, 0, "http://127.0.0.1:9/b"))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(a.rule.id, b.rule.id);
    // Read back exactly as created, by group.
    assert_eq!(m.lag_alerts(&c).await.unwrap(), vec![b.clone(), a.clone()]);
    let all: Vec<LagAlert> = m
        .all_lag_alerts()
        .await
        .unwrap()
        .into_iter()
        .filter(|x| x.rule.cluster == c)
        .collect();
    assert_eq!(all.len(), 2);

    // Rules belong to their cluster.
    let other = cluster(m).await;
    assert!(m.lag_alerts(&other).await.unwrap().is_empty());
    assert!(!m.delete_lag_alert(&other, &a.rule.id).await.unwrap());
    assert!(matches!(
        m.create_lag_alert("no-such-cluster", &rule("g", 1.0, 0, "http://x.example/"))
            .await,
        Err(StoreError::UnknownCluster(_))
    ));
    // The built-in cluster has no row and takes rules all the same.
    let group = unique("builtin");
    let d = m
        .create_lag_alert("default", &rule(&group, 1.0, 0, "http://x.example/"))
        .await
        .unwrap()
        .unwrap();
    assert!(m.delete_lag_alert("default", &d.rule.id).await.unwrap());

    assert!(m.delete_lag_alert(&c, &a.rule.id).await.unwrap());
    assert!(
        !m.delete_lag_alert(&c, &a.rule.id).await.unwrap(),
        "gone already"
    );
    assert_eq!(m.lag_alerts(&c).await.unwrap(), vec![b]);
}

async fn states_round_trip(db: &Db) {
    let m = &db.meta;
    let c = cluster(m).await;
    // Marked firing below: should a lag job sharing the database resolve it, its webhook
    // call goes to the discard port.
    let a = m
        .create_lag_alert(&c, &rule("orders", 60.0, 30, "http://127.0.0.1:9/a"))
        .await
        .unwrap()
        .unwrap();
    let firing = AlertState {
        state: AlertStatus::Firing,
        since_ms: Some(T0 + 30_000),
        above_since_ms: Some(T0),
        last_time_lag_seconds: Some(95.25),
        evaluated_at_ms: Some(T0 + 30_000),
    };
    // A state for a rule deleted meanwhile changes nothing.
    m.save_lag_alert_states(&[
        (a.rule.id.clone(), firing.clone()),
        (unique("gone"), AlertState::default()),
    ])
    .await
    .unwrap();
    let got = m.lag_alerts(&c).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status, firing);
    assert_eq!(got[0].rule, a.rule, "the definition is untouched");

    let ok = AlertState {
        evaluated_at_ms: Some(T0 + 45_000),
        ..AlertState::default()
    };
    m.save_lag_alert_states(&[(a.rule.id.clone(), ok.clone())])
        .await
        .unwrap();
    assert_eq!(m.lag_alerts(&c).await.unwrap()[0].status, ok);
    m.save_lag_alert_states(&[]).await.unwrap();
    assert!(m.delete_lag_alert(&c, &a.rule.id).await.unwrap());
}

async fn rules_are_bounded_per_cluster(db: &Db) {
    let m = &db.meta;
    let c = cluster(m).await;
    fill(db, &c, MAX_ALERTS_PER_CLUSTER).await;
    let r = rule("one-more", 60.0, 0, "https://hooks.example.com/a");
    assert!(
        m.create_lag_alert(&c, &r).await.unwrap().is_none(),
        "the cluster holds the most rules it may"
    );
    assert_eq!(
        m.lag_alerts(&c).await.unwrap().len(),
        MAX_ALERTS_PER_CLUSTER
    );
    // Another cluster has room of its own.
    let other = cluster(m).await;
    assert!(m.create_lag_alert(&other, &r).await.unwrap().is_some());
    // Deleting one makes room for one.
    assert!(m
        .delete_lag_alert(&c, &format!("fill-{c}-0"))
        .await
        .unwrap());
    assert!(m.create_lag_alert(&c, &r).await.unwrap().is_some());
    assert!(m.create_lag_alert(&c, &r).await.unwrap().is_none());
}

async fn deleting_a_cluster_deletes_its_rules(db: &Db) {
    let m = &db.meta;
    let c = cluster(m).await;
    m.create_lag_alert(&c, &rule("orders", 60.0, 30, "https://hooks.example.com/a"))
        .await
        .unwrap()
        .unwrap();
    m.delete_virtual_cluster(&c).await.unwrap();
    assert!(m.lag_alerts(&c).await.unwrap().is_empty());
    assert!(!m
        .all_lag_alerts()
        .await
        .unwrap()
        .iter()
        .any(|a| a.rule.cluster == c));
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::sqlite().await;
                    super::$name(&db).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::postgres().await else {
                        eprintln!("skipped: SLUICE_TEST_POSTGRES_URL is not set, the Postgres half of the lag alert store tests did not run");
                        return;
                    };
                    super::$name(&db).await;
                }
            )*
        }
    };
}

on_both_backends!(
    rules_stored_listed_deleted,
    states_round_trip,
    rules_are_bounded_per_cluster,
    deleting_a_cluster_deletes_its_rules,
);

// =========================================================================================
// Firing and resolving through the lag job
// =========================================================================================

/// One request a test webhook server received.
#[derive(Debug)]
struct Hook {
    path: String,
    body: serde_json::Value,
}

const OK_ANSWER: &str = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// A tiny HTTP/1.1 server on 127.0.0.1:0: each request's path and JSON body go to the
/// channel, and `answer(path)` is sent back whole (status line, headers, empty body).
async fn webhook_server(
    answer: impl Fn(&str) -> String + Send + Sync + 'static,
) -> (SocketAddr, mpsc::UnboundedReceiver<Hook>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let tx = tx.clone();
            let answer = answer.clone();
            tokio::spawn(async move {
                let Some((path, body)) = read_request(&mut conn).await else {
                    return;
                };
                let _ = conn.write_all((*answer)(&path).as_bytes()).await;
                let _ = conn.shutdown().await;
                let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                let _ = tx.send(Hook { path, body });
            });
        }
    });
    (addr, rx)
}

/// Reads one request: its path and its body (by Content-Length).
async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 << 10 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let path = head.split_whitespace().nth(1)?.to_string();
    let len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((path, buf[head_end..head_end + len].to_vec()))
}

async fn next_hook(rx: &mut mpsc::UnboundedReceiver<Hook>, what: &str) -> Hook {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no {what} webhook call within 30 s"))
        .expect("the webhook server runs")
}

/// What a server has received so far.
fn drain(rx: &mut mpsc::UnboundedReceiver<Hook>) -> Vec<Hook> {
    let mut out = Vec::new();
    while let Ok(h) = rx.try_recv() {
        out.push(h);
    }
    out
}

async fn commit(b: &Broker, topic: &str, group: &str, offset: i64) {
    b.meta()
        .commit_offsets(
            "default",
            group,
            &[CommittedOffset {
                topic: topic.to_string(),
                partition: 0,
                offset,
                leader_epoch: -1,
                metadata: None,
                commit_time_ms: 0,
            }],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_job_fires_and_resolves_through_the_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let running = common::start(dir.path(), |c| {
        c.lag_interval = Duration::from_millis(200);
    })
    .await;
    let b = running.broker.clone();
    let view = ClusterView::new(b.clone());

    let (hook_addr, mut hooks) = webhook_server(|_| OK_ANSWER.to_string()).await;
    let (target_addr, mut targets) = webhook_server(|_| OK_ANSWER.to_string()).await;
    let port = target_addr.port();
    // Redirects: to the same host (followed) and to another name for it (not followed).
    let (redirect_addr, mut redirects) = webhook_server(move |path| {
        let to = if path == "/same" {
            format!("http://127.0.0.1:{port}/followed")
        } else {
            format!("http://localhost:{port}/elsewhere")
        };
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
    })
    .await;

    // Five records on the plaintext port (the built-in cluster); the group stays at 0.
    let topic = unique("alerted");
    let group = unique("stuck");
    view.create_topic("default", &topic, 1, &[]).await.unwrap();
    let frame = common::produce_frame(&topic, 5, 10, broker::clock::now_ms());
    let addr = running.kafka_addr;
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(&frame).unwrap();
        let r = common::read_produce_response(&mut s);
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    })
    .await
    .unwrap();
    commit(&b, &topic, &group, 0).await;

    // Above 0.5 s for a second.
    let (direct_url, same_url, other_url) = (
        format!("http://{hook_addr}/hook"),
        format!("http://{redirect_addr}/same"),
        format!("http://{redirect_addr}/other"),
    );
    let direct = view
        .create_lag_alert("default", rule(&group, 0.5, 1, &direct_url))
        .await
        .unwrap();
    let same_host = view
        .create_lag_alert("default", rule(&group, 0.5, 1, &same_url))
        .await
        .unwrap();
    view.create_lag_alert("default", rule(&group, 0.5, 1, &other_url))
        .await
        .unwrap();
    // The view checks rules as the console sends them.
    let refused = view
        .create_lag_alert("default", rule(&group, 0.5, 1, "ftp://example.com/"))
        .await;
    let refused = match refused {
        Err(broker::inspect::InspectError::Invalid(m)) => m,
        other => panic!("an ftp webhook is refused as invalid: {other:?}"),
    };
    assert!(refused.contains("http:// or https://"), "{refused}");

    // Firing, once.
    let fired = next_hook(&mut hooks, "firing").await;
    assert_eq!(fired.path, "/hook");
    let f = &fired.body;
    assert_eq!(f["status"], "firing", "{f}");
    assert_eq!(f["rule_id"], direct.rule.id.as_str());
    assert_eq!(f["cluster"], "default");
    assert_eq!(f["group"], group.as_str());
    assert_eq!(f["max_time_lag_seconds"], 0.5);
    assert_eq!(f["for_seconds"], 1);
    assert!(f["time_lag_seconds"].as_f64().unwrap() > 0.5, "{f}");
    let since = f["since_ms"].as_i64().unwrap();
    let above = f["above_since_ms"].as_i64().unwrap();
    assert!(since - above >= 1_000, "fired after a second above: {f}");
    // The state was stored before the call.
    let stored = view.lag_alerts("default").await.unwrap();
    let s = stored.iter().find(|a| a.rule.id == direct.rule.id).unwrap();
    assert_eq!(
        (s.status.state, s.status.since_ms),
        (AlertStatus::Firing, Some(since))
    );

    // The consumer catches up: resolved, once, naming the firing it ends.
    commit(&b, &topic, &group, 5).await;
    let resolved = next_hook(&mut hooks, "resolved").await;
    let r = &resolved.body;
    assert_eq!(r["status"], "resolved", "{r}");
    assert_eq!(r["rule_id"], direct.rule.id.as_str());
    assert_eq!(r["time_lag_seconds"], 0.0);
    assert_eq!(r["since_ms"], since);
    let stored = view.lag_alerts("default").await.unwrap();
    let s = stored.iter().find(|a| a.rule.id == direct.rule.id).unwrap();
    assert_eq!(
        (
            s.status.state,
            s.status.since_ms,
            s.status.last_time_lag_seconds
        ),
        (AlertStatus::Ok, None, Some(0.0))
    );
    let extra = drain(&mut hooks);
    assert!(extra.is_empty(), "one firing and one resolved: {extra:?}");

    // A redirect to the same host is followed (with the body); to another host it is not.
    let followed = next_hook(&mut targets, "redirected").await;
    assert_eq!(followed.path, "/followed");
    assert_eq!(followed.body["rule_id"], same_host.rule.id.as_str());
    let asked: Vec<String> = drain(&mut redirects).into_iter().map(|h| h.path).collect();
    assert!(
        asked.iter().any(|p| p == "/other"),
        "the rule whose webhook redirects elsewhere was called: {asked:?}"
    );
    let reached: Vec<String> = drain(&mut targets).into_iter().map(|h| h.path).collect();
    assert!(
        reached.iter().all(|p| p == "/followed"),
        "a redirect to another host was followed: {reached:?}"
    );

    // Shutting down waits for the webhook deliveries, briefly.
    tokio::time::timeout(Duration::from_secs(30), running.shutdown())
        .await
        .expect("the agent shuts down");
}

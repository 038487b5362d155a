//! SASL on the Kafka port with librdkafka: API keys of virtual clusters, every mechanism,
//! isolation between clusters, refusals and revocation.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{consume, Server};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

fn sluice(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .expect("sluice runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// (key id, secret) of a new key for `cluster`.
fn new_key(dir: &std::path::Path, cluster: &str) -> (String, String) {
    let out = sluice(dir, &["api-keys", "create", "--cluster", cluster]);
    let field = |label: &str| {
        out.lines()
            .find(|l| l.contains(label))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or_else(|| panic!("no {label} in {out}"))
            .to_string()
    };
    (field("key id"), field("secret ("))
}

fn config(bootstrap: &str, mechanism: &str, user: &str, password: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanisms", mechanism)
        .set("sasl.username", user)
        .set("sasl.password", password)
        .set("message.timeout.ms", "4000");
    c
}

async fn produce(
    bootstrap: &str,
    mechanism: &str,
    key: &(String, String),
    topic: &str,
    value: &str,
) -> Result<i64, String> {
    let p: FutureProducer = config(bootstrap, mechanism, &key.0, &key.1)
        .create()
        .unwrap();
    p.send(
        FutureRecord::to(topic).key("k").payload(value),
        Duration::from_secs(10),
    )
    .await
    .map(|d| d.offset)
    .map_err(|(e, _)| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_authenticate_and_isolate_clusters() {
    let dir = tempfile::tempdir().unwrap();
    sluice(dir.path(), &["clusters", "create", "alpha"]);
    sluice(dir.path(), &["clusters", "create", "beta"]);
    let a = new_key(dir.path(), "alpha");
    let b = new_key(dir.path(), "beta");
    let server = Server::start(dir.path(), &["--kafka-auth", "sasl"]);

    // Every mechanism works for a valid key; the same topic name exists in both clusters.
    // (This librdkafka build has no SCRAM provider: SCRAM is covered with kcat and
    // kafka-python in tests/python/test_sasl.py.)
    for i in 0..3 {
        assert_eq!(
            produce(&server.kafka, "PLAIN", &a, "shared-name", &format!("a{i}")).await,
            Ok(i)
        );
    }
    assert_eq!(
        produce(&server.kafka, "PLAIN", &b, "shared-name", "b0").await,
        Ok(0),
        "beta has its own topic"
    );

    // Cluster B sees only its own topics and records.
    let cb: BaseConsumer = config(&server.kafka, "PLAIN", &b.0, &b.1)
        .set("group.id", "g-b")
        .create()
        .unwrap();
    let md = cb.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    let names: Vec<&str> = md.topics().iter().map(|t| t.name()).collect();
    assert_eq!(names, vec!["shared-name"]);
    let got = consume(
        &cb,
        "shared-name",
        &[(0, Offset::Beginning)],
        2,
        Duration::from_secs(5),
    );
    assert_eq!(got.len(), 1, "beta reads only beta's record");
    assert_eq!(got[0].value.as_deref(), Some(&b"b0"[..]));
    // Commits land in B's namespace: A's group with the same id sees nothing of them.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("shared-name", 0, Offset::Offset(1))
        .unwrap();
    cb.commit(&tpl, CommitMode::Sync).unwrap();
    let ca: BaseConsumer = config(&server.kafka, "PLAIN", &a.0, &a.1)
        .set("group.id", "g-b")
        .create()
        .unwrap();
    let mut q = TopicPartitionList::new();
    q.add_partition("shared-name", 0);
    let committed = ca.committed_offsets(q, Duration::from_secs(10)).unwrap();
    assert_eq!(
        committed.elements()[0].offset(),
        Offset::Invalid,
        "no offset of beta's group leaks into alpha"
    );
    let got = consume(
        &ca,
        "shared-name",
        &[(0, Offset::Beginning)],
        3,
        Duration::from_secs(10),
    );
    assert_eq!(got.len(), 3);

    // Admin in B cannot touch A's topics: creating "only-a" in A is invisible to B.
    let admin_a: AdminClient<DefaultClientContext> =
        config(&server.kafka, "PLAIN", &a.0, &a.1).create().unwrap();
    admin_a
        .create_topics(
            [&NewTopic::new("only-a", 2, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    let md = cb
        .fetch_metadata(Some("only-a"), Duration::from_secs(10))
        .unwrap();
    assert!(
        md.topics()[0].partitions().len() != 2,
        "beta does not see alpha's topic"
    );

    // Wrong secrets and unknown keys are refused.
    let wrong = (a.0.clone(), "not-the-secret".to_string());
    for mech in ["PLAIN"] {
        assert!(
            produce(&server.kafka, mech, &wrong, "shared-name", "x")
                .await
                .is_err(),
            "{mech} with a wrong secret"
        );
    }
    let ghost = ("KNOSUCHKEY".to_string(), "x".to_string());
    assert!(produce(&server.kafka, "PLAIN", &ghost, "shared-name", "x")
        .await
        .is_err());

    // Without SASL nothing is served.
    let plain: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &server.kafka)
        .set("group.id", "x")
        .create()
        .unwrap();
    assert!(plain.fetch_metadata(None, Duration::from_secs(3)).is_err());

    // A revoked key stops working for new connections within seconds (the lookup cache
    // trusts an answer for 2 s).
    let can_connect = |key: &(String, String)| {
        let c: BaseConsumer = config(&server.kafka, "PLAIN", &key.0, &key.1)
            .set("group.id", "probe")
            .create()
            .unwrap();
        c.fetch_metadata(None, Duration::from_secs(3)).is_ok()
    };
    assert!(can_connect(&b), "beta's key works before it is revoked");
    sluice(dir.path(), &["api-keys", "revoke", &b.0]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!can_connect(&b), "revoked key refused for new connections");
    assert!(can_connect(&a), "other keys keep working");
    let listed = sluice(dir.path(), &["api-keys", "list", "--cluster", "beta"]);
    assert!(listed.contains(&b.0));
    // Dates, not epoch milliseconds: "2026-12-03 09:40:12 UTC".
    let created = listed
        .lines()
        .find(|l| l.contains(&b.0))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_default()
        .to_string();
    assert!(
        created.len() == 10 && created.as_bytes()[4] == b'-' && listed.contains(" UTC"),
        "{listed}"
    );
}

/// `sluice clusters create --org` puts a cluster in an organisation's console; names are
/// resolved across organisations and ambiguity is an error, not a guess.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_created_for_an_organisation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let url = format!(
        "sqlite://{}",
        std::fs::canonicalize(&data)
            .unwrap()
            .join("meta.db")
            .display()
    );
    let meta = broker::store::Metadata::connect(&url).await.unwrap();
    let platform = app::store::Platform::connect(&url).await.unwrap();
    let (_, org) = platform
        .create_user_with_org("ops@example.com", "hash", "Ops team")
        .await
        .unwrap();
    let out = sluice(
        dir.path(),
        &["clusters", "create", "orders", "--org", "Ops team"],
    );
    assert!(out.contains("in organisation 'Ops team'"), "{out}");
    let listed = meta.virtual_clusters(&org.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "orders");
    // Without --org, the only organisation gets the cluster.
    let out = sluice(dir.path(), &["clusters", "create", "payments"]);
    assert!(out.contains("in organisation 'Ops team'"), "{out}");
    assert_eq!(meta.virtual_clusters(&org.id).await.unwrap().len(), 2);
    // With a second organisation, --org is required.
    platform
        .create_user_with_org("dev@example.com", "hash", "Dev team")
        .await
        .unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["clusters", "create", "billing", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("2 organisations") && why.contains("--org"),
        "{why}"
    );
    // The same name in the other organisation: now the name alone is ambiguous.
    sluice(
        dir.path(),
        &["clusters", "create", "orders", "--org", "Dev team"],
    );
    let err = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["api-keys", "create", "--cluster", "orders", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("give its id"));
    let list = sluice(dir.path(), &["clusters", "list"]);
    assert!(list.contains("Ops team"), "{list}");
    let bad = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["clusters", "create", "x", "--org", "Nobody", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no organisation"));
}

#[test]
fn the_command_line_refuses_the_reserved_cluster_name() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["default", " Default "] {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["clusters", "create", name, "--data-dir"])
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "cluster '{name}' was created");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("built-in cluster"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

//! Where the console's platform data lives: in a database of its own when
//! `--platform-database-url` names one (SQLite always, Postgres when
//! `SLUICE_TEST_POSTGRES_URL` is set), and in place in a cluster database created before
//! the split, whose broker migrations still carry the retired `0005_console_accounts`.

mod common;

use std::path::Path;

use app::Settings;
use axum::http::StatusCode;
use common::{app_on, Browser};
use sqlx::{Connection, Executor};

/// Signs up, creates a cluster and logs in again: everything the console needs of both
/// databases. Returns the cluster's id.
async fn use_the_console(app: &common::App) -> String {
    let mut b = Browser::new(app);
    let ok = b.sign_up("split@example.com", "Split").await;
    assert_eq!(ok.location, "/", "signed up");
    let made = b
        .submit("/clusters", "/clusters", &[("name", "prod")])
        .await;
    let id = made
        .location
        .strip_prefix("/clusters/")
        .unwrap_or_else(|| panic!("cluster created: {}", made.location))
        .to_string();
    b.submit("/", "/logout", &[]).await;
    let back = b
        .submit(
            "/login",
            "/login",
            &[
                ("email", "split@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(
        (back.status, back.location.as_str()),
        (StatusCode::SEE_OTHER, "/")
    );
    assert!(
        b.get("/").await.body.contains("prod"),
        "the cluster is listed"
    );
    id
}

async fn sqlite_tables(url: &str) -> Vec<String> {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_platform_database_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let cluster_url = format!("sqlite://{}", dir.path().join("cluster.db").display());
    let platform_url = format!("sqlite://{}", dir.path().join("platform.db").display());
    let app = app_on(&cluster_url, &platform_url, Settings::default()).await;
    let id = use_the_console(&app).await;

    let cluster = sqlite_tables(&cluster_url).await;
    let platform = sqlite_tables(&platform_url).await;
    for t in ["users", "orgs", "memberships", "invites", "tower_sessions"] {
        assert!(
            platform.contains(&t.to_string()),
            "{t} in the platform db: {platform:?}"
        );
        assert!(
            !cluster.contains(&t.to_string()),
            "{t} not in the cluster db: {cluster:?}"
        );
    }
    for t in ["virtual_clusters", "api_keys", "topics"] {
        assert!(cluster.contains(&t.to_string()), "{t} in the cluster db");
        assert!(
            !platform.contains(&t.to_string()),
            "{t} not in the platform db"
        );
    }
    let mut conn = sqlx::SqliteConnection::connect(&platform_url)
        .await
        .unwrap();
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email = $1")
        .bind("split@example.com")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(users, 1);
    let mut conn = sqlx::SqliteConnection::connect(&cluster_url).await.unwrap();
    let clusters: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM virtual_clusters WHERE id = $1")
        .bind(&id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(clusters, 1);
}

/// `base` with its database name replaced.
fn with_database(base: &str, name: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (base, String::new()),
    };
    let (server, _) = head
        .rsplit_once('/')
        .expect("a postgres url ends in /DATABASE");
    format!("{server}/{name}{query}")
}

async fn postgres_tables(url: &str) -> Vec<String> {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables \
         WHERE table_schema IN ('public', 'tower_sessions') ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_platform_database_on_postgres() {
    let Ok(base) = std::env::var("SLUICE_TEST_POSTGRES_URL") else {
        eprintln!("skipped: SLUICE_TEST_POSTGRES_URL is not set, the console did not run on two Postgres databases");
        return;
    };
    // Two fresh databases: the shared test database already has every table.
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let names = [format!("sluice_c_{suffix}"), format!("sluice_p_{suffix}")];
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    for n in &names {
        admin
            .execute(format!("CREATE DATABASE {n}").as_str())
            .await
            .unwrap();
    }
    let cluster_url = with_database(&base, &names[0]);
    let platform_url = with_database(&base, &names[1]);
    let app = app_on(&cluster_url, &platform_url, Settings::default()).await;
    use_the_console(&app).await;

    let cluster = postgres_tables(&cluster_url).await;
    let platform = postgres_tables(&platform_url).await;
    for t in [
        "public.users",
        "public.orgs",
        "public.memberships",
        "public.invites",
        "tower_sessions.session",
    ] {
        assert!(
            platform.contains(&t.to_string()),
            "{t} in the platform db: {platform:?}"
        );
        assert!(
            !cluster.contains(&t.to_string()),
            "{t} not in the cluster db: {cluster:?}"
        );
    }
    for t in [
        "public.virtual_clusters",
        "public.api_keys",
        "public.topics",
    ] {
        assert!(cluster.contains(&t.to_string()), "{t} in the cluster db");
        assert!(
            !platform.contains(&t.to_string()),
            "{t} not in the platform db"
        );
    }
    let mut conn = sqlx::PgConnection::connect(&platform_url).await.unwrap();
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email = $1")
        .bind("split@example.com")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(users, 1);
    drop(conn);

    app.running.shutdown().await;
    for n in &names {
        // FORCE: pools of the console may still hold connections.
        let dropped = admin
            .execute(format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)").as_str())
            .await;
        if let Err(e) = dropped {
            eprintln!("could not drop test database {n}: {e}");
        }
    }
}

/// A cluster database as the broker left it before the platform tables moved to the
/// console: migrations 0001–0004 as they are, plus the old 0005 that created the tables.
async fn database_from_before_the_split(dir: &Path) -> String {
    let old = dir.join("old-migrations");
    std::fs::create_dir_all(&old).unwrap();
    let current = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/sqlite");
    // The broker's migrations of that time: 0001 to 0004 (later ones came after the split).
    for entry in std::fs::read_dir(&current).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.as_str() < "0005" {
            std::fs::copy(&path, old.join(&name)).unwrap();
        }
    }
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/0005_console_accounts.sqlite.sql"),
        old.join("0005_console_accounts.sql"),
    )
    .unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("meta.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    // An account made back then.
    let hash = app::auth::hash_password("correct horse battery")
        .await
        .unwrap();
    for (sql, args) in [
        (
            "INSERT INTO users (id, email, password_hash, created_at_ms) VALUES ($1, $2, $3, 1)",
            vec!["u1", "early@example.com", hash.as_str()],
        ),
        (
            "INSERT INTO orgs (id, name, created_at_ms) VALUES ($1, $2, 1)",
            vec!["o1", "Pioneers"],
        ),
        (
            "INSERT INTO memberships (org_id, user_id, role, created_at_ms) VALUES ($1, $2, 'owner', 1)",
            vec!["o1", "u1"],
        ),
    ] {
        let mut q = sqlx::query(sql);
        for a in args {
            q = q.bind(a);
        }
        q.execute(&mut conn).await.unwrap();
    }
    url
}

async fn applied_versions(url: &str) -> Vec<i64> {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_before_the_split_upgrades_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let url = database_from_before_the_split(dir.path()).await;
    assert_eq!(applied_versions(&url).await, vec![1, 2, 3, 4, 5]);

    // Twice: the first start applies the console's 1001 over the existing tables, the
    // second finds everything applied.
    for _ in 0..2 {
        let app = app_on(&url, &url, Settings::default()).await;
        let mut b = Browser::new(&app);
        let back = b
            .submit(
                "/login",
                "/login",
                &[
                    ("email", "early@example.com"),
                    ("password", "correct horse battery"),
                ],
            )
            .await;
        assert_eq!(
            (back.status, back.location.as_str()),
            (StatusCode::SEE_OTHER, "/"),
            "the old account logs in"
        );
        assert!(b.get("/").await.body.contains("Pioneers"));
        app.running.shutdown().await;
    }
    // 6 to 9 are the broker's scale-out tables (agents and leases, agent load, group holds,
    // group snapshots), 10 the agents' TLS listener, 11 and 12 ACLs and client quotas, 14
    // producer ids per cluster, 15 lag alert rules, 16 transactions, 17 key compaction, 18
    // the offsets topic's records; all are applied on the first start too.
    assert_eq!(
        applied_versions(&url).await,
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17, 18, 1001]
    );
}

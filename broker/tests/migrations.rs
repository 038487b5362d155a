//! Migrations that cannot drift: every migration is written once per backend, and this test
//! proves the two versions build the same schema.
//!
//! A *set* is a folder `X` holding `X/sqlite/` and `X/postgres/`; every set under
//! `migrations/` (the folder itself included) is found when the test runs, so a new set is
//! covered without editing this file. For each set:
//!
//! 1. the two folders hold the same file names, one to one;
//! 2. the SQLite half applies to an empty database (always);
//! 3. the Postgres half applies to a fresh schema on `SLUICE_TEST_POSTGRES_URL` (when set),
//!    and the tables, columns and indexes read back from both catalogs are equal after the
//!    types are mapped to one vocabulary.
//!
//! Each set gets its own empty database, as sqlx keeps one `_sqlx_migrations` table per
//! database. The migrations are loaded at run time (`Migrator::new(Path)`), not with
//! `sqlx::migrate!`, so that the set list is not fixed at compile time.
//!
//! What "equal" means (see `Schema`): per table, each column's name, mapped type, `NOT NULL`
//! and position in the primary key; UNIQUE constraints by their column set (SQLite names them
//! `sqlite_autoindex_*`, Postgres `*_key`); other indexes by name, column list, uniqueness and
//! whether they are partial. Primary-key indexes are not compared as indexes (SQLite's
//! `sqlite_autoindex_*` of a PRIMARY KEY, Postgres' `*_pkey`): the key is compared through the
//! columns. Defaults, foreign keys and CHECK constraints are not compared.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

/// Tables that are not ours to compare: sqlx's bookkeeping and the console's session store
/// (on SQLite it lives in the metadata database; on Postgres in its own schema, which the
/// comparison never reads).
const IGNORED_TABLES: [&str; 2] = ["_sqlx_migrations", "tower_sessions"];

const POSTGRES_URL_VAR: &str = "SLUICE_TEST_POSTGRES_URL";

// =========================================================================================
// The sets of migrations
// =========================================================================================

/// One folder with a `sqlite/` and a `postgres/` half (either may be missing; the pairing
/// test says so).
#[derive(Debug)]
struct MigrationSet {
    /// Relative to the repository root, e.g. `migrations` or `migrations/platform`.
    name: String,
    sqlite: PathBuf,
    postgres: PathBuf,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the broker crate should sit in the workspace root")
        .to_path_buf()
}

/// Every folder at or below `migrations/` that holds a `sqlite/` or a `postgres/` folder.
fn migration_sets() -> Vec<MigrationSet> {
    let root = repo_root();
    let mut sets = Vec::new();
    let mut pending = vec![root.join("migrations")];
    while let Some(dir) = pending.pop() {
        let (sqlite, postgres) = (dir.join("sqlite"), dir.join("postgres"));
        if sqlite.is_dir() || postgres.is_dir() {
            let name = dir
                .strip_prefix(&root)
                .unwrap_or(&dir)
                .display()
                .to_string();
            sets.push(MigrationSet {
                name,
                sqlite,
                postgres,
            });
        }
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
                .path();
            let backend = path
                .file_name()
                .is_some_and(|n| n == "sqlite" || n == "postgres");
            if path.is_dir() && !backend {
                pending.push(path);
            }
        }
    }
    sets.sort_by(|a, b| a.name.cmp(&b.name));
    sets
}

/// The file names in a migration folder (hidden files such as `.gitkeep` aside).
fn file_names(dir: &Path) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            names.insert(name);
        }
    }
    Ok(names)
}

/// Writes straight to the process's stderr, which the test harness does not capture, so a
/// skipped half shows in a normal `cargo test` run and not only with `--nocapture`.
fn shout(text: &str) {
    let _ = writeln!(std::io::stderr(), "\n*** {text} ***\n");
}

#[test]
fn every_migration_exists_once_per_backend() {
    let sets = migration_sets();
    assert!(
        sets.iter().any(|s| s.name == "migrations"),
        "migrations/sqlite and migrations/postgres were not found under {}",
        repo_root().display()
    );
    let mut problems = Vec::new();
    for set in &sets {
        let (Ok(sqlite), Ok(postgres)) = (file_names(&set.sqlite), file_names(&set.postgres))
        else {
            for dir in [&set.sqlite, &set.postgres] {
                if !dir.is_dir() {
                    problems.push(format!("{}: {} is missing", set.name, dir.display()));
                }
            }
            continue;
        };
        if sqlite.is_empty() {
            problems.push(format!("{}: sqlite/ holds no migration", set.name));
        }
        for name in sqlite.difference(&postgres) {
            problems.push(format!(
                "{}: sqlite/{name} has no postgres/{name}",
                set.name
            ));
        }
        for name in postgres.difference(&sqlite) {
            problems.push(format!(
                "{}: postgres/{name} has no sqlite/{name}",
                set.name
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "migration folders do not pair up:\n  {}",
        problems.join("\n  ")
    );
}

// =========================================================================================
// The schema as both catalogs describe it
// =========================================================================================

#[derive(Debug, Default, PartialEq, Eq)]
struct Schema {
    tables: BTreeMap<String, Table>,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Table {
    columns: BTreeMap<String, Column>,
    /// UNIQUE constraints, each as its set of columns.
    unique: BTreeSet<BTreeSet<String>>,
    /// Indexes made with CREATE INDEX, by name.
    indexes: BTreeMap<String, Index>,
}

#[derive(Debug, PartialEq, Eq)]
struct Column {
    /// In the shared vocabulary of `sqlite_type` / `postgres_type`.
    ty: String,
    not_null: bool,
    /// 1-based position in the primary key.
    primary_key: Option<u32>,
}

#[derive(Debug, PartialEq, Eq)]
struct Index {
    /// In index order; `<expression>` for an expression.
    columns: Vec<String>,
    unique: bool,
    partial: bool,
}

impl Table {
    /// One line per fact, in a stable order, for the diff.
    fn facts(&self) -> Vec<String> {
        let mut facts = Vec::new();
        for (name, c) in &self.columns {
            let mut line = format!("column {name} {}", c.ty);
            if c.not_null {
                line.push_str(" not null");
            }
            if let Some(k) = c.primary_key {
                let _ = write!(line, " primary key #{k}");
            }
            facts.push(line);
        }
        for cols in &self.unique {
            let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
            facts.push(format!("unique ({})", cols.join(", ")));
        }
        for (name, ix) in &self.indexes {
            facts.push(format!(
                "index {name} ({}){}{}",
                ix.columns.join(", "),
                if ix.unique { " unique" } else { "" },
                if ix.partial { " partial" } else { "" },
            ));
        }
        facts
    }
}

/// A readable account of how two schemas differ; empty when they are equal.
fn schema_diff(sqlite: &Schema, postgres: &Schema) -> String {
    let mut out = String::new();
    let names: BTreeSet<&String> = sqlite.tables.keys().chain(postgres.tables.keys()).collect();
    for name in names {
        match (sqlite.tables.get(name), postgres.tables.get(name)) {
            (Some(_), None) => {
                let _ = writeln!(out, "  table {name}: only in sqlite");
            }
            (None, Some(_)) => {
                let _ = writeln!(out, "  table {name}: only in postgres");
            }
            (Some(s), Some(p)) => {
                let (s, p) = (s.facts(), p.facts());
                // Sorted by fact, so both versions of one column or index stand together.
                let mut lines: Vec<(&String, &str)> = s
                    .iter()
                    .filter(|f| !p.contains(f))
                    .map(|f| (f, "sqlite:  "))
                    .chain(
                        p.iter()
                            .filter(|f| !s.contains(f))
                            .map(|f| (f, "postgres:")),
                    )
                    .collect();
                if lines.is_empty() {
                    continue;
                }
                lines.sort();
                let _ = writeln!(out, "  table {name}:");
                for (fact, side) in lines {
                    let _ = writeln!(out, "    {side} {fact}");
                }
            }
            (None, None) => {}
        }
    }
    out
}

/// The shared vocabulary for a SQLite declared type. Every SQLite integer is 64-bit, as is
/// every REAL, so they map to the names a Postgres `bigint` / `double precision` gets.
fn sqlite_type(declared: &str) -> String {
    let base = declared
        .split('(')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_uppercase();
    match base.as_str() {
        "INTEGER" | "INT" | "BIGINT" | "INT8" | "INT4" | "INT2" | "SMALLINT" | "TINYINT"
        | "MEDIUMINT" => "integer".into(),
        "TEXT" | "VARCHAR" | "CHAR" | "CHARACTER" | "CHARACTER VARYING" | "CLOB" => "text".into(),
        "BLOB" | "" => "bytes".into(),
        "REAL" | "DOUBLE" | "DOUBLE PRECISION" | "FLOAT" => "float".into(),
        "BOOLEAN" | "BOOL" => "boolean".into(),
        _ => format!("sqlite {}", base.to_ascii_lowercase()),
    }
}

/// The shared vocabulary for a Postgres type (its `udt_name`). 32- and 16-bit integers and
/// 32-bit floats keep their own names: a Rust `i64` or `f64` cannot read them, so a SQLite
/// INTEGER column that is an `integer` on Postgres is a real difference.
fn postgres_type(udt_name: &str) -> String {
    match udt_name {
        "int8" => "integer".into(),
        "int4" => "int4 (32-bit integer)".into(),
        "int2" => "int2 (16-bit integer)".into(),
        "text" | "varchar" | "bpchar" => "text".into(),
        "bytea" => "bytes".into(),
        "float8" => "float".into(),
        "float4" => "float4 (32-bit float)".into(),
        "bool" => "boolean".into(),
        other => format!("postgres {other}"),
    }
}

// =========================================================================================
// SQLite
// =========================================================================================

async fn apply_sqlite(dir: &Path, file: &Path) -> Result<SqlitePool> {
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", file.display()))?
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .context("opening the SQLite database")?;
    let migrator = Migrator::new(dir)
        .await
        .with_context(|| format!("loading {}", dir.display()))?;
    migrator
        .run(&pool)
        .await
        .with_context(|| format!("applying {} to SQLite", dir.display()))?;
    Ok(pool)
}

async fn sqlite_schema(pool: &SqlitePool) -> Result<Schema> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )
    .fetch_all(pool)
    .await
    .context("reading sqlite_master")?;
    let mut schema = Schema::default();
    for name in tables {
        if IGNORED_TABLES.contains(&name.as_str()) {
            continue;
        }
        let mut table = Table::default();
        let columns = sqlx::query(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .with_context(|| format!("reading the columns of {name}"))?;
        for row in columns {
            let column: String = row.try_get("name")?;
            let declared: String = row.try_get("type")?;
            let not_null: i64 = row.try_get("notnull")?;
            let pk: i64 = row.try_get("pk")?;
            let primary_key = u32::try_from(pk).ok().filter(|&k| k > 0);
            table.columns.insert(
                column,
                Column {
                    ty: sqlite_type(&declared),
                    // SQLite lets a primary-key column that is not an INTEGER PRIMARY KEY
                    // hold NULL unless NOT NULL is spelled out (a legacy quirk); Postgres
                    // always adds NOT NULL. Our code never stores a NULL key, so the two
                    // are taken as equal.
                    not_null: not_null != 0 || primary_key.is_some(),
                    primary_key,
                },
            );
        }
        let indexes =
            sqlx::query("SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1)")
                .bind(&name)
                .fetch_all(pool)
                .await
                .with_context(|| format!("reading the indexes of {name}"))?;
        for row in indexes {
            let index: String = row.try_get("name")?;
            let unique: i64 = row.try_get("unique")?;
            let origin: String = row.try_get("origin")?;
            let partial: i64 = row.try_get("partial")?;
            let columns: Vec<Option<String>> =
                sqlx::query_scalar("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
                    .bind(&index)
                    .fetch_all(pool)
                    .await
                    .with_context(|| format!("reading the columns of index {index}"))?;
            let columns: Vec<String> = columns
                .into_iter()
                .map(|c| c.unwrap_or_else(|| "<expression>".into()))
                .collect();
            match origin.as_str() {
                // The primary key is compared through the columns.
                "pk" => {}
                "u" => {
                    table.unique.insert(columns.into_iter().collect());
                }
                _ => {
                    table.indexes.insert(
                        index,
                        Index {
                            columns,
                            unique: unique != 0,
                            partial: partial != 0,
                        },
                    );
                }
            }
        }
        schema.tables.insert(name, table);
    }
    Ok(schema)
}

// =========================================================================================
// Postgres
// =========================================================================================

/// A schema of its own on the test server, dropped by `drop_schema`.
struct PgScratch {
    admin: PgPool,
    schema: String,
    pool: PgPool,
}

impl PgScratch {
    async fn create(url: &str) -> Result<PgScratch> {
        let base = PgConnectOptions::from_str(url).context("parsing SLUICE_TEST_POSTGRES_URL")?;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(base.clone())
            .await
            .context("connecting to SLUICE_TEST_POSTGRES_URL")?;
        let schema = format!("sluice_migrations_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .with_context(|| format!("creating schema {schema}"))?;
        // Unqualified names (the migrations' and sqlx's own table) land in the new schema.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(base.options([("search_path", schema.as_str())]))
            .await
            .context("connecting with the scratch search_path")?;
        Ok(PgScratch {
            admin,
            schema,
            pool,
        })
    }

    async fn drop_schema(self) -> Result<()> {
        self.pool.close().await;
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .execute(&self.admin)
            .await
            .with_context(|| format!("dropping schema {}", self.schema))?;
        self.admin.close().await;
        Ok(())
    }
}

async fn postgres_schema(pool: &PgPool, schema: &str) -> Result<Schema> {
    let mut out = Schema::default();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .context("reading information_schema.tables")?;
    for name in tables {
        if !IGNORED_TABLES.contains(&name.as_str()) {
            out.tables.insert(name, Table::default());
        }
    }

    let columns = sqlx::query(
        "SELECT table_name::text AS table_name, column_name::text AS column_name, \
                udt_name::text AS udt_name, is_nullable::text AS is_nullable \
         FROM information_schema.columns WHERE table_schema = $1",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .context("reading information_schema.columns")?;
    for row in columns {
        let table: String = row.try_get("table_name")?;
        let Some(t) = out.tables.get_mut(&table) else {
            continue;
        };
        let udt: String = row.try_get("udt_name")?;
        let nullable: String = row.try_get("is_nullable")?;
        t.columns.insert(
            row.try_get("column_name")?,
            Column {
                ty: postgres_type(&udt),
                not_null: nullable == "NO",
                primary_key: None,
            },
        );
    }

    // Every index of the schema with its key columns in order; whether it backs the primary
    // key or a UNIQUE constraint decides how it is compared.
    let indexes = sqlx::query(
        "SELECT t.relname::text AS table_name, i.relname::text AS index_name, \
                ix.indisunique AS is_unique, ix.indisprimary AS is_primary, \
                (ix.indpred IS NOT NULL) AS is_partial, \
                EXISTS (SELECT 1 FROM pg_constraint c \
                        WHERE c.conindid = ix.indexrelid AND c.contype = 'u') AS is_constraint, \
                ARRAY(SELECT COALESCE(a.attname::text, '<expression>') \
                      FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                      LEFT JOIN pg_attribute a \
                             ON a.attrelid = ix.indrelid AND a.attnum = k.attnum \
                      WHERE k.ord <= ix.indnkeyatts \
                      ORDER BY k.ord) AS columns \
         FROM pg_index ix \
         JOIN pg_class i ON i.oid = ix.indexrelid \
         JOIN pg_class t ON t.oid = ix.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = $1",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .context("reading pg_index")?;
    for row in indexes {
        let table: String = row.try_get("table_name")?;
        let Some(t) = out.tables.get_mut(&table) else {
            continue;
        };
        let columns: Vec<String> = row.try_get("columns")?;
        if row.try_get::<bool, _>("is_primary")? {
            for (k, column) in columns.iter().enumerate() {
                let Some(c) = t.columns.get_mut(column) else {
                    bail!("primary key of {table} names unknown column {column}");
                };
                c.primary_key = Some(u32::try_from(k + 1)?);
            }
        } else if row.try_get::<bool, _>("is_constraint")? {
            t.unique.insert(columns.into_iter().collect());
        } else {
            t.indexes.insert(
                row.try_get("index_name")?,
                Index {
                    columns,
                    unique: row.try_get("is_unique")?,
                    partial: row.try_get("is_partial")?,
                },
            );
        }
    }
    Ok(out)
}

async fn apply_postgres(dir: &Path, scratch: &PgScratch) -> Result<Schema> {
    let migrator = Migrator::new(dir)
        .await
        .with_context(|| format!("loading {}", dir.display()))?;
    migrator
        .run(&scratch.pool)
        .await
        .with_context(|| format!("applying {} to Postgres", dir.display()))?;
    postgres_schema(&scratch.pool, &scratch.schema).await
}

// =========================================================================================
// The comparison
// =========================================================================================

/// Applies one set to both backends and describes any difference; `Ok(None)` = equal or
/// Postgres not configured.
async fn check_set(set: &MigrationSet, postgres_url: Option<&str>) -> Result<Option<String>> {
    let tmp = tempfile::tempdir()?;
    let pool = apply_sqlite(&set.sqlite, &tmp.path().join("schema.db")).await?;
    let sqlite = sqlite_schema(&pool).await?;
    pool.close().await;
    if sqlite.tables.is_empty() {
        bail!("{}: the SQLite migrations created no table", set.name);
    }
    let Some(url) = postgres_url else {
        return Ok(None);
    };
    let scratch = PgScratch::create(url).await?;
    // Drop the scratch schema whatever happened, then report.
    let postgres = apply_postgres(&set.postgres, &scratch).await;
    let dropped = scratch.drop_schema().await;
    let postgres = postgres?;
    dropped?;
    let diff = schema_diff(&sqlite, &postgres);
    if diff.is_empty() {
        assert_eq!(sqlite, postgres, "schema_diff missed a difference");
        return Ok(None);
    }
    Ok(Some(diff))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_migrations_build_the_same_schema() {
    let postgres_url = std::env::var(POSTGRES_URL_VAR).ok();
    let sets = migration_sets();
    assert!(!sets.is_empty(), "no migration set found");
    let mut failures = Vec::new();
    for set in &sets {
        match check_set(set, postgres_url.as_deref()).await {
            Ok(None) => {}
            Ok(Some(diff)) => failures.push(format!(
                "{}: sqlite/ and postgres/ build different schemas:\n{diff}",
                set.name
            )),
            Err(e) => failures.push(format!("{}: {e:#}", set.name)),
        }
    }
    if postgres_url.is_none() {
        shout(&format!(
            "skipped: postgres schema comparison ({POSTGRES_URL_VAR} not set); \
             only the SQLite half of {} migration set(s) was applied",
            sets.len()
        ));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

// =========================================================================================
// The comparison itself, on schemas that differ
// =========================================================================================

#[test]
fn types_map_to_one_vocabulary() {
    for (s, p) in [
        ("INTEGER", "int8"),
        ("BIGINT", "int8"),
        ("TEXT", "text"),
        ("VARCHAR(64)", "varchar"),
        ("BLOB", "bytea"),
        ("REAL", "float8"),
        ("DOUBLE PRECISION", "float8"),
        ("BOOLEAN", "bool"),
    ] {
        assert_eq!(sqlite_type(s), postgres_type(p), "{s} vs {p}");
    }
    assert_ne!(sqlite_type("INTEGER"), postgres_type("int4"));
    assert_ne!(sqlite_type("TEXT"), postgres_type("timestamptz"));
}

#[test]
fn diff_names_every_kind_of_difference() {
    let column = |ty: &str, not_null: bool, pk: Option<u32>| Column {
        ty: ty.into(),
        not_null,
        primary_key: pk,
    };
    let mut a = Table::default();
    a.columns
        .insert("id".into(), column("integer", true, Some(1)));
    a.columns.insert("name".into(), column("text", true, None));
    a.unique.insert(BTreeSet::from(["name".to_string()]));
    a.indexes.insert(
        "t_name".into(),
        Index {
            columns: vec!["name".into()],
            unique: false,
            partial: false,
        },
    );
    let mut b = Table::default();
    b.columns
        .insert("id".into(), column("integer", true, Some(1)));
    b.columns.insert("name".into(), column("text", false, None));
    b.indexes.insert(
        "t_name".into(),
        Index {
            columns: vec!["name".into(), "id".into()],
            unique: false,
            partial: false,
        },
    );
    let sqlite = Schema {
        tables: BTreeMap::from([
            ("t".to_string(), a),
            ("only_s".to_string(), Table::default()),
        ]),
    };
    let postgres = Schema {
        tables: BTreeMap::from([("t".to_string(), b)]),
    };
    let diff = schema_diff(&sqlite, &postgres);
    assert!(diff.contains("table only_s: only in sqlite"), "{diff}");
    assert!(
        diff.contains("sqlite:   column name text not null"),
        "{diff}"
    );
    assert!(diff.contains("postgres: column name text\n"), "{diff}");
    assert!(diff.contains("sqlite:   unique (name)"), "{diff}");
    assert!(diff.contains("postgres: index t_name (name, id)"), "{diff}");
    assert!(!diff.contains("column id"), "{diff}");
    assert!(schema_diff(&sqlite, &sqlite).is_empty());
}

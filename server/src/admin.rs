//! Admin commands on the metadata database: virtual clusters and API keys. Organisations
//! (for `--org` and the cluster list) are read from the console's platform database.

use anyhow::{bail, Context};
use app::store::{Org, Platform};
use app::views::fmt_time;
use broker::store::{Metadata, VirtualCluster};

use crate::cli::{ApiKeysCommand, ClustersCommand, StoreArgs};

fn metadata_url(store: &StoreArgs) -> anyhow::Result<String> {
    Ok(match &store.database_url {
        Some(u) => u.clone(),
        None => {
            std::fs::create_dir_all(&store.data_dir)
                .with_context(|| format!("creating data dir {}", store.data_dir.display()))?;
            let abs = std::fs::canonicalize(&store.data_dir)?;
            format!("sqlite://{}", abs.join("meta.db").display())
        }
    })
}

async fn open(store: &StoreArgs) -> anyhow::Result<Metadata> {
    let url = metadata_url(store)?;
    Metadata::connect(&url)
        .await
        .with_context(|| format!("opening metadata database {}", broker::agent::redact(&url)))
}

async fn open_platform(store: &StoreArgs) -> anyhow::Result<Platform> {
    let url = match &store.platform_database_url {
        Some(u) => u.clone(),
        None => metadata_url(store)?,
    };
    Platform::connect(&url)
        .await
        .with_context(|| format!("opening platform database {}", broker::agent::redact(&url)))
}

async fn find_cluster(meta: &Metadata, name_or_id: &str) -> anyhow::Result<VirtualCluster> {
    if let Some(c) = meta.virtual_cluster(name_or_id).await? {
        return Ok(c);
    }
    let mut named: Vec<VirtualCluster> = meta
        .all_virtual_clusters()
        .await?
        .into_iter()
        .filter(|c| c.name == name_or_id)
        .collect();
    match named.len() {
        0 => bail!("no cluster named or with id '{name_or_id}'; create one with `sluice clusters create NAME`"),
        1 => Ok(named.remove(0)),
        n => bail!("{n} clusters (of different organisations) are named '{name_or_id}'; give its id (see `sluice clusters list`)"),
    }
}

async fn find_org(platform: &Platform, name_or_id: &str) -> anyhow::Result<Org> {
    let orgs = platform.orgs().await?;
    let mut found: Vec<Org> = orgs
        .iter()
        .filter(|o| o.id == name_or_id)
        .cloned()
        .collect();
    if found.is_empty() {
        found = orgs.into_iter().filter(|o| o.name == name_or_id).collect();
    }
    match found.len() {
        0 => bail!("no organisation named or with id '{name_or_id}'; organisations are created by signing up in the console"),
        1 => Ok(found.remove(0)),
        n => bail!("{n} organisations are named '{name_or_id}'; give its id (see `sluice clusters list`)"),
    }
}

pub async fn clusters(cmd: ClustersCommand) -> anyhow::Result<()> {
    match cmd {
        ClustersCommand::Create { name, org, store } => {
            // The console's rules: a usable name, and not the built-in `default`.
            if let Err(refusal) = app::ops::check_cluster_name(&name) {
                bail!("{}", refusal.message);
            }
            let meta = open(&store).await?;
            let platform = open_platform(&store).await?;
            let org = match org {
                Some(o) => Some(find_org(&platform, &o).await?),
                // Without --org: the only organisation, if there is just one; a choice to
                // make when there are several (a cluster of none shows in no console).
                None => {
                    let mut orgs = platform.orgs().await?;
                    match orgs.len() {
                        0 => None,
                        1 => orgs.pop(),
                        _ => bail!(
                            "{} organisations exist ({}); say which one shows the cluster with --org NAME",
                            orgs.len(),
                            orgs.iter().map(|o| format!("'{}'", o.name)).collect::<Vec<_>>().join(", ")
                        ),
                    }
                }
            };
            let org_id = org.as_ref().map(|o| o.id.as_str()).unwrap_or("");
            let c = meta.create_virtual_cluster(org_id, &name).await?;
            match org {
                Some(o) => println!(
                    "created cluster '{}' with id {} in organisation '{}'",
                    c.name, c.id, o.name
                ),
                None => println!(
                    "created cluster '{}' with id {} (in no organisation: no console shows it; \
                     manage it with `sluice clusters` and `sluice api-keys`)",
                    c.name, c.id
                ),
            }
        }
        ClustersCommand::List { store } => {
            let meta = open(&store).await?;
            let orgs = open_platform(&store).await?.orgs().await?;
            println!(
                "{:<34} {:<24} {:<34} {:>10} {:>12}",
                "ID", "NAME", "ORGANISATION", "PARTITIONS", "AUTO-CREATE"
            );
            for c in meta.all_virtual_clusters().await? {
                let org = orgs
                    .iter()
                    .find(|o| o.id == c.org_id)
                    .map(|o| format!("{} ({})", o.name, o.id))
                    .unwrap_or_else(|| "-".to_string());
                println!(
                    "{:<34} {:<24} {:<34} {:>10} {:>12}",
                    c.id, c.name, org, c.default_partitions, c.auto_create_topics
                );
            }
        }
    }
    Ok(())
}

pub async fn api_keys(cmd: ApiKeysCommand) -> anyhow::Result<()> {
    match cmd {
        ApiKeysCommand::Create {
            cluster,
            name,
            store,
        } => {
            let meta = open(&store).await?;
            let c = find_cluster(&meta, &cluster).await?;
            let (key, secret) = meta.create_api_key(&c.id, &name, "cli").await?;
            println!(
                "API key for cluster '{}' (the secret is shown only now):",
                c.name
            );
            println!("  key id (SASL username): {}", key.id);
            println!("  secret (SASL password): {secret}");
            println!("librdkafka / kcat:");
            println!("  -X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=SCRAM-SHA-256 \\");
            println!("  -X sasl.username={} -X sasl.password={secret}", key.id);
        }
        ApiKeysCommand::List { cluster, store } => {
            let meta = open(&store).await?;
            let c = find_cluster(&meta, &cluster).await?;
            println!(
                "{:<22} {:<20} {:<10} {:<23} {:<23} REVOKED",
                "KEY ID", "NAME", "CREATOR", "CREATED", "LAST USED"
            );
            // The dates as the console shows them (UTC), "-" for never.
            let t = |v: Option<i64>| v.map(fmt_time).unwrap_or_else(|| "-".to_string());
            for k in meta.api_keys(&c.id).await? {
                println!(
                    "{:<22} {:<20} {:<10} {:<23} {:<23} {}",
                    k.id,
                    k.name,
                    k.created_by,
                    fmt_time(k.created_at_ms),
                    t(k.last_used_at_ms),
                    t(k.revoked_at_ms)
                );
            }
        }
        ApiKeysCommand::Revoke { key_id, store } => {
            let meta = open(&store).await?;
            if meta.revoke_api_key(&key_id).await? {
                println!("revoked {key_id}; new connections with it are refused within seconds");
            } else {
                bail!("no live key '{key_id}'");
            }
        }
    }
    Ok(())
}

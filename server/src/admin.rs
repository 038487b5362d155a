//! Admin commands on the metadata database: virtual clusters and API keys.

use anyhow::{bail, Context};
use broker::store::{Metadata, VirtualCluster};

use crate::cli::{ApiKeysCommand, ClustersCommand, StoreArgs};

async fn open(store: &StoreArgs) -> anyhow::Result<Metadata> {
    let url = match &store.database_url {
        Some(u) => u.clone(),
        None => {
            std::fs::create_dir_all(&store.data_dir)
                .with_context(|| format!("creating data dir {}", store.data_dir.display()))?;
            let abs = std::fs::canonicalize(&store.data_dir)?;
            format!("sqlite://{}", abs.join("meta.db").display())
        }
    };
    Metadata::connect(&url)
        .await
        .with_context(|| format!("opening metadata database {}", broker::agent::redact(&url)))
}

async fn find_cluster(meta: &Metadata, name_or_id: &str) -> anyhow::Result<VirtualCluster> {
    if let Some(c) = meta.virtual_cluster(name_or_id).await? {
        return Ok(c);
    }
    match meta.virtual_clusters("").await?.into_iter().find(|c| c.name == name_or_id) {
        Some(c) => Ok(c),
        None => bail!("no cluster named or with id '{name_or_id}'; create one with `sluice clusters create NAME`"),
    }
}

pub async fn clusters(cmd: ClustersCommand) -> anyhow::Result<()> {
    match cmd {
        ClustersCommand::Create { name, store } => {
            let meta = open(&store).await?;
            let c = meta.create_virtual_cluster("", &name).await?;
            println!("created cluster '{}' with id {}", c.name, c.id);
        }
        ClustersCommand::List { store } => {
            let meta = open(&store).await?;
            println!(
                "{:<34} {:<24} {:>10} {:>14}",
                "ID", "NAME", "PARTITIONS", "AUTO-CREATE"
            );
            for c in meta.virtual_clusters("").await? {
                println!(
                    "{:<34} {:<24} {:>10} {:>14}",
                    c.id, c.name, c.default_partitions, c.auto_create_topics
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
                "{:<22} {:<20} {:<10} {:>15} {:>15} {:>15}",
                "KEY ID", "NAME", "CREATOR", "CREATED", "LAST USED", "REVOKED"
            );
            for k in meta.api_keys(&c.id).await? {
                let t = |v: Option<i64>| {
                    v.map(|ms| ms.to_string())
                        .unwrap_or_else(|| "-".to_string())
                };
                println!(
                    "{:<22} {:<20} {:<10} {:>15} {:>15} {:>15}",
                    k.id,
                    k.name,
                    k.created_by,
                    k.created_at_ms,
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

//! N `sluice serve` agents sharing one metadata database and one bucket.
//!
//! By default each run gets a fresh temporary directory holding `meta.db` (SQLite) and
//! `bucket/` (`file://`), so runs never share state; with `--database-url` / `--bucket-url`
//! the given stores are used and the caller picks fresh topic names instead. Agents start one
//! after the other (the first one runs the migrations), each with its own data dir, ephemeral
//! ports and `--rack zN`. Stopping sends SIGTERM, on which an agent gives its node id back,
//! so the next run's Metadata does not list it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::rss::RssSampler;
use crate::server::{Server, SpawnOptions};

pub(crate) struct ClusterOptions {
    pub(crate) sluice: PathBuf,
    pub(crate) count: usize,
    pub(crate) database_url: Option<String>,
    pub(crate) bucket_url: Option<String>,
    pub(crate) batch_timeout: String,
    pub(crate) extra_args: Vec<String>,
    pub(crate) forward_log: bool,
    pub(crate) keep_data: bool,
    pub(crate) startup_timeout: Duration,
}

pub(crate) struct Agent {
    server: Mutex<Server>,
    pub(crate) pid: u32,
    pub(crate) kafka: String,
    pub(crate) http: Option<String>,
    pub(crate) rack: String,
    pub(crate) sampler: RssSampler,
}

impl Agent {
    /// Exit status if the agent has ended.
    pub(crate) fn exited(&self) -> Option<String> {
        self.server.lock().ok().and_then(|mut s| s.exited())
    }
}

pub(crate) struct Cluster {
    pub(crate) agents: Vec<Agent>,
    /// Temporary directory of the default SQLite file and bucket, if we made one.
    shared_dir: Option<PathBuf>,
    keep_data: bool,
}

impl Cluster {
    pub(crate) fn start(opts: &ClusterOptions) -> Result<Cluster> {
        let mut cluster = Cluster {
            agents: Vec::new(),
            shared_dir: None,
            keep_data: opts.keep_data,
        };
        let needs_dir = opts.database_url.is_none() || opts.bucket_url.is_none();
        if needs_dir {
            let dir = std::env::temp_dir().join(format!(
                "sluice-scale-{}-{}-a{}",
                std::process::id(),
                crate::scale::wall_us(),
                opts.count
            ));
            std::fs::create_dir_all(dir.join("bucket"))
                .with_context(|| format!("creating {}", dir.display()))?;
            cluster.shared_dir = Some(dir);
        }
        let shared = cluster.shared_dir.clone().unwrap_or_default();
        let database_url = opts
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", shared.join("meta.db").display()));
        let bucket_url = opts
            .bucket_url
            .clone()
            .unwrap_or_else(|| format!("file://{}", shared.join("bucket").display()));
        eprintln!("scale: database {database_url}, bucket {bucket_url}");

        for n in 1..=opts.count {
            let rack = format!("z{n}");
            let mut extra = vec![
                "--database-url".to_string(),
                database_url.clone(),
                "--rack".to_string(),
                rack.clone(),
            ];
            extra.extend(opts.extra_args.iter().cloned());
            // On error `cluster` is dropped, which stops the agents already started.
            let (server, kafka, http) = Server::spawn(&SpawnOptions {
                path: opts.sluice.clone(),
                batch_timeout: opts.batch_timeout.clone(),
                bucket_url: Some(bucket_url.clone()),
                extra_args: extra,
                forward_log: opts.forward_log,
                keep_data: opts.keep_data,
                startup_timeout: opts.startup_timeout,
                data_dir: None,
                log_file: None,
            })
            .with_context(|| format!("starting agent {n}"))?;
            eprintln!(
                "scale: agent {n} pid {} rack {rack} kafka={kafka} http={} data-dir={}",
                server.pid,
                http.as_deref().unwrap_or("?"),
                server.data_dir.display()
            );
            cluster.agents.push(Agent {
                pid: server.pid,
                sampler: RssSampler::start(server.pid, Duration::from_millis(250)),
                server: Mutex::new(server),
                kafka,
                http,
                rack,
            });
        }
        cluster.wait_for_members(opts.startup_timeout)?;
        Ok(cluster)
    }

    /// Waits until Metadata from agent 1 lists exactly the agents of this cluster.
    fn wait_for_members(&self, timeout: Duration) -> Result<()> {
        let consumer = metadata_client(&self.agents[0].kafka, "sluice-scale-members")?;
        let want: Vec<&str> = self.agents.iter().map(|a| a.kafka.as_str()).collect();
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            match consumer.fetch_metadata(None, Duration::from_secs(5)) {
                Ok(md) => {
                    let mut listed: Vec<String> = md
                        .brokers()
                        .iter()
                        .map(|b| format!("{}:{}", b.host(), b.port()))
                        .collect();
                    listed.sort();
                    let mut wanted: Vec<String> = want.iter().map(|s| s.to_string()).collect();
                    wanted.sort();
                    if listed == wanted {
                        eprintln!(
                            "scale: Metadata from agent 1 lists all {} agent(s)",
                            want.len()
                        );
                        return Ok(());
                    }
                    last = format!("listed {listed:?}, want {wanted:?}");
                }
                Err(e) => last = format!("Metadata failed: {e}"),
            }
            thread::sleep(Duration::from_millis(200));
        }
        bail!("Metadata from agent 1 did not list all agents within {timeout:?}: {last}")
    }

    /// How many of the topic's partitions each agent leads, from agent 1's Metadata.
    pub(crate) fn leaders(
        &self,
        topic: &str,
        partitions: i32,
        timeout: Duration,
    ) -> Result<Vec<usize>> {
        let consumer = metadata_client(&self.agents[0].kafka, "sluice-scale-leaders")?;
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
                Ok(md) => {
                    let addr_of: HashMap<i32, String> = md
                        .brokers()
                        .iter()
                        .map(|b| (b.id(), format!("{}:{}", b.host(), b.port())))
                        .collect();
                    if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                        if t.error().is_none() && t.partitions().len() == partitions as usize {
                            let mut counts = vec![0usize; self.agents.len()];
                            for p in t.partitions() {
                                let addr = addr_of.get(&p.leader());
                                if let Some(i) =
                                    self.agents.iter().position(|a| Some(&a.kafka) == addr)
                                {
                                    counts[i] += 1;
                                }
                            }
                            return Ok(counts);
                        }
                        last = format!("{} of {partitions} partitions", t.partitions().len());
                    } else {
                        last = "topic not in Metadata".to_string();
                    }
                }
                Err(e) => last = format!("Metadata failed: {e}"),
            }
            thread::sleep(Duration::from_millis(200));
        }
        bail!("topic {topic} not in agent 1's Metadata within {timeout:?}: {last}")
    }

    /// Stops every agent (SIGTERM, so each deregisters) and removes the shared directory.
    pub(crate) fn stop(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        // Last started first; each stop waits for the process to exit (bounded in `Server`).
        while let Some(agent) = self.agents.pop() {
            if let Ok(mut s) = agent.server.lock() {
                s.stop();
            }
            let _ = agent.sampler.finish();
        }
        if let Some(dir) = self.shared_dir.take() {
            if self.keep_data {
                eprintln!("kept the shared database and bucket in {}", dir.display());
            } else {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// A client used only for Metadata requests.
pub(crate) fn metadata_client(bootstrap: &str, client_id: &str) -> Result<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", client_id)
        .set("group.id", format!("{client_id}-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .create()
        .context("creating a metadata client")
}

/// The agents (host:port) that Metadata shows to a client with this `client.id`.
pub(crate) fn brokers_seen_by(bootstrap: &str, client_id: &str) -> Result<Vec<String>> {
    let c = metadata_client(bootstrap, client_id)?;
    let md = c
        .fetch_metadata(None, Duration::from_secs(10))
        .with_context(|| format!("Metadata from {bootstrap} as {client_id}"))?;
    let mut v: Vec<String> = md
        .brokers()
        .iter()
        .map(|b| format!("{}:{}", b.host(), b.port()))
        .collect();
    v.sort();
    Ok(v)
}

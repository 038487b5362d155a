//! The agents of the kill test: N `sluice serve` processes on one database and one bucket,
//! each with its own data directory, rack (`z1`..`zN`) and node id (`1`..`N`, given
//! explicitly so that a restarted agent comes back under the same id), killed with SIGKILL
//! and started again with the same flags.
//!
//! A restart right after a kill may be refused: the killed agent's row in `agents` holds its
//! node id until the session timeout passes (the agent cannot tell a restart of itself from
//! a second agent claiming the id). `restart` therefore tries again every half second until
//! its deadline, and reports how many attempts it took.

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::probe::{self, View};
use crate::server::{Server, SpawnOptions};

/// Timeout of one probe request (Metadata, FindCoordinator) to one agent.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) struct ClusterConfig {
    pub(crate) sluice: PathBuf,
    pub(crate) agents: usize,
    pub(crate) database_url: String,
    pub(crate) bucket_url: String,
    pub(crate) session_timeout: String,
    pub(crate) batch_timeout: String,
    /// Agent `i`'s data directory is `run_dir/agent{i}`.
    pub(crate) run_dir: PathBuf,
}

pub(crate) struct Agent {
    pub(crate) node_id: i32,
    pub(crate) rack: String,
    /// The Kafka address of the current (or last) process.
    pub(crate) kafka: String,
    pub(crate) alive: bool,
    pub(crate) data_dir: PathBuf,
    pub(crate) log_file: PathBuf,
    server: Server,
}

impl Agent {
    pub(crate) fn name(&self) -> String {
        format!("agent{} (rack {})", self.node_id, self.rack)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.server.pid
    }
}

pub(crate) struct Cluster {
    pub(crate) agents: Vec<Agent>,
}

impl Cluster {
    /// Starts every agent, then waits until each one's Metadata lists all of them.
    pub(crate) fn start(cfg: &ClusterConfig) -> Result<Cluster> {
        let mut agents = Vec::with_capacity(cfg.agents);
        for i in 1..=cfg.agents {
            let node_id = i32::try_from(i).context("too many agents")?;
            let rack = format!("z{i}");
            let data_dir = cfg.run_dir.join(format!("agent{i}"));
            let log_file = data_dir.join("agent.log");
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            let opts = SpawnOptions {
                path: cfg.sluice.clone(),
                batch_timeout: cfg.batch_timeout.clone(),
                bucket_url: Some(cfg.bucket_url.clone()),
                extra_args: vec![
                    "--database-url".into(),
                    cfg.database_url.clone(),
                    "--node-id".into(),
                    node_id.to_string(),
                    "--rack".into(),
                    rack.clone(),
                    "--agent-session-timeout".into(),
                    cfg.session_timeout.clone(),
                ],
                forward_log: false,
                keep_data: true,
                startup_timeout: Duration::from_secs(60),
                data_dir: Some(data_dir.clone()),
                log_file: Some(log_file.clone()),
            };
            let (server, kafka, _http) = Server::spawn(&opts)
                .with_context(|| format!("starting agent {i} (log: {})", log_file.display()))?;
            eprintln!(
                "kill-test: started agent{i} node={node_id} rack={rack} pid={} kafka={kafka} log={}",
                server.pid,
                log_file.display()
            );
            agents.push(Agent {
                node_id,
                rack,
                kafka,
                alive: true,
                data_dir,
                log_file,
                server,
            });
        }
        let cluster = Cluster { agents };
        let ids: Vec<i32> = cluster.agents.iter().map(|a| a.node_id).collect();
        for a in &cluster.agents {
            cluster
                .wait_for_view(&a.kafka, None, Duration::from_secs(30), |v| {
                    ids.iter().all(|id| v.lists(*id).is_some())
                })
                .with_context(|| format!("waiting for {} to list every agent", a.name()))?;
        }
        Ok(cluster)
    }

    /// The Kafka addresses of the live agents, comma-separated.
    pub(crate) fn bootstrap(&self) -> String {
        self.agents
            .iter()
            .filter(|a| a.alive)
            .map(|a| a.kafka.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A live agent other than `except` (index into `agents`).
    pub(crate) fn survivor(&self, except: Option<usize>) -> Option<&Agent> {
        self.agents
            .iter()
            .enumerate()
            .find(|(i, a)| a.alive && Some(*i) != except)
            .map(|(_, a)| a)
    }

    pub(crate) fn index_of(&self, node_id: i32) -> Option<usize> {
        self.agents.iter().position(|a| a.node_id == node_id)
    }

    /// SIGKILL to agent `i`.
    pub(crate) fn kill(&mut self, i: usize) -> Result<()> {
        let agent = &mut self.agents[i];
        agent.server.kill()?;
        agent.alive = false;
        Ok(())
    }

    /// Starts agent `i` again with the same flags, retrying until `deadline` (see the
    /// module documentation). Returns the number of attempts.
    pub(crate) fn restart(&mut self, i: usize, deadline: Instant) -> Result<u32> {
        let agent = &mut self.agents[i];
        let mut attempts = 0;
        loop {
            attempts += 1;
            match agent.server.restart() {
                Ok((kafka, _http)) => {
                    agent.kafka = kafka;
                    agent.alive = true;
                    return Ok(attempts);
                }
                Err(e) if Instant::now() + Duration::from_millis(500) < deadline => {
                    if attempts <= 3 {
                        eprintln!(
                            "kill-test: restart attempt {attempts} of {} failed, retrying: {e:#}",
                            agent.name()
                        );
                    }
                    thread::sleep(Duration::from_millis(500));
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "restarting {} ({attempts} attempts; log: {})",
                            agent.name(),
                            agent.log_file.display()
                        )
                    })
                }
            }
        }
    }

    /// Agents whose process has ended although they were not killed by us.
    pub(crate) fn crashed(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for a in &mut self.agents {
            if !a.alive {
                continue;
            }
            if let Some(status) = a.server.exited() {
                a.alive = false;
                out.push(format!(
                    "{} exited on its own ({status}); log: {}",
                    a.name(),
                    a.log_file.display()
                ));
            }
        }
        out
    }

    /// Polls `addr`'s Metadata (for `topic`, if given) until `want` holds.
    pub(crate) fn wait_for_view(
        &self,
        addr: &str,
        topic: Option<&str>,
        timeout: Duration,
        want: impl Fn(&View) -> bool,
    ) -> Result<View> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match probe::metadata(addr, topic, PROBE_TIMEOUT) {
                Ok(v) if want(&v) => return Ok(v),
                Ok(v) => format!("brokers {:?}", v.brokers),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() > deadline {
                bail!("Metadata from {addr} not as expected after {timeout:?}: {last}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM to every agent (SIGKILL after 10 s).
    pub(crate) fn stop(&mut self) {
        for a in &mut self.agents {
            a.server.stop();
            a.alive = false;
        }
    }
}

//! This agent's place in the cluster: the node id it leased in the metadata database, its
//! heartbeat, and the list of live agents that Metadata, FindCoordinator and the console
//! read.
//!
//! # Consistency
//! * The node id is a lease: the row in `agents` stays ours while we heartbeat it at least
//!   once per session timeout. An agent that misses it (paused, partitioned) may find its
//!   id taken; its next heartbeat says so and it registers again under a new id.
//! * The live list is refreshed every [`refresh_interval`] (a second at most), so a new
//!   agent shows up in Metadata within about a second and a dead one disappears within the
//!   session timeout plus a second. Every agent computes leaders and coordinators from the
//!   same list with the same hash ([`crate::placement`]), so they agree once their lists
//!   agree; in between, a client may be told to go elsewhere once more (NOT_COORDINATOR),
//!   never served by two coordinators for long.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::config::Roles;
use crate::placement;
use crate::store::{AgentInfo, AgentLoad, Metadata, NewAgent, StoreError};

/// How often the heartbeat runs and the live list is re-read.
pub fn refresh_interval(session_timeout: Duration) -> Duration {
    (session_timeout / 3)
        .min(Duration::from_secs(1))
        .max(Duration::from_millis(50))
}

pub struct Membership {
    meta: Metadata,
    me: NewAgent,
    requested: Option<i32>,
    node_id: AtomicI32,
    timeout: Duration,
    live: RwLock<Arc<Vec<AgentInfo>>>,
    /// Agents found unreachable, with the heartbeat time they had then.
    suspects: Mutex<HashMap<String, i64>>,
    /// Job leases this agent took (given back at shutdown).
    leases: Mutex<HashSet<String>>,
    /// The load sent with the last heartbeat.
    load: Mutex<AgentLoad>,
}

/// This agent's counters as the heartbeat samples them.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadSample {
    /// Record bytes produced to this agent since it started.
    pub produce_bytes: u64,
    /// Record bytes fetched from it since it started.
    pub fetch_bytes: u64,
    /// Bytes its gates hold now.
    pub inflight_bytes: u64,
}

/// Turns counter samples into rates over the last [`LoadMeter::WINDOW`].
#[derive(Default)]
struct LoadMeter {
    samples: VecDeque<(Instant, LoadSample)>,
}

impl LoadMeter {
    const WINDOW: Duration = Duration::from_secs(5);

    fn add(&mut self, at: Instant, s: LoadSample) -> AgentLoad {
        self.samples.push_back((at, s));
        while self.samples.len() > 2 && at.duration_since(self.samples[1].0) >= Self::WINDOW {
            self.samples.pop_front();
        }
        let (first_at, first) = self.samples[0];
        let secs = at.duration_since(first_at).as_secs_f64();
        let rate = |now: u64, then: u64| {
            if secs <= 0.0 {
                0
            } else {
                (now.saturating_sub(then) as f64 / secs) as i64
            }
        };
        AgentLoad {
            produce_bytes_per_s: rate(s.produce_bytes, first.produce_bytes),
            fetch_bytes_per_s: rate(s.fetch_bytes, first.fetch_bytes),
            inflight_bytes: s.inflight_bytes.min(i64::MAX as u64) as i64,
        }
    }
}

impl Membership {
    /// Registers this agent (leasing `requested` or a free node id) and reads the live list.
    pub async fn join(
        meta: Metadata,
        me: NewAgent,
        requested: Option<i32>,
        timeout: Duration,
    ) -> Result<Arc<Self>, StoreError> {
        let node_id = meta
            .register_agent(&me, requested, now_ms(), timeout.as_millis() as i64)
            .await?;
        let m = Arc::new(Membership {
            meta,
            me,
            requested,
            node_id: AtomicI32::new(node_id),
            timeout,
            live: RwLock::new(Arc::new(Vec::new())),
            suspects: Mutex::new(HashMap::new()),
            leases: Mutex::new(HashSet::new()),
            load: Mutex::new(AgentLoad::default()),
        });
        m.refresh().await?;
        tracing::info!(node_id, agent_group = %m.me.agent_group, "joined the cluster");
        Ok(m)
    }

    pub fn node_id(&self) -> i32 {
        self.node_id.load(Ordering::Relaxed)
    }

    pub fn agent_group(&self) -> &str {
        &self.me.agent_group
    }

    pub fn session_timeout(&self) -> Duration {
        self.timeout
    }

    /// This agent as the registry lists it.
    pub fn me(&self) -> AgentInfo {
        AgentInfo {
            node_id: self.node_id(),
            agent_id: self.me.agent_id.clone(),
            host: self.me.host.clone(),
            port: self.me.port,
            tls_host: self.me.tls.as_ref().map(|(h, _)| h.clone()),
            tls_port: self.me.tls.as_ref().map(|(_, p)| *p),
            rack: self.me.rack.clone(),
            agent_group: self.me.agent_group.clone(),
            roles: self.me.roles.clone(),
            version: self.me.version.clone(),
            started_at_ms: self.me.started_at_ms,
            last_seen_ms: now_ms(),
            load: *self.load.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Every live agent of the cluster (all agent groups), this one included.
    pub fn live(&self) -> Arc<Vec<AgentInfo>> {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The live agents a client of this agent's group is told about: the group's agents
    /// that serve Kafka, narrowed to `rack` when the client asked for a zone that has any.
    pub fn brokers_for(&self, rack: Option<&str>) -> Vec<AgentInfo> {
        let live = self.live();
        let group: Vec<AgentInfo> = live
            .iter()
            .filter(|a| a.agent_group == self.me.agent_group && serves_kafka(&a.roles))
            .cloned()
            .collect();
        if let Some(rack) = rack {
            let zoned: Vec<AgentInfo> = group
                .iter()
                .filter(|a| a.rack.as_deref() == Some(rack))
                .cloned()
                .collect();
            if !zoned.is_empty() {
                return zoned;
            }
        }
        group
    }

    /// The agents partition leaders are chosen from, among `brokers` (from
    /// [`Membership::brokers_for`]): those with the produce role, or all when none has it.
    /// Computed once per Metadata request, not per partition.
    pub fn leader_pool(brokers: &[AgentInfo]) -> Vec<AgentInfo> {
        let producers: Vec<AgentInfo> = brokers
            .iter()
            .filter(|a| a.roles.iter().any(|r| r == Roles::PRODUCE))
            .cloned()
            .collect();
        let pool = if producers.is_empty() {
            brokers.to_vec()
        } else {
            producers
        };
        settled(&pool, now_ms())
    }

    /// The leader of a partition among `pool` (from [`Membership::leader_pool`]), spread by
    /// rendezvous hashing.
    pub fn leader(&self, pool: &[AgentInfo], topic_uuid: &str, partition: i32) -> i32 {
        placement::partition_leader(topic_uuid, partition, pool).unwrap_or_else(|| self.node_id())
    }

    /// The agent coordinating a consumer group: the same from every agent of the group.
    pub fn coordinator(&self, cluster: &str, group: &str) -> AgentInfo {
        let brokers = settled(&self.brokers_for(None), now_ms());
        placement::group_coordinator(cluster, group, &brokers)
            .and_then(|id| brokers.iter().find(|a| a.node_id == id).cloned())
            .unwrap_or_else(|| self.me())
    }

    pub fn is_coordinator(&self, cluster: &str, group: &str) -> bool {
        self.coordinator(cluster, group).node_id == self.node_id()
    }

    fn lock_suspects(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.suspects.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Heartbeats our row and re-reads the live list; re-registers if the id was lost.
    async fn refresh(&self) -> Result<(), StoreError> {
        let now = now_ms();
        let timeout_ms = self.timeout.as_millis() as i64;
        let load = *self.load.lock().unwrap_or_else(|p| p.into_inner());
        if !self
            .meta
            .heartbeat_agent(self.node_id(), &self.me.agent_id, now, load)
            .await?
        {
            let lost = self.node_id();
            let id = self
                .meta
                .register_agent(&self.me, self.requested, now, timeout_ms)
                .await?;
            self.node_id.store(id, Ordering::Relaxed);
            tracing::warn!(
                lost,
                node_id = id,
                "node id lease was lost (heartbeats missed); registered again"
            );
        }
        let mut live = self.meta.live_agents(now, timeout_ms).await?;
        // An agent of our group that missed its last heartbeat (or any, at our first look)
        // is probed: a refused connection means the process is gone (killed, restarted
        // elsewhere), so clients are not sent to it for the rest of its session timeout.
        // It stays excluded until it heartbeats again.
        let stale_after = refresh_interval(self.timeout).as_millis() as i64 + 500;
        let first_look = self.live().is_empty();
        let mut gone = Vec::new();
        for a in &live {
            if a.agent_id == self.me.agent_id || a.agent_group != self.me.agent_group {
                continue;
            }
            let known = self.lock_suspects().get(&a.agent_id).copied();
            match known {
                Some(seen) if seen == a.last_seen_ms => gone.push(a.agent_id.clone()),
                _ if first_look || now - a.last_seen_ms > stale_after => {
                    if reachable(&a.host, a.port).await {
                        self.lock_suspects().remove(&a.agent_id);
                    } else {
                        self.lock_suspects()
                            .insert(a.agent_id.clone(), a.last_seen_ms);
                        gone.push(a.agent_id.clone());
                    }
                }
                _ => {
                    self.lock_suspects().remove(&a.agent_id);
                }
            }
        }
        // Forget suspects whose rows have expired.
        self.lock_suspects()
            .retain(|id, _| live.iter().any(|a| &a.agent_id == id));
        live.retain(|a| !gone.contains(&a.agent_id));
        if !live.iter().any(|a| a.agent_id == self.me.agent_id) {
            live.push(self.me());
            live.sort_by_key(|a| a.node_id);
        }
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(live);
        Ok(())
    }

    /// Heartbeats until `cancel` fires, with the load `sample` reads each time.
    pub async fn run(
        self: Arc<Self>,
        sample: impl Fn() -> LoadSample + Send,
        cancel: CancellationToken,
    ) {
        let every = refresh_interval(self.timeout);
        let mut meter = LoadMeter::default();
        meter.add(Instant::now(), sample());
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = cancel.cancelled() => break,
            }
            let load = meter.add(Instant::now(), sample());
            *self.load.lock().unwrap_or_else(|p| p.into_inner()) = load;
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "agent heartbeat failed; retrying");
            }
        }
    }

    /// Waits for the next pass of a cluster-wide job: sleeps `interval`, then takes or
    /// renews the job's lease (for three intervals and 5 s); repeats while another agent
    /// holds it. False once `cancel` fires.
    pub async fn next_pass(
        &self,
        job: &str,
        interval: Duration,
        cancel: &CancellationToken,
    ) -> bool {
        let ttl = interval * 3 + Duration::from_secs(5);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = cancel.cancelled() => return false,
            }
            if self.lease(job, ttl).await.is_some() {
                return true;
            }
        }
    }

    /// Takes or renews the cluster-wide lease of `job` for `ttl`: the fencing token while
    /// this agent holds it, None while another live agent does (or the database failed).
    /// A job runs a pass only while it holds its lease, so it runs once per cluster; a
    /// lease whose holder died is taken over once `ttl` has passed.
    pub async fn lease(&self, job: &str, ttl: Duration) -> Option<i64> {
        let mut held = self
            .meta
            .acquire_lease(job, &self.me.agent_id, now_ms(), ttl.as_millis() as i64)
            .await;
        if matches!(held, Ok(None)) && self.release_if_holder_dead(job).await {
            held = self
                .meta
                .acquire_lease(job, &self.me.agent_id, now_ms(), ttl.as_millis() as i64)
                .await;
        }
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        match held {
            Ok(Some(token)) => {
                if leases.insert(job.to_string()) {
                    tracing::info!(job, token, "took the job lease");
                }
                Some(token)
            }
            Ok(None) => {
                leases.remove(job);
                None
            }
            Err(e) => {
                tracing::warn!(job, error = %e, "job lease check failed; skipping this pass");
                None
            }
        }
    }

    /// Ends the lease of `job` when its holder is no longer a live agent (its heartbeat
    /// expired, or it was found unreachable), so the job moves within the session timeout
    /// instead of waiting out the lease. True when it ended one.
    async fn release_if_holder_dead(&self, job: &str) -> bool {
        let Ok(Some((holder, _))) = self.meta.lease_holder(job, now_ms()).await else {
            return false;
        };
        if self.live().iter().any(|a| a.agent_id == holder) {
            return false;
        }
        match self.meta.release_lease(job, &holder).await {
            Ok(true) => {
                tracing::info!(job, holder = %holder, "the job lease's holder is gone; taking the job over");
                true
            }
            _ => false,
        }
    }

    /// Gives the node id and the job leases up (graceful shutdown): other agents drop us at
    /// their next refresh and take the jobs over at once.
    pub async fn leave(&self) {
        let jobs: Vec<String> = self
            .leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for job in jobs {
            if let Err(e) = self.meta.release_lease(&job, &self.me.agent_id).await {
                tracing::warn!(job = %job, error = %e, "giving up a job lease failed; it expires by itself");
            }
        }
        match self
            .meta
            .deregister_agent(self.node_id(), &self.me.agent_id)
            .await
        {
            Ok(_) => tracing::info!(node_id = self.node_id(), "left the cluster"),
            Err(e) => {
                tracing::warn!(error = %e, "giving up the node id failed; it expires by itself")
            }
        }
    }
}

/// How long an agent that joins a running cluster (or comes back after a crash) is listed
/// in Metadata before it leads partitions or coordinates groups.
pub const SETTLE: Duration = Duration::from_secs(30);

/// The agents that may lead partitions and coordinate groups: those that started with the
/// oldest live agent (within [`SETTLE`] of it: the cluster's founders, so a cluster that
/// starts together spreads its work at once), and those up for [`SETTLE`] at `now_ms`. So a
/// restarted agent does not pull back its groups and partitions the moment it is up (a
/// second rebalance, and clients reconnecting to an address they are still backing off
/// from): its share moves to it once, later. All agents when none qualifies.
pub fn settled(agents: &[AgentInfo], now_ms: i64) -> Vec<AgentInfo> {
    let settle = SETTLE.as_millis() as i64;
    let Some(oldest) = agents.iter().map(|a| a.started_at_ms).min() else {
        return Vec::new();
    };
    let ready: Vec<AgentInfo> = agents
        .iter()
        .filter(|a| a.started_at_ms <= oldest + settle || now_ms - a.started_at_ms >= settle)
        .cloned()
        .collect();
    if ready.is_empty() {
        agents.to_vec()
    } else {
        ready
    }
}

fn serves_kafka(roles: &[String]) -> bool {
    roles
        .iter()
        .any(|r| r == Roles::PRODUCE || r == Roles::FETCH)
}

/// Whether a TCP connection to the agent's Kafka listener opens within 300 ms.
async fn reachable(host: &str, port: i32) -> bool {
    let addr = format!("{host}:{port}");
    matches!(
        tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(addr)
        )
        .await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(produce: u64, fetch: u64) -> LoadSample {
        LoadSample {
            produce_bytes: produce,
            fetch_bytes: fetch,
            inflight_bytes: 7,
        }
    }

    fn started(node_id: i32, started_at_ms: i64) -> AgentInfo {
        AgentInfo {
            node_id,
            agent_id: format!("a{node_id}"),
            host: "127.0.0.1".into(),
            port: 9092,
            tls_host: None,
            tls_port: None,
            rack: None,
            agent_group: "default".into(),
            roles: vec!["produce".into()],
            version: "test".into(),
            started_at_ms,
            last_seen_ms: started_at_ms,
            load: AgentLoad::default(),
        }
    }

    #[test]
    fn a_late_agent_settles_before_it_takes_work() {
        let settle = SETTLE.as_millis() as i64;
        let ids = |v: Vec<AgentInfo>| v.iter().map(|a| a.node_id).collect::<Vec<_>>();
        // Three that started together share the work at once.
        let founders = vec![started(1, 0), started(2, 2_000), started(3, 5_000)];
        assert_eq!(ids(settled(&founders, 6_000)), [1, 2, 3]);
        // Agent 2 comes back at t=100 s: listed, but not chosen until it has been up a while.
        let back = vec![started(1, 0), started(2, 100_000), started(3, 5_000)];
        assert_eq!(ids(settled(&back, 101_000)), [1, 3]);
        assert_eq!(ids(settled(&back, 100_000 + settle)), [1, 2, 3]);
        // Alone after a restart: the oldest live agent is a founder.
        assert_eq!(ids(settled(&[started(2, 100_000)], 100_001)), [2]);
        assert!(settled(&[], 0).is_empty());
    }

    #[test]
    fn rates_cover_the_last_few_seconds() {
        let mut m = LoadMeter::default();
        let t0 = Instant::now();
        assert_eq!(m.add(t0, sample(0, 0)).produce_bytes_per_s, 0);
        let second = Duration::from_secs(1);
        let l = m.add(t0 + second, sample(1_000, 3_000));
        assert_eq!((l.produce_bytes_per_s, l.fetch_bytes_per_s), (1_000, 3_000));
        assert_eq!(l.inflight_bytes, 7);
        // Ten seconds at 1000 B/s, then idle for six: the window forgets the busy part.
        for i in 2..=10 {
            m.add(t0 + second * i, sample(1_000 * i as u64, 0));
        }
        let busy = m.add(t0 + second * 11, sample(11_000, 0));
        assert_eq!(busy.produce_bytes_per_s, 1_000);
        let idle = m.add(t0 + second * 17, sample(11_000, 0));
        assert_eq!(idle.produce_bytes_per_s, 0);
    }
}

//! The kills: whom to kill (`--scenario`), when (spaced evenly over `--duration`), and what
//! is measured around each kill while the clients keep working.
//!
//! One kill at a time: SIGKILL, a probe thread asking a survivor's Metadata every 50 ms
//! (when does the killed agent leave it, when does the restarted one come back), the
//! restart after `--restart-after`, then a wait until the producers and the group have
//! recovered (see [`super::report::KillRecord`]) or the recovery bound has passed. A kill
//! whose measurements run past the next kill's slot delays that kill.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::cluster::{Cluster, PROBE_TIMEOUT};
use super::probe;
use super::report::{Bounds, KillRecord};
use super::watch::{Since, Watch};
use super::{now_ms, Scenario};

/// How often the probe thread asks the survivor's Metadata.
const PROBE_EVERY: Duration = Duration::from_millis(50);

/// A small xorshift generator: the victims of a run follow from its seed.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

pub(crate) struct Plan<'a> {
    pub(crate) scenario: Scenario,
    pub(crate) kills: u32,
    pub(crate) duration: Duration,
    pub(crate) restart_after: Duration,
    pub(crate) session_timeout: Duration,
    pub(crate) bounds: &'a Bounds,
    pub(crate) topic: &'a str,
    pub(crate) group: &'a str,
}

/// The agent to kill: its index, whether it coordinates the group, the partitions it leads.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Victim {
    pub(crate) index: usize,
    pub(crate) coordinator: bool,
    pub(crate) led: Vec<i32>,
}

/// Picks a victim among the live agents `alive` (node ids), given who leads what
/// (`leaders`: partition -> node id) and who coordinates the group.
pub(crate) fn choose(
    scenario: Scenario,
    alive: &[i32],
    view: &probe::View,
    coordinator: i32,
    rng: &mut Rng,
) -> Option<i32> {
    let pick = |c: &[i32], rng: &mut Rng| (!c.is_empty()).then(|| c[rng.below(c.len())]);
    match scenario {
        Scenario::Coordinator => alive.contains(&coordinator).then_some(coordinator),
        Scenario::Producer => {
            let leaders: Vec<i32> = alive
                .iter()
                .copied()
                .filter(|id| !view.led_by(*id).is_empty())
                .collect();
            let not_coordinator: Vec<i32> = leaders
                .iter()
                .copied()
                .filter(|id| *id != coordinator)
                .collect();
            pick(&not_coordinator, rng).or_else(|| pick(&leaders, rng))
        }
        Scenario::Random => pick(alive, rng),
    }
}

/// Runs the kills; returns what was measured around each. `start` is when the clients began.
pub(crate) fn run(
    cluster: &mut Cluster,
    watch: &Watch,
    plan: &Plan<'_>,
    rng: &mut Rng,
    start: Instant,
) -> Result<Vec<KillRecord>> {
    let mut records = Vec::new();
    for n in 1..=plan.kills {
        let slot = start
            + plan
                .duration
                .mul_f64(f64::from(n) / f64::from(plan.kills + 1));
        let now = Instant::now();
        if slot > now {
            thread::sleep(slot - now);
        } else if n > 1 {
            eprintln!(
                "kill-test: kill {n} is {:.1}s late: the previous kill's measurements ran into its slot",
                (now - slot).as_secs_f64()
            );
        }
        let victim = pick_victim(cluster, plan, rng)?;
        let record = kill_once(cluster, watch, plan, n as usize, &victim, start)?;
        eprintln!("kill-test: {}", record.line());
        for f in record.failures(plan.bounds) {
            eprintln!("kill-test: kill {n}: FAILED: {f}");
        }
        records.push(record);
    }
    let end = start + plan.duration;
    let now = Instant::now();
    if end > now {
        thread::sleep(end - now);
    }
    Ok(records)
}

fn pick_victim(cluster: &Cluster, plan: &Plan<'_>, rng: &mut Rng) -> Result<Victim> {
    let ask = cluster
        .survivor(None)
        .ok_or_else(|| anyhow!("no live agent to ask"))?
        .kafka
        .clone();
    let view = probe::metadata(&ask, Some(plan.topic), PROBE_TIMEOUT)
        .with_context(|| format!("Metadata from {ask} before a kill"))?;
    let coordinator = probe::coordinator(&ask, plan.group, PROBE_TIMEOUT)
        .with_context(|| format!("FindCoordinator from {ask} before a kill"))?;
    let alive: Vec<i32> = cluster
        .agents
        .iter()
        .filter(|a| a.alive)
        .map(|a| a.node_id)
        .collect();
    let Some(node) = choose(plan.scenario, &alive, &view, coordinator, rng) else {
        bail!(
            "no agent fits scenario {:?} (live {alive:?}, coordinator {coordinator}, leaders {:?})",
            plan.scenario,
            view.leaders
        );
    };
    let index = cluster
        .index_of(node)
        .ok_or_else(|| anyhow!("Metadata names node {node}, which is none of ours"))?;
    Ok(Victim {
        index,
        coordinator: node == coordinator,
        led: view.led_by(node),
    })
}

/// What the probe thread saw, in time since the kill.
#[derive(Default)]
struct Seen {
    gone: Option<Duration>,
    back: Option<Duration>,
}

fn kill_once(
    cluster: &mut Cluster,
    watch: &Watch,
    plan: &Plan<'_>,
    n: usize,
    victim: &Victim,
    start: Instant,
) -> Result<KillRecord> {
    let survivor = cluster
        .survivor(Some(victim.index))
        .ok_or_else(|| anyhow!("no agent would survive the kill"))?
        .kafka
        .clone();
    let agent = &cluster.agents[victim.index];
    let (node, name, pid) = (agent.node_id, agent.name(), agent.pid());
    let old_port: i32 = port_of(&agent.kafka)?;

    let kill_ms = now_ms();
    watch.arm(kill_ms);
    let t0 = Instant::now();
    cluster.kill(victim.index)?;
    eprintln!(
        "kill-test: kill {n} at {:.1}s: SIGKILL {name} pid {pid} (coordinator of the group: {}, leads partitions {:?}); watching from {survivor}",
        (t0 - start).as_secs_f64(),
        if victim.coordinator { "yes" } else { "no" },
        victim.led
    );

    // The probe: gone = first Metadata without the old process, back = first with the new.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let new_port = Arc::new(AtomicI32::new(0));
    let stop_probe = Arc::new(AtomicBool::new(false));
    let probe_thread = {
        let (seen, new_port, stop) = (
            Arc::clone(&seen),
            Arc::clone(&new_port),
            Arc::clone(&stop_probe),
        );
        let survivor = survivor.clone();
        thread::Builder::new()
            .name("kill-probe".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(view) = probe::metadata(&survivor, None, PROBE_TIMEOUT) {
                        let listed = view.lists(node).map(|b| b.port);
                        let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                        if s.gone.is_none() && listed != Some(old_port) {
                            s.gone = Some(t0.elapsed());
                        }
                        let port = new_port.load(Ordering::Relaxed);
                        if s.gone.is_some() && port != 0 && listed == Some(port) {
                            s.back = Some(t0.elapsed());
                            return;
                        }
                    }
                    thread::sleep(PROBE_EVERY);
                }
            })
            .context("spawning the probe thread")?
    };

    // The restart.
    let due = t0 + plan.restart_after;
    let now = Instant::now();
    if due > now {
        thread::sleep(due - now);
    }
    let restart_deadline = t0 + plan.restart_after + plan.session_timeout + Duration::from_secs(20);
    let restart = match cluster.restart(victim.index, restart_deadline) {
        Ok(attempts) => {
            let at = t0.elapsed();
            let agent = &cluster.agents[victim.index];
            new_port.store(port_of(&agent.kafka)?, Ordering::Relaxed);
            eprintln!(
                "kill-test: kill {n}: restarted {name} pid {} kafka={} {:.1}s after the kill ({attempts} attempt{})",
                agent.pid(),
                agent.kafka,
                at.as_secs_f64(),
                if attempts == 1 { "" } else { "s" }
            );
            Ok((at, attempts))
        }
        Err(e) => {
            eprintln!("kill-test: kill {n}: restart FAILED: {e:#}");
            Err(format!("{e:#}"))
        }
    };

    // Wait for the recovery, bounded.
    let restarted_at = restart.as_ref().ok().map(|(at, _)| *at);
    let wait_until = t0
        + (plan.bounds.recover + Duration::from_secs(1))
            .max(plan.bounds.gone + Duration::from_secs(1))
            .max(restarted_at.unwrap_or_default() + plan.bounds.back_after_restart);
    loop {
        let since = watch.since(kill_ms);
        let s = seen.lock().unwrap_or_else(|p| p.into_inner());
        let recovered = Since::all(&since.producer_ack).is_some()
            && Since::all(&since.partition_ack).is_some()
            && since.fresh_poll.is_some()
            && Since::all(&since.partition_fresh_poll).is_some();
        let listed = s.gone.is_some() && (s.back.is_some() || restarted_at.is_none());
        drop(s);
        if (recovered && listed) || Instant::now() > wait_until {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    stop_probe.store(true, Ordering::Relaxed);
    let _ = probe_thread.join();

    let since = watch.since(kill_ms);
    let after = |ms: Option<i64>| {
        ms.map(|v| Duration::from_millis(u64::try_from(v - kill_ms).unwrap_or(0)))
    };
    let s = seen.lock().unwrap_or_else(|p| p.into_inner());
    Ok(KillRecord {
        n,
        node_id: node,
        name,
        at: t0 - start,
        coordinator: victim.coordinator,
        led: victim.led.clone(),
        gone: s.gone,
        restart,
        back: s.back,
        producers_acked: after(Since::all(&since.producer_ack)),
        partitions_acked: after(Since::all(&since.partition_ack)),
        polled: after(since.poll),
        fresh_polled: after(since.fresh_poll),
        partitions_fresh_polled: after(Since::all(&since.partition_fresh_poll)),
    })
}

fn port_of(addr: &str) -> Result<i32> {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| anyhow!("no port in {addr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(leaders: &[(i32, i32)]) -> probe::View {
        let mut v = probe::View::default();
        v.leaders.extend(leaders.iter().copied());
        v
    }

    #[test]
    fn coordinator_scenario_kills_the_coordinator() {
        let v = view(&[(0, 1), (1, 2)]);
        let mut rng = Rng::new(7);
        assert_eq!(
            choose(Scenario::Coordinator, &[1, 2, 3], &v, 3, &mut rng),
            Some(3)
        );
        assert_eq!(
            choose(Scenario::Coordinator, &[1, 2], &v, 3, &mut rng),
            None
        );
    }

    #[test]
    fn producer_scenario_kills_a_leader_that_is_not_the_coordinator() {
        let v = view(&[(0, 1), (1, 2), (2, 2)]);
        let mut rng = Rng::new(7);
        for _ in 0..20 {
            // 1 and 2 lead; 2 coordinates; 3 leads nothing.
            assert_eq!(
                choose(Scenario::Producer, &[1, 2, 3], &v, 2, &mut rng),
                Some(1)
            );
        }
        // Only the coordinator leads: it is the one left.
        let v = view(&[(0, 2), (1, 2)]);
        assert_eq!(
            choose(Scenario::Producer, &[1, 2, 3], &v, 2, &mut rng),
            Some(2)
        );
    }

    #[test]
    fn random_scenario_kills_live_agents_only() {
        let v = view(&[]);
        let mut rng = Rng::new(42);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            let id = choose(Scenario::Random, &[2, 5], &v, 9, &mut rng).unwrap();
            seen.insert(id);
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![2, 5]);
    }

    #[test]
    fn ports_from_addresses() {
        assert_eq!(port_of("127.0.0.1:40123").unwrap(), 40123);
        assert!(port_of("nowhere").is_err());
    }
}

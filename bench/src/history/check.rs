//! The checks over a whole history. Pure: an `Input` in, a `Report` out.
//!
//! Two passes. The first goes through the events in input order (file after file, each in
//! line order), which is each client's own order: it collects sends, acks, failures, polls
//! and the final read, and checks what one client alone decides (its acks' order, its polls'
//! order between assignments). The second puts the commits, assignments and polls of all
//! clients on one time line (`ts_ms`; an event without one takes the time of the event before
//! it in its file) and checks that no group polls below an offset it committed.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::event::{At, Event, Input};
use super::report::{Finding, Kind, Report, Totals};

type Id = u32;

/// (topic, partition)
type Tp = (Id, i32);

/// (topic, partition, offset)
type Pos = (Id, i32, i64);

/// One consumer's last polled offset (and where) per partition, since its last assignment.
type PollRun = HashMap<i32, (i64, At)>;

/// Client, topic, group and value names, each stored once.
#[derive(Default)]
struct Names {
    ids: HashMap<String, Id>,
    names: Vec<String>,
}

impl Names {
    fn id(&mut self, name: &str) -> Id {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = Id::try_from(self.names.len()).expect("fewer than 2^32 distinct names");
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }

    fn get(&self, id: Id) -> &str {
        &self.names[id as usize]
    }

    fn pos(&self, (topic, partition, offset): Pos) -> String {
        format!("{}/{partition}@{offset}", self.get(topic))
    }
}

struct Ack {
    at: At,
    pos: Pos,
    value: Id,
}

struct Poll {
    at: At,
    group: Id,
    pos: Pos,
    value: Id,
}

/// Per (group, topic, partition): the commits that may still decide a poll, and the last
/// assignment of the partition within the group.
#[derive(Default)]
struct CommitLine {
    /// (time-line index, next offset, where), oldest first, next offsets strictly
    /// decreasing: a commit hides every older one that is not larger.
    commits: Vec<(usize, i64, At)>,
    last_assign: Option<(usize, At)>,
}

struct Checker<'a> {
    input: &'a Input,
    names: Names,
    findings: [Finding; Kind::ALL.len()],
    totals: Totals,
}

/// Runs every check over `input`.
pub(crate) fn check(input: &Input) -> Report {
    let mut c = Checker {
        input,
        names: Names::default(),
        findings: Default::default(),
        totals: Totals {
            events: input.entries.len() as u64,
            ..Totals::default()
        },
    };
    let unconsumed = c.run();
    Report {
        files: input.files.len(),
        totals: c.totals,
        findings: c.findings,
        unconsumed,
    }
}

impl Checker<'_> {
    fn found(&mut self, kind: Kind, example: impl FnOnce(&Self) -> String) {
        let i = kind as usize;
        self.findings[i].count += 1;
        if self.findings[i].examples.len() < Finding::MAX_EXAMPLES {
            let text = example(self);
            self.findings[i].examples.push(text);
        }
    }

    fn place(&self, at: At) -> String {
        self.input.place(at)
    }

    /// Both passes; returns the unconsumed count per group.
    fn run(&mut self) -> Vec<(String, u64)> {
        let input = self.input;
        let mut sends: HashMap<Id, At> = HashMap::new();
        let mut send_order: Vec<Id> = Vec::new();
        let mut acks: Vec<Ack> = Vec::new();
        let mut ack_of: HashMap<Id, usize> = HashMap::new();
        let mut fails: Vec<(Id, At)> = Vec::new();
        let mut failed: HashSet<Id> = HashSet::new();
        let mut polls: Vec<Poll> = Vec::new();
        let mut polled: HashSet<(Id, Id)> = HashSet::new();
        let mut distinct: HashSet<Id> = HashSet::new();
        let mut group_topics: HashMap<Id, HashSet<Id>> = HashMap::new();
        let mut last_ack: HashMap<(Id, Tp), (i64, At)> = HashMap::new();
        let mut last_poll: HashMap<(Id, Id, Id), PollRun> = HashMap::new();
        let mut read_at: HashMap<Pos, (Id, At)> = HashMap::new();
        let mut read_positions: HashMap<Id, Vec<Pos>> = HashMap::new();
        let mut read_order: Vec<Id> = Vec::new();

        for entry in &input.entries {
            let at = entry.at;
            match &entry.event {
                Event::Send { value, .. } => {
                    self.totals.sent += 1;
                    let v = self.names.id(value);
                    if let Some(&first) = sends.get(&v) {
                        self.found(Kind::Inconsistent, |c| {
                            format!(
                                "{value} sent twice ({} and {})",
                                c.place(first),
                                c.place(at)
                            )
                        });
                    } else {
                        sends.insert(v, at);
                        send_order.push(v);
                    }
                }
                Event::Ack {
                    client,
                    topic,
                    partition,
                    offset,
                    value,
                } => {
                    self.totals.acked += 1;
                    let (cl, t, v) = (
                        self.names.id(client),
                        self.names.id(topic),
                        self.names.id(value),
                    );
                    let pos = (t, *partition, *offset);
                    if let Some(&i) = ack_of.get(&v) {
                        if acks[i].pos != pos {
                            let first = (acks[i].pos, acks[i].at);
                            self.found(Kind::Inconsistent, |c| {
                                format!(
                                    "{value} acked at {} ({}) and at {} ({})",
                                    c.names.pos(first.0),
                                    c.place(first.1),
                                    c.names.pos(pos),
                                    c.place(at)
                                )
                            });
                        }
                    } else {
                        ack_of.insert(v, acks.len());
                        acks.push(Ack { at, pos, value: v });
                    }
                    let key = (cl, (t, *partition));
                    if let Some(&(prev, prev_at)) = last_ack.get(&key) {
                        if *offset <= prev {
                            self.found(Kind::AckOrder, |c| {
                                format!(
                                    "{client} on {topic}/{partition}: ack at offset {offset} ({}) after one at {prev} ({})",
                                    c.place(at),
                                    c.place(prev_at)
                                )
                            });
                        }
                    }
                    last_ack.insert(key, (*offset, at));
                }
                Event::Fail { value, .. } => {
                    self.totals.failed += 1;
                    let v = self.names.id(value);
                    if failed.insert(v) {
                        fails.push((v, at));
                    }
                }
                Event::Poll {
                    client,
                    group,
                    topic,
                    partition,
                    offset,
                    value,
                } => {
                    self.totals.polled += 1;
                    let (cl, g, t, v) = (
                        self.names.id(client),
                        self.names.id(group),
                        self.names.id(topic),
                        self.names.id(value),
                    );
                    polled.insert((g, v));
                    distinct.insert(v);
                    group_topics.entry(g).or_default().insert(t);
                    polls.push(Poll {
                        at,
                        group: g,
                        pos: (t, *partition, *offset),
                        value: v,
                    });
                    let last = last_poll.entry((cl, g, t)).or_default();
                    if let Some(&(prev, prev_at)) = last.get(partition) {
                        if *offset <= prev {
                            self.found(Kind::PollOrder, |c| {
                                format!(
                                    "{client} ({group}) on {topic}/{partition}: polled offset {offset} ({}) after {prev} ({}) with no assignment in between",
                                    c.place(at),
                                    c.place(prev_at)
                                )
                            });
                        }
                    }
                    last.insert(*partition, (*offset, at));
                }
                Event::Commit { group, topic, .. } => {
                    self.totals.commits += 1;
                    let (g, t) = (self.names.id(group), self.names.id(topic));
                    group_topics.entry(g).or_default().insert(t);
                }
                Event::Assign {
                    client,
                    group,
                    topic,
                    ..
                } => {
                    self.totals.assigns += 1;
                    let (cl, g, t) = (
                        self.names.id(client),
                        self.names.id(group),
                        self.names.id(topic),
                    );
                    group_topics.entry(g).or_default().insert(t);
                    // A new assignment starts a new run of polls: the consumer resumes at
                    // the committed offsets, which may be below what it polled before.
                    last_poll.remove(&(cl, g, t));
                }
                Event::Read {
                    topic,
                    partition,
                    offset,
                    value,
                } => {
                    let (t, v) = (self.names.id(topic), self.names.id(value));
                    let pos = (t, *partition, *offset);
                    match read_at.get(&pos) {
                        Some(&(same, _)) if same == v => continue,
                        Some(&(other, other_at)) => {
                            self.found(Kind::Inconsistent, |c| {
                                format!(
                                    "the final read has {} ({}) and {value} ({}) at {}",
                                    c.names.get(other),
                                    c.place(other_at),
                                    c.place(at),
                                    c.names.pos(pos)
                                )
                            });
                            continue;
                        }
                        None => {}
                    }
                    self.totals.read += 1;
                    read_at.insert(pos, (v, at));
                    let positions = read_positions.entry(v).or_default();
                    if positions.is_empty() {
                        read_order.push(v);
                    }
                    positions.push(pos);
                }
            }
        }

        // --- what the producers saw against the final read -------------------------------
        for ack in &acks {
            if !sends.contains_key(&ack.value) {
                self.found(Kind::Inconsistent, |c| {
                    format!(
                        "{} acked ({}) but never sent",
                        c.names.get(ack.value),
                        c.place(ack.at)
                    )
                });
            }
            if failed.contains(&ack.value) {
                self.found(Kind::Inconsistent, |c| {
                    format!(
                        "{} acked ({}) and failed",
                        c.names.get(ack.value),
                        c.place(ack.at)
                    )
                });
            }
            match read_positions.get(&ack.value) {
                None => self.found(Kind::Lost, |c| {
                    format!(
                        "{} acked at {} ({}) is not in the final read",
                        c.names.get(ack.value),
                        c.names.pos(ack.pos),
                        c.place(ack.at)
                    )
                }),
                Some(ps) if !ps.contains(&ack.pos) => self.found(Kind::WrongOffset, |c| {
                    let found: Vec<String> = ps.iter().map(|&p| c.names.pos(p)).collect();
                    format!(
                        "{} acked at {} ({}) but the final read has it at {}",
                        c.names.get(ack.value),
                        c.names.pos(ack.pos),
                        c.place(ack.at),
                        found.join(", ")
                    )
                }),
                Some(_) => {}
            }
        }
        self.totals.indeterminate = send_order
            .iter()
            .filter(|v| !ack_of.contains_key(v) && !failed.contains(v))
            .count() as u64;
        for &(v, at) in &fails {
            if ack_of.contains_key(&v) {
                continue; // acked and failed: inconsistent already
            }
            if let Some(ps) = read_positions.get(&v) {
                let pos = ps[0];
                self.found(Kind::FailedPresent, |c| {
                    format!(
                        "{} failed ({}) but the final read has it at {}",
                        c.names.get(v),
                        c.place(at),
                        c.names.pos(pos)
                    )
                });
            }
        }
        for &v in &read_order {
            let ps = &read_positions[&v];
            if ps.len() > 1 {
                self.found(Kind::Duplicate, |c| {
                    let found: Vec<String> = ps.iter().map(|&p| c.names.pos(p)).collect();
                    format!(
                        "{} is in the final read {} times: {}",
                        c.names.get(v),
                        ps.len(),
                        found.join(", ")
                    )
                });
            }
            if !sends.contains_key(&v) && !ack_of.contains_key(&v) {
                let pos = ps[0];
                let at = read_at[&pos].1;
                self.found(Kind::Unexpected, |c| {
                    format!(
                        "{} at {} ({}) was never sent",
                        c.names.get(v),
                        c.names.pos(pos),
                        c.place(at)
                    )
                });
            }
        }

        // --- what the consumers saw against the final read -------------------------------
        self.totals.distinct_polled = distinct.len() as u64;
        for poll in &polls {
            let there = read_at.get(&poll.pos).map(|&(v, _)| v);
            if there != Some(poll.value) {
                self.found(Kind::PollMismatch, |c| {
                    let what = match there {
                        Some(v) => format!("has {} there", c.names.get(v)),
                        None => "has nothing there".to_string(),
                    };
                    format!(
                        "group {} polled {} at {} ({}); the final read {what}",
                        c.names.get(poll.group),
                        c.names.get(poll.value),
                        c.names.pos(poll.pos),
                        c.place(poll.at)
                    )
                });
            }
        }
        self.check_commits();

        // --- informational: acked records each group never polled ------------------------
        let mut unconsumed: BTreeMap<String, u64> = BTreeMap::new();
        for (&g, topics) in &group_topics {
            let n = acks
                .iter()
                .filter(|a| topics.contains(&a.pos.0) && !polled.contains(&(g, a.value)))
                .count() as u64;
            unconsumed.insert(self.names.get(g).to_string(), n);
        }
        unconsumed.into_iter().collect()
    }

    /// The second pass: on one time line, a poll by a group below an offset the group had
    /// committed for that partition.
    fn check_commits(&mut self) {
        let input = self.input;
        // Order of the time line: by timestamp, ties (and untimed events) in input order.
        let mut timed: Vec<(i64, usize)> = Vec::new();
        let mut file = None;
        let mut last_ts = i64::MIN;
        for (i, entry) in input.entries.iter().enumerate() {
            if file != Some(entry.at.file) {
                file = Some(entry.at.file);
                last_ts = i64::MIN;
            }
            let relevant = matches!(
                entry.event,
                Event::Poll { .. } | Event::Commit { .. } | Event::Assign { .. }
            );
            match entry.ts_ms {
                Some(ts) => last_ts = ts,
                None if relevant => self.totals.untimed += 1,
                None => {}
            }
            if relevant {
                timed.push((last_ts, i));
            }
        }
        timed.sort_unstable();

        let mut lines: HashMap<(Id, Tp), CommitLine> = HashMap::new();
        for (seq, &(_, i)) in timed.iter().enumerate() {
            let entry = &input.entries[i];
            let at = entry.at;
            match &entry.event {
                Event::Commit {
                    group,
                    topic,
                    partition,
                    offset,
                    ..
                } => {
                    let key = (self.names.id(group), (self.names.id(topic), *partition));
                    let line = lines.entry(key).or_default();
                    while line.commits.last().is_some_and(|&(_, n, _)| n <= *offset) {
                        line.commits.pop();
                    }
                    line.commits.push((seq, *offset, at));
                }
                Event::Assign {
                    group,
                    topic,
                    partitions,
                    ..
                } => {
                    let (g, t) = (self.names.id(group), self.names.id(topic));
                    for &p in partitions {
                        lines.entry((g, (t, p))).or_default().last_assign = Some((seq, at));
                    }
                }
                Event::Poll {
                    client,
                    group,
                    topic,
                    partition,
                    offset,
                    ..
                } => {
                    let key = (self.names.id(group), (self.names.id(topic), *partition));
                    let Some(line) = lines.get(&key) else {
                        continue;
                    };
                    // The newest commit above this offset: commits are sorted by falling
                    // next offset, so those above it are a prefix.
                    let above = line.commits.partition_point(|&(_, n, _)| n > *offset);
                    if above == 0 {
                        continue;
                    }
                    let (commit_seq, committed, commit_at) = line.commits[above - 1];
                    let rebalance = line.last_assign.filter(|&(s, _)| s > commit_seq);
                    let kind = if rebalance.is_some() {
                        Kind::BelowCommitAfterRebalance
                    } else {
                        Kind::BelowCommit
                    };
                    self.found(kind, |c| {
                        let after = match rebalance {
                            Some((_, a)) => format!(", assigned again at {}", c.place(a)),
                            None => String::new(),
                        };
                        format!(
                            "group {group} on {topic}/{partition}: {client} polled offset {offset} ({}) after the group committed {committed} ({}){after}",
                            c.place(at),
                            c.place(commit_at)
                        )
                    });
                }
                _ => {}
            }
        }
    }
}

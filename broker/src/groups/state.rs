//! The classic consumer-group membership protocol as a plain state machine.
//!
//! No I/O and no clock: every call takes `now` (milliseconds on a monotonic clock) and
//! returns the answers to deliver. Requests that must wait (JoinGroup until the rebalance
//! completes, SyncGroup until the leader sends the assignment) hand in a *waiter* of the
//! driver's choosing (a channel sender in the broker, a plain number in tests); the machine
//! returns it with its answer when the time comes.
//!
//! Phases, as in Kafka: `Empty` → (join) → `PreparingRebalance` → (all members joined or
//! the rebalance timeout passed) → `CompletingRebalance` → (leader's SyncGroup) → `Stable`.
//! A join with new metadata, a leave or an expired session sends a `Stable` group back to
//! `PreparingRebalance`.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

pub use super::member_id::MEMBER_ID_CLIENT_ID_MAX;
pub use super::messages::{Answer, Join, JoinAnswer, MemberView, Phase, SyncAnswer};
use crate::codes;

pub const MIN_SESSION_TIMEOUT_MS: i32 = 1_000;
pub const MAX_SESSION_TIMEOUT_MS: i32 = 1_800_000;

#[derive(Debug)]
struct Member<W> {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: u64,
    rebalance_timeout_ms: u64,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_seen: u64,
    join_waiter: Option<W>,
    sync_waiter: Option<W>,
    /// Order of arrival, to pick a stable leader.
    seq: u64,
}

/// One consumer group's membership.
#[derive(Debug)]
pub struct Group<W> {
    phase: Phase,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member<W>>,
    /// group.instance.id → member id.
    statics: HashMap<String, String>,
    /// Members told MEMBER_ID_REQUIRED, with the time their offer expires.
    pending: HashMap<String, u64>,
    /// When the current rebalance phase gives up waiting.
    deadline: Option<u64>,
    /// The first rebalance of an empty group waits for more members: until
    /// `initial_quiet_ms` pass without a new one, at most `initial_delay_ms` (with the
    /// quiet window as long as the delay: Kafka's rule, each arrival extends the wait by
    /// the delay, up to the rebalance timeout).
    initial: bool,
    rebalance_started: u64,
    initial_delay_ms: u64,
    initial_quiet_ms: u64,
    /// Members, pending ones included, the group may have (Kafka's group.max.size).
    max_size: usize,
    next_seq: u64,
    next_id: u64,
}

impl<W> Group<W> {
    pub fn new(initial_delay_ms: u64) -> Self {
        Group {
            phase: Phase::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            statics: HashMap::new(),
            pending: HashMap::new(),
            deadline: None,
            initial: false,
            rebalance_started: 0,
            initial_delay_ms,
            initial_quiet_ms: initial_delay_ms,
            max_size: usize::MAX,
            next_seq: 0,
            next_id: 0,
        }
    }

    /// When the current rebalance phase stops waiting (coordinator milliseconds).
    pub fn deadline(&self) -> Option<u64> {
        self.deadline
    }

    /// Ends the first rebalance once `quiet_ms` pass without a new member (never later
    /// than the initial delay).
    pub fn with_initial_quiet(mut self, quiet_ms: u64) -> Self {
        self.initial_quiet_ms = quiet_ms.min(self.initial_delay_ms);
        self
    }

    /// Caps the members, pending ones included (GROUP_MAX_SIZE_REACHED beyond it).
    pub fn with_max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size.max(1);
        self
    }

    /// Members told MEMBER_ID_REQUIRED that have not joined yet.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Whether one more member fits.
    fn has_room(&self) -> bool {
        self.members.len() + self.pending.len() < self.max_size
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn generation(&self) -> i32 {
        self.generation
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// No members, none on the way in, nothing to wait for: safe to forget.
    pub fn is_idle(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty() && self.phase == Phase::Empty
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    pub fn members(&self) -> Vec<MemberView> {
        let chosen = self.protocol.as_deref();
        self.members
            .values()
            .map(|m| MemberView {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: chosen
                    .and_then(|p| m.protocols.iter().find(|(n, _)| n == p))
                    .map(|(_, md)| md.clone())
                    .unwrap_or_default(),
                assignment: m.assignment.clone(),
            })
            .collect()
    }

    /// Subscription metadata of every member for the chosen protocol (to see topics in use).
    pub fn member_metadata(&self) -> Vec<Bytes> {
        self.members().into_iter().map(|m| m.metadata).collect()
    }

    fn new_member_id(&mut self, client_id: &str) -> String {
        self.next_id += 1;
        super::member_id::new(client_id, self.next_id)
    }

    fn join_error(&self, error: i16, member_id: String) -> Answer {
        Answer::Join(JoinAnswer {
            error,
            generation: -1,
            member_id,
            ..Default::default()
        })
    }

    /// Protocols every member (and the candidate) supports.
    fn compatible(&self, req: &Join) -> bool {
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(req.protocol_type.as_str()) {
            return false;
        }
        req.protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .filter(|m| m.id != req.member_id)
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    pub fn join(&mut self, req: Join, waiter: W, now: u64) -> Vec<(W, Answer)> {
        let mut out = Vec::new();
        if !(MIN_SESSION_TIMEOUT_MS..=MAX_SESSION_TIMEOUT_MS).contains(&req.session_timeout_ms) {
            out.push((
                waiter,
                self.join_error(codes::INVALID_SESSION_TIMEOUT, req.member_id),
            ));
            return out;
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() || !self.compatible(&req) {
            out.push((
                waiter,
                self.join_error(codes::INCONSISTENT_GROUP_PROTOCOL, req.member_id),
            ));
            return out;
        }
        let member_id = if let Some(instance) = req.instance_id.clone() {
            match (
                self.statics.get(&instance).cloned(),
                req.member_id.is_empty(),
            ) {
                (Some(known), true) => {
                    // A static member restarted: it takes over its old slot under a new id.
                    return self.rejoin_static(req, known, instance, waiter, now);
                }
                (Some(known), false) if known != req.member_id => {
                    out.push((
                        waiter,
                        self.join_error(codes::FENCED_INSTANCE_ID, req.member_id),
                    ));
                    return out;
                }
                (None, false) if !self.members.contains_key(&req.member_id) => {
                    out.push((
                        waiter,
                        self.join_error(codes::UNKNOWN_MEMBER_ID, req.member_id),
                    ));
                    return out;
                }
                (_, true) => {
                    if !self.has_room() {
                        out.push((
                            waiter,
                            self.join_error(codes::GROUP_MAX_SIZE_REACHED, req.member_id),
                        ));
                        return out;
                    }
                    let id = self.new_member_id(&req.client_id);
                    self.statics.insert(instance, id.clone());
                    id
                }
                (_, false) => req.member_id.clone(),
            }
        } else if req.member_id.is_empty() {
            if !self.has_room() {
                out.push((
                    waiter,
                    self.join_error(codes::GROUP_MAX_SIZE_REACHED, req.member_id),
                ));
                return out;
            }
            let id = self.new_member_id(&req.client_id);
            if req.member_id_required {
                self.pending
                    .insert(id.clone(), now + req.session_timeout_ms as u64);
                out.push((waiter, self.join_error(codes::MEMBER_ID_REQUIRED, id)));
                return out;
            }
            id
        } else if self.pending.remove(&req.member_id).is_some()
            || self.members.contains_key(&req.member_id)
        {
            req.member_id.clone()
        } else {
            out.push((
                waiter,
                self.join_error(codes::UNKNOWN_MEMBER_ID, req.member_id),
            ));
            return out;
        };
        self.add_or_update(member_id, req, waiter, now, &mut out);
        out
    }

    fn rejoin_static(
        &mut self,
        req: Join,
        old_id: String,
        instance: String,
        waiter: W,
        now: u64,
    ) -> Vec<(W, Answer)> {
        let mut out = Vec::new();
        let new_id = self.new_member_id(&req.client_id);
        let Some(mut old) = self.members.remove(&old_id) else {
            self.statics.insert(instance, new_id.clone());
            self.add_or_update(new_id, req, waiter, now, &mut out);
            return out;
        };
        // The old incarnation's outstanding requests are fenced.
        if let Some(w) = old.join_waiter.take() {
            out.push((
                w,
                self.join_error(codes::FENCED_INSTANCE_ID, old_id.clone()),
            ));
        }
        if let Some(w) = old.sync_waiter.take() {
            out.push((
                w,
                Answer::Sync(SyncAnswer {
                    error: codes::FENCED_INSTANCE_ID,
                    ..Default::default()
                }),
            ));
        }
        let unchanged = old.protocols == req.protocols;
        let was_leader = self.leader.as_deref() == Some(old_id.as_str());
        old.id = new_id.clone();
        old.last_seen = now;
        old.session_timeout_ms = req.session_timeout_ms as u64;
        old.rebalance_timeout_ms = req.rebalance_timeout_ms.max(0) as u64;
        self.statics.insert(instance, new_id.clone());
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        self.members.insert(new_id.clone(), old);
        if self.phase == Phase::Stable && unchanged && !was_leader {
            // Kafka's static-membership promise: a restart within the session timeout keeps
            // the assignment and does not rebalance the group.
            out.push((waiter, Answer::Join(self.join_answer(&new_id, false))));
            return out;
        }
        self.add_or_update(new_id, req, waiter, now, &mut out);
        out
    }

    fn add_or_update(
        &mut self,
        id: String,
        req: Join,
        waiter: W,
        now: u64,
        out: &mut Vec<(W, Answer)>,
    ) {
        let known = self.members.contains_key(&id);
        if !known {
            self.next_seq += 1;
            self.members.insert(
                id.clone(),
                Member {
                    id: id.clone(),
                    instance_id: req.instance_id.clone(),
                    client_id: req.client_id.clone(),
                    client_host: req.client_host.clone(),
                    session_timeout_ms: req.session_timeout_ms as u64,
                    rebalance_timeout_ms: req.rebalance_timeout_ms.max(0) as u64,
                    protocols: Vec::new(),
                    assignment: Bytes::new(),
                    last_seen: now,
                    join_waiter: None,
                    sync_waiter: None,
                    seq: self.next_seq,
                },
            );
        }
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        let member = self.members.get_mut(&id).expect("inserted above");
        let unchanged = known && member.protocols == req.protocols;
        member.protocols = req.protocols;
        member.session_timeout_ms = req.session_timeout_ms as u64;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms.max(0) as u64;
        member.last_seen = now;
        if let Some(old) = member.join_waiter.replace(waiter) {
            // A duplicate join from the same member: the older request is superseded.
            out.push((
                old,
                Answer::Join(JoinAnswer {
                    error: codes::UNKNOWN_MEMBER_ID,
                    generation: -1,
                    ..Default::default()
                }),
            ));
        }
        if self.protocol_type.is_none() {
            self.protocol_type = Some(req.protocol_type);
        }
        match self.phase {
            Phase::Stable if unchanged && !is_leader => {
                // A follower rejoining with the same subscription: nothing changes.
                let w = self
                    .members
                    .get_mut(&id)
                    .and_then(|m| m.join_waiter.take())
                    .expect("just set");
                out.push((w, Answer::Join(self.join_answer(&id, false))));
            }
            Phase::PreparingRebalance => {
                if self.initial {
                    // More members are arriving: extend the initial wait, never past the
                    // rebalance timeout, nor past the initial delay with a quiet window.
                    let mut limit = self.rebalance_started + self.max_rebalance_timeout();
                    if self.initial_quiet_ms < self.initial_delay_ms {
                        limit = limit.min(self.rebalance_started + self.initial_delay_ms);
                    }
                    let extended = (now + self.initial_quiet_ms).min(limit);
                    self.deadline = Some(extended.max(self.deadline.unwrap_or(0)));
                }
                self.maybe_complete_join(now, out);
            }
            _ => self.start_rebalance(now, out),
        }
    }

    fn max_rebalance_timeout(&self) -> u64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    fn start_rebalance(&mut self, now: u64, out: &mut Vec<(W, Answer)>) {
        // Members waiting for their assignment of the old generation must rejoin.
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                out.push((
                    w,
                    Answer::Sync(SyncAnswer {
                        error: codes::REBALANCE_IN_PROGRESS,
                        ..Default::default()
                    }),
                ));
            }
        }
        self.initial = self.phase == Phase::Empty && self.initial_delay_ms > 0;
        self.phase = Phase::PreparingRebalance;
        self.rebalance_started = now;
        self.deadline = Some(if self.initial {
            now + self
                .initial_quiet_ms
                .min(self.max_rebalance_timeout().max(1))
        } else {
            now + self.max_rebalance_timeout()
        });
        self.maybe_complete_join(now, out);
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    fn maybe_complete_join(&mut self, now: u64, out: &mut Vec<(W, Answer)>) {
        if self.phase != Phase::PreparingRebalance {
            return;
        }
        let due = self.deadline.is_some_and(|d| now >= d);
        if due || (!self.initial && self.all_joined()) {
            self.complete_join(now, out);
        }
    }

    fn choose_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(x, _)| x == *n))
            })
            .collect();
        // Each member votes for its most preferred candidate; ties go to the earlier one.
        let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0, *c)).collect();
        for m in self.members.values() {
            if let Some((pref, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                if let Some(v) = votes.iter_mut().find(|(_, c)| *c == pref) {
                    v.0 += 1;
                }
            }
        }
        let best = votes.iter().map(|(n, _)| *n).max()?;
        votes
            .into_iter()
            .find(|(n, _)| *n == best)
            .map(|(_, c)| c.clone())
    }

    fn complete_join(&mut self, now: u64, out: &mut Vec<(W, Answer)>) {
        // Members that did not rejoin in time are gone.
        let absent: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in absent {
            self.remove_member(&id, out);
        }
        self.pending.clear();
        self.initial = false;
        self.generation += 1;
        if self.members.is_empty() {
            self.phase = Phase::Empty;
            self.protocol = None;
            self.protocol_type = None;
            self.leader = None;
            self.deadline = None;
            return;
        }
        self.protocol = self.choose_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self
                .members
                .values()
                .min_by_key(|m| m.seq)
                .map(|m| m.id.clone());
        }
        self.phase = Phase::CompletingRebalance;
        self.deadline = Some(now + self.max_rebalance_timeout());
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let is_leader = self.leader.as_deref() == Some(id.as_str());
            let answer = self.join_answer(&id, is_leader);
            if let Some(m) = self.members.get_mut(&id) {
                m.assignment = Bytes::new();
                m.last_seen = now;
                if let Some(w) = m.join_waiter.take() {
                    out.push((w, Answer::Join(answer)));
                }
            }
        }
    }

    fn join_answer(&self, id: &str, with_members: bool) -> JoinAnswer {
        let members = if with_members {
            self.members()
                .into_iter()
                .map(|m| (m.member_id, m.instance_id, m.metadata))
                .collect()
        } else {
            Vec::new()
        };
        JoinAnswer {
            error: codes::NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: id.to_string(),
            members,
        }
    }

    fn remove_member(&mut self, id: &str, out: &mut Vec<(W, Answer)>) {
        if let Some(mut m) = self.members.remove(id) {
            if let Some(instance) = &m.instance_id {
                if self.statics.get(instance).map(String::as_str) == Some(id) {
                    self.statics.remove(instance);
                }
            }
            if let Some(w) = m.join_waiter.take() {
                out.push((w, self.join_error(codes::UNKNOWN_MEMBER_ID, id.to_string())));
            }
            if let Some(w) = m.sync_waiter.take() {
                out.push((
                    w,
                    Answer::Sync(SyncAnswer {
                        error: codes::UNKNOWN_MEMBER_ID,
                        ..Default::default()
                    }),
                ));
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
    }

    /// Resolves the member a request speaks for, checking static-membership fencing.
    fn resolve(&self, member_id: &str, instance_id: Option<&str>) -> Result<String, i16> {
        if let Some(instance) = instance_id {
            match self.statics.get(instance) {
                Some(known) if known == member_id => return Ok(known.clone()),
                Some(_) => return Err(codes::FENCED_INSTANCE_ID),
                None => {}
            }
        }
        if self.members.contains_key(member_id) {
            Ok(member_id.to_string())
        } else {
            Err(codes::UNKNOWN_MEMBER_ID)
        }
    }

    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        waiter: W,
        now: u64,
    ) -> Vec<(W, Answer)> {
        let mut out = Vec::new();
        let fail = |error| {
            Answer::Sync(SyncAnswer {
                error,
                ..Default::default()
            })
        };
        let id = match self.resolve(member_id, instance_id) {
            Ok(id) => id,
            Err(code) => {
                out.push((waiter, fail(code)));
                return out;
            }
        };
        if generation != self.generation {
            out.push((waiter, fail(codes::ILLEGAL_GENERATION)));
            return out;
        }
        match self.phase {
            Phase::Empty => out.push((waiter, fail(codes::UNKNOWN_MEMBER_ID))),
            Phase::PreparingRebalance => out.push((waiter, fail(codes::REBALANCE_IN_PROGRESS))),
            Phase::Stable => {
                let answer = self.sync_answer(&id);
                if let Some(m) = self.members.get_mut(&id) {
                    m.last_seen = now;
                }
                out.push((waiter, answer));
            }
            Phase::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(&id) {
                    m.last_seen = now;
                    m.sync_waiter = Some(waiter);
                }
                if self.leader.as_deref() == Some(id.as_str()) {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                    }
                    self.phase = Phase::Stable;
                    self.deadline = None;
                    let ids: Vec<String> = self.members.keys().cloned().collect();
                    for id in ids {
                        let answer = self.sync_answer(&id);
                        if let Some(w) =
                            self.members.get_mut(&id).and_then(|m| m.sync_waiter.take())
                        {
                            out.push((w, answer));
                        }
                    }
                }
            }
        }
        out
    }

    fn sync_answer(&self, id: &str) -> Answer {
        Answer::Sync(SyncAnswer {
            error: codes::NONE,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            assignment: self
                .members
                .get(id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        })
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: u64,
    ) -> i16 {
        let id = match self.resolve(member_id, instance_id) {
            Ok(id) => id,
            Err(code) => return code,
        };
        if let Some(m) = self.members.get_mut(&id) {
            m.last_seen = now;
        }
        if generation != self.generation {
            return codes::ILLEGAL_GENERATION;
        }
        match self.phase {
            Phase::PreparingRebalance => codes::REBALANCE_IN_PROGRESS,
            Phase::Empty => codes::UNKNOWN_MEMBER_ID,
            Phase::CompletingRebalance | Phase::Stable => codes::NONE,
        }
    }

    /// Removes members (member id, instance id); one error code per member.
    pub fn leave(
        &mut self,
        leaving: &[(String, Option<String>)],
        now: u64,
    ) -> (Vec<i16>, Vec<(W, Answer)>) {
        let mut out = Vec::new();
        let mut codes_out = Vec::with_capacity(leaving.len());
        let mut removed = false;
        for (member_id, instance_id) in leaving {
            // v3+ may name a static member by instance id alone.
            let resolved = match (instance_id.as_deref(), member_id.is_empty()) {
                (Some(instance), true) => self
                    .statics
                    .get(instance)
                    .cloned()
                    .ok_or(codes::UNKNOWN_MEMBER_ID),
                (instance, _) => self.resolve(member_id, instance),
            };
            match resolved {
                Ok(id) => {
                    self.remove_member(&id, &mut out);
                    removed = true;
                    codes_out.push(codes::NONE);
                }
                Err(code) => codes_out.push(code),
            }
        }
        if removed {
            self.after_departure(now, &mut out);
        }
        (codes_out, out)
    }

    fn after_departure(&mut self, now: u64, out: &mut Vec<(W, Answer)>) {
        match self.phase {
            Phase::PreparingRebalance => {
                if self.members.is_empty() {
                    self.complete_join(now, out);
                } else {
                    self.maybe_complete_join(now, out);
                }
            }
            Phase::Empty => {}
            Phase::Stable | Phase::CompletingRebalance => {
                if self.members.is_empty() {
                    self.generation += 1;
                    self.phase = Phase::Empty;
                    self.protocol = None;
                    self.protocol_type = None;
                    self.leader = None;
                    self.deadline = None;
                } else {
                    self.start_rebalance(now, out);
                }
            }
        }
    }

    /// Expires sessions and rebalance deadlines.
    pub fn tick(&mut self, now: u64) -> Vec<(W, Answer)> {
        let mut out = Vec::new();
        self.pending.retain(|_, expires| *expires > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.join_waiter.is_none()
                    && m.sync_waiter.is_none()
                    && m.last_seen + m.session_timeout_ms <= now
            })
            .map(|m| m.id.clone())
            .collect();
        if !expired.is_empty() {
            for id in &expired {
                self.remove_member(id, &mut out);
            }
            self.after_departure(now, &mut out);
        }
        match self.phase {
            Phase::PreparingRebalance => self.maybe_complete_join(now, &mut out),
            Phase::CompletingRebalance if self.deadline.is_some_and(|d| now >= d) => {
                // The leader never sent the assignment: members that did not sync are
                // dropped and the rest rebalance.
                let silent: Vec<String> = self
                    .members
                    .values()
                    .filter(|m| m.sync_waiter.is_none())
                    .map(|m| m.id.clone())
                    .collect();
                for id in silent {
                    self.remove_member(&id, &mut out);
                }
                self.after_departure(now, &mut out);
                if self.phase == Phase::CompletingRebalance {
                    self.start_rebalance(now, &mut out);
                }
            }
            _ => {}
        }
        out
    }

    /// Whether an OffsetCommit from this member and generation may be stored.
    pub fn commit_allowed(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        if generation < 0 && member_id.is_empty() {
            // A commit from outside the group protocol (assign() with a group id): fine for
            // an empty group; an active group does not know this committer (as Kafka says).
            return if self.members.is_empty() {
                codes::NONE
            } else {
                codes::UNKNOWN_MEMBER_ID
            };
        }
        if let Err(code) = self.resolve(member_id, instance_id) {
            return code;
        }
        if generation != self.generation {
            return codes::ILLEGAL_GENERATION;
        }
        match self.phase {
            Phase::CompletingRebalance => codes::REBALANCE_IN_PROGRESS,
            _ => codes::NONE,
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;

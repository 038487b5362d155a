//! What the group state machine ([`super::state`]) is asked and answers: its phases, a
//! JoinGroup as the machine sees it, and the answers it hands back with their waiters.

use bytes::Bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl Phase {
    /// The name Kafka's DescribeGroups and ListGroups use.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Empty => "Empty",
            Phase::PreparingRebalance => "PreparingRebalance",
            Phase::CompletingRebalance => "CompletingRebalance",
            Phase::Stable => "Stable",
        }
    }

    /// The phase [`Phase::name`] names.
    pub fn from_name(name: &str) -> Option<Phase> {
        [
            Phase::Empty,
            Phase::PreparingRebalance,
            Phase::CompletingRebalance,
            Phase::Stable,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }
}

/// A JoinGroup request, decoded.
#[derive(Debug, Clone)]
pub struct Join {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member first gets MEMBER_ID_REQUIRED with its id.
    pub member_id_required: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinAnswer {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only the leader gets the members and their metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncAnswer {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Join(JoinAnswer),
    Sync(SyncAnswer),
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

//! Kafka ACLs per virtual cluster: the model (resource patterns, operations, permissions,
//! filters), the authorizer's decision and the per-cluster cache the handlers consult.
//!
//! # Semantics (as Kafka's standard authorizer)
//! * A binding says: principal P from host H may (ALLOW) or may not (DENY) do operation O
//!   on resources matching a pattern (a LITERAL name, the LITERAL wildcard `*`, or a
//!   PREFIXED name). Principals are `User:<key id>`, `User:ANONYMOUS` for connections
//!   without a key, and `User:*` for everyone; hosts are an address or `*`.
//! * A request is refused when any matching DENY names the operation (or ALL); otherwise
//!   it is allowed when a matching ALLOW names the operation, ALL, or an operation that
//!   implies it: READ, WRITE, DELETE and ALTER imply DESCRIBE, ALTER_CONFIGS implies
//!   DESCRIBE_CONFIGS. No ACL means no access (`allow.everyone.if.no.acl.found=false`).
//! * A cluster whose `acls_enabled` setting is off allows everything to every key, ACL
//!   management included; the bindings are kept and apply once it is turned on.
//!
//! # Caching
//! [`AclCache`] holds each cluster's setting and bindings for [`ACL_CACHE_TTL`], so a
//! check costs no query; a change made on this agent drops the entry at once, other
//! agents see it within the TTL. A failed reload keeps the previous entry (logged); with
//! none to keep, the request is refused (fail closed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::codes;
use crate::session::Session;
use crate::store::{Metadata, StoreError};

/// How long a cluster's ACLs are trusted before they are read again.
pub const ACL_CACHE_TTL: Duration = Duration::from_secs(2);
/// The name of the cluster resource, as in Kafka.
pub const CLUSTER_RESOURCE: &str = "kafka-cluster";
/// The principal of connections that did not authenticate with a key.
pub const ANONYMOUS: &str = "User:ANONYMOUS";
/// The wildcard of resource names, principals (`User:*`) and hosts.
pub const WILDCARD: &str = "*";
/// Bindings one cluster may hold (each check walks them).
pub const MAX_ACLS_PER_CLUSTER: usize = 10_000;
const CACHE_MAX_CLUSTERS: usize = 10_000;

/// The resource types Sluice authorizes (Kafka's wire values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Topic = 2,
    Group = 3,
    Cluster = 4,
    TransactionalId = 5,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatternType {
    Literal = 3,
    Prefixed = 4,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    Deny = 2,
    Allow = 3,
}

impl ResourceType {
    pub const ALL: [ResourceType; 4] = [
        ResourceType::Topic,
        ResourceType::Group,
        ResourceType::Cluster,
        ResourceType::TransactionalId,
    ];

    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| *t as i8 == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Topic => "TOPIC",
            ResourceType::Group => "GROUP",
            ResourceType::Cluster => "CLUSTER",
            ResourceType::TransactionalId => "TRANSACTIONAL_ID",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s.trim()))
    }

    /// The error a client gets when refused on a resource of this type.
    pub fn refusal_code(self) -> i16 {
        match self {
            ResourceType::Topic => codes::TOPIC_AUTHORIZATION_FAILED,
            ResourceType::Group => codes::GROUP_AUTHORIZATION_FAILED,
            ResourceType::Cluster => codes::CLUSTER_AUTHORIZATION_FAILED,
            ResourceType::TransactionalId => codes::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        }
    }
}

impl PatternType {
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            3 => Some(PatternType::Literal),
            4 => Some(PatternType::Prefixed),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PatternType::Literal => "LITERAL",
            PatternType::Prefixed => "PREFIXED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [PatternType::Literal, PatternType::Prefixed]
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s.trim()))
    }
}

impl Operation {
    pub const ALL_OPS: [Operation; 11] = [
        Operation::All,
        Operation::Read,
        Operation::Write,
        Operation::Create,
        Operation::Delete,
        Operation::Alter,
        Operation::Describe,
        Operation::ClusterAction,
        Operation::DescribeConfigs,
        Operation::AlterConfigs,
        Operation::IdempotentWrite,
    ];

    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL_OPS.into_iter().find(|o| *o as i8 == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            Operation::All => "ALL",
            Operation::Read => "READ",
            Operation::Write => "WRITE",
            Operation::Create => "CREATE",
            Operation::Delete => "DELETE",
            Operation::Alter => "ALTER",
            Operation::Describe => "DESCRIBE",
            Operation::ClusterAction => "CLUSTER_ACTION",
            Operation::DescribeConfigs => "DESCRIBE_CONFIGS",
            Operation::AlterConfigs => "ALTER_CONFIGS",
            Operation::IdempotentWrite => "IDEMPOTENT_WRITE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL_OPS
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether an ALLOW of `self` grants `wanted` (ALL, the operation itself, or an
    /// operation that implies it).
    fn grants(self, wanted: Operation) -> bool {
        use Operation::*;
        self == All
            || self == wanted
            || (wanted == Describe && matches!(self, Read | Write | Delete | Alter))
            || (wanted == DescribeConfigs && self == AlterConfigs)
    }
}

impl Permission {
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            2 => Some(Permission::Deny),
            3 => Some(Permission::Allow),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Permission::Deny => "DENY",
            Permission::Allow => "ALLOW",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Permission::Allow, Permission::Deny]
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
    }
}

/// One ACL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// Why a binding cannot be stored; the text goes back to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidAcl(pub String);

impl AclBinding {
    /// Builds a binding from the wire values of CreateAcls, refusing what Kafka refuses.
    #[allow(clippy::too_many_arguments)]
    pub fn from_wire(
        resource_type: i8,
        resource_name: &str,
        pattern_type: i8,
        principal: &str,
        host: &str,
        operation: i8,
        permission: i8,
    ) -> Result<Self, InvalidAcl> {
        let bad = |s: String| Err(InvalidAcl(s));
        let Some(resource_type) = ResourceType::from_code(resource_type) else {
            return bad(format!(
                "resource type {resource_type} is not one of TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID"
            ));
        };
        let Some(pattern_type) = PatternType::from_code(pattern_type) else {
            return bad(format!(
                "pattern type {pattern_type} is not LITERAL or PREFIXED"
            ));
        };
        let Some(operation) = Operation::from_code(operation) else {
            return bad(format!("operation {operation} is not a concrete operation"));
        };
        let Some(permission) = Permission::from_code(permission) else {
            return bad(format!("permission {permission} is not ALLOW or DENY"));
        };
        let binding = AclBinding {
            resource_type,
            resource_name: resource_name.to_string(),
            pattern_type,
            principal: principal.to_string(),
            host: host.to_string(),
            operation,
            permission,
        };
        binding.validate()?;
        Ok(binding)
    }

    /// The checks every stored binding passes (from the wire or the console).
    pub fn validate(&self) -> Result<(), InvalidAcl> {
        let bad = |s: &str| Err(InvalidAcl(s.to_string()));
        if self.resource_name.is_empty() || self.resource_name.len() > 255 {
            return bad("the resource name must have 1 to 255 characters");
        }
        if self.pattern_type == PatternType::Prefixed && self.resource_name == WILDCARD {
            return bad("a PREFIXED pattern cannot be '*' (use LITERAL '*' for every resource)");
        }
        if self.resource_type == ResourceType::Cluster
            && (self.resource_name != CLUSTER_RESOURCE || self.pattern_type != PatternType::Literal)
        {
            return bad("the cluster resource is named 'kafka-cluster' (LITERAL)");
        }
        match self.principal.split_once(':') {
            Some(("User", name)) if !name.is_empty() && name.len() <= 255 => {}
            _ => return bad("the principal must be 'User:<key id>' (or 'User:*')"),
        }
        if self.host.is_empty() || self.host.len() > 255 {
            return bad("the host must be '*' or an address");
        }
        Ok(())
    }
}

/// A pattern filter of DescribeAcls / DeleteAcls (Kafka's PatternType filter values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternFilter {
    /// Any pattern type; a name must equal the pattern's name.
    Any,
    /// Every pattern that would apply to the named resource (literal, wildcard, prefixes).
    Match,
    Exact(PatternType),
}

/// A filter over bindings; `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// A filter matching every binding.
    pub fn any() -> Self {
        AclFilter {
            resource_type: None,
            resource_name: None,
            pattern: PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        }
    }

    /// From the wire values of DescribeAcls / DeleteAcls (1 is ANY for the enums).
    #[allow(clippy::too_many_arguments)]
    pub fn from_wire(
        resource_type: i8,
        resource_name: Option<&str>,
        pattern_type: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Result<Self, InvalidAcl> {
        const ANY: i8 = 1;
        let resource_type =
            match resource_type {
                ANY => None,
                code => Some(ResourceType::from_code(code).ok_or_else(|| {
                    InvalidAcl(format!("resource type filter {code} is not known"))
                })?),
            };
        let pattern =
            match pattern_type {
                ANY => PatternFilter::Any,
                2 => PatternFilter::Match,
                code => PatternFilter::Exact(PatternType::from_code(code).ok_or_else(|| {
                    InvalidAcl(format!("pattern type filter {code} is not known"))
                })?),
            };
        let operation = match operation {
            ANY => None,
            code => Some(
                Operation::from_code(code)
                    .ok_or_else(|| InvalidAcl(format!("operation filter {code} is not known")))?,
            ),
        };
        let permission = match permission {
            ANY => None,
            code => Some(
                Permission::from_code(code)
                    .ok_or_else(|| InvalidAcl(format!("permission filter {code} is not known")))?,
            ),
        };
        Ok(AclFilter {
            resource_type,
            resource_name: resource_name.map(str::to_string),
            pattern,
            principal: principal.map(str::to_string),
            host: host.map(str::to_string),
            operation,
            permission,
        })
    }

    pub fn matches(&self, b: &AclBinding) -> bool {
        if self.resource_type.is_some_and(|t| t != b.resource_type)
            || self.principal.as_ref().is_some_and(|p| *p != b.principal)
            || self.host.as_ref().is_some_and(|h| *h != b.host)
            || self.operation.is_some_and(|o| o != b.operation)
            || self.permission.is_some_and(|p| p != b.permission)
        {
            return false;
        }
        if let PatternFilter::Exact(t) = self.pattern {
            if t != b.pattern_type {
                return false;
            }
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        match self.pattern {
            PatternFilter::Any | PatternFilter::Exact(_) => *name == b.resource_name,
            PatternFilter::Match => pattern_covers(b, name),
        }
    }
}

/// Whether a binding's resource pattern applies to the resource named `name`.
fn pattern_covers(b: &AclBinding, name: &str) -> bool {
    match b.pattern_type {
        PatternType::Literal => b.resource_name == name || b.resource_name == WILDCARD,
        PatternType::Prefixed => name.starts_with(b.resource_name.as_str()),
    }
}

/// A cluster's ACL state, as cached.
#[derive(Debug, Default)]
pub struct ClusterAcls {
    pub enabled: bool,
    pub bindings: Vec<AclBinding>,
}

/// What one connection may do, for one request: the cluster's ACLs with the connection's
/// principal and host. Cheap to make (an `Arc` and two strings).
#[derive(Debug, Clone)]
pub struct Authz {
    acls: Option<Arc<ClusterAcls>>,
    principal: String,
    host: String,
}

impl Authz {
    /// Allows everything (ACLs off).
    pub fn allow_all() -> Self {
        Authz {
            acls: Some(Arc::new(ClusterAcls::default())),
            principal: ANONYMOUS.to_string(),
            host: String::new(),
        }
    }

    fn applies(&self, b: &AclBinding) -> bool {
        (b.principal == self.principal || b.principal == "User:*")
            && (b.host == WILDCARD || b.host == self.host)
    }

    /// Whether the connection may do `op` on the resource of type `rt` named `name`.
    pub fn allows(&self, op: Operation, rt: ResourceType, name: &str) -> bool {
        let Some(acls) = &self.acls else {
            return false; // never loaded: fail closed
        };
        if !acls.enabled {
            return true;
        }
        let mut allowed = false;
        for b in &acls.bindings {
            if b.resource_type != rt || !self.applies(b) || !pattern_covers(b, name) {
                continue;
            }
            match b.permission {
                // A DENY refuses only the operation it names (or ALL), not those implied.
                Permission::Deny if b.operation == op || b.operation == Operation::All => {
                    return false
                }
                Permission::Deny => {}
                Permission::Allow => allowed |= b.operation.grants(op),
            }
        }
        allowed
    }

    /// [`Self::allows`] as the error code a client gets when refused.
    pub fn check(&self, op: Operation, rt: ResourceType, name: &str) -> Result<(), i16> {
        if self.allows(op, rt, name) {
            Ok(())
        } else {
            Err(rt.refusal_code())
        }
    }

    /// [`Self::check`] on the cluster resource.
    pub fn check_cluster(&self, op: Operation) -> Result<(), i16> {
        self.check(op, ResourceType::Cluster, CLUSTER_RESOURCE)
    }

    /// Whether the connection may create the topic `name` (CREATE on the cluster or on
    /// the topic), explicitly or by auto-creation.
    pub fn may_create_topic(&self, name: &str) -> bool {
        self.allows(Operation::Create, ResourceType::Cluster, CLUSTER_RESOURCE)
            || self.allows(Operation::Create, ResourceType::Topic, name)
    }

    /// Whether the connection may do `op` on some resource of type `rt` (Kafka's
    /// authorizeByResourceType, used for idempotent producers): an applicable ALLOW
    /// exists that no applicable DENY of the wildcard or of a covering prefix cancels.
    pub fn allows_any(&self, op: Operation, rt: ResourceType) -> bool {
        let Some(acls) = &self.acls else {
            return false;
        };
        if !acls.enabled {
            return true;
        }
        let applicable = |b: &&AclBinding| b.resource_type == rt && self.applies(b);
        let denies: Vec<&AclBinding> = acls
            .bindings
            .iter()
            .filter(applicable)
            .filter(|b| {
                b.permission == Permission::Deny
                    && (b.operation == op || b.operation == Operation::All)
            })
            .collect();
        acls.bindings
            .iter()
            .filter(applicable)
            .filter(|b| b.permission == Permission::Allow && b.operation.grants(op))
            .any(|allow| {
                !denies.iter().any(|d| match d.pattern_type {
                    PatternType::Literal => {
                        d.resource_name == WILDCARD
                            || (allow.pattern_type == PatternType::Literal
                                && d.resource_name == allow.resource_name)
                    }
                    PatternType::Prefixed => allow.resource_name.starts_with(&d.resource_name),
                })
            })
    }
}

/// The principal a session acts as.
pub fn principal_of(session: &Session) -> String {
    match &session.key_id {
        Some(k) => format!("User:{k}"),
        None => ANONYMOUS.to_string(),
    }
}

/// The host part of a peer address (`1.2.3.4:5678`, `[::1]:5678`).
pub fn host_of(peer: &str) -> String {
    match peer.parse::<std::net::SocketAddr>() {
        Ok(a) => a.ip().to_string(),
        Err(_) => peer.to_string(),
    }
}

type Entry = (Arc<ClusterAcls>, Instant);

/// Each cluster's `acls_enabled` and bindings, read at most once per [`ACL_CACHE_TTL`].
pub struct AclCache {
    meta: Metadata,
    entries: Mutex<HashMap<String, Entry>>,
}

impl AclCache {
    pub fn new(meta: Metadata) -> Self {
        AclCache {
            meta,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A cluster's ACL state (cached).
    pub async fn cluster(&self, cluster: &str) -> Result<Arc<ClusterAcls>, StoreError> {
        let stale = match self.lock().get(cluster) {
            Some((acls, at)) if at.elapsed() < ACL_CACHE_TTL => return Ok(acls.clone()),
            Some((acls, _)) => Some(acls.clone()),
            None => None,
        };
        match self.load(cluster).await {
            Ok(acls) => {
                let acls = Arc::new(acls);
                let mut entries = self.lock();
                if entries.len() >= CACHE_MAX_CLUSTERS {
                    entries.clear();
                }
                entries.insert(cluster.to_string(), (acls.clone(), Instant::now()));
                Ok(acls)
            }
            Err(e) => match stale {
                Some(acls) => {
                    tracing::warn!(cluster, error = %e, "reloading acls failed; using the previous ones");
                    Ok(acls)
                }
                None => Err(e),
            },
        }
    }

    async fn load(&self, cluster: &str) -> Result<ClusterAcls, StoreError> {
        let enabled = self.meta.acls_enabled(cluster).await?;
        let bindings = if enabled {
            self.meta.acls(cluster).await?
        } else {
            Vec::new()
        };
        Ok(ClusterAcls { enabled, bindings })
    }

    /// What `session` may do now.
    pub async fn authz(&self, session: &Session) -> Authz {
        let acls = match self.cluster(&session.cluster).await {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::error!(cluster = %session.cluster, error = %e, "loading acls failed; refusing the request");
                None
            }
        };
        Authz {
            acls,
            principal: principal_of(session),
            host: host_of(&session.peer),
        }
    }

    /// Drops a cluster's entry after a change made on this agent.
    pub fn forget(&self, cluster: &str) {
        self.lock().remove(cluster);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(
        rt: ResourceType,
        name: &str,
        pt: PatternType,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: "User:K1".into(),
            host: "*".into(),
            operation: op,
            permission: perm,
        }
    }

    fn authz(bindings: Vec<AclBinding>) -> Authz {
        Authz {
            acls: Some(Arc::new(ClusterAcls {
                enabled: true,
                bindings,
            })),
            principal: "User:K1".into(),
            host: "127.0.0.1".into(),
        }
    }

    use Operation::*;
    use PatternType::*;
    use Permission::*;
    use ResourceType::*;

    #[test]
    fn nothing_is_allowed_without_an_acl_and_everything_when_disabled() {
        assert!(!authz(vec![]).allows(Read, Topic, "t"));
        assert!(Authz::allow_all().allows(Alter, Cluster, CLUSTER_RESOURCE));
        let never_loaded = Authz {
            acls: None,
            principal: ANONYMOUS.into(),
            host: String::new(),
        };
        assert!(!never_loaded.allows(Read, Topic, "t"));
    }

    #[test]
    fn prefixed_literal_and_wildcard_patterns() {
        let a = authz(vec![
            b(Topic, "orders.", Prefixed, Write, Allow),
            b(Topic, "audit", Literal, Read, Allow),
            b(Group, "*", Literal, Read, Allow),
        ]);
        assert!(a.allows(Write, Topic, "orders.eu"));
        assert!(!a.allows(Write, Topic, "order"));
        assert!(a.allows(Read, Topic, "audit"));
        assert!(!a.allows(Read, Topic, "audit2"));
        assert!(a.allows(Read, Group, "anything"));
        assert_eq!(
            a.check(Read, Topic, "x"),
            Err(codes::TOPIC_AUTHORIZATION_FAILED)
        );
        assert_eq!(
            a.check_cluster(Alter),
            Err(codes::CLUSTER_AUTHORIZATION_FAILED)
        );
    }

    #[test]
    fn implications_and_deny_wins() {
        let a = authz(vec![
            b(Topic, "t", Literal, Write, Allow),
            b(Topic, "t", Literal, AlterConfigs, Allow),
            b(Topic, "t.", Prefixed, All, Allow),
            b(Topic, "t.secret", Literal, Read, Deny),
        ]);
        assert!(a.allows(Describe, Topic, "t"), "WRITE implies DESCRIBE");
        assert!(a.allows(DescribeConfigs, Topic, "t"));
        assert!(!a.allows(Read, Topic, "t"));
        assert!(a.allows(Read, Topic, "t.public"));
        assert!(!a.allows(Read, Topic, "t.secret"), "DENY wins over ALLOW");
        assert!(
            a.allows(Describe, Topic, "t.secret"),
            "a DENY of READ does not deny the DESCRIBE it implies"
        );
        let all_denied = authz(vec![
            b(Topic, "t", Literal, All, Allow),
            b(Topic, "*", Literal, All, Deny),
        ]);
        assert!(!all_denied.allows(Describe, Topic, "t"));
    }

    #[test]
    fn principal_and_host_must_apply() {
        let mut other = b(Topic, "t", Literal, Read, Allow);
        other.principal = "User:K2".into();
        let mut everyone_elsewhere = b(Topic, "u", Literal, Read, Allow);
        everyone_elsewhere.principal = "User:*".into();
        everyone_elsewhere.host = "10.0.0.1".into();
        let mut everyone_here = b(Topic, "v", Literal, Read, Allow);
        everyone_here.principal = "User:*".into();
        everyone_here.host = "127.0.0.1".into();
        let a = authz(vec![other, everyone_elsewhere, everyone_here]);
        assert!(!a.allows(Read, Topic, "t"));
        assert!(!a.allows(Read, Topic, "u"));
        assert!(a.allows(Read, Topic, "v"));
    }

    #[test]
    fn allows_any_for_idempotent_producers() {
        assert!(authz(vec![b(Topic, "p.", Prefixed, Write, Allow)]).allows_any(Write, Topic));
        assert!(!authz(vec![b(Topic, "p.", Prefixed, Read, Allow)]).allows_any(Write, Topic));
        assert!(!authz(vec![
            b(Topic, "p.", Prefixed, Write, Allow),
            b(Topic, "p", Prefixed, Write, Deny)
        ])
        .allows_any(Write, Topic));
    }

    #[test]
    fn filters_as_kafka() {
        let lit = b(Topic, "orders", Literal, Read, Allow);
        let pre = b(Topic, "ord", Prefixed, Read, Allow);
        let wild = b(Topic, "*", Literal, Read, Allow);
        let f = |pattern, name: Option<&str>| AclFilter {
            resource_name: name.map(str::to_string),
            pattern,
            ..AclFilter::any()
        };
        let m = f(PatternFilter::Match, Some("orders"));
        assert!(m.matches(&lit) && m.matches(&pre) && m.matches(&wild));
        let any = f(PatternFilter::Any, Some("orders"));
        assert!(any.matches(&lit) && !any.matches(&pre) && !any.matches(&wild));
        let exact = f(PatternFilter::Exact(Prefixed), Some("ord"));
        assert!(exact.matches(&pre) && !exact.matches(&lit));
        assert!(AclFilter::any().matches(&pre));
        let by_principal = AclFilter {
            principal: Some("User:K2".into()),
            ..AclFilter::any()
        };
        assert!(!by_principal.matches(&lit));
    }

    #[test]
    fn wire_values_are_checked() {
        let ok = AclBinding::from_wire(2, "t", 3, "User:K1", "*", 3, 3).unwrap();
        assert_eq!(ok.operation, Read);
        for (rt, name, pt, principal, op, perm) in [
            (1, "t", 3, "User:K1", 3, 3),     // ANY resource type
            (2, "t", 2, "User:K1", 3, 3),     // MATCH pattern
            (2, "t", 3, "User:K1", 1, 3),     // ANY operation
            (2, "t", 3, "User:K1", 3, 1),     // ANY permission
            (2, "t", 3, "Group:x", 3, 3),     // not a user
            (2, "", 3, "User:K1", 3, 3),      // empty name
            (4, "other", 3, "User:K1", 7, 3), // cluster must be kafka-cluster
            (2, "*", 4, "User:K1", 3, 3),     // prefixed wildcard
        ] {
            assert!(
                AclBinding::from_wire(rt, name, pt, principal, "*", op, perm).is_err(),
                "{rt} {name} {pt} {principal} {op} {perm}"
            );
        }
        assert!(AclFilter::from_wire(1, None, 1, None, None, 1, 1).is_ok());
        assert!(AclFilter::from_wire(9, None, 1, None, None, 1, 1).is_err());
    }

    #[test]
    fn hosts_from_peers() {
        assert_eq!(host_of("127.0.0.1:5000"), "127.0.0.1");
        assert_eq!(host_of("[::1]:5000"), "::1");
    }
}

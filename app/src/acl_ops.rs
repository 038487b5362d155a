//! A cluster's Kafka ACLs, its `acls_enabled` setting and its keys' client quotas: who
//! may change them (admins and owners; members read) and what is valid. The broker checks
//! and caches them ([`broker::acl`], [`broker::quota`]); the console changes them through
//! [`broker::inspect::ClusterView`] like any Kafka admin client would.

use broker::inspect::{
    validate_quota, AclBinding, AclFilter, ClientQuota, Operation, PatternFilter, PatternType,
    Permission, ResourceType, CLUSTER_RESOURCE, MAX_ACLS_PER_CLUSTER, WILDCARD,
};

use crate::auth::Viewer;
use crate::error::Refusal;
use crate::ops::{not_builtin, ClusterRef};
use crate::Console;

/// Turns ACL enforcement of a cluster on or off.
pub async fn set_acls_enabled(
    console: &Console,
    viewer: &Viewer,
    c: &ClusterRef,
    enabled: bool,
) -> Result<(), Refusal> {
    viewer.require_admin()?;
    not_builtin(c)?;
    if c.acls_enabled != enabled {
        console.view.set_acls_enabled(&c.id, enabled).await?;
        tracing::info!(cluster = %c.id, enabled, by = %viewer.user.email, "acl enforcement changed");
    }
    Ok(())
}

/// A cluster's ACLs, those of one principal (`User:<key id>`) when given.
pub async fn acls(
    console: &Console,
    c: &ClusterRef,
    principal: Option<&str>,
) -> Result<Vec<AclBinding>, Refusal> {
    if c.builtin {
        return Ok(Vec::new());
    }
    let all = console.view.acls(&c.id).await?;
    Ok(match principal {
        Some(p) => all.into_iter().filter(|b| b.principal == p).collect(),
        None => all,
    })
}

/// The form of one ACL, as typed (names of Kafka's enums, any case).
pub struct AclInput<'a> {
    pub principal: &'a str,
    pub resource_type: &'a str,
    pub resource_name: &'a str,
    pub pattern_type: &'a str,
    pub operation: &'a str,
    pub permission: &'a str,
    pub host: &'a str,
}

impl AclInput<'_> {
    fn binding(&self) -> Result<AclBinding, Refusal> {
        let bad = |s: String| Refusal::bad_request(s);
        let resource_type = ResourceType::parse(self.resource_type).ok_or_else(|| {
            bad("Pick a resource type: TOPIC, GROUP, CLUSTER or TRANSACTIONAL_ID.".into())
        })?;
        let pattern_type = PatternType::parse(self.pattern_type)
            .ok_or_else(|| bad("Pick a pattern type: LITERAL or PREFIXED.".into()))?;
        let operation = Operation::parse(self.operation)
            .ok_or_else(|| bad(format!("'{}' is not a Kafka operation.", self.operation)))?;
        let permission =
            Permission::parse(self.permission).ok_or_else(|| bad("Pick ALLOW or DENY.".into()))?;
        let principal = self.principal.trim();
        // A bare key id is taken as that key's principal.
        let principal = if principal.contains(':') {
            principal.to_string()
        } else {
            format!("User:{principal}")
        };
        let resource_name = match (resource_type, self.resource_name.trim()) {
            (ResourceType::Cluster, "") => CLUSTER_RESOURCE.to_string(),
            (_, name) => name.to_string(),
        };
        let host = match self.host.trim() {
            "" => WILDCARD.to_string(),
            h => h.to_string(),
        };
        let b = AclBinding {
            resource_type,
            resource_name,
            pattern_type,
            principal,
            host,
            operation,
            permission,
        };
        b.validate()
            .map_err(|e| bad(format!("This ACL is not valid: {}.", e.0)))?;
        Ok(b)
    }
}

pub async fn create_acl(
    console: &Console,
    viewer: &Viewer,
    c: &ClusterRef,
    input: &AclInput<'_>,
) -> Result<AclBinding, Refusal> {
    viewer.require_admin()?;
    not_builtin(c)?;
    let b = input.binding()?;
    if !console.view.create_acl(&c.id, b.clone()).await? {
        return Err(Refusal::bad_request(format!(
            "A cluster holds at most {} ACLs; delete some first.",
            MAX_ACLS_PER_CLUSTER
        )));
    }
    tracing::info!(cluster = %c.id, principal = %b.principal, by = %viewer.user.email, "acl created");
    Ok(b)
}

/// Deletes exactly one ACL (every field given); returns whether it existed.
pub async fn delete_acl(
    console: &Console,
    viewer: &Viewer,
    c: &ClusterRef,
    input: &AclInput<'_>,
) -> Result<bool, Refusal> {
    viewer.require_admin()?;
    not_builtin(c)?;
    let b = input.binding()?;
    let filter = AclFilter {
        resource_type: Some(b.resource_type),
        resource_name: Some(b.resource_name.clone()),
        pattern: PatternFilter::Exact(b.pattern_type),
        principal: Some(b.principal.clone()),
        host: Some(b.host.clone()),
        operation: Some(b.operation),
        permission: Some(b.permission),
    };
    let deleted = console.view.delete_acls(&c.id, &filter).await?;
    Ok(!deleted.is_empty())
}

pub async fn quotas(console: &Console, c: &ClusterRef) -> Result<Vec<ClientQuota>, Refusal> {
    if c.builtin {
        return Ok(Vec::new());
    }
    Ok(console.view.client_quotas(&c.id).await?)
}

/// Sets a key's byte rates (None or empty removes one). `key_id` must be a key of `c`.
pub async fn set_key_quotas(
    console: &Console,
    viewer: &Viewer,
    c: &ClusterRef,
    key_id: &str,
    rates: &[(&str, Option<f64>)],
) -> Result<(), Refusal> {
    viewer.require_admin()?;
    not_builtin(c)?;
    let keys = console.view.api_keys(&c.id).await?;
    if !keys.iter().any(|k| k.id == key_id) {
        return Err(Refusal::not_found("No such API key in this cluster."));
    }
    for (quota, value) in rates {
        validate_quota(quota, *value).map_err(|m| Refusal::bad_request(format!("{m}.")))?;
    }
    for (quota, value) in rates {
        console
            .view
            .set_client_quota(&c.id, key_id, quota, *value)
            .await?;
    }
    tracing::info!(cluster = %c.id, key = key_id, by = %viewer.user.email, "client quotas set");
    Ok(())
}

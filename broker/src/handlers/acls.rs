//! CreateAcls, DescribeAcls and DeleteAcls (the model and the checks are in [`crate::acl`]).
//!
//! Managing ACLs needs ALTER on the cluster, describing them DESCRIBE on the cluster, once
//! the cluster enforces ACLs; before that every key may (so the first ACLs can be made
//! with a Kafka admin client before `acls_enabled` is turned on).

use std::collections::BTreeMap;

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::store_error_code;
use crate::acl::{AclBinding, AclFilter, Operation};
use crate::codes;
use crate::session::Session;
use crate::state::Broker;

fn text(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

pub async fn create_acls(
    broker: &Broker,
    session: &Session,
    req: CreateAclsRequest,
) -> CreateAclsResponse {
    let refuse = |code: i16, message: Option<StrBytes>| {
        let results = req
            .creations
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(code)
                    .with_error_message(message.clone())
            })
            .collect();
        CreateAclsResponse::default().with_results(results)
    };
    let authz = broker.acls.authz(session).await;
    if let Err(code) = authz.check_cluster(Operation::Alter) {
        return refuse(code, text("creating acls needs ALTER on the cluster"));
    }
    // Each creation is answered on its own: valid ones are stored, invalid ones refused.
    let mut results = Vec::with_capacity(req.creations.len());
    let mut valid = Vec::new();
    for c in &req.creations {
        match AclBinding::from_wire(
            c.resource_type,
            c.resource_name.as_str(),
            c.resource_pattern_type,
            c.principal.as_str(),
            c.host.as_str(),
            c.operation,
            c.permission_type,
        ) {
            Ok(b) => {
                valid.push(b);
                results.push(AclCreationResult::default());
            }
            Err(e) => results.push(
                AclCreationResult::default()
                    .with_error_code(codes::INVALID_REQUEST)
                    .with_error_message(text(e.0)),
            ),
        }
    }
    if !valid.is_empty() {
        let failed = match broker.meta.create_acls(&session.cluster, &valid).await {
            Ok(true) => None,
            Ok(false) => Some((
                codes::INVALID_REQUEST,
                format!(
                    "the cluster would hold more than {} acls",
                    crate::acl::MAX_ACLS_PER_CLUSTER
                ),
            )),
            Err(e) => Some((store_error_code(&e), "storing the acls failed".to_string())),
        };
        broker.acls.forget(&session.cluster);
        if let Some((code, message)) = failed {
            for r in results.iter_mut().filter(|r| r.error_code == codes::NONE) {
                r.error_code = code;
                r.error_message = text(message.clone());
            }
        } else {
            tracing::info!(cluster = %session.cluster, count = valid.len(), "acls created");
        }
    }
    CreateAclsResponse::default().with_results(results)
}

pub async fn describe_acls(
    broker: &Broker,
    session: &Session,
    req: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let refuse = |code: i16, message: String| {
        DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(text(message))
    };
    let authz = broker.acls.authz(session).await;
    if let Err(code) = authz.check_cluster(Operation::Describe) {
        return refuse(code, "describing acls needs DESCRIBE on the cluster".into());
    }
    let filter = match AclFilter::from_wire(
        req.resource_type_filter,
        req.resource_name_filter.as_deref(),
        req.pattern_type_filter,
        req.principal_filter.as_deref(),
        req.host_filter.as_deref(),
        req.operation,
        req.permission_type,
    ) {
        Ok(f) => f,
        Err(e) => return refuse(codes::INVALID_REQUEST, e.0),
    };
    let bindings = match broker.meta.acls(&session.cluster).await {
        Ok(b) => b,
        Err(e) => return refuse(store_error_code(&e), "reading the acls failed".into()),
    };
    // One resource entry per pattern, its acls beneath (the store's order is stable).
    let mut resources: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for b in bindings.into_iter().filter(|b| filter.matches(b)) {
        resources
            .entry((
                b.resource_type as i8,
                b.resource_name.clone(),
                b.pattern_type as i8,
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(StrBytes::from_string(b.principal))
                    .with_host(StrBytes::from_string(b.host))
                    .with_operation(b.operation as i8)
                    .with_permission_type(b.permission as i8),
            );
    }
    DescribeAclsResponse::default()
        .with_error_message(None)
        .with_resources(
            resources
                .into_iter()
                .map(|((rt, name, pt), acls)| {
                    DescribeAclsResource::default()
                        .with_resource_type(rt)
                        .with_resource_name(StrBytes::from_string(name))
                        .with_pattern_type(pt)
                        .with_acls(acls)
                })
                .collect(),
        )
}

pub async fn delete_acls(
    broker: &Broker,
    session: &Session,
    req: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let authz = broker.acls.authz(session).await;
    let allowed = authz.check_cluster(Operation::Alter);
    let mut results = Vec::with_capacity(req.filters.len());
    let mut changed = false;
    for f in &req.filters {
        let result = DeleteAclsFilterResult::default().with_error_message(None);
        if let Err(code) = allowed {
            results.push(
                result
                    .with_error_code(code)
                    .with_error_message(text("deleting acls needs ALTER on the cluster")),
            );
            continue;
        }
        let filter = match AclFilter::from_wire(
            f.resource_type_filter,
            f.resource_name_filter.as_deref(),
            f.pattern_type_filter,
            f.principal_filter.as_deref(),
            f.host_filter.as_deref(),
            f.operation,
            f.permission_type,
        ) {
            Ok(filter) => filter,
            Err(e) => {
                results.push(
                    result
                        .with_error_code(codes::INVALID_REQUEST)
                        .with_error_message(text(e.0)),
                );
                continue;
            }
        };
        match broker.meta.delete_acls(&session.cluster, &filter).await {
            Ok(deleted) => {
                changed |= !deleted.is_empty();
                results.push(
                    result.with_matching_acls(
                        deleted
                            .into_iter()
                            .map(|b| {
                                DeleteAclsMatchingAcl::default()
                                    .with_error_message(None)
                                    .with_resource_type(b.resource_type as i8)
                                    .with_resource_name(StrBytes::from_string(b.resource_name))
                                    .with_pattern_type(b.pattern_type as i8)
                                    .with_principal(StrBytes::from_string(b.principal))
                                    .with_host(StrBytes::from_string(b.host))
                                    .with_operation(b.operation as i8)
                                    .with_permission_type(b.permission as i8)
                            })
                            .collect(),
                    ),
                );
            }
            Err(e) => results.push(
                result
                    .with_error_code(store_error_code(&e))
                    .with_error_message(text("deleting the acls failed")),
            ),
        }
    }
    if changed {
        broker.acls.forget(&session.cluster);
        tracing::info!(cluster = %session.cluster, "acls deleted");
    }
    DeleteAclsResponse::default().with_filter_results(results)
}

//! DescribeClientQuotas and AlterClientQuotas over the `user=<key id>` entity (the
//! enforcement is in [`crate::quota`]). Describing needs DESCRIBE_CONFIGS on the cluster,
//! altering ALTER_CONFIGS, once the cluster enforces ACLs.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as AlterEntity, EntryData as AlterEntry,
};
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::store_error_code;
use crate::acl::Operation;
use crate::codes;
use crate::quota;
use crate::session::Session;
use crate::state::Broker;

const ENTITY_USER: &str = "user";
/// DescribeClientQuotas match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

fn text(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

pub async fn describe_client_quotas(
    broker: &Broker,
    session: &Session,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let refuse = |code: i16, message: String| {
        DescribeClientQuotasResponse::default()
            .with_error_code(code)
            .with_error_message(text(message))
            .with_entries(None)
    };
    let authz = broker.acls.authz(session).await;
    if let Err(code) = authz.check_cluster(Operation::DescribeConfigs) {
        return refuse(
            code,
            "describing quotas needs DESCRIBE_CONFIGS on the cluster".into(),
        );
    }
    // Which users the filter selects: None = every user; quotas exist only for named users,
    // so a filter on the default user, or on any other entity type, selects none.
    let mut user: Option<Option<String>> = None;
    let mut none = false;
    for c in &req.components {
        if c.entity_type.as_str() != ENTITY_USER {
            // Every stored entity is `user` alone: a filter on another type matches none.
            none = true;
            continue;
        }
        match c.match_type {
            MATCH_EXACT => user = Some(c._match.as_ref().map(|m| m.to_string())),
            MATCH_DEFAULT => none = true,
            MATCH_ANY => {}
            other => {
                return refuse(
                    codes::INVALID_REQUEST,
                    format!("unknown match type {other}"),
                )
            }
        }
    }
    let rows = match broker.meta.client_quotas(&session.cluster).await {
        Ok(r) => r,
        Err(e) => return refuse(store_error_code(&e), "reading the quotas failed".into()),
    };
    let mut by_user: BTreeMap<String, Vec<ValueData>> = BTreeMap::new();
    for q in rows {
        if none
            || user
                .as_ref()
                .is_some_and(|u| u.as_deref() != Some(q.user.as_str()))
        {
            continue;
        }
        by_user.entry(q.user).or_default().push(
            ValueData::default()
                .with_key(StrBytes::from_string(q.key))
                .with_value(q.value),
        );
    }
    DescribeClientQuotasResponse::default()
        .with_error_message(None)
        .with_entries(Some(
            by_user
                .into_iter()
                .map(|(u, values)| {
                    EntryData::default()
                        .with_entity(vec![EntityData::default()
                            .with_entity_type(StrBytes::from_static_str(ENTITY_USER))
                            .with_entity_name(Some(StrBytes::from_string(u)))])
                        .with_values(values)
                })
                .collect(),
        ))
}

pub async fn alter_client_quotas(
    broker: &Broker,
    session: &Session,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let authz = broker.acls.authz(session).await;
    let allowed = authz.check_cluster(Operation::AlterConfigs);
    let mut entries = Vec::with_capacity(req.entries.len());
    let mut changed = false;
    for e in req.entries {
        let entity: Vec<AlterEntity> = e
            .entity
            .iter()
            .map(|x| {
                AlterEntity::default()
                    .with_entity_type(x.entity_type.clone())
                    .with_entity_name(x.entity_name.clone())
            })
            .collect();
        let outcome: Result<(), (i16, String)> = async {
            allowed.map_err(|code| {
                (
                    code,
                    "altering quotas needs ALTER_CONFIGS on the cluster".to_string(),
                )
            })?;
            let user = match e.entity.as_slice() {
                [one] if one.entity_type.as_str() == ENTITY_USER => one
                    .entity_name
                    .as_ref()
                    .filter(|n| !n.is_empty() && n.len() <= 255)
                    .map(|n| n.to_string()),
                _ => None,
            }
            .ok_or_else(|| {
                (
                    codes::INVALID_REQUEST,
                    "only the entity user=<key id> is supported".to_string(),
                )
            })?;
            let mut changes = Vec::with_capacity(e.ops.len());
            for op in &e.ops {
                let value = (!op.remove).then_some(op.value);
                quota::validate(op.key.as_str(), value).map_err(|m| (codes::INVALID_REQUEST, m))?;
                changes.push((user.clone(), op.key.to_string(), value));
            }
            if req.validate_only || changes.is_empty() {
                return Ok(());
            }
            broker
                .meta
                .alter_client_quotas(&session.cluster, &changes)
                .await
                .map_err(|e| {
                    (
                        store_error_code(&e),
                        "storing the quotas failed".to_string(),
                    )
                })?;
            changed = true;
            Ok(())
        }
        .await;
        let mut entry = AlterEntry::default()
            .with_entity(entity)
            .with_error_message(None);
        if let Err((code, message)) = outcome {
            entry = entry
                .with_error_code(code)
                .with_error_message(text(message));
        }
        entries.push(entry);
    }
    if changed {
        broker.quotas.forget(&session.cluster);
        tracing::info!(cluster = %session.cluster, "client quotas altered");
    }
    AlterClientQuotasResponse::default().with_entries(entries)
}

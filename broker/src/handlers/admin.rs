//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions and topic configs.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::store_error_code;
use crate::acl::{Operation, ResourceType};
use crate::codes;
use crate::session::Session;
use crate::state::Broker;
use crate::store::{StoreError, TopicMeta};
use crate::topic_config::{self, validate_new_topic, MAX_PARTITIONS};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// DescribeConfigs config sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
fn msg(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

pub async fn create_topics(
    broker: &Arc<Broker>,
    session: &Session,
    version: i16,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let authz = broker.acls.authz(session).await;
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.to_string();
        let result = CreatableTopicResult::default().with_name(t.name.clone());
        let partitions = if !t.assignments.is_empty() {
            t.assignments.len() as i32
        } else if t.num_partitions == -1 {
            broker.config.default_partitions
        } else {
            t.num_partitions
        };
        let configs: BTreeMap<String, String> = t
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        let refusal = if !authz.may_create_topic(&name) {
            Some((
                codes::TOPIC_AUTHORIZATION_FAILED,
                "creating topics needs CREATE on the cluster or the topic".to_string(),
            ))
        } else if let Err(refused) = validate_new_topic(&name, partitions, &configs) {
            Some(refused)
        } else if t.replication_factor == 0 || t.replication_factor < -1 {
            Some((
                codes::INVALID_REPLICATION_FACTOR,
                "replication factor must be -1 or at least 1".to_string(),
            ))
        } else {
            None
        };
        if let Some((code, message)) = refusal {
            results.push(
                result
                    .with_error_code(code)
                    .with_error_message(msg(message)),
            );
            continue;
        }
        let created = if req.validate_only {
            match broker.meta.topic(&session.cluster, &name).await {
                Ok(Some(_)) => Err(StoreError::TopicExists(name.clone())),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        } else {
            broker
                .topics
                .create(&session.cluster, &name, partitions, &configs)
                .await
                .map(Some)
        };
        results.push(match created {
            Ok(meta) => {
                let mut r = result
                    .with_num_partitions(partitions)
                    // Durability comes from the bucket; there are no broker replicas.
                    .with_replication_factor(if t.replication_factor == -1 {
                        1
                    } else {
                        t.replication_factor
                    });
                if let Some(meta) = meta {
                    tracing::info!(topic = %name, partitions, "created topic");
                    r = r.with_topic_id(meta.uuid);
                }
                if version >= 5 {
                    r = r.with_configs(Some(
                        topic_config::effective(&configs)
                            .into_iter()
                            .map(|(k, v, default)| {
                                CreatableTopicConfigs::default()
                                    .with_name(StrBytes::from_static_str(k))
                                    .with_value(msg(v))
                                    .with_config_source(if default {
                                        SOURCE_DEFAULT
                                    } else {
                                        SOURCE_TOPIC
                                    })
                            })
                            .collect(),
                    ));
                }
                r
            }
            Err(e) => {
                let code = store_error_code(&e);
                result
                    .with_error_code(code)
                    .with_error_message(msg(e.to_string()))
            }
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub async fn delete_topics(
    broker: &Arc<Broker>,
    session: &Session,
    version: i16,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v6 names topics by name or id; older versions by name only.
    let mut targets: Vec<(Option<TopicName>, uuid::Uuid)> = req
        .topic_names
        .into_iter()
        .map(|n| (Some(n), uuid::Uuid::nil()))
        .collect();
    targets.extend(req.topics.into_iter().map(|t| (t.name, t.topic_id)));
    let authz = broker.acls.authz(session).await;
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        // By name the check comes before the look-up (a refused key learns nothing).
        if let Some(n) = &name {
            if let Err(code) = authz.check(Operation::Delete, ResourceType::Topic, n) {
                responses.push(
                    DeletableTopicResult::default()
                        .with_name(name.clone())
                        .with_topic_id(id)
                        .with_error_code(code),
                );
                continue;
            }
        }
        let found = match &name {
            Some(n) => broker.meta.topic(&session.cluster, n).await,
            None => broker.meta.topic_by_uuid(&session.cluster, id).await,
        };
        let mut r = DeletableTopicResult::default()
            .with_name(name.clone())
            .with_topic_id(id);
        match found {
            Ok(Some(t)) if !authz.allows(Operation::Delete, ResourceType::Topic, &t.name) => {
                r = r.with_error_code(codes::TOPIC_AUTHORIZATION_FAILED);
            }
            Ok(Some(t)) if crate::offsets_topic::is_internal(&t.name) => {
                r = r
                    .with_error_code(codes::INVALID_TOPIC_EXCEPTION)
                    .with_error_message(msg(format!(
                        "{} is an internal topic and cannot be deleted",
                        t.name
                    )));
            }
            Ok(Some(t)) => match broker.topics.delete(&session.cluster, &t.name).await {
                Ok(_) => {
                    r = r
                        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
                        .with_topic_id(t.uuid);
                }
                Err(e) => {
                    r = r
                        .with_error_code(store_error_code(&e))
                        .with_error_message(msg(e.to_string()))
                }
            },
            Ok(None) => {
                let code = if name.is_none() && version >= 6 {
                    codes::UNKNOWN_TOPIC_ID
                } else {
                    codes::UNKNOWN_TOPIC_OR_PARTITION
                };
                r = r.with_error_code(code);
            }
            Err(e) => r = r.with_error_code(store_error_code(&e)),
        }
        responses.push(r);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    broker: &Arc<Broker>,
    session: &Session,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let authz = broker.acls.authz(session).await;
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if let Err(code) = authz.check(Operation::Alter, ResourceType::Topic, &t.name) {
            results.push(r.with_error_code(code));
            continue;
        }
        let outcome = async {
            let Some(topic) = broker.meta.topic(&session.cluster, &t.name).await? else {
                return Err(StoreError::UnknownTopic(t.name.to_string()));
            };
            if t.count > MAX_PARTITIONS {
                return Err(StoreError::InvalidPartitions(format!(
                    "at most {MAX_PARTITIONS} partitions per topic"
                )));
            }
            if t.count <= topic.partitions {
                return Err(StoreError::InvalidPartitions(format!(
                    "topic has {} partitions; the new count {} must be larger",
                    topic.partitions, t.count
                )));
            }
            if !req.validate_only {
                broker.meta.create_partitions(topic.id, t.count).await?;
                broker.topics.forget(&session.cluster, &t.name);
            }
            Ok(())
        }
        .await;
        results.push(match outcome {
            Ok(()) => r,
            Err(e) => r
                .with_error_code(store_error_code(&e))
                .with_error_message(msg(e.to_string())),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

fn broker_configs(broker: &Broker) -> Vec<(&'static str, String)> {
    vec![
        (
            "auto.create.topics.enable",
            broker.config.auto_create_topics.to_string(),
        ),
        (
            "num.partitions",
            broker.config.default_partitions.to_string(),
        ),
        ("message.max.bytes", "1048588".to_string()),
        (
            "socket.request.max.bytes",
            broker.config.max_frame_bytes.to_string(),
        ),
    ]
}

pub async fn describe_configs(
    broker: &Arc<Broker>,
    session: &Session,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let authz = broker.acls.authz(session).await;
    let mut results = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let wanted = |k: &str| match &res.configuration_keys {
            Some(keys) => keys.iter().any(|x| x.as_str() == k),
            None => true,
        };
        let mut r = DescribeConfigsResult::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        let refused = match res.resource_type {
            RESOURCE_TOPIC => authz
                .check(
                    Operation::DescribeConfigs,
                    ResourceType::Topic,
                    &res.resource_name,
                )
                .err(),
            RESOURCE_BROKER => authz.check_cluster(Operation::DescribeConfigs).err(),
            _ => None,
        };
        if let Some(code) = refused {
            results.push(r.with_error_code(code));
            continue;
        }
        match res.resource_type {
            RESOURCE_TOPIC => match broker
                .meta
                .topic(&session.cluster, &res.resource_name)
                .await
            {
                Ok(Some(t)) => {
                    r.configs = topic_config::effective(&t.configs)
                        .into_iter()
                        .filter(|(k, _, _)| wanted(k))
                        .map(|(k, v, default)| {
                            DescribeConfigsResourceResult::default()
                                .with_name(StrBytes::from_static_str(k))
                                .with_value(msg(v))
                                .with_config_source(if default {
                                    SOURCE_DEFAULT
                                } else {
                                    SOURCE_TOPIC
                                })
                        })
                        .collect();
                }
                Ok(None) => {
                    r = r
                        .with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION)
                        .with_error_message(msg(format!(
                            "topic '{}' does not exist",
                            res.resource_name
                        )));
                }
                Err(e) => r = r.with_error_code(store_error_code(&e)),
            },
            RESOURCE_BROKER => {
                r.configs = broker_configs(broker)
                    .into_iter()
                    .filter(|(k, _)| wanted(k))
                    .map(|(k, v)| {
                        DescribeConfigsResourceResult::default()
                            .with_name(StrBytes::from_static_str(k))
                            .with_value(msg(v))
                            .with_read_only(true)
                            .with_config_source(SOURCE_STATIC_BROKER)
                    })
                    .collect();
            }
            other => {
                r = r
                    .with_error_code(codes::INVALID_REQUEST)
                    .with_error_message(msg(format!("resource type {other} has no configs here")));
            }
        }
        results.push(r);
    }
    DescribeConfigsResponse::default().with_results(results)
}

/// A config change to apply to one topic.
struct Change {
    replace: bool,
    set: Vec<(String, String)>,
    remove: Vec<String>,
}

/// Validates and applies a change to a named topic resource: Ok or (code, message).
async fn apply_change(
    broker: &Broker,
    session: &Session,
    resource_type: i8,
    name: &str,
    change: Result<Change, String>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    if resource_type != RESOURCE_TOPIC {
        return Err((
            codes::INVALID_REQUEST,
            "only topic configs can be altered; broker settings are flags of `sluice serve`"
                .to_string(),
        ));
    }
    broker
        .acls
        .authz(session)
        .await
        .check(Operation::AlterConfigs, ResourceType::Topic, name)
        .map_err(|code| {
            (
                code,
                "altering configs needs ALTER_CONFIGS on the topic".into(),
            )
        })?;
    let change = change.map_err(|m| (codes::INVALID_CONFIG, m))?;
    topic_config::validate_all(change.set.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| (codes::INVALID_CONFIG, e.0))?;
    let topic = match broker.meta.topic(&session.cluster, name).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Err((
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic '{name}' does not exist"),
            ))
        }
        Err(e) => return Err((store_error_code(&e), e.to_string())),
    };
    if validate_only {
        return Ok(());
    }
    broker
        .meta
        .alter_topic_configs(topic.id, change.replace, &change.set, &change.remove)
        .await
        .map_err(|e| (store_error_code(&e), e.to_string()))?;
    broker.topics.forget(&session.cluster, name);
    tracing::info!(topic = name, "altered topic configs");
    Ok(())
}

pub async fn alter_configs(
    broker: &Arc<Broker>,
    session: &Session,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let change = Ok(Change {
            replace: true,
            set: res
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect(),
            remove: Vec::new(),
        });
        let outcome = apply_change(
            broker,
            session,
            res.resource_type,
            &res.resource_name,
            change,
            req.validate_only,
        )
        .await;
        let mut r = alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name);
        if let Err((code, message)) = outcome {
            r = r.with_error_code(code).with_error_message(msg(message));
        }
        responses.push(r);
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// Operations of IncrementalAlterConfigs.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

fn incremental_change(
    topic: Option<&TopicMeta>,
    configs: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig],
) -> Result<Change, String> {
    let mut change = Change {
        replace: false,
        set: Vec::new(),
        remove: Vec::new(),
    };
    let current = |k: &str| {
        topic
            .map(|t| topic_config::get(&t.configs, k).to_string())
            .unwrap_or_default()
    };
    for c in configs {
        let name = c.name.to_string();
        let value = c.value.as_ref().map(|v| v.to_string());
        match c.config_operation {
            OP_SET => change.set.push((
                name.clone(),
                value.ok_or_else(|| format!("SET of '{name}' needs a value"))?,
            )),
            OP_DELETE => change.remove.push(name),
            OP_APPEND | OP_SUBTRACT if name == "cleanup.policy" => {
                let v =
                    value.ok_or_else(|| format!("APPEND/SUBTRACT of '{name}' needs a value"))?;
                let mut items: Vec<String> = current(&name)
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                for item in v.split(',').map(str::trim) {
                    if c.config_operation == OP_APPEND {
                        if !items.iter().any(|x| x == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|x| x != item);
                    }
                }
                change.set.push((name, items.join(",")));
            }
            OP_APPEND | OP_SUBTRACT => {
                return Err(format!(
                    "'{name}' is not a list config; APPEND and SUBTRACT do not apply"
                ))
            }
            other => return Err(format!("unknown config operation {other}")),
        }
    }
    Ok(change)
}

pub async fn incremental_alter_configs(
    broker: &Arc<Broker>,
    session: &Session,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let topic = if res.resource_type == RESOURCE_TOPIC {
            broker
                .meta
                .topic(&session.cluster, &res.resource_name)
                .await
                .ok()
                .flatten()
        } else {
            None
        };
        let change = incremental_change(topic.as_ref(), &res.configs);
        let outcome = apply_change(
            broker,
            session,
            res.resource_type,
            &res.resource_name,
            change,
            req.validate_only,
        )
        .await;
        let mut r = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name);
        if let Err((code, message)) = outcome {
            r = r.with_error_code(code).with_error_message(msg(message));
        }
        responses.push(r);
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

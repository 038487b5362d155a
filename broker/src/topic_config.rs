//! Topic rules (names, partition counts) and topic configuration: the keys Sluice knows,
//! their defaults and their validation.
//!
//! Enforced by the broker: `max.message.bytes` (produce), `message.timestamp.type`
//! (produce). Stored and reported for the jobs that act on them: `retention.ms`,
//! `retention.bytes`, `cleanup.policy` ([`crate::retention`]); `min.compaction.lag.ms`,
//! `max.compaction.lag.ms`, `min.cleanable.dirty.ratio`, `delete.retention.ms`
//! ([`crate::key_compaction`]). Other common Kafka keys are accepted and reported so
//! that tools which set them keep working, but they have no effect on a diskless log (for
//! instance `segment.bytes`: Sluice's segments are bucket objects sized by the agent).

use std::collections::BTreeMap;

use crate::codes;

pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
pub const MESSAGE_TIMESTAMP_TYPE: &str = "message.timestamp.type";

enum Kind {
    Long { min: i64 },
    Double { min: f64, max: f64 },
    Choice(&'static [&'static str]),
    CleanupPolicy,
}

struct Key {
    name: &'static str,
    default: &'static str,
    kind: Kind,
}

const KEYS: &[Key] = &[
    Key {
        name: "cleanup.policy",
        default: "delete",
        kind: Kind::CleanupPolicy,
    },
    Key {
        name: "compression.type",
        default: "producer",
        kind: Kind::Choice(&["producer"]),
    },
    Key {
        name: "delete.retention.ms",
        default: "86400000",
        kind: Kind::Long { min: 0 },
    },
    Key {
        name: "max.compaction.lag.ms",
        default: "9223372036854775807",
        kind: Kind::Long { min: 1 },
    },
    Key {
        name: MAX_MESSAGE_BYTES,
        default: "1048588",
        kind: Kind::Long { min: 0 },
    },
    Key {
        name: "message.timestamp.after.max.ms",
        default: "9223372036854775807",
        kind: Kind::Long { min: 0 },
    },
    Key {
        name: "message.timestamp.before.max.ms",
        default: "9223372036854775807",
        kind: Kind::Long { min: 0 },
    },
    Key {
        name: MESSAGE_TIMESTAMP_TYPE,
        default: "CreateTime",
        kind: Kind::Choice(&["CreateTime", "LogAppendTime"]),
    },
    Key {
        name: "min.cleanable.dirty.ratio",
        default: "0.5",
        kind: Kind::Double { min: 0.0, max: 1.0 },
    },
    Key {
        name: "min.compaction.lag.ms",
        default: "0",
        kind: Kind::Long { min: 0 },
    },
    Key {
        name: "min.insync.replicas",
        default: "1",
        kind: Kind::Long { min: 1 },
    },
    Key {
        name: "retention.bytes",
        default: "-1",
        kind: Kind::Long { min: -1 },
    },
    Key {
        name: "retention.ms",
        default: "604800000",
        kind: Kind::Long { min: -1 },
    },
    Key {
        name: "segment.bytes",
        default: "1073741824",
        kind: Kind::Long { min: 14 },
    },
    Key {
        name: "segment.ms",
        default: "604800000",
        kind: Kind::Long { min: 1 },
    },
];

/// A refused config, with a message for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// Whether Sluice knows a config key.
pub fn is_known(name: &str) -> bool {
    find(name).is_some()
}

/// Checks one key and value.
pub fn validate(name: &str, value: &str) -> Result<(), ConfigError> {
    let Some(key) = find(name) else {
        return Err(ConfigError(format!("unknown topic config '{name}'")));
    };
    let ok = match &key.kind {
        Kind::Long { min } => value
            .trim()
            .parse::<i64>()
            .map(|v| v >= *min)
            .unwrap_or(false),
        Kind::Double { min, max } => value
            .trim()
            .parse::<f64>()
            .map(|v| (*min..=*max).contains(&v))
            .unwrap_or(false),
        Kind::Choice(choices) => choices.contains(&value),
        Kind::CleanupPolicy => {
            let parts: Vec<&str> = value.split(',').map(str::trim).collect();
            !parts.is_empty() && parts.iter().all(|p| *p == "delete" || *p == "compact")
        }
    };
    if ok {
        Ok(())
    } else {
        let expected = match &key.kind {
            Kind::Long { min } => format!("an integer >= {min}"),
            Kind::Double { min, max } => format!("a number from {min} to {max}"),
            Kind::Choice(c) => format!("one of {}", c.join(", ")),
            Kind::CleanupPolicy => "delete, compact or delete,compact".to_string(),
        };
        Err(ConfigError(format!(
            "invalid value '{value}' for '{name}': expected {expected}"
        )))
    }
}

/// Checks a whole set of configs.
pub fn validate_all<'a>(
    configs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), ConfigError> {
    configs.into_iter().try_for_each(|(k, v)| validate(k, v))
}

/// Every known key with its effective value and whether it is the default.
pub fn effective(set: &BTreeMap<String, String>) -> Vec<(&'static str, String, bool)> {
    KEYS.iter()
        .map(|k| match set.get(k.name) {
            Some(v) => (k.name, v.clone(), false),
            None => (k.name, k.default.to_string(), true),
        })
        .collect()
}

/// The effective value of one key.
pub fn get<'a>(set: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    match set.get(name) {
        Some(v) => v,
        None => find(name).map(|k| k.default).unwrap_or(""),
    }
}

/// `max.message.bytes` as a usize.
pub fn max_message_bytes(set: &BTreeMap<String, String>) -> usize {
    get(set, MAX_MESSAGE_BYTES).parse().unwrap_or(1_048_588)
}

/// Whether the topic stamps batches with the broker's time.
pub fn log_append_time(set: &BTreeMap<String, String>) -> bool {
    get(set, MESSAGE_TIMESTAMP_TYPE) == "LogAppendTime"
}

/// The most partitions one topic may have.
pub const MAX_PARTITIONS: i32 = 10_000;

/// Kafka's topic name rules: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("'{name}' is not a valid topic name"));
    }
    if name.len() > 249 {
        return Err("topic names are at most 249 characters".to_string());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name '{name}' contains '{c}'; use letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Names Kafka keeps for its internal topics; no client may create them.
pub const RESERVED_TOPIC_NAMES: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

/// A name a new topic may take: valid, and not one of Kafka's internal topics.
pub fn validate_new_topic_name(name: &str) -> Result<(), String> {
    validate_topic_name(name)?;
    if RESERVED_TOPIC_NAMES.contains(&name) {
        return Err(format!(
            "'{name}' is the name of one of Kafka's internal topics; choose another name"
        ));
    }
    Ok(())
}

/// Checks a topic about to be created (name, partition count, configs): Ok, or the Kafka
/// error code and a message for the person who asked. Shared by CreateTopics and the
/// console.
pub fn validate_new_topic(
    name: &str,
    partitions: i32,
    configs: &BTreeMap<String, String>,
) -> Result<(), (i16, String)> {
    validate_new_topic_name(name).map_err(|e| (codes::INVALID_TOPIC_EXCEPTION, e))?;
    if !(1..=MAX_PARTITIONS).contains(&partitions) {
        return Err((
            codes::INVALID_PARTITIONS,
            format!("partition count must be 1..={MAX_PARTITIONS}, got {partitions}"),
        ));
    }
    validate_all(configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| (codes::INVALID_CONFIG, e.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_values() {
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(validate("retention.ms", "-2").is_err());
        assert!(validate("retention.ms", "abc").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate("min.cleanable.dirty.ratio", "0.01").is_ok());
        assert!(validate("min.cleanable.dirty.ratio", "1").is_ok());
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate("min.cleanable.dirty.ratio", "NaN").is_err());
        assert!(validate("max.compaction.lag.ms", "0").is_err());
        assert!(validate("delete.retention.ms", "0").is_ok());
        assert!(validate("message.timestamp.type", "Now").is_err());
        let err = validate("no.such.key", "1").unwrap_err();
        assert!(err.0.contains("unknown topic config"));
    }

    #[test]
    fn effective_marks_defaults() {
        let mut set = BTreeMap::new();
        set.insert("retention.ms".to_string(), "1000".to_string());
        let all = effective(&set);
        assert!(all.contains(&("retention.ms", "1000".to_string(), false)));
        assert!(all.contains(&("cleanup.policy", "delete".to_string(), true)));
        assert_eq!(max_message_bytes(&set), 1_048_588);
        assert!(!log_append_time(&set));
    }

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        assert!(validate_new_topic_name("__consumer_offsets").is_err());
        assert!(validate_new_topic_name("__transaction_state").is_err());
        assert!(validate_new_topic_name("__mine").is_ok());
        for bad in ["", ".", "..", "has space", "slash/name", &"x".repeat(250)] {
            assert!(
                validate_topic_name(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }
}

//! Config definitions: every topic and broker config Eddy knows, with Kafka's names, types,
//! defaults and broker synonyms, and the resolution of a topic's effective value.
//!
//! Resolution order for a topic config (Kafka's): the topic's own override, then the dynamic
//! broker config of one of its synonyms, then the static broker config (`server.properties`,
//! `--set`) of one of its synonyms, then the default. Synonyms are listed in precedence order
//! (`log.retention.ms` before `log.retention.minutes` before `log.retention.hours`) and carry a
//! unit factor so that `log.retention.hours=1` yields `retention.ms=3600000`.

use std::collections::BTreeMap;
use thiserror::Error;

/// Kafka's `ConfigType` codes of DescribeConfigs v3+.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    Class = 8,
    Password = 9,
}

/// Where a config applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigScope {
    Topic,
    Broker,
}

/// Kafka's `ConfigSource` codes of DescribeConfigs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    TopicConfig = 1,
    DynamicBrokerConfig = 2,
    DynamicDefaultBrokerConfig = 3,
    StaticBrokerConfig = 4,
    DefaultConfig = 5,
}

/// How a value is checked.
#[derive(Debug, Clone, Copy)]
pub enum Validator {
    Any,
    AtLeast(i64),
    Between(i64, i64),
    DoubleBetween(f64, f64),
    OneOf(&'static [&'static str]),
    /// A comma-separated, non-empty list of these values.
    ListOf(&'static [&'static str]),
}

/// A broker config key that stands for a topic config, with the factor that turns its unit
/// into the topic config's unit (hours → ms: 3_600_000).
#[derive(Debug, Clone, Copy)]
pub struct Synonym {
    pub name: &'static str,
    pub factor: i64,
}

const fn syn(name: &'static str) -> Synonym {
    Synonym { name, factor: 1 }
}

/// One config definition.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    pub name: &'static str,
    pub ty: ConfigType,
    pub default: &'static str,
    pub validator: Validator,
    /// Broker keys that set this topic config's default (empty for broker configs).
    pub synonyms: &'static [Synonym],
    pub read_only: bool,
    pub doc: &'static str,
}

const LONG_MAX: &str = "9223372036854775807";
const COMPRESSION_TYPES: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
const CLEANUP_POLICIES: &[&str] = &["compact", "delete"];
const CONSUMER_GROUP_ASSIGNORS: &[&str] = &[
    "uniform",
    "range",
    "org.apache.kafka.coordinator.group.assignor.UniformAssignor",
    "org.apache.kafka.coordinator.group.assignor.RangeAssignor",
];

macro_rules! def {
    ($name:expr, $ty:ident, $default:expr, $validator:expr, [$($syn:expr),*], $doc:expr) => {
        ConfigDef {
            name: $name,
            ty: ConfigType::$ty,
            default: $default,
            validator: $validator,
            synonyms: &[$($syn),*],
            read_only: false,
            doc: $doc,
        }
    };
}

/// Topic configs (Kafka's `TopicConfig`), sorted by name.
pub static TOPIC_CONFIGS: &[ConfigDef] = &[
    def!(
        "cleanup.policy",
        List,
        "delete",
        Validator::ListOf(CLEANUP_POLICIES),
        [syn("log.cleanup.policy")],
        "What happens to old segments: delete them (retention) and/or compact them by key."
    ),
    def!(
        "compression.type",
        String,
        "producer",
        Validator::OneOf(COMPRESSION_TYPES),
        [syn("compression.type")],
        "Compression of stored batches; 'producer' keeps what the producer sent."
    ),
    def!(
        "delete.retention.ms",
        Long,
        "86400000",
        Validator::AtLeast(0),
        [syn("log.cleaner.delete.retention.ms")],
        "How long tombstones are kept in a compacted topic."
    ),
    def!(
        "file.delete.delay.ms",
        Long,
        "60000",
        Validator::AtLeast(0),
        [syn("log.segment.delete.delay.ms")],
        "Wait before a deleted segment file is removed from disk."
    ),
    def!(
        "flush.messages",
        Long,
        LONG_MAX,
        Validator::AtLeast(1),
        [syn("log.flush.interval.messages")],
        "Force an fsync after this many messages (default: leave it to the OS)."
    ),
    def!(
        "flush.ms",
        Long,
        LONG_MAX,
        Validator::AtLeast(0),
        [syn("log.flush.interval.ms")],
        "Force an fsync when data is this old (default: leave it to the OS)."
    ),
    def!(
        "index.interval.bytes",
        Int,
        "4096",
        Validator::AtLeast(0),
        [syn("log.index.interval.bytes")],
        "Bytes of batches between two offset index entries."
    ),
    def!(
        "max.compaction.lag.ms",
        Long,
        LONG_MAX,
        Validator::AtLeast(1),
        [syn("log.cleaner.max.compaction.lag.ms")],
        "Longest a record stays uncompacted."
    ),
    def!(
        "max.message.bytes",
        Int,
        "1048588",
        Validator::AtLeast(0),
        [syn("message.max.bytes")],
        "Largest record batch the topic accepts."
    ),
    def!(
        "message.timestamp.after.max.ms",
        Long,
        LONG_MAX,
        Validator::AtLeast(0),
        [syn("log.message.timestamp.after.max.ms")],
        "How far in the future a CreateTime timestamp may be."
    ),
    def!(
        "message.timestamp.before.max.ms",
        Long,
        LONG_MAX,
        Validator::AtLeast(0),
        [syn("log.message.timestamp.before.max.ms")],
        "How far in the past a CreateTime timestamp may be."
    ),
    def!(
        "message.timestamp.type",
        String,
        "CreateTime",
        Validator::OneOf(TIMESTAMP_TYPES),
        [syn("log.message.timestamp.type")],
        "CreateTime keeps the producer's timestamp, LogAppendTime sets the broker's."
    ),
    def!(
        "min.cleanable.dirty.ratio",
        Double,
        "0.5",
        Validator::DoubleBetween(0.0, 1.0),
        [syn("log.cleaner.min.cleanable.ratio")],
        "Dirty share of the log above which the cleaner compacts it."
    ),
    def!(
        "min.compaction.lag.ms",
        Long,
        "0",
        Validator::AtLeast(0),
        [syn("log.cleaner.min.compaction.lag.ms")],
        "Youngest a record may be to be compacted."
    ),
    def!(
        "min.insync.replicas",
        Int,
        "1",
        Validator::AtLeast(1),
        [syn("min.insync.replicas")],
        "Replicas that must have a write for acks=all to succeed."
    ),
    def!(
        "preallocate",
        Boolean,
        "false",
        Validator::Any,
        [syn("log.preallocate")],
        "Preallocate segment files."
    ),
    def!(
        "retention.bytes",
        Long,
        "-1",
        Validator::AtLeast(-1),
        [syn("log.retention.bytes")],
        "Largest size of a partition before old segments are deleted (-1: no limit)."
    ),
    def!(
        "retention.ms",
        Long,
        "604800000",
        Validator::AtLeast(-1),
        [
            syn("log.retention.ms"),
            Synonym {
                name: "log.retention.minutes",
                factor: 60_000
            },
            Synonym {
                name: "log.retention.hours",
                factor: 3_600_000
            }
        ],
        "Age after which closed segments are deleted (-1: keep forever)."
    ),
    def!(
        "segment.bytes",
        Int,
        "1073741824",
        Validator::AtLeast(14),
        [syn("log.segment.bytes")],
        "Size at which the active segment rolls."
    ),
    def!(
        "segment.index.bytes",
        Int,
        "10485760",
        Validator::AtLeast(4),
        [syn("log.index.size.max.bytes")],
        "Largest size of an offset index file."
    ),
    def!(
        "segment.jitter.ms",
        Long,
        "0",
        Validator::AtLeast(0),
        [
            syn("log.roll.jitter.ms"),
            Synonym {
                name: "log.roll.jitter.hours",
                factor: 3_600_000
            }
        ],
        "Random jitter subtracted from segment.ms."
    ),
    def!(
        "segment.ms",
        Long,
        "604800000",
        Validator::AtLeast(1),
        [
            syn("log.roll.ms"),
            Synonym {
                name: "log.roll.hours",
                factor: 3_600_000
            }
        ],
        "Age at which the active segment rolls."
    ),
    def!(
        "unclean.leader.election.enable",
        Boolean,
        "false",
        Validator::Any,
        [syn("unclean.leader.election.enable")],
        "Allow an out-of-sync replica to become leader (may lose data)."
    ),
];

/// Broker configs that Eddy reads (`server.properties` keys), sorted by name.
pub static BROKER_CONFIGS: &[ConfigDef] = &[
    def!(
        "auto.create.topics.enable",
        Boolean,
        "true",
        Validator::Any,
        [],
        "Create a topic on first metadata request or produce."
    ),
    def!(
        "broker.id",
        Int,
        "1",
        Validator::AtLeast(0),
        [],
        "Alias of node.id."
    ),
    def!(
        "compression.type",
        String,
        "producer",
        Validator::OneOf(COMPRESSION_TYPES),
        [],
        "Default compression.type of topics."
    ),
    def!(
        "default.replication.factor",
        Int,
        "1",
        Validator::AtLeast(1),
        [],
        "Replication factor of auto-created topics."
    ),
    def!(
        "delete.topic.enable",
        Boolean,
        "true",
        Validator::Any,
        [],
        "Allow DeleteTopics."
    ),
    def!(
        "group.consumer.assignors",
        List,
        "uniform,range",
        Validator::ListOf(CONSUMER_GROUP_ASSIGNORS),
        [],
        "Server-side assignors of KIP-848 consumer groups; the first is the default."
    ),
    def!(
        "group.consumer.heartbeat.interval.ms",
        Int,
        "5000",
        Validator::AtLeast(1),
        [],
        "Heartbeat interval given to KIP-848 consumer group members."
    ),
    def!(
        "group.consumer.max.size",
        Int,
        "2147483647",
        Validator::AtLeast(1),
        [],
        "Most members of a KIP-848 consumer group."
    ),
    def!(
        "group.consumer.session.timeout.ms",
        Int,
        "45000",
        Validator::AtLeast(1),
        [],
        "Session timeout of KIP-848 consumer group members."
    ),
    def!(
        "group.initial.rebalance.delay.ms",
        Int,
        "3000",
        Validator::AtLeast(0),
        [],
        "Wait for more members before the first rebalance."
    ),
    def!(
        "group.max.session.timeout.ms",
        Int,
        "1800000",
        Validator::AtLeast(1),
        [],
        "Largest session timeout a classic group member may ask for."
    ),
    def!(
        "group.max.size",
        Int,
        "2147483647",
        Validator::AtLeast(1),
        [],
        "Most members of a classic group."
    ),
    def!(
        "group.min.session.timeout.ms",
        Int,
        "6000",
        Validator::AtLeast(1),
        [],
        "Smallest session timeout a classic group member may ask for."
    ),
    def!(
        "log.cleaner.backoff.ms",
        Long,
        "15000",
        Validator::AtLeast(0),
        [],
        "Sleep of the log cleaner when no log needs cleaning."
    ),
    def!(
        "log.cleaner.dedupe.buffer.size",
        Long,
        "134217728",
        Validator::Any,
        [],
        "Memory of the log cleaner's key to offset map (shared by the cleaner threads)."
    ),
    def!(
        "log.cleaner.delete.retention.ms",
        Long,
        "86400000",
        Validator::AtLeast(0),
        [],
        "Default delete.retention.ms."
    ),
    def!(
        "log.cleaner.enable",
        Boolean,
        "true",
        Validator::Any,
        [],
        "Run the log cleaner (compaction of cleanup.policy=compact topics)."
    ),
    def!(
        "log.cleaner.io.max.bytes.per.second",
        Double,
        "1.7976931348623157E308",
        Validator::Any,
        [],
        "Read plus write throughput cap of the log cleaner."
    ),
    def!(
        "log.cleaner.max.compaction.lag.ms",
        Long,
        LONG_MAX,
        Validator::AtLeast(1),
        [],
        "Default max.compaction.lag.ms."
    ),
    def!(
        "log.cleaner.min.cleanable.ratio",
        Double,
        "0.5",
        Validator::DoubleBetween(0.0, 1.0),
        [],
        "Default min.cleanable.dirty.ratio."
    ),
    def!(
        "log.cleaner.min.compaction.lag.ms",
        Long,
        "0",
        Validator::AtLeast(0),
        [],
        "Default min.compaction.lag.ms."
    ),
    def!(
        "log.cleaner.threads",
        Int,
        "1",
        Validator::AtLeast(0),
        [],
        "Log cleaner threads (Eddy runs one; 0 disables the cleaner)."
    ),
    def!(
        "log.cleanup.policy",
        List,
        "delete",
        Validator::ListOf(CLEANUP_POLICIES),
        [],
        "Default cleanup.policy."
    ),
    def!(
        "log.dirs",
        String,
        "./eddy-data",
        Validator::Any,
        [],
        "The data directory (--data-dir)."
    ),
    def!(
        "log.flush.interval.messages",
        Long,
        LONG_MAX,
        Validator::AtLeast(1),
        [],
        "Default flush.messages."
    ),
    def!(
        "log.flush.interval.ms",
        Long,
        LONG_MAX,
        Validator::AtLeast(0),
        [],
        "Default flush.ms."
    ),
    def!(
        "log.flush.scheduler.interval.ms",
        Long,
        "1000",
        Validator::AtLeast(1),
        [],
        "How often flush.ms is checked (Eddy: also the housekeeping tick)."
    ),
    def!(
        "log.index.interval.bytes",
        Int,
        "4096",
        Validator::AtLeast(0),
        [],
        "Default index.interval.bytes."
    ),
    def!(
        "log.index.size.max.bytes",
        Int,
        "10485760",
        Validator::AtLeast(4),
        [],
        "Default segment.index.bytes."
    ),
    def!(
        "log.message.timestamp.after.max.ms",
        Long,
        LONG_MAX,
        Validator::AtLeast(0),
        [],
        "Default message.timestamp.after.max.ms."
    ),
    def!(
        "log.message.timestamp.before.max.ms",
        Long,
        LONG_MAX,
        Validator::AtLeast(0),
        [],
        "Default message.timestamp.before.max.ms."
    ),
    def!(
        "log.message.timestamp.type",
        String,
        "CreateTime",
        Validator::OneOf(TIMESTAMP_TYPES),
        [],
        "Default message.timestamp.type."
    ),
    def!(
        "log.preallocate",
        Boolean,
        "false",
        Validator::Any,
        [],
        "Default preallocate."
    ),
    def!(
        "log.retention.bytes",
        Long,
        "-1",
        Validator::AtLeast(-1),
        [],
        "Default retention.bytes."
    ),
    def!(
        "log.retention.check.interval.ms",
        Long,
        "300000",
        Validator::AtLeast(1),
        [],
        "How often retention runs."
    ),
    def!(
        "log.retention.hours",
        Int,
        "168",
        Validator::AtLeast(-1),
        [],
        "Default retention in hours."
    ),
    def!(
        "log.retention.minutes",
        Int,
        "",
        Validator::AtLeast(-1),
        [],
        "Default retention in minutes (wins over hours)."
    ),
    def!(
        "log.retention.ms",
        Long,
        "",
        Validator::AtLeast(-1),
        [],
        "Default retention.ms (wins over minutes and hours)."
    ),
    def!(
        "log.roll.hours",
        Int,
        "168",
        Validator::AtLeast(1),
        [],
        "Default segment roll age in hours."
    ),
    def!(
        "log.roll.jitter.hours",
        Int,
        "0",
        Validator::AtLeast(0),
        [],
        "Default segment.jitter.ms in hours."
    ),
    def!(
        "log.roll.jitter.ms",
        Long,
        "",
        Validator::AtLeast(0),
        [],
        "Default segment.jitter.ms."
    ),
    def!(
        "log.roll.ms",
        Long,
        "",
        Validator::AtLeast(1),
        [],
        "Default segment.ms (wins over hours)."
    ),
    def!(
        "log.segment.bytes",
        Int,
        "1073741824",
        Validator::AtLeast(14),
        [],
        "Default segment.bytes."
    ),
    def!(
        "log.segment.delete.delay.ms",
        Long,
        "60000",
        Validator::AtLeast(0),
        [],
        "Default file.delete.delay.ms."
    ),
    def!(
        "message.max.bytes",
        Int,
        "1048588",
        Validator::AtLeast(0),
        [],
        "Default max.message.bytes."
    ),
    def!(
        "min.insync.replicas",
        Int,
        "1",
        Validator::AtLeast(1),
        [],
        "Default min.insync.replicas."
    ),
    def!(
        "node.id",
        Int,
        "1",
        Validator::AtLeast(0),
        [],
        "This broker's id (--node-id)."
    ),
    def!(
        "num.partitions",
        Int,
        "1",
        Validator::AtLeast(1),
        [],
        "Partitions of auto-created topics and of CreateTopics without a count."
    ),
    def!(
        "offset.metadata.max.bytes",
        Int,
        "4096",
        Validator::AtLeast(0),
        [],
        "Largest metadata string of a committed offset."
    ),
    def!(
        "offsets.retention.check.interval.ms",
        Long,
        "600000",
        Validator::AtLeast(1),
        [],
        "How often expired committed offsets are removed."
    ),
    def!(
        "offsets.retention.minutes",
        Int,
        "10080",
        Validator::AtLeast(1),
        [],
        "How long committed offsets of an empty group are kept."
    ),
    def!(
        "offsets.topic.num.partitions",
        Int,
        "50",
        Validator::AtLeast(1),
        [],
        "Partitions of __consumer_offsets."
    ),
    def!(
        "offsets.topic.replication.factor",
        Short,
        "1",
        Validator::AtLeast(1),
        [],
        "Replication factor of __consumer_offsets."
    ),
    def!(
        "offsets.topic.segment.bytes",
        Int,
        "104857600",
        Validator::AtLeast(1),
        [],
        "segment.bytes of __consumer_offsets."
    ),
    def!(
        "socket.request.max.bytes",
        Int,
        "104857600",
        Validator::AtLeast(1),
        [],
        "Largest request frame; a larger one closes the connection."
    ),
    def!(
        "unclean.leader.election.enable",
        Boolean,
        "false",
        Validator::Any,
        [],
        "Default unclean.leader.election.enable."
    ),
];

/// Looks up a definition.
pub fn find(scope: ConfigScope, name: &str) -> Option<&'static ConfigDef> {
    let defs = match scope {
        ConfigScope::Topic => TOPIC_CONFIGS,
        ConfigScope::Broker => BROKER_CONFIGS,
    };
    defs.iter().find(|d| d.name == name)
}

/// Why a config was refused; `Display` is sent to clients as the error message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("Unknown {scope} config name: {name}")]
    Unknown { scope: &'static str, name: String },
    #[error("Invalid value {value} for configuration {name}: {reason}")]
    InvalidValue {
        name: String,
        value: String,
        reason: String,
    },
}

fn invalid(def: &ConfigDef, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        name: def.name.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Checks a value against its definition's type and validator.
pub fn validate_value(def: &ConfigDef, value: &str) -> Result<(), ConfigError> {
    let v = value.trim();
    let number: Option<i64> = match def.ty {
        ConfigType::Int => Some(
            v.parse::<i32>()
                .map_err(|_| invalid(def, value, "Not a number of type INT"))? as i64,
        ),
        ConfigType::Short => Some(
            v.parse::<i16>()
                .map_err(|_| invalid(def, value, "Not a number of type SHORT"))? as i64,
        ),
        ConfigType::Long => Some(
            v.parse::<i64>()
                .map_err(|_| invalid(def, value, "Not a number of type LONG"))?,
        ),
        ConfigType::Boolean => {
            if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                return Err(invalid(
                    def,
                    value,
                    "Expected value to be either true or false",
                ));
            }
            None
        }
        ConfigType::Double => {
            let d: f64 = v
                .parse()
                .map_err(|_| invalid(def, value, "Not a number of type DOUBLE"))?;
            if let Validator::DoubleBetween(lo, hi) = def.validator {
                if !(lo..=hi).contains(&d) {
                    return Err(invalid(
                        def,
                        value,
                        format!("Value must be in [{lo}, {hi}]"),
                    ));
                }
            }
            None
        }
        _ => None,
    };
    match (def.validator, number) {
        (Validator::AtLeast(min), Some(n)) if n < min => {
            Err(invalid(def, value, format!("Value must be at least {min}")))
        }
        (Validator::Between(lo, hi), Some(n)) if n < lo || n > hi => Err(invalid(
            def,
            value,
            format!("Value must be in [{lo}, {hi}]"),
        )),
        (Validator::OneOf(allowed), _) if !allowed.contains(&v) => Err(invalid(
            def,
            value,
            format!("String must be one of: {}", allowed.join(", ")),
        )),
        (Validator::ListOf(allowed), _) => {
            let items: Vec<&str> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if items.is_empty() {
                return Err(invalid(def, value, "Empty list"));
            }
            match items.iter().find(|i| !allowed.contains(i)) {
                Some(bad) => Err(invalid(
                    def,
                    value,
                    format!(
                        "Invalid value {bad}, must be one of: {}",
                        allowed.join(", ")
                    ),
                )),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// Validates a set of topic config overrides (names must be known topic configs).
pub fn validate_topic_configs<'a>(
    configs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), ConfigError> {
    for (name, value) in configs {
        let def = find(ConfigScope::Topic, name).ok_or_else(|| ConfigError::Unknown {
            scope: "topic",
            name: name.to_string(),
        })?;
        validate_value(def, value)?;
    }
    Ok(())
}

/// One resolved config value, as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigValue {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigKind,
    pub ty: ConfigType,
    pub read_only: bool,
    pub sensitive: bool,
    pub doc: &'static str,
    /// (name, value, source) in precedence order, the value itself first.
    pub synonyms: Vec<(String, String, ConfigKind)>,
}

/// The broker-level layers under a topic's overrides.
#[derive(Debug, Clone, Default)]
pub struct BrokerLayers<'a> {
    pub dynamic: Option<&'a BTreeMap<String, String>>,
    pub static_props: Option<&'a BTreeMap<String, String>>,
}

fn scaled(value: &str, factor: i64) -> String {
    if factor == 1 {
        return value.to_string();
    }
    match value.trim().parse::<i64>() {
        Ok(n) if n < 0 => n.to_string(),
        Ok(n) => n.saturating_mul(factor).to_string(),
        Err(_) => value.to_string(),
    }
}

/// Resolves a topic config's effective value and its synonyms chain.
pub fn resolve_topic_config(
    def: &ConfigDef,
    overrides: &BTreeMap<String, String>,
    broker: &BrokerLayers<'_>,
) -> ConfigValue {
    let mut synonyms = Vec::new();
    if let Some(v) = overrides.get(def.name) {
        synonyms.push((def.name.to_string(), v.clone(), ConfigKind::TopicConfig));
    }
    for (layer, kind) in [
        (broker.dynamic, ConfigKind::DynamicBrokerConfig),
        (broker.static_props, ConfigKind::StaticBrokerConfig),
    ] {
        let Some(layer) = layer else { continue };
        for s in def.synonyms {
            if let Some(v) = layer.get(s.name) {
                synonyms.push((s.name.to_string(), scaled(v, s.factor), kind));
            }
        }
    }
    // Kafka lists the broker default of the first synonym as DEFAULT_CONFIG.
    if let Some(first) = def.synonyms.first() {
        if let Some(bd) = find(ConfigScope::Broker, first.name) {
            if !bd.default.is_empty() {
                synonyms.push((
                    first.name.to_string(),
                    bd.default.to_string(),
                    ConfigKind::DefaultConfig,
                ));
            }
        }
    }
    let (value, source) = match synonyms.first() {
        Some((_, v, k)) => (v.clone(), *k),
        None => (def.default.to_string(), ConfigKind::DefaultConfig),
    };
    // A broker default of a synonym (e.g. log.retention.hours=168) gives the same value as the
    // topic default only after scaling; report the topic's own default when nothing was set.
    let value = if source == ConfigKind::DefaultConfig {
        def.default.to_string()
    } else {
        value
    };
    ConfigValue {
        name: def.name.to_string(),
        value: Some(value),
        source,
        ty: def.ty,
        read_only: def.read_only,
        sensitive: false,
        doc: def.doc,
        synonyms,
    }
}

/// Resolves a broker config's value: dynamic, then static, then default.
pub fn resolve_broker_config(def: &ConfigDef, broker: &BrokerLayers<'_>) -> ConfigValue {
    let mut synonyms = Vec::new();
    if let Some(v) = broker.dynamic.and_then(|d| d.get(def.name)) {
        synonyms.push((
            def.name.to_string(),
            v.clone(),
            ConfigKind::DynamicBrokerConfig,
        ));
    }
    if let Some(v) = broker.static_props.and_then(|d| d.get(def.name)) {
        synonyms.push((
            def.name.to_string(),
            v.clone(),
            ConfigKind::StaticBrokerConfig,
        ));
    }
    if !def.default.is_empty() {
        synonyms.push((
            def.name.to_string(),
            def.default.to_string(),
            ConfigKind::DefaultConfig,
        ));
    }
    let (value, source) = match synonyms.first() {
        Some((_, v, k)) => (Some(v.clone()), *k),
        None => (None, ConfigKind::DefaultConfig),
    };
    ConfigValue {
        name: def.name.to_string(),
        value,
        source,
        ty: def.ty,
        read_only: def.read_only,
        sensitive: false,
        doc: def.doc,
        synonyms,
    }
}

/// The effective value of every topic config for a topic.
pub fn resolve_all_topic_configs(
    overrides: &BTreeMap<String, String>,
    broker: &BrokerLayers<'_>,
) -> Vec<ConfigValue> {
    TOPIC_CONFIGS
        .iter()
        .map(|d| resolve_topic_config(d, overrides, broker))
        .collect()
}

/// The effective value of one topic config, as a string.
pub fn topic_value(
    name: &str,
    overrides: &BTreeMap<String, String>,
    broker: &BrokerLayers<'_>,
) -> Option<String> {
    find(ConfigScope::Topic, name).and_then(|d| resolve_topic_config(d, overrides, broker).value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_overrides() {
        let none = BTreeMap::new();
        let layers = BrokerLayers::default();
        assert_eq!(
            topic_value("retention.ms", &none, &layers).as_deref(),
            Some("604800000")
        );
        let o = map(&[("retention.ms", "1000")]);
        let v = resolve_topic_config(
            find(ConfigScope::Topic, "retention.ms").unwrap(),
            &o,
            &layers,
        );
        assert_eq!(v.value.as_deref(), Some("1000"));
        assert_eq!(v.source, ConfigKind::TopicConfig);
    }

    #[test]
    fn broker_synonyms_with_units() {
        let none = BTreeMap::new();
        let props = map(&[("log.retention.hours", "2")]);
        let layers = BrokerLayers {
            dynamic: None,
            static_props: Some(&props),
        };
        let v = resolve_topic_config(
            find(ConfigScope::Topic, "retention.ms").unwrap(),
            &none,
            &layers,
        );
        assert_eq!(v.value.as_deref(), Some("7200000"));
        assert_eq!(v.source, ConfigKind::StaticBrokerConfig);
        let props = map(&[("log.retention.hours", "2"), ("log.retention.ms", "5")]);
        let layers = BrokerLayers {
            dynamic: None,
            static_props: Some(&props),
        };
        assert_eq!(
            topic_value("retention.ms", &none, &layers).as_deref(),
            Some("5")
        );
        let dynamic = map(&[("log.retention.ms", "9")]);
        let layers = BrokerLayers {
            dynamic: Some(&dynamic),
            static_props: Some(&props),
        };
        assert_eq!(
            topic_value("retention.ms", &none, &layers).as_deref(),
            Some("9")
        );
    }

    #[test]
    fn validation() {
        let ok = [
            ("retention.ms", "-1"),
            ("cleanup.policy", "compact,delete"),
            ("min.cleanable.dirty.ratio", "0.1"),
            ("message.timestamp.type", "LogAppendTime"),
            ("preallocate", "TRUE"),
        ];
        assert_eq!(validate_topic_configs(ok), Ok(()));
        for bad in [
            ("retention.ms", "abc"),
            ("retention.ms", "-2"),
            ("cleanup.policy", "purge"),
            ("cleanup.policy", ""),
            ("segment.bytes", "3"),
            ("min.cleanable.dirty.ratio", "2"),
            ("no.such.config", "1"),
            ("max.message.bytes", "99999999999"),
        ] {
            assert!(validate_topic_configs([bad]).is_err(), "{bad:?}");
        }
    }
}

//! Client configuration: Kafka-style properties (`bootstrap.servers`,
//! `acks`, `linger.ms`, ...) and the typed configurations built from them.
//!
//! Typed configurations have public fields and defaults equal to the Java
//! client's, so they can be built directly:
//!
//! ```
//! use std::time::Duration;
//! use eddy_client::{Acks, ProducerConfig};
//! let mut cfg = ProducerConfig::new("127.0.0.1:9092");
//! cfg.acks = Acks::Leader;
//! cfg.linger = Duration::from_millis(20);
//! ```
//!
//! or from properties, rejecting unknown keys:
//!
//! ```
//! use eddy_client::{ClientConfig, ProducerConfig};
//! let props = ClientConfig::new()
//!     .set("bootstrap.servers", "127.0.0.1:9092")
//!     .set("acks", "1")
//!     .set("compression.type", "zstd");
//! let cfg = ProducerConfig::from_config(&props).unwrap();
//! assert_eq!(cfg.acks.as_i16(), 1);
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use eddy_protocol::records::Compression;

use crate::error::ClientError;
use crate::group::GroupProtocol;
use crate::membership::MemberConfig;
use crate::partitioner::PartitionerChoice;

/// Kafka-style client properties (string keys and values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientConfig {
    props: BTreeMap<String, String>,
}

impl ClientConfig {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` (builder style).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(key, value);
        self
    }

    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.props.insert(
            key.into().trim().to_string(),
            value.into().trim().to_string(),
        );
    }

    /// Parses `key=value`.
    pub fn insert_assignment(&mut self, kv: &str) -> Result<(), ClientError> {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            ClientError::InvalidArgument(format!("expected KEY=VALUE, got '{kv}'"))
        })?;
        if k.trim().is_empty() {
            return Err(ClientError::InvalidArgument(format!("empty key in '{kv}'")));
        }
        self.insert(k, v);
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.props.get(key).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.props.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn check_known(&self, known: &[&[&str]]) -> Result<(), ClientError> {
        for k in self.props.keys() {
            if !known.iter().any(|set| set.contains(&k.as_str())) {
                return Err(ClientError::config(k, "unknown configuration key"));
            }
        }
        Ok(())
    }

    fn parse<T: FromStr>(&self, key: &str, default: T) -> Result<T, ClientError>
    where
        T::Err: fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e| ClientError::config(key, format!("'{v}': {e}"))),
        }
    }

    fn millis(&self, key: &str, default_ms: u64) -> Result<Duration, ClientError> {
        self.parse::<u64>(key, default_ms)
            .map(Duration::from_millis)
    }

    fn positive(&self, key: &str, default: usize) -> Result<usize, ClientError> {
        let v = self.parse::<usize>(key, default)?;
        if v == 0 {
            return Err(ClientError::config(key, "must be positive"));
        }
        Ok(v)
    }
}

const COMMON_KEYS: &[&str] = &[
    "bootstrap.servers",
    "client.id",
    "request.timeout.ms",
    "socket.connection.setup.timeout.ms",
    "retry.backoff.ms",
    "metadata.max.age.ms",
    "receive.message.max.bytes",
];

/// Settings shared by every client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonConfig {
    /// `bootstrap.servers`: `host:port` of the brokers to bootstrap from.
    pub bootstrap_servers: Vec<String>,
    /// `client.id` (default `eddy-client`).
    pub client_id: String,
    /// `request.timeout.ms` (default 30000): how long to wait for a response.
    pub request_timeout: Duration,
    /// `socket.connection.setup.timeout.ms` (default 10000).
    pub connect_timeout: Duration,
    /// `retry.backoff.ms` (default 100).
    pub retry_backoff: Duration,
    /// `metadata.max.age.ms` (default 300000).
    pub metadata_max_age: Duration,
    /// `receive.message.max.bytes` (default 200 MB): the largest response accepted.
    pub max_response_size: usize,
    /// Highest version to use per api (tests and compatibility); empty by default.
    pub version_caps: Vec<(eddy_protocol::ApiKey, i16)>,
}

impl CommonConfig {
    pub fn new(bootstrap_servers: &str) -> Self {
        CommonConfig {
            bootstrap_servers: split_servers(bootstrap_servers),
            client_id: "eddy-client".to_string(),
            request_timeout: Duration::from_millis(30_000),
            connect_timeout: Duration::from_millis(10_000),
            retry_backoff: Duration::from_millis(100),
            metadata_max_age: Duration::from_millis(300_000),
            max_response_size: 200 * 1024 * 1024,
            version_caps: Vec::new(),
        }
    }

    pub fn from_config(c: &ClientConfig) -> Result<Self, ClientError> {
        c.check_known(&[COMMON_KEYS])?;
        Self::parse_common(c)
    }

    fn parse_common(c: &ClientConfig) -> Result<Self, ClientError> {
        let servers = c
            .get("bootstrap.servers")
            .ok_or_else(|| ClientError::config("bootstrap.servers", "is required"))?;
        let mut cfg = CommonConfig::new(servers);
        cfg.validate()?;
        if let Some(id) = c.get("client.id") {
            cfg.client_id = id.to_string();
        }
        cfg.request_timeout = c.millis("request.timeout.ms", 30_000)?;
        cfg.connect_timeout = c.millis("socket.connection.setup.timeout.ms", 10_000)?;
        cfg.retry_backoff = c.millis("retry.backoff.ms", 100)?;
        cfg.metadata_max_age = c.millis("metadata.max.age.ms", 300_000)?;
        cfg.max_response_size = c.positive("receive.message.max.bytes", cfg.max_response_size)?;
        Ok(cfg)
    }

    /// Checks the bootstrap list.
    pub fn validate(&self) -> Result<(), ClientError> {
        if self.bootstrap_servers.is_empty() {
            return Err(ClientError::config("bootstrap.servers", "is empty"));
        }
        for s in &self.bootstrap_servers {
            parse_host_port(s).map_err(|r| ClientError::config("bootstrap.servers", r))?;
        }
        Ok(())
    }
}

/// Splits a comma-separated server list, dropping empty entries.
pub fn split_servers(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Splits `host:port` (IPv6 as `[::1]:9092`).
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}' is not HOST:PORT"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("'{s}' has no host"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("'{s}' has an invalid port"))?;
    Ok((host.to_string(), port))
}

/// `acks`: how many replicas must have the records before the broker answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: the broker sends no response.
    None,
    /// `acks=1`: the leader has written the records.
    Leader,
    /// `acks=all` / `-1`: all in-sync replicas have them.
    All,
}

impl Acks {
    pub fn as_i16(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

impl FromStr for Acks {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "-1" | "all" => Ok(Acks::All),
            _ => Err("expected 0, 1, -1 or all".to_string()),
        }
    }
}

const PRODUCER_KEYS: &[&str] = &[
    "acks",
    "linger.ms",
    "batch.size",
    "compression.type",
    "delivery.timeout.ms",
    "retries",
    "max.request.size",
    "max.in.flight.requests.per.connection",
    "enable.idempotence",
    "buffer.memory",
    "max.block.ms",
    "partitioner.class",
    "partitioner.ignore.keys",
];

/// Java's class names (and short names) accepted by `partitioner.class`.
const ROUND_ROBIN_NAMES: &[&str] = &[
    "org.apache.kafka.clients.producer.RoundRobinPartitioner",
    "RoundRobinPartitioner",
    "round_robin",
    "roundrobin",
];
const DEFAULT_PARTITIONER_NAMES: &[&str] = &[
    "",
    "default",
    "org.apache.kafka.clients.producer.internals.DefaultPartitioner",
];
/// Java's deprecated `UniformStickyPartitioner`: sticky for every record.
const UNIFORM_STICKY_NAMES: &[&str] = &[
    "org.apache.kafka.clients.producer.UniformStickyPartitioner",
    "uniform_sticky",
];

/// Producer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    pub common: CommonConfig,
    /// `acks` (default all).
    pub acks: Acks,
    /// `linger.ms` (default 5): how long a batch waits for more records.
    pub linger: Duration,
    /// `batch.size` (default 16384): target size of a batch in bytes.
    pub batch_size: usize,
    /// `compression.type` (default none).
    pub compression: Compression,
    /// `delivery.timeout.ms` (default 120000): upper bound on the time to
    /// report success or failure of a record.
    pub delivery_timeout: Duration,
    /// `retries` (default i32::MAX): sends retried on retriable errors.
    pub retries: u32,
    /// `max.request.size` (default 1048576): the largest record accepted.
    pub max_request_size: usize,
    /// `max.in.flight.requests.per.connection` (default 5): Produce requests
    /// sent to a broker before waiting for the oldest answer. Above 1 without
    /// idempotence, a retried batch can land after a later batch of its
    /// partition (the Java client's semantics); with idempotence order is
    /// kept (at most 5 allowed).
    pub max_in_flight: usize,
    /// `enable.idempotence`: `None` (not set) enables it unless `acks` is
    /// not `all`, `retries` is 0 or `max_in_flight` is above 5, as in the
    /// Java client; `Some(true)` with such a conflict is a configuration error.
    pub enable_idempotence: Option<bool>,
    /// `buffer.memory` (default 33554432): bytes of records waiting to be
    /// delivered, beyond which `send` waits and `try_send` fails.
    pub buffer_memory: usize,
    /// `max.block.ms` (default 60000): how long `send` waits for buffer
    /// room and for the topic's metadata.
    pub max_block: Duration,
    /// `partitioner.class`: the built-in partitioning (default), a
    /// [`RoundRobinPartitioner`](crate::partitioner::RoundRobinPartitioner)
    /// or a partitioner of your own.
    pub partitioner: PartitionerChoice,
    /// `partitioner.ignore.keys` (default false): the built-in partitioning
    /// places keyed records like unkeyed ones (sticky).
    pub partitioner_ignore_keys: bool,
}

impl ProducerConfig {
    pub fn new(bootstrap_servers: &str) -> Self {
        Self::with_common(CommonConfig::new(bootstrap_servers))
    }

    pub fn with_common(common: CommonConfig) -> Self {
        ProducerConfig {
            common,
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 16384,
            compression: Compression::None,
            delivery_timeout: Duration::from_millis(120_000),
            retries: i32::MAX as u32,
            max_request_size: 1024 * 1024,
            max_in_flight: 5,
            enable_idempotence: None,
            buffer_memory: 33_554_432,
            max_block: Duration::from_millis(60_000),
            partitioner: PartitionerChoice::BuiltIn,
            partitioner_ignore_keys: false,
        }
    }

    /// The reason idempotence cannot be used with these settings, if any.
    fn idempotence_conflict(&self) -> Option<(&'static str, &'static str)> {
        if self.acks != Acks::All {
            Some((
                "acks",
                "must be all (-1) to use the idempotent producer, otherwise idempotence cannot be guaranteed",
            ))
        } else if self.retries == 0 {
            Some(("retries", "must be above 0 to use the idempotent producer"))
        } else if self.max_in_flight > 5 {
            Some((
                "max.in.flight.requests.per.connection",
                "must be at most 5 to use the idempotent producer",
            ))
        } else {
            None
        }
    }

    /// Whether the producer is idempotent: explicitly enabled, or not set
    /// and nothing conflicts (Java's rules).
    pub fn idempotence(&self) -> bool {
        match self.enable_idempotence {
            Some(v) => v,
            None => self.idempotence_conflict().is_none(),
        }
    }

    /// Checks the values a producer cannot work with (also done by
    /// `Producer::new`), including `enable.idempotence=true` with `acks`
    /// not all, `retries=0` or more than 5 requests in flight.
    pub fn validate(&self) -> Result<(), ClientError> {
        self.common.validate()?;
        for (key, v) in [
            ("batch.size", self.batch_size),
            ("max.request.size", self.max_request_size),
            ("max.in.flight.requests.per.connection", self.max_in_flight),
            ("buffer.memory", self.buffer_memory),
        ] {
            if v == 0 {
                return Err(ClientError::config(key, "must be positive"));
            }
        }
        if self.enable_idempotence == Some(true) {
            if let Some((key, reason)) = self.idempotence_conflict() {
                return Err(ClientError::config(
                    key,
                    format!("{reason} (enable.idempotence=true)"),
                ));
            }
        }
        Ok(())
    }

    pub fn from_config(c: &ClientConfig) -> Result<Self, ClientError> {
        c.check_known(&[COMMON_KEYS, PRODUCER_KEYS])?;
        let mut cfg = Self::with_common(CommonConfig::parse_common(c)?);
        cfg.acks = c.parse("acks", Acks::All)?;
        cfg.linger = c.millis("linger.ms", 5)?;
        cfg.batch_size = c.positive("batch.size", 16384)?;
        cfg.compression = match c.get("compression.type") {
            None => Compression::None,
            Some(v) => v.parse().map_err(|_| {
                ClientError::config("compression.type", format!("unknown codec '{v}'"))
            })?,
        };
        cfg.delivery_timeout = c.millis("delivery.timeout.ms", 120_000)?;
        cfg.retries = c.parse("retries", i32::MAX as u32)?;
        cfg.max_request_size = c.positive("max.request.size", 1024 * 1024)?;
        cfg.max_in_flight = c.positive("max.in.flight.requests.per.connection", 5)?;
        cfg.enable_idempotence = match c.get("enable.idempotence") {
            None => None,
            Some(_) => Some(c.parse("enable.idempotence", true)?),
        };
        cfg.buffer_memory = c.positive("buffer.memory", 33_554_432)?;
        cfg.max_block = c.millis("max.block.ms", 60_000)?;
        cfg.partitioner_ignore_keys = c.parse("partitioner.ignore.keys", false)?;
        if let Some(name) = c.get("partitioner.class") {
            if ROUND_ROBIN_NAMES.contains(&name) {
                cfg.partitioner = PartitionerChoice::round_robin();
            } else if UNIFORM_STICKY_NAMES.contains(&name) {
                cfg.partitioner_ignore_keys = true;
            } else if !DEFAULT_PARTITIONER_NAMES.contains(&name) {
                return Err(ClientError::config(
                    "partitioner.class",
                    format!(
                        "unknown partitioner '{name}' (expected \
                         org.apache.kafka.clients.producer.RoundRobinPartitioner, round_robin \
                         or default; set ProducerConfig::partitioner for your own)"
                    ),
                ));
            }
        }
        // Java: an explicit delivery.timeout.ms must cover linger.ms + request.timeout.ms.
        let floor = cfg.linger + cfg.common.request_timeout;
        if c.get("delivery.timeout.ms").is_some() {
            if cfg.delivery_timeout < floor {
                return Err(ClientError::config(
                    "delivery.timeout.ms",
                    format!(
                        "must be at least linger.ms + request.timeout.ms ({} ms)",
                        floor.as_millis()
                    ),
                ));
            }
        } else if cfg.delivery_timeout < floor {
            cfg.delivery_timeout = floor;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// `auto.offset.reset`: where to start when the position is out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoOffsetReset {
    Earliest,
    Latest,
    /// Fail with OFFSET_OUT_OF_RANGE.
    None,
}

impl FromStr for AutoOffsetReset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "earliest" | "smallest" | "beginning" => Ok(AutoOffsetReset::Earliest),
            "latest" | "largest" | "end" => Ok(AutoOffsetReset::Latest),
            "none" | "error" => Ok(AutoOffsetReset::None),
            _ => Err("expected earliest, latest or none".to_string()),
        }
    }
}

/// `isolation.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    ReadUncommitted,
    ReadCommitted,
}

impl IsolationLevel {
    pub fn as_i8(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

impl FromStr for IsolationLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "read_uncommitted" => Ok(IsolationLevel::ReadUncommitted),
            "read_committed" => Ok(IsolationLevel::ReadCommitted),
            _ => Err("expected read_uncommitted or read_committed".to_string()),
        }
    }
}

const CONSUMER_KEYS: &[&str] = &[
    "fetch.min.bytes",
    "fetch.max.bytes",
    "fetch.max.wait.ms",
    "max.partition.fetch.bytes",
    "auto.offset.reset",
    "isolation.level",
    "group.id",
    "group.instance.id",
    "group.protocol",
    "group.remote.assignor",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "max.poll.records",
    "max.poll.interval.ms",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "partition.assignment.strategy",
    "client.rack",
    "exclude.internal.topics",
    "check.crcs",
];

/// Consumer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    pub common: CommonConfig,
    /// `fetch.min.bytes` (default 1).
    pub fetch_min_bytes: i32,
    /// `fetch.max.bytes` (default 52428800).
    pub fetch_max_bytes: i32,
    /// `fetch.max.wait.ms` (default 500).
    pub fetch_max_wait: Duration,
    /// `max.partition.fetch.bytes` (default 1048576).
    pub max_partition_fetch_bytes: i32,
    /// `auto.offset.reset` (default latest).
    pub auto_offset_reset: AutoOffsetReset,
    /// `isolation.level` (default read_uncommitted): read_committed skips
    /// records of aborted transactions and reads up to the last stable offset.
    pub isolation_level: IsolationLevel,
    /// `group.id`: needed to subscribe and to commit offsets.
    pub group_id: Option<String>,
    /// `group.instance.id` (static membership).
    pub group_instance_id: Option<String>,
    /// `group.protocol` (default classic).
    pub group_protocol: GroupProtocol,
    /// `group.remote.assignor` (group.protocol=consumer): `None` for the
    /// broker's default.
    pub group_remote_assignor: Option<String>,
    /// `enable.auto.commit` (default true when `group.id` is set).
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms` (default 5000).
    pub auto_commit_interval: Duration,
    /// `max.poll.records` (default 500): the most records one poll returns.
    pub max_poll_records: usize,
    /// `max.poll.interval.ms` (default 300000).
    pub max_poll_interval: Duration,
    /// `session.timeout.ms` (default 45000; classic protocol).
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (default 3000; classic protocol).
    pub heartbeat_interval: Duration,
    /// `partition.assignment.strategy` (default range, cooperative-sticky):
    /// assignor names, or Java class names of the built-in assignors.
    pub partition_assignment_strategy: Vec<String>,
    /// `client.rack`.
    pub client_rack: Option<String>,
    /// `exclude.internal.topics` (default true): pattern subscriptions never
    /// match internal topics such as `__consumer_offsets`.
    pub exclude_internal_topics: bool,
}

impl ConsumerConfig {
    pub fn new(bootstrap_servers: &str) -> Self {
        Self::with_common(CommonConfig::new(bootstrap_servers))
    }

    pub fn with_common(common: CommonConfig) -> Self {
        ConsumerConfig {
            common,
            fetch_min_bytes: 1,
            fetch_max_bytes: 52_428_800,
            fetch_max_wait: Duration::from_millis(500),
            max_partition_fetch_bytes: 1_048_576,
            auto_offset_reset: AutoOffsetReset::Latest,
            isolation_level: IsolationLevel::ReadUncommitted,
            group_id: None,
            group_instance_id: None,
            group_protocol: GroupProtocol::Classic,
            group_remote_assignor: None,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_millis(5_000),
            max_poll_records: 500,
            max_poll_interval: Duration::from_millis(300_000),
            session_timeout: Duration::from_millis(45_000),
            heartbeat_interval: Duration::from_millis(3_000),
            partition_assignment_strategy: vec!["range".into(), "cooperative-sticky".into()],
            client_rack: None,
            exclude_internal_topics: true,
        }
    }

    /// The consumer in `group`.
    pub fn with_group(mut self, group_id: impl Into<String>) -> Self {
        self.group_id = Some(group_id.into());
        self
    }

    /// Membership settings, if `group.id` is set.
    pub fn member_config(&self) -> Option<MemberConfig> {
        let group_id = self.group_id.clone()?;
        Some(MemberConfig {
            group_id,
            group_instance_id: self.group_instance_id.clone(),
            session_timeout: self.session_timeout,
            heartbeat_interval: self.heartbeat_interval,
            rebalance_timeout: self.max_poll_interval,
            assignment_strategies: self.partition_assignment_strategy.clone(),
            remote_assignor: self.group_remote_assignor.clone(),
            rack: self.client_rack.clone(),
        })
    }

    pub fn from_config(c: &ClientConfig) -> Result<Self, ClientError> {
        c.check_known(&[COMMON_KEYS, CONSUMER_KEYS])?;
        let mut cfg = Self::with_common(CommonConfig::parse_common(c)?);
        cfg.fetch_min_bytes = c.parse("fetch.min.bytes", 1)?;
        cfg.fetch_max_bytes = c.parse("fetch.max.bytes", 52_428_800)?;
        cfg.fetch_max_wait = c.millis("fetch.max.wait.ms", 500)?;
        cfg.max_partition_fetch_bytes = c.parse("max.partition.fetch.bytes", 1_048_576)?;
        cfg.auto_offset_reset = c.parse("auto.offset.reset", AutoOffsetReset::Latest)?;
        cfg.isolation_level = c.parse("isolation.level", IsolationLevel::ReadUncommitted)?;
        let non_empty = |key: &str| c.get(key).map(str::trim).filter(|v| !v.is_empty());
        cfg.group_id = non_empty("group.id").map(String::from);
        cfg.group_instance_id = non_empty("group.instance.id").map(String::from);
        cfg.group_protocol = c.parse("group.protocol", GroupProtocol::Classic)?;
        cfg.group_remote_assignor = non_empty("group.remote.assignor").map(String::from);
        cfg.enable_auto_commit = c.parse("enable.auto.commit", true)?;
        cfg.auto_commit_interval = c.millis("auto.commit.interval.ms", 5_000)?;
        cfg.max_poll_records = c.positive("max.poll.records", 500)?;
        cfg.max_poll_interval = c.millis("max.poll.interval.ms", 300_000)?;
        cfg.session_timeout = c.millis("session.timeout.ms", 45_000)?;
        cfg.heartbeat_interval = c.millis("heartbeat.interval.ms", 3_000)?;
        if cfg.heartbeat_interval >= cfg.session_timeout {
            return Err(ClientError::config(
                "heartbeat.interval.ms",
                "must be lower than session.timeout.ms",
            ));
        }
        if let Some(v) = c.get("partition.assignment.strategy") {
            cfg.partition_assignment_strategy = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            if cfg.partition_assignment_strategy.is_empty() {
                return Err(ClientError::config(
                    "partition.assignment.strategy",
                    "name at least one assignor",
                ));
            }
        }
        cfg.client_rack = non_empty("client.rack").map(String::from);
        cfg.exclude_internal_topics = c.parse("exclude.internal.topics", true)?;
        let _: bool = c.parse("check.crcs", true)?; // CRCs are always checked.
        for (key, v) in [
            ("fetch.min.bytes", cfg.fetch_min_bytes),
            ("fetch.max.bytes", cfg.fetch_max_bytes),
            ("max.partition.fetch.bytes", cfg.max_partition_fetch_bytes),
        ] {
            if v < 0 {
                return Err(ClientError::config(key, "must not be negative"));
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_from_properties() {
        let c = ClientConfig::new()
            .set("bootstrap.servers", "a:1, b:2,")
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("batch.size", "1000")
            .set("compression.type", "lz4")
            .set("client.id", "me");
        let p = ProducerConfig::from_config(&c).unwrap();
        assert_eq!(p.common.bootstrap_servers, vec!["a:1", "b:2"]);
        assert_eq!(p.common.client_id, "me");
        assert_eq!(p.acks, Acks::All);
        assert_eq!(p.linger, Duration::ZERO);
        assert_eq!(p.batch_size, 1000);
        assert_eq!(p.compression, Compression::Lz4);
    }

    #[test]
    fn defaults_match_the_java_client() {
        let p = ProducerConfig::new("h:9092");
        assert_eq!(p.acks, Acks::All);
        assert_eq!(p.batch_size, 16384);
        assert_eq!(p.linger, Duration::from_millis(5));
        assert_eq!(p.common.request_timeout, Duration::from_secs(30));
        let c = ConsumerConfig::new("h:9092");
        assert_eq!(c.max_partition_fetch_bytes, 1_048_576);
        assert_eq!(c.fetch_max_wait, Duration::from_millis(500));
        assert_eq!(c.auto_offset_reset, AutoOffsetReset::Latest);
    }

    #[test]
    fn bad_values_are_reported_with_their_key() {
        let base = ClientConfig::new().set("bootstrap.servers", "h:9092");
        let e = ProducerConfig::from_config(&base.clone().set("acks", "2")).unwrap_err();
        assert!(e.to_string().contains("acks"), "{e}");
        let e = ProducerConfig::from_config(&base.clone().set("compression.type", "brotli"))
            .unwrap_err();
        assert!(e.to_string().contains("compression.type"), "{e}");
        let e = ProducerConfig::from_config(&base.clone().set("linger.ms", "soon")).unwrap_err();
        assert!(e.to_string().contains("linger.ms"), "{e}");
        let e = ConsumerConfig::from_config(&base.clone().set("acks", "1")).unwrap_err();
        assert!(e.to_string().contains("unknown configuration key"), "{e}");
        let e = CommonConfig::from_config(&ClientConfig::new()).unwrap_err();
        assert!(e.to_string().contains("bootstrap.servers"), "{e}");
        let e = CommonConfig::from_config(&ClientConfig::new().set("bootstrap.servers", "nohost"))
            .unwrap_err();
        assert!(e.to_string().contains("HOST:PORT"), "{e}");
    }

    #[test]
    fn idempotence_follows_the_java_rules() {
        let base = || ClientConfig::new().set("bootstrap.servers", "h:9092");
        let p = ProducerConfig::from_config(&base()).unwrap();
        assert_eq!(p.enable_idempotence, None);
        assert!(p.idempotence(), "on by default");
        assert_eq!(p.max_in_flight, 5);
        assert_eq!(p.buffer_memory, 33_554_432);
        assert_eq!(p.max_block, Duration::from_secs(60));
        // Not set: silently off when something conflicts.
        for (k, v) in [
            ("acks", "1"),
            ("acks", "0"),
            ("retries", "0"),
            ("max.in.flight.requests.per.connection", "6"),
        ] {
            let p = ProducerConfig::from_config(&base().set(k, v)).unwrap();
            assert!(!p.idempotence(), "{k}={v}");
            // Set explicitly: a configuration error naming the conflicting key.
            let e =
                ProducerConfig::from_config(&base().set(k, v).set("enable.idempotence", "true"))
                    .unwrap_err();
            assert!(e.to_string().contains(k), "{e}");
            assert!(e.to_string().contains("enable.idempotence"), "{e}");
        }
        let p = ProducerConfig::from_config(&base().set("enable.idempotence", "false")).unwrap();
        assert!(!p.idempotence());
        let e = ProducerConfig::from_config(&base().set("enable.idempotence", "yes")).unwrap_err();
        assert!(e.to_string().contains("enable.idempotence"), "{e}");
        let e =
            ProducerConfig::from_config(&base().set("max.in.flight.requests.per.connection", "0"))
                .unwrap_err();
        assert!(e.to_string().contains("must be positive"), "{e}");
    }

    #[test]
    fn producer_limits_and_partitioner_class() {
        let base = || ClientConfig::new().set("bootstrap.servers", "h:9092");
        let p = ProducerConfig::from_config(
            &base()
                .set("buffer.memory", "1000")
                .set("max.block.ms", "250")
                .set("partitioner.ignore.keys", "true"),
        )
        .unwrap();
        assert_eq!(p.buffer_memory, 1000);
        assert_eq!(p.max_block, Duration::from_millis(250));
        assert!(p.partitioner_ignore_keys);
        assert_eq!(p.partitioner, PartitionerChoice::BuiltIn);
        for name in [
            "round_robin",
            "org.apache.kafka.clients.producer.RoundRobinPartitioner",
        ] {
            let p = ProducerConfig::from_config(&base().set("partitioner.class", name)).unwrap();
            assert!(
                matches!(p.partitioner, PartitionerChoice::Custom(_)),
                "{name}"
            );
        }
        let p = ProducerConfig::from_config(&base().set(
            "partitioner.class",
            "org.apache.kafka.clients.producer.UniformStickyPartitioner",
        ))
        .unwrap();
        assert!(p.partitioner_ignore_keys);
        let e = ProducerConfig::from_config(&base().set("partitioner.class", "com.acme.Mine"))
            .unwrap_err();
        assert!(e.to_string().contains("partitioner.class"), "{e}");
        assert!(e.to_string().contains("com.acme.Mine"), "{e}");
        // delivery.timeout.ms must cover linger.ms + request.timeout.ms when set...
        let e = ProducerConfig::from_config(
            &base()
                .set("delivery.timeout.ms", "1000")
                .set("request.timeout.ms", "2000"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("delivery.timeout.ms"), "{e}");
        // ...and is raised to it when not set.
        let p = ProducerConfig::from_config(&base().set("request.timeout.ms", "200000")).unwrap();
        assert_eq!(p.delivery_timeout, Duration::from_millis(200_005));
    }

    #[test]
    fn host_port() {
        assert_eq!(
            parse_host_port("localhost:9092").unwrap(),
            ("localhost".into(), 9092)
        );
        assert_eq!(
            parse_host_port("[::1]:19092").unwrap(),
            ("::1".into(), 19092)
        );
        assert!(parse_host_port("localhost").is_err());
        assert!(parse_host_port(":1").is_err());
        assert!(parse_host_port("h:99999").is_err());
    }

    #[test]
    fn assignments() {
        let mut c = ClientConfig::new();
        c.insert_assignment("linger.ms=7").unwrap();
        c.insert_assignment("a=b=c").unwrap();
        assert_eq!(c.get("linger.ms"), Some("7"));
        assert_eq!(c.get("a"), Some("b=c"));
        assert!(c.insert_assignment("novalue").is_err());
        assert!(c.insert_assignment("=x").is_err());
    }
}

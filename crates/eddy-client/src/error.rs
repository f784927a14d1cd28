//! Errors of the client.
//!
//! Every error displays as one readable sentence (no trailing period, no
//! newline), so that a command-line tool can print it as is.

use std::fmt;
use std::time::Duration;

use eddy_protocol::messages::ApiKey;
use eddy_protocol::records::RecordError;
use eddy_protocol::{DecodeError, EncodeError, ErrorCode};

/// An error code returned by a broker, with the broker's message and the
/// resource it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaError {
    pub code: ErrorCode,
    /// The broker's error message, when it sent one.
    pub message: Option<String>,
    /// The topic the error is about, if any.
    pub topic: Option<String>,
    /// The partition the error is about, if any.
    pub partition: Option<i32>,
}

impl KafkaError {
    pub fn new(code: ErrorCode) -> Self {
        KafkaError {
            code,
            message: None,
            topic: None,
            partition: None,
        }
    }

    /// Sets the broker's message (empty messages are ignored).
    pub fn with_message(mut self, message: Option<String>) -> Self {
        self.message = message.filter(|m| !m.trim().is_empty());
        self
    }

    pub fn with_topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    pub fn with_partition(mut self, topic: impl Into<String>, partition: i32) -> Self {
        self.topic = Some(topic.into());
        self.partition = Some(partition);
        self
    }

    /// Whether retrying the operation may succeed.
    pub fn is_retriable(&self) -> bool {
        self.code.is_retriable()
    }

    /// Whether the error means the client's metadata is stale.
    pub fn invalidates_metadata(&self) -> bool {
        matches!(
            self.code,
            ErrorCode::NotLeaderOrFollower
                | ErrorCode::UnknownTopicOrPartition
                | ErrorCode::LeaderNotAvailable
                | ErrorCode::NotController
                | ErrorCode::FencedLeaderEpoch
                | ErrorCode::UnknownLeaderEpoch
                | ErrorCode::UnknownTopicId
                | ErrorCode::InconsistentTopicId
                | ErrorCode::BrokerNotAvailable
                | ErrorCode::ReplicaNotAvailable
        )
    }
}

/// One line, no trailing period: "message", whitespace collapsed.
fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    joined.trim_end_matches('.').to_string()
}

impl fmt::Display for KafkaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.code.name();
        match (self.code, &self.topic, self.partition) {
            (ErrorCode::UnknownTopicOrPartition, Some(t), None) => {
                return write!(f, "topic '{t}' does not exist ({name})");
            }
            (ErrorCode::UnknownTopicOrPartition, Some(t), Some(p)) => {
                return write!(f, "partition {p} of topic '{t}' does not exist ({name})");
            }
            (ErrorCode::UnknownTopicId, Some(t), _) => {
                return write!(f, "topic '{t}' does not exist ({name})");
            }
            (ErrorCode::TopicAlreadyExists, Some(t), _) => {
                return write!(f, "topic '{t}' already exists ({name})");
            }
            _ => {}
        }
        let msg = match &self.message {
            Some(m) => one_line(m),
            None => one_line(self.code.message()),
        };
        // Lower-case the first letter unless it starts an acronym or a name.
        let msg = lower_first(&msg);
        match (&self.topic, self.partition) {
            (Some(t), Some(p)) => write!(f, "topic '{t}' partition {p}: {msg} ({name})"),
            (Some(t), None) => write!(f, "topic '{t}': {msg} ({name})"),
            _ => write!(f, "{msg} ({name})"),
        }
    }
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(a), Some(b)) if a.is_ascii_uppercase() && !b.is_ascii_uppercase() => {
            let mut out = String::with_capacity(s.len());
            out.push(a.to_ascii_lowercase());
            out.push_str(&s[1..]);
            out
        }
        _ => s.to_string(),
    }
}

/// Errors of the client. Cloneable, so one failure can be reported to
/// every record or partition it concerns.
#[derive(thiserror::Error, Debug, Clone)]
pub enum ClientError {
    /// The broker answered with an error code.
    #[error("{0}")]
    Kafka(KafkaError),

    /// A TCP connection could not be established.
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },

    /// None of the bootstrap servers (or known brokers) could be reached.
    #[error("cannot connect to any broker ({0})")]
    NoBrokerAvailable(String),

    /// The connection broke while a request was in flight or being sent.
    #[error("connection to {addr} lost: {reason}")]
    Disconnected { addr: String, reason: String },

    /// No response arrived within `request.timeout.ms`.
    #[error("{api} request to {addr} timed out after {} ms", .timeout.as_millis())]
    Timeout {
        api: ApiKey,
        addr: String,
        timeout: Duration,
    },

    /// An operation did not complete within its deadline.
    #[error("{what} did not complete within {} ms", .timeout.as_millis())]
    OperationTimeout { what: String, timeout: Duration },

    /// `buffer.memory` stayed full for `max.block.ms` (or, for `try_send`, is full now).
    #[error(
        "no room for a {size}-byte record in buffer.memory ({buffer_memory} bytes) after waiting {} ms (max.block.ms); records are not being delivered fast enough (is the broker reachable?)",
        .waited.as_millis()
    )]
    BufferFull {
        size: usize,
        buffer_memory: usize,
        waited: Duration,
    },

    /// The metadata of a topic could not be obtained in time (the topic does
    /// not exist and is not created automatically, or has no leader).
    #[error("topic '{topic}' not present in metadata after {} ms: {reason}", .timeout.as_millis())]
    MetadataTimeout {
        topic: String,
        timeout: Duration,
        reason: String,
    },

    /// The broker does not support any version of an api this client implements.
    #[error("broker {addr} does not support {api} versions {min}-{max} (it supports {broker})")]
    UnsupportedVersion {
        api: ApiKey,
        addr: String,
        min: i16,
        max: i16,
        broker: String,
    },

    /// A request could not be encoded.
    #[error("cannot encode {api} request: {source}")]
    Encode { api: ApiKey, source: EncodeError },

    /// A response could not be decoded.
    #[error("malformed {api} response from {addr}: {source}")]
    Decode {
        api: ApiKey,
        addr: String,
        source: DecodeError,
    },

    /// The broker's response does not follow the protocol (e.g. a missing partition).
    #[error("invalid {api} response from {addr}: {reason}")]
    InvalidResponse {
        api: ApiKey,
        addr: String,
        reason: String,
    },

    /// A record batch could not be built or decoded.
    #[error("record batch error: {0}")]
    Records(String),

    /// A configuration value is missing or invalid.
    #[error("invalid configuration {key}: {reason}")]
    Config { key: String, reason: String },

    /// An argument passed to the client is invalid.
    #[error("{0}")]
    InvalidArgument(String),

    /// [`WakeupHandle::wakeup`](crate::consumer::WakeupHandle::wakeup) interrupted a poll.
    #[error("the consumer was woken up")]
    Wakeup,

    /// A partition has no committed offset and `auto.offset.reset` is none.
    #[error("no committed offset for topic '{topic}' partition {partition} and auto.offset.reset is none")]
    NoOffset { topic: String, partition: i32 },

    /// The producer or consumer was closed.
    #[error("the {0} is closed")]
    Closed(&'static str),

    /// A partition assignor failed, or a group member sent a malformed
    /// subscription or assignment.
    #[error(transparent)]
    Assignor(#[from] crate::assignor::AssignorError),
}

impl ClientError {
    /// The Kafka error code, if the broker returned one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Kafka(k) => Some(k.code),
            _ => None,
        }
    }

    /// Whether retrying may succeed (retriable error codes, lost connections, timeouts).
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Kafka(k) => k.is_retriable(),
            ClientError::Disconnected { .. }
            | ClientError::Connect { .. }
            | ClientError::NoBrokerAvailable(_)
            | ClientError::Timeout { .. } => true,
            _ => false,
        }
    }

    /// Whether the error means that cached metadata (leaders) may be stale.
    pub fn invalidates_metadata(&self) -> bool {
        match self {
            ClientError::Kafka(k) => k.invalidates_metadata(),
            ClientError::Disconnected { .. }
            | ClientError::Connect { .. }
            | ClientError::Timeout { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn config(key: &str, reason: impl Into<String>) -> Self {
        ClientError::Config {
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}

impl From<RecordError> for ClientError {
    fn from(e: RecordError) -> Self {
        ClientError::Records(e.to_string())
    }
}

impl From<KafkaError> for ClientError {
    fn from(e: KafkaError) -> Self {
        ClientError::Kafka(e)
    }
}

/// `Ok(())` for error code 0, else a [`KafkaError`] with the broker's message.
pub(crate) fn check_code(code: i16, message: Option<&String>) -> Result<(), KafkaError> {
    if code == 0 {
        return Ok(());
    }
    Err(KafkaError::new(ErrorCode::from_code_or_unknown(code)).with_message(message.cloned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_topic_reads_as_a_sentence() {
        let e = ClientError::from(
            KafkaError::new(ErrorCode::UnknownTopicOrPartition).with_topic("orders"),
        );
        assert_eq!(
            e.to_string(),
            "topic 'orders' does not exist (UNKNOWN_TOPIC_OR_PARTITION)"
        );
        let e = ClientError::from(
            KafkaError::new(ErrorCode::UnknownTopicOrPartition).with_partition("orders", 7),
        );
        assert_eq!(
            e.to_string(),
            "partition 7 of topic 'orders' does not exist (UNKNOWN_TOPIC_OR_PARTITION)"
        );
    }

    #[test]
    fn broker_message_is_used_and_flattened() {
        let e = KafkaError::new(ErrorCode::InvalidPartitions)
            .with_message(Some(
                "Topic currently has 5 partitions,\nwhich is higher than 2.".into(),
            ))
            .with_topic("t");
        assert_eq!(
            e.to_string(),
            "topic 't': topic currently has 5 partitions, which is higher than 2 (INVALID_PARTITIONS)"
        );
        let e = KafkaError::new(ErrorCode::InvalidConfig).with_message(Some("   ".into()));
        assert!(e.message.is_none());
        assert!(e.to_string().ends_with("(INVALID_CONFIG)"), "{e}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn check_code_maps_errors() {
        assert!(check_code(0, None).is_ok());
        let e = check_code(36, Some(&"exists".to_string())).unwrap_err();
        assert_eq!(e.code, ErrorCode::TopicAlreadyExists);
        assert_eq!(e.message.as_deref(), Some("exists"));
        let e = check_code(9999, None).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownServerError);
    }
}

//! One module per API. Each has `handle` (the request's work) and `error_response` (the
//! response that carries one error code everywhere, used for unsupported versions).

pub mod api_versions;
pub mod configs;
pub mod fetch;
pub mod groups;
pub mod groups_consumer;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod produce;
pub mod topics;

pub use configs::{alter_configs, describe_configs, incremental_alter_configs};
pub use groups::{
    delete_groups, describe_groups, find_coordinator, heartbeat, join_group, leave_group,
    list_groups, offset_commit, offset_delete, offset_fetch, sync_group,
};
pub use groups_consumer::{consumer_group_describe, consumer_group_heartbeat};
pub use topics::{
    create_partitions, create_topics, delete_records, delete_topics, describe_cluster,
};

use eddy_meta::store::MetaError;
use eddy_protocol::error_code::ErrorCode;

use crate::broker::BrokerError;

/// The Kafka error code and message for a failed metadata operation.
pub fn broker_error_code(e: &BrokerError) -> (ErrorCode, String) {
    let code = match e {
        BrokerError::Meta(m) => match m {
            MetaError::InvalidTopicName(_) => ErrorCode::InvalidTopicException,
            MetaError::TopicExists(_) => ErrorCode::TopicAlreadyExists,
            MetaError::TopicCollision { .. } => ErrorCode::InvalidTopicException,
            MetaError::UnknownTopic(_) => ErrorCode::UnknownTopicOrPartition,
            MetaError::InvalidPartitionCount => ErrorCode::InvalidPartitions,
            MetaError::PartitionsCannotShrink { .. } | MetaError::PartitionsUnchanged(_) => {
                ErrorCode::InvalidPartitions
            }
            MetaError::Config(_) => ErrorCode::InvalidConfig,
            MetaError::Io { .. } | MetaError::Corrupt { .. } => ErrorCode::KafkaStorageError,
        },
        BrokerError::Log { .. } | BrokerError::DataDir { .. } => ErrorCode::KafkaStorageError,
    };
    (code, e.to_string())
}

//! eddy-client: Eddy's Rust client for Kafka-protocol brokers (Apache
//! Kafka, Redpanda, Eddy), on tokio.
//!
//! - [`connection`]: one broker connection with pipelining and api version
//!   negotiation; [`protocol::Request`] ties each request to its response.
//! - [`cluster`]: bootstrap, metadata cache, connection pool.
//! - [`admin`]: topics, partitions, configs, offsets, cluster description;
//!   [`group_admin`]: consumer groups and their committed offsets.
//! - [`producer`]: the producer (batching, pipelining, idempotence,
//!   `buffer.memory` back-pressure), modelled on the Java client's;
//!   [`partitioner`]: murmur2, the [`Partitioner`] trait, round robin.
//! - [`consumer`]: assign-based consumer; [`group`]: a consumer group member.
//! - [`membership`]: the contract between the consumer and a group member;
//!   [`classic`]: the classic (JoinGroup/SyncGroup) member, with the
//!   client-side partition assignors of [`assignor`].
//! - [`config`]: Kafka-style properties and typed configurations.
//! - [`error`]: the [`ClientError`] type.

pub mod admin;
pub mod assignor;
pub mod classic;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod group;
pub mod group_admin;
pub mod membership;
pub mod partitioner;
pub mod producer;
pub mod protocol;
mod util;

pub use admin::{
    AdminClient, AlterConfigOp, ClusterDescription, ConfigEntry, ConfigResource, ConfigSource,
    CreatedTopic, ListedOffset, NewTopic, OffsetSpec, PartitionDescription, TopicDescription,
    TopicListing,
};
pub use cluster::{BrokerInfo, Cluster, Metadata, PartitionInfo, TopicInfo};
pub use config::{
    Acks, AutoOffsetReset, ClientConfig, CommonConfig, ConsumerConfig, IsolationLevel,
    ProducerConfig,
};
pub use connection::Connection;
pub use consumer::{
    CommitCallback, Consumer, ConsumerRecord, Rebalance, RebalanceListener, StartOffset,
    WakeupHandle,
};
pub use eddy_protocol::records::{Compression, Header, TimestampType};
pub use eddy_protocol::{ErrorCode, Uuid};
pub use error::{ClientError, KafkaError};
pub use group::{ConsumerGroupMember, GroupProtocol};
pub use group_admin::{CommittedOffset, GroupDescription, GroupListing, GroupMemberDescription};
pub use membership::{MemberConfig, MembershipEvent, TopicPartition};
pub use partitioner::{Partitioner, PartitionerChoice, RoundRobinPartitioner};
pub use producer::{DeliveryFuture, Producer, ProducerRecord, RecordMetadata};

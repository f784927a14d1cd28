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
//! - [`consumer`]: the consumer (`assign`, or `subscribe` as a group member);
//!   [`group`]: the KIP-848 group member.
//! - [`membership`]: the contract between the consumer and a group member;
//!   [`classic`]: the classic (JoinGroup/SyncGroup) member, with the
//!   client-side partition assignors of [`assignor`].
//! - [`config`]: Kafka-style properties and typed configurations.
//! - [`error`]: the [`ClientError`] type.
//!
//! ```no_run
//! use eddy_client::{
//!     ClientConfig, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord,
//! };
//!
//! # async fn demo() -> Result<(), eddy_client::ClientError> {
//! let props = ClientConfig::new().set("bootstrap.servers", "127.0.0.1:9092");
//! let producer = Producer::new(ProducerConfig::from_config(&props.clone().set("linger.ms", "5"))?)?;
//! let delivery = producer.send(ProducerRecord::new("orders", "hello").key("k1")).await?;
//! println!("written at offset {}", delivery.await?.offset);
//!
//! let mut consumer = Consumer::new(ConsumerConfig::from_config(
//!     &props.set("group.id", "billing").set("auto.offset.reset", "earliest"),
//! )?)?;
//! consumer.subscribe(["orders"])?; // or subscribe_pattern("orders-.*"), or assign(...)
//! for record in consumer.poll(std::time::Duration::from_secs(1)).await? {
//!     println!("{}:{} {:?}", record.partition, record.offset, record.value);
//! }
//! consumer.commit_sync().await?;
//! consumer.close().await?;
//! # Ok(())
//! # }
//! ```

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

//! Cluster metadata of Eddy.
//!
//! * [`topic_name`]: Kafka's rules for legal topic names.
//! * [`config`]: the definitions of every topic and broker config Eddy knows (names, types,
//!   defaults and broker-level synonyms, exactly as Kafka names them) and their validation.
//! * [`store`]: the metadata store of a single node: topics, their ids, partition counts and
//!   config overrides, dynamic broker configs, persisted atomically in the data directory.
//!
//! Architecture invariant: this crate knows nothing of the network or of the log format; the
//! broker asks it questions and tells it decisions. In the cluster step the store becomes the
//! state machine of a Raft group; its API (apply a change, read an image) is shaped for that.

pub mod config;
pub mod store;
pub mod topic_name;

pub use config::{ConfigError, ConfigKind, ConfigScope, ConfigType, ConfigValue};
pub use store::{MetaError, MetadataStore, TopicId, TopicMeta};
pub use topic_name::{
    is_internal, validate_new_topic_name, validate_topic_name, InvalidTopicName, INTERNAL_TOPICS,
};

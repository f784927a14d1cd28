//! The metadata store of a single node: topics (id, partition count, config overrides) and
//! dynamic broker configs, persisted as one JSON document in `<data-dir>/__cluster_metadata/`.
//!
//! Every change is written to a temporary file, fsynced, renamed over the old file and the
//! directory fsynced, so a crash leaves either the old or the new state, never a mix. The
//! cluster id and node id live in `<data-dir>/meta.properties`, in Kafka's format.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::{validate_topic_configs, ConfigError};
use crate::topic_name::{unify_collision_chars, validate_new_topic_name, InvalidTopicName};

/// A topic's id (Kafka's 128-bit topic UUID).
pub type TopicId = [u8; 16];

/// Kafka's textual form of a UUID: URL-safe base64 without padding (22 characters).
pub fn uuid_to_string(id: &[u8; 16]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// A fresh random id that is neither all zeros nor starts with '-' in its text form (Kafka's rule).
pub fn random_uuid() -> [u8; 16] {
    loop {
        let id: [u8; 16] = rand::random();
        if id != [0; 16] && !uuid_to_string(&id).starts_with('-') {
            return id;
        }
    }
}

/// Errors of the metadata store; the broker maps each to a Kafka error code.
#[derive(Debug, Error)]
pub enum MetaError {
    #[error("I/O error on the metadata store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the metadata file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(transparent)]
    InvalidTopicName(#[from] InvalidTopicName),
    #[error("Topic '{0}' already exists.")]
    TopicExists(String),
    #[error("Topic '{name}' collides with existing topic: {existing}")]
    TopicCollision { name: String, existing: String },
    #[error("This server does not host this topic: {0}")]
    UnknownTopic(String),
    #[error("Number of partitions must be larger than 0.")]
    InvalidPartitionCount,
    #[error(
        "Topic currently has {current} partitions, which is higher than the requested {requested}."
    )]
    PartitionsCannotShrink { current: i32, requested: i32 },
    #[error("Topic already has {0} partitions.")]
    PartitionsUnchanged(i32),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> MetaError + '_ {
    move |source| MetaError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the store knows about a topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: TopicId,
    pub partitions: i32,
    /// Config overrides set on the topic (not the defaults).
    pub configs: BTreeMap<String, String>,
    pub internal: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    /// Bumped on every change: the broker uses it to notice metadata changes.
    epoch: u64,
    topics: BTreeMap<String, TopicMeta>,
    /// Dynamic broker configs set with AlterConfigs.
    broker_configs: BTreeMap<String, String>,
    /// The first producer id not yet handed out (ids are handed out in blocks).
    #[serde(default)]
    next_producer_id: i64,
}

/// The single-node metadata store.
pub struct MetadataStore {
    dir: PathBuf,
    cluster_id: String,
    node_id: i32,
    state: State,
}

const STATE_FILE: &str = "metadata.json";

impl MetadataStore {
    /// Opens (or initialises) the store under `data_dir`.
    pub fn open(data_dir: &Path, node_id: i32) -> Result<MetadataStore, MetaError> {
        let dir = data_dir.join("__cluster_metadata");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let cluster_id = load_or_create_meta_properties(data_dir, node_id)?;
        let path = dir.join(STATE_FILE);
        let state = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| MetaError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(MetaError::Io { path, source: e }),
        };
        Ok(MetadataStore {
            dir,
            cluster_id,
            node_id,
            state,
        })
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// Increases with every change.
    pub fn epoch(&self) -> u64 {
        self.state.epoch
    }

    pub fn topics(&self) -> impl Iterator<Item = &TopicMeta> {
        self.state.topics.values()
    }

    pub fn topic(&self, name: &str) -> Option<&TopicMeta> {
        self.state.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &TopicId) -> Option<&TopicMeta> {
        self.state.topics.values().find(|t| &t.id == id)
    }

    pub fn broker_configs(&self) -> &BTreeMap<String, String> {
        &self.state.broker_configs
    }

    /// Checks everything a CreateTopics would check, without changing anything.
    pub fn check_create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: &BTreeMap<String, String>,
        internal: bool,
    ) -> Result<(), MetaError> {
        if internal {
            crate::topic_name::validate_topic_name(name)?;
        } else {
            validate_new_topic_name(name)?;
        }
        if self.state.topics.contains_key(name) {
            return Err(MetaError::TopicExists(name.to_string()));
        }
        let unified = unify_collision_chars(name);
        if let Some(existing) = self
            .state
            .topics
            .keys()
            .find(|t| unify_collision_chars(t) == unified)
        {
            return Err(MetaError::TopicCollision {
                name: name.to_string(),
                existing: existing.clone(),
            });
        }
        if partitions < 1 {
            return Err(MetaError::InvalidPartitionCount);
        }
        validate_topic_configs(configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        Ok(())
    }

    /// Creates a topic.
    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        internal: bool,
    ) -> Result<TopicMeta, MetaError> {
        self.check_create_topic(name, partitions, &configs, internal)?;
        let topic = TopicMeta {
            name: name.to_string(),
            id: random_uuid(),
            partitions,
            configs,
            internal,
        };
        let mut next = self.state.clone();
        next.topics.insert(name.to_string(), topic.clone());
        self.commit(next)?;
        Ok(topic)
    }

    /// Deletes a topic and returns what it was.
    pub fn delete_topic(&mut self, name: &str) -> Result<TopicMeta, MetaError> {
        let mut next = self.state.clone();
        let topic = next
            .topics
            .remove(name)
            .ok_or_else(|| MetaError::UnknownTopic(name.to_string()))?;
        self.commit(next)?;
        Ok(topic)
    }

    /// Checks a partition count change: it may only grow.
    pub fn check_set_partitions(&self, name: &str, count: i32) -> Result<&TopicMeta, MetaError> {
        let topic = self
            .state
            .topics
            .get(name)
            .ok_or_else(|| MetaError::UnknownTopic(name.to_string()))?;
        if count < topic.partitions {
            return Err(MetaError::PartitionsCannotShrink {
                current: topic.partitions,
                requested: count,
            });
        }
        if count == topic.partitions {
            return Err(MetaError::PartitionsUnchanged(count));
        }
        Ok(topic)
    }

    /// Grows a topic's partition count.
    pub fn set_partitions(&mut self, name: &str, count: i32) -> Result<TopicMeta, MetaError> {
        self.check_set_partitions(name, count)?;
        let mut next = self.state.clone();
        let topic = next
            .topics
            .get_mut(name)
            .ok_or_else(|| MetaError::UnknownTopic(name.to_string()))?;
        topic.partitions = count;
        let topic = topic.clone();
        self.commit(next)?;
        Ok(topic)
    }

    /// Replaces a topic's config overrides (already validated by the caller or here).
    pub fn set_topic_configs(
        &mut self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMeta, MetaError> {
        validate_topic_configs(configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let mut next = self.state.clone();
        let topic = next
            .topics
            .get_mut(name)
            .ok_or_else(|| MetaError::UnknownTopic(name.to_string()))?;
        topic.configs = configs;
        let topic = topic.clone();
        self.commit(next)?;
        Ok(topic)
    }

    /// Replaces the dynamic broker configs.
    pub fn set_broker_configs(
        &mut self,
        configs: BTreeMap<String, String>,
    ) -> Result<(), MetaError> {
        let mut next = self.state.clone();
        next.broker_configs = configs;
        self.commit(next)
    }

    /// Reserves `count` producer ids and returns the first. The reservation is persisted
    /// before it is returned, so an id is never handed out twice, even across a crash.
    pub fn allocate_producer_ids(&mut self, count: i64) -> Result<i64, MetaError> {
        let mut next = self.state.clone();
        let first = next.next_producer_id;
        next.next_producer_id = first.saturating_add(count.max(1));
        self.commit(next)?;
        Ok(first)
    }

    fn commit(&mut self, mut next: State) -> Result<(), MetaError> {
        next.epoch = self.state.epoch + 1;
        let bytes = serde_json::to_vec_pretty(&next).map_err(|e| MetaError::Corrupt {
            path: self.dir.clone(),
            reason: e.to_string(),
        })?;
        write_atomically(&self.dir.join(STATE_FILE), &bytes)?;
        self.state = next;
        Ok(())
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old or the new content.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), MetaError> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(parent) = path.parent() {
        if let Ok(d) = fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

fn load_or_create_meta_properties(data_dir: &Path, node_id: i32) -> Result<String, MetaError> {
    let path = data_dir.join("meta.properties");
    match fs::read_to_string(&path) {
        Ok(text) => {
            let props = parse_properties(&text);
            let cluster_id =
                props
                    .get("cluster.id")
                    .cloned()
                    .ok_or_else(|| MetaError::Corrupt {
                        path: path.clone(),
                        reason: "no cluster.id".into(),
                    })?;
            if let Some(stored) = props.get("node.id").and_then(|v| v.parse::<i32>().ok()) {
                if stored != node_id {
                    return Err(MetaError::Corrupt {
                        path,
                        reason: format!(
                            "this data directory belongs to node.id {stored}, not {node_id}"
                        ),
                    });
                }
            }
            Ok(cluster_id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cluster_id = uuid_to_string(&random_uuid());
            let text = format!(
                "#\n#Written by Eddy\nnode.id={node_id}\nversion=1\ncluster.id={cluster_id}\n"
            );
            write_atomically(&path, text.as_bytes())?;
            Ok(cluster_id)
        }
        Err(e) => Err(MetaError::Io { path, source: e }),
    }
}

/// Parses Java-style `.properties` text: `key=value` or `key: value` lines, `#`/`!` comments.
/// (Line continuations and escapes are not supported.)
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let split = line.find(['=', ':']);
        let (k, v) = match split {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, ""),
        };
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_persist_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = MetadataStore::open(dir.path(), 1).unwrap();
        let cluster = s.cluster_id().to_string();
        assert_eq!(cluster.len(), 22);
        let mut cfg = BTreeMap::new();
        cfg.insert("retention.ms".to_string(), "1000".to_string());
        let t = s.create_topic("orders", 3, cfg.clone(), false).unwrap();
        assert!(matches!(
            s.create_topic("orders", 1, BTreeMap::new(), false),
            Err(MetaError::TopicExists(_))
        ));
        assert!(s.create_topic("ord.ers", 1, BTreeMap::new(), false).is_ok());
        assert!(matches!(
            s.create_topic("ord_ers", 1, BTreeMap::new(), false),
            Err(MetaError::TopicCollision { .. })
        ));
        assert!(matches!(
            s.set_partitions("orders", 2),
            Err(MetaError::PartitionsCannotShrink { .. })
        ));
        s.set_partitions("orders", 5).unwrap();
        drop(s);
        let s = MetadataStore::open(dir.path(), 1).unwrap();
        assert_eq!(s.cluster_id(), cluster);
        let t2 = s.topic("orders").unwrap();
        assert_eq!(t2.id, t.id);
        assert_eq!(t2.partitions, 5);
        assert_eq!(t2.configs, cfg);
        assert!(
            MetadataStore::open(dir.path(), 2).is_err(),
            "node id mismatch must be refused"
        );
    }

    #[test]
    fn bad_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = MetadataStore::open(dir.path(), 1).unwrap();
        assert!(matches!(
            s.create_topic("a/b", 1, BTreeMap::new(), false),
            Err(MetaError::InvalidTopicName(_))
        ));
        assert!(matches!(
            s.create_topic("__consumer_offsets", 1, BTreeMap::new(), false),
            Err(MetaError::InvalidTopicName(_))
        ));
        assert!(s
            .create_topic("__consumer_offsets", 1, BTreeMap::new(), true)
            .is_ok());
        assert!(matches!(
            s.create_topic("t", 0, BTreeMap::new(), false),
            Err(MetaError::InvalidPartitionCount)
        ));
        let mut bad = BTreeMap::new();
        bad.insert("retention.ms".into(), "soon".into());
        assert!(matches!(
            s.create_topic("t", 1, bad, false),
            Err(MetaError::Config(_))
        ));
        assert!(s.topic("t").is_none());
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        drop(MetadataStore::open(dir.path(), 1).unwrap());
        fs::write(
            dir.path().join("__cluster_metadata").join(STATE_FILE),
            b"{not json",
        )
        .unwrap();
        assert!(matches!(
            MetadataStore::open(dir.path(), 1),
            Err(MetaError::Corrupt { .. })
        ));
    }

    #[test]
    fn properties() {
        let p = parse_properties("# c\nnum.partitions=3\n  log.dirs : /tmp/x \n!x\nflag\n");
        assert_eq!(p.get("num.partitions").map(String::as_str), Some("3"));
        assert_eq!(p.get("log.dirs").map(String::as_str), Some("/tmp/x"));
        assert_eq!(p.get("flag").map(String::as_str), Some(""));
    }
}

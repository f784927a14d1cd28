//! The broker's shared state: metadata store, hosted topics and partitions, effective configs.
//!
//! Locking: `meta` (a mutex) serialises every metadata change and is held while the topic map
//! is updated, so the map always matches the store. The topic map is behind a read-write lock
//! that the hot paths (produce, fetch) only read, and only for a lookup.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use eddy_log::{Log, LogConfig, LogError};
use eddy_meta::config::{self as cfg, BrokerLayers, ConfigScope};
use eddy_meta::store::{MetaError, MetadataStore, TopicMeta};
use eddy_protocol::codec::Uuid;
use parking_lot::{Mutex, RwLock};
use thiserror::Error;
use tokio::sync::Notify;

use crate::config::BrokerConfig;
use crate::coordinator::GroupCoordinator;
use crate::partition::{Partition, PartitionSettings, TopicState};

/// Why the broker could not start or do a metadata operation.
#[derive(Debug, Error)]
pub enum BrokerError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("partition {topic}-{partition}: {source}")]
    Log {
        topic: String,
        partition: i32,
        source: LogError,
    },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Default)]
struct Topics {
    by_name: HashMap<String, Arc<TopicState>>,
    by_id: HashMap<Uuid, Arc<TopicState>>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The broker.
pub struct Broker {
    pub config: BrokerConfig,
    /// The address clients are told to connect to (the bound address once listening).
    advertised: RwLock<(String, i32)>,
    meta: Mutex<MetadataStore>,
    topics: RwLock<Topics>,
    /// Woken after every append, so that long-polling fetches re-check.
    pub data_appended: Notify,
    /// Consumer groups and committed offsets.
    coordinator: GroupCoordinator,
    /// Producer ids reserved in the metadata store and not yet handed out: (next, end).
    producer_ids: Mutex<(i64, i64)>,
}

/// Producer ids are reserved in the metadata store in blocks of this many (Kafka: 1000).
const PRODUCER_ID_BLOCK: i64 = 1000;

impl Broker {
    /// Opens the data directory: metadata store, then every partition's log (recovering it).
    pub fn open(config: BrokerConfig) -> Result<Arc<Broker>, BrokerError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| BrokerError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let meta = MetadataStore::open(&config.data_dir, config.node_id)?;
        remove_leftover_deletions(&config.data_dir);
        let host = config
            .advertised_host
            .clone()
            .unwrap_or_else(|| config.listen.ip().to_string());
        let broker = Arc::new(Broker {
            advertised: RwLock::new((host, i32::from(config.listen.port()))),
            config,
            meta: Mutex::new(meta),
            topics: RwLock::new(Topics::default()),
            data_appended: Notify::new(),
            coordinator: GroupCoordinator::new(),
            producer_ids: Mutex::new((0, 0)),
        });
        let metas: Vec<TopicMeta> = broker.meta.lock().topics().cloned().collect();
        for t in metas {
            broker.install_topic(&t, 0)?;
        }
        broker.coordinator.load(&broker);
        broker.coordinator.ensure_ticker(&broker);
        Ok(broker)
    }

    /// The group coordinator (consumer groups and committed offsets).
    pub fn coordinator(&self) -> &GroupCoordinator {
        &self.coordinator
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    pub fn cluster_id(&self) -> String {
        self.meta.lock().cluster_id().to_string()
    }

    pub fn advertised(&self) -> (String, i32) {
        self.advertised.read().clone()
    }

    pub fn set_advertised_port(&self, port: u16) {
        self.advertised.write().1 = i32::from(port);
    }

    // ---- configs -------------------------------------------------------------------------

    /// The effective value of a broker config (dynamic, static, default).
    pub fn broker_value(&self, name: &str) -> Option<String> {
        let meta = self.meta.lock();
        let layers = BrokerLayers {
            dynamic: Some(meta.broker_configs()),
            static_props: Some(&self.config.props),
        };
        cfg::find(ConfigScope::Broker, name)
            .and_then(|d| cfg::resolve_broker_config(d, &layers).value)
    }

    pub fn broker_i64(&self, name: &str, fallback: i64) -> i64 {
        self.broker_value(name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(fallback)
    }

    pub fn broker_bool(&self, name: &str, fallback: bool) -> bool {
        self.broker_value(name)
            .map(|v| v.trim().eq_ignore_ascii_case("true"))
            .unwrap_or(fallback)
    }

    /// Runs `f` with the broker config layers (dynamic and static).
    pub fn with_layers<R>(&self, f: impl FnOnce(&BrokerLayers<'_>, &MetadataStore) -> R) -> R {
        let meta = self.meta.lock();
        let layers = BrokerLayers {
            dynamic: Some(meta.broker_configs()),
            static_props: Some(&self.config.props),
        };
        f(&layers, &meta)
    }

    fn topic_configs_of(
        &self,
        overrides: &BTreeMap<String, String>,
        meta: &MetadataStore,
    ) -> (LogConfig, PartitionSettings) {
        let layers = BrokerLayers {
            dynamic: Some(meta.broker_configs()),
            static_props: Some(&self.config.props),
        };
        let get = |name: &str| cfg::topic_value(name, overrides, &layers).unwrap_or_default();
        let int = |name: &str, d: i64| get(name).trim().parse::<i64>().unwrap_or(d);
        let mut log = LogConfig::default();
        log.segment_bytes = int("segment.bytes", log.segment_bytes as i64).max(14) as u64;
        log.segment_ms = int("segment.ms", log.segment_ms);
        log.segment_index_bytes =
            int("segment.index.bytes", log.segment_index_bytes as i64).max(8) as u64;
        log.index_interval_bytes =
            int("index.interval.bytes", log.index_interval_bytes as i64).max(0) as u64;
        log.retention_ms = int("retention.ms", log.retention_ms);
        log.retention_bytes = int("retention.bytes", log.retention_bytes);
        // Retention deletes segments only when the policy includes `delete` (Kafka's rule, so
        // a compact-only topic such as `__consumer_offsets` keeps them): `Log` checks that.
        log.cleanup_policy = eddy_log::CleanupPolicy::parse(&get("cleanup.policy"));
        log.min_cleanable_dirty_ratio = get("min.cleanable.dirty.ratio")
            .trim()
            .parse::<f64>()
            .unwrap_or(log.min_cleanable_dirty_ratio);
        log.min_compaction_lag_ms = int("min.compaction.lag.ms", log.min_compaction_lag_ms);
        log.max_compaction_lag_ms = int("max.compaction.lag.ms", log.max_compaction_lag_ms);
        log.delete_retention_ms = int("delete.retention.ms", log.delete_retention_ms);
        log.flush_messages = int("flush.messages", i64::MAX).max(1) as u64;
        log.flush_ms = int("flush.ms", log.flush_ms);
        log.file_delete_delay_ms = int("file.delete.delay.ms", log.file_delete_delay_ms);
        log.max_message_bytes =
            int("max.message.bytes", log.max_message_bytes as i64).max(0) as usize;
        let settings = PartitionSettings {
            max_message_bytes: log.max_message_bytes,
            log_append_time: get("message.timestamp.type") == "LogAppendTime",
            timestamp_before_max_ms: int("message.timestamp.before.max.ms", i64::MAX),
            timestamp_after_max_ms: int("message.timestamp.after.max.ms", i64::MAX),
            min_insync_replicas: int("min.insync.replicas", 1) as i32,
            compacted: log.cleanup_policy.compact,
        };
        (log, settings)
    }

    fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.config.data_dir.join(format!("{topic}-{index}"))
    }

    /// Opens the logs of partitions `from..` of a topic and publishes the topic in the map.
    fn install_topic(&self, t: &TopicMeta, from: i32) -> Result<(), BrokerError> {
        let (log_config, settings) = {
            let meta = self.meta.lock();
            self.topic_configs_of(&t.configs, &meta)
        };
        self.install_topic_with(t, from, log_config, settings)
    }

    fn install_topic_with(
        &self,
        t: &TopicMeta,
        from: i32,
        log_config: LogConfig,
        settings: PartitionSettings,
    ) -> Result<(), BrokerError> {
        let id = Uuid(t.id);
        let name: Arc<str> = Arc::from(t.name.as_str());
        let mut partitions: Vec<Arc<Partition>> = self
            .topics
            .read()
            .by_name
            .get(&t.name)
            .map(|s| s.partitions.clone())
            .unwrap_or_default();
        partitions.truncate(from.max(0) as usize);
        for index in from..t.partitions {
            let dir = self.partition_dir(&t.name, index);
            let log = Log::open(&dir, log_config.clone()).map_err(|source| BrokerError::Log {
                topic: t.name.clone(),
                partition: index,
                source,
            })?;
            partitions.push(Arc::new(Partition::new(
                name.clone(),
                index,
                id,
                log,
                settings.clone(),
            )));
        }
        let state = Arc::new(TopicState {
            name,
            id,
            internal: t.internal,
            partitions,
        });
        let mut topics = self.topics.write();
        topics.by_name.insert(t.name.clone(), state.clone());
        topics.by_id.insert(id, state);
        Ok(())
    }

    // ---- lookups ---------------------------------------------------------------------------

    pub fn topic(&self, name: &str) -> Option<Arc<TopicState>> {
        self.topics.read().by_name.get(name).cloned()
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<Arc<TopicState>> {
        self.topics.read().by_id.get(id).cloned()
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.topics
            .read()
            .by_name
            .get(topic)
            .and_then(|t| t.partition(index).cloned())
    }

    /// Every hosted topic, sorted by name.
    pub fn all_topics(&self) -> Vec<Arc<TopicState>> {
        let mut v: Vec<_> = self.topics.read().by_name.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The stored metadata of a topic (config overrides and all).
    pub fn topic_meta(&self, name: &str) -> Option<TopicMeta> {
        self.meta.lock().topic(name).cloned()
    }

    // ---- metadata changes ------------------------------------------------------------------

    /// Creates a topic (or only checks it when `validate_only`). `partitions`/configs as given.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
        internal: bool,
    ) -> Result<TopicMeta, BrokerError> {
        let mut meta = self.meta.lock();
        if validate_only {
            meta.check_create_topic(name, partitions, &configs, internal)?;
            return Ok(TopicMeta {
                name: name.to_string(),
                id: [0; 16],
                partitions,
                configs,
                internal,
            });
        }
        let t = meta.create_topic(name, partitions, configs, internal)?;
        let (log_config, settings) = self.topic_configs_of(&t.configs, &meta);
        // Stale directories of an earlier topic of the same name are removed first.
        for index in 0..t.partitions {
            let dir = self.partition_dir(name, index);
            if dir.exists() {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        self.install_topic_with(&t, 0, log_config, settings)?;
        tracing::info!(topic = name, partitions, "created topic");
        Ok(t)
    }

    /// Creates a topic on first use (Metadata or Produce) with the broker's defaults.
    pub fn auto_create_topic(&self, name: &str) -> Result<TopicMeta, BrokerError> {
        let partitions = self
            .broker_i64("num.partitions", 1)
            .clamp(1, i32::MAX as i64) as i32;
        self.create_topic(name, partitions, BTreeMap::new(), false, false)
    }

    /// Deletes a topic: removes it from the store and the map, then its files.
    pub fn delete_topic(&self, name: &str) -> Result<TopicMeta, BrokerError> {
        let mut meta = self.meta.lock();
        let t = meta.delete_topic(name)?;
        let state = {
            let mut topics = self.topics.write();
            let s = topics.by_name.remove(name);
            topics.by_id.remove(&Uuid(t.id));
            s
        };
        drop(meta);
        if let Some(state) = state {
            // Directories are renamed to `<topic>-<p>.<id>-delete` now (so a new topic of the
            // same name starts clean) and removed in the background; a reader still holding
            // the partition keeps its open file handles until it is done.
            let doomed = rename_for_deletion(
                &self.config.data_dir,
                &t.name,
                state.partitions.len(),
                &t.id,
            );
            drop(state);
            tokio::task::spawn_blocking(move || remove_dirs(doomed));
        }
        tracing::info!(topic = name, "deleted topic");
        self.coordinator.remove_offsets_of_topic(self, name);
        Ok(t)
    }

    /// Grows a topic to `count` partitions (or only checks).
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<TopicMeta, BrokerError> {
        let mut meta = self.meta.lock();
        if validate_only {
            return Ok(meta.check_set_partitions(name, count)?.clone());
        }
        let old = meta.check_set_partitions(name, count)?.partitions;
        let t = meta.set_partitions(name, count)?;
        let (log_config, settings) = self.topic_configs_of(&t.configs, &meta);
        self.install_topic_with(&t, old, log_config, settings)?;
        Ok(t)
    }

    /// Replaces a topic's config overrides and reconfigures its partitions.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        let mut meta = self.meta.lock();
        if meta.topic(name).is_none() {
            return Err(MetaError::UnknownTopic(name.to_string()).into());
        }
        cfg::validate_topic_configs(configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(MetaError::from)?;
        if validate_only {
            return Ok(());
        }
        let t = meta.set_topic_configs(name, configs)?;
        let (log_config, settings) = self.topic_configs_of(&t.configs, &meta);
        drop(meta);
        if let Some(state) = self.topic(name) {
            for p in &state.partitions {
                p.reconfigure(log_config.clone(), settings.clone());
            }
        }
        Ok(())
    }

    /// Replaces the dynamic broker configs and reconfigures every partition.
    pub fn set_broker_configs(
        &self,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        let mut meta = self.meta.lock();
        for (k, v) in &configs {
            let def = cfg::find(ConfigScope::Broker, k).ok_or_else(|| {
                MetaError::Config(cfg::ConfigError::Unknown {
                    scope: "broker",
                    name: k.clone(),
                })
            })?;
            cfg::validate_value(def, v).map_err(MetaError::from)?;
        }
        if validate_only {
            return Ok(());
        }
        meta.set_broker_configs(configs)?;
        let topics: Vec<TopicMeta> = meta.topics().cloned().collect();
        for t in topics {
            let (log_config, settings) = self.topic_configs_of(&t.configs, &meta);
            if let Some(state) = self.topics.read().by_name.get(&t.name) {
                for p in &state.partitions {
                    p.reconfigure(log_config.clone(), settings.clone());
                }
            }
        }
        Ok(())
    }

    /// Hands out a fresh producer id (reserving a new block in the store when needed).
    pub fn allocate_producer_id(&self) -> Result<i64, BrokerError> {
        let mut ids = self.producer_ids.lock();
        if ids.0 >= ids.1 {
            let first = self.meta.lock().allocate_producer_ids(PRODUCER_ID_BLOCK)?;
            *ids = (first, first + PRODUCER_ID_BLOCK);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    /// Whether `id` is one this broker has handed out.
    pub fn issued_producer_id(&self, id: i64) -> bool {
        id >= 0 && id < self.producer_ids.lock().0
    }

    // ---- housekeeping ----------------------------------------------------------------------

    fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .by_name
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    /// Deletes segments past retention on every partition.
    pub fn apply_retention(&self) {
        let now = now_ms();
        for p in self.all_partitions() {
            match p.log.write().apply_retention(now) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(topic = %p.topic, partition = p.index, segments = n, "retention deleted segments")
                }
                Err(e) => {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "retention failed")
                }
            }
        }
    }

    /// One round of the log cleaner: cleans the compacted partition that needs it most (past
    /// `max.compaction.lag.ms` first, then the highest dirty ratio above
    /// `min.cleanable.dirty.ratio`). The segments are rewritten without the partition's lock;
    /// only the plan (read lock) and the swap (write lock) take it. Returns whether a log was
    /// cleaned.
    pub fn clean_filthiest_log(&self, cleaner: &mut eddy_log::Cleaner) -> bool {
        let now = now_ms();
        let mut best: Option<(Arc<Partition>, eddy_log::CleanPlan)> = None;
        for p in self.all_partitions() {
            let Some(plan) = p.log.read().plan_cleaning(now, false) else {
                continue;
            };
            let rank = (plan.need_compaction_now(), plan.dirty_ratio());
            if best
                .as_ref()
                .is_none_or(|(_, b)| rank > (b.need_compaction_now(), b.dirty_ratio()))
            {
                best = Some((p, plan));
            }
        }
        let Some((p, plan)) = best else {
            return false;
        };
        let result = cleaner
            .clean(&plan)
            .and_then(|done| p.log.write().finish_cleaning(done));
        match result {
            Ok(swapped) => swapped,
            Err(eddy_log::LogError::CleaningAborted(why)) => {
                tracing::debug!(topic = %p.topic, partition = p.index, why, "log cleaning aborted");
                false
            }
            Err(e) => {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "log cleaning failed");
                false
            }
        }
    }

    /// Time-based rolls and flushes on every partition.
    pub fn tick(&self) {
        let now = now_ms();
        for p in self.all_partitions() {
            if let Err(e) = p.log.write().tick(now) {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "log housekeeping failed");
            }
        }
    }

    /// Flushes every log and writes its recovery point (clean shutdown).
    pub fn close(&self) {
        for p in self.all_partitions() {
            if let Err(e) = p.log.write().flush() {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "flush at shutdown failed");
            }
        }
    }
}

fn rename_for_deletion(data_dir: &Path, topic: &str, count: usize, id: &[u8; 16]) -> Vec<PathBuf> {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let mut doomed = Vec::new();
    for index in 0..count {
        let dir = data_dir.join(format!("{topic}-{index}"));
        let target = data_dir.join(format!("{topic}-{index}.{hex}-delete"));
        match std::fs::rename(&dir, &target) {
            Ok(()) => doomed.push(target),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "could not rename a deleted partition")
            }
        }
    }
    doomed
}

fn remove_dirs(dirs: Vec<PathBuf>) {
    for dir in dirs {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove a deleted partition");
        }
    }
}

/// Removes directories left by deletions that a crash interrupted.
fn remove_leftover_deletions(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    let doomed: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with("-delete"))
        })
        .collect();
    remove_dirs(doomed);
}

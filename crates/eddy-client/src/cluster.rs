//! The cluster as the client sees it: bootstrap, a metadata cache (brokers,
//! topics, partitions, leaders) and a pool of one connection per broker.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_protocol::messages::metadata_request::MetadataRequestTopic;
use eddy_protocol::messages::{MetadataRequest, MetadataResponse};
use eddy_protocol::{ErrorCode, Uuid};
use parking_lot::{Mutex, RwLock};

use crate::config::CommonConfig;
use crate::connection::{Connection, ConnectionOptions};
use crate::error::{ClientError, KafkaError};

/// A broker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port`, with IPv6 hosts in brackets.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// The leader's node id; `None` while the partition has no leader.
    pub leader: Option<i32>,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
    /// The partition-level error of the metadata response, if any.
    pub error: Option<ErrorCode>,
}

/// A topic and its partitions (sorted by partition index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    /// Zero when the broker does not report topic ids (Metadata < v10).
    pub topic_id: Uuid,
    pub is_internal: bool,
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    pub fn partition(&self, p: i32) -> Option<&PartitionInfo> {
        self.partitions
            .binary_search_by_key(&p, |x| x.partition)
            .ok()
            .map(|i| &self.partitions[i])
    }

    /// Partitions that currently have a leader.
    pub fn available_partitions(&self) -> impl Iterator<Item = &PartitionInfo> {
        self.partitions.iter().filter(|p| p.leader.is_some())
    }
}

/// A snapshot of what the client knows of the cluster.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    pub cluster_id: Option<String>,
    pub controller_id: Option<i32>,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: HashMap<String, Arc<TopicInfo>>,
}

/// The result of one Metadata request.
#[derive(Debug, Clone)]
pub struct MetadataResult {
    /// The version of the Metadata request that was used.
    pub version: i16,
    pub cluster_id: Option<String>,
    pub controller_id: Option<i32>,
    pub brokers: Vec<BrokerInfo>,
    /// Every topic of the response, with its topic-level error.
    pub topics: Vec<(String, Result<Arc<TopicInfo>, KafkaError>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum NodeKey {
    Bootstrap(usize),
    Node(i32),
    /// A second connection to a broker for the consumer's Fetch requests,
    /// so long polls never delay metadata, offset or group requests (a
    /// broker answers one request per connection at a time).
    Fetch(i32),
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

struct State {
    meta: Arc<Metadata>,
    /// When each cached topic was last fetched.
    fetched: HashMap<String, Instant>,
    /// Topics whose metadata is known to be stale.
    stale: HashSet<String>,
}

/// Shared cluster state of a client. Create with [`Cluster::new`]; clone the `Arc`.
pub struct Cluster {
    config: CommonConfig,
    opts: ConnectionOptions,
    state: RwLock<State>,
    pool: Mutex<HashMap<NodeKey, Slot>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("bootstrap", &self.config.bootstrap_servers)
            .finish()
    }
}

impl Cluster {
    /// A cluster handle; nothing is connected until the first request.
    pub fn new(config: CommonConfig) -> Result<Arc<Cluster>, ClientError> {
        config.validate()?;
        Ok(Arc::new(Cluster {
            opts: ConnectionOptions::from(&config),
            config,
            state: RwLock::new(State {
                meta: Arc::new(Metadata::default()),
                fetched: HashMap::new(),
                stale: HashSet::new(),
            }),
            pool: Mutex::new(HashMap::new()),
        }))
    }

    pub fn config(&self) -> &CommonConfig {
        &self.config
    }

    /// What the client currently knows (may be empty before the first request).
    pub fn metadata(&self) -> Arc<Metadata> {
        self.state.read().meta.clone()
    }

    /// Marks a topic's metadata stale: the next lookup fetches it again.
    pub fn invalidate(&self, topic: &str) {
        self.state.write().stale.insert(topic.to_string());
    }

    fn slot(&self, key: NodeKey) -> Slot {
        self.pool.lock().entry(key).or_default().clone()
    }

    async fn connect_slot(&self, key: NodeKey, addr: &str) -> Result<Arc<Connection>, ClientError> {
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref() {
            if c.is_open() {
                return Ok(c.clone());
            }
        }
        *guard = None;
        let conn = Arc::new(Connection::connect(addr, self.opts.clone()).await?);
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// An open connection, if the pool has one, without connecting.
    fn open_connection(&self) -> Option<Arc<Connection>> {
        let slots: Vec<(NodeKey, Slot)> = self
            .pool
            .lock()
            .iter()
            .map(|(k, s)| (*k, s.clone()))
            .collect();
        // Prefer broker connections over bootstrap ones.
        let mut best: Option<(bool, Arc<Connection>)> = None;
        for (k, s) in slots {
            if matches!(k, NodeKey::Fetch(_)) {
                continue;
            }
            if let Ok(g) = s.try_lock() {
                if let Some(c) = g.as_ref().filter(|c| c.is_open()) {
                    let is_node = matches!(k, NodeKey::Node(_));
                    let better = match &best {
                        None => true,
                        Some((n, _)) => is_node && !n,
                    };
                    if better {
                        best = Some((is_node, c.clone()));
                    }
                }
            }
        }
        best.map(|(_, c)| c)
    }

    /// A connection to any broker: an open one, else the known brokers, else
    /// the bootstrap servers, in order.
    pub async fn any_connection(&self) -> Result<Arc<Connection>, ClientError> {
        if let Some(c) = self.open_connection() {
            return Ok(c);
        }
        let mut candidates: Vec<(NodeKey, String)> = self
            .metadata()
            .brokers
            .values()
            .map(|b| (NodeKey::Node(b.node_id), b.addr()))
            .collect();
        candidates.extend(
            self.config
                .bootstrap_servers
                .iter()
                .enumerate()
                .map(|(i, a)| (NodeKey::Bootstrap(i), a.clone())),
        );
        let mut errors = Vec::new();
        for (key, addr) in candidates {
            match self.connect_slot(key, &addr).await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "connection failed");
                    errors.push(e);
                }
            }
        }
        match errors.len() {
            0 => Err(ClientError::NoBrokerAvailable(
                "no broker known".to_string(),
            )),
            1 => Err(errors.remove(0)),
            _ => Err(ClientError::NoBrokerAvailable(
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
        }
    }

    /// A connection to broker `node_id` (refreshing metadata if the broker is unknown).
    pub async fn connection(&self, node_id: i32) -> Result<Arc<Connection>, ClientError> {
        let broker = self.broker(node_id).await?;
        self.connect_slot(NodeKey::Node(node_id), &broker.addr())
            .await
    }

    /// The connection to broker `node_id` reserved for Fetch requests.
    pub async fn fetch_connection(&self, node_id: i32) -> Result<Arc<Connection>, ClientError> {
        let broker = self.broker(node_id).await?;
        self.connect_slot(NodeKey::Fetch(node_id), &broker.addr())
            .await
    }

    /// Broker `node_id` from metadata (refreshing it if the broker is unknown).
    async fn broker(&self, node_id: i32) -> Result<BrokerInfo, ClientError> {
        Ok(match self.metadata().brokers.get(&node_id) {
            Some(b) => b.clone(),
            None => {
                self.refresh(Some(&[]), false).await?;
                self.metadata()
                    .brokers
                    .get(&node_id)
                    .cloned()
                    .ok_or_else(|| {
                        ClientError::Kafka(
                            KafkaError::new(ErrorCode::BrokerNotAvailable).with_message(Some(
                                format!("broker {node_id} is not in the cluster metadata"),
                            )),
                        )
                    })?
            }
        })
    }

    /// A connection to the controller reported by metadata (any broker if none).
    pub async fn controller_connection(&self) -> Result<Arc<Connection>, ClientError> {
        let meta = self.metadata();
        let controller = match meta.controller_id {
            Some(id) if meta.brokers.contains_key(&id) => Some(id),
            _ => {
                self.refresh(Some(&[]), false).await?;
                self.metadata().controller_id
            }
        };
        match controller {
            Some(id) if id >= 0 => self.connection(id).await,
            _ => self.any_connection().await,
        }
    }

    /// Sends a Metadata request for `topics` (`None`: all topics) to any
    /// broker and merges the answer into the cache.
    pub async fn refresh(
        &self,
        topics: Option<&[String]>,
        allow_auto_topic_creation: bool,
    ) -> Result<MetadataResult, ClientError> {
        let conn = self.any_connection().await?;
        let version = conn.version::<MetadataRequest>()?;
        let req = MetadataRequest {
            topics: topics.map(|t| {
                t.iter()
                    .map(|name| MetadataRequestTopic {
                        topic_id: Uuid::ZERO,
                        name: Some(name.clone()),
                    })
                    .collect()
            }),
            allow_auto_topic_creation,
            include_cluster_authorized_operations: false,
            include_topic_authorized_operations: false,
        };
        let resp = match conn.send_version(&req, version).await {
            Ok(r) => r,
            Err(e) => return Err(e),
        };
        let result = parse_metadata(version, resp);
        self.merge(&result, topics.is_none());
        Ok(result)
    }

    pub(crate) fn merge(&self, r: &MetadataResult, all_topics: bool) {
        let mut st = self.state.write();
        let mut meta = (*st.meta).clone();
        meta.cluster_id = r.cluster_id.clone();
        meta.controller_id = r.controller_id;
        meta.brokers = r.brokers.iter().map(|b| (b.node_id, b.clone())).collect();
        if all_topics {
            meta.topics.clear();
            st.fetched.clear();
        }
        let now = Instant::now();
        for (name, t) in &r.topics {
            st.stale.remove(name);
            match t {
                Ok(info) => {
                    meta.topics.insert(name.clone(), info.clone());
                    st.fetched.insert(name.clone(), now);
                }
                Err(_) => {
                    meta.topics.remove(name);
                    st.fetched.remove(name);
                }
            }
        }
        st.meta = Arc::new(meta);
        drop(st);
        self.adopt_bootstrap_connections(&r.brokers);
    }

    /// A bootstrap connection whose address is a broker's becomes that
    /// broker's connection, so a single-broker cluster uses one socket.
    fn adopt_bootstrap_connections(&self, brokers: &[BrokerInfo]) {
        let mut pool = self.pool.lock();
        for (i, addr) in self.config.bootstrap_servers.iter().enumerate() {
            let Some(b) = brokers.iter().find(|b| &b.addr() == addr) else {
                continue;
            };
            let node = NodeKey::Node(b.node_id);
            let node_has_conn = pool
                .get(&node)
                .and_then(|s| {
                    s.try_lock()
                        .ok()
                        .map(|g| g.as_ref().is_some_and(|c| c.is_open()))
                })
                .unwrap_or(true);
            if node_has_conn {
                continue;
            }
            if let Some(slot) = pool.remove(&NodeKey::Bootstrap(i)) {
                pool.insert(node, slot);
            }
        }
    }

    /// The metadata of `topic`: cached unless stale or older than
    /// `metadata.max.age.ms`, else fetched. A topic-level error (e.g. the
    /// topic does not exist) is returned as a [`KafkaError`] for the topic.
    pub async fn topic(
        &self,
        topic: &str,
        allow_auto_topic_creation: bool,
    ) -> Result<Arc<TopicInfo>, ClientError> {
        if let Some(t) = self.cached_topic(topic) {
            return Ok(t);
        }
        let names = [topic.to_string()];
        let r = self
            .refresh(Some(&names), allow_auto_topic_creation)
            .await?;
        match r.topics.into_iter().find(|(n, _)| n == topic) {
            Some((_, res)) => res.map_err(ClientError::from),
            None => Err(ClientError::Kafka(
                KafkaError::new(ErrorCode::UnknownTopicOrPartition).with_topic(topic),
            )),
        }
    }

    /// The cached metadata of `topic` if fresh.
    pub fn cached_topic(&self, topic: &str) -> Option<Arc<TopicInfo>> {
        let st = self.state.read();
        if st.stale.contains(topic) {
            return None;
        }
        let fresh = st
            .fetched
            .get(topic)
            .is_some_and(|t| t.elapsed() < self.config.metadata_max_age);
        if !fresh {
            return None;
        }
        st.meta.topics.get(topic).cloned()
    }

    /// Like [`Cluster::topic`] but waits (up to `timeout`) while the topic has
    /// a retriable error (e.g. LEADER_NOT_AVAILABLE right after creation) or
    /// partitions without a leader.
    pub async fn topic_with_leaders(
        &self,
        topic: &str,
        allow_auto_topic_creation: bool,
        timeout: Duration,
    ) -> Result<Arc<TopicInfo>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let res = self.topic(topic, allow_auto_topic_creation).await;
            let retry = match &res {
                Ok(t) => t.partitions.is_empty() || t.partitions.iter().any(|p| p.leader.is_none()),
                Err(ClientError::Kafka(k)) => {
                    k.is_retriable() && k.code != ErrorCode::UnknownTopicOrPartition
                }
                Err(e) => e.is_retriable(),
            };
            if !retry || Instant::now() >= deadline {
                return res;
            }
            self.invalidate(topic);
            tokio::time::sleep(self.config.retry_backoff).await;
        }
    }
}

fn parse_metadata(version: i16, resp: MetadataResponse) -> MetadataResult {
    let brokers = resp
        .brokers
        .into_iter()
        .map(|b| BrokerInfo {
            node_id: b.node_id,
            host: b.host,
            port: b.port,
            rack: b.rack,
        })
        .collect();
    let topics = resp
        .topics
        .into_iter()
        .filter_map(|t| {
            let name = t.name?;
            if t.error_code != 0 {
                let err = KafkaError::new(ErrorCode::from_code_or_unknown(t.error_code))
                    .with_topic(&name);
                return Some((name, Err(err)));
            }
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .into_iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: (p.leader_id >= 0).then_some(p.leader_id),
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes,
                    isr: p.isr_nodes,
                    offline_replicas: p.offline_replicas,
                    error: (p.error_code != 0)
                        .then(|| ErrorCode::from_code_or_unknown(p.error_code)),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            let info = TopicInfo {
                name: name.clone(),
                topic_id: t.topic_id,
                is_internal: t.is_internal,
                partitions,
            };
            Some((name, Ok(Arc::new(info))))
        })
        .collect();
    MetadataResult {
        version,
        cluster_id: resp.cluster_id,
        controller_id: (resp.controller_id >= 0).then_some(resp.controller_id),
        brokers,
        topics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };

    #[test]
    fn metadata_parsing() {
        let resp = MetadataResponse {
            cluster_id: Some("c1".into()),
            controller_id: 2,
            brokers: vec![MetadataResponseBroker {
                node_id: 2,
                host: "::1".into(),
                port: 9092,
                rack: None,
            }],
            topics: vec![
                MetadataResponseTopic {
                    name: Some("t".into()),
                    partitions: vec![
                        MetadataResponsePartition {
                            partition_index: 1,
                            leader_id: -1,
                            ..Default::default()
                        },
                        MetadataResponsePartition {
                            partition_index: 0,
                            leader_id: 2,
                            replica_nodes: vec![2],
                            isr_nodes: vec![2],
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
                MetadataResponseTopic {
                    name: Some("missing".into()),
                    error_code: 3,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let r = parse_metadata(12, resp);
        assert_eq!(r.controller_id, Some(2));
        assert_eq!(r.brokers[0].addr(), "[::1]:9092");
        let t = r.topics[0].1.as_ref().unwrap();
        assert_eq!(
            t.partitions.iter().map(|p| p.partition).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(t.partition(0).unwrap().leader, Some(2));
        assert_eq!(t.partition(1).unwrap().leader, None);
        assert_eq!(t.available_partitions().count(), 1);
        let e = r.topics[1].1.as_ref().unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownTopicOrPartition);
        assert_eq!(e.topic.as_deref(), Some("missing"));
    }

    #[test]
    fn cache_merge_and_staleness() {
        let cluster = Cluster::new(CommonConfig::new("127.0.0.1:9")).unwrap();
        let info = Arc::new(TopicInfo {
            name: "a".into(),
            topic_id: Uuid::ZERO,
            is_internal: false,
            partitions: vec![],
        });
        let r = MetadataResult {
            version: 12,
            cluster_id: None,
            controller_id: Some(1),
            brokers: vec![],
            topics: vec![("a".into(), Ok(info))],
        };
        cluster.merge(&r, false);
        assert!(cluster.cached_topic("a").is_some());
        cluster.invalidate("a");
        assert!(cluster.cached_topic("a").is_none());
        cluster.merge(&r, false);
        assert!(cluster.cached_topic("a").is_some());
        // A full refresh without the topic drops it.
        let empty = MetadataResult {
            topics: vec![],
            ..r
        };
        cluster.merge(&empty, true);
        assert!(cluster.cached_topic("a").is_none());
        assert!(cluster.metadata().topics.is_empty());
    }
}

//! Administration: topics, partitions, configs, offsets, cluster.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use eddy_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use eddy_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use eddy_protocol::messages::delete_topics_request::DeleteTopicState;
use eddy_protocol::messages::describe_configs_request::DescribeConfigsResource;
use eddy_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use eddy_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use eddy_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeClusterRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest,
    ListOffsetsRequest,
};
use eddy_protocol::{ApiKey, ErrorCode, Uuid};

use crate::cluster::{BrokerInfo, Cluster, PartitionInfo};
use crate::config::{CommonConfig, IsolationLevel};
use crate::connection::Connection;
use crate::error::{check_code, ClientError, KafkaError};
use crate::protocol::BrokerApiVersions;
use crate::util::{join_all, ms_i32};

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    /// Number of partitions; -1 for the broker's default (`num.partitions`).
    pub num_partitions: i32,
    /// Replication factor; -1 for the broker's default.
    pub replication_factor: i16,
    /// Topic configs (`retention.ms`, `cleanup.policy`, ...).
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    pub fn new(name: impl Into<String>, num_partitions: i32) -> Self {
        NewTopic {
            name: name.into(),
            num_partitions,
            replication_factor: -1,
            configs: Vec::new(),
        }
    }

    pub fn replication_factor(mut self, rf: i16) -> Self {
        self.replication_factor = rf;
        self
    }

    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((key.into(), value.into()));
        self
    }
}

/// What the broker reports for a created topic (partitions and replication
/// factor are -1 when the broker is older than CreateTopics v5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    pub name: String,
    pub topic_id: Uuid,
    pub num_partitions: i32,
    pub replication_factor: i16,
}

/// A topic in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicListing {
    pub name: String,
    pub topic_id: Uuid,
    pub is_internal: bool,
    pub partitions: usize,
}

/// Where a config value comes from (Kafka's `ConfigSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    Unknown,
    DynamicTopic,
    DynamicBroker,
    DynamicDefaultBroker,
    StaticBroker,
    Default,
    DynamicBrokerLogger,
    ClientMetrics,
    Group,
}

impl ConfigSource {
    pub fn from_i8(v: i8) -> ConfigSource {
        match v {
            1 => ConfigSource::DynamicTopic,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            6 => ConfigSource::DynamicBrokerLogger,
            7 => ConfigSource::ClientMetrics,
            8 => ConfigSource::Group,
            _ => ConfigSource::Unknown,
        }
    }

    /// The Java client's name of the source.
    pub fn name(self) -> &'static str {
        match self {
            ConfigSource::Unknown => "UNKNOWN",
            ConfigSource::DynamicTopic => "DYNAMIC_TOPIC_CONFIG",
            ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
            ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG",
            ConfigSource::Default => "DEFAULT_CONFIG",
            ConfigSource::DynamicBrokerLogger => "DYNAMIC_BROKER_LOGGER_CONFIG",
            ConfigSource::ClientMetrics => "CLIENT_METRICS_CONFIG",
            ConfigSource::Group => "GROUP_CONFIG",
        }
    }
}

/// One config of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` for sensitive or unset values.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub is_sensitive: bool,
}

impl ConfigEntry {
    /// Whether the value is the built-in default.
    pub fn is_default(&self) -> bool {
        self.source == ConfigSource::Default
    }
}

/// A resource that has configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
}

impl ConfigResource {
    fn type_and_name(&self) -> (i8, String) {
        match self {
            ConfigResource::Topic(t) => (2, t.clone()),
            ConfigResource::Broker(id) => (4, id.to_string()),
        }
    }

    fn attach(&self, e: KafkaError) -> KafkaError {
        match self {
            ConfigResource::Topic(t) => e.with_topic(t),
            ConfigResource::Broker(_) => e,
        }
    }
}

/// An incremental config change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterConfigOp {
    Set(String, String),
    /// Revert to the default.
    Delete(String),
    /// Add to a list config.
    Append(String, String),
    /// Remove from a list config.
    Subtract(String, String),
}

impl AlterConfigOp {
    fn to_wire(&self) -> AlterableConfig {
        let (name, op, value) = match self {
            AlterConfigOp::Set(k, v) => (k, 0, Some(v.clone())),
            AlterConfigOp::Delete(k) => (k, 1, None),
            AlterConfigOp::Append(k, v) => (k, 2, Some(v.clone())),
            AlterConfigOp::Subtract(k, v) => (k, 3, Some(v.clone())),
        };
        AlterableConfig {
            name: name.clone(),
            config_operation: op,
            value,
        }
    }
}

/// Which offset to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (high watermark).
    Latest,
    /// The first offset whose timestamp is at or after this time (ms).
    Timestamp(i64),
    /// The offset of the record with the highest timestamp (ListOffsets v7+).
    MaxTimestamp,
}

impl OffsetSpec {
    fn wire_timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::MaxTimestamp => -3,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

/// The answer to a [`OffsetSpec`] lookup. For a timestamp after the last
/// record, `offset` and `timestamp` are -1 (Kafka's convention).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    pub offset: i64,
    pub timestamp: i64,
    pub leader_epoch: Option<i32>,
}

/// A partition of a described topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDescription {
    pub info: PartitionInfo,
    pub log_start_offset: Option<i64>,
    pub log_end_offset: Option<i64>,
}

/// A topic with its partitions, offsets and configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    pub topic_id: Uuid,
    pub is_internal: bool,
    pub partitions: Vec<PartitionDescription>,
    pub configs: Vec<ConfigEntry>,
}

impl TopicDescription {
    /// The replication factor (replicas of the first partition).
    pub fn replication_factor(&self) -> usize {
        self.partitions.first().map_or(0, |p| p.info.replicas.len())
    }

    pub fn config(&self, name: &str) -> Option<&ConfigEntry> {
        self.configs.iter().find(|c| c.name == name)
    }
}

/// The cluster as DescribeCluster (or Metadata) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    pub cluster_id: Option<String>,
    pub controller_id: Option<i32>,
    pub brokers: Vec<BrokerInfo>,
}

/// The admin client.
#[derive(Debug, Clone)]
pub struct AdminClient {
    cluster: Arc<Cluster>,
}

impl AdminClient {
    pub fn new(config: CommonConfig) -> Result<AdminClient, ClientError> {
        Ok(AdminClient {
            cluster: Cluster::new(config)?,
        })
    }

    /// An admin client sharing `cluster`'s connections and metadata.
    pub fn from_cluster(cluster: Arc<Cluster>) -> AdminClient {
        AdminClient { cluster }
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    fn timeout(&self) -> Duration {
        self.cluster.config().request_timeout
    }

    /// Sends a controller request, retrying once on NOT_CONTROLLER or a lost
    /// connection after refreshing metadata.
    async fn to_controller<R, T, F>(&self, req: &R, mut check: F) -> Result<T, ClientError>
    where
        R: crate::protocol::Request,
        F: FnMut(R::Response, i16) -> Result<T, ClientError>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let conn = self.cluster.controller_connection().await?;
            let version = conn.version::<R>()?;
            let res = match conn.send_version(req, version).await {
                Ok(resp) => check(resp, version),
                Err(e) => Err(e),
            };
            match res {
                Err(e)
                    if attempt < 3
                        && (e.code() == Some(ErrorCode::NotController)
                            || matches!(e, ClientError::Disconnected { .. })) =>
                {
                    tracing::debug!(error = %e, "retrying on the new controller");
                    self.cluster.refresh(Some(&[]), false).await?;
                }
                other => return other,
            }
        }
    }

    /// Creates topics; one result per topic, in order.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<Vec<Result<CreatedTopic, ClientError>>, ClientError> {
        let req = CreateTopicsRequest {
            topics: topics
                .iter()
                .map(|t| CreatableTopic {
                    name: t.name.clone(),
                    num_partitions: t.num_partitions,
                    replication_factor: t.replication_factor,
                    assignments: Vec::new(),
                    configs: t
                        .configs
                        .iter()
                        .map(|(k, v)| CreatableTopicConfig {
                            name: k.clone(),
                            value: Some(v.clone()),
                        })
                        .collect(),
                })
                .collect(),
            timeout_ms: ms_i32(self.timeout()),
            validate_only,
        };
        let results = self
            .to_controller(&req, |resp, _| {
                let by_name: HashMap<String, _> = resp
                    .topics
                    .into_iter()
                    .map(|t| (t.name.clone(), t))
                    .collect();
                if let Some(r) = by_name
                    .values()
                    .find(|r| r.error_code == ErrorCode::NotController.code())
                {
                    return Err(KafkaError::new(ErrorCode::NotController)
                        .with_message(r.error_message.clone())
                        .into());
                }
                Ok(by_name)
            })
            .await?;
        Ok(topics
            .iter()
            .map(|t| match results.get(&t.name) {
                None => Err(missing(ApiKey::CreateTopics, &t.name)),
                Some(r) => check_code(r.error_code, r.error_message.as_ref())
                    .map_err(|e| ClientError::from(e.with_topic(&t.name)))
                    .map(|()| CreatedTopic {
                        name: r.name.clone(),
                        topic_id: r.topic_id,
                        num_partitions: r.num_partitions,
                        replication_factor: r.replication_factor,
                    }),
            })
            .collect())
    }

    /// Creates one topic.
    pub async fn create_topic(
        &self,
        topic: NewTopic,
        validate_only: bool,
    ) -> Result<CreatedTopic, ClientError> {
        let mut r = self
            .create_topics(std::slice::from_ref(&topic), validate_only)
            .await?;
        r.pop()
            .unwrap_or_else(|| Err(missing(ApiKey::CreateTopics, &topic.name)))
    }

    /// Deletes topics by name; one result per topic, in order.
    pub async fn delete_topics(
        &self,
        names: &[String],
    ) -> Result<Vec<Result<(), ClientError>>, ClientError> {
        let timeout_ms = ms_i32(self.timeout());
        let conn = self.cluster.controller_connection().await?;
        let version = conn.version::<DeleteTopicsRequest>()?;
        let req = if version >= 6 {
            DeleteTopicsRequest {
                topics: names
                    .iter()
                    .map(|n| DeleteTopicState {
                        name: Some(n.clone()),
                        topic_id: Uuid::ZERO,
                    })
                    .collect(),
                topic_names: Vec::new(),
                timeout_ms,
            }
        } else {
            DeleteTopicsRequest {
                topics: Vec::new(),
                topic_names: names.to_vec(),
                timeout_ms,
            }
        };
        let results = self
            .to_controller(&req, |resp, _| {
                Ok(resp
                    .responses
                    .into_iter()
                    .filter_map(|r| Some((r.name.clone()?, r)))
                    .collect::<HashMap<_, _>>())
            })
            .await?;
        for n in names {
            self.cluster.invalidate(n);
        }
        Ok(names
            .iter()
            .map(|n| match results.get(n) {
                None => Err(missing(ApiKey::DeleteTopics, n)),
                Some(r) => check_code(r.error_code, r.error_message.as_ref())
                    .map_err(|e| ClientError::from(e.with_topic(n))),
            })
            .collect())
    }

    /// Deletes one topic.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        let mut r = self.delete_topics(&[name.to_string()]).await?;
        r.pop()
            .unwrap_or_else(|| Err(missing(ApiKey::DeleteTopics, name)))
    }

    /// Every topic, sorted by name (internal topics only if asked).
    pub async fn list_topics(
        &self,
        include_internal: bool,
    ) -> Result<Vec<TopicListing>, ClientError> {
        let r = self.cluster.refresh(None, false).await?;
        let mut out: Vec<TopicListing> = r
            .topics
            .into_iter()
            .filter_map(|(name, t)| match t {
                Ok(t) => Some(TopicListing {
                    name,
                    topic_id: t.topic_id,
                    is_internal: t.is_internal,
                    partitions: t.partitions.len(),
                }),
                // A topic being created or deleted is still listed.
                Err(e) if e.code != ErrorCode::UnknownTopicOrPartition => Some(TopicListing {
                    name,
                    topic_id: Uuid::ZERO,
                    is_internal: false,
                    partitions: 0,
                }),
                Err(_) => None,
            })
            .filter(|t| include_internal || !t.is_internal)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// A topic's partitions (leader, replicas, isr, log start and end
    /// offsets) and configs.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, ClientError> {
        self.cluster.invalidate(name);
        let info = self.cluster.topic(name, false).await?;
        let mut specs = Vec::with_capacity(info.partitions.len() * 2);
        for p in &info.partitions {
            specs.push((name.to_string(), p.partition, OffsetSpec::Earliest));
            specs.push((name.to_string(), p.partition, OffsetSpec::Latest));
        }
        let resource = ConfigResource::Topic(name.to_string());
        let (offsets, configs) =
            tokio::join!(self.list_offsets(&specs), self.describe_configs(&resource));
        let offsets = offsets?;
        let configs = configs?;
        let mut partitions = Vec::with_capacity(info.partitions.len());
        for (i, p) in info.partitions.iter().enumerate() {
            let get = |j: usize| {
                offsets
                    .get(j)
                    .and_then(|r| r.as_ref().ok())
                    .map(|o| o.offset)
            };
            partitions.push(PartitionDescription {
                info: p.clone(),
                log_start_offset: get(2 * i),
                log_end_offset: get(2 * i + 1),
            });
        }
        Ok(TopicDescription {
            name: info.name.clone(),
            topic_id: info.topic_id,
            is_internal: info.is_internal,
            partitions,
            configs,
        })
    }

    /// Raises the partition count of `topic` to `total`.
    pub async fn create_partitions(
        &self,
        topic: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), ClientError> {
        let req = CreatePartitionsRequest {
            topics: vec![CreatePartitionsTopic {
                name: topic.to_string(),
                count: total,
                assignments: None,
            }],
            timeout_ms: ms_i32(self.timeout()),
            validate_only,
        };
        let res = self
            .to_controller(&req, |resp, _| {
                let r = resp
                    .results
                    .into_iter()
                    .find(|r| r.name == topic)
                    .ok_or_else(|| missing(ApiKey::CreatePartitions, topic))?;
                check_code(r.error_code, r.error_message.as_ref())
                    .map_err(|e| ClientError::from(e.with_topic(topic)))
            })
            .await;
        self.cluster.invalidate(topic);
        res
    }

    /// Every config of `resource`.
    pub async fn describe_configs(
        &self,
        resource: &ConfigResource,
    ) -> Result<Vec<ConfigEntry>, ClientError> {
        self.describe_config_keys(resource, None).await
    }

    /// DescribeConfigs for only the named keys (`None`: all). Eddy answers the read-only key
    /// `eddy.cleanable.dirty.ratio` of a topic only when it is named here.
    pub async fn describe_config_keys(
        &self,
        resource: &ConfigResource,
        keys: Option<Vec<String>>,
    ) -> Result<Vec<ConfigEntry>, ClientError> {
        let (resource_type, resource_name) = resource.type_and_name();
        let conn = match resource {
            ConfigResource::Broker(id) => self.cluster.connection(*id).await?,
            ConfigResource::Topic(_) => self.cluster.any_connection().await?,
        };
        let req = DescribeConfigsRequest {
            resources: vec![DescribeConfigsResource {
                resource_type,
                resource_name: resource_name.clone(),
                configuration_keys: keys,
            }],
            include_synonyms: false,
            include_documentation: false,
        };
        let version = conn.version::<DescribeConfigsRequest>()?;
        let resp = conn.send_version(&req, version).await?;
        let r = resp
            .results
            .into_iter()
            .find(|r| r.resource_type == resource_type && r.resource_name == resource_name)
            .ok_or_else(|| missing(ApiKey::DescribeConfigs, &resource_name))?;
        check_code(r.error_code, r.error_message.as_ref()).map_err(|e| resource.attach(e))?;
        let mut entries: Vec<ConfigEntry> = r
            .configs
            .into_iter()
            .map(|c| ConfigEntry {
                source: if version == 0 {
                    if c.is_default {
                        ConfigSource::Default
                    } else {
                        ConfigSource::Unknown
                    }
                } else {
                    ConfigSource::from_i8(c.config_source)
                },
                name: c.name,
                value: c.value,
                read_only: c.read_only,
                is_sensitive: c.is_sensitive,
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Applies config changes to `resource`.
    pub async fn incremental_alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[AlterConfigOp],
        validate_only: bool,
    ) -> Result<(), ClientError> {
        let (resource_type, resource_name) = resource.type_and_name();
        let req = IncrementalAlterConfigsRequest {
            resources: vec![AlterConfigsResource {
                resource_type,
                resource_name: resource_name.clone(),
                configs: ops.iter().map(AlterConfigOp::to_wire).collect(),
            }],
            validate_only,
        };
        let conn = match resource {
            ConfigResource::Broker(id) => self.cluster.connection(*id).await?,
            ConfigResource::Topic(_) => self.cluster.controller_connection().await?,
        };
        let resp = conn.send(&req).await?;
        let r = resp
            .responses
            .into_iter()
            .find(|r| r.resource_type == resource_type && r.resource_name == resource_name)
            .ok_or_else(|| missing(ApiKey::IncrementalAlterConfigs, &resource_name))?;
        check_code(r.error_code, r.error_message.as_ref()).map_err(|e| resource.attach(e).into())
    }

    /// The cluster id, controller and brokers (DescribeCluster, or Metadata
    /// for brokers without DescribeCluster).
    pub async fn describe_cluster(&self) -> Result<ClusterDescription, ClientError> {
        let conn = self.cluster.any_connection().await?;
        if conn.version::<DescribeClusterRequest>().is_err() {
            let r = self.cluster.refresh(Some(&[]), false).await?;
            return Ok(ClusterDescription {
                cluster_id: r.cluster_id,
                controller_id: r.controller_id,
                brokers: r.brokers,
            });
        }
        let req = DescribeClusterRequest {
            include_cluster_authorized_operations: false,
            endpoint_type: 1,
        };
        let resp = conn.send(&req).await?;
        check_code(resp.error_code, resp.error_message.as_ref())?;
        let mut brokers: Vec<BrokerInfo> = resp
            .brokers
            .into_iter()
            .map(|b| BrokerInfo {
                node_id: b.broker_id,
                host: b.host,
                port: b.port,
                rack: b.rack,
            })
            .collect();
        brokers.sort_by_key(|b| b.node_id);
        Ok(ClusterDescription {
            cluster_id: Some(resp.cluster_id),
            controller_id: (resp.controller_id >= 0).then_some(resp.controller_id),
            brokers,
        })
    }

    /// The address of a broker and the api versions it serves.
    pub async fn api_versions(&self) -> Result<(String, BrokerApiVersions), ClientError> {
        let conn = self.cluster.any_connection().await?;
        Ok((conn.addr().to_string(), conn.broker_versions().clone()))
    }

    /// Looks up offsets; one result per spec, in order.
    pub async fn list_offsets(
        &self,
        specs: &[(String, i32, OffsetSpec)],
    ) -> Result<Vec<Result<ListedOffset, ClientError>>, ClientError> {
        list_offsets(&self.cluster, specs).await
    }

    /// Deletes the records before `offset` in each partition (-1: up to the
    /// high watermark). Returns each partition's new log start offset.
    pub async fn delete_records(
        &self,
        requests: &[(String, i32, i64)],
    ) -> Result<Vec<Result<i64, ClientError>>, ClientError> {
        let parts: Vec<(String, i32)> = requests.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
        let timeout_ms = ms_i32(self.timeout());
        let send = |conn: Arc<Connection>, idx: Vec<usize>| async move {
            let mut topics: BTreeMap<&str, Vec<DeleteRecordsPartition>> = BTreeMap::new();
            for &i in &idx {
                let (t, p, o) = &requests[i];
                topics
                    .entry(t.as_str())
                    .or_default()
                    .push(DeleteRecordsPartition {
                        partition_index: *p,
                        offset: *o,
                    });
            }
            let req = DeleteRecordsRequest {
                topics: topics
                    .into_iter()
                    .map(|(name, partitions)| DeleteRecordsTopic {
                        name: name.to_string(),
                        partitions,
                    })
                    .collect(),
                timeout_ms,
            };
            let resp = conn.send(&req).await?;
            let mut found: HashMap<(String, i32), (i16, i64)> = HashMap::new();
            for t in resp.topics {
                for p in t.partitions {
                    found.insert(
                        (t.name.clone(), p.partition_index),
                        (p.error_code, p.low_watermark),
                    );
                }
            }
            Ok(idx
                .into_iter()
                .map(|i| {
                    let (t, p, _) = &requests[i];
                    let r = match found.get(&(t.clone(), *p)) {
                        None => Err(missing(ApiKey::DeleteRecords, t)),
                        Some((code, low)) => check_code(*code, None)
                            .map(|()| *low)
                            .map_err(|e| e.with_partition(t, *p).into()),
                    };
                    (i, r)
                })
                .collect())
        };
        Ok(leader_routed(&self.cluster, &parts, self.timeout(), send).await)
    }
}

fn missing(api: ApiKey, what: &str) -> ClientError {
    ClientError::InvalidResponse {
        api,
        addr: String::new(),
        reason: format!("no result for '{what}'"),
    }
}

/// ListOffsets for each (topic, partition, spec), routed to the leaders.
pub(crate) async fn list_offsets(
    cluster: &Cluster,
    specs: &[(String, i32, OffsetSpec)],
) -> Result<Vec<Result<ListedOffset, ClientError>>, ClientError> {
    list_offsets_isolated(cluster, specs, IsolationLevel::ReadUncommitted).await
}

/// [`list_offsets`] as a consumer with `isolation` sees them (read_committed:
/// "latest" is the last stable offset).
pub(crate) async fn list_offsets_isolated(
    cluster: &Cluster,
    specs: &[(String, i32, OffsetSpec)],
    isolation: IsolationLevel,
) -> Result<Vec<Result<ListedOffset, ClientError>>, ClientError> {
    let parts: Vec<(String, i32)> = specs.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
    let send = |conn: Arc<Connection>, idx: Vec<usize>| async move {
        let version = conn.version::<ListOffsetsRequest>()?;
        // A partition may appear once per request: split repeated partitions
        // (e.g. earliest and latest of the same partition) over several requests.
        let mut rounds: Vec<Vec<usize>> = Vec::new();
        for i in idx {
            let key = (&specs[i].0, specs[i].1);
            match rounds
                .iter_mut()
                .find(|r| !r.iter().any(|&j| (&specs[j].0, specs[j].1) == key))
            {
                Some(r) => r.push(i),
                None => rounds.push(vec![i]),
            }
        }
        let futs = rounds.into_iter().map(|round| {
            let conn = conn.clone();
            async move { list_offsets_round(&conn, version, specs, round, isolation).await }
        });
        let mut out = Vec::new();
        for r in join_all(futs.collect()).await {
            out.extend(r?);
        }
        Ok(out)
    };
    let timeout = cluster.config().request_timeout;
    Ok(leader_routed(cluster, &parts, timeout, send).await)
}

async fn list_offsets_round(
    conn: &Connection,
    version: i16,
    specs: &[(String, i32, OffsetSpec)],
    idx: Vec<usize>,
    isolation: IsolationLevel,
) -> Result<Vec<(usize, Result<ListedOffset, ClientError>)>, ClientError> {
    let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
    for &i in &idx {
        let (t, p, spec) = &specs[i];
        if *spec == OffsetSpec::MaxTimestamp && version < 7 {
            return Err(ClientError::UnsupportedVersion {
                api: ApiKey::ListOffsets,
                addr: conn.addr().to_string(),
                min: 7,
                max: 10,
                broker: format!("up to {version}"),
            });
        }
        topics
            .entry(t.as_str())
            .or_default()
            .push(ListOffsetsPartition {
                partition_index: *p,
                current_leader_epoch: -1,
                timestamp: spec.wire_timestamp(),
                max_num_offsets: 1,
            });
    }
    let req = ListOffsetsRequest {
        replica_id: -1,
        isolation_level: isolation.as_i8(),
        topics: topics
            .into_iter()
            .map(|(name, partitions)| ListOffsetsTopic {
                name: name.to_string(),
                partitions,
            })
            .collect(),
        timeout_ms: ms_i32(Duration::from_secs(30)),
    };
    let resp = conn.send_version(&req, version).await?;
    let mut found = HashMap::new();
    for t in resp.topics {
        for p in t.partitions {
            found.insert((t.name.clone(), p.partition_index), p);
        }
    }
    Ok(idx
        .into_iter()
        .map(|i| {
            let (t, p, _) = &specs[i];
            let r = match found.get(&(t.clone(), *p)) {
                None => Err(missing(ApiKey::ListOffsets, t)),
                Some(r) => check_code(r.error_code, None)
                    .map_err(|e| e.with_partition(t, *p).into())
                    .map(|()| ListedOffset {
                        offset: r.offset,
                        timestamp: r.timestamp,
                        leader_epoch: (r.leader_epoch >= 0).then_some(r.leader_epoch),
                    }),
            };
            (i, r)
        })
        .collect())
}

/// Sends per-partition work to each partition's leader, concurrently per
/// leader, retrying partitions whose error is retriable (refreshing
/// metadata) until `timeout`. `send` gets a leader connection and the
/// indices of `parts` it leads, and returns one result per index.
pub(crate) async fn leader_routed<T, F, Fut>(
    cluster: &Cluster,
    parts: &[(String, i32)],
    timeout: Duration,
    send: F,
) -> Vec<Result<T, ClientError>>
where
    F: Fn(Arc<Connection>, Vec<usize>) -> Fut,
    Fut: Future<Output = Result<Vec<(usize, Result<T, ClientError>)>, ClientError>>,
{
    let deadline = Instant::now() + timeout;
    let mut results: Vec<Option<Result<T, ClientError>>> = parts.iter().map(|_| None).collect();
    let mut todo: Vec<usize> = (0..parts.len()).collect();
    while !todo.is_empty() {
        let mut retry = Vec::new();
        let mut by_leader: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
        for i in todo {
            let (topic, partition) = &parts[i];
            match cluster.topic(topic, false).await.and_then(|t| {
                let p = t.partition(*partition).ok_or_else(|| {
                    ClientError::from(
                        KafkaError::new(ErrorCode::UnknownTopicOrPartition)
                            .with_partition(topic, *partition),
                    )
                })?;
                p.leader.ok_or_else(|| {
                    KafkaError::new(ErrorCode::LeaderNotAvailable)
                        .with_partition(topic, *partition)
                        .into()
                })
            }) {
                Ok(leader) => by_leader.entry(leader).or_default().push(i),
                Err(e)
                    if e.is_retriable() && e.code() != Some(ErrorCode::UnknownTopicOrPartition) =>
                {
                    results[i] = Some(Err(e));
                    retry.push(i);
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        let futs = by_leader.into_iter().map(|(leader, idx)| {
            let send = &send;
            async move {
                let conn = match cluster.connection(leader).await {
                    Ok(c) => c,
                    Err(e) => return Err((idx, e)),
                };
                send(conn, idx.clone()).await.map_err(|e| (idx, e))
            }
        });
        for outcome in join_all(futs.collect()).await {
            let per_partition = match outcome {
                Ok(v) => v,
                Err((idx, e)) => idx.into_iter().map(|i| (i, Err(e.clone()))).collect(),
            };
            for (i, r) in per_partition {
                if let Err(e) = &r {
                    if e.invalidates_metadata() {
                        cluster.invalidate(&parts[i].0);
                    }
                    if e.is_retriable() {
                        retry.push(i);
                    }
                }
                results[i] = Some(r);
            }
        }
        if retry.is_empty() || Instant::now() >= deadline {
            break;
        }
        tracing::debug!(partitions = retry.len(), "retrying after a retriable error");
        tokio::time::sleep(cluster.config().retry_backoff).await;
        todo = retry;
    }
    results
        .into_iter()
        .zip(parts)
        .map(|(r, (t, p))| {
            r.unwrap_or_else(|| {
                Err(ClientError::OperationTimeout {
                    what: format!("request for topic '{t}' partition {p}"),
                    timeout,
                })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alter_ops_on_the_wire() {
        let w = AlterConfigOp::Set("retention.ms".into(), "1".into()).to_wire();
        assert_eq!((w.config_operation, w.value.as_deref()), (0, Some("1")));
        let w = AlterConfigOp::Delete("retention.ms".into()).to_wire();
        assert_eq!((w.config_operation, w.value), (1, None));
        assert_eq!(
            AlterConfigOp::Append("a".into(), "b".into())
                .to_wire()
                .config_operation,
            2
        );
        assert_eq!(
            AlterConfigOp::Subtract("a".into(), "b".into())
                .to_wire()
                .config_operation,
            3
        );
    }

    #[test]
    fn offset_specs_on_the_wire() {
        assert_eq!(OffsetSpec::Earliest.wire_timestamp(), -2);
        assert_eq!(OffsetSpec::Latest.wire_timestamp(), -1);
        assert_eq!(OffsetSpec::MaxTimestamp.wire_timestamp(), -3);
        assert_eq!(OffsetSpec::Timestamp(1234).wire_timestamp(), 1234);
    }

    #[test]
    fn config_sources() {
        assert_eq!(ConfigSource::from_i8(1), ConfigSource::DynamicTopic);
        assert_eq!(ConfigSource::from_i8(5).name(), "DEFAULT_CONFIG");
        assert_eq!(ConfigSource::from_i8(42), ConfigSource::Unknown);
        let e = ConfigEntry {
            name: "x".into(),
            value: None,
            source: ConfigSource::Default,
            read_only: false,
            is_sensitive: false,
        };
        assert!(e.is_default());
    }
}

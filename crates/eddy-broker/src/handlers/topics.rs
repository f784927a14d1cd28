//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords, and
//! DescribeCluster.

/// CreateTopics (incl. `validate_only`).
pub mod create_topics {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::Arc;

    use eddy_meta::config::{resolve_all_topic_configs, BrokerLayers};
    use eddy_protocol::codec::Uuid;
    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::create_topics_request::CreatableTopic;
    use eddy_protocol::messages::create_topics_response::{
        CreatableTopicConfigs, CreatableTopicResult,
    };
    use eddy_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

    use crate::broker::Broker;
    use crate::handlers::broker_error_code;
    use crate::router::RequestContext;

    fn failed(name: String, code: ErrorCode, message: impl Into<String>) -> CreatableTopicResult {
        CreatableTopicResult {
            name,
            error_code: code.code(),
            error_message: Some(message.into()),
            num_partitions: -1,
            replication_factor: -1,
            configs: None,
            ..Default::default()
        }
    }

    /// Resolves partition count and replication factor; checks what a single node can do.
    fn layout(broker: &Broker, t: &CreatableTopic) -> Result<(i32, i16), (ErrorCode, String)> {
        if !t.assignments.is_empty() {
            if t.num_partitions != -1 || t.replication_factor != -1 {
                return Err((ErrorCode::InvalidRequest, "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into()));
            }
            let node = broker.node_id();
            let mut seen = std::collections::HashSet::new();
            for (i, a) in t.assignments.iter().enumerate() {
                if a.partition_index != i as i32 || !seen.insert(a.partition_index) {
                    return Err((
                        ErrorCode::InvalidReplicaAssignment,
                        "Partitions should be a consecutive 0-based integer sequence".into(),
                    ));
                }
                if a.broker_ids.is_empty()
                    || a.broker_ids.iter().any(|b| *b != node)
                    || a.broker_ids.len() != 1
                {
                    return Err((ErrorCode::InvalidReplicaAssignment, format!("Replica assignment {:?} names brokers that are not registered (only broker {node} is)", a.broker_ids)));
                }
            }
            return Ok((t.assignments.len() as i32, 1));
        }
        let partitions = match t.num_partitions {
            -1 => broker.broker_i64("num.partitions", 1) as i32,
            n if n < 1 => {
                return Err((
                    ErrorCode::InvalidPartitions,
                    "Number of partitions was set to an invalid non-positive value.".into(),
                ))
            }
            n => n,
        };
        let rf = match t.replication_factor {
            -1 => broker.broker_i64("default.replication.factor", 1) as i16,
            n if n < 1 => {
                return Err((
                    ErrorCode::InvalidReplicationFactor,
                    "Replication factor must be larger than 0, or -1 to use the default value."
                        .into(),
                ))
            }
            n => n,
        };
        if rf > 1 {
            return Err((ErrorCode::InvalidReplicationFactor, format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only 1 broker(s) are registered.")));
        }
        Ok((partitions, rf))
    }

    fn create_one(
        broker: &Broker,
        version: i16,
        t: CreatableTopic,
        validate_only: bool,
    ) -> CreatableTopicResult {
        let (partitions, rf) = match layout(broker, &t) {
            Ok(l) => l,
            Err((code, msg)) => return failed(t.name, code, msg),
        };
        let mut configs = BTreeMap::new();
        for c in &t.configs {
            match &c.value {
                Some(v) => {
                    configs.insert(c.name.clone(), v.clone());
                }
                None => {
                    return failed(
                        t.name,
                        ErrorCode::InvalidConfig,
                        format!("Null value not supported for topic configs: {}", c.name),
                    )
                }
            }
        }
        match broker.create_topic(&t.name, partitions, configs, validate_only, false) {
            Ok(meta) => {
                let described = (version >= 5).then(|| {
                    broker.with_layers(|layers: &BrokerLayers<'_>, _| {
                        resolve_all_topic_configs(&meta.configs, layers)
                            .into_iter()
                            .map(|v| CreatableTopicConfigs {
                                name: v.name,
                                value: v.value,
                                read_only: v.read_only,
                                config_source: v.source as i8,
                                is_sensitive: v.sensitive,
                                ..Default::default()
                            })
                            .collect()
                    })
                });
                CreatableTopicResult {
                    name: t.name,
                    topic_id: Uuid(meta.id),
                    error_code: 0,
                    error_message: None,
                    num_partitions: partitions,
                    replication_factor: rf,
                    configs: described,
                    ..Default::default()
                }
            }
            Err(e) => {
                let (code, msg) = broker_error_code(&e);
                failed(t.name, code, msg)
            }
        }
    }

    pub async fn handle(
        broker: &Arc<Broker>,
        ctx: &RequestContext,
        req: CreateTopicsRequest,
    ) -> CreateTopicsResponse {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for t in &req.topics {
            *counts.entry(t.name.clone()).or_default() += 1;
        }
        let topics = req
            .topics
            .into_iter()
            .map(|t| {
                if counts.get(&t.name).copied().unwrap_or(0) > 1 {
                    let name = t.name.clone();
                    return failed(name.clone(), ErrorCode::InvalidRequest, format!("Create topics request from client contains the topic {name} more than once."));
                }
                create_one(broker, ctx.api_version, t, req.validate_only)
            })
            .collect();
        CreateTopicsResponse {
            topics,
            ..Default::default()
        }
    }

    pub fn error_response(req: &CreateTopicsRequest, code: ErrorCode) -> CreateTopicsResponse {
        CreateTopicsResponse {
            topics: req
                .topics
                .iter()
                .map(|t| failed(t.name.clone(), code, code.message()))
                .collect(),
            ..Default::default()
        }
    }
}

/// DeleteTopics (by name, or by id from v6).
pub mod delete_topics {
    use std::sync::Arc;

    use eddy_protocol::codec::Uuid;
    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::delete_topics_response::DeletableTopicResult;
    use eddy_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};

    use crate::broker::Broker;
    use crate::handlers::broker_error_code;
    use crate::router::RequestContext;

    fn result(
        name: Option<String>,
        id: Uuid,
        code: ErrorCode,
        message: Option<String>,
    ) -> DeletableTopicResult {
        DeletableTopicResult {
            name,
            topic_id: id,
            error_code: code.code(),
            error_message: message,
            ..Default::default()
        }
    }

    fn delete_one(broker: &Broker, name: Option<String>, id: Uuid) -> DeletableTopicResult {
        let resolved = match (&name, id != Uuid::default()) {
            (Some(n), _) => Some(n.clone()),
            (None, true) => broker.topic_by_id(&id).map(|t| t.name.to_string()),
            (None, false) => {
                return result(
                    None,
                    id,
                    ErrorCode::InvalidRequest,
                    Some("Neither topic name nor id was given".into()),
                )
            }
        };
        let Some(topic) = resolved else {
            return result(None, id, ErrorCode::UnknownTopicId, None);
        };
        if eddy_meta::topic_name::is_internal(&topic) {
            return result(
                Some(topic),
                id,
                ErrorCode::TopicDeletionDisabled,
                Some("Internal topics cannot be deleted".into()),
            );
        }
        match broker.delete_topic(&topic) {
            Ok(meta) => result(Some(topic), Uuid(meta.id), ErrorCode::None, None),
            Err(e) => {
                let (code, msg) = broker_error_code(&e);
                result(Some(topic), id, code, Some(msg))
            }
        }
    }

    pub async fn handle(
        broker: &Arc<Broker>,
        ctx: &RequestContext,
        req: DeleteTopicsRequest,
    ) -> DeleteTopicsResponse {
        if !broker.broker_bool("delete.topic.enable", true) {
            return error_response(&req, ErrorCode::TopicDeletionDisabled);
        }
        let responses = if ctx.api_version >= 6 {
            req.topics
                .into_iter()
                .map(|t| delete_one(broker, t.name, t.topic_id))
                .collect()
        } else {
            req.topic_names
                .into_iter()
                .map(|n| delete_one(broker, Some(n), Uuid::default()))
                .collect()
        };
        DeleteTopicsResponse {
            responses,
            ..Default::default()
        }
    }

    pub fn error_response(req: &DeleteTopicsRequest, code: ErrorCode) -> DeleteTopicsResponse {
        let mut responses: Vec<_> = req
            .topics
            .iter()
            .map(|t| result(t.name.clone(), t.topic_id, code, None))
            .collect();
        responses.extend(
            req.topic_names
                .iter()
                .map(|n| result(Some(n.clone()), Uuid::default(), code, None)),
        );
        DeleteTopicsResponse {
            responses,
            ..Default::default()
        }
    }
}

/// CreatePartitions: grow only.
pub mod create_partitions {
    use std::sync::Arc;

    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
    use eddy_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

    use crate::broker::Broker;
    use crate::handlers::broker_error_code;
    use crate::router::RequestContext;

    fn result(
        name: String,
        code: ErrorCode,
        message: Option<String>,
    ) -> CreatePartitionsTopicResult {
        CreatePartitionsTopicResult {
            name,
            error_code: code.code(),
            error_message: message,
            ..Default::default()
        }
    }

    pub async fn handle(
        broker: &Arc<Broker>,
        _ctx: &RequestContext,
        req: CreatePartitionsRequest,
    ) -> CreatePartitionsResponse {
        let node = broker.node_id();
        let results = req
            .topics
            .into_iter()
            .map(|t| {
                if let Some(assignments) = &t.assignments {
                    let current = broker.topic(&t.name).map_or(0, |s| s.partitions.len() as i32);
                    if assignments.len() as i32 != t.count - current {
                        return result(t.name, ErrorCode::InvalidReplicaAssignment, Some(format!("Increasing the number of partitions by {} but {} assignments provided.", t.count - current, assignments.len())));
                    }
                    if assignments.iter().any(|a| a.broker_ids.len() != 1 || a.broker_ids[0] != node) {
                        return result(t.name, ErrorCode::InvalidReplicaAssignment, Some(format!("Assignments may only name broker {node}")));
                    }
                }
                match broker.create_partitions(&t.name, t.count, req.validate_only) {
                    Ok(_) => result(t.name, ErrorCode::None, None),
                    Err(e) => {
                        let (code, msg) = broker_error_code(&e);
                        result(t.name, code, Some(msg))
                    }
                }
            })
            .collect();
        CreatePartitionsResponse {
            results,
            ..Default::default()
        }
    }

    pub fn error_response(
        req: &CreatePartitionsRequest,
        code: ErrorCode,
    ) -> CreatePartitionsResponse {
        CreatePartitionsResponse {
            results: req
                .topics
                .iter()
                .map(|t| result(t.name.clone(), code, None))
                .collect(),
            ..Default::default()
        }
    }
}

/// DeleteRecords: move a partition's log start offset forward.
pub mod delete_records {
    use std::sync::Arc;

    use eddy_log::LogError;
    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::delete_records_response::{
        DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
    };
    use eddy_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

    use crate::broker::Broker;
    use crate::router::RequestContext;

    fn partition(index: i32, low_watermark: i64, code: ErrorCode) -> DeleteRecordsPartitionResult {
        DeleteRecordsPartitionResult {
            partition_index: index,
            low_watermark,
            error_code: code.code(),
            ..Default::default()
        }
    }

    pub async fn handle(
        broker: &Arc<Broker>,
        _ctx: &RequestContext,
        req: DeleteRecordsRequest,
    ) -> DeleteRecordsResponse {
        let topics = req
            .topics
            .into_iter()
            .map(|t| {
                let state = broker.topic(&t.name);
                let partitions = t
                    .partitions
                    .iter()
                    .map(|dp| {
                        let Some(p) = state.as_ref().and_then(|s| s.partition(dp.partition_index)) else {
                            return partition(dp.partition_index, -1, ErrorCode::UnknownTopicOrPartition);
                        };
                        let mut log = p.log.write();
                        let target = if dp.offset == -1 { log.log_end_offset() } else { dp.offset };
                        if target < 0 || target > log.log_end_offset() {
                            return partition(dp.partition_index, -1, ErrorCode::OffsetOutOfRange);
                        }
                        match log.delete_records_before(target) {
                            Ok(low) => partition(dp.partition_index, low, ErrorCode::None),
                            Err(LogError::OffsetOutOfRange { .. }) => partition(dp.partition_index, -1, ErrorCode::OffsetOutOfRange),
                            Err(e) => {
                                tracing::warn!(topic = %t.name, partition = dp.partition_index, error = %e, "delete records failed");
                                partition(dp.partition_index, -1, ErrorCode::KafkaStorageError)
                            }
                        }
                    })
                    .collect();
                DeleteRecordsTopicResult { name: t.name, partitions, ..Default::default() }
            })
            .collect();
        DeleteRecordsResponse {
            topics,
            ..Default::default()
        }
    }

    pub fn error_response(req: &DeleteRecordsRequest, code: ErrorCode) -> DeleteRecordsResponse {
        DeleteRecordsResponse {
            topics: req
                .topics
                .iter()
                .map(|t| DeleteRecordsTopicResult {
                    name: t.name.clone(),
                    partitions: t
                        .partitions
                        .iter()
                        .map(|p| partition(p.partition_index, -1, code))
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }
}

/// DescribeCluster: cluster id, controller, brokers.
pub mod describe_cluster {
    use std::sync::Arc;

    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::describe_cluster_response::DescribeClusterBroker;
    use eddy_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};

    use crate::broker::Broker;
    use crate::router::RequestContext;

    const ENDPOINT_BROKERS: i8 = 1;

    pub async fn handle(
        broker: &Arc<Broker>,
        _ctx: &RequestContext,
        req: DescribeClusterRequest,
    ) -> DescribeClusterResponse {
        if req.endpoint_type != ENDPOINT_BROKERS {
            let mut r = error_response(&req, ErrorCode::UnsupportedEndpointType);
            r.error_message = Some("The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER".into());
            return r;
        }
        let (host, port) = broker.advertised();
        DescribeClusterResponse {
            error_code: 0,
            endpoint_type: req.endpoint_type,
            cluster_id: broker.cluster_id(),
            controller_id: broker.node_id(),
            brokers: vec![DescribeClusterBroker {
                broker_id: broker.node_id(),
                host,
                port,
                rack: None,
                ..Default::default()
            }],
            cluster_authorized_operations: if req.include_cluster_authorized_operations {
                (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12)
            } else {
                i32::MIN
            },
            ..Default::default()
        }
    }

    pub fn error_response(
        req: &DescribeClusterRequest,
        code: ErrorCode,
    ) -> DescribeClusterResponse {
        DescribeClusterResponse {
            error_code: code.code(),
            endpoint_type: req.endpoint_type,
            ..Default::default()
        }
    }
}

//! Metadata: brokers, cluster id, controller, topics with their partitions; creates unknown
//! topics on the fly when `auto.create.topics.enable` and the request allow it.

use std::sync::Arc;

use eddy_meta::topic_name::{is_internal, validate_topic_name};
use eddy_protocol::codec::Uuid;
use eddy_protocol::error_code::ErrorCode;
use eddy_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use eddy_protocol::messages::{MetadataRequest, MetadataResponse};

use crate::broker::Broker;
use crate::partition::TopicState;
use crate::router::RequestContext;

/// Kafka's "authorized operations not requested" marker.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;
/// With no authorizer every operation on a topic is allowed: READ(3), WRITE(4), CREATE(5),
/// DELETE(6), ALTER(7), DESCRIBE(8), DESCRIBE_CONFIGS(10), ALTER_CONFIGS(11).
const ALL_TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
/// Cluster operations: CREATE(5), ALTER(7), DESCRIBE(8), CLUSTER_ACTION(9), DESCRIBE_CONFIGS(10), ALTER_CONFIGS(11), IDEMPOTENT_WRITE(12).
const ALL_CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

fn topic_entry(broker: &Broker, t: &TopicState, ops: i32) -> MetadataResponseTopic {
    let node = broker.node_id();
    MetadataResponseTopic {
        error_code: ErrorCode::None.code(),
        name: Some(t.name.to_string()),
        topic_id: t.id,
        is_internal: t.internal,
        partitions: t
            .partitions
            .iter()
            .map(|p| MetadataResponsePartition {
                error_code: ErrorCode::None.code(),
                partition_index: p.index,
                leader_id: node,
                leader_epoch: p.leader_epoch,
                replica_nodes: vec![node],
                isr_nodes: vec![node],
                offline_replicas: vec![],
                ..Default::default()
            })
            .collect(),
        topic_authorized_operations: ops,
        ..Default::default()
    }
}

fn error_entry(name: Option<String>, id: Uuid, code: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic {
        error_code: code.code(),
        name,
        topic_id: id,
        ..Default::default()
    }
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: MetadataRequest,
) -> MetadataResponse {
    let version = ctx.api_version;
    let topic_ops = if req.include_topic_authorized_operations {
        ALL_TOPIC_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    let auto_create = broker.broker_bool("auto.create.topics.enable", true)
        && (version < 4 || req.allow_auto_topic_creation);
    let all = match &req.topics {
        None => true,
        Some(t) => version == 0 && t.is_empty(),
    };
    let mut topics = Vec::new();
    if all {
        for t in broker.all_topics() {
            topics.push(topic_entry(broker, &t, topic_ops));
        }
    } else {
        for wanted in req.topics.unwrap_or_default() {
            let by_id = wanted.topic_id != Uuid::default();
            match (wanted.name, by_id) {
                (Some(name), _) => {
                    if let Some(t) = broker.topic(&name) {
                        topics.push(topic_entry(broker, &t, topic_ops));
                        continue;
                    }
                    if validate_topic_name(&name).is_err() {
                        topics.push(error_entry(
                            Some(name),
                            Uuid::default(),
                            ErrorCode::InvalidTopicException,
                        ));
                        continue;
                    }
                    if auto_create && !is_internal(&name) {
                        match broker.auto_create_topic(&name) {
                            Ok(_) => {}
                            Err(e) => {
                                tracing::debug!(topic = %name, error = %e, "auto-create raced or failed")
                            }
                        }
                        if let Some(t) = broker.topic(&name) {
                            topics.push(topic_entry(broker, &t, topic_ops));
                            continue;
                        }
                    }
                    topics.push(error_entry(
                        Some(name),
                        Uuid::default(),
                        ErrorCode::UnknownTopicOrPartition,
                    ));
                }
                (None, true) => match broker.topic_by_id(&wanted.topic_id) {
                    Some(t) => topics.push(topic_entry(broker, &t, topic_ops)),
                    None => topics.push(error_entry(
                        None,
                        wanted.topic_id,
                        ErrorCode::UnknownTopicId,
                    )),
                },
                (None, false) => topics.push(error_entry(
                    None,
                    Uuid::default(),
                    ErrorCode::InvalidRequest,
                )),
            }
        }
    }
    let (host, port) = broker.advertised();
    MetadataResponse {
        throttle_time_ms: 0,
        brokers: vec![MetadataResponseBroker {
            node_id: broker.node_id(),
            host,
            port,
            rack: None,
            ..Default::default()
        }],
        cluster_id: Some(broker.cluster_id()),
        controller_id: broker.node_id(),
        topics,
        cluster_authorized_operations: if req.include_cluster_authorized_operations {
            ALL_CLUSTER_OPERATIONS
        } else {
            OPERATIONS_NOT_REQUESTED
        },
        ..Default::default()
    }
}

pub fn error_response(req: &MetadataRequest, code: ErrorCode) -> MetadataResponse {
    let topics = req
        .topics
        .iter()
        .flatten()
        .map(|t| error_entry(t.name.clone(), t.topic_id, code))
        .collect();
    MetadataResponse {
        topics,
        ..Default::default()
    }
}

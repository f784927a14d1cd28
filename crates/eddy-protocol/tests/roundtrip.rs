//! Property tests: representative messages round-trip at every valid version.
//!
//! For a value `x` and a version `v`: `decode(encode(x, v), v)` consumes the
//! whole encoding, re-encodes to the same bytes, and keeps every field that
//! exists in all versions. (Fields absent from `v` come back as defaults, so
//! `x` itself is only compared field by field.)

use bytes::Bytes;
use eddy_protocol::codec::{Decode, Encode, WriteBuf};
use eddy_protocol::messages::{
    api_versions_response::{ApiVersion, FinalizedFeatureKey, SupportedFeatureKey},
    create_topics_request::{CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig},
    fetch_request::{FetchPartition, FetchTopic, ForgottenTopic},
    fetch_response::{AbortedTransaction, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData},
    metadata_request::MetadataRequestTopic,
    metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic},
    produce_request::{PartitionProduceData, TopicProduceData},
    ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, FetchRequest, FetchResponse,
    MetadataRequest, MetadataResponse, ProduceRequest,
};
use eddy_protocol::Uuid;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

/// Encodes at `version`, decodes, re-encodes; returns the decoded value.
fn round_trip<T: Encode + Decode + std::fmt::Debug>(x: &T, version: i16) -> T {
    let mut w = WriteBuf::new();
    x.encode(&mut w, version)
        .unwrap_or_else(|e| panic!("encode v{version}: {e}"));
    let bytes = w.into_bytes();
    let mut b = bytes.clone();
    let y = T::decode(&mut b, version).unwrap_or_else(|e| panic!("decode v{version}: {e}"));
    assert!(b.is_empty(), "v{version}: {} trailing bytes", b.len());
    let mut w2 = WriteBuf::new();
    y.encode(&mut w2, version).expect("re-encode");
    assert_eq!(w2.into_bytes(), bytes, "v{version}: re-encoding differs");
    y
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._-]{0,20}"
}

fn any_bytes() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        vec(any::<u8>(), 0..64).prop_map(Bytes::from),
        // Large enough to be appended by reference.
        (4096usize..9000).prop_map(|n| Bytes::from(vec![0xab; n])),
    ]
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<[u8; 16]>().prop_map(Uuid)
}

prop_compose! {
    fn produce_request()(
        transactional_id in option::of(name()),
        acks in prop_oneof![Just(-1i16), Just(0), Just(1)],
        timeout_ms in any::<i32>(),
        topics in vec((name(), vec((any::<i32>(), option::of(any_bytes())), 0..3)), 0..3),
    ) -> ProduceRequest {
        ProduceRequest {
            transactional_id,
            acks,
            timeout_ms,
            topic_data: topics
                .into_iter()
                .map(|(name, parts)| TopicProduceData {
                    name,
                    partition_data: parts
                        .into_iter()
                        .map(|(index, records)| PartitionProduceData { index, records })
                        .collect(),
                })
                .collect(),
        }
    }
}

prop_compose! {
    fn fetch_partition_data()(
        partition_index in any::<i32>(),
        error_code in any::<i16>(),
        high_watermark in any::<i64>(),
        last_stable_offset in any::<i64>(),
        log_start_offset in any::<i64>(),
        leader in (any::<i32>(), any::<i32>()),
        aborted in option::of(vec((any::<i64>(), any::<i64>()), 0..3)),
        preferred_read_replica in any::<i32>(),
        records in option::of(any_bytes()),
    ) -> PartitionData {
        PartitionData {
            partition_index,
            error_code,
            high_watermark,
            last_stable_offset,
            log_start_offset,
            current_leader: LeaderIdAndEpoch { leader_id: leader.0, leader_epoch: leader.1 },
            aborted_transactions: aborted.map(|a| {
                a.into_iter()
                    .map(|(producer_id, first_offset)| AbortedTransaction { producer_id, first_offset })
                    .collect()
            }),
            preferred_read_replica,
            records,
            ..PartitionData::default()
        }
    }
}

prop_compose! {
    fn fetch_response()(
        throttle_time_ms in any::<i32>(),
        error_code in any::<i16>(),
        session_id in any::<i32>(),
        topics in vec((name(), uuid(), vec(fetch_partition_data(), 0..3)), 0..3),
    ) -> FetchResponse {
        FetchResponse {
            throttle_time_ms,
            error_code,
            session_id,
            responses: topics
                .into_iter()
                .map(|(topic, topic_id, partitions)| FetchableTopicResponse { topic, topic_id, partitions })
                .collect(),
            node_endpoints: Vec::new(),
        }
    }
}

prop_compose! {
    fn fetch_request()(
        replica_id in any::<i32>(),
        max_wait_ms in any::<i32>(),
        min_bytes in any::<i32>(),
        max_bytes in any::<i32>(),
        isolation_level in 0i8..2,
        session in (any::<i32>(), any::<i32>()),
        topics in vec((name(), uuid(), vec((any::<i32>(), any::<i32>(), any::<i64>(), any::<i32>()), 0..3)), 0..3),
        forgotten in vec((name(), uuid(), vec(any::<i32>(), 0..3)), 0..2),
        rack_id in name(),
    ) -> FetchRequest {
        FetchRequest {
            replica_id,
            max_wait_ms,
            min_bytes,
            max_bytes,
            isolation_level,
            session_id: session.0,
            session_epoch: session.1,
            topics: topics
                .into_iter()
                .map(|(topic, topic_id, parts)| FetchTopic {
                    topic,
                    topic_id,
                    partitions: parts
                        .into_iter()
                        .map(|(partition, current_leader_epoch, fetch_offset, partition_max_bytes)| FetchPartition {
                            partition,
                            current_leader_epoch,
                            fetch_offset,
                            partition_max_bytes,
                            ..FetchPartition::default()
                        })
                        .collect(),
                })
                .collect(),
            forgotten_topics_data: forgotten
                .into_iter()
                .map(|(topic, topic_id, partitions)| ForgottenTopic { topic, topic_id, partitions })
                .collect(),
            rack_id,
            ..FetchRequest::default()
        }
    }
}

prop_compose! {
    fn metadata_response()(
        throttle_time_ms in any::<i32>(),
        brokers in vec((any::<i32>(), name(), any::<i32>(), option::of(name())), 0..3),
        cluster_id in option::of(name()),
        controller_id in any::<i32>(),
        topics in vec((any::<i16>(), name(), uuid(), any::<bool>(),
            vec((any::<i16>(), any::<i32>(), any::<i32>(), vec(any::<i32>(), 0..4)), 0..3)), 0..3),
    ) -> MetadataResponse {
        MetadataResponse {
            throttle_time_ms,
            brokers: brokers
                .into_iter()
                .map(|(node_id, host, port, rack)| MetadataResponseBroker { node_id, host, port, rack })
                .collect(),
            cluster_id,
            controller_id,
            topics: topics
                .into_iter()
                .map(|(error_code, name, topic_id, is_internal, parts)| MetadataResponseTopic {
                    error_code,
                    // Name is nullable only from v12: keep it set.
                    name: Some(name),
                    topic_id,
                    is_internal,
                    partitions: parts
                        .into_iter()
                        .map(|(error_code, partition_index, leader_id, replicas)| MetadataResponsePartition {
                            error_code,
                            partition_index,
                            leader_id,
                            isr_nodes: replicas.clone(),
                            replica_nodes: replicas,
                            ..MetadataResponsePartition::default()
                        })
                        .collect(),
                    ..MetadataResponseTopic::default()
                })
                .collect(),
            ..MetadataResponse::default()
        }
    }
}

prop_compose! {
    fn api_versions_response()(
        error_code in any::<i16>(),
        keys in vec((any::<i16>(), any::<i16>(), any::<i16>()), 0..60),
        throttle_time_ms in any::<i32>(),
        features in vec((name(), any::<i16>(), any::<i16>()), 0..3),
        epoch in any::<i64>(),
        zk in any::<bool>(),
    ) -> ApiVersionsResponse {
        ApiVersionsResponse {
            error_code,
            api_keys: keys
                .into_iter()
                .map(|(api_key, min_version, max_version)| ApiVersion { api_key, min_version, max_version })
                .collect(),
            throttle_time_ms,
            supported_features: features
                .iter()
                .map(|(name, min_version, max_version)| SupportedFeatureKey {
                    name: name.clone(),
                    min_version: *min_version,
                    max_version: *max_version,
                })
                .collect(),
            finalized_features_epoch: epoch,
            finalized_features: features
                .into_iter()
                .map(|(name, min_version_level, max_version_level)| FinalizedFeatureKey {
                    name,
                    min_version_level,
                    max_version_level,
                })
                .collect(),
            zk_migration_ready: zk,
        }
    }
}

prop_compose! {
    fn create_topics_request()(
        topics in vec((name(), any::<i32>(), any::<i16>(),
            vec((any::<i32>(), vec(any::<i32>(), 0..3)), 0..3),
            vec((name(), option::of(name())), 0..3)), 0..3),
        timeout_ms in any::<i32>(),
        validate_only in any::<bool>(),
    ) -> CreateTopicsRequest {
        CreateTopicsRequest {
            topics: topics
                .into_iter()
                .map(|(name, num_partitions, replication_factor, assignments, configs)| CreatableTopic {
                    name,
                    num_partitions,
                    replication_factor,
                    assignments: assignments
                        .into_iter()
                        .map(|(partition_index, broker_ids)| CreatableReplicaAssignment { partition_index, broker_ids })
                        .collect(),
                    configs: configs
                        .into_iter()
                        .map(|(name, value)| CreatableTopicConfig { name, value })
                        .collect(),
                })
                .collect(),
            timeout_ms,
            validate_only,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn produce_request_all_versions(x in produce_request()) {
        for v in ProduceRequest::MIN_VERSION..=ProduceRequest::MAX_VERSION {
            let mut x = x.clone();
            if v < 3 {
                x.transactional_id = None; // absent before v3: decodes as the default
            }
            let y = round_trip(&x, v);
            prop_assert_eq!(&y, &x);
        }
    }

    #[test]
    fn fetch_response_all_versions(x in fetch_response()) {
        for v in FetchResponse::MIN_VERSION..=FetchResponse::MAX_VERSION {
            let y = round_trip(&x, v);
            prop_assert_eq!(y.responses.len(), x.responses.len());
            for (a, b) in y.responses.iter().zip(&x.responses) {
                if v <= 12 { prop_assert_eq!(&a.topic, &b.topic); } else { prop_assert_eq!(a.topic_id, b.topic_id); }
                for (p, q) in a.partitions.iter().zip(&b.partitions) {
                    prop_assert_eq!(p.partition_index, q.partition_index);
                    prop_assert_eq!(p.high_watermark, q.high_watermark);
                    prop_assert_eq!(&p.records, &q.records);
                    if v >= 4 { prop_assert_eq!(&p.aborted_transactions, &q.aborted_transactions); }
                    if v >= 12 { prop_assert_eq!(&p.current_leader, &q.current_leader); }
                }
            }
        }
    }

    #[test]
    fn fetch_request_all_versions(x in fetch_request()) {
        for v in FetchRequest::MIN_VERSION..=FetchRequest::MAX_VERSION {
            let y = round_trip(&x, v);
            prop_assert_eq!(y.max_wait_ms, x.max_wait_ms);
            prop_assert_eq!(y.topics.len(), x.topics.len());
            if v >= 7 { prop_assert_eq!(&y.forgotten_topics_data.len(), &x.forgotten_topics_data.len()); }
        }
    }

    #[test]
    fn metadata_response_all_versions(x in metadata_response()) {
        for v in MetadataResponse::MIN_VERSION..=MetadataResponse::MAX_VERSION {
            let y = round_trip(&x, v);
            prop_assert_eq!(y.brokers.len(), x.brokers.len());
            for (a, b) in y.brokers.iter().zip(&x.brokers) {
                prop_assert_eq!(&a.host, &b.host);
                prop_assert_eq!(a.port, b.port);
            }
            prop_assert_eq!(y.topics.len(), x.topics.len());
            for (a, b) in y.topics.iter().zip(&x.topics) {
                prop_assert_eq!(&a.name, &b.name);
                prop_assert_eq!(&a.partitions.len(), &b.partitions.len());
            }
        }
    }

    #[test]
    fn metadata_request_all_versions(names in option::of(vec(name(), 0..4)), auto in any::<bool>()) {
        for v in MetadataRequest::MIN_VERSION..=MetadataRequest::MAX_VERSION {
            // Null (all topics) exists from v1; v0 uses an empty array.
            let topics = match (&names, v) {
                (None, 0) => Some(Vec::new()),
                (None, _) => None,
                (Some(n), _) => Some(n.iter().map(|n| MetadataRequestTopic {
                    name: Some(n.clone()),
                    ..Default::default()
                }).collect()),
            };
            let x = MetadataRequest {
                topics,
                allow_auto_topic_creation: v < 4 || auto,
                ..MetadataRequest::default()
            };
            let y = round_trip(&x, v);
            prop_assert_eq!(&y.topics, &x.topics);
        }
    }

    #[test]
    fn api_versions_response_all_versions(x in api_versions_response()) {
        for v in ApiVersionsResponse::MIN_VERSION..=ApiVersionsResponse::MAX_VERSION {
            let y = round_trip(&x, v);
            prop_assert_eq!(&y.api_keys, &x.api_keys);
            prop_assert_eq!(y.error_code, x.error_code);
            if v >= 3 {
                prop_assert_eq!(&y.supported_features, &x.supported_features);
                prop_assert_eq!(y.zk_migration_ready, x.zk_migration_ready);
            }
        }
    }

    #[test]
    fn api_versions_request_all_versions(n in name(), s in name()) {
        for v in ApiVersionsRequest::MIN_VERSION..=ApiVersionsRequest::MAX_VERSION {
            let x = ApiVersionsRequest { client_software_name: n.clone(), client_software_version: s.clone() };
            let y = round_trip(&x, v);
            if v >= 3 { prop_assert_eq!(&y, &x); } else { prop_assert_eq!(y, ApiVersionsRequest::default()); }
        }
    }

    #[test]
    fn create_topics_request_all_versions(x in create_topics_request()) {
        for v in CreateTopicsRequest::MIN_VERSION..=CreateTopicsRequest::MAX_VERSION {
            let y = round_trip(&x, v);
            prop_assert_eq!(&y.topics, &x.topics);
            if v >= 1 { prop_assert_eq!(y.validate_only, x.validate_only); }
        }
    }
}

#[test]
fn decoded_records_are_zero_copy() {
    let records = Bytes::from(vec![7u8; 10_000]);
    let req = ProduceRequest {
        acks: -1,
        timeout_ms: 30_000,
        topic_data: vec![TopicProduceData {
            name: "t".into(),
            partition_data: vec![PartitionProduceData {
                index: 0,
                records: Some(records.clone()),
            }],
        }],
        ..ProduceRequest::default()
    };
    for v in [3, 8, 9, 11] {
        let mut w = WriteBuf::new();
        req.encode(&mut w, v).unwrap();
        // The records are a chunk of their own, by reference.
        let chunks = w.into_chunks();
        assert!(chunks.iter().any(|c| c.as_ptr() == records.as_ptr()));
        let wire: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let wire = Bytes::from(wire);
        let range = wire.as_ptr() as usize..wire.as_ptr() as usize + wire.len();
        let mut b = wire.clone();
        let back = ProduceRequest::decode(&mut b, v).unwrap();
        let got = back.topic_data[0].partition_data[0]
            .records
            .as_ref()
            .unwrap();
        assert_eq!(got, &records);
        // The decoded records point into the input buffer.
        assert!(range.contains(&(got.as_ptr() as usize)));
    }
}

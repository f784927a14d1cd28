//! Known byte vectors: encodings written out by hand from the protocol spec
//! (and checked against what clients send).

use bytes::Bytes;
use eddy_protocol::codec::{Decode, Encode, WriteBuf};
use eddy_protocol::messages::{
    api_versions_response::ApiVersion,
    metadata_request::MetadataRequestTopic,
    produce_request::{PartitionProduceData, TopicProduceData},
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, ProduceRequest,
    RequestHeader, RequestKind, ResponseHeader,
};
use eddy_protocol::Uuid;

fn encode<T: Encode>(x: &T, version: i16) -> Vec<u8> {
    let mut w = WriteBuf::new();
    x.encode(&mut w, version).expect("encode");
    w.into_bytes().to_vec()
}

fn decode<T: Decode>(bytes: &[u8], version: i16) -> T {
    let mut b = Bytes::copy_from_slice(bytes);
    let x = T::decode(&mut b, version).expect("decode");
    assert!(b.is_empty(), "{} trailing bytes", b.len());
    x
}

/// ApiVersions v3 request as librdkafka 2.3.0 sends it (after the size prefix).
const API_VERSIONS_V3_REQUEST: &[u8] = &[
    0x00, 0x12, // api key 18
    0x00, 0x03, // api version 3
    0x00, 0x00, 0x00, 0x01, // correlation id 1
    0x00, 0x07, b'r', b'd', b'k', b'a', b'f', b'k',
    b'a', // client id: classic string even in header v2
    0x00, // header tagged fields
    0x0b, b'l', b'i', b'b', b'r', b'd', b'k', b'a', b'f', b'k', b'a', // compact "librdkafka"
    0x06, b'2', b'.', b'3', b'.', b'0', // compact "2.3.0"
    0x00, // body tagged fields
];

#[test]
fn api_versions_v3_request_from_librdkafka() {
    let mut b = Bytes::from_static(API_VERSIONS_V3_REQUEST);
    let (header, body) = RequestKind::decode_with_header(&mut b).expect("decode");
    assert!(b.is_empty());
    assert_eq!(header.request_api_key, 18);
    assert_eq!(header.request_api_version, 3);
    assert_eq!(header.correlation_id, 1);
    assert_eq!(header.client_id.as_deref(), Some("rdkafka"));
    let RequestKind::ApiVersions(req) = &body else {
        panic!("not ApiVersions: {body:?}");
    };
    assert_eq!(req.client_software_name, "librdkafka");
    assert_eq!(req.client_software_version, "2.3.0");

    let mut w = WriteBuf::new();
    body.encode_with_header(&header, &mut w).unwrap();
    assert_eq!(w.into_bytes().as_ref(), API_VERSIONS_V3_REQUEST);
}

#[test]
fn api_versions_v0_request_is_empty() {
    assert!(encode(&ApiVersionsRequest::default(), 0).is_empty());
    let _: ApiVersionsRequest = decode(&[], 0);
}

/// Metadata v12 request for topic "test", auto-create on, no authorized operations.
const METADATA_V12_REQUEST_BODY: &[u8] = &[
    0x02, // compact array, 1 topic
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // topic id: zero uuid
    0x05, b't', b'e', b's', b't', // compact nullable string "test"
    0x00, // topic tagged fields
    0x01, // allow auto topic creation
    0x00, // include topic authorized operations
    0x00, // tagged fields
];

#[test]
fn metadata_v12_request() {
    let req = MetadataRequest {
        topics: Some(vec![MetadataRequestTopic {
            topic_id: Uuid::ZERO,
            name: Some("test".into()),
        }]),
        allow_auto_topic_creation: true,
        include_cluster_authorized_operations: false,
        include_topic_authorized_operations: false,
    };
    assert_eq!(encode(&req, 12), METADATA_V12_REQUEST_BODY);
    assert_eq!(
        decode::<MetadataRequest>(METADATA_V12_REQUEST_BODY, 12),
        req
    );

    // All topics: a null compact array is a single 0 byte.
    let all = MetadataRequest {
        topics: None,
        allow_auto_topic_creation: true,
        ..MetadataRequest::default()
    };
    assert_eq!(encode(&all, 12), [0x00, 0x01, 0x00, 0x00]);
    // ... and -1 in the classic encoding (v1-v8).
    assert_eq!(encode(&all, 4), [0xff, 0xff, 0xff, 0xff, 0x01]);
}

#[test]
fn metadata_v12_request_with_header() {
    let mut frame = vec![
        0x00, 0x03, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x2a, 0xff, 0xff, 0x00,
    ];
    frame.extend_from_slice(METADATA_V12_REQUEST_BODY);
    let mut b = Bytes::from(frame);
    let (h, body) = RequestKind::decode_with_header(&mut b).unwrap();
    assert_eq!(h.correlation_id, 42);
    assert_eq!(h.client_id, None);
    assert_eq!(body.api_key(), ApiKey::Metadata);
}

#[test]
fn produce_v3_request() {
    let req = ProduceRequest {
        transactional_id: None,
        acks: -1,
        timeout_ms: 1500,
        topic_data: vec![TopicProduceData {
            name: "t".into(),
            partition_data: vec![PartitionProduceData {
                index: 2,
                records: Some(Bytes::from_static(&[1, 2, 3])),
            }],
        }],
    };
    let expected: &[u8] = &[
        0xff, 0xff, // null transactional id
        0xff, 0xff, // acks -1
        0x00, 0x00, 0x05, 0xdc, // timeout 1500
        0x00, 0x00, 0x00, 0x01, // 1 topic
        0x00, 0x01, b't', // name
        0x00, 0x00, 0x00, 0x01, // 1 partition
        0x00, 0x00, 0x00, 0x02, // index 2
        0x00, 0x00, 0x00, 0x03, 1, 2, 3, // records
    ];
    assert_eq!(encode(&req, 3), expected);
    assert_eq!(decode::<ProduceRequest>(expected, 3), req);

    // v9 (flexible): compact everything, tagged sections at each level.
    let expected9: &[u8] = &[
        0x00, // null compact transactional id
        0xff, 0xff, 0x00, 0x00, 0x05, 0xdc, 0x02, 0x02, b't', 0x02, 0x00, 0x00, 0x00, 0x02, 0x04,
        1, 2, 3, 0x00, // partition tags
        0x00, // topic tags
        0x00, // request tags
    ];
    assert_eq!(encode(&req, 9), expected9);
    assert_eq!(decode::<ProduceRequest>(expected9, 9), req);
}

#[test]
fn api_versions_v3_response_with_tagged_fields() {
    let resp = ApiVersionsResponse {
        error_code: 0,
        api_keys: vec![ApiVersion {
            api_key: 0,
            min_version: 0,
            max_version: 11,
        }],
        throttle_time_ms: 0,
        finalized_features_epoch: 5,
        ..ApiVersionsResponse::default()
    };
    let expected: &[u8] = &[
        0x00, 0x00, // error code
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x00, // 1 api key + its tags
        0x00, 0x00, 0x00, 0x00, // throttle
        0x01, // one tagged field
        0x01, 0x08, 0, 0, 0, 0, 0, 0, 0, 5, // tag 1 (FinalizedFeaturesEpoch), 8 bytes
    ];
    assert_eq!(encode(&resp, 3), expected);
    assert_eq!(decode::<ApiVersionsResponse>(expected, 3), resp);

    // Unknown tags are skipped; known ones after them are still read.
    let with_unknown: &[u8] = &[
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // no api keys, throttle 0
        0x02, // two tagged fields
        0x01, 0x08, 0, 0, 0, 0, 0, 0, 0, 9, // tag 1
        0x63, 0x03, 0xaa, 0xbb, 0xcc, // tag 99, unknown
    ];
    let r: ApiVersionsResponse = decode(with_unknown, 3);
    assert_eq!(r.finalized_features_epoch, 9);
    assert!(r.api_keys.is_empty());
}

#[test]
fn default_values_from_the_definitions() {
    let r = ApiVersionsResponse::default();
    assert_eq!(r.finalized_features_epoch, -1);
    let m = eddy_protocol::messages::metadata_response::MetadataResponseTopic::default();
    assert_eq!(m.topic_authorized_operations, -2147483648);
    let f = eddy_protocol::messages::fetch_request::FetchRequest::default();
    assert_eq!(f.replica_id, -1);
    assert_eq!(f.session_epoch, -1);
    assert_eq!(f.max_bytes, 0x7fffffff);
    assert_eq!(f.cluster_id, None);
    let p = eddy_protocol::messages::fetch_response::PartitionData::default();
    assert_eq!(p.records, None);
    assert_eq!(p.preferred_read_replica, -1);
}

#[test]
fn response_headers() {
    let h = ResponseHeader { correlation_id: 7 };
    assert_eq!(encode(&h, 0), [0, 0, 0, 7]);
    assert_eq!(encode(&h, 1), [0, 0, 0, 7, 0]);
    assert_eq!(decode::<ResponseHeader>(&[0, 0, 0, 7, 0], 1), h);
}

#[test]
fn request_headers() {
    let h = RequestHeader {
        request_api_key: 1,
        request_api_version: 4,
        correlation_id: 9,
        client_id: Some("c".into()),
    };
    assert_eq!(encode(&h, 1), [0, 1, 0, 4, 0, 0, 0, 9, 0, 1, b'c']);
    assert_eq!(encode(&h, 2), [0, 1, 0, 4, 0, 0, 0, 9, 0, 1, b'c', 0]);
    // v0 (ControlledShutdown v0 only) has no client id.
    assert_eq!(encode(&h, 0), [0, 1, 0, 4, 0, 0, 0, 9]);
    let null = RequestHeader {
        client_id: None,
        ..h.clone()
    };
    assert_eq!(encode(&null, 2), [0, 1, 0, 4, 0, 0, 0, 9, 0xff, 0xff, 0]);
    assert_eq!(
        decode::<RequestHeader>(&[0, 1, 0, 4, 0, 0, 0, 9, 0xff, 0xff, 0], 2),
        null
    );
    assert!(RequestHeader::decode(&mut Bytes::new(), 3).is_err());
}

#[test]
fn header_versions() {
    assert_eq!(ApiKey::Produce.request_header_version(8), 1);
    assert_eq!(ApiKey::Produce.request_header_version(9), 2);
    assert_eq!(ApiKey::Produce.response_header_version(8), 0);
    assert_eq!(ApiKey::Produce.response_header_version(9), 1);
    assert_eq!(ApiKey::ApiVersions.request_header_version(3), 2);
    assert_eq!(ApiKey::ApiVersions.response_header_version(3), 0);
    assert_eq!(ApiKey::ControlledShutdown.request_header_version(0), 0);
    assert_eq!(ApiKey::Metadata.request_header_version(12), 2);
    assert_eq!(ApiKey::Fetch.response_header_version(12), 1);
}

#[test]
fn api_keys() {
    assert_eq!(ApiKey::from_i16(0), Some(ApiKey::Produce));
    assert_eq!(ApiKey::from_i16(18), Some(ApiKey::ApiVersions));
    assert_eq!(ApiKey::from_i16(-1), None);
    assert_eq!(ApiKey::from_i16(10_000), None);
    assert_eq!(ApiKey::ApiVersions as i16, 18);
    assert_eq!(ApiKey::Produce.name(), "Produce");
    assert_eq!(ApiKey::Produce.min_version(), 0);
    assert_eq!(ApiKey::Produce.max_version(), 11);
    assert_eq!(ApiKey::Produce.flexible_min_version(), 9);
    assert_eq!(ApiKey::SaslHandshake.flexible_min_version(), i16::MAX);
    assert!(ApiKey::ALL.windows(2).all(|w| w[0] < w[1]));
    for k in ApiKey::ALL {
        assert_eq!(ApiKey::from_i16(*k as i16), Some(*k));
        assert!(k.min_version() <= k.max_version());
    }
}

#[test]
fn consumer_protocol_subscription_with_version_prefix() {
    use eddy_protocol::messages::ConsumerProtocolSubscription;
    let v0: &[u8] = &[
        0, 0, // version 0
        0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c', // topics
        0xff, 0xff, 0xff, 0xff, // null user data
    ];
    let mut b = Bytes::from_static(v0);
    let (version, sub) = ConsumerProtocolSubscription::decode_versioned(&mut b).unwrap();
    assert!(b.is_empty());
    assert_eq!(version, 0);
    assert_eq!(sub.topics, ["a", "bc"]);
    assert_eq!(sub.user_data, None);
    let mut w = WriteBuf::new();
    sub.encode_versioned(&mut w, 0).unwrap();
    assert_eq!(w.into_bytes().as_ref(), v0);

    // A newer version than we know is read as our latest (fields are only appended).
    let mut w = WriteBuf::new();
    sub.encode_versioned(&mut w, ConsumerProtocolSubscription::MAX_VERSION)
        .unwrap();
    let mut newer = w.into_bytes().to_vec();
    newer[1] = 9;
    newer.extend_from_slice(&[1, 2, 3]);
    let (version, again) =
        ConsumerProtocolSubscription::decode_versioned(&mut Bytes::from(newer)).unwrap();
    assert_eq!(version, 9);
    assert_eq!(again, sub);
    assert!(
        ConsumerProtocolSubscription::decode_versioned(&mut Bytes::from_static(&[0xff, 0xff]))
            .is_err()
    );
}

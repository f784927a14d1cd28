//! Requests the client sends: the [`Request`] trait tying each request type
//! to its response type, api key and the versions this client implements;
//! api version negotiation; and request framing.

use std::collections::HashMap;

use bytes::{Buf, Bytes};
use eddy_protocol::messages::{self, ApiKey, RequestHeader, ResponseHeader};
use eddy_protocol::{Decode, DecodeError, Encode, EncodeError, WriteBuf};

/// A request message with its response type, api key and the range of
/// versions that this client implements for it.
///
/// The range is what the client's code understands, not what the codec can
/// encode: a caller whose semantics differ by version (e.g. Fetch with topic
/// ids from v13) reads the negotiated version from the connection.
pub trait Request: Encode + Send + Sync {
    type Response: Decode + Send;
    const KEY: ApiKey;
    /// Lowest version the client implements.
    const MIN_VERSION: i16;
    /// Highest version the client implements.
    const MAX_VERSION: i16;
}

macro_rules! requests {
    ($($req:ident => $resp:ident, $key:ident, $min:expr, $max:expr;)*) => {$(
        impl Request for messages::$req {
            type Response = messages::$resp;
            const KEY: ApiKey = ApiKey::$key;
            const MIN_VERSION: i16 = $min;
            const MAX_VERSION: i16 = $max;
        }
    )*

        /// The (api key, min, max) versions this client implements, for display.
        pub const CLIENT_APIS: &[(ApiKey, i16, i16)] = &[$((ApiKey::$key, $min, $max),)*];
    };
}

// Minimums: magic v2 record batches need Produce v3 / Fetch v4; ListOffsets
// v1 is the first with a single offset per partition; Metadata v1 the first
// where a null topic list means "all topics"; CreateTopics v2 and
// DescribeConfigs v1 are what Kafka 4 still accepts.
requests! {
    ProduceRequest => ProduceResponse, Produce, 3, 11;
    FetchRequest => FetchResponse, Fetch, 4, 17;
    ListOffsetsRequest => ListOffsetsResponse, ListOffsets, 1, 10;
    MetadataRequest => MetadataResponse, Metadata, 1, 12;
    ApiVersionsRequest => ApiVersionsResponse, ApiVersions, 0, 4;
    CreateTopicsRequest => CreateTopicsResponse, CreateTopics, 2, 7;
    DeleteTopicsRequest => DeleteTopicsResponse, DeleteTopics, 1, 6;
    DeleteRecordsRequest => DeleteRecordsResponse, DeleteRecords, 0, 2;
    DescribeConfigsRequest => DescribeConfigsResponse, DescribeConfigs, 1, 4;
    CreatePartitionsRequest => CreatePartitionsResponse, CreatePartitions, 0, 3;
    IncrementalAlterConfigsRequest => IncrementalAlterConfigsResponse, IncrementalAlterConfigs, 0, 1;
    DescribeClusterRequest => DescribeClusterResponse, DescribeCluster, 0, 1;
    FindCoordinatorRequest => FindCoordinatorResponse, FindCoordinator, 0, 6;
    ListGroupsRequest => ListGroupsResponse, ListGroups, 0, 5;
    DescribeGroupsRequest => DescribeGroupsResponse, DescribeGroups, 0, 5;
    DeleteGroupsRequest => DeleteGroupsResponse, DeleteGroups, 0, 2;
    OffsetFetchRequest => OffsetFetchResponse, OffsetFetch, 1, 9;
    OffsetCommitRequest => OffsetCommitResponse, OffsetCommit, 2, 9;
    OffsetDeleteRequest => OffsetDeleteResponse, OffsetDelete, 0, 0;
    ConsumerGroupHeartbeatRequest => ConsumerGroupHeartbeatResponse, ConsumerGroupHeartbeat, 0, 1;
    JoinGroupRequest => JoinGroupResponse, JoinGroup, 1, 9;
    SyncGroupRequest => SyncGroupResponse, SyncGroup, 0, 5;
    HeartbeatRequest => HeartbeatResponse, Heartbeat, 0, 4;
    LeaveGroupRequest => LeaveGroupResponse, LeaveGroup, 0, 5;
    ConsumerGroupDescribeRequest => ConsumerGroupDescribeResponse, ConsumerGroupDescribe, 0, 0;
    InitProducerIdRequest => InitProducerIdResponse, InitProducerId, 0, 5;
}

/// The versions a broker serves, from its ApiVersions response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerApiVersions {
    ranges: HashMap<i16, (i16, i16)>,
}

impl BrokerApiVersions {
    pub fn from_response(resp: &messages::ApiVersionsResponse) -> Self {
        BrokerApiVersions {
            ranges: resp
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect(),
        }
    }

    /// The (min, max) versions the broker serves for `key`.
    pub fn range(&self, key: ApiKey) -> Option<(i16, i16)> {
        self.ranges.get(&key.as_i16()).copied()
    }

    /// Every api the broker serves as (raw api key, min, max), sorted by key.
    pub fn all(&self) -> Vec<(i16, i16, i16)> {
        let mut v: Vec<_> = self.ranges.iter().map(|(k, (a, b))| (*k, *a, *b)).collect();
        v.sort_unstable();
        v
    }

    /// The version to use for `key`: the highest version both sides serve,
    /// capped by `cap` if given. `Err` carries the broker's range as text
    /// when there is no common version.
    pub fn negotiate(
        &self,
        key: ApiKey,
        client_min: i16,
        client_max: i16,
        cap: Option<i16>,
    ) -> Result<i16, String> {
        let (bmin, bmax) = self.range(key).ok_or_else(|| "none".to_string())?;
        let max = client_max.min(bmax).min(cap.unwrap_or(i16::MAX));
        if max < client_min || max < bmin {
            return Err(format!("{bmin}-{bmax}"));
        }
        Ok(max)
    }
}

/// Encodes a request frame: the 4-byte size, the header at the header
/// version for `key`/`version`, then the body. Large record sets stay shared.
pub fn encode_request<R: Encode + ?Sized>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    body: &R,
) -> Result<Vec<Bytes>, EncodeError> {
    let header = RequestHeader {
        request_api_key: key.as_i16(),
        request_api_version: version,
        correlation_id,
        client_id: client_id.map(str::to_string),
    };
    let mut buf = WriteBuf::with_capacity(256);
    header.encode(&mut buf, key.request_header_version(version))?;
    body.encode(&mut buf, version)?;
    let len = i32::try_from(buf.len()).map_err(|_| EncodeError::TooLong(buf.len()))?;
    let mut chunks = Vec::with_capacity(4);
    chunks.push(Bytes::copy_from_slice(&len.to_be_bytes()));
    chunks.extend(buf.into_chunks());
    Ok(chunks)
}

/// The correlation id at the start of a response frame (after the size).
pub fn peek_correlation_id(frame: &[u8]) -> Option<i32> {
    let b: [u8; 4] = frame.get(..4)?.try_into().ok()?;
    Some(i32::from_be_bytes(b))
}

/// Decodes the response header of `key`/`version` and returns the body.
pub fn split_response(mut frame: Bytes, key: ApiKey, version: i16) -> Result<Bytes, DecodeError> {
    ResponseHeader::decode(&mut frame, key.response_header_version(version))?;
    Ok(frame)
}

/// Decodes a complete response body, rejecting trailing bytes only when they
/// cannot be explained by a newer minor format (we accept them, like the Java
/// client, which ignores unknown trailing data).
pub fn decode_body<T: Decode>(mut body: Bytes, version: i16) -> Result<T, DecodeError> {
    let v = T::decode(&mut body, version)?;
    if body.has_remaining() {
        tracing::trace!(extra = body.remaining(), "response has trailing bytes");
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_protocol::messages::api_versions_response::ApiVersion;
    use eddy_protocol::messages::{ApiVersionsResponse, MetadataRequest};

    fn versions(list: &[(ApiKey, i16, i16)]) -> BrokerApiVersions {
        let resp = ApiVersionsResponse {
            api_keys: list
                .iter()
                .map(|(k, a, b)| ApiVersion {
                    api_key: k.as_i16(),
                    min_version: *a,
                    max_version: *b,
                })
                .collect(),
            ..Default::default()
        };
        BrokerApiVersions::from_response(&resp)
    }

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        let v = versions(&[
            (ApiKey::Fetch, 4, 17),
            (ApiKey::Metadata, 0, 8),
            (ApiKey::Produce, 3, 7),
        ]);
        assert_eq!(v.negotiate(ApiKey::Fetch, 4, 12, None), Ok(12));
        assert_eq!(v.negotiate(ApiKey::Fetch, 4, 17, None), Ok(17));
        assert_eq!(v.negotiate(ApiKey::Metadata, 1, 12, None), Ok(8));
        assert_eq!(v.negotiate(ApiKey::Produce, 3, 11, Some(5)), Ok(5));
    }

    #[test]
    fn negotiation_refuses_without_common_version() {
        let v = versions(&[(ApiKey::Produce, 0, 2), (ApiKey::Fetch, 13, 17)]);
        // Broker too old for us.
        assert_eq!(
            v.negotiate(ApiKey::Produce, 3, 11, None),
            Err("0-2".to_string())
        );
        // Broker too new for us.
        assert_eq!(
            v.negotiate(ApiKey::Fetch, 4, 12, None),
            Err("13-17".to_string())
        );
        // Api not served at all.
        assert_eq!(
            v.negotiate(ApiKey::DescribeCluster, 0, 1, None),
            Err("none".to_string())
        );
        // A cap below our minimum.
        let v = versions(&[(ApiKey::Produce, 0, 9)]);
        assert!(v.negotiate(ApiKey::Produce, 3, 11, Some(2)).is_err());
    }

    #[test]
    fn request_frame_layout() {
        let req = MetadataRequest {
            topics: None,
            ..Default::default()
        };
        let chunks = encode_request(ApiKey::Metadata, 1, 42, Some("cli"), &req).unwrap();
        let frame: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let size = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(size, frame.len() - 4);
        // Header v1: api key, version, correlation id, client id (i16 length).
        assert_eq!(&frame[4..6], &3i16.to_be_bytes());
        assert_eq!(&frame[6..8], &1i16.to_be_bytes());
        assert_eq!(&frame[8..12], &42i32.to_be_bytes());
        assert_eq!(&frame[12..14], &3i16.to_be_bytes());
        assert_eq!(&frame[14..17], b"cli");
        // Metadata v1 body: null topics array (-1).
        assert_eq!(&frame[17..21], &(-1i32).to_be_bytes());
        assert_eq!(frame.len(), 21);
    }

    #[test]
    fn flexible_header_has_tagged_fields() {
        let req = MetadataRequest::default();
        let chunks = encode_request(ApiKey::Metadata, 12, 7, Some("c"), &req).unwrap();
        let frame: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        // Header v2: ..., client id "c" (i16 length 1), then an empty tag buffer.
        assert_eq!(&frame[12..15], &[0, 1, b'c']);
        assert_eq!(frame[15], 0);
    }

    #[test]
    fn response_header_versions() {
        // ApiVersions responses always have header v0 (no tag buffer).
        let body = split_response(
            Bytes::from_static(&[0, 0, 0, 9, 0xAA]),
            ApiKey::ApiVersions,
            3,
        )
        .unwrap();
        assert_eq!(&body[..], &[0xAA]);
        // Flexible Metadata (v9+): header v1 with a tag buffer.
        let body = split_response(
            Bytes::from_static(&[0, 0, 0, 9, 0, 0xBB]),
            ApiKey::Metadata,
            12,
        )
        .unwrap();
        assert_eq!(&body[..], &[0xBB]);
        assert_eq!(peek_correlation_id(&[0, 0, 1, 0, 5]), Some(256));
        assert_eq!(peek_correlation_id(&[0, 0]), None);
    }
}

//! Request routing: decode the header, check the API version against what this broker
//! serves, decode the body, call the handler, encode the response with its header.

use std::sync::Arc;

use bytes::Bytes;
use eddy_protocol::codec::{Decode, DecodeError, Encode, WriteBuf};
use eddy_protocol::error_code::ErrorCode;
use eddy_protocol::messages::*;

use crate::broker::Broker;
use crate::handlers;

/// What a handler knows about the request besides its body.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

/// The APIs and version ranges this broker serves (also what ApiVersions advertises).
/// Produce starts at v3 and Fetch at v4 because only magic 2 record batches are stored
/// (Kafka 4.0 made the same cut).
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 0),
    (ApiKey::InitProducerId, 0, 5),
];

/// The served version range of an API, if it is served.
pub fn served_versions(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, lo, hi)| (*lo, *hi))
}

/// Why a frame could not be answered (the connection is closed).
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("request frame shorter than a request header")]
    ShortFrame,
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("api {api:?} is not served by this broker")]
    NotServed { api: ApiKey },
    #[error("api {api:?} version {version} is not served and cannot be decoded")]
    UndecodableVersion { api: ApiKey, version: i16 },
    #[error("cannot decode {api:?} v{version}: {source}")]
    Decode {
        api: ApiKey,
        version: i16,
        source: DecodeError,
    },
    #[error("cannot encode the response: {0}")]
    Encode(String),
}

fn encode_response<R: Encode>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<Vec<Bytes>, RouteError> {
    let mut w = WriteBuf::with_capacity(256);
    let header = ResponseHeader {
        correlation_id,
        ..Default::default()
    };
    header
        .encode(&mut w, key.response_header_version(version))
        .map_err(|e| RouteError::Encode(e.to_string()))?;
    body.encode(&mut w, version)
        .map_err(|e| RouteError::Encode(e.to_string()))?;
    let len = w.len() as u32;
    let mut chunks = Vec::with_capacity(4);
    chunks.push(Bytes::copy_from_slice(&len.to_be_bytes()));
    chunks.extend(w.into_chunks());
    Ok(chunks)
}

/// Handles one request frame; `Ok(None)` means no response is sent (Produce with acks=0).
pub async fn handle_frame(
    broker: &Arc<Broker>,
    mut frame: Bytes,
) -> Result<Option<Vec<Bytes>>, RouteError> {
    if frame.len() < 8 {
        return Err(RouteError::ShortFrame);
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let key = ApiKey::from_i16(api_key).ok_or(RouteError::UnknownApiKey(api_key))?;
    let header = RequestHeader::decode(&mut frame, key.request_header_version(version)).map_err(
        |source| RouteError::Decode {
            api: key,
            version,
            source,
        },
    )?;
    let ctx = RequestContext {
        api_version: version,
        correlation_id: header.correlation_id,
        client_id: header.client_id,
    };
    let served = served_versions(key);
    let unsupported = match served {
        None => return Err(RouteError::NotServed { api: key }),
        Some((lo, hi)) => version < lo || version > hi,
    };
    if unsupported && key == ApiKey::ApiVersions {
        // Kafka's rule: answer an ApiVersions request of an unknown version with a v0
        // response carrying UNSUPPORTED_VERSION and the versions we do serve.
        let resp = handlers::api_versions::response(ErrorCode::UnsupportedVersion);
        return encode_response(key, 0, ctx.correlation_id, &resp).map(Some);
    }
    if unsupported && (version < key.min_version() || version > key.max_version()) {
        return Err(RouteError::UndecodableVersion { api: key, version });
    }
    let corr = ctx.correlation_id;
    macro_rules! route {
        ($req:ty, $module:ident) => {{
            let req = <$req>::decode(&mut frame, version).map_err(|source| RouteError::Decode {
                api: key,
                version,
                source,
            })?;
            let resp = if unsupported {
                handlers::$module::error_response(&req, ErrorCode::UnsupportedVersion)
            } else {
                handlers::$module::handle(broker, &ctx, req).await
            };
            encode_response(key, version, corr, &resp).map(Some)
        }};
    }
    match key {
        ApiKey::Produce => {
            let req = ProduceRequest::decode(&mut frame, version).map_err(|source| {
                RouteError::Decode {
                    api: key,
                    version,
                    source,
                }
            })?;
            let acks = req.acks;
            // The record sets are slices of the frame; with the frame's own handle gone, a
            // partition's records can often be patched in place without a copy.
            drop(frame);
            let resp = if unsupported {
                handlers::produce::error_response(&req, ErrorCode::UnsupportedVersion)
            } else {
                handlers::produce::handle(broker, &ctx, req).await
            };
            if acks == 0 {
                return Ok(None);
            }
            encode_response(key, version, corr, &resp).map(Some)
        }
        ApiKey::ApiVersions => route!(ApiVersionsRequest, api_versions),
        ApiKey::Metadata => route!(MetadataRequest, metadata),
        ApiKey::Fetch => route!(FetchRequest, fetch),
        ApiKey::ListOffsets => route!(ListOffsetsRequest, list_offsets),
        ApiKey::CreateTopics => route!(CreateTopicsRequest, create_topics),
        ApiKey::DeleteTopics => route!(DeleteTopicsRequest, delete_topics),
        ApiKey::CreatePartitions => route!(CreatePartitionsRequest, create_partitions),
        ApiKey::DeleteRecords => route!(DeleteRecordsRequest, delete_records),
        ApiKey::DescribeConfigs => route!(DescribeConfigsRequest, describe_configs),
        ApiKey::AlterConfigs => route!(AlterConfigsRequest, alter_configs),
        ApiKey::IncrementalAlterConfigs => {
            route!(IncrementalAlterConfigsRequest, incremental_alter_configs)
        }
        ApiKey::DescribeCluster => route!(DescribeClusterRequest, describe_cluster),
        ApiKey::FindCoordinator => route!(FindCoordinatorRequest, find_coordinator),
        ApiKey::JoinGroup => route!(JoinGroupRequest, join_group),
        ApiKey::SyncGroup => route!(SyncGroupRequest, sync_group),
        ApiKey::Heartbeat => route!(HeartbeatRequest, heartbeat),
        ApiKey::LeaveGroup => route!(LeaveGroupRequest, leave_group),
        ApiKey::OffsetCommit => route!(OffsetCommitRequest, offset_commit),
        ApiKey::OffsetFetch => route!(OffsetFetchRequest, offset_fetch),
        ApiKey::OffsetDelete => route!(OffsetDeleteRequest, offset_delete),
        ApiKey::ListGroups => route!(ListGroupsRequest, list_groups),
        ApiKey::DescribeGroups => route!(DescribeGroupsRequest, describe_groups),
        ApiKey::DeleteGroups => route!(DeleteGroupsRequest, delete_groups),
        ApiKey::ConsumerGroupHeartbeat => {
            route!(ConsumerGroupHeartbeatRequest, consumer_group_heartbeat)
        }
        ApiKey::ConsumerGroupDescribe => {
            route!(ConsumerGroupDescribeRequest, consumer_group_describe)
        }
        ApiKey::InitProducerId => route!(InitProducerIdRequest, init_producer_id),
        other => Err(RouteError::NotServed { api: other }),
    }
}

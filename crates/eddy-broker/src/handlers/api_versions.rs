//! ApiVersions: the APIs and version ranges this broker serves.

use std::sync::Arc;

use eddy_protocol::error_code::ErrorCode;
use eddy_protocol::messages::api_versions_response::ApiVersion;
use eddy_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use crate::broker::Broker;
use crate::router::{RequestContext, SUPPORTED_APIS};

/// The ApiVersions response with `error`.
pub fn response(error: ErrorCode) -> ApiVersionsResponse {
    ApiVersionsResponse {
        error_code: error.code(),
        api_keys: SUPPORTED_APIS
            .iter()
            .map(|(k, lo, hi)| ApiVersion {
                api_key: *k as i16,
                min_version: *lo,
                max_version: *hi,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

pub async fn handle(
    _broker: &Arc<Broker>,
    _ctx: &RequestContext,
    _req: ApiVersionsRequest,
) -> ApiVersionsResponse {
    response(ErrorCode::None)
}

pub fn error_response(_req: &ApiVersionsRequest, code: ErrorCode) -> ApiVersionsResponse {
    response(code)
}

//! InitProducerId: hands out producer ids and epochs to idempotent producers (the Java
//! client and kafka-python enable idempotence by default). Transactional ids need the
//! transaction coordinator, which comes with exactly-once support.

use std::sync::Arc;

use eddy_protocol::error_code::ErrorCode;
use eddy_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use crate::broker::Broker;
use crate::router::RequestContext;

pub async fn handle(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    if req.transactional_id.is_some() {
        return error_response(&req, ErrorCode::CoordinatorNotAvailable);
    }
    // KIP-360: a producer that already has an id asks for its epoch to be bumped.
    if req.producer_id >= 0
        && req.producer_epoch >= 0
        && req.producer_epoch < i16::MAX - 1
        && broker.issued_producer_id(req.producer_id)
    {
        return InitProducerIdResponse {
            error_code: 0,
            producer_id: req.producer_id,
            producer_epoch: req.producer_epoch + 1,
            ..Default::default()
        };
    }
    match broker.allocate_producer_id() {
        Ok(id) => InitProducerIdResponse {
            error_code: 0,
            producer_id: id,
            producer_epoch: 0,
            ..Default::default()
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot allocate a producer id");
            error_response(&req, ErrorCode::KafkaStorageError)
        }
    }
}

pub fn error_response(_req: &InitProducerIdRequest, code: ErrorCode) -> InitProducerIdResponse {
    InitProducerIdResponse {
        error_code: code.code(),
        producer_id: -1,
        producer_epoch: -1,
        ..Default::default()
    }
}

//! Kafka magic v2 record batches: parsing, validation, in-place patching,
//! decoding, building, and the compression codecs.
//!
//! Layout of a batch (all integers big-endian):
//!
//! | offset | field |
//! |---|---|
//! | 0 | baseOffset i64 |
//! | 8 | batchLength i32 (bytes after this field) |
//! | 12 | partitionLeaderEpoch i32 |
//! | 16 | magic i8 (= 2) |
//! | 17 | crc u32: CRC-32C of bytes 21..end |
//! | 21 | attributes i16 |
//! | 23 | lastOffsetDelta i32 |
//! | 27 | baseTimestamp i64 |
//! | 35 | maxTimestamp i64 |
//! | 43 | producerId i64 |
//! | 51 | producerEpoch i16 |
//! | 53 | baseSequence i32 |
//! | 57 | recordsCount i32 |
//! | 61 | records (compressed as a whole if a codec is set) |

mod batch;
mod builder;
mod compression;
mod record;
mod varint;

pub use batch::{
    compute_crc, set_base_offset, set_log_append_time, set_partition_leader_epoch,
    set_producer_state, validate_batch, BatchHeader, BatchIter, TimestampType,
    ATTR_COMPRESSION_MASK, ATTR_CONTROL, ATTR_DELETE_HORIZON, ATTR_TIMESTAMP_TYPE,
    ATTR_TRANSACTIONAL, BATCH_HEADER_LEN, BATCH_LENGTH_OFFSET, CRC_OFFSET, LOG_OVERHEAD,
    MAGIC_OFFSET, MAGIC_V2, MIN_BATCH_LENGTH,
};
pub use builder::RecordBatchBuilder;
pub use compression::{compress, decompress, Compression};
pub use record::{decode_records, Header, Record};

/// Errors of parsing, validating, decoding or building record batches.
#[derive(thiserror::Error, Debug)]
pub enum RecordError {
    /// Fewer bytes than the batch (or its header) needs.
    #[error("truncated record batch: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("unsupported record batch magic {0} (only v2 is supported)")]
    InvalidMagic(i8),
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("invalid record batch length {0}")]
    InvalidBatchLength(i32),
    #[error("invalid record batch: {0}")]
    InvalidBatch(String),
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    #[error("unknown compression codec {0} in batch attributes")]
    UnknownCompression(i16),
    #[error("unknown compression type name {0:?}")]
    UnknownCompressionName(String),
    #[error("compression error: {0}")]
    Compression(String),
    #[error("decompressed records exceed the limit of {limit} bytes")]
    DecompressedTooLarge { limit: usize },
}

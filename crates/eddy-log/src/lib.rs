//! eddy-log: the on-disk storage of one partition, in Kafka's layout.
//!
//! A partition directory (`<data-dir>/<topic>-<partition>/`) holds segments
//! named by their base offset (`00000000000000000000.log`), each with a sparse
//! offset index (`.index`: relative offset u32 + position u32, big-endian) and
//! a time index (`.timeindex`: timestamp i64 + relative offset u32), plus the
//! checkpoint files `leader-epoch-checkpoint`, `log-start-offset` and
//! `recovery-point`.
//!
//! Durability: [`Log::append`] returns after write(2), so acknowledged data is
//! in the page cache and survives a process crash; fsync happens per
//! `flush_messages` / `flush_ms` and on [`Log::flush`] / [`Log::close`]. After
//! an unclean stop, [`Log::open`] rescans everything after the recovery point
//! (length, magic, CRC-32C, offsets) and truncates at the first bad batch.
//!
//! Compaction (`cleanup.policy=compact`): a [`Cleaner`] rewrites the closed
//! segments of a log keeping the latest record of each key; see
//! [`Log::plan_cleaning`], [`Cleaner::clean`], [`Log::finish_cleaning`].

mod checkpoint;
mod cleaner;
mod index;
mod log;
mod offset_map;
mod segment;

pub use crate::cleaner::{CleanPlan, CleanStats, Cleaned, Cleaner, CleanerConfig};
pub use crate::log::Log;
pub use crate::offset_map::OffsetMap;

use eddy_protocol::records::RecordError;

/// Per-partition log settings (Kafka topic configs of the same names).
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would exceed this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll a non-empty segment this old.
    pub segment_ms: i64,
    /// `segment.index.bytes`: size the index files are preallocated to.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes of batches between offset index entries.
    pub index_interval_bytes: u64,
    /// `retention.ms`: -1 = infinite.
    pub retention_ms: i64,
    /// `retention.bytes`: -1 = infinite.
    pub retention_bytes: i64,
    /// `flush.messages`: fsync after this many records (u64::MAX = never).
    pub flush_messages: u64,
    /// `flush.ms`: fsync when the last flush is this old (i64::MAX = never).
    pub flush_ms: i64,
    /// `file.delete.delay.ms`: deleted segments linger as `.deleted` this long.
    pub file_delete_delay_ms: i64,
    /// `max.message.bytes`: largest batch accepted by `append`.
    pub max_message_bytes: usize,
    /// `cleanup.policy`: retention (`delete`) and/or compaction (`compact`).
    pub cleanup_policy: CleanupPolicy,
    /// `min.cleanable.dirty.ratio`: dirty share above which the cleaner runs.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: records younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a record older than this makes the log
    /// eligible for compaction whatever its dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms`: how long tombstones survive after the cleaning
    /// that first saw them (their batch's delete horizon, KIP-534).
    pub delete_retention_ms: i64,
}

/// `cleanup.policy`: `delete`, `compact` or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// Retention by time and size deletes old segments.
    pub delete: bool,
    /// The cleaner keeps only the latest record of each key.
    pub compact: bool,
}

impl CleanupPolicy {
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };

    /// Parse Kafka's comma-separated list (`delete`, `compact`, `compact,delete`).
    /// Unknown entries are ignored; an empty list means neither.
    pub fn parse(s: &str) -> CleanupPolicy {
        let has = |p: &str| s.split(',').any(|x| x.trim().eq_ignore_ascii_case(p));
        CleanupPolicy {
            delete: has("delete"),
            compact: has("compact"),
        }
    }
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        CleanupPolicy::DELETE
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            flush_messages: u64::MAX,
            flush_ms: i64::MAX,
            file_delete_delay_ms: 60_000,
            max_message_bytes: 1_048_588,
            cleanup_policy: CleanupPolicy::DELETE,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 86_400_000,
        }
    }
}

/// Result of an append.
#[derive(Debug, Clone)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    /// The LogAppendTime stamped on the batches, -1 unless LogAppendTime.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// Largest batch max timestamp of the append.
    pub max_timestamp: i64,
}

/// Result of a read: whole batches, byte-identical to what was stored.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub data: bytes::Bytes,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// What [`Log::scan_tail`] walked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailScan {
    /// Bytes of batches whose headers were read.
    pub bytes: u64,
    /// Batches passed to the callback (at or after the log start).
    pub batches: u64,
    /// Base offset of the first of them (the log end offset if none).
    pub from_offset: i64,
}

/// What `Log::open` did to recover the directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryInfo {
    /// Segments loaded.
    pub segments: usize,
    /// Bytes of batches re-validated after the recovery point.
    pub rescanned_bytes: u64,
    /// Bytes cut off (torn or corrupt tail, and deleted later segments).
    pub truncated_bytes: u64,
    /// Index files (offset or time) rebuilt because missing or corrupt.
    pub rebuilt_indexes: usize,
    /// Whether the recovery point was behind the end (an unclean stop).
    pub unclean: bool,
}

/// Errors of the log.
#[derive(thiserror::Error, Debug)]
pub enum LogError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("offset {offset} out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    #[error("corrupt log: {0}")]
    Corrupt(String),
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    RecordTooLarge { size: usize, max: usize },
    #[error("invalid offset: expected {expected}, got {got}")]
    InvalidOffset { expected: i64, got: i64 },
    #[error("invalid records: {0}")]
    InvalidRecords(String),
    #[error("invalid record batch: {0}")]
    Record(#[from] RecordError),
    #[error("invalid log directory {0}")]
    InvalidDirectory(String),
    #[error("log cleaning aborted: {0}")]
    CleaningAborted(String),
}

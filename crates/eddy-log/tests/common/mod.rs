#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use eddy_log::{Log, LogConfig};
use eddy_protocol::records::{BatchIter, Compression, RecordBatchBuilder};

/// A batch of `n` records with values of `size` bytes, timestamps ts, ts+1...
pub fn batch(n: usize, ts: i64, size: usize, seed: u8) -> BytesMut {
    let mut b = RecordBatchBuilder::new(Compression::None, ts);
    let value = vec![seed; size];
    for i in 0..n {
        b.append(ts + i as i64, Some(&[seed, i as u8]), Some(&value), &[]);
    }
    BytesMut::from(&b.build().expect("build")[..])
}

pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 * 1024,
        segment_index_bytes: 4096,
        index_interval_bytes: 256,
        file_delete_delay_ms: 0,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

/// Every batch from the log start to the end, in order, via `read`.
pub fn read_all(log: &Log) -> Vec<Bytes> {
    let end = log.log_end_offset();
    let mut off = log.log_start_offset();
    let mut out = Vec::new();
    while off < end {
        let r = log.read(off, 7000, end).expect("read");
        assert!(!r.data.is_empty(), "empty read at {off} < {end}");
        for item in BatchIter::new(&r.data) {
            let (h, range) = item.expect("valid batch from read");
            out.push(r.data.slice(range));
            off = h.last_offset() + 1;
        }
    }
    out
}

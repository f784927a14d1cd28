//! Model-based property test: any sequence of appends, rolls, clean and
//! unclean reopens (with a torn tail) and truncations reads back exactly the
//! acknowledged batches that should survive, byte for byte.

mod common;

use std::fs;
use std::path::Path;

use bytes::Bytes;
use common::{batch, read_all};
use eddy_log::{Log, LogConfig};
use eddy_protocol::records::validate_batch;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append {
        batches: u8,
        records: u8,
        size: u16,
    },
    Roll,
    CloseReopen,
    /// Drop without close, then cut the last segment file at this fraction.
    UncleanReopen {
        cut: f64,
    },
    Flush,
    TruncateTo {
        frac: f64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..4, 1u8..6, 0u16..2500).prop_map(|(batches, records, size)| Op::Append { batches, records, size }),
        1 => Just(Op::Roll),
        1 => Just(Op::CloseReopen),
        1 => (0.0f64..1.0).prop_map(|cut| Op::UncleanReopen { cut }),
        1 => Just(Op::Flush),
        1 => (0.0f64..1.0).prop_map(|frac| Op::TruncateTo { frac }),
    ]
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 12_000,
        segment_index_bytes: 800,
        index_interval_bytes: 1000,
        file_delete_delay_ms: 0,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn last_offset_end(b: &Bytes) -> i64 {
    validate_batch(b).map(|h| h.last_offset() + 1).unwrap_or(-1)
}

fn run(dir: &Path, ops: &[Op]) -> Result<(), TestCaseError> {
    let cfg = config();
    let mut log =
        Some(Log::open(dir, cfg.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?);
    let mut model: Vec<Bytes> = Vec::new();
    let mut seed = 0u8;
    for op in ops {
        let l = log.as_mut().ok_or_else(|| TestCaseError::fail("no log"))?;
        match *op {
            Op::Append {
                batches,
                records,
                size,
            } => {
                let mut buf = bytes::BytesMut::new();
                for _ in 0..batches {
                    seed = seed.wrapping_add(1);
                    buf.extend_from_slice(&batch(
                        records as usize,
                        1000 + seed as i64,
                        size as usize,
                        seed,
                    ));
                }
                let expect_first = l.log_end_offset();
                let info = l
                    .append(&mut buf, Some(1), None)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(info.first_offset, expect_first);
                for item in eddy_protocol::records::BatchIter::new(&buf) {
                    let (_, r) = item.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    model.push(Bytes::copy_from_slice(&buf[r]));
                }
            }
            Op::Roll => {
                let mut c = cfg.clone();
                c.segment_ms = 0;
                l.set_config(c);
                l.tick(i64::MAX / 4)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                l.set_config(cfg.clone());
            }
            Op::Flush => l.flush().map_err(|e| TestCaseError::fail(e.to_string()))?,
            Op::CloseReopen => {
                if let Some(l) = log.take() {
                    l.close().map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
                let l =
                    Log::open(dir, cfg.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(l.recovery_info().rescanned_bytes, 0);
                log = Some(l);
            }
            Op::UncleanReopen { cut } => {
                let bases = l.segment_base_offsets();
                let last_base = *bases.last().unwrap_or(&0);
                drop(log.take());
                let seg = dir.join(format!("{last_base:020}.log"));
                let len = fs::metadata(&seg).map(|m| m.len()).unwrap_or(0);
                let cut_at = (len as f64 * cut) as u64;
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(&seg)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                f.set_len(cut_at)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                drop(f);
                // survivors: all batches of earlier segments, and those of the
                // last segment that end at or before the cut
                let mut pos = 0u64;
                model.retain(|b| {
                    let h = validate_batch(b).ok();
                    let base = h.map(|h| h.base_offset).unwrap_or(0);
                    if base < last_base {
                        return true;
                    }
                    pos += b.len() as u64;
                    pos <= cut_at
                });
                let l =
                    Log::open(dir, cfg.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                match model.last() {
                    Some(b) => prop_assert_eq!(l.log_end_offset(), last_offset_end(b)),
                    None => prop_assert_eq!(l.log_end_offset(), l.log_start_offset()),
                }
                log = Some(l);
            }
            Op::TruncateTo { frac } => {
                let start = l.log_start_offset();
                let end = l.log_end_offset();
                let target = start + ((end - start) as f64 * frac) as i64;
                l.truncate_to(target)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                model.retain(|b| last_offset_end(b) <= target);
                match model.last() {
                    Some(b) => prop_assert_eq!(l.log_end_offset(), last_offset_end(b)),
                    None => prop_assert_eq!(l.log_end_offset(), l.log_start_offset()),
                }
            }
        }
        let l = log.as_ref().ok_or_else(|| TestCaseError::fail("no log"))?;
        let got = read_all(l);
        prop_assert_eq!(got.len(), model.len());
        for (i, (g, m)) in got.iter().zip(&model).enumerate() {
            prop_assert!(g == m, "batch {} differs", i);
        }
    }
    if let Some(l) = log {
        l.close().map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    let l = Log::open(dir, cfg).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(read_all(&l), model);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        let d = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        run(d.path(), &ops)?;
    }
}

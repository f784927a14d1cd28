//! Behaviour of the partition log: rolls, indexes, reads, timestamps,
//! retention, delete-records, epochs, truncation.

mod common;

use bytes::BytesMut;
use common::{batch, read_all, small_config};
use eddy_log::{Log, LogConfig, LogError};
use eddy_protocol::records::{validate_batch, BatchIter, TimestampType};

#[test]
fn append_assigns_offsets_and_reads_back() {
    let d = tempfile::tempdir().unwrap();
    let mut log = Log::open(d.path(), small_config()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    let mut stored = Vec::new();
    for i in 0..10 {
        let mut b = batch(3, 1000 + i, 100, i as u8);
        let info = log.append(&mut b, Some(0), None).unwrap();
        assert_eq!(info.first_offset, i * 3);
        assert_eq!(info.last_offset, i * 3 + 2);
        assert_eq!(info.log_append_time, -1);
        assert_eq!(info.max_timestamp, 1002 + i);
        let h = validate_batch(&b).unwrap();
        assert_eq!(h.base_offset, i * 3);
        assert_eq!(h.partition_leader_epoch, 0);
        stored.push(b.freeze());
    }
    assert_eq!(log.log_end_offset(), 30);
    assert_eq!(read_all(&log), stored);
    // Several batches at once, in one append.
    let mut two = batch(2, 5, 10, 1);
    two.extend_from_slice(&batch(4, 6, 10, 2));
    let info = log.append(&mut two, Some(0), None).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (30, 35));
    let got: Vec<_> = BatchIter::new(&two)
        .map(|r| r.unwrap().0.base_offset)
        .collect();
    assert_eq!(got, vec![30, 32]);
}

#[test]
fn roll_by_size() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 10_000,
        ..small_config()
    };
    let mut log = Log::open(d.path(), cfg).unwrap();
    let mut stored = Vec::new();
    for i in 0..40 {
        let mut b = batch(2, i, 1000, i as u8);
        log.append(&mut b, None, None).unwrap();
        stored.push(b.freeze());
    }
    assert!(log.segment_count() >= 8, "{} segments", log.segment_count());
    for e in std::fs::read_dir(d.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "log") {
            assert!(std::fs::metadata(&p).unwrap().len() <= 10_000);
            let name = p.file_stem().unwrap().to_str().unwrap().to_string();
            assert_eq!(name.len(), 20);
        }
    }
    assert_eq!(read_all(&log), stored);
    assert!(d.path().join("00000000000000000000.log").exists());
    assert!(d.path().join("00000000000000000000.index").exists());
    assert!(d.path().join("00000000000000000000.timeindex").exists());
    // closed segment indexes are trimmed to whole entries
    let idx = std::fs::metadata(d.path().join("00000000000000000000.index"))
        .unwrap()
        .len();
    assert!(idx < 4096 && idx / 8 * 8 == idx, "index size {idx}");
    let tidx = std::fs::metadata(d.path().join("00000000000000000000.timeindex"))
        .unwrap()
        .len();
    assert!(tidx / 12 * 12 == tidx && tidx > 0);
    // A single batch larger than segment.bytes still goes in (own segment).
    let big_cfg = LogConfig {
        max_message_bytes: 1 << 20,
        ..log.config().clone()
    };
    log.set_config(big_cfg);
    let mut big = batch(1, 0, 20_000, 9);
    log.append(&mut big, None, None).unwrap();
    stored.push(big.freeze());
    assert_eq!(read_all(&log), stored);
}

#[test]
fn roll_by_time() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: 100,
        ..small_config()
    };
    let mut log = Log::open(d.path(), cfg).unwrap();
    log.append(&mut batch(1, 0, 10, 0), None, None).unwrap();
    log.append(&mut batch(1, 0, 10, 0), None, None).unwrap();
    assert_eq!(log.segment_count(), 1);
    std::thread::sleep(std::time::Duration::from_millis(150));
    log.append(&mut batch(1, 0, 10, 0), None, None).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    // tick rolls a due, non-empty segment; never an empty one
    let far = i64::MAX / 2;
    log.tick(far).unwrap();
    assert_eq!(log.segment_count(), 3);
    log.tick(far).unwrap();
    assert_eq!(log.segment_count(), 3);
    assert_eq!(read_all(&log).len(), 3);
}

#[test]
fn every_offset_readable_and_mid_batch_reads() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        index_interval_bytes: 300,
        segment_bytes: 8000,
        ..small_config()
    };
    let mut log = Log::open(d.path(), cfg).unwrap();
    let mut batches = Vec::new();
    for i in 0..60usize {
        let mut b = batch(1 + i % 5, i as i64 * 10, (i * 37) % 400, i as u8);
        let info = log.append(&mut b, None, None).unwrap();
        batches.push((info.first_offset, info.last_offset, b.freeze()));
    }
    let end = log.log_end_offset();
    for off in 0..end {
        let r = log.read(off, 1, end).unwrap();
        let (h, range) = BatchIter::new(&r.data).next().unwrap().unwrap();
        assert_eq!(
            range.len(),
            r.data.len(),
            "exactly one batch when max_bytes is tiny"
        );
        assert!(
            h.base_offset <= off && off <= h.last_offset(),
            "offset {off}"
        );
        let (_, _, want) = batches
            .iter()
            .find(|(f, l, _)| *f <= off && off <= *l)
            .unwrap();
        assert_eq!(&r.data, want);
        // bigger reads: whole batches only, within max_bytes
        let r = log.read(off, 1500, end).unwrap();
        let n: usize = BatchIter::new(&r.data).map(|x| x.unwrap().1.len()).sum();
        assert_eq!(n, r.data.len());
        assert!(r.data.len() <= 1500 || BatchIter::new(&r.data).count() == 1);
        assert_eq!((r.log_start_offset, r.log_end_offset), (0, end));
    }
    // max_offset: no batch whose base offset >= max_offset
    let hw = batches[10].0;
    let r = log.read(0, 1 << 20, hw).unwrap();
    let last = BatchIter::new(&r.data).last().unwrap().unwrap().0;
    assert_eq!(last.base_offset, batches[9].0);
    assert!(log.read(hw, 1 << 20, hw).unwrap().data.is_empty());
    assert!(log.read(end, 1 << 20, end).unwrap().data.is_empty());
    assert!(matches!(
        log.read(end + 1, 100, end + 1),
        Err(LogError::OffsetOutOfRange { offset, start: 0, end: e }) if offset == end + 1 && e == end
    ));
}

#[test]
fn timestamps_lookup() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 3000,
        index_interval_bytes: 200,
        ..small_config()
    };
    let mut log = Log::open(d.path(), cfg).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    assert_eq!(log.max_timestamp_and_offset().unwrap(), None);
    // batch i: 4 records at 1000*i + 0..3 (offsets 4i..4i+3)
    for i in 1..=50i64 {
        log.append(&mut batch(4, 1000 * i, 100, 0), None, None)
            .unwrap();
    }
    assert!(log.segment_count() > 3);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 1000)));
    for i in 1..=50i64 {
        let base = 4 * (i - 1);
        assert_eq!(
            log.offset_for_timestamp(1000 * i).unwrap(),
            Some((base, 1000 * i))
        );
        assert_eq!(
            log.offset_for_timestamp(1000 * i + 2).unwrap(),
            Some((base + 2, 1000 * i + 2))
        );
        // between batches: first record of the next batch
        if i < 50 {
            assert_eq!(
                log.offset_for_timestamp(1000 * i + 500).unwrap(),
                Some((base + 4, 1000 * (i + 1)))
            );
        }
    }
    assert_eq!(log.offset_for_timestamp(50_004).unwrap(), None);
    assert_eq!(log.max_timestamp_and_offset().unwrap(), Some((50_003, 199)));
    // out-of-order timestamps: the max is in an older batch
    log.append(&mut batch(2, 10, 10, 0), None, None).unwrap();
    assert_eq!(log.max_timestamp_and_offset().unwrap(), Some((50_003, 199)));
    // survives reopen (time index of the active segment)
    let dir = log.dir().to_path_buf();
    log.close().unwrap();
    let log = Log::open(&dir, small_config()).unwrap();
    assert_eq!(log.max_timestamp_and_offset().unwrap(), Some((50_003, 199)));
    assert_eq!(
        log.offset_for_timestamp(25_001).unwrap(),
        Some((97, 25_001))
    );
}

#[test]
fn log_append_time() {
    let d = tempfile::tempdir().unwrap();
    let mut log = Log::open(d.path(), small_config()).unwrap();
    let mut b = batch(3, 5, 10, 0);
    let info = log.append(&mut b, Some(3), Some(777)).unwrap();
    assert_eq!(info.log_append_time, 777);
    assert_eq!(info.max_timestamp, 777);
    let r = log.read(0, 1000, 3).unwrap();
    let h = validate_batch(&r.data).unwrap();
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!((h.max_timestamp, h.partition_leader_epoch), (777, 3));
    assert_eq!(log.offset_for_timestamp(700).unwrap(), Some((0, 777)));
}

#[test]
fn record_too_large_and_bad_input() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        max_message_bytes: 500,
        ..small_config()
    };
    let mut log = Log::open(d.path(), cfg).unwrap();
    assert!(matches!(
        log.append(&mut batch(1, 0, 600, 0), None, None),
        Err(LogError::RecordTooLarge { .. })
    ));
    assert!(log.append(&mut BytesMut::new(), None, None).is_err());
    let mut torn = batch(1, 0, 10, 0);
    torn.truncate(torn.len() - 1);
    assert!(log.append(&mut torn, None, None).is_err());
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
}

#[test]
fn retention_by_time_keeps_active_and_persists_start() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 2000,
        retention_ms: 10_000,
        ..small_config()
    };
    let mut log = Log::open(d.path(), cfg.clone()).unwrap();
    let now = 1_000_000_000;
    // old data
    for i in 0..10 {
        log.append(&mut batch(1, now - 100_000 + i, 500, 0), None, None)
            .unwrap();
    }
    // recent data
    for i in 0..10 {
        log.append(&mut batch(1, now - 1_000 + i, 500, 1), None, None)
            .unwrap();
    }
    let before = log.segment_count();
    let deleted = log.apply_retention(now).unwrap();
    assert!(deleted >= 3, "deleted {deleted} of {before}");
    assert_eq!(log.segment_count(), before - deleted);
    let start = log.log_start_offset();
    assert!(start > 0 && start <= 10, "start {start}");
    assert_eq!(log.segment_base_offsets()[0], start);
    // all old-only segments gone, recent data intact
    assert_eq!(read_all(&log).len() as i64, 20 - start);
    // everything expired: the active segment stays
    let n = log.apply_retention(now + 1_000_000).unwrap();
    assert!(n > 0);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);
    let start = log.log_start_offset();
    drop(log);
    let log = Log::open(d.path(), cfg).unwrap();
    assert_eq!(log.log_start_offset(), start);
    assert!(matches!(
        log.read(0, 10, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn retention_by_bytes() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 2000,
        retention_bytes: 5000,
        ..small_config()
    };
    let mut log = Log::open(d.path(), cfg.clone()).unwrap();
    for i in 0..30 {
        log.append(&mut batch(1, i, 500, 0), None, None).unwrap();
    }
    let total = log.size_bytes();
    let n = log.apply_retention(0).unwrap();
    assert!(n > 0);
    assert!(
        log.size_bytes() <= 5000 + 2000,
        "size {} of {total}",
        log.size_bytes()
    );
    assert!(log.size_bytes() >= 5000 - 2000);
    assert_eq!(log.apply_retention(0).unwrap(), 0);
    let start = log.log_start_offset();
    assert_eq!(read_all(&log).len() as i64, 30 - start);
    log.close().unwrap();
    let log = Log::open(d.path(), cfg).unwrap();
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(log.log_end_offset(), 30);
}

#[test]
fn delete_records_before() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 2000,
        ..small_config()
    };
    let mut log = Log::open(d.path(), cfg.clone()).unwrap();
    for i in 0..20 {
        log.append(&mut batch(2, i, 400, 0), None, None).unwrap();
    }
    let segs = log.segment_count();
    assert_eq!(log.delete_records_before(5).unwrap(), 5);
    assert!(matches!(
        log.read(4, 10, 40),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // offset 5 is inside batch [4, 5]: the containing batch is returned
    let r = log.read(5, 10, 40).unwrap();
    assert_eq!(validate_batch(&r.data).unwrap().base_offset, 4);
    assert_eq!(log.delete_records_before(3).unwrap(), 5, "never moves back");
    assert!(matches!(
        log.delete_records_before(41),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.delete_records_before(30).unwrap(), 30);
    assert!(log.segment_count() < segs);
    assert!(log.segment_base_offsets()[0] <= 30);
    // up to the end: all closed segments go, the active one stays
    assert_eq!(log.delete_records_before(40).unwrap(), 40);
    assert_eq!(log.segment_count(), 1);
    assert!(log.read(40, 10, 40).unwrap().data.is_empty());
    drop(log);
    let mut log = Log::open(d.path(), cfg).unwrap();
    assert_eq!(log.log_start_offset(), 40);
    assert_eq!(log.log_end_offset(), 40);
    let info = log.append(&mut batch(1, 0, 1, 0), None, None).unwrap();
    assert_eq!(info.first_offset, 40);
    assert_eq!(info.log_start_offset, 40);
}

#[test]
fn leader_epochs_recorded_persisted_truncated() {
    let d = tempfile::tempdir().unwrap();
    let mut log = Log::open(d.path(), small_config()).unwrap();
    log.append(&mut batch(2, 0, 1, 0), Some(1), None).unwrap();
    log.append(&mut batch(2, 0, 1, 0), Some(1), None).unwrap();
    log.append(&mut batch(2, 0, 1, 0), Some(3), None).unwrap();
    log.append(&mut batch(2, 0, 1, 0), Some(2), None).unwrap(); // stale: ignored
    log.append(&mut batch(2, 0, 1, 0), Some(5), None).unwrap();
    assert_eq!(log.leader_epoch_cache(), &[(1, 0), (3, 4), (5, 8)]);
    let text = std::fs::read_to_string(d.path().join("leader-epoch-checkpoint")).unwrap();
    assert_eq!(text, "0\n3\n1 0\n3 4\n5 8\n");
    log.truncate_to(6).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.leader_epoch_cache(), &[(1, 0), (3, 4)]);
    log.close().unwrap();
    let log = Log::open(d.path(), small_config()).unwrap();
    assert_eq!(log.leader_epoch_cache(), &[(1, 0), (3, 4)]);
}

#[test]
fn truncate_to_and_follower_append() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 1500,
        ..small_config()
    };
    let mut log = Log::open(d.path(), cfg).unwrap();
    let mut stored = Vec::new();
    for i in 0..20 {
        let mut b = batch(3, i, 300, i as u8);
        log.append(&mut b, None, None).unwrap();
        stored.push(b.freeze());
    }
    assert!(log.segment_count() > 3);
    // mid-batch: the containing batch goes too
    log.truncate_to(31).unwrap();
    assert_eq!(log.log_end_offset(), 30);
    assert_eq!(read_all(&log), stored[..10]);
    // at a segment boundary
    let bases = log.segment_base_offsets();
    let b = bases[1];
    log.truncate_to(b).unwrap();
    assert_eq!(log.log_end_offset(), b);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(read_all(&log), stored[..(b / 3) as usize]);
    // follower appends must continue at the end, offsets increasing
    let mut next = stored[(b / 3) as usize].to_vec();
    assert!(matches!(
        log.append_as_follower(&stored[0]),
        Err(LogError::InvalidOffset { .. })
    ));
    eddy_protocol::records::set_partition_leader_epoch(&mut next, 4);
    let info = log.append_as_follower(&next).unwrap();
    assert_eq!(info.first_offset, b);
    assert_eq!(log.leader_epoch_cache(), &[(4, b)]);
    let mut bad = stored[(b / 3) as usize + 1].to_vec();
    bad[70] ^= 1;
    assert!(log.append_as_follower(&bad).is_err(), "CRC checked");
    // truncate everything
    log.truncate_to(0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert_eq!(log.segment_count(), 1);
    log.append(&mut batch(1, 0, 1, 0), None, None).unwrap();
    assert_eq!(log.log_end_offset(), 1);
}

#[test]
fn flush_messages_and_delete() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("topic-0");
    let cfg = LogConfig {
        flush_messages: 3,
        ..small_config()
    };
    let mut log = Log::open(&dir, cfg).unwrap();
    log.append(&mut batch(2, 0, 1, 0), None, None).unwrap();
    assert_eq!(log.recovery_point(), 0);
    log.append(&mut batch(2, 0, 1, 0), None, None).unwrap();
    assert_eq!(log.recovery_point(), 4);
    let rp = std::fs::read_to_string(dir.join("recovery-point")).unwrap();
    assert_eq!(rp, "0\n4\n");
    log.delete().unwrap();
    assert!(!dir.exists());
}

/// An idempotent batch of `n` records of `size` bytes from producer `pid`.
fn producer_batch(pid: i64, seq: i32, n: usize, size: usize) -> BytesMut {
    use eddy_protocol::records::{Compression, RecordBatchBuilder};
    let mut b = RecordBatchBuilder::new(Compression::None, 1000).producer(pid, 0, seq);
    let value = vec![7u8; size];
    for i in 0..n {
        b.append(1000 + i as i64, None, Some(&value), &[]);
    }
    BytesMut::from(&b.build().expect("build")[..])
}

#[test]
fn scan_tail_walks_the_last_bytes_in_order_from_a_batch_boundary() {
    let d = tempfile::tempdir().unwrap();
    // 16 KiB segments, an index entry every 256 bytes.
    let mut log = Log::open(d.path(), small_config()).unwrap();
    let mut sizes = Vec::new();
    for i in 0..200i32 {
        let mut b = producer_batch(i64::from(i % 3), i / 3 * 2, 2, 150);
        sizes.push(b.len() as u64);
        log.append(&mut b, Some(0), None).unwrap();
    }
    assert!(log.segment_count() > 3, "{} segments", log.segment_count());
    let total: u64 = sizes.iter().sum();
    drop(log);
    let log = Log::open(d.path(), small_config()).unwrap();

    // Everything: every batch, in log order.
    let mut seen = Vec::new();
    let all = log
        .scan_tail(u64::MAX, |h| {
            seen.push((h.base_offset, h.producer_id, h.base_sequence))
        })
        .unwrap();
    assert_eq!(all.batches, 200);
    assert_eq!(all.bytes, total);
    assert_eq!(all.from_offset, 0);
    let want: Vec<_> = (0..200i32)
        .map(|i| (i64::from(i) * 2, i64::from(i % 3), i / 3 * 2))
        .collect();
    assert_eq!(seen, want);

    // A budget spanning a segment boundary: at least the budget, at most the
    // budget plus an index interval and a batch, and exactly the newest batches.
    for budget in [1u64, 300, 5_000, 20_000, 40_000] {
        let mut seen = Vec::new();
        let scan = log.scan_tail(budget, |h| seen.push(h.base_offset)).unwrap();
        let n = seen.len();
        assert!(n > 0, "budget {budget}: nothing scanned");
        assert_eq!(scan.batches as usize, n);
        assert!(scan.bytes >= budget.min(total), "budget {budget}: {scan:?}");
        assert!(
            scan.bytes <= budget + 256 + 400,
            "budget {budget}: {scan:?}"
        );
        let newest: Vec<i64> = (200 - n as i64..200).map(|i| i * 2).collect();
        assert_eq!(seen, newest, "budget {budget}");
        assert_eq!(scan.from_offset, newest[0]);
    }
}

#[test]
fn scan_tail_skips_below_log_start_and_handles_an_empty_log() {
    let d = tempfile::tempdir().unwrap();
    let mut log = Log::open(d.path(), small_config()).unwrap();
    let scan = log.scan_tail(u64::MAX, |_| panic!("empty log")).unwrap();
    assert_eq!((scan.batches, scan.bytes, scan.from_offset), (0, 0, 0));
    for i in 0..10 {
        log.append(&mut producer_batch(5, i * 2, 2, 10), None, None)
            .unwrap();
    }
    log.delete_records_before(7).unwrap();
    let mut seen = Vec::new();
    log.scan_tail(u64::MAX, |h| seen.push(h.base_offset))
        .unwrap();
    // The batch 6..=7 still holds the log start offset.
    assert_eq!(seen, vec![6, 8, 10, 12, 14, 16, 18]);
}

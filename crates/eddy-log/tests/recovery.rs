//! Recovery after clean and unclean stops: torn tails, corruption, garbage,
//! lost or damaged index files.

mod common;

use std::fs::{self, OpenOptions};
use std::path::Path;

use bytes::Bytes;
use common::{batch, read_all, small_config};
use eddy_log::{Log, LogConfig};

fn fill(dir: &Path, cfg: &LogConfig, n: usize) -> (Log, Vec<Bytes>) {
    let mut log = Log::open(dir, cfg.clone()).unwrap();
    let mut stored = Vec::new();
    for i in 0..n {
        let mut b = batch(1 + i % 3, 1000 + i as i64, 50 + (i * 13) % 300, i as u8);
        log.append(&mut b, Some(0), None).unwrap();
        stored.push(b.freeze());
    }
    (log, stored)
}

fn last_segment(dir: &Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

fn end_offset(b: &Bytes) -> i64 {
    eddy_protocol::records::validate_batch(b)
        .unwrap()
        .last_offset()
        + 1
}

#[test]
fn clean_close_skips_rescan() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 3000,
        ..small_config()
    };
    let (log, stored) = fill(d.path(), &cfg, 40);
    let segs = log.segment_count();
    log.close().unwrap();
    let log = Log::open(d.path(), cfg.clone()).unwrap();
    let ri = log.recovery_info().clone();
    assert!(!ri.unclean, "{ri:?}");
    assert_eq!(ri.rescanned_bytes, 0);
    assert_eq!(ri.truncated_bytes, 0);
    assert_eq!(ri.rebuilt_indexes, 0);
    assert_eq!(log.segment_count(), segs);
    assert_eq!(log.log_end_offset(), end_offset(stored.last().unwrap()));
    assert_eq!(read_all(&log), stored);
    // and appends continue where they were
    drop(log);
    let mut log = Log::open(d.path(), cfg).unwrap();
    assert!(log.recovery_info().rescanned_bytes == 0);
    let info = log.append(&mut batch(1, 0, 1, 0), None, None).unwrap();
    assert_eq!(info.first_offset, end_offset(stored.last().unwrap()));
}

#[test]
fn unclean_stop_rescans_and_keeps_everything() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 3000,
        ..small_config()
    };
    let (log, stored) = fill(d.path(), &cfg, 40);
    drop(log); // like SIGKILL: no flush, no recovery point
    let log = Log::open(d.path(), cfg).unwrap();
    let ri = log.recovery_info().clone();
    assert!(ri.unclean);
    assert!(ri.rescanned_bytes > 0);
    assert_eq!(ri.truncated_bytes, 0);
    assert_eq!(read_all(&log), stored);
    assert_eq!(log.recovery_point(), log.log_end_offset());
}

#[test]
fn torn_last_batch_at_every_byte() {
    for clean in [false, true] {
        let d = tempfile::tempdir().unwrap();
        let cfg = small_config();
        let (log, stored) = fill(d.path(), &cfg, 8);
        if clean {
            log.close().unwrap();
        } else {
            drop(log);
        }
        let seg = last_segment(d.path());
        let full = fs::read(&seg).unwrap();
        let last_len = stored.last().unwrap().len();
        let last_start = full.len() - last_len;
        let rp = fs::read(d.path().join("recovery-point")).unwrap();
        for cut in last_start..full.len() {
            fs::write(&seg, &full[..cut]).unwrap();
            fs::write(d.path().join("recovery-point"), &rp).unwrap();
            let log = Log::open(d.path(), cfg.clone()).unwrap();
            assert_eq!(
                log.log_end_offset(),
                end_offset(&stored[stored.len() - 2]),
                "cut at {cut} (clean={clean})"
            );
            assert_eq!(read_all(&log), stored[..stored.len() - 1], "cut at {cut}");
            assert_eq!(
                log.recovery_info().truncated_bytes,
                (cut - last_start) as u64,
                "cut at {cut}"
            );
            drop(log);
            assert_eq!(fs::metadata(&seg).unwrap().len() as usize, last_start);
        }
    }
}

#[test]
fn corrupt_byte_in_last_batch_truncates_there() {
    let d = tempfile::tempdir().unwrap();
    let cfg = small_config();
    let (log, stored) = fill(d.path(), &cfg, 10);
    drop(log);
    let seg = last_segment(d.path());
    let mut data = fs::read(&seg).unwrap();
    let last_start = data.len() - stored.last().unwrap().len();
    data[last_start + 70] ^= 0x55; // inside the records: only the CRC sees it
    fs::write(&seg, &data).unwrap();
    let log = Log::open(d.path(), cfg).unwrap();
    assert_eq!(read_all(&log), stored[..9]);
    assert_eq!(
        log.recovery_info().truncated_bytes,
        stored.last().unwrap().len() as u64
    );
}

#[test]
fn corrupt_middle_batch_drops_the_rest_and_later_segments() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 2000,
        ..small_config()
    };
    let (log, stored) = fill(d.path(), &cfg, 30);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4);
    drop(log);
    // corrupt the first batch of the second segment
    let p = d.path().join(format!("{:020}.log", bases[1]));
    let mut data = fs::read(&p).unwrap();
    data[65] ^= 1;
    fs::write(&p, &data).unwrap();
    let log = Log::open(d.path(), cfg).unwrap();
    assert_eq!(log.log_end_offset(), bases[1]);
    let kept: Vec<_> = stored
        .iter()
        .filter(|b| end_offset(b) <= bases[1])
        .cloned()
        .collect();
    assert_eq!(read_all(&log), kept);
    assert_eq!(
        log.segment_count(),
        2,
        "segment 1 kept empty as the active one"
    );
    assert!(!d.path().join(format!("{:020}.log", bases[2])).exists());
    // appends continue at the truncation point
    drop(log);
    let mut log = Log::open(d.path(), small_config()).unwrap();
    let info = log.append(&mut batch(1, 0, 1, 0), None, None).unwrap();
    assert_eq!(info.first_offset, bases[1]);
}

#[test]
fn garbage_after_clean_close_is_truncated() {
    let d = tempfile::tempdir().unwrap();
    let cfg = small_config();
    let (log, stored) = fill(d.path(), &cfg, 10);
    log.close().unwrap();
    let seg = last_segment(d.path());
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &[0xAB; 333]).unwrap();
    drop(f);
    let log = Log::open(d.path(), cfg.clone()).unwrap();
    assert_eq!(log.recovery_info().truncated_bytes, 333);
    assert_eq!(read_all(&log), stored);
    // zeros (preallocated / torn) too, and a valid-looking header with a bad CRC
    drop(log);
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    let mut fake = stored[0].to_vec();
    fake[20] ^= 1;
    std::io::Write::write_all(&mut f, &fake).unwrap();
    std::io::Write::write_all(&mut f, &[0; 100]).unwrap();
    drop(f);
    let log = Log::open(d.path(), cfg).unwrap();
    assert_eq!(read_all(&log), stored);
}

#[test]
fn missing_and_corrupt_indexes_rebuilt() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 3000,
        index_interval_bytes: 100,
        ..small_config()
    };
    let (log, stored) = fill(d.path(), &cfg, 40);
    let bases = log.segment_base_offsets();
    log.close().unwrap();
    let idx = |b: i64, ext: &str| d.path().join(format!("{b:020}.{ext}"));
    let good_index = fs::read(idx(bases[1], "index")).unwrap();
    assert!(!good_index.is_empty());
    // missing offset index of the first segment
    fs::remove_file(idx(bases[0], "index")).unwrap();
    // a torn (non-multiple) time index of the second
    let mut t = fs::read(idx(bases[1], "timeindex")).unwrap();
    t.push(1);
    fs::write(idx(bases[1], "timeindex"), &t).unwrap();
    // offsets going backwards in the last (active) segment's index
    let last = *bases.last().unwrap();
    let mut bad = vec![0u8; 16];
    bad[..4].copy_from_slice(&5u32.to_be_bytes());
    bad[8..12].copy_from_slice(&3u32.to_be_bytes());
    fs::write(idx(last, "index"), &bad).unwrap();
    let log = Log::open(d.path(), cfg.clone()).unwrap();
    assert!(
        log.recovery_info().rebuilt_indexes >= 1,
        "{:?}",
        log.recovery_info()
    );
    assert_eq!(read_all(&log), stored);
    let end = log.log_end_offset();
    for off in 0..end {
        let r = log.read(off, 1, end).unwrap();
        let h = eddy_protocol::records::validate_batch(&r.data).unwrap();
        assert!(h.base_offset <= off && off <= h.last_offset());
    }
    log.close().unwrap();
    // the rebuilt index of segment 1 equals what was written originally
    assert_eq!(fs::read(idx(bases[1], "index")).unwrap(), good_index);
    assert!(idx(bases[0], "index").exists());
    let log = Log::open(d.path(), cfg).unwrap();
    assert_eq!(log.recovery_info().rebuilt_indexes, 0);
    assert_eq!(log.recovery_info().rescanned_bytes, 0);
}

#[test]
fn missing_checkpoints_mean_full_rescan() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 3000,
        ..small_config()
    };
    let (log, stored) = fill(d.path(), &cfg, 30);
    log.close().unwrap();
    fs::remove_file(d.path().join("recovery-point")).unwrap();
    fs::remove_file(d.path().join("log-start-offset")).unwrap();
    fs::write(d.path().join("leader-epoch-checkpoint"), "garbage").unwrap();
    let log = Log::open(d.path(), cfg).unwrap();
    assert!(log.recovery_info().unclean);
    assert_eq!(log.recovery_info().rescanned_bytes, log.size_bytes());
    assert_eq!(read_all(&log), stored);
    assert_eq!(log.log_start_offset(), 0);
}

#[test]
fn leftover_deleted_and_tmp_files_removed() {
    let d = tempfile::tempdir().unwrap();
    let cfg = small_config();
    let (log, _) = fill(d.path(), &cfg, 3);
    log.close().unwrap();
    fs::write(d.path().join("00000000000000000000.log.deleted"), b"x").unwrap();
    fs::write(d.path().join("recovery-point.tmp"), b"x").unwrap();
    fs::write(d.path().join("00000000000000099999.index"), b"x").unwrap();
    let _log = Log::open(d.path(), cfg).unwrap();
    assert!(!d.path().join("00000000000000000000.log.deleted").exists());
    assert!(!d.path().join("recovery-point.tmp").exists());
    assert!(!d.path().join("00000000000000099999.index").exists());
}

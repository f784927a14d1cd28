//! Log compaction: the cleaner over a real log, tombstones, a small dedupe
//! buffer, and a crash at every step of the segment swap.

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use common::read_all;
use eddy_log::{Cleaner, CleanerConfig, CleanupPolicy, Log, LogConfig};
use eddy_protocol::records::{decode_records, Compression, Record, RecordBatchBuilder};

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Lz4,
    Compression::Zstd,
    Compression::Gzip,
    Compression::Snappy,
];

fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes: 32 * 1024,
        segment_index_bytes: 64 * 1024,
        index_interval_bytes: 1024,
        file_delete_delay_ms: 0,
        retention_ms: -1,
        cleanup_policy: CleanupPolicy::parse("compact"),
        min_cleanable_dirty_ratio: 0.5,
        delete_retention_ms: 86_400_000,
        ..LogConfig::default()
    }
}

fn cleaner() -> Cleaner {
    Cleaner::new(CleanerConfig::default())
}

/// Latest value written per key (None: a tombstone).
type Model = HashMap<Vec<u8>, (i64, Option<Vec<u8>>)>;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn key(k: u64) -> Vec<u8> {
    format!("key-{k:04}").into_bytes()
}

/// Append `recs` in batches of `per_batch`, codecs rotating; update the model.
fn append(log: &mut Log, model: &mut Model, recs: &[(Vec<u8>, Option<Vec<u8>>)], per_batch: usize) {
    for (bi, chunk) in recs.chunks(per_batch).enumerate() {
        let ts = 1_700_000_000_000 + log.log_end_offset();
        let mut b = RecordBatchBuilder::new(CODECS[bi % CODECS.len()], ts);
        for (i, (k, v)) in chunk.iter().enumerate() {
            b.append(ts + i as i64, Some(k), v.as_deref(), &[]);
        }
        let mut buf = BytesMut::from(&b.build().expect("build")[..]);
        let info = log.append(&mut buf, Some(0), None).expect("append");
        for (i, (k, v)) in chunk.iter().enumerate() {
            model.insert(k.clone(), (info.first_offset + i as i64, v.clone()));
        }
    }
}

/// 100,000 records over 1,000 keys, random tombstones, then keys 0..50
/// deleted and keys 0..10 set again.
fn workload(log: &mut Log) -> Model {
    let mut model = Model::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut recs = Vec::with_capacity(100_000);
    for i in 0..100_000 - 60 {
        let k = rng.next() % 1000;
        let v = if rng.next().is_multiple_of(100) {
            None
        } else {
            Some(format!("value-{k}-{i}-{}", "x".repeat((rng.next() % 40) as usize)).into_bytes())
        };
        recs.push((key(k), v));
    }
    for k in 0..50 {
        recs.push((key(k), None));
    }
    for k in 0..10 {
        recs.push((key(k), Some(format!("reborn-{k}").into_bytes())));
    }
    append(log, &mut model, &recs, 20);
    model
}

fn records(log: &Log) -> Vec<Record> {
    let mut out = Vec::new();
    for b in read_all(log) {
        let (_, recs) = decode_records(&b, 1 << 24).expect("decode");
        out.extend(recs);
    }
    out
}

fn assert_increasing(recs: &[Record]) {
    for w in recs.windows(2) {
        assert!(
            w[0].offset < w[1].offset,
            "offsets {} then {}",
            w[0].offset,
            w[1].offset
        );
    }
}

/// For every key, the last record of the log is the latest written (a
/// deleted key may also be absent).
fn assert_latest_visible(recs: &[Record], model: &Model) {
    assert_increasing(recs);
    let mut last: HashMap<Vec<u8>, &Record> = HashMap::new();
    for r in recs {
        let k = r.key.as_ref().expect("keyed record").to_vec();
        last.insert(k, r);
    }
    for (k, (off, v)) in model {
        match (last.get(k), v) {
            (Some(r), _) => {
                assert_eq!(r.offset, *off, "key {}", String::from_utf8_lossy(k));
                assert_eq!(
                    r.value.as_deref(),
                    v.as_deref(),
                    "key {}",
                    String::from_utf8_lossy(k)
                );
            }
            (None, None) => {}
            (None, Some(_)) => panic!("live key {} lost", String::from_utf8_lossy(k)),
        }
    }
}

/// Exactly one record per live key, its latest; deleted keys absent (or, with
/// `tombstones_kept`, present once as their tombstone).
fn assert_compacted(recs: &[Record], model: &Model, tombstones_kept: bool) {
    assert_increasing(recs);
    let mut seen: HashMap<Vec<u8>, &Record> = HashMap::new();
    for r in recs {
        let k = r.key.as_ref().expect("keyed record").to_vec();
        assert!(
            seen.insert(k.clone(), r).is_none(),
            "key {} twice",
            String::from_utf8_lossy(&k)
        );
    }
    let live = model.values().filter(|(_, v)| v.is_some()).count();
    let deleted = model.len() - live;
    assert!(deleted >= 40, "the workload deletes keys");
    assert_eq!(seen.len(), if tombstones_kept { model.len() } else { live });
    for (k, (off, v)) in model {
        match seen.get(k) {
            Some(r) => {
                assert_eq!(r.offset, *off);
                assert_eq!(r.value.as_deref(), v.as_deref());
            }
            None => assert!(
                v.is_none() && !tombstones_kept,
                "key {} missing",
                String::from_utf8_lossy(k)
            ),
        }
    }
}

/// Roll so that everything written is in closed segments.
fn roll(log: &mut Log) {
    log.tick(i64::MAX).expect("tick");
}

#[test]
fn compacts_100k_records_over_1000_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config()).unwrap();
    let model = workload(&mut log);
    roll(&mut log);
    assert_eq!(log.log_end_offset(), 100_000);
    let before = log.size_bytes();
    let segments_before = log.segment_count();
    assert!(segments_before > 50, "small segments: {segments_before}");
    assert!((log.cleanable_dirty_ratio() - 1.0).abs() < 1e-9);

    let mut c = cleaner();
    let now = eddy_log_now();
    let stats = log.clean(&mut c, now, false).unwrap().expect("cleaned");
    assert_eq!(stats.records_read, 100_000);
    assert!(log.cleanable_dirty_ratio() < 1e-9);
    assert_eq!(log.first_dirty_offset(), 100_000);
    let after = log.size_bytes();
    assert!(after * 20 < before, "size {before} -> {after}");
    assert!(
        log.segment_count() < segments_before / 10,
        "grouped: {}",
        log.segment_count()
    );
    println!(
        "size before {before} after {after}, segments {segments_before} -> {}",
        log.segment_count()
    );
    // Tombstones stay until their delete horizon.
    assert_compacted(&records(&log), &model, true);
    // Nothing dirty: nothing to do.
    assert!(log.plan_cleaning(now, false).is_none());

    // Reopen: the cleaned log and the checkpoint survive.
    log.close().unwrap();
    let mut log = Log::open(dir.path(), compact_config()).unwrap();
    assert_eq!(log.first_dirty_offset(), 100_000);
    assert_compacted(&records(&log), &model, true);

    // Before delete.retention.ms has passed, a cleaning keeps them.
    log.clean(&mut c, now + 86_400_000 - 1_000, true)
        .unwrap()
        .expect("cleaned");
    assert_compacted(&records(&log), &model, true);
    // After it, the next cleaning removes them.
    let stats = log
        .clean(&mut c, now + 86_400_001, true)
        .unwrap()
        .expect("cleaned");
    assert!(stats.tombstones_removed >= 40, "{stats:?}");
    assert_compacted(&records(&log), &model, false);
    for k in 10..50 {
        assert!(!records(&log)
            .iter()
            .any(|r| r.key.as_deref() == Some(&key(k)[..])));
    }
    assert!(log.size_bytes() < after);
    // Offsets are not reused.
    assert_eq!(log.log_end_offset(), 100_000);
}

fn eddy_log_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn incremental_cleanings_and_reads_across_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config()).unwrap();
    let mut model = workload(&mut log);
    roll(&mut log);
    let mut c = cleaner();
    log.clean(&mut c, eddy_log_now(), false)
        .unwrap()
        .expect("cleaned");
    let first_dirty = log.first_dirty_offset();
    // Update a tenth of the keys several times: dirty again.
    let mut recs = Vec::new();
    for round in 0..30 {
        for k in (100..1000).step_by(10) {
            recs.push((key(k), Some(format!("round-{round}").into_bytes())));
        }
    }
    append(&mut log, &mut model, &recs, 15);
    roll(&mut log);
    assert!(log.cleanable_dirty_ratio() > 0.5);
    let stats = log
        .clean(&mut c, eddy_log_now(), false)
        .unwrap()
        .expect("cleaned");
    assert!(log.first_dirty_offset() > first_dirty);
    assert!(stats.records_retained < stats.records_read);
    assert_compacted(&records(&log), &model, true);
    // Reads from every offset find the next kept batch.
    let end = log.log_end_offset();
    for off in (0..end).step_by(997) {
        let r = log.read(off, 1 << 16, end).unwrap();
        let (h, _) = decode_records(&r.data, 1 << 24).expect("a batch at or after the offset");
        assert!(h.last_offset() >= off);
    }
}

#[test]
fn a_small_dedupe_buffer_takes_several_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config()).unwrap();
    let model = workload(&mut log);
    roll(&mut log);
    // Room for ~600 keys of 1,000: each pass stops where the map is full.
    let mut c = Cleaner::new(CleanerConfig {
        dedupe_buffer_size: 24 * 700,
        ..CleanerConfig::default()
    });
    let mut passes = 0;
    while log.first_dirty_offset() < log.log_end_offset() {
        let now = eddy_log_now();
        let plan = log.plan_cleaning(now, true).expect("plan");
        let done = c.clean(&plan).unwrap();
        assert!(log.finish_cleaning(done).unwrap());
        passes += 1;
        assert!(passes < 500, "no progress");
        assert_latest_visible(&records(&log), &model);
    }
    assert!(passes > 1, "{passes} passes");
    // A full-size map finishes the job.
    log.clean(&mut cleaner(), eddy_log_now(), true).unwrap();
    assert_compacted(&records(&log), &model, true);
}

#[test]
fn compact_only_never_deletes_by_retention_but_compact_delete_does() {
    for (policy, expect_delete) in [
        ("compact", false),
        ("compact,delete", true),
        ("delete", true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            retention_ms: 1,
            retention_bytes: 1,
            cleanup_policy: CleanupPolicy::parse(policy),
            ..compact_config()
        };
        let mut log = Log::open(dir.path(), cfg).unwrap();
        workload(&mut log);
        roll(&mut log);
        let n = log.apply_retention(eddy_log_now() + 10_000).unwrap();
        assert_eq!(n > 0, expect_delete, "{policy}");
        // Only compacted logs get a plan.
        assert_eq!(
            log.plan_cleaning(eddy_log_now(), true).is_some(),
            policy.contains("compact") && log.segment_count() > 1,
            "{policy}"
        );
    }
}

#[test]
fn segments_changed_meanwhile_discard_the_cleaning() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        cleanup_policy: CleanupPolicy::parse("compact,delete"),
        ..compact_config()
    };
    let mut log = Log::open(dir.path(), cfg).unwrap();
    let model = workload(&mut log);
    roll(&mut log);
    let plan = log.plan_cleaning(eddy_log_now(), false).expect("plan");
    let done = cleaner().clean(&plan).unwrap();
    assert!(count_suffix(dir.path(), ".cleaned") > 0);
    // Retention removes the first segment while the cleaner worked.
    log.delete_records_before(log.segment_base_offsets()[1])
        .unwrap();
    assert!(!log.finish_cleaning(done).unwrap());
    assert_eq!(count_suffix(dir.path(), ".cleaned"), 0);
    assert_eq!(log.first_dirty_offset(), log.log_start_offset());
    // The next cleaning works from the new state.
    log.clean(&mut cleaner(), eddy_log_now(), false)
        .unwrap()
        .expect("cleaned");
    let recs = records(&log);
    assert_increasing(&recs);
    // Keys whose latest record is past the deleted segment are intact.
    let start = log.log_start_offset();
    let mut seen = HashMap::new();
    for r in &recs {
        seen.insert(r.key.clone().unwrap().to_vec(), r.offset);
    }
    for (k, (off, _)) in &model {
        if *off >= start {
            assert_eq!(seen.get(k), Some(off));
        }
    }
}

fn count_suffix(dir: &Path, suffix: &str) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .ends_with(suffix)
        })
        .count()
}

// ---- crash safety ---------------------------------------------------------------------------

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn name(base: i64, suffix: &str) -> String {
    format!("{base:020}{suffix}")
}

/// Where a crash interrupts the swap of one group.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// `.cleaned` files written (maybe partly).
    Cleaned,
    /// Index files renamed to `.swap`, the log still `.cleaned`.
    IndexesSwapped,
    /// All three `.swap`: committed.
    Committed,
    /// The first old segment renamed `.deleted`.
    FirstOldDeleted,
    /// Every old segment of the group renamed `.deleted`.
    OldDeleted,
    /// Indexes renamed to their final names, the log still `.swap`.
    IndexesFinal,
    /// Done.
    Done,
}

fn rename(dir: &Path, from: &str, to: &str) {
    fs::rename(dir.join(from), dir.join(to)).unwrap();
}

/// Bring group `b` (old segments `olds`) of `dir` to `step`, as the swap
/// would leave it.
fn bring_to(dir: &Path, b: i64, olds: &[i64], step: Step) {
    let idx = [".index", ".timeindex"];
    let steps = step as u8;
    if steps >= Step::IndexesSwapped as u8 {
        for s in idx {
            rename(
                dir,
                &name(b, &format!("{s}.cleaned")),
                &name(b, &format!("{s}.swap")),
            );
        }
    }
    if steps >= Step::Committed as u8 {
        rename(dir, &name(b, ".log.cleaned"), &name(b, ".log.swap"));
    }
    let doomed: &[i64] = match step {
        Step::FirstOldDeleted => &olds[..1],
        s if s as u8 >= Step::OldDeleted as u8 => olds,
        _ => &[],
    };
    for &o in doomed {
        for s in [".log", ".index", ".timeindex"] {
            rename(dir, &name(o, s), &name(o, &format!("{s}.deleted")));
        }
    }
    if steps >= Step::IndexesFinal as u8 {
        for s in idx {
            rename(dir, &name(b, &format!("{s}.swap")), &name(b, s));
        }
    }
    if steps >= Step::Done as u8 {
        rename(dir, &name(b, ".log.swap"), &name(b, ".log"));
    }
}

#[test]
fn a_crash_at_any_step_of_the_swap_keeps_every_latest_value() {
    let src = tempfile::tempdir().unwrap();
    let mut log = Log::open(src.path(), compact_config()).unwrap();
    let model = workload(&mut log);
    roll(&mut log);
    // A first cleaning, so that later groups mix clean and dirty data.
    log.clean(&mut cleaner(), eddy_log_now(), false)
        .unwrap()
        .expect("cleaned");
    let mut model = model;
    let mut recs = Vec::new();
    for round in 0..20 {
        for k in (0..1000).step_by(7) {
            let v = (round % 5 != 4).then(|| format!("late-{round}-{k}").into_bytes());
            recs.push((key(k), v));
        }
    }
    append(&mut log, &mut model, &recs, 25);
    roll(&mut log);
    let bases = log.segment_base_offsets();
    let active = *bases.last().unwrap();
    let plan = log.plan_cleaning(eddy_log_now(), true).expect("plan");
    let done = cleaner().clean(&plan).unwrap();
    // The groups: each `.log.cleaned` replaces the old segments from its base
    // to the next one's.
    let mut group_bases: Vec<i64> = fs::read_dir(src.path())
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.strip_suffix(".log.cleaned").map(|s| s.parse().unwrap())
        })
        .collect();
    group_bases.sort_unstable();
    assert!(group_bases.len() >= 2, "several groups: {group_bases:?}");
    let olds_of = |g: usize| -> Vec<i64> {
        let hi = group_bases.get(g + 1).copied().unwrap_or(active);
        bases
            .iter()
            .copied()
            .filter(|&b| b >= group_bases[g] && b < hi)
            .collect()
    };
    let steps = [
        Step::Cleaned,
        Step::IndexesSwapped,
        Step::Committed,
        Step::FirstOldDeleted,
        Step::OldDeleted,
        Step::IndexesFinal,
        Step::Done,
    ];
    let last = group_bases.len() - 1;
    let mut cases = 0;
    for in_progress in [0, 1, last] {
        for step in steps {
            let crash = tempfile::tempdir().unwrap();
            copy_dir(src.path(), crash.path());
            for (g, &gb) in group_bases.iter().enumerate() {
                let s = if g < in_progress {
                    Step::Done
                } else if g == in_progress {
                    step
                } else {
                    Step::Cleaned
                };
                bring_to(crash.path(), gb, &olds_of(g), s);
            }
            if let Step::Cleaned = step {
                // A torn `.cleaned` log (the crash came mid-write).
                let p = crash
                    .path()
                    .join(name(group_bases[in_progress], ".log.cleaned"));
                let len = fs::metadata(&p).unwrap().len();
                fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .unwrap()
                    .set_len(len / 2)
                    .unwrap();
            }
            let reopened = Log::open(crash.path(), compact_config())
                .unwrap_or_else(|e| panic!("group {in_progress} step {step:?}: {e}"));
            assert_latest_visible(&records(&reopened), &model);
            assert_eq!(reopened.log_end_offset(), log.log_end_offset());
            for suffix in [".cleaned", ".swap", ".deleted"] {
                assert_eq!(
                    count_suffix(crash.path(), suffix),
                    0,
                    "{suffix} left after {step:?}"
                );
            }
            // Once committed, the group's swap is complete after recovery.
            let new_base_size =
                fs::metadata(crash.path().join(name(group_bases[in_progress], ".log")))
                    .unwrap()
                    .len();
            let size_in_src = |suffix: &str| {
                fs::metadata(src.path().join(name(group_bases[in_progress], suffix)))
                    .unwrap()
                    .len()
            };
            if step as u8 >= Step::Committed as u8 {
                assert_eq!(new_base_size, size_in_src(".log.cleaned"));
            } else {
                assert_eq!(new_base_size, size_in_src(".log"));
            }
            // And the recovered log cleans fine.
            let mut reopened = reopened;
            reopened
                .clean(&mut cleaner(), eddy_log_now(), true)
                .unwrap();
            assert_compacted(&records(&reopened), &model, true);
            cases += 1;
        }
    }
    assert_eq!(cases, 21);
    // The real swap, for comparison.
    assert!(log.finish_cleaning(done).unwrap());
    assert_compacted(&records(&log), &model, true);
    drop(log);
    let reopened = Log::open(src.path(), compact_config()).unwrap();
    assert_compacted(&records(&reopened), &model, true);
}

#[test]
fn records_without_keys_are_dropped_by_the_cleaner() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config()).unwrap();
    let mut b = RecordBatchBuilder::new(Compression::None, 1);
    b.append(1, None, Some(b"no key"), &[]);
    b.append(2, Some(b"k"), Some(b"v"), &[]);
    let mut buf = BytesMut::from(&b.build().unwrap()[..]);
    log.append(&mut buf, None, None).unwrap();
    roll(&mut log);
    log.clean(&mut cleaner(), eddy_log_now(), true)
        .unwrap()
        .expect("cleaned");
    let recs = records(&log);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].key, Some(Bytes::from_static(b"k")));
    assert_eq!(recs[0].offset, 1);
}

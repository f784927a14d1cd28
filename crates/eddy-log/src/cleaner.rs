//! Log compaction (Kafka's `LogCleaner`): keep only the latest record of each
//! key in the closed segments of a `cleanup.policy=compact` log.
//!
//! A cleaning has three steps, so that the heavy part runs without the
//! partition's lock:
//!
//! 1. [`Log::plan_cleaning`](crate::Log::plan_cleaning) (read lock): a snapshot
//!    of the closed segments, the first dirty offset (the cleaner checkpoint)
//!    and the first uncleanable offset (the active segment, or the first
//!    segment younger than `min.compaction.lag.ms`).
//! 2. [`Cleaner::clean`] (no lock): build the key → latest offset map over the
//!    dirty section (bounded by the dedupe buffer; a full map ends the section
//!    early), then rewrite every segment below the end of the mapped section,
//!    grouped up to `segment.bytes`, into `<base>.log.cleaned` (+ indexes),
//!    fsynced. The segment files are read through handles of their own.
//! 3. [`Log::finish_cleaning`](crate::Log::finish_cleaning) (write lock):
//!    check the snapshotted segments are unchanged, then per group rename
//!    `.cleaned` → `.swap` (the commit point), rename the old segments
//!    `.deleted`, rename `.swap` → final, and move the cleaner checkpoint.
//!
//! Rules (Kafka's): a record is kept if its offset is the latest of its key
//! in the map (or is past the mapped section); records without a key are
//! dropped; a tombstone (null value) is kept until its batch's delete horizon
//! (KIP-534: the first cleaning that keeps a tombstone stamps the batch with
//! `delete horizon = now + delete.retention.ms` in its base timestamp and
//! attribute bit 6) has passed. Kept batches keep their base offset, last
//! offset delta, producer fields, attributes and codec (recompressed);
//! batches whose records all go are dropped (Kafka keeps an empty batch for
//! the last batch of an idempotent producer; Eddy does not restore producer
//! state from the log, so it does not). Control batches are kept as they are.

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_protocol::records::{
    compress, compute_crc, decompress, validate_batch, BatchHeader, Compression, TimestampType,
    ATTR_DELETE_HORIZON, BATCH_HEADER_LEN, CRC_OFFSET, LOG_OVERHEAD,
};
use tracing::{debug, info, warn};

use crate::offset_map::OffsetMap;
use crate::segment::{BatchMeta, Segment, CLEANED_SUFFIX};
use crate::{LogConfig, LogError};

/// Largest decompressed payload of one batch the cleaner accepts.
const DECOMPRESS_LIMIT: usize = 256 * 1024 * 1024;
/// Read and write chunk size.
const CHUNK: usize = 1 << 20;

/// Broker-wide cleaner settings.
#[derive(Debug, Clone)]
pub struct CleanerConfig {
    /// `log.cleaner.dedupe.buffer.size` (divided by `log.cleaner.threads`).
    pub dedupe_buffer_size: usize,
    /// `log.cleaner.io.max.bytes.per.second`: read + write throughput cap.
    pub io_max_bytes_per_second: f64,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            dedupe_buffer_size: 128 * 1024 * 1024,
            io_max_bytes_per_second: f64::MAX,
        }
    }
}

/// One closed segment as snapshotted by the plan.
#[derive(Debug, Clone)]
pub(crate) struct PlanSegment {
    pub base: i64,
    /// Offset after its last batch (an upper bound).
    pub next: i64,
    pub size: u64,
    pub path: PathBuf,
    pub last_modified_ms: i64,
}

/// What to clean, snapshotted from a log under its read lock.
#[derive(Debug, Clone)]
pub struct CleanPlan {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// Closed segments from the one holding the log start offset up to the
    /// first uncleanable offset (exclusive).
    pub(crate) segments: Vec<PlanSegment>,
    pub(crate) first_dirty: i64,
    pub(crate) first_uncleanable: i64,
    pub(crate) dirty_ratio: f64,
    pub(crate) need_compaction_now: bool,
    pub(crate) now_ms: i64,
}

impl CleanPlan {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Dirty bytes / (clean + dirty bytes) of the closed segments.
    pub fn dirty_ratio(&self) -> f64 {
        self.dirty_ratio
    }

    /// Whether `max.compaction.lag.ms` forces this cleaning.
    pub fn need_compaction_now(&self) -> bool {
        self.need_compaction_now
    }

    pub fn first_dirty_offset(&self) -> i64 {
        self.first_dirty
    }

    pub fn first_uncleanable_offset(&self) -> i64 {
        self.first_uncleanable
    }
}

/// Counters of one cleaning.
#[derive(Debug, Clone, Default)]
pub struct CleanStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_read: u64,
    pub records_retained: u64,
    pub batches_rewritten: u64,
    pub batches_dropped: u64,
    pub tombstones_removed: u64,
    pub keys_in_map: usize,
    pub groups: usize,
    pub segments_replaced: usize,
    pub elapsed_ms: u64,
}

/// A cleaned segment replacing the segments `old` (base, size).
pub(crate) struct CleanedGroup {
    pub old: Vec<(i64, u64)>,
    pub seg: Option<Segment>,
}

impl Drop for CleanedGroup {
    fn drop(&mut self) {
        // Not swapped in: remove the `.cleaned` files.
        if let Some(seg) = self.seg.take() {
            let paths = seg.file_paths();
            drop(seg);
            for p in paths {
                if p.to_str().is_some_and(|s| s.ends_with(CLEANED_SUFFIX)) {
                    if let Err(e) = std::fs::remove_file(&p) {
                        if e.kind() != io::ErrorKind::NotFound {
                            warn!(file = %p.display(), "cannot remove cleaned file: {e}");
                        }
                    }
                }
            }
        }
    }
}

/// The output of [`Cleaner::clean`], to hand to `Log::finish_cleaning`.
/// Dropping it removes the `.cleaned` files.
pub struct Cleaned {
    pub(crate) dir: PathBuf,
    pub(crate) groups: Vec<CleanedGroup>,
    /// The new cleaner checkpoint (first offset not cleaned).
    pub(crate) end_offset: i64,
    pub stats: CleanStats,
}

impl Cleaned {
    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }
}

/// A simple throughput cap over the cleaner's reads and writes.
struct Throttle {
    rate: f64,
    window_start: Instant,
    window_bytes: f64,
}

impl Throttle {
    fn new(rate: f64) -> Throttle {
        Throttle {
            rate,
            window_start: Instant::now(),
            window_bytes: 0.0,
        }
    }

    fn limited(&self) -> bool {
        self.rate.is_finite() && self.rate > 0.0 && self.rate < 1e300
    }

    fn consume(&mut self, n: u64, abort: &AtomicBool) {
        if !self.limited() {
            return;
        }
        self.window_bytes += n as f64;
        let elapsed = self.window_start.elapsed().as_secs_f64();
        let needed = self.window_bytes / self.rate;
        if needed > elapsed {
            let mut left = needed - elapsed;
            while left > 0.0 && !abort.load(Ordering::Relaxed) {
                let step = left.min(0.1);
                std::thread::sleep(Duration::from_secs_f64(step));
                left -= step;
            }
        }
        if self.window_start.elapsed() > Duration::from_secs(1) {
            self.window_start = Instant::now();
            self.window_bytes = 0.0;
        }
    }
}

/// The cleaner: its offset map (memory reused between cleanings), throttle
/// and abort flag. One per cleaner thread.
pub struct Cleaner {
    map: OffsetMap,
    throttle: Throttle,
    abort: Arc<AtomicBool>,
}

fn corrupt(path: &Path, at: u64, what: impl std::fmt::Display) -> LogError {
    LogError::Corrupt(format!("{} at {at}: {what}", path.display()))
}

/// Sequential reader of the batches of one segment file, CRC-checked.
struct BatchReader<'a> {
    file: &'a File,
    path: &'a Path,
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> BatchReader<'a> {
    fn new(file: &'a File, path: &'a Path, end: u64) -> Self {
        BatchReader {
            file,
            path,
            pos: 0,
            end,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    /// Make the buffer hold `[pos, pos + n)`; returns the bytes read.
    fn ensure(&mut self, n: usize) -> io::Result<u64> {
        let have = self.buf_start <= self.pos
            && self.pos + n as u64 <= self.buf_start + self.buf.len() as u64;
        if have {
            return Ok(0);
        }
        let avail = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let len = CHUNK.max(n).min(avail);
        self.buf.resize(len, 0);
        self.file.read_exact_at(&mut self.buf, self.pos)?;
        self.buf_start = self.pos;
        Ok(len as u64)
    }

    fn next(
        &mut self,
        throttle: &mut Throttle,
        stats: &mut CleanStats,
        abort: &AtomicBool,
    ) -> Result<Option<(BatchHeader, &[u8])>, LogError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let remaining = self.end - self.pos;
        if remaining < BATCH_HEADER_LEN as u64 {
            return Err(corrupt(self.path, self.pos, "torn batch header"));
        }
        let mut read = self.ensure(BATCH_HEADER_LEN)?;
        let from = (self.pos - self.buf_start) as usize;
        let h = BatchHeader::parse(&self.buf[from..from + BATCH_HEADER_LEN])
            .map_err(|e| corrupt(self.path, self.pos, e))?;
        h.check_fields()
            .map_err(|e| corrupt(self.path, self.pos, e))?;
        let total = h.total_size();
        if total as u64 > remaining {
            return Err(corrupt(self.path, self.pos, "torn batch"));
        }
        read += self.ensure(total)?;
        stats.bytes_read += read;
        throttle.consume(read, abort);
        let from = (self.pos - self.buf_start) as usize;
        let bytes = &self.buf[from..from + total];
        validate_batch(bytes).map_err(|e| corrupt(self.path, self.pos, e))?;
        self.pos += total as u64;
        Ok(Some((h, bytes)))
    }
}

// ---- records, read raw ----------------------------------------------------------------------

fn read_varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let b = *buf.get(*pos)?;
        *pos += 1;
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// One record of a batch payload, as stored.
struct RawRecord<'a> {
    offset_delta: i64,
    timestamp_delta: i64,
    key: Option<&'a [u8]>,
    has_value: bool,
    attributes: u8,
    /// The whole record, length prefix included.
    whole: &'a [u8],
    /// The record body after the timestamp delta.
    after_timestamp: &'a [u8],
}

fn parse_records(payload: &[u8], count: i32) -> Result<Vec<RawRecord<'_>>, String> {
    let count = usize::try_from(count).unwrap_or(0);
    let mut out = Vec::with_capacity(count.min(payload.len() / 7));
    let mut pos = 0usize;
    for i in 0..count {
        let start = pos;
        let len = read_varlong(payload, &mut pos)
            .and_then(|l| usize::try_from(l).ok())
            .filter(|&l| l >= 1 && l <= payload.len() - pos)
            .ok_or_else(|| format!("bad length of record {i}"))?;
        let body = &payload[pos..pos + len];
        pos += len;
        let whole = &payload[start..pos];
        let mut p = 1usize;
        let bad = || format!("malformed record {i}");
        let timestamp_delta = read_varlong(body, &mut p).ok_or_else(bad)?;
        let after_ts = p;
        let offset_delta = read_varlong(body, &mut p).ok_or_else(bad)?;
        let key_len = read_varlong(body, &mut p).ok_or_else(bad)?;
        let key = if key_len < 0 {
            None
        } else {
            let l = usize::try_from(key_len).map_err(|_| bad())?;
            let k = body.get(p..p + l).ok_or_else(bad)?;
            p += l;
            Some(k)
        };
        let value_len = read_varlong(body, &mut p).ok_or_else(bad)?;
        out.push(RawRecord {
            offset_delta,
            timestamp_delta,
            key,
            has_value: value_len >= 0,
            attributes: body[0],
            whole,
            after_timestamp: &body[after_ts..],
        });
    }
    if pos != payload.len() {
        return Err(format!(
            "{} bytes left after {count} records",
            payload.len() - pos
        ));
    }
    Ok(out)
}

/// Decompressed (or borrowed) records of a batch.
fn with_payload<R>(
    h: &BatchHeader,
    batch: &[u8],
    f: impl FnOnce(&[u8]) -> Result<R, String>,
) -> Result<R, String> {
    match h.compression().map_err(|e| e.to_string())? {
        Compression::None => f(&batch[BATCH_HEADER_LEN..]),
        c => {
            let p = decompress(c, &batch[BATCH_HEADER_LEN..], DECOMPRESS_LIMIT)
                .map_err(|e| e.to_string())?;
            f(&p)
        }
    }
}

enum Verdict {
    Keep,
    Drop,
    Rewrite(Vec<u8>),
}

/// Parameters of the retention decision.
struct Filter<'a> {
    map: &'a OffsetMap,
    /// Records at or past this offset are kept (not covered by the map).
    end_offset: i64,
    now_ms: i64,
    delete_retention_ms: i64,
}

fn filter_batch(
    f: &Filter<'_>,
    h: &BatchHeader,
    batch: &[u8],
    stats: &mut CleanStats,
) -> Result<Verdict, String> {
    if h.is_control() {
        return Ok(Verdict::Keep);
    }
    let codec = h.compression().map_err(|e| e.to_string())?;
    with_payload(h, batch, |payload| {
        let records = parse_records(payload, h.records_count)?;
        let horizon = h.has_delete_horizon().then_some(h.base_timestamp);
        let retain_deletes = horizon.is_none_or(|hz| f.now_ms < hz);
        let mut kept = Vec::with_capacity(records.len());
        let mut tombstones = false;
        for r in &records {
            let offset = h.base_offset.wrapping_add(r.offset_delta);
            let keep = if offset >= f.end_offset {
                true
            } else {
                match r.key {
                    None => false,
                    Some(k) => {
                        let latest = f.map.get(k).is_none_or(|o| offset >= o);
                        if latest && !r.has_value && !retain_deletes {
                            stats.tombstones_removed += 1;
                        }
                        latest && (r.has_value || retain_deletes)
                    }
                }
            };
            if keep {
                tombstones |= !r.has_value;
                kept.push(r);
            }
        }
        stats.records_read += records.len() as u64;
        stats.records_retained += kept.len() as u64;
        if kept.is_empty() {
            return Ok(Verdict::Drop);
        }
        let set_horizon = tombstones && horizon.is_none();
        if kept.len() == records.len() && !set_horizon {
            return Ok(Verdict::Keep);
        }
        let base_ts = if set_horizon {
            f.now_ms.saturating_add(f.delete_retention_ms)
        } else {
            h.base_timestamp
        };
        let mut data = Vec::with_capacity(payload.len());
        let mut max_ts = i64::MIN;
        for r in &kept {
            let ts = h.base_timestamp.wrapping_add(r.timestamp_delta);
            max_ts = max_ts.max(ts);
            if base_ts == h.base_timestamp {
                data.extend_from_slice(r.whole);
            } else {
                let mut body = Vec::with_capacity(r.whole.len() + 8);
                body.push(r.attributes);
                write_varlong(&mut body, ts.wrapping_sub(base_ts));
                body.extend_from_slice(r.after_timestamp);
                write_varlong(&mut data, body.len() as i64);
                data.extend_from_slice(&body);
            }
        }
        if h.timestamp_type() == TimestampType::LogAppendTime {
            max_ts = h.max_timestamp;
        }
        let payload: Cow<'_, [u8]> = match codec {
            Compression::None => Cow::Borrowed(&data),
            c => Cow::Owned(compress(c, &data).map_err(|e| e.to_string())?),
        };
        let total = BATCH_HEADER_LEN + payload.len();
        let batch_length =
            i32::try_from(total - LOG_OVERHEAD).map_err(|_| "batch too large".to_string())?;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&batch[..BATCH_HEADER_LEN]);
        out.extend_from_slice(&payload);
        out[8..12].copy_from_slice(&batch_length.to_be_bytes());
        let mut attributes = h.attributes;
        if set_horizon {
            attributes |= ATTR_DELETE_HORIZON;
        }
        out[21..23].copy_from_slice(&attributes.to_be_bytes());
        out[27..35].copy_from_slice(&base_ts.to_be_bytes());
        out[35..43].copy_from_slice(&max_ts.to_be_bytes());
        out[57..61].copy_from_slice(&(kept.len() as i32).to_be_bytes());
        let crc = compute_crc(&out);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        Ok(Verdict::Rewrite(out))
    })
}

impl Cleaner {
    pub fn new(config: CleanerConfig) -> Cleaner {
        Cleaner {
            map: OffsetMap::new(config.dedupe_buffer_size),
            throttle: Throttle::new(config.io_max_bytes_per_second),
            abort: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Set to true to make a running (and every later) cleaning stop early
    /// with [`LogError::CleaningAborted`] (shutdown).
    pub fn abort_handle(&self) -> Arc<AtomicBool> {
        self.abort.clone()
    }

    fn check_abort(&self) -> Result<(), LogError> {
        if self.abort.load(Ordering::Relaxed) {
            return Err(LogError::CleaningAborted("cleaner stopped".into()));
        }
        Ok(())
    }

    /// Build the map and write the cleaned segments of `plan`. Takes no lock:
    /// the plan's segment files are read through handles of their own.
    pub fn clean(&mut self, plan: &CleanPlan) -> Result<Cleaned, LogError> {
        let started = Instant::now();
        self.map.clear();
        let mut stats = CleanStats::default();
        let mut files = Vec::with_capacity(plan.segments.len());
        for s in &plan.segments {
            match File::open(&s.path) {
                Ok(f) => files.push(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(LogError::CleaningAborted(format!(
                        "{} is gone",
                        s.path.display()
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
        // 1. The offset map over the dirty section.
        let mut end = plan.first_dirty;
        let mut mapped_any = false;
        for (s, file) in plan.segments.iter().zip(&files) {
            if s.next <= plan.first_dirty || s.base >= plan.first_uncleanable {
                continue;
            }
            match self.map_segment(file, s, plan.first_dirty, &mut stats)? {
                None => {
                    end = s.next.min(plan.first_uncleanable);
                    mapped_any = true;
                }
                Some(stop) => {
                    if stop > end {
                        end = stop;
                        mapped_any = true;
                    }
                    break;
                }
            }
        }
        let has_dirty = plan
            .segments
            .iter()
            .any(|s| s.next > plan.first_dirty && s.base < plan.first_uncleanable);
        if has_dirty && !mapped_any {
            return Err(LogError::CleaningAborted(
                "log.cleaner.dedupe.buffer.size is too small for a single record".into(),
            ));
        }
        stats.keys_in_map = self.map.len();
        // 2. Rewrite the segments below `end`, grouping consecutive ones while
        // the cleaned output plus the next segment's size fits in
        // `segment.bytes` (Kafka groups by the old sizes only).
        let count = plan.segments.iter().filter(|s| s.base < end).count();
        let filter = Filter {
            map: &self.map,
            end_offset: end,
            now_ms: plan.now_ms,
            delete_retention_ms: plan.config.delete_retention_ms,
        };
        let mut cleaned = Vec::new();
        let mut i = 0;
        while i < count {
            let (group, used) = Self::clean_group(
                plan,
                &plan.segments[i..count],
                &files[i..count],
                &filter,
                &mut self.throttle,
                &self.abort,
                &mut stats,
            )?;
            cleaned.push(group);
            i += used.max(1);
        }
        stats.groups = cleaned.len();
        stats.segments_replaced = cleaned.iter().map(|g| g.old.len()).sum();
        stats.elapsed_ms = started.elapsed().as_millis() as u64;
        debug!(dir = %plan.dir.display(), end_offset = end, ?stats, "cleaned segments written");
        Ok(Cleaned {
            dir: plan.dir.clone(),
            groups: cleaned,
            end_offset: end,
            stats,
        })
    }

    /// Put every keyed record of the segment at or past `from` in the map.
    /// Returns the offset of the first record that did not fit, if the map
    /// filled up.
    fn map_segment(
        &mut self,
        file: &File,
        s: &PlanSegment,
        from: i64,
        stats: &mut CleanStats,
    ) -> Result<Option<i64>, LogError> {
        let mut reader = BatchReader::new(file, &s.path, s.size);
        let abort = self.abort.clone();
        while let Some((h, batch)) = reader.next(&mut self.throttle, stats, &abort)? {
            self.check_abort()?;
            if h.is_control() || h.last_offset() < from {
                continue;
            }
            let map = &mut self.map;
            let stop = with_payload(&h, batch, |payload| {
                for r in parse_records(payload, h.records_count)? {
                    let offset = h.base_offset.wrapping_add(r.offset_delta);
                    if let (Some(k), true) = (r.key, offset >= from) {
                        if !map.put(k, offset) {
                            return Ok(Some(offset));
                        }
                    }
                }
                Ok(None)
            })
            .map_err(|e| corrupt(&s.path, reader.pos, e))?;
            if stop.is_some() {
                return Ok(stop);
            }
        }
        Ok(None)
    }

    fn clean_group(
        plan: &CleanPlan,
        segs: &[PlanSegment],
        files: &[File],
        filter: &Filter<'_>,
        throttle: &mut Throttle,
        abort: &AtomicBool,
        stats: &mut CleanStats,
    ) -> Result<(CleanedGroup, usize), LogError> {
        let base = segs[0].base;
        let seg = Segment::create_with_suffix(
            &plan.dir,
            base,
            CLEANED_SUFFIX,
            plan.config.segment_index_bytes,
        )?;
        let mut group = CleanedGroup {
            old: Vec::new(),
            seg: Some(seg),
        };
        let interval = plan.config.index_interval_bytes;
        let mut out: Vec<u8> = Vec::with_capacity(CHUNK + CHUNK / 4);
        let mut metas: Vec<BatchMeta> = Vec::new();
        let mut next = base;
        let flush = |out: &mut Vec<u8>,
                     metas: &mut Vec<BatchMeta>,
                     next: i64,
                     group: &mut CleanedGroup,
                     stats: &mut CleanStats,
                     throttle: &mut Throttle|
         -> Result<(), LogError> {
            if out.is_empty() {
                return Ok(());
            }
            if let Some(seg) = group.seg.as_mut() {
                seg.append(out, metas, next, interval)?;
            }
            stats.bytes_written += out.len() as u64;
            throttle.consume(out.len() as u64, abort);
            out.clear();
            metas.clear();
            Ok(())
        };
        for (s, file) in segs.iter().zip(files) {
            let written = group.seg.as_ref().map_or(0, |g| g.size) + out.len() as u64;
            if !group.old.is_empty()
                && (written + s.size > plan.config.segment_bytes
                    || s.next - 1 - base > i64::from(i32::MAX))
            {
                break;
            }
            group.old.push((s.base, s.size));
            let mut reader = BatchReader::new(file, &s.path, s.size);
            while let Some((h, batch)) = reader.next(throttle, stats, abort)? {
                if abort.load(Ordering::Relaxed) {
                    return Err(LogError::CleaningAborted("cleaner stopped".into()));
                }
                let verdict =
                    filter_batch(filter, &h, batch, stats).map_err(|e| corrupt(&s.path, 0, e))?;
                let bytes: Cow<'_, [u8]> = match verdict {
                    Verdict::Drop => {
                        stats.batches_dropped += 1;
                        continue;
                    }
                    Verdict::Keep => Cow::Borrowed(batch),
                    Verdict::Rewrite(v) => {
                        stats.batches_rewritten += 1;
                        Cow::Owned(v)
                    }
                };
                metas.push(BatchMeta {
                    pos: out.len() as u64,
                    size: bytes.len() as u64,
                    last_offset: h.last_offset(),
                    max_timestamp: BatchHeader::parse(&bytes)
                        .map(|b| b.max_timestamp)
                        .unwrap_or(h.max_timestamp),
                });
                out.extend_from_slice(&bytes);
                next = h.next_offset();
                if out.len() >= CHUNK {
                    flush(&mut out, &mut metas, next, &mut group, stats, throttle)?;
                }
            }
        }
        flush(&mut out, &mut metas, next, &mut group, stats, throttle)?;
        if let Some(seg) = group.seg.as_mut() {
            seg.make_inactive()?;
            let modified = segs.iter().map(|s| s.last_modified_ms).max().unwrap_or(0);
            seg.set_last_modified(modified)?;
            seg.file.sync_all()?;
            seg.sync()?;
        }
        let used = group.old.len();
        Ok((group, used))
    }
}

/// Complete or roll back interrupted swaps in `dir` before the log is
/// loaded: `.cleaned` files are deleted (the old segments are intact); a
/// `<base>.log.swap` was committed, so the segments it covers are deleted and
/// it becomes `<base>.log` (its indexes are rebuilt by recovery); index
/// `.swap` files without their `.log.swap` are deleted.
pub(crate) fn complete_swaps(dir: &Path) -> Result<(), LogError> {
    use crate::segment::{file_name, INDEX_SUFFIX, LOG_SUFFIX, SWAP_SUFFIX, TIME_INDEX_SUFFIX};
    let mut swaps = Vec::new();
    let mut touched = false;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(CLEANED_SUFFIX) {
            debug!(file = name, "removing unfinished cleaned file");
            remove(&entry.path())?;
            touched = true;
        } else if let Some(stem) = name.strip_suffix(SWAP_SUFFIX) {
            if let Some(b) = stem.strip_suffix(LOG_SUFFIX).and_then(parse_base20) {
                swaps.push(b);
            }
        }
    }
    swaps.sort_unstable();
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(b) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix(LOG_SUFFIX))
            .and_then(parse_base20)
        {
            bases.push(b);
        }
    }
    for &b in &swaps {
        let swap = dir.join(format!("{}{SWAP_SUFFIX}", file_name(b, LOG_SUFFIX)));
        let next = swap_next_offset(&swap)?;
        let upto = next.max(b + 1);
        for &old in bases.iter().filter(|&&o| o >= b && o < upto) {
            for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                remove(&dir.join(file_name(old, suffix)))?;
            }
        }
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            remove(&dir.join(format!("{}{SWAP_SUFFIX}", file_name(b, suffix))))?;
        }
        std::fs::rename(&swap, dir.join(file_name(b, LOG_SUFFIX)))?;
        info!(dir = %dir.display(), base = b, next_offset = next, "completed an interrupted segment swap");
        touched = true;
    }
    // Index swaps whose log was not yet renamed: not committed.
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(SWAP_SUFFIX))
        {
            remove(&entry.path())?;
            touched = true;
        }
    }
    if touched {
        crate::checkpoint::sync_dir(dir)?;
    }
    Ok(())
}

fn parse_base20(stem: &str) -> Option<i64> {
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

fn remove(p: &Path) -> io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Offset after the last whole batch of a (complete) swap file.
fn swap_next_offset(path: &Path) -> Result<i64, LogError> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut sc = crate::segment::Scanner::new(&file, 0, size, CHUNK, false);
    let mut next = -1;
    loop {
        match sc.next_batch()? {
            crate::segment::Scan::Batch(h, _) => next = h.next_offset(),
            crate::segment::Scan::End => break,
            crate::segment::Scan::Bad(e) => {
                warn!(file = %path.display(), "bad batch in a swap file: {e}");
                break;
            }
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use eddy_protocol::records::{decode_records, RecordBatchBuilder};

    fn batch(codec: Compression, base: i64, recs: &[(Option<&str>, Option<&str>)]) -> Vec<u8> {
        let mut b = RecordBatchBuilder::new(codec, 1_000)
            .base_offset(base)
            .producer(42, 3, 7);
        for (i, (k, v)) in recs.iter().enumerate() {
            b.append(
                1_000 + i as i64 * 10,
                k.map(str::as_bytes),
                v.map(str::as_bytes),
                &[eddy_protocol::records::Header {
                    key: "h".into(),
                    value: Some(Bytes::from(format!("hv{i}"))),
                }],
            );
        }
        b.build().unwrap().to_vec()
    }

    fn run(map: &OffsetMap, now: i64, b: &[u8]) -> (Verdict, CleanStats) {
        let h = BatchHeader::parse(b).unwrap();
        let f = Filter {
            map,
            end_offset: i64::MAX,
            now_ms: now,
            delete_retention_ms: 500,
        };
        let mut stats = CleanStats::default();
        (filter_batch(&f, &h, b, &mut stats).unwrap(), stats)
    }

    #[test]
    fn rewrite_keeps_latest_offsets_and_fields() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let b = batch(
                codec,
                100,
                &[
                    (Some("a"), Some("1")),
                    (Some("b"), Some("1")),
                    (Some("a"), Some("2")),
                    (None, Some("x")),
                    (Some("c"), Some("1")),
                ],
            );
            let mut map = OffsetMap::new(1 << 16);
            map.put(b"a", 102);
            map.put(b"b", 101);
            map.put(b"c", 200); // superseded by a later batch
            let (v, stats) = run(&map, 0, &b);
            let Verdict::Rewrite(out) = v else {
                panic!("{codec}: expected a rewrite")
            };
            assert_eq!(stats.records_retained, 2);
            let (h, recs) = decode_records(&Bytes::from(out), 1 << 20).unwrap();
            assert_eq!(h.compression().unwrap(), codec);
            assert_eq!((h.base_offset, h.last_offset()), (100, 104), "{codec}");
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (42, 3, 7)
            );
            assert_eq!(h.records_count, 2);
            assert!(!h.has_delete_horizon());
            let got: Vec<_> = recs
                .iter()
                .map(|r| {
                    (
                        r.offset,
                        r.timestamp,
                        r.key.clone().unwrap(),
                        r.value.clone().unwrap(),
                    )
                })
                .collect();
            assert_eq!(
                got,
                vec![
                    (101, 1010, Bytes::from("b"), Bytes::from("1")),
                    (102, 1020, Bytes::from("a"), Bytes::from("2")),
                ]
            );
            assert_eq!(h.max_timestamp, 1020);
            assert_eq!(recs[1].headers[0].value.as_deref(), Some(&b"hv2"[..]));
        }
    }

    #[test]
    fn untouched_batch_is_kept_and_empty_one_dropped() {
        let b = batch(
            Compression::None,
            0,
            &[(Some("a"), Some("1")), (Some("b"), Some("1"))],
        );
        let map = OffsetMap::new(1 << 16);
        assert!(matches!(run(&map, 0, &b).0, Verdict::Keep));
        let mut map = OffsetMap::new(1 << 16);
        map.put(b"a", 10);
        map.put(b"b", 11);
        assert!(matches!(run(&map, 0, &b).0, Verdict::Drop));
    }

    #[test]
    fn tombstones_get_a_horizon_then_go() {
        let b = batch(
            Compression::Lz4,
            10,
            &[(Some("a"), None), (Some("b"), Some("v"))],
        );
        let map = OffsetMap::new(1 << 16);
        let Verdict::Rewrite(first) = run(&map, 5_000, &b).0 else {
            panic!("the horizon must be set")
        };
        let (h, recs) = decode_records(&Bytes::from(first.clone()), 1 << 20).unwrap();
        assert!(h.has_delete_horizon());
        assert_eq!(h.base_timestamp, 5_500);
        // Record timestamps survive the new base.
        assert_eq!(
            recs.iter().map(|r| r.timestamp).collect::<Vec<_>>(),
            vec![1000, 1010]
        );
        assert_eq!(recs[0].value, None);
        // Before the horizon: kept as is.
        assert!(matches!(run(&map, 5_499, &first).0, Verdict::Keep));
        // After: the tombstone goes.
        let (v, stats) = run(&map, 5_500, &first);
        let Verdict::Rewrite(second) = v else {
            panic!("expected a rewrite")
        };
        assert_eq!(stats.tombstones_removed, 1);
        let (_, recs) = decode_records(&Bytes::from(second), 1 << 20).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].key.as_deref(), Some(&b"b"[..]));
        assert_eq!(recs[0].timestamp, 1010);
    }

    #[test]
    fn varlong_round_trip() {
        for v in [0i64, 1, -1, 63, -64, 64, i64::MAX, i64::MIN, -123_456_789] {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            let mut p = 0;
            assert_eq!(read_varlong(&out, &mut p), Some(v));
            assert_eq!(p, out.len());
        }
        assert_eq!(read_varlong(&[0x80; 11], &mut 0), None);
    }
}

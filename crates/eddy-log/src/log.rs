//! The partition log: segments, appends, reads, recovery, retention.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use eddy_protocol::records::{
    decode_records, set_base_offset, set_log_append_time, set_partition_leader_epoch, BatchHeader,
    BatchIter,
};
use tracing::{debug, info, warn};

use crate::checkpoint::{
    self, CheckpointError, CLEANER_OFFSET_CHECKPOINT, LEADER_EPOCH_CHECKPOINT,
    LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT,
};
use crate::cleaner::{self, CleanPlan, CleanStats, Cleaned, Cleaner, PlanSegment};
use crate::segment::{
    now_ms, BatchMeta, Scan, Scanner, Segment, CLEANED_SUFFIX, DELETED_SUFFIX, INDEX_SUFFIX,
    LOG_SUFFIX, SWAP_SUFFIX, TIME_INDEX_SUFFIX,
};
use crate::{AppendInfo, LogConfig, LogError, ReadResult, RecoveryInfo, TailScan};

/// Output cap when decoding one batch to find a record by timestamp.
const DECODE_LIMIT: usize = 256 * 1024 * 1024;

/// The log of one partition. Not internally synchronised: the broker keeps
/// it behind a lock (`read` and the queries take `&self`).
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    /// Closed segments, by base offset.
    closed: Vec<Segment>,
    active: Segment,
    log_start_offset: i64,
    recovery_point: i64,
    leader_epochs: Vec<(i32, i64)>,
    epochs_dirty: bool,
    unflushed_messages: u64,
    last_flush_ms: i64,
    roll_flush_pending: bool,
    pending_deletes: Vec<(i64, PathBuf)>,
    recovery: RecoveryInfo,
    metas: Vec<BatchMeta>,
    /// First offset not cleaned by the cleaner (its checkpoint).
    cleaner_checkpoint: i64,
}

fn corrupt(e: impl std::fmt::Display) -> LogError {
    LogError::Corrupt(e.to_string())
}

fn parse_base(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

fn read_checkpoint<T>(
    dir: &Path,
    r: Result<Option<T>, CheckpointError>,
) -> Result<Option<T>, LogError> {
    match r {
        Ok(v) => Ok(v),
        Err(CheckpointError::Io(e)) => Err(e.into()),
        Err(CheckpointError::Malformed(m)) => {
            warn!(dir = %dir.display(), "ignoring malformed checkpoint: {m}");
            Ok(None)
        }
    }
}

impl Log {
    /// Open or create the log in `dir`, recovering it if needed.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Log, LogError> {
        fs::create_dir_all(dir)?;
        cleaner::complete_swaps(dir)?;
        let mut bases = Vec::new();
        let mut others = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(DELETED_SUFFIX) || name.ends_with(".tmp") {
                debug!(file = name, "removing leftover file");
                if let Err(e) = fs::remove_file(entry.path()) {
                    warn!(file = name, "cannot remove leftover file: {e}");
                }
            } else if let Some(b) = parse_base(name, LOG_SUFFIX) {
                bases.push(b);
            } else if let Some(b) =
                parse_base(name, INDEX_SUFFIX).or_else(|| parse_base(name, TIME_INDEX_SUFFIX))
            {
                others.push((b, entry.path()));
            }
        }
        bases.sort_unstable();
        // Index files without a segment.
        for (b, p) in others {
            if bases.binary_search(&b).is_err() {
                let _ = fs::remove_file(p);
            }
        }
        let start_ckpt = read_checkpoint(
            dir,
            checkpoint::read_offset(&dir.join(LOG_START_OFFSET_CHECKPOINT)),
        )?;
        let rp_ckpt = read_checkpoint(
            dir,
            checkpoint::read_offset(&dir.join(RECOVERY_POINT_CHECKPOINT)),
        )?;
        let epochs = read_checkpoint(
            dir,
            checkpoint::read_leader_epochs(&dir.join(LEADER_EPOCH_CHECKPOINT)),
        )?
        .unwrap_or_default();

        let mut log = if bases.is_empty() {
            let base = start_ckpt.unwrap_or(0);
            let active = Segment::create(dir, base, config.segment_index_bytes)?;
            checkpoint::write_offset(dir, LOG_START_OFFSET_CHECKPOINT, base)?;
            checkpoint::write_offset(dir, RECOVERY_POINT_CHECKPOINT, base)?;
            Log::assemble(dir, config, Vec::new(), active, base, base, epochs)
        } else {
            Log::recover(dir, config, &bases, start_ckpt, rp_ckpt, epochs)?
        };
        log.recovery.segments = log.segment_count();
        let cleaned = read_checkpoint(
            dir,
            checkpoint::read_offset(&dir.join(CLEANER_OFFSET_CHECKPOINT)),
        )?;
        log.cleaner_checkpoint = cleaned.unwrap_or(0).min(log.log_end_offset());
        info!(
            dir = %dir.display(),
            segments = log.segment_count(),
            log_start_offset = log.log_start_offset,
            log_end_offset = log.log_end_offset(),
            rescanned_bytes = log.recovery.rescanned_bytes,
            truncated_bytes = log.recovery.truncated_bytes,
            rebuilt_indexes = log.recovery.rebuilt_indexes,
            unclean = log.recovery.unclean,
            "opened partition log"
        );
        Ok(log)
    }

    fn assemble(
        dir: &Path,
        config: LogConfig,
        closed: Vec<Segment>,
        active: Segment,
        log_start_offset: i64,
        recovery_point: i64,
        leader_epochs: Vec<(i32, i64)>,
    ) -> Log {
        Log {
            dir: dir.to_path_buf(),
            config,
            closed,
            active,
            log_start_offset,
            recovery_point,
            leader_epochs,
            epochs_dirty: false,
            unflushed_messages: 0,
            last_flush_ms: now_ms(),
            roll_flush_pending: false,
            pending_deletes: Vec::new(),
            recovery: RecoveryInfo::default(),
            metas: Vec::new(),
            cleaner_checkpoint: 0,
        }
    }

    fn recover(
        dir: &Path,
        config: LogConfig,
        bases: &[i64],
        start_ckpt: Option<i64>,
        rp_ckpt: Option<i64>,
        epochs: Vec<(i32, i64)>,
    ) -> Result<Log, LogError> {
        let interval = config.index_interval_bytes;
        let mut info = RecoveryInfo::default();
        let mut segs = Vec::with_capacity(bases.len());
        let mut index_ok = Vec::with_capacity(bases.len());
        for &b in bases {
            let (s, ok) = Segment::open(dir, b)?;
            segs.push(s);
            index_ok.push(ok);
        }
        let first_base = bases[0];
        let mut rp = rp_ckpt.unwrap_or(first_base).max(first_base);
        // k: the segment holding the recovery point; everything before it
        // was flushed and is trusted.
        let mut k = bases.partition_point(|&b| b <= rp).saturating_sub(1);
        let trusted = k;
        for i in 0..trusted {
            let next_base = bases[i + 1];
            let s = &mut segs[i];
            s.next_offset = next_base;
            let max_rel = next_base - 1 - s.base_offset;
            if !index_ok[i]
                || !s.offset_index.is_sane(s.size, max_rel)
                || !s.time_index.is_sane(max_rel)
            {
                warn!(segment = %s.log_path.display(), "index missing or corrupt; recovering the segment");
                k = i;
                rp = s.base_offset;
                break;
            }
            if let Some((ts, rel)) = s.time_index.last() {
                s.max_timestamp = ts;
                s.offset_of_max_timestamp = s.base_offset + i64::from(rel);
            }
        }
        // Position and next offset from which to verify segment k.
        let mut start: Option<(u64, i64)> = None;
        {
            let s = &mut segs[k];
            let sane = index_ok[k]
                && s.offset_index.is_sane(s.size, i64::from(u32::MAX))
                && s.time_index.is_sane(i64::from(u32::MAX));
            if sane {
                s.offset_index.0.truncate(
                    (0..s.offset_index.0.len())
                        .take_while(|&i| s.base_offset + i64::from(s.offset_index.get(i).0) < rp)
                        .count(),
                );
                s.time_index.truncate_to_offset(rp - s.base_offset);
                start = walk_to(s, rp);
            } else {
                info.rebuilt_indexes += 1;
            }
            if start.is_none() {
                s.offset_index.0.truncate(0);
                s.time_index.0.truncate(0);
                s.max_timestamp = -1;
                s.offset_of_max_timestamp = s.base_offset;
                s.bytes_since_index = 0;
            }
        }
        let (mut pos, mut next) = start.unwrap_or((0, segs[k].base_offset));
        info.unclean = rp_ckpt.is_none() || pos < segs[k].size || k + 1 < segs.len();
        // Verify segment k from `pos`, then every later segment whole.
        let mut cut_at: Option<usize> = None;
        let mut i = k;
        loop {
            let s = &mut segs[i];
            if i > k {
                s.offset_index.0.truncate(0);
                s.time_index.0.truncate(0);
                if !index_ok[i] {
                    info.rebuilt_indexes += 1;
                }
                pos = 0;
                if s.base_offset < next {
                    warn!(segment = %s.log_path.display(), "segment overlaps the previous one; dropping it");
                    cut_at = Some(i);
                    break;
                }
                next = s.base_offset;
            }
            info.rescanned_bytes += s.size - pos;
            let file = s.file.try_clone()?;
            let mut sc = Scanner::new(&file, pos, s.size, 1 << 20, true);
            let bad = loop {
                match sc.next_batch()? {
                    Scan::Batch(h, at) => {
                        if h.base_offset < next || !s.fits_offset(h.last_offset()) {
                            break Some(format!(
                                "batch offset {} at position {at} out of order (expected >= {next})",
                                h.base_offset
                            ));
                        }
                        s.index_batch(
                            at,
                            h.total_size() as u64,
                            h.last_offset(),
                            h.max_timestamp,
                            interval,
                        );
                        next = h.next_offset();
                    }
                    Scan::End => break None,
                    Scan::Bad(e) => break Some(e),
                }
            };
            s.next_offset = next;
            if let Some(reason) = bad {
                let at = sc.pos;
                let cut = s.size - at;
                warn!(
                    segment = %s.log_path.display(),
                    position = at,
                    bytes = cut,
                    "truncating log at a bad or torn batch: {reason}"
                );
                info.truncated_bytes += cut;
                s.truncate_at(at, next)?;
                cut_at = Some(i + 1);
                break;
            }
            i += 1;
            if i >= segs.len() {
                break;
            }
        }
        if let Some(c) = cut_at {
            for mut s in segs.drain(c..) {
                info.truncated_bytes += s.size;
                warn!(segment = %s.log_path.display(), "deleting segment after the truncation point");
                s.rename_deleted()?;
                for p in [
                    s.log_path.clone(),
                    s.offset_index.0.path().to_path_buf(),
                    s.time_index.0.path().to_path_buf(),
                ] {
                    drop_file(&p);
                }
            }
        }
        // An empty trailing segment whose base is not the end of the previous
        // one cannot take appends.
        if segs.len() > 1 {
            let n = segs.len();
            if segs[n - 1].size == 0 && segs[n - 1].base_offset != segs[n - 2].next_offset {
                if let Some(mut s) = segs.pop() {
                    s.rename_deleted()?;
                    for p in [
                        s.log_path.clone(),
                        s.offset_index.0.path().to_path_buf(),
                        s.time_index.0.path().to_path_buf(),
                    ] {
                        drop_file(&p);
                    }
                }
            }
        }
        let Some(mut active) = segs.pop() else {
            return Err(LogError::Corrupt("no segment left after recovery".into()));
        };
        let mut closed = segs;
        for s in &mut closed {
            if let Err(e) = s.make_inactive() {
                warn!(segment = %s.log_path.display(), "cannot trim indexes: {e}");
            }
        }
        active.make_active(config.segment_index_bytes)?;
        active.created_ms = first_batch_time(&active).unwrap_or_else(now_ms);
        let leo = active.next_offset;
        let first_base = closed.first().map_or(active.base_offset, |s| s.base_offset);
        let mut log_start = start_ckpt.unwrap_or(first_base).max(first_base);
        let rescanned_from = k;
        let mut log = Log::assemble(dir, config, closed, active, log_start, rp.min(leo), epochs);
        if log_start > leo {
            // Everything below the log start offset is gone anyway.
            warn!(dir = %dir.display(), log_start, leo, "log end is below the log start offset; starting empty");
            log.truncate_fully(log_start)?;
            log_start = log.log_start_offset;
        }
        log.log_start_offset = log_start;
        log.truncate_epochs_end(log.log_end_offset());
        log.truncate_epochs_start(log_start);
        // Make what was rescanned durable before claiming it clean.
        if info.unclean || info.truncated_bytes > 0 {
            for s in log.segments_from(rescanned_from) {
                s.sync()?;
            }
            checkpoint::sync_dir(dir)?;
        }
        log.recovery_point = log.log_end_offset();
        checkpoint::write_offset(dir, RECOVERY_POINT_CHECKPOINT, log.recovery_point)?;
        if start_ckpt != Some(log.log_start_offset) {
            checkpoint::write_offset(dir, LOG_START_OFFSET_CHECKPOINT, log.log_start_offset)?;
        }
        if log.epochs_dirty {
            log.persist_epochs();
        }
        log.recovery = info;
        Ok(log)
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn set_config(&mut self, c: LogConfig) {
        self.config = c;
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What `open` found and did.
    pub fn recovery_info(&self) -> &RecoveryInfo {
        &self.recovery
    }

    /// Offset up to which the log is known flushed.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active.next_offset
    }

    pub fn size_bytes(&self) -> u64 {
        self.closed.iter().map(|s| s.size).sum::<u64>() + self.active.size
    }

    pub fn segment_count(&self) -> usize {
        self.closed.len() + 1
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments().map(|s| s.base_offset).collect()
    }

    /// (epoch, start offset) entries, oldest first.
    pub fn leader_epoch_cache(&self) -> &[(i32, i64)] {
        &self.leader_epochs
    }

    fn segments(&self) -> impl DoubleEndedIterator<Item = &Segment> {
        self.closed.iter().chain(std::iter::once(&self.active))
    }

    fn segments_from(&self, i: usize) -> impl Iterator<Item = &Segment> {
        self.segments().skip(i)
    }

    fn segment(&self, i: usize) -> Option<&Segment> {
        if i < self.closed.len() {
            self.closed.get(i)
        } else if i == self.closed.len() {
            Some(&self.active)
        } else {
            None
        }
    }

    /// Index of the segment that would hold `offset`.
    fn segment_index_for(&self, offset: i64) -> usize {
        if offset >= self.active.base_offset {
            return self.closed.len();
        }
        self.closed
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    /// Append validated batches, assigning offsets from the log end.
    pub fn append(
        &mut self,
        batches: &mut BytesMut,
        leader_epoch: Option<i32>,
        log_append_time: Option<i64>,
    ) -> Result<AppendInfo, LogError> {
        let first = self.log_end_offset();
        let mut metas = std::mem::take(&mut self.metas);
        metas.clear();
        let res = (|| {
            let mut next = first;
            let mut max_ts = -1i64;
            let mut records = 0u64;
            let buf: &mut [u8] = &mut batches[..];
            let mut pos = 0usize;
            while pos < buf.len() {
                let h = BatchHeader::parse(&buf[pos..])?;
                h.check_fields()?;
                let total = h.total_size();
                if total > buf.len() - pos {
                    return Err(LogError::InvalidRecords(format!(
                        "batch at {pos} declares {total} bytes, {} present",
                        buf.len() - pos
                    )));
                }
                if total > self.config.max_message_bytes {
                    return Err(LogError::RecordTooLarge {
                        size: total,
                        max: self.config.max_message_bytes,
                    });
                }
                let b = &mut buf[pos..pos + total];
                set_base_offset(b, next);
                if let Some(e) = leader_epoch {
                    set_partition_leader_epoch(b, e);
                }
                if let Some(t) = log_append_time {
                    set_log_append_time(b, t);
                }
                let last = next + i64::from(h.last_offset_delta);
                let bmax = log_append_time.unwrap_or(h.max_timestamp);
                metas.push(BatchMeta {
                    pos: pos as u64,
                    size: total as u64,
                    last_offset: last,
                    max_timestamp: bmax,
                });
                next = last + 1;
                max_ts = max_ts.max(bmax);
                records += u64::try_from(h.records_count).unwrap_or(0);
                pos += total;
            }
            if metas.is_empty() {
                return Err(LogError::InvalidRecords("no record batches".into()));
            }
            self.write_batches(&batches[..], &metas, next)?;
            if let Some(e) = leader_epoch {
                self.assign_epoch(e, first);
            }
            self.after_append(records)?;
            Ok(AppendInfo {
                first_offset: first,
                last_offset: next - 1,
                log_append_time: log_append_time.unwrap_or(-1),
                log_start_offset: self.log_start_offset,
                max_timestamp: max_ts,
            })
        })();
        self.metas = metas;
        res
    }

    /// Append batches whose offsets are already set (replication): the first
    /// must start at the log end and offsets must increase. CRCs are checked.
    pub fn append_as_follower(&mut self, batches: &[u8]) -> Result<AppendInfo, LogError> {
        let first = self.log_end_offset();
        let mut metas = std::mem::take(&mut self.metas);
        metas.clear();
        let res = (|| {
            let mut next = first;
            let mut max_ts = -1i64;
            let mut records = 0u64;
            let mut epochs = Vec::new();
            for item in BatchIter::new(batches) {
                let (h, range) = item?;
                if metas.is_empty() && h.base_offset != first {
                    return Err(LogError::InvalidOffset {
                        expected: first,
                        got: h.base_offset,
                    });
                }
                if h.base_offset < next {
                    return Err(LogError::InvalidOffset {
                        expected: next,
                        got: h.base_offset,
                    });
                }
                metas.push(BatchMeta {
                    pos: range.start as u64,
                    size: range.len() as u64,
                    last_offset: h.last_offset(),
                    max_timestamp: h.max_timestamp,
                });
                if h.partition_leader_epoch >= 0 {
                    epochs.push((h.partition_leader_epoch, h.base_offset));
                }
                next = h.next_offset();
                max_ts = max_ts.max(h.max_timestamp);
                records += u64::try_from(h.records_count).unwrap_or(0);
            }
            if metas.is_empty() {
                return Err(LogError::InvalidRecords("no record batches".into()));
            }
            self.write_batches(batches, &metas, next)?;
            for (e, o) in epochs {
                self.assign_epoch(e, o);
            }
            self.after_append(records)?;
            Ok(AppendInfo {
                first_offset: first,
                last_offset: next - 1,
                log_append_time: -1,
                log_start_offset: self.log_start_offset,
                max_timestamp: max_ts,
            })
        })();
        self.metas = metas;
        res
    }

    fn write_batches(
        &mut self,
        data: &[u8],
        metas: &[BatchMeta],
        next: i64,
    ) -> Result<(), LogError> {
        self.maybe_roll(data.len() as u64, next - 1)?;
        let interval = self.config.index_interval_bytes;
        self.active.append(data, metas, next, interval)?;
        Ok(())
    }

    fn after_append(&mut self, records: u64) -> Result<(), LogError> {
        self.unflushed_messages = self.unflushed_messages.saturating_add(records.max(1));
        if self.unflushed_messages >= self.config.flush_messages
            || now_ms().saturating_sub(self.last_flush_ms) >= self.config.flush_ms
        {
            self.flush()?;
        }
        Ok(())
    }

    fn maybe_roll(&mut self, incoming: u64, last_offset: i64) -> Result<(), LogError> {
        let a = &self.active;
        let size_after = a.size + incoming;
        let roll = a.index_full()
            || (a.size > 0
                && (size_after > self.config.segment_bytes
                    || size_after > i32::MAX as u64
                    || now_ms().saturating_sub(a.created_ms) >= self.config.segment_ms
                    || !a.fits_offset(last_offset)));
        if roll {
            self.roll()?;
        }
        Ok(())
    }

    /// Close the active segment and start a new one at the log end.
    fn roll(&mut self) -> Result<(), LogError> {
        let base = self.log_end_offset();
        let new = Segment::create(&self.dir, base, self.config.segment_index_bytes)?;
        let mut old = std::mem::replace(&mut self.active, new);
        if let Err(e) = old.make_inactive() {
            warn!(segment = %old.log_path.display(), "cannot trim indexes on roll: {e}");
        }
        debug!(dir = %self.dir.display(), old_base = old.base_offset, new_base = base, size = old.size, "rolled segment");
        self.closed.push(old);
        self.roll_flush_pending = true;
        Ok(())
    }

    /// Read whole batches from the one containing `offset`, up to `max_bytes`
    /// (at least one batch), stopping before batches at or past `max_offset`.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<ReadResult, LogError> {
        let (start, end) = (self.log_start_offset, self.log_end_offset());
        if offset < start || offset > end {
            return Err(LogError::OffsetOutOfRange { offset, start, end });
        }
        let result = |data| ReadResult {
            data,
            log_start_offset: start,
            log_end_offset: end,
        };
        if offset == end || offset >= max_offset {
            return Ok(result(Bytes::new()));
        }
        let mut i = self.segment_index_for(offset);
        let (seg, pos, first) = loop {
            let Some(seg) = self.segment(i) else {
                return Ok(result(Bytes::new()));
            };
            if let Some((pos, h)) = seg.find_batch(offset).map_err(corrupt)? {
                break (seg, pos, h);
            }
            i += 1;
        };
        if first.base_offset >= max_offset {
            return Ok(result(Bytes::new()));
        }
        let first_len = first.total_size() as u64;
        let avail = seg.size - pos;
        let len = (max_bytes as u64).min(avail).max(first_len);
        let len = usize::try_from(len).map_err(corrupt)?;
        let mut buf = vec![0u8; len];
        seg.file.read_exact_at(&mut buf, pos)?;
        let mut keep = 0usize;
        for item in BatchIter::headers_only(&buf) {
            match item {
                Ok((h, range)) => {
                    if keep > 0 && h.base_offset >= max_offset {
                        break;
                    }
                    keep = range.end;
                }
                Err(_) => break,
            }
        }
        if keep == 0 {
            return Err(LogError::Corrupt(format!(
                "{}: unreadable batch at position {pos}",
                seg.log_path.display()
            )));
        }
        buf.truncate(keep);
        Ok(result(Bytes::from(buf)))
    }

    /// Walks the batch headers of the last `max_bytes` (about) of the log, in
    /// log order, calling `f` for each batch at or after the log start (to
    /// rebuild state kept outside the log, like idempotent producers'
    /// sequences, at startup). Only headers are read, nothing is decompressed.
    ///
    /// The scan starts on a batch boundary taken from the offset index: the
    /// last index entry at or before `max_bytes` from the end, so it covers at
    /// least `max_bytes` (or the whole log) and at most `max_bytes` plus one
    /// `index.interval.bytes` gap (and the batch straddling it). Segments
    /// older than the one holding that position are not read. Torn or corrupt
    /// data (recovery already cut it off; this is belt and braces) ends the
    /// scan of that segment with a warning, never a panic.
    pub fn scan_tail(
        &self,
        max_bytes: u64,
        mut f: impl FnMut(&BatchHeader),
    ) -> Result<TailScan, LogError> {
        let from = self.segment_index_for(self.log_start_offset);
        let segs: Vec<&Segment> = self.segments_from(from).collect();
        // Newest first until the budget is covered: (first segment, position in it).
        let (mut first, mut first_pos, mut remaining) = (0usize, 0u64, max_bytes);
        for (i, s) in segs.iter().enumerate().rev() {
            first = i;
            if s.size >= remaining {
                first_pos = s.offset_index.floor_position(s.size - remaining);
                break;
            }
            remaining -= s.size;
        }
        let mut scan = TailScan {
            from_offset: self.log_end_offset(),
            ..TailScan::default()
        };
        for (k, s) in segs.iter().enumerate().skip(first) {
            let pos = if k == first { first_pos.min(s.size) } else { 0 };
            let mut sc = Scanner::new(&s.file, pos, s.size, 64 * 1024, false);
            loop {
                match sc.next_batch()? {
                    Scan::Batch(h, _) => {
                        scan.bytes += h.total_size() as u64;
                        if h.last_offset() < self.log_start_offset {
                            continue;
                        }
                        if scan.batches == 0 {
                            scan.from_offset = h.base_offset;
                        }
                        scan.batches += 1;
                        f(&h);
                    }
                    Scan::End => break,
                    Scan::Bad(e) => {
                        warn!(segment = %s.log_path.display(), position = sc.pos, "tail scan stopped at a bad batch: {e}");
                        break;
                    }
                }
            }
        }
        Ok(scan)
    }

    /// Earliest record with timestamp >= `ts` (ListOffsets by timestamp):
    /// `(offset, timestamp)`, or None.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        let from = self.segment_index_for(self.log_start_offset);
        for seg in self.segments_from(from) {
            if seg.max_timestamp < ts {
                continue;
            }
            let pos = seg
                .time_index
                .lookup(ts)
                .and_then(|(_, rel)| seg.offset_index.lookup(i64::from(rel)))
                .map_or(0, |(_, p)| u64::from(p));
            let mut sc = Scanner::new(&seg.file, pos, seg.size, 4096, false);
            loop {
                match sc.next_batch()? {
                    Scan::Batch(h, at) => {
                        if h.max_timestamp >= ts && h.last_offset() >= self.log_start_offset {
                            return self.record_in_batch(seg, &h, at, |r| r >= ts).map(Some);
                        }
                    }
                    Scan::End => break,
                    Scan::Bad(e) => {
                        return Err(corrupt(format!("{}: {e}", seg.log_path.display())))
                    }
                }
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp (ListOffsets MAX_TIMESTAMP):
    /// `(timestamp, offset)`, or None if no batch carries a timestamp.
    pub fn max_timestamp_and_offset(&self) -> Result<Option<(i64, i64)>, LogError> {
        let from = self.segment_index_for(self.log_start_offset);
        let mut best: Option<&Segment> = None;
        for s in self.segments_from(from) {
            if s.size > 0
                && s.max_timestamp >= 0
                && best.is_none_or(|b| s.max_timestamp > b.max_timestamp)
            {
                best = Some(s);
            }
        }
        let Some(seg) = best else { return Ok(None) };
        let max = seg.max_timestamp;
        let pos = seg
            .offset_index
            .lookup(seg.offset_of_max_timestamp - seg.base_offset)
            .map_or(0, |(_, p)| u64::from(p));
        for start in [pos, 0] {
            let mut sc = Scanner::new(&seg.file, start, seg.size, 4096, false);
            loop {
                match sc.next_batch()? {
                    Scan::Batch(h, at) => {
                        if h.max_timestamp == max {
                            let (off, ts) = self.record_in_batch(seg, &h, at, |r| r == max)?;
                            return Ok(Some((ts, off)));
                        }
                    }
                    Scan::End => break,
                    Scan::Bad(e) => {
                        return Err(corrupt(format!("{}: {e}", seg.log_path.display())))
                    }
                }
            }
        }
        Ok(Some((max, seg.offset_of_max_timestamp)))
    }

    /// First record of the batch at `pos` (at or after the log start) whose
    /// timestamp satisfies `pred`: (offset, timestamp). Falls back to the
    /// batch's first offset and max timestamp if it cannot be decoded.
    fn record_in_batch(
        &self,
        seg: &Segment,
        h: &BatchHeader,
        pos: u64,
        pred: impl Fn(i64) -> bool,
    ) -> Result<(i64, i64), LogError> {
        let fallback = (h.base_offset.max(self.log_start_offset), h.max_timestamp);
        let mut buf = vec![0u8; h.total_size()];
        seg.file.read_exact_at(&mut buf, pos)?;
        match decode_records(&Bytes::from(buf), DECODE_LIMIT) {
            Ok((_, recs)) => Ok(recs
                .iter()
                .find(|r| r.offset >= self.log_start_offset && pred(r.timestamp))
                .map_or(fallback, |r| (r.offset, r.timestamp))),
            Err(e) => {
                warn!(segment = %seg.log_path.display(), position = pos, "cannot decode batch: {e}");
                Ok(fallback)
            }
        }
    }

    /// DeleteRecords: move the log start offset to `offset` (persisted) and
    /// drop the segments wholly below it. Returns the new log start offset.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError> {
        let end = self.log_end_offset();
        if offset > end || offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset,
                end,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        self.set_log_start(offset)?;
        let n = self.count_below_log_start();
        self.delete_oldest(n)?;
        Ok(self.log_start_offset)
    }

    fn set_log_start(&mut self, offset: i64) -> Result<(), LogError> {
        if offset != self.log_start_offset {
            self.log_start_offset = offset;
            checkpoint::write_offset(&self.dir, LOG_START_OFFSET_CHECKPOINT, offset)?;
            self.truncate_epochs_start(offset);
        }
        Ok(())
    }

    /// Closed segments whose successor starts at or below the log start.
    fn count_below_log_start(&self) -> usize {
        let mut n = 0;
        while n < self.closed.len() {
            let next_base = self
                .closed
                .get(n + 1)
                .map_or(self.active.base_offset, |s| s.base_offset);
            if next_base <= self.log_start_offset {
                n += 1;
            } else {
                break;
            }
        }
        n
    }

    /// Retention by time and size (and log start offset): delete closed
    /// segments, oldest first, never the active one. Returns how many.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        let mut n = 0;
        let delete = self.config.cleanup_policy.delete;
        if delete && self.config.retention_ms >= 0 {
            while n < self.closed.len()
                && now_ms.saturating_sub(self.closed[n].largest_timestamp())
                    > self.config.retention_ms
            {
                n += 1;
            }
        }
        if delete && self.config.retention_bytes >= 0 {
            let remaining: u64 = self.segments().skip(n).map(|s| s.size).sum();
            let mut diff = remaining as i64 - self.config.retention_bytes;
            while n < self.closed.len() && diff - self.closed[n].size as i64 >= 0 {
                diff -= self.closed[n].size as i64;
                n += 1;
            }
        }
        n = n.max(self.count_below_log_start());
        if n == 0 {
            self.process_pending_deletes(now_ms);
            return Ok(0);
        }
        let new_start = self
            .closed
            .get(n)
            .map_or(self.active.base_offset, |s| s.base_offset);
        if new_start > self.log_start_offset {
            self.set_log_start(new_start)?;
        }
        self.delete_oldest(n)?;
        self.process_pending_deletes(now_ms);
        info!(dir = %self.dir.display(), segments = n, log_start_offset = self.log_start_offset, "retention deleted segments");
        Ok(n)
    }

    fn delete_oldest(&mut self, n: usize) -> Result<(), LogError> {
        let n = n.min(self.closed.len());
        let doomed: Vec<Segment> = self.closed.drain(..n).collect();
        for s in doomed {
            self.schedule_delete(s)?;
        }
        Ok(())
    }

    fn schedule_delete(&mut self, mut s: Segment) -> Result<(), LogError> {
        let paths = s.rename_deleted()?;
        drop(s);
        if self.config.file_delete_delay_ms <= 0 {
            for p in paths {
                drop_file(&p);
            }
        } else {
            let due = now_ms().saturating_add(self.config.file_delete_delay_ms);
            self.pending_deletes
                .extend(paths.into_iter().map(|p| (due, p)));
        }
        Ok(())
    }

    fn process_pending_deletes(&mut self, now: i64) {
        self.pending_deletes.retain(|(due, p)| {
            if *due <= now {
                drop_file(p);
                false
            } else {
                true
            }
        });
    }

    /// Background housekeeping: roll by segment.ms, flush rolled segments and
    /// by flush.ms, delete files whose delay expired.
    pub fn tick(&mut self, now_ms: i64) -> Result<(), LogError> {
        if self.active.size > 0
            && now_ms.saturating_sub(self.active.created_ms) >= self.config.segment_ms
        {
            self.roll()?;
        }
        if self.unflushed_messages > 0
            && now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_ms
        {
            self.flush()?;
        } else if self.roll_flush_pending {
            self.flush_upto(self.active.base_offset)?;
        }
        self.process_pending_deletes(now_ms);
        Ok(())
    }

    /// fsync the segments holding data below `upto` that are past the
    /// recovery point, then move the recovery point there.
    fn flush_upto(&mut self, upto: i64) -> Result<(), LogError> {
        let rp = self.recovery_point;
        if upto > rp {
            for s in self
                .closed
                .iter()
                .filter(|s| s.next_offset > rp && s.base_offset < upto)
            {
                s.sync()?;
            }
            if upto > self.active.base_offset {
                self.active.seal_time_index();
                self.active.sync()?;
            }
            self.recovery_point = upto;
            checkpoint::write_offset(&self.dir, RECOVERY_POINT_CHECKPOINT, upto)?;
        }
        if upto >= self.active.base_offset {
            self.roll_flush_pending = false;
        }
        Ok(())
    }

    /// fsync data and indexes up to the log end and checkpoint the recovery
    /// point.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.flush_upto(self.log_end_offset())?;
        if self.epochs_dirty {
            self.persist_epochs();
        }
        self.unflushed_messages = 0;
        self.last_flush_ms = now_ms();
        self.roll_flush_pending = false;
        Ok(())
    }

    /// Remove everything at and after `offset` (replication). If `offset` is
    /// inside a batch, that whole batch goes and the log end becomes its base
    /// offset.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        let first_base = self.segments().next().map_or(0, |s| s.base_offset);
        if offset <= first_base || offset < self.log_start_offset {
            return self.truncate_fully(offset.max(0));
        }
        let i = self.segment_index_for(offset);
        let mut i = i;
        // A segment starting exactly at `offset` goes entirely.
        if self.segment(i).is_some_and(|s| s.base_offset == offset) && i > 0 {
            i -= 1;
        }
        // Drop segments after i and make i the active one.
        while self.closed.len() > i {
            let new_active = match self.closed.pop() {
                Some(s) => s,
                None => break,
            };
            let old = std::mem::replace(&mut self.active, new_active);
            self.schedule_delete(old)?;
        }
        let interval = self.config.index_interval_bytes;
        let found = self.active.find_batch(offset).map_err(corrupt)?;
        if let Some((pos, h)) = found {
            self.active.truncate_at(pos, h.base_offset)?;
        }
        self.active.rebuild_indexes(interval)?;
        self.active.make_active(self.config.segment_index_bytes)?;
        self.active.created_ms = first_batch_time(&self.active).unwrap_or_else(now_ms);
        let leo = self.log_end_offset();
        self.after_truncate(leo)
    }

    fn after_truncate(&mut self, leo: i64) -> Result<(), LogError> {
        if self.cleaner_checkpoint > leo {
            self.cleaner_checkpoint = leo;
            checkpoint::write_offset(&self.dir, CLEANER_OFFSET_CHECKPOINT, leo)?;
        }
        if self.recovery_point > leo {
            self.recovery_point = leo;
            checkpoint::write_offset(&self.dir, RECOVERY_POINT_CHECKPOINT, leo)?;
        }
        self.truncate_epochs_end(leo);
        if self.epochs_dirty {
            self.persist_epochs();
        }
        info!(dir = %self.dir.display(), log_end_offset = leo, "truncated log");
        Ok(())
    }

    /// Delete all data and restart the log at `offset`.
    fn truncate_fully(&mut self, offset: i64) -> Result<(), LogError> {
        let doomed: Vec<Segment> = self.closed.drain(..).collect();
        for s in doomed {
            self.schedule_delete(s)?;
        }
        let placeholder = Segment::create(&self.dir, offset, 0);
        match placeholder {
            Ok(mut new) => {
                new.make_active(self.config.segment_index_bytes)?;
                let old = std::mem::replace(&mut self.active, new);
                self.schedule_delete(old)?;
            }
            Err(e)
                if e.kind() == io::ErrorKind::AlreadyExists
                    && self.active.base_offset == offset =>
            {
                self.active.truncate_at(0, offset)?;
                self.active
                    .rebuild_indexes(self.config.index_interval_bytes)?;
            }
            Err(e) => return Err(e.into()),
        }
        self.log_start_offset = offset;
        checkpoint::write_offset(&self.dir, LOG_START_OFFSET_CHECKPOINT, offset)?;
        self.recovery_point = offset;
        checkpoint::write_offset(&self.dir, RECOVERY_POINT_CHECKPOINT, offset)?;
        self.leader_epochs.clear();
        self.epochs_dirty = true;
        self.after_truncate(offset)
    }

    fn assign_epoch(&mut self, epoch: i32, start_offset: i64) {
        match self.leader_epochs.last() {
            Some(&(e, _)) if epoch == e => return,
            Some(&(e, _)) if epoch < e => {
                warn!(dir = %self.dir.display(), epoch, latest = e, "ignoring older leader epoch");
                return;
            }
            _ => {}
        }
        self.leader_epochs.push((epoch, start_offset));
        self.persist_epochs();
    }

    fn persist_epochs(&mut self) {
        match checkpoint::write_leader_epochs(&self.dir, &self.leader_epochs) {
            Ok(()) => self.epochs_dirty = false,
            Err(e) => {
                self.epochs_dirty = true;
                warn!(dir = %self.dir.display(), "cannot write leader epoch checkpoint: {e}");
            }
        }
    }

    fn truncate_epochs_end(&mut self, end: i64) {
        let before = self.leader_epochs.len();
        self.leader_epochs.retain(|&(_, o)| o < end);
        if self.leader_epochs.len() != before {
            self.epochs_dirty = true;
        }
    }

    fn truncate_epochs_start(&mut self, start: i64) {
        let below = self
            .leader_epochs
            .iter()
            .take_while(|&&(_, o)| o < start)
            .count();
        if below == 0 {
            return;
        }
        // Keep the last entry that starts below `start`, moved up to it.
        let keep_from = below - 1;
        self.leader_epochs.drain(..keep_from);
        if let Some(first) = self.leader_epochs.first_mut() {
            first.1 = start;
        }
        self.epochs_dirty = true;
    }

    /// Flush everything and mark the log clean (recovery point at the end).
    pub fn close(mut self) -> Result<(), LogError> {
        self.flush()?;
        self.active.make_inactive()?;
        self.active.sync()?;
        let leo = self.log_end_offset();
        if self.recovery_point != leo {
            checkpoint::write_offset(&self.dir, RECOVERY_POINT_CHECKPOINT, leo)?;
        }
        let pending = std::mem::take(&mut self.pending_deletes);
        for (_, p) in pending {
            drop_file(&p);
        }
        debug!(dir = %self.dir.display(), log_end_offset = leo, "closed partition log");
        Ok(())
    }

    /// Remove the whole directory (topic deletion).
    pub fn delete(self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        drop(self);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// Where the cleaner stands on a log.
struct DirtyState {
    first_dirty: i64,
    first_uncleanable: i64,
    /// First closed segment holding offsets at or past the log start.
    start_idx: usize,
    clean_bytes: u64,
    dirty_bytes: u64,
}

impl DirtyState {
    fn ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }
}

// ---- compaction ---------------------------------------------------------------------------
impl Log {
    /// Base offset of the segment after closed segment `i`.
    fn closed_next(&self, i: usize) -> i64 {
        self.closed
            .get(i + 1)
            .map_or(self.active.base_offset, |s| s.base_offset)
    }

    fn dirty_state(&self, now: i64) -> DirtyState {
        let log_start = self.log_start_offset;
        let first_dirty = self
            .cleaner_checkpoint
            .max(log_start)
            .min(self.active.base_offset);
        let start_idx = (0..self.closed.len())
            .find(|&i| self.closed_next(i) > log_start)
            .unwrap_or(self.closed.len());
        let mut first_uncleanable = self.active.base_offset;
        let min_lag = self.config.min_compaction_lag_ms;
        if min_lag > 0 {
            for i in start_idx..self.closed.len() {
                let s = &self.closed[i];
                if self.closed_next(i) > first_dirty
                    && now.saturating_sub(s.largest_timestamp()) < min_lag
                {
                    first_uncleanable = s.base_offset.max(first_dirty);
                    break;
                }
            }
        }
        let (mut clean_bytes, mut dirty_bytes) = (0, 0);
        for i in start_idx..self.closed.len() {
            let s = &self.closed[i];
            if self.closed_next(i) <= first_dirty {
                clean_bytes += s.size;
            } else if s.base_offset < first_uncleanable {
                dirty_bytes += s.size;
            }
        }
        DirtyState {
            first_dirty,
            first_uncleanable,
            start_idx,
            clean_bytes,
            dirty_bytes,
        }
    }

    /// The cleaner's dirty ratio: bytes of closed segments not yet cleaned
    /// (and old enough for `min.compaction.lag.ms`) / bytes of closed
    /// segments. 0 for an empty log. Meaningful for compacted logs.
    pub fn cleanable_dirty_ratio(&self) -> f64 {
        self.dirty_state(now_ms()).ratio()
    }

    /// The first offset the cleaner has not cleaned (its checkpoint).
    pub fn first_dirty_offset(&self) -> i64 {
        self.cleaner_checkpoint
            .max(self.log_start_offset)
            .min(self.log_end_offset())
    }

    /// What the cleaner should clean now, if anything (call under the read
    /// lock): None unless the log is compacted and its dirty ratio is above
    /// `min.cleanable.dirty.ratio` or its oldest dirty batch is older than
    /// `max.compaction.lag.ms`. `force` plans whenever there are closed
    /// segments (to drop expired tombstones on demand).
    pub fn plan_cleaning(&self, now: i64, force: bool) -> Option<CleanPlan> {
        if !self.config.cleanup_policy.compact {
            return None;
        }
        let st = self.dirty_state(now);
        let ratio = st.ratio();
        let mut need_now = false;
        let max_lag = self.config.max_compaction_lag_ms;
        if st.dirty_bytes > 0 && max_lag < i64::MAX {
            let first = (st.start_idx..self.closed.len())
                .find(|&i| self.closed_next(i) > st.first_dirty)
                .and_then(|i| first_batch_time(&self.closed[i]));
            need_now = first.is_some_and(|t| now.saturating_sub(t) > max_lag);
        }
        let wanted = (st.dirty_bytes > 0
            && (need_now || ratio > self.config.min_cleanable_dirty_ratio))
            || (force && st.dirty_bytes + st.clean_bytes > 0);
        if !wanted {
            return None;
        }
        let segments = (st.start_idx..self.closed.len())
            .filter(|&i| self.closed[i].base_offset < st.first_uncleanable)
            .map(|i| {
                let s = &self.closed[i];
                PlanSegment {
                    base: s.base_offset,
                    next: self.closed_next(i),
                    size: s.size,
                    path: s.log_path.clone(),
                    last_modified_ms: s.last_modified_ms,
                }
            })
            .collect();
        Some(CleanPlan {
            dir: self.dir.clone(),
            config: self.config.clone(),
            segments,
            first_dirty: st.first_dirty,
            first_uncleanable: st.first_uncleanable,
            dirty_ratio: ratio,
            need_compaction_now: need_now,
            now_ms: now,
        })
    }

    /// Swap in the segments written by [`Cleaner::clean`] (call under the
    /// write lock). Returns false, discarding them, if the segments they
    /// replace changed since the plan (retention, truncation).
    ///
    /// Per group: `.cleaned` → `.swap` (committed: a crash from here on
    /// completes the swap at open), old segments → `.deleted`, `.swap` →
    /// final name; the directory is fsynced between the steps.
    pub fn finish_cleaning(&mut self, mut done: Cleaned) -> Result<bool, LogError> {
        if done.dir != self.dir {
            return Ok(false);
        }
        let find =
            |closed: &[Segment], base: i64| closed.iter().position(|s| s.base_offset == base);
        for g in &done.groups {
            let Some(i) = g.old.first().and_then(|&(b, _)| find(&self.closed, b)) else {
                debug!(dir = %self.dir.display(), "segments changed during cleaning; discarding it");
                return Ok(false);
            };
            let unchanged = g.old.iter().enumerate().all(|(j, &(b, size))| {
                self.closed
                    .get(i + j)
                    .is_some_and(|s| s.base_offset == b && s.size == size)
            });
            if !unchanged {
                debug!(dir = %self.dir.display(), "segments changed during cleaning; discarding it");
                return Ok(false);
            }
        }
        for g in done.groups.iter_mut() {
            let Some(i) = g.old.first().and_then(|&(b, _)| find(&self.closed, b)) else {
                continue;
            };
            let n = g.old.len();
            let Some(mut seg) = g.seg.take() else {
                continue;
            };
            if let Err(e) = seg.rename_suffix(CLEANED_SUFFIX, SWAP_SUFFIX) {
                g.seg = Some(seg);
                return Err(e.into());
            }
            checkpoint::sync_dir(&self.dir)?;
            seg.next_offset = self.closed_next(i + n - 1);
            let old: Vec<Segment> = self.closed.splice(i..i + n, std::iter::once(seg)).collect();
            for s in old {
                self.schedule_delete(s)?;
            }
            checkpoint::sync_dir(&self.dir)?;
            self.closed[i].rename_suffix(SWAP_SUFFIX, "")?;
        }
        checkpoint::sync_dir(&self.dir)?;
        let end = done.end_offset.min(self.log_end_offset());
        if end != self.cleaner_checkpoint {
            self.cleaner_checkpoint = end;
            checkpoint::write_offset(&self.dir, CLEANER_OFFSET_CHECKPOINT, end)?;
        }
        let st = &done.stats;
        info!(
            dir = %self.dir.display(),
            cleaned_to = end,
            segments_replaced = st.segments_replaced,
            segments_now = st.groups,
            bytes_read = st.bytes_read,
            bytes_written = st.bytes_written,
            records_read = st.records_read,
            records_retained = st.records_retained,
            tombstones_removed = st.tombstones_removed,
            elapsed_ms = st.elapsed_ms,
            "log cleaned"
        );
        Ok(true)
    }

    /// Plan, clean and swap in one go (tests, tools; the broker splits the
    /// steps to clean without holding the partition's lock). None if there
    /// was nothing to clean or the segments changed meanwhile.
    pub fn clean(
        &mut self,
        cleaner: &mut Cleaner,
        now: i64,
        force: bool,
    ) -> Result<Option<CleanStats>, LogError> {
        let Some(plan) = self.plan_cleaning(now, force) else {
            return Ok(None);
        };
        let done = cleaner.clean(&plan)?;
        let stats = done.stats.clone();
        Ok(self.finish_cleaning(done)?.then_some(stats))
    }
}

/// Walk the (trusted) batches of `s` from its offset index to `rp`. Returns
/// the position of the first batch at or past `rp` (the size if none) and the
/// offset following the walked batches, also accounting their timestamps and
/// setting `bytes_since_index`. None if a header is unreadable.
fn walk_to(s: &mut Segment, rp: i64) -> Option<(u64, i64)> {
    let entry = s.offset_index.lookup(rp - 1 - s.base_offset);
    let start = entry.map_or(0, |(_, p)| u64::from(p));
    let file = s.file.try_clone().ok()?;
    let mut sc = Scanner::new(&file, start, s.size, 64 * 1024, false);
    let mut next = s.base_offset;
    let found = loop {
        match sc.next_batch() {
            Ok(Scan::Batch(h, at)) => {
                if h.last_offset() >= rp {
                    // First batch at or past the recovery point (or holding
                    // it): verification starts there.
                    break (at, next);
                }
                if h.max_timestamp > s.max_timestamp {
                    s.max_timestamp = h.max_timestamp;
                    s.offset_of_max_timestamp = h.last_offset();
                }
                next = h.next_offset();
            }
            Ok(Scan::End) => break (s.size, next),
            Ok(Scan::Bad(_)) | Err(_) => return None,
        }
    };
    s.bytes_since_index = found.0 - start;
    if let Some((ts, rel)) = s.time_index.last() {
        if ts > s.max_timestamp {
            s.max_timestamp = ts;
            s.offset_of_max_timestamp = s.base_offset + i64::from(rel);
        }
    }
    Some(found)
}

/// Max timestamp of the first batch, if positive and not in the future.
fn first_batch_time(s: &Segment) -> Option<i64> {
    if s.size == 0 {
        return None;
    }
    let mut h = [0u8; eddy_protocol::records::BATCH_HEADER_LEN];
    s.file.read_exact_at(&mut h, 0).ok()?;
    let h = BatchHeader::parse(&h).ok()?;
    Some(h.max_timestamp).filter(|&t| t > 0 && t <= now_ms())
}

fn drop_file(p: &Path) {
    match fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            warn!(file = %p.display(), "cannot delete file: {e}");
        }
        _ => {}
    }
}

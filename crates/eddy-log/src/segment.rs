//! One segment: a `.log` file of concatenated batches plus its two indexes.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use eddy_protocol::records::{validate_batch, BatchHeader, BATCH_HEADER_LEN};

use crate::index::{OffsetIndex, TimeIndex};

pub(crate) const LOG_SUFFIX: &str = ".log";
pub(crate) const INDEX_SUFFIX: &str = ".index";
pub(crate) const TIME_INDEX_SUFFIX: &str = ".timeindex";
pub(crate) const DELETED_SUFFIX: &str = ".deleted";
/// A segment written by the cleaner, not yet part of the log.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
/// A cleaned segment committed to replace the segments it covers.
pub(crate) const SWAP_SUFFIX: &str = ".swap";

pub(crate) fn file_name(base: i64, suffix: &str) -> String {
    format!("{base:020}{suffix}")
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What a batch appended to a segment contributes to its indexes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchMeta {
    /// Position of the batch inside the appended buffer.
    pub pos: u64,
    pub size: u64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

pub(crate) struct Segment {
    pub base_offset: i64,
    pub log_path: PathBuf,
    pub file: File,
    /// Bytes of valid batches.
    pub size: u64,
    /// Offset after the last batch (base_offset when empty). For segments
    /// loaded without a scan, the next segment's base offset.
    pub next_offset: i64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    pub bytes_since_index: u64,
    /// Largest batch max timestamp (-1 if none) and the offset it was first
    /// reached at.
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: i64,
    /// When the segment got its first batch (for segment.ms).
    pub created_ms: i64,
    pub last_modified_ms: i64,
}

/// Outcome of scanning one batch.
pub(crate) enum Scan {
    Batch(BatchHeader, u64),
    End,
    /// Torn or corrupt data at the scanner's position.
    Bad(String),
}

/// Forward scanner over the batches of a segment file, reading in chunks.
pub(crate) struct Scanner<'a> {
    file: &'a File,
    end: u64,
    pub pos: u64,
    buf: Vec<u8>,
    buf_start: u64,
    chunk: usize,
    verify: bool,
}

impl<'a> Scanner<'a> {
    /// Scan `[pos, end)`; `verify` checks each batch's CRC (reading it whole),
    /// otherwise only headers are read.
    pub(crate) fn new(file: &'a File, pos: u64, end: u64, chunk: usize, verify: bool) -> Self {
        Scanner {
            file,
            end,
            pos,
            buf: Vec::new(),
            buf_start: 0,
            chunk,
            verify,
        }
    }

    /// Make `buf` hold `[pos, pos + n)`; the caller checked it is in the file.
    fn ensure(&mut self, n: usize) -> io::Result<&[u8]> {
        let have = self.buf_start <= self.pos
            && self.pos + n as u64 <= self.buf_start + self.buf.len() as u64;
        if !have {
            let avail = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
            let len = self.chunk.max(n).min(avail);
            self.buf.resize(len, 0);
            self.file.read_exact_at(&mut self.buf, self.pos)?;
            self.buf_start = self.pos;
        }
        let from = (self.pos - self.buf_start) as usize;
        Ok(&self.buf[from..from + n])
    }

    pub(crate) fn next_batch(&mut self) -> io::Result<Scan> {
        if self.pos >= self.end {
            return Ok(Scan::End);
        }
        let remaining = self.end - self.pos;
        if remaining < BATCH_HEADER_LEN as u64 {
            return Ok(Scan::Bad(format!("torn batch header ({remaining} bytes)")));
        }
        let header = match BatchHeader::parse(self.ensure(BATCH_HEADER_LEN)?) {
            Ok(h) => h,
            Err(e) => return Ok(Scan::Bad(e.to_string())),
        };
        if let Err(e) = header.check_fields() {
            return Ok(Scan::Bad(e.to_string()));
        }
        let total = header.total_size() as u64;
        if total > remaining {
            return Ok(Scan::Bad(format!(
                "torn batch: {total} bytes declared, {remaining} present"
            )));
        }
        if self.verify {
            if let Err(e) = validate_batch(self.ensure(total as usize)?) {
                return Ok(Scan::Bad(e.to_string()));
            }
        }
        let at = self.pos;
        self.pos += total;
        Ok(Scan::Batch(header, at))
    }
}

impl Segment {
    fn paths(dir: &Path, base: i64) -> (PathBuf, PathBuf, PathBuf) {
        (
            dir.join(file_name(base, LOG_SUFFIX)),
            dir.join(file_name(base, INDEX_SUFFIX)),
            dir.join(file_name(base, TIME_INDEX_SUFFIX)),
        )
    }

    /// Create a new empty active segment.
    pub(crate) fn create(dir: &Path, base: i64, index_bytes: u64) -> io::Result<Segment> {
        Self::create_with_suffix(dir, base, "", index_bytes)
    }

    /// Create a new empty segment whose three files carry `suffix` (the
    /// cleaner's `.cleaned`; leftovers of an earlier attempt are replaced).
    pub(crate) fn create_with_suffix(
        dir: &Path,
        base: i64,
        suffix: &str,
        index_bytes: u64,
    ) -> io::Result<Segment> {
        let (lp, ip, tp) = Self::paths(dir, base);
        let (lp, ip, tp) = if suffix.is_empty() {
            (lp, ip, tp)
        } else {
            let (lp, ip, tp) = (
                with_suffix(&lp, suffix),
                with_suffix(&ip, suffix),
                with_suffix(&tp, suffix),
            );
            match fs::remove_file(&lp) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            (lp, ip, tp)
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&lp)?;
        // Stale index files of a segment that no longer exists.
        for p in [&ip, &tp] {
            match fs::remove_file(p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let (mut oi, _) = OffsetIndex::open(&ip)?;
        let (mut ti, _) = TimeIndex::open(&tp)?;
        oi.0.make_active(index_bytes)?;
        ti.0.make_active(index_bytes)?;
        Ok(Segment {
            base_offset: base,
            log_path: lp,
            file,
            size: 0,
            next_offset: base,
            offset_index: oi,
            time_index: ti,
            bytes_since_index: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base,
            created_ms: now_ms(),
            last_modified_ms: now_ms(),
        })
    }

    /// Open an existing segment as is. Returns the segment and whether its
    /// index files were present with whole entries.
    pub(crate) fn open(dir: &Path, base: i64) -> io::Result<(Segment, bool)> {
        let (lp, ip, tp) = Self::paths(dir, base);
        let file = OpenOptions::new().read(true).write(true).open(&lp)?;
        let meta = file.metadata()?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or_else(now_ms);
        let indexes_existed = ip.exists() && tp.exists();
        let (oi, ok1) = OffsetIndex::open(&ip)?;
        let (ti, ok2) = TimeIndex::open(&tp)?;
        let seg = Segment {
            base_offset: base,
            log_path: lp,
            file,
            size: meta.len(),
            next_offset: base,
            offset_index: oi,
            time_index: ti,
            bytes_since_index: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base,
            created_ms: now_ms(),
            last_modified_ms: mtime,
        };
        Ok((seg, indexes_existed && ok1 && ok2))
    }

    pub(crate) fn rel(&self, offset: i64) -> u32 {
        u32::try_from(offset - self.base_offset).unwrap_or(u32::MAX)
    }

    /// Whether `offset` can be stored relative to this segment's base.
    pub(crate) fn fits_offset(&self, offset: i64) -> bool {
        offset >= self.base_offset && offset - self.base_offset <= i64::from(u32::MAX)
    }

    /// Account one batch at segment position `pos` in the indexes.
    pub(crate) fn index_batch(
        &mut self,
        pos: u64,
        size: u64,
        last_offset: i64,
        max_timestamp: i64,
        interval: u64,
    ) {
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.offset_of_max_timestamp = last_offset;
        }
        if self.bytes_since_index > interval {
            if let Ok(p) = u32::try_from(pos) {
                self.offset_index.append(self.rel(last_offset), p);
            }
            self.time_index
                .maybe_append(self.max_timestamp, self.rel(self.offset_of_max_timestamp));
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += size;
    }

    /// Append `data` (whole batches described by `metas`) with one write.
    pub(crate) fn append(
        &mut self,
        data: &[u8],
        metas: &[BatchMeta],
        next_offset: i64,
        interval: u64,
    ) -> io::Result<()> {
        let start = self.size;
        self.file.write_all_at(data, start)?;
        if self.size == 0 {
            self.created_ms = now_ms();
        }
        self.size += data.len() as u64;
        for m in metas {
            self.index_batch(
                start + m.pos,
                m.size,
                m.last_offset,
                m.max_timestamp,
                interval,
            );
        }
        self.next_offset = next_offset;
        self.last_modified_ms = now_ms();
        Ok(())
    }

    /// Record the exact max timestamp in the time index (on roll, flush, close).
    pub(crate) fn seal_time_index(&mut self) {
        if self.max_timestamp >= 0 || self.time_index.0.len() > 0 {
            self.time_index
                .maybe_append(self.max_timestamp, self.rel(self.offset_of_max_timestamp));
        }
    }

    /// Stop being the active segment: final time index entry, trimmed indexes.
    pub(crate) fn make_inactive(&mut self) -> io::Result<()> {
        self.seal_time_index();
        self.offset_index.0.trim()?;
        self.time_index.0.trim()
    }

    pub(crate) fn make_active(&mut self, index_bytes: u64) -> io::Result<()> {
        self.offset_index.0.make_active(index_bytes)?;
        self.time_index.0.make_active(index_bytes)
    }

    pub(crate) fn index_full(&self) -> bool {
        self.offset_index.0.is_full() || self.time_index.0.is_full()
    }

    /// fsync data and indexes.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()?;
        self.offset_index.0.sync()?;
        self.time_index.0.sync()
    }

    /// Find the first batch whose last offset is >= `offset`: its position and
    /// header, or None if the segment has no such batch.
    pub(crate) fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, String> {
        let start = self
            .offset_index
            .lookup(offset - self.base_offset)
            .map_or(0, |(_, p)| u64::from(p));
        let mut sc = Scanner::new(&self.file, start.min(self.size), self.size, 4096, false);
        loop {
            match sc.next_batch() {
                Ok(Scan::Batch(h, pos)) => {
                    if h.last_offset() >= offset {
                        return Ok(Some((pos, h)));
                    }
                }
                Ok(Scan::End) => return Ok(None),
                Ok(Scan::Bad(e)) => {
                    return Err(format!("{} at {}: {e}", self.log_path.display(), sc.pos))
                }
                Err(e) => return Err(format!("{}: {e}", self.log_path.display())),
            }
        }
    }

    /// Drop everything at or after file position `pos` (a batch boundary) and
    /// reset `next_offset`; indexes lose the entries past it. The max
    /// timestamp is recomputed by the caller if needed.
    pub(crate) fn truncate_at(&mut self, pos: u64, next_offset: i64) -> io::Result<()> {
        self.file.set_len(pos)?;
        self.size = pos;
        self.next_offset = next_offset;
        self.offset_index.truncate_to_position(pos);
        self.time_index
            .truncate_to_offset(next_offset - self.base_offset);
        Ok(())
    }

    /// Clear both indexes and rebuild them (and max timestamp, next offset)
    /// from the batches in `[0, size)`, trusting them (headers only). Stops at
    /// the first bad header, returning its position.
    pub(crate) fn rebuild_indexes(&mut self, interval: u64) -> io::Result<Option<u64>> {
        self.offset_index.0.truncate(0);
        self.time_index.0.truncate(0);
        self.bytes_since_index = 0;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.next_offset = self.base_offset;
        let file = self.file.try_clone()?;
        let mut sc = Scanner::new(&file, 0, self.size, 1 << 20, false);
        loop {
            match sc.next_batch()? {
                Scan::Batch(h, pos) => {
                    self.index_batch(
                        pos,
                        h.total_size() as u64,
                        h.last_offset(),
                        h.max_timestamp,
                        interval,
                    );
                    self.next_offset = h.next_offset();
                }
                Scan::End => return Ok(None),
                Scan::Bad(_) => return Ok(Some(sc.pos)),
            }
        }
    }

    /// Rename the files with a `.deleted` suffix; returns the new paths.
    pub(crate) fn rename_deleted(&mut self) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::with_capacity(3);
        let lp = with_suffix(&self.log_path, DELETED_SUFFIX);
        fs::rename(&self.log_path, &lp)?;
        self.log_path = lp.clone();
        out.push(lp);
        for idx in [&mut self.offset_index.0, &mut self.time_index.0] {
            let np = with_suffix(idx.path(), DELETED_SUFFIX);
            match fs::rename(idx.path(), &np) {
                Ok(()) => {
                    idx.set_path(np.clone());
                    out.push(np);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Rename the three files from `<name><from>` to `<name><to>` (a suffix
    /// may be empty): indexes first, the `.log` last, so that the `.log`
    /// file's name is the commit point of each step of a swap.
    pub(crate) fn rename_suffix(&mut self, from: &str, to: &str) -> io::Result<()> {
        let swap = |p: &Path| -> Option<PathBuf> {
            let s = p.to_str()?;
            let stem = s.strip_suffix(from)?;
            Some(PathBuf::from(format!("{stem}{to}")))
        };
        for idx in [&mut self.offset_index.0, &mut self.time_index.0] {
            let Some(np) = swap(idx.path()) else {
                return Err(io::Error::other(format!(
                    "{} does not end with {from:?}",
                    idx.path().display()
                )));
            };
            fs::rename(idx.path(), &np)?;
            idx.set_path(np);
        }
        let Some(np) = swap(&self.log_path) else {
            return Err(io::Error::other(format!(
                "{} does not end with {from:?}",
                self.log_path.display()
            )));
        };
        fs::rename(&self.log_path, &np)?;
        self.log_path = np;
        Ok(())
    }

    /// Set the `.log` file's modification time (a cleaned segment keeps the
    /// time of the segments it replaces, for time-based retention).
    pub(crate) fn set_last_modified(&mut self, ms: i64) -> io::Result<()> {
        if ms > 0 {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
            self.file.set_modified(t)?;
            self.last_modified_ms = ms;
        }
        Ok(())
    }

    /// Paths of the three files.
    pub(crate) fn file_paths(&self) -> [PathBuf; 3] {
        [
            self.log_path.clone(),
            self.offset_index.0.path().to_path_buf(),
            self.time_index.0.path().to_path_buf(),
        ]
    }

    /// Largest timestamp for retention: max record timestamp, or the file's
    /// modification time when no batch carries one.
    pub(crate) fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp > 0 {
            self.max_timestamp
        } else {
            self.last_modified_ms
        }
    }
}

pub(crate) fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

//! Memory-mapped sparse index files (Kafka's `.index` and `.timeindex`).
//!
//! Both are arrays of fixed-size big-endian entries. The active segment's
//! files are preallocated to `segment.index.bytes` (rounded down to a whole
//! entry) and trimmed to their entries when the segment rolls or closes; a
//! preallocated file is read back up to its first all-zero entry.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

pub(crate) const OFFSET_ENTRY: usize = 8;
pub(crate) const TIME_ENTRY: usize = 12;

pub(crate) struct IndexFile {
    path: PathBuf,
    file: File,
    mmap: Option<MmapMut>,
    entry_size: usize,
    entries: usize,
    /// Entries the mapping has room for.
    slots: usize,
}

impl IndexFile {
    /// Open (or create, empty) the index at `path` and load its entries: a
    /// prefix of whole entries up to the first all-zero entry after the first.
    /// Returns the index and whether the file length was a whole number of
    /// entries (a sanity check the caller acts on).
    pub(crate) fn open(path: &Path, entry_size: usize) -> io::Result<(IndexFile, bool)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len();
        let whole = len % entry_size as u64 == 0;
        let mut idx = IndexFile {
            path: path.to_path_buf(),
            file,
            mmap: None,
            entry_size,
            entries: 0,
            slots: 0,
        };
        idx.map(len)?;
        let mut n = 0;
        while n < idx.slots {
            if n > 0 && idx.entry(n).iter().all(|&b| b == 0) {
                break;
            }
            n += 1;
        }
        idx.entries = n;
        Ok((idx, whole))
    }

    fn map(&mut self, len: u64) -> io::Result<()> {
        self.mmap = None;
        let slots = usize::try_from(len).unwrap_or(usize::MAX) / self.entry_size;
        if slots == 0 {
            self.slots = 0;
            return Ok(());
        }
        // SAFETY: the file is private to this log (one Log per directory); it
        // is only resized by this struct, after the mapping is dropped.
        let m = unsafe {
            memmap2::MmapOptions::new()
                .len(slots * self.entry_size)
                .map_mut(&self.file)?
        };
        self.mmap = Some(m);
        self.slots = slots;
        Ok(())
    }

    fn resize(&mut self, bytes: u64) -> io::Result<()> {
        if let Some(m) = &self.mmap {
            m.flush()?;
        }
        self.mmap = None;
        self.file.set_len(bytes)?;
        self.map(bytes)
    }

    /// Preallocate to `capacity_bytes` (rounded down to whole entries, and at
    /// least the current entries) for appending.
    pub(crate) fn make_active(&mut self, capacity_bytes: u64) -> io::Result<()> {
        let es = self.entry_size as u64;
        let cap = (capacity_bytes / es * es).max(self.entries as u64 * es);
        if cap != self.slots as u64 * es || self.file.metadata()?.len() != cap {
            self.resize(cap)?;
        }
        Ok(())
    }

    /// Trim the file to exactly its entries.
    pub(crate) fn trim(&mut self) -> io::Result<()> {
        let bytes = (self.entries * self.entry_size) as u64;
        if self.file.metadata()?.len() != bytes {
            self.resize(bytes)?;
        }
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
    }

    pub(crate) fn is_full(&self) -> bool {
        self.slots > 0 && self.entries >= self.slots
    }

    pub(crate) fn entry(&self, i: usize) -> &[u8] {
        match &self.mmap {
            Some(m) if i < self.slots => &m[i * self.entry_size..(i + 1) * self.entry_size],
            _ => &[],
        }
    }

    /// Append an entry; false (nothing written) if there is no room.
    fn push(&mut self, e: &[u8]) -> bool {
        debug_assert_eq!(e.len(), self.entry_size);
        let i = self.entries;
        match &mut self.mmap {
            Some(m) if i < self.slots => {
                m[i * self.entry_size..(i + 1) * self.entry_size].copy_from_slice(e);
                self.entries += 1;
                true
            }
            _ => false,
        }
    }

    /// Keep the first `n` entries, zeroing the rest of the mapping.
    pub(crate) fn truncate(&mut self, n: usize) {
        if n >= self.entries {
            return;
        }
        if let Some(m) = &mut self.mmap {
            let from = n * self.entry_size;
            let to = self.entries * self.entry_size;
            m[from..to].fill(0);
        }
        self.entries = n;
    }

    /// Write the mapping back and fsync the file.
    pub(crate) fn sync(&self) -> io::Result<()> {
        if let Some(m) = &self.mmap {
            m.flush()?;
        }
        self.file.sync_all()
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn set_path(&mut self, p: PathBuf) {
        self.path = p;
    }

    /// Binary search: index of the last entry whose key (from `key`) is <=
    /// `target`, if any. Keys must be non-decreasing.
    fn floor(&self, target: i64, key: impl Fn(&[u8]) -> i64) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if key(self.entry(mid)) <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    match b.get(at..at + 8) {
        Some(s) => {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            i64::from_be_bytes(a)
        }
        None => 0,
    }
}

/// Offset index: (relative offset of a batch's last record, file position of
/// the batch).
pub(crate) struct OffsetIndex(pub(crate) IndexFile);

impl OffsetIndex {
    pub(crate) fn open(path: &Path) -> io::Result<(OffsetIndex, bool)> {
        let (f, ok) = IndexFile::open(path, OFFSET_ENTRY)?;
        Ok((OffsetIndex(f), ok))
    }

    pub(crate) fn get(&self, i: usize) -> (u32, u32) {
        let e = self.0.entry(i);
        (be_u32(e, 0), be_u32(e, 4))
    }

    pub(crate) fn append(&mut self, rel_offset: u32, position: u32) -> bool {
        let mut e = [0u8; OFFSET_ENTRY];
        e[..4].copy_from_slice(&rel_offset.to_be_bytes());
        e[4..].copy_from_slice(&position.to_be_bytes());
        self.0.push(&e)
    }

    /// Position of the last entry with relative offset <= `rel`.
    pub(crate) fn lookup(&self, rel: i64) -> Option<(u32, u32)> {
        self.0
            .floor(rel, |e| i64::from(be_u32(e, 0)))
            .map(|i| self.get(i))
    }

    /// Position of the last entry at or before file position `pos` (0 if
    /// none): a batch boundary to start a scan from.
    pub(crate) fn floor_position(&self, pos: u64) -> u64 {
        let target = i64::try_from(pos).unwrap_or(i64::MAX);
        self.0
            .floor(target, |e| i64::from(be_u32(e, 4)))
            .map_or(0, |i| u64::from(self.get(i).1))
    }

    /// Entries strictly increasing in offset and non-decreasing in position,
    /// positions inside the segment, offsets within `max_rel`.
    pub(crate) fn is_sane(&self, segment_size: u64, max_rel: i64) -> bool {
        let mut prev: Option<(u32, u32)> = None;
        for i in 0..self.0.len() {
            let (o, p) = self.get(i);
            if u64::from(p) >= segment_size.max(1) || i64::from(o) > max_rel {
                return false;
            }
            if let Some((po, pp)) = prev {
                if o <= po || p < pp {
                    return false;
                }
            }
            prev = Some((o, p));
        }
        true
    }

    /// Drop entries for batches at or after file position `pos`.
    pub(crate) fn truncate_to_position(&mut self, pos: u64) {
        let keep = (0..self.0.len())
            .take_while(|&i| u64::from(self.get(i).1) < pos)
            .count();
        self.0.truncate(keep);
    }
}

/// Time index: (max timestamp so far, relative offset of the record with it).
pub(crate) struct TimeIndex(pub(crate) IndexFile);

impl TimeIndex {
    pub(crate) fn open(path: &Path) -> io::Result<(TimeIndex, bool)> {
        let (f, ok) = IndexFile::open(path, TIME_ENTRY)?;
        Ok((TimeIndex(f), ok))
    }

    pub(crate) fn get(&self, i: usize) -> (i64, u32) {
        let e = self.0.entry(i);
        (be_i64(e, 0), be_u32(e, 8))
    }

    pub(crate) fn last(&self) -> Option<(i64, u32)> {
        self.0.len().checked_sub(1).map(|i| self.get(i))
    }

    /// Append if `ts` is past the last entry's timestamp.
    pub(crate) fn maybe_append(&mut self, ts: i64, rel_offset: u32) {
        match self.last() {
            Some((lt, lo)) if ts <= lt || rel_offset < lo => {}
            _ => {
                let mut e = [0u8; TIME_ENTRY];
                e[..8].copy_from_slice(&ts.to_be_bytes());
                e[8..].copy_from_slice(&rel_offset.to_be_bytes());
                self.0.push(&e);
            }
        }
    }

    /// Last entry with timestamp <= `ts`.
    pub(crate) fn lookup(&self, ts: i64) -> Option<(i64, u32)> {
        self.0.floor(ts, |e| be_i64(e, 0)).map(|i| self.get(i))
    }

    pub(crate) fn is_sane(&self, max_rel: i64) -> bool {
        let mut prev: Option<(i64, u32)> = None;
        for i in 0..self.0.len() {
            let (t, o) = self.get(i);
            if i64::from(o) > max_rel {
                return false;
            }
            if let Some((pt, po)) = prev {
                if t <= pt || o < po {
                    return false;
                }
            }
            prev = Some((t, o));
        }
        true
    }

    /// Drop entries whose relative offset is >= `rel`.
    pub(crate) fn truncate_to_offset(&mut self, rel: i64) {
        let keep = (0..self.0.len())
            .take_while(|&i| i64::from(self.get(i).1) < rel)
            .count();
        self.0.truncate(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_append_lookup_trim_reopen() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("0.index");
        let (mut idx, ok) = OffsetIndex::open(&p).unwrap();
        assert!(ok);
        idx.0.make_active(80).unwrap();
        for i in 0..5u32 {
            assert!(idx.append(i * 10 + 9, i * 4096));
        }
        assert_eq!(idx.lookup(0), None);
        assert_eq!(idx.lookup(9), Some((9, 0)));
        assert_eq!(idx.lookup(25), Some((19, 4096)));
        assert_eq!(idx.lookup(1000), Some((49, 4 * 4096)));
        assert!(idx.is_sane(5 * 4096, 49));
        assert!(!idx.is_sane(4 * 4096, 49));
        // preallocated file reloads only the real entries
        drop(idx);
        let (idx, ok) = OffsetIndex::open(&p).unwrap();
        assert!(ok);
        assert_eq!(idx.0.len(), 5);
        let mut idx = idx;
        idx.0.trim().unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 40);
        idx.truncate_to_position(4096 * 2);
        assert_eq!(idx.0.len(), 2);
    }

    #[test]
    fn time_index_only_grows() {
        let d = tempfile::tempdir().unwrap();
        let (mut t, _) = TimeIndex::open(&d.path().join("0.timeindex")).unwrap();
        t.0.make_active(10 * 1024).unwrap();
        t.maybe_append(100, 0);
        t.maybe_append(90, 5);
        t.maybe_append(200, 7);
        assert_eq!(t.0.len(), 2);
        assert_eq!(t.lookup(99), None);
        assert_eq!(t.lookup(150), Some((100, 0)));
        assert_eq!(t.last(), Some((200, 7)));
        assert!(!t.0.is_full());
    }
}

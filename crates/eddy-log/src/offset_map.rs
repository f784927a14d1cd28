//! The cleaner's key → latest offset map (Kafka's `SkimpyOffsetMap`).
//!
//! Keys are not stored: each entry is a 128-bit hash of the key plus the
//! offset, 24 bytes, in an open-addressing table with linear probing. The
//! table starts small and doubles up to the memory bound
//! (`log.cleaner.dedupe.buffer.size`); it accepts entries up to a 0.9 load
//! factor of that bound. Two keys with the same 128-bit hash would be
//! confused (the older record of one could be dropped): with a 128-bit hash
//! that chance is negligible, the same trade-off Kafka makes with MD5.

use std::hash::{DefaultHasher, Hasher};

/// Bytes one entry costs.
pub const ENTRY_BYTES: usize = 24;
/// Kafka's `log.cleaner.io.buffer.load.factor`.
const LOAD_FACTOR: f64 = 0.9;
const INITIAL_SLOTS: usize = 1024;

#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Slot {
    /// Never both zero for a used slot (`h1` has its low bit set).
    h1: u64,
    h2: u64,
    offset: i64,
}

impl Slot {
    fn is_empty(&self) -> bool {
        self.h1 == 0
    }
}

/// Key → latest offset, bounded in memory.
pub struct OffsetMap {
    slots: Vec<Slot>,
    entries: usize,
    max_slots: usize,
    /// Largest offset put since the last clear (-1 if none).
    latest_offset: i64,
}

fn hash(key: &[u8]) -> (u64, u64) {
    let mut h = DefaultHasher::new();
    h.write(key);
    let a = h.finish();
    h.write_u8(0xa5);
    let b = h.finish();
    (a | 1, b)
}

impl OffsetMap {
    /// A map that may use up to `memory_bytes` (at least a few slots).
    pub fn new(memory_bytes: usize) -> OffsetMap {
        let max_slots = (memory_bytes / ENTRY_BYTES).max(4);
        OffsetMap {
            slots: Vec::new(),
            entries: 0,
            max_slots,
            latest_offset: -1,
        }
    }

    /// How many distinct keys fit.
    pub fn capacity(&self) -> usize {
        ((self.max_slots as f64 * LOAD_FACTOR) as usize).max(1)
    }

    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Whether `n` more keys would surely fit.
    pub fn has_room_for(&self, n: usize) -> bool {
        self.entries.saturating_add(n) <= self.capacity()
    }

    pub fn latest_offset(&self) -> i64 {
        self.latest_offset
    }

    /// Forget every entry (the memory is kept for the next cleaning).
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = Slot::default());
        self.entries = 0;
        self.latest_offset = -1;
    }

    fn find(slots: &[Slot], h1: u64, h2: u64) -> usize {
        let n = slots.len();
        let mut i = (h1 % n as u64) as usize;
        loop {
            let s = &slots[i];
            if s.is_empty() || (s.h1 == h1 && s.h2 == h2) {
                return i;
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }

    fn grow(&mut self) {
        let target = if self.slots.is_empty() {
            INITIAL_SLOTS.min(self.max_slots)
        } else {
            (self.slots.len() * 2).min(self.max_slots)
        };
        if target <= self.slots.len() {
            return;
        }
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); target]);
        for s in old.into_iter().filter(|s| !s.is_empty()) {
            let i = Self::find(&self.slots, s.h1, s.h2);
            self.slots[i] = s;
        }
    }

    /// Record `offset` as the latest for `key`. Returns false (and stores
    /// nothing) if the map is full and the key is new.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let (h1, h2) = hash(key);
        if self.slots.is_empty()
            || (self.entries + 1) as f64 > self.slots.len() as f64 * LOAD_FACTOR
        {
            self.grow();
        }
        if self.slots.is_empty() {
            return false;
        }
        let i = Self::find(&self.slots, h1, h2);
        if self.slots[i].is_empty() {
            if self.entries >= self.capacity() || self.entries + 1 >= self.slots.len() {
                return false;
            }
            self.entries += 1;
        }
        self.slots[i] = Slot { h1, h2, offset };
        self.latest_offset = self.latest_offset.max(offset);
        true
    }

    /// The latest offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        if self.slots.is_empty() {
            return None;
        }
        let (h1, h2) = hash(key);
        let s = self.slots[Self::find(&self.slots, h1, h2)];
        (!s.is_empty()).then_some(s.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_offset_wins_and_grows() {
        let mut m = OffsetMap::new(1 << 20);
        for round in 0..3i64 {
            for k in 0..10_000i64 {
                assert!(m.put(format!("key-{k}").as_bytes(), round * 10_000 + k));
            }
        }
        assert_eq!(m.len(), 10_000);
        for k in 0..10_000i64 {
            assert_eq!(m.get(format!("key-{k}").as_bytes()), Some(20_000 + k));
        }
        assert_eq!(m.get(b"absent"), None);
        assert_eq!(m.latest_offset(), 29_999);
        m.clear();
        assert!(m.is_empty());
        assert_eq!(m.get(b"key-1"), None);
        assert_eq!(m.latest_offset(), -1);
    }

    #[test]
    fn bounded_by_memory() {
        // 100 slots → 90 keys.
        let mut m = OffsetMap::new(100 * ENTRY_BYTES);
        assert_eq!(m.capacity(), 90);
        let stored = (0..200)
            .filter(|k: &i32| m.put(&k.to_be_bytes(), 1))
            .count();
        assert_eq!(stored, 90);
        assert_eq!(m.len(), 90);
        assert!(!m.has_room_for(1));
        // Updating a known key still works when full.
        assert!(m.put(&0i32.to_be_bytes(), 7));
        assert_eq!(m.get(&0i32.to_be_bytes()), Some(7));
        // Keys that did not fit are absent, never confused with others.
        assert_eq!(m.get(&150i32.to_be_bytes()), None);
    }

    #[test]
    fn empty_key_is_a_key() {
        let mut m = OffsetMap::new(4096);
        assert!(m.put(b"", 3));
        assert_eq!(m.get(b""), Some(3));
        assert_eq!(m.get(b"x"), None);
    }
}

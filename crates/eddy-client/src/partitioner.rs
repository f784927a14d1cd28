//! Partition choice for produced records, compatible with the Java client.
//!
//! - The built-in partitioning (no `partitioner.class`): keyed records go to
//!   `toPositive(murmur2(key)) % numPartitions`, so the same key lands on the
//!   same partition whichever client produced it; unkeyed records (and every
//!   record with `partitioner.ignore.keys=true`) use the uniform sticky
//!   partitioner of KIP-480/KIP-794, implemented in the producer itself: one
//!   partition until `batch.size` bytes went to it, then another one chosen
//!   at random among the partitions with a leader.
//! - [`RoundRobinPartitioner`] (`partitioner.class=round_robin` or Java's
//!   `org.apache.kafka.clients.producer.RoundRobinPartitioner`): every record
//!   to the next available partition of its topic, keys ignored.
//! - Any [`Partitioner`] of your own, set on
//!   [`ProducerConfig::partitioner`](crate::ProducerConfig::partitioner).
//!
//! A record with an explicit partition is never given to a partitioner.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::cluster::TopicInfo;

/// Chooses the partition of a record that has none, like Java's
/// `org.apache.kafka.clients.producer.Partitioner`. Called by `send` with the
/// producer's lock held: keep it quick and do not call the producer from it.
pub trait Partitioner: Send + Sync + 'static {
    /// The partition of a record of `topic` (whose metadata lists every
    /// partition, with or without a leader). A result outside
    /// `0..topic.partitions.len()` fails the record with an invalid argument
    /// error.
    fn partition(&self, topic: &TopicInfo, key: Option<&[u8]>, value: Option<&[u8]>) -> i32;
}

impl<F> Partitioner for F
where
    F: Fn(&TopicInfo, Option<&[u8]>, Option<&[u8]>) -> i32 + Send + Sync + 'static,
{
    fn partition(&self, topic: &TopicInfo, key: Option<&[u8]>, value: Option<&[u8]>) -> i32 {
        self(topic, key, value)
    }
}

/// Java's `RoundRobinPartitioner`: records of a topic go to its available
/// partitions (those with a leader; all partitions if none has one) in turn,
/// whatever their key.
#[derive(Debug, Default)]
pub struct RoundRobinPartitioner {
    counters: Mutex<HashMap<String, u32>>,
}

impl RoundRobinPartitioner {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Partitioner for RoundRobinPartitioner {
    fn partition(&self, topic: &TopicInfo, _key: Option<&[u8]>, _value: Option<&[u8]>) -> i32 {
        let next = {
            let mut counters = self.counters.lock();
            let c = counters.entry(topic.name.clone()).or_insert(0);
            let v = *c;
            *c = c.wrapping_add(1);
            v
        };
        let available: Vec<i32> = topic.available_partitions().map(|p| p.partition).collect();
        if available.is_empty() {
            let n = topic.partitions.len().max(1) as u32;
            return (next % n) as i32;
        }
        available[(next % available.len() as u32) as usize]
    }
}

/// The partitioner a producer uses (`partitioner.class`).
#[derive(Clone, Default)]
pub enum PartitionerChoice {
    /// murmur2 for keys, uniform sticky for unkeyed records.
    #[default]
    BuiltIn,
    /// A user-supplied (or built-in, like [`RoundRobinPartitioner`]) partitioner.
    Custom(Arc<dyn Partitioner>),
}

impl PartitionerChoice {
    /// A [`RoundRobinPartitioner`].
    pub fn round_robin() -> Self {
        PartitionerChoice::Custom(Arc::new(RoundRobinPartitioner::new()))
    }

    /// `partitioner` as the producer's partitioner.
    pub fn custom(partitioner: impl Partitioner) -> Self {
        PartitionerChoice::Custom(Arc::new(partitioner))
    }
}

impl fmt::Debug for PartitionerChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionerChoice::BuiltIn => f.write_str("BuiltIn"),
            PartitionerChoice::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// Two choices are equal if both are built in or both are the same object.
impl PartialEq for PartitionerChoice {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PartitionerChoice::BuiltIn, PartitionerChoice::BuiltIn) => true,
            (PartitionerChoice::Custom(a), PartitionerChoice::Custom(b)) => {
                std::ptr::eq(Arc::as_ptr(a) as *const u8, Arc::as_ptr(b) as *const u8)
            }
            _ => false,
        }
    }
}

impl Eq for PartitionerChoice {}

/// Kafka's `Utils.murmur2`: MurmurHash2 (32-bit) with seed 0x9747b28c,
/// reading 4-byte little-endian blocks, as the Java client computes it.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    let mut h: u32 = SEED ^ data.len() as u32;
    let mut blocks = data.chunks_exact(4);
    for b in &mut blocks {
        let mut k = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition of a keyed record among `num_partitions` (all partitions of
/// the topic, available or not, as in the Java client).
pub fn partition_for_key(key: &[u8], num_partitions: i32) -> i32 {
    if num_partitions <= 0 {
        return 0;
    }
    to_positive(murmur2(key)) % num_partitions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::PartitionInfo;
    use eddy_protocol::Uuid;

    fn topic(leaders: &[Option<i32>]) -> TopicInfo {
        TopicInfo {
            name: "t".into(),
            topic_id: Uuid::ZERO,
            is_internal: false,
            partitions: leaders
                .iter()
                .enumerate()
                .map(|(i, l)| PartitionInfo {
                    partition: i as i32,
                    leader: *l,
                    leader_epoch: 0,
                    replicas: vec![1],
                    isr: vec![1],
                    offline_replicas: vec![],
                    error: None,
                })
                .collect(),
        }
    }

    #[test]
    fn round_robin_cycles_over_available_partitions() {
        let rr = RoundRobinPartitioner::new();
        let t = topic(&[Some(1), Some(1), Some(1)]);
        let got: Vec<i32> = (0..7)
            .map(|_| rr.partition(&t, Some(b"same"), None))
            .collect();
        assert_eq!(got, vec![0, 1, 2, 0, 1, 2, 0], "keys are ignored");
        // Partitions without a leader are skipped; counters are per topic.
        let rr = RoundRobinPartitioner::new();
        let t = topic(&[Some(1), None, Some(1), None]);
        let got: Vec<i32> = (0..4).map(|_| rr.partition(&t, None, None)).collect();
        assert_eq!(got, vec![0, 2, 0, 2]);
        let mut other = topic(&[None, None]);
        other.name = "u".into();
        let got: Vec<i32> = (0..3).map(|_| rr.partition(&other, None, None)).collect();
        assert_eq!(
            got,
            vec![0, 1, 0],
            "no leader at all: every partition in turn"
        );
    }

    #[test]
    fn partitioner_choice_equality() {
        let a = PartitionerChoice::round_robin();
        assert_eq!(a, a.clone());
        assert_ne!(a, PartitionerChoice::round_robin());
        assert_eq!(PartitionerChoice::BuiltIn, PartitionerChoice::default());
        let f = PartitionerChoice::custom(|_: &TopicInfo, _: Option<&[u8]>, _: Option<&[u8]>| 0);
        assert_ne!(f, PartitionerChoice::BuiltIn);
    }

    /// Kafka's `UtilsTest.testMurmur2` vectors.
    #[test]
    fn java_utils_test_vectors() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ];
        for (key, want) in cases {
            assert_eq!(
                murmur2(key),
                *want,
                "murmur2({:?})",
                String::from_utf8_lossy(key)
            );
        }
    }

    /// librdkafka's `java_murmur2_results` (rdmurmur2.c), which cover every
    /// tail length and the empty key.
    #[test]
    fn librdkafka_java_compat_vectors() {
        let cases: &[(&str, u32)] = &[
            ("kafka", 0xd067cf64),
            ("giberish123456789", 0x8f552b0c),
            ("1234", 0x9fc97b14),
            ("234", 0xe7c009ca),
            ("34", 0x873930da),
            ("4", 0x5a4b5ca1),
            ("PreAmbleWillBeRemoved,ThePrePartThatIs", 0x78424f1c),
            ("reAmbleWillBeRemoved,ThePrePartThatIs", 0x4a62b377),
            ("eAmbleWillBeRemoved,ThePrePartThatIs", 0xe0e4e09e),
            ("AmbleWillBeRemoved,ThePrePartThatIs", 0x62b8b43f),
            ("", 0x106e08d9),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key.as_bytes()) as u32, *want, "murmur2({key:?})");
        }
    }

    #[test]
    fn partition_uses_to_positive_not_abs() {
        // murmur2("21") = -973932308; & 0x7fffffff = 1173551340.
        assert_eq!(to_positive(-973932308), 1173551340);
        assert_eq!(partition_for_key(b"21", 3), 1173551340 % 3);
        assert_eq!(to_positive(i32::MIN), 0);
        // abs() would give a different partition for this key.
        assert_ne!((-973932308i32).unsigned_abs() % 7, (1173551340u32) % 7);
        assert_eq!(partition_for_key(b"x", 0), 0);
        for n in 1..20 {
            let p = partition_for_key(b"foobar", n);
            assert!((0..n).contains(&p));
        }
    }
}

//! Durability: acknowledged records survive SIGKILL of the broker, and a
//! damaged segment tail is cut back to the last complete, valid batch.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{
    BaseRecord, FutureProducer, FutureRecord, Producer, ProducerContext, PurgeConfig,
    ThreadedProducer,
};

use crate::common::{block_on, crc32c, segment_batches, wait_until, Broker, OP_TIMEOUT};

/// Records every acknowledged (partition, offset, sequence number).
#[derive(Default)]
struct AckLog {
    acked: Mutex<Vec<(i32, i64, u64)>>,
    failed: AtomicU64,
}

struct AckContext(Arc<AckLog>);

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: Box<u64>) {
        match result {
            Ok(m) => {
                if let Ok(mut a) = self.0.acked.lock() {
                    a.push((m.partition(), m.offset(), *seq));
                }
            }
            Err(_) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn payload_for(seq: u64) -> Vec<u8> {
    let mut p = format!("record-{seq:010}-").into_bytes();
    // Pad to ~100 bytes with content derived from the sequence number.
    while p.len() < 100 {
        p.push(b'a' + ((seq as usize + p.len()) % 26) as u8);
    }
    p
}

/// Produces numbered records to `topic` at ~`rate` records/s from a
/// background thread, SIGKILLs the broker after `run_for`, keeps producing
/// briefly into the dead broker, then purges the producer. Returns the new
/// acknowledgements (sequence numbers start at `first_seq`) and how many
/// records were handed to the producer.
fn produce_then_kill(
    broker: &mut Broker,
    topic: &str,
    first_seq: u64,
    run_for: Duration,
    rate: u64,
) -> (Vec<(i32, i64, u64)>, u64) {
    let log = Arc::new(AckLog::default());
    let mut cfg: ClientConfig = broker.producer_config();
    cfg.set("acks", "1")
        .set("linger.ms", "1")
        .set("batch.size", "65536")
        .set("queue.buffering.max.messages", "200000")
        .set("message.timeout.ms", "10000")
        .set("retries", "0");
    let producer: ThreadedProducer<AckContext> = cfg
        .create_with_context(AckContext(log.clone()))
        .expect("producer");
    let producer = Arc::new(producer);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));

    let worker = {
        let producer = producer.clone();
        let stop = stop.clone();
        let sent = sent.clone();
        let topic = topic.to_string();
        thread::spawn(move || {
            let start = Instant::now();
            let mut seq = first_seq;
            while !stop.load(Ordering::Relaxed) {
                let allowed = first_seq + start.elapsed().as_millis() as u64 * rate / 1000;
                if seq >= allowed {
                    thread::sleep(Duration::from_millis(1));
                    continue;
                }
                let key = format!("k{}", seq % 64);
                let payload = payload_for(seq);
                let rec = BaseRecord::with_opaque_to(&topic, Box::new(seq))
                    .key(&key)
                    .payload(&payload);
                match producer.send(rec) {
                    Ok(()) => {
                        seq += 1;
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => panic!("enqueue failed: {e}"),
                }
            }
        })
    };

    thread::sleep(run_for);
    let acked_before_kill = log.acked.lock().map(|a| a.len()).unwrap_or(0);
    broker.kill();
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    worker.join().expect("producer thread");
    producer.purge(PurgeConfig::default().queue().inflight());
    let _ = producer.flush(Duration::from_secs(2));
    drop(producer);

    let acked = std::mem::take(&mut *log.acked.lock().expect("ack log"));
    let total_sent = sent.load(Ordering::Relaxed);
    assert!(
        acked_before_kill >= 1000,
        "only {acked_before_kill} acknowledgements in {run_for:?}: the broker is too slow or not acking"
    );
    assert!(
        (acked.len() as u64) < total_sent,
        "every one of {total_sent} records was acked: the kill did not happen mid-stream"
    );
    (acked, total_sent)
}

/// Checks that every acknowledged record is at its acknowledged offset with
/// its payload, and that offsets are dense. Returns the high watermarks.
fn verify_acked(
    broker: &Broker,
    topic: &str,
    partitions: i32,
    acked: &[(i32, i64, u64)],
) -> BTreeMap<i32, i64> {
    let parts: Vec<i32> = (0..partitions).collect();
    let by_part = broker.consume_by_partition(topic, &parts);
    let mut highs = BTreeMap::new();
    for p in &parts {
        let msgs = by_part.get(p).map(Vec::as_slice).unwrap_or(&[]);
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(m.offset(), i as i64, "{topic}/{p}: offsets not dense");
        }
        highs.insert(*p, msgs.len() as i64);
    }
    let mut missing = Vec::new();
    for &(p, off, seq) in acked {
        let got = by_part.get(&p).and_then(|v| v.get(off as usize));
        match got {
            Some(m) if m.payload() == Some(&payload_for(seq)[..]) => {}
            Some(m) => missing.push(format!(
                "{p}/{off}: acked record {seq} but found {:?}",
                m.payload().map(String::from_utf8_lossy)
            )),
            None => missing.push(format!("{p}/{off}: acked record {seq} is gone")),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged records lost or changed, e.g.:\n{}",
        missing.len(),
        acked.len(),
        missing
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    highs
}

#[test]
fn acked_records_survive_sigkill() {
    let mut broker = Broker::start();
    let topic = "crash";
    let partitions = 3;
    broker.create_topics(&[(topic, partitions)]);

    let mut all_acked = Vec::new();
    let mut next_seq = 0;
    for round in 0..2 {
        let (acked, sent) = produce_then_kill(
            &mut broker,
            topic,
            next_seq,
            Duration::from_millis(1500),
            40_000,
        );
        next_seq += sent;
        all_acked.extend(acked);
        broker.restart();
        let highs = verify_acked(&broker, topic, partitions, &all_acked);

        // Appends after recovery continue right after the recovered end.
        let p: FutureProducer = broker.producer_config().create().expect("producer");
        for (&part, &high) in &highs {
            let max_acked = all_acked
                .iter()
                .filter(|a| a.0 == part)
                .map(|a| a.1)
                .max()
                .unwrap_or(-1);
            assert!(
                high > max_acked,
                "round {round}: high {high} <= acked {max_acked}"
            );
            let d = block_on(
                p.send(
                    FutureRecord::<(), _>::to(topic)
                        .partition(part)
                        .payload("after-restart"),
                    OP_TIMEOUT,
                ),
            )
            .map_err(|(e, _)| e)
            .expect("produce after restart");
            assert_eq!(
                d.offset, high,
                "round {round}: first offset after recovery on {part}"
            );
        }
        // The probes read back at the offsets they were acked at.
        let by_part = broker.consume_by_partition(topic, &[0, 1, 2]);
        for (&part, &high) in &highs {
            let m = &by_part[&part][high as usize];
            assert_eq!(m.payload(), Some(&b"after-restart"[..]));
        }
    }
}

/// How to damage the tail of the active segment.
#[derive(Clone, Copy, Debug)]
enum Damage {
    /// Garbage bytes after the last complete batch.
    AppendGarbage,
    /// The last batch cut in half.
    TruncateLastBatch,
    /// One byte of the last batch's records flipped (CRC mismatch).
    FlipByteInLastBatch,
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}

/// (start, length, base offset, last offset) of each complete batch.
fn batches_with_offsets(data: &[u8]) -> Vec<(usize, usize, i64, i64)> {
    segment_batches(data)
        .into_iter()
        .map(|(start, len)| {
            let b = &data[start..start + len];
            let base = i64::from_be_bytes(b[0..8].try_into().expect("8 bytes"));
            let delta = i32::from_be_bytes(b[23..27].try_into().expect("4 bytes"));
            (start, len, base, base + delta as i64)
        })
        .collect()
}

fn batch_crc_ok(batch: &[u8]) -> bool {
    let stored = u32::from_be_bytes(batch[17..21].try_into().expect("4 bytes"));
    batch.len() > 21 && crc32c(&batch[21..]) == stored
}

fn damaged_tail(damage: Damage) {
    let mut broker = Broker::start();
    let topic = "tail";
    broker.create_topics(&[(topic, 1)]);
    let n = 30i64;
    let p: FutureProducer = broker
        .producer_config()
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    for i in 0..n {
        // One record per request, so (normally) one batch per record.
        let d = block_on(
            p.send(
                FutureRecord::<(), _>::to(topic)
                    .partition(0)
                    .payload(&format!("tail-{i}")),
                OP_TIMEOUT,
            ),
        )
        .map_err(|(e, _)| e)
        .expect("produce");
        assert_eq!(d.offset, i);
    }
    drop(p);
    broker.kill();

    let dir = broker.partition_dir(topic, 0);
    let logs = log_files(&dir);
    let seg = logs
        .last()
        .unwrap_or_else(|| panic!("no .log file in {}", dir.display()))
        .clone();
    let data = fs::read(&seg).expect("read segment");
    let batches = batches_with_offsets(&data);
    assert!(
        batches.len() >= 2,
        "expected several batches in {}, found {}",
        seg.display(),
        batches.len()
    );
    let &(last_start, last_len, last_base, last_end) = batches.last().expect("a batch");
    assert_eq!(last_end, n - 1, "last batch ends at the last acked offset");
    let valid_end = last_start + last_len;

    let mut f = OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open segment");
    let expected_high = match damage {
        Damage::AppendGarbage => {
            f.seek(SeekFrom::Start(valid_end as u64)).expect("seek");
            let mut garbage = Vec::new();
            for i in 0..97u32 {
                garbage.push(0xDE ^ (i as u8).wrapping_mul(31));
            }
            garbage[8..12].copy_from_slice(&0x7FFF_FF00i32.to_be_bytes());
            f.write_all(&garbage).expect("write garbage");
            n
        }
        Damage::TruncateLastBatch => {
            f.set_len((last_start + last_len / 2) as u64)
                .expect("truncate");
            last_base
        }
        Damage::FlipByteInLastBatch => {
            let pos = last_start + last_len - 3;
            let b = [data[pos] ^ 0x5A];
            f.seek(SeekFrom::Start(pos as u64)).expect("seek");
            f.write_all(&b).expect("flip");
            last_base
        }
    };
    f.sync_all().expect("sync");
    drop(f);

    broker.restart();
    assert_eq!(
        broker.watermarks(topic, 0),
        (0, expected_high),
        "{damage:?}: watermarks after recovery"
    );
    let msgs = broker.consume_all(topic, &[0]);
    assert_eq!(msgs.len() as i64, expected_high, "{damage:?}");
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(
            m.payload(),
            Some(format!("tail-{i}").as_bytes()),
            "{damage:?}: offset {i}"
        );
    }

    // New appends continue at the recovered end and read back intact.
    let p: FutureProducer = broker.producer_config().create().expect("producer");
    let d = block_on(
        p.send(
            FutureRecord::<(), _>::to(topic)
                .partition(0)
                .payload("after-recovery"),
            OP_TIMEOUT,
        ),
    )
    .map_err(|(e, _)| e)
    .expect("produce after recovery");
    assert_eq!(d.offset, expected_high, "{damage:?}: next offset");
    let msgs = broker.consume_all(topic, &[0]);
    assert_eq!(msgs.len() as i64, expected_high + 1);
    assert_eq!(
        msgs.last().and_then(|m| m.payload()),
        Some(&b"after-recovery"[..])
    );

    // On disk, every batch is now valid and offsets are contiguous.
    drop(p);
    let status = broker.terminate();
    assert!(status.success(), "clean shutdown: {status}");
    let mut next = 0i64;
    for seg in log_files(&dir) {
        let data = fs::read(&seg).expect("read segment");
        let batches = batches_with_offsets(&data);
        for &(start, len, base, last) in &batches {
            assert_eq!(
                base,
                next,
                "{damage:?}: batch at {start} of {} out of sequence",
                seg.display()
            );
            assert!(
                batch_crc_ok(&data[start..start + len]),
                "{damage:?}: bad CRC at {start}"
            );
            next = last + 1;
        }
        let end = batches.last().map_or(0, |b| b.0 + b.1);
        assert!(
            data[end..].iter().all(|&b| b == 0),
            "{damage:?}: {} bytes of non-batch data left after offset {} in {}",
            data.len() - end,
            end,
            seg.display()
        );
    }
    assert_eq!(next, expected_high + 1, "{damage:?}: offsets on disk");
}

#[test]
fn recovery_drops_garbage_after_last_batch() {
    damaged_tail(Damage::AppendGarbage);
}

#[test]
fn recovery_drops_half_written_last_batch() {
    damaged_tail(Damage::TruncateLastBatch);
}

#[test]
fn recovery_drops_last_batch_with_bad_crc() {
    damaged_tail(Damage::FlipByteInLastBatch);
}

/// Small segments: records span many segment files, survive SIGKILL across
/// them, and time retention deletes whole old segments (moving the low
/// watermark) without touching what remains.
#[test]
fn segments_roll_recover_and_expire() {
    let mut broker = Broker::start_with(&[
        "log.segment.bytes=16384",
        "log.retention.check.interval.ms=200",
    ]);
    let topic = "roll";
    broker.create_topics(&[(topic, 1)]);
    let p: FutureProducer = broker
        .producer_config()
        .set("linger.ms", "0")
        .set("batch.size", "4096")
        .create()
        .expect("producer");
    let n = 600i64;
    let payload = |i: i64| format!("{i:06}-").repeat(30).into_bytes();
    block_on(async {
        let mut futs = Vec::new();
        for i in 0..n {
            let v = payload(i);
            let rec = FutureRecord::<(), _>::to(topic).partition(0).payload(&v);
            futs.push(p.send_result(rec).map_err(|(e, _)| e).expect("enqueue"));
        }
        for (i, f) in futs.into_iter().enumerate() {
            let d = f
                .await
                .expect("delivery")
                .map_err(|(e, _)| e)
                .expect("acked");
            assert_eq!(d.offset, i as i64);
        }
    });
    drop(p);
    let dir = broker.partition_dir(topic, 0);
    let segments = log_files(&dir).len();
    assert!(
        segments >= 5,
        "~126 KB in 16 KiB segments made only {segments} segment(s)"
    );

    let check_all = |broker: &Broker, from: i64| {
        let msgs = broker.consume_all(topic, &[0]);
        assert_eq!(msgs.len() as i64, n - from, "records from {from}");
        for (m, i) in msgs.iter().zip(from..) {
            assert_eq!(m.offset(), i);
            assert_eq!(m.payload(), Some(&payload(i)[..]), "offset {i}");
        }
    };
    check_all(&broker, 0);

    broker.kill();
    broker.restart();
    assert_eq!(broker.watermarks(topic, 0), (0, n), "after SIGKILL");
    check_all(&broker, 0);

    // Expire everything old: whole segments go, the low watermark moves to a
    // segment boundary, and the remaining records are intact.
    let admin = broker.admin();
    let alter = AlterConfig::new(ResourceSpecifier::Topic(topic)).set("retention.ms", "1");
    block_on(admin.alter_configs([&alter], &AdminOptions::new())).expect("AlterConfigs");
    let moved = wait_until(Duration::from_secs(15), || {
        broker.watermarks(topic, 0).0 > 0
    });
    assert!(moved, "retention.ms=1 deleted nothing within 15 s");
    let (low, high) = broker.watermarks(topic, 0);
    assert_eq!(high, n, "retention must not change the high watermark");
    assert!(low <= n, "low watermark {low} beyond high {high}");
    assert!(
        log_files(&dir).len() < segments,
        "no segment file was deleted"
    );
    if low < n {
        check_all(&broker, low);
    }
    // Appends continue at the same offset sequence.
    let p: FutureProducer = broker.producer_config().create().expect("producer");
    let d = block_on(
        p.send(
            FutureRecord::<(), _>::to(topic)
                .partition(0)
                .payload("after-retention"),
            OP_TIMEOUT,
        ),
    )
    .map_err(|(e, _)| e)
    .expect("produce after retention");
    assert_eq!(d.offset, n);
}

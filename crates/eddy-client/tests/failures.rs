//! The producer when things go wrong, against a real `eddy broker`:
//! - the broker is stopped (SIGKILL, or a clean SIGTERM stop) and restarted on
//!   the same data dir and port in the middle of a send loop (acks=all,
//!   retries=0, no idempotence): every acknowledged record is in the
//!   partition exactly once at its acknowledged offset, and no record is
//!   there twice;
//! - a send to a topic that does not exist, with auto-creation off, fails
//!   after `delivery.timeout.ms` with an error naming the topic.
//!
//! Every eddy-client call is in the `eddy_*` helpers at the top of this file,
//! so that only they change when the client's producer/consumer API changes.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use eddy_client::{
    ClientConfig, ClientError, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig,
    ProducerRecord, StartOffset,
};
use parking_lot::Mutex;

use common::Broker;

// ---------------------------------------------------------------------------
// eddy-client: the only code in this file that calls its producer/consumer API.
// ---------------------------------------------------------------------------

/// The outcome of one send: (partition, offset) or the error.
type Delivery = Pin<Box<dyn Future<Output = Result<(i32, i64), ClientError>> + Send>>;

/// A producer with `props` (Kafka property names) on top of the bootstrap
/// address. `enable.idempotence` is dropped while the producer does not know
/// it (today it has no idempotence), so the tests set it for when it does.
async fn eddy_producer(broker: &Broker, props: &[(&str, &str)]) -> Producer {
    let config = |skip: Option<&str>| {
        let mut c = ClientConfig::new()
            .set("bootstrap.servers", broker.addr())
            .set("client.id", "eddy-failures");
        for (k, v) in props {
            if Some(*k) != skip {
                c = c.set(*k, *v);
            }
        }
        ProducerConfig::from_config(&c)
    };
    let cfg = match config(None) {
        Err(ClientError::Config { key, .. }) if key == "enable.idempotence" => {
            config(Some("enable.idempotence"))
        }
        other => other,
    };
    Producer::new(cfg.expect("producer config")).expect("producer")
}

/// Queues one record; the returned future resolves to its delivery outcome.
async fn eddy_send(
    producer: &Producer,
    topic: &str,
    partition: Option<i32>,
    value: Vec<u8>,
) -> Delivery {
    let mut r = ProducerRecord::new(topic, value);
    r.partition = partition;
    // `send` waits for buffer room and metadata (max.block.ms); a refusal
    // there is this record's outcome too.
    let sent = producer.send(r).await;
    Box::pin(async move { sent?.await.map(|md| (md.partition, md.offset)) })
}

async fn eddy_close(producer: &Producer) {
    producer.close().await;
}

async fn eddy_create_topic(broker: &Broker, name: &str, partitions: i32) {
    broker
        .admin()
        .create_topic(NewTopic::new(name, partitions), false)
        .await
        .unwrap_or_else(|e| panic!("create topic {name}: {e}"));
}

async fn eddy_topic_names(broker: &Broker) -> Vec<String> {
    broker
        .admin()
        .list_topics(false)
        .await
        .expect("list topics")
        .into_iter()
        .map(|t| t.name)
        .collect()
}

/// Every record of one partition, from the log start to the high watermark
/// seen before reading: (offset, value).
async fn eddy_read_partition(
    broker: &Broker,
    topic: &str,
    partition: i32,
) -> Vec<(i64, Option<Bytes>)> {
    let mut cfg = ConsumerConfig::with_common(broker.common());
    cfg.fetch_max_wait = Duration::from_millis(100);
    let mut consumer = Consumer::new(cfg).expect("consumer");
    consumer
        .assign(vec![(topic.to_string(), partition, StartOffset::Latest)])
        .await
        .expect("assign");
    let end = consumer.position(topic, partition).expect("latest offset");
    consumer
        .seek(topic, partition, StartOffset::Earliest)
        .await
        .expect("seek to the log start");
    let mut out: Vec<(i64, Option<Bytes>)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumer.position(topic, partition).is_none_or(|p| p < end) {
        assert!(
            Instant::now() < deadline,
            "timed out reading {topic}/{partition}: {} records, end {end}",
            out.len()
        );
        for r in consumer
            .poll(Duration::from_millis(500))
            .await
            .expect("poll")
        {
            if r.offset < end {
                out.push((r.offset, r.value));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Kill,
    Terminate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Acked(i64),
    Failed(String),
}

#[derive(Default)]
struct Progress {
    sent: u64,
    outcomes: BTreeMap<u64, Outcome>,
    acked: usize,
    failed: usize,
}

fn seq_value(seq: u64) -> Vec<u8> {
    format!("seq-{seq:010}").into_bytes()
}

fn parse_seq(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v)
        .ok()?
        .strip_prefix("seq-")?
        .parse()
        .ok()
}

/// Waits (polling) until `cond` holds on the progress, or panics after `timeout`.
async fn wait_for(
    progress: &Mutex<Progress>,
    timeout: Duration,
    what: &str,
    cond: impl Fn(&Progress) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        {
            let p = progress.lock();
            if cond(&p) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what} within {timeout:?}: {} sent, {} acked, {} failed; last outcomes {:?}",
                p.sent,
                p.acked,
                p.failed,
                p.outcomes.iter().rev().take(3).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A send loop (acks=all, retries=0, up to 16 records in flight) to a
/// one-partition topic; the broker is stopped and restarted on the same data
/// dir and port while it runs. Then every acknowledged record is in the
/// partition exactly once at its acknowledged offset, no record is there
/// twice, and records are in send order.
///
/// With `idempotent`, the producer runs with Java's defaults (idempotence
/// on, retries unlimited within delivery.timeout.ms): then no send fails at
/// all, and still no record is stored twice.
async fn acked_records_survive_a_restart(stop: Stop, idempotent: bool) {
    let mut broker = Broker::start();
    let topic = "loop";
    eddy_create_topic(&broker, topic, 1).await;
    let retries = if idempotent { "2147483647" } else { "0" };
    let producer = eddy_producer(
        &broker,
        &[
            (
                "enable.idempotence",
                if idempotent { "true" } else { "false" },
            ),
            ("acks", "all"),
            ("retries", retries),
            ("linger.ms", "1"),
            ("request.timeout.ms", "5000"),
            ("delivery.timeout.ms", "30000"),
            ("retry.backoff.ms", "50"),
        ],
    )
    .await;

    let progress = Arc::new(Mutex::new(Progress::default()));
    let done = Arc::new(AtomicBool::new(false));
    let sender = {
        let producer = producer.clone();
        let progress = progress.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut in_flight = tokio::task::JoinSet::new();
            let mut seq = 0u64;
            let record =
                |progress: &Mutex<Progress>, seq: u64, r: Result<(i32, i64), ClientError>| {
                    let mut p = progress.lock();
                    let failed = r.is_err();
                    let o = match r {
                        Ok((partition, offset)) => {
                            assert_eq!(partition, 0);
                            p.acked += 1;
                            Outcome::Acked(offset)
                        }
                        Err(e) => {
                            p.failed += 1;
                            Outcome::Failed(e.to_string())
                        }
                    };
                    p.outcomes.insert(seq, o);
                    failed
                };
            while !done.load(Ordering::SeqCst) {
                let f = eddy_send(&producer, topic, Some(0), seq_value(seq)).await;
                in_flight.spawn(async move { (seq, f.await) });
                seq += 1;
                progress.lock().sent = seq;
                while in_flight.len() >= 16 {
                    let (s, r) = in_flight
                        .join_next()
                        .await
                        .expect("a send")
                        .expect("send task");
                    if record(&progress, s, r) {
                        // The broker is away: do not spin.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            while let Some(j) = in_flight.join_next().await {
                let (s, r) = j.expect("send task");
                record(&progress, s, r);
            }
        })
    };

    wait_for(
        &progress,
        Duration::from_secs(30),
        "300 records acknowledged",
        |p| p.acked >= 300,
    )
    .await;
    let status = match stop {
        Stop::Kill => {
            broker.kill();
            None
        }
        Stop::Terminate => Some(broker.terminate()),
    };
    let acked_before = progress.lock().acked;
    if idempotent {
        // Sends are retried while the broker is away.
        tokio::time::sleep(Duration::from_millis(500)).await;
    } else {
        // Sends fail while the broker is away.
        wait_for(
            &progress,
            Duration::from_secs(30),
            "a send failing while the broker is down",
            |p| p.failed > 0,
        )
        .await;
    }
    broker.restart();
    if let Some(status) = status {
        assert!(
            status.success(),
            "a SIGTERM stop should exit cleanly, got {status}"
        );
    }
    wait_for(
        &progress,
        Duration::from_secs(60),
        "the producer acknowledging 300 more records after the restart",
        |p| p.acked >= acked_before + 300,
    )
    .await;
    done.store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(60), sender)
        .await
        .expect("the send loop finishes")
        .expect("send loop task");
    eddy_close(&producer).await;

    let progress = std::mem::take(&mut *progress.lock());
    assert_eq!(
        progress.outcomes.len() as u64,
        progress.sent,
        "every send completed"
    );
    let acked: BTreeMap<u64, i64> = progress
        .outcomes
        .iter()
        .filter_map(|(s, o)| match o {
            Outcome::Acked(off) => Some((*s, *off)),
            Outcome::Failed(_) => None,
        })
        .collect();
    eprintln!(
        "{stop:?}: {} sent, {} acknowledged, {} failed; a failure: {:?}",
        progress.sent,
        acked.len(),
        progress.failed,
        progress
            .outcomes
            .values()
            .find(|o| matches!(o, Outcome::Failed(_)))
    );
    if idempotent {
        assert_eq!(
            progress.failed, 0,
            "an idempotent producer retries through a restart"
        );
    }
    // In send order, acknowledged offsets increase.
    let offsets: Vec<i64> = acked.values().copied().collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "acknowledged offsets are not increasing in send order"
    );

    let log = eddy_read_partition(&broker, topic, 0).await;
    let mut found: HashMap<u64, Vec<i64>> = HashMap::new();
    for (i, (offset, value)) in log.iter().enumerate() {
        assert_eq!(*offset, i as i64, "offsets are dense from 0");
        let v = value.as_deref().expect("a value");
        let seq = parse_seq(v).unwrap_or_else(|| panic!("unexpected value {v:?} at {offset}"));
        assert!(
            seq < progress.sent,
            "offset {offset} holds seq {seq}, which was never sent"
        );
        found.entry(seq).or_default().push(*offset);
    }
    let twice: BTreeMap<u64, Vec<i64>> = found
        .iter()
        .filter(|(_, o)| o.len() > 1)
        .map(|(s, o)| (*s, o.clone()))
        .collect();
    assert!(
        twice.is_empty(),
        "records stored more than once (seq → offsets): {twice:?}"
    );
    for (seq, offset) in &acked {
        assert_eq!(
            found.get(seq),
            Some(&vec![*offset]),
            "acknowledged seq {seq} (offset {offset}) is not in the log exactly once at its offset"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_records_survive_a_broker_sigkill_mid_send_loop() {
    acked_records_survive_a_restart(Stop::Kill, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_records_survive_a_clean_broker_stop_mid_send_loop() {
    acked_records_survive_a_restart(Stop::Terminate, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_neither_loses_nor_duplicates_across_a_sigkill() {
    acked_records_survive_a_restart(Stop::Kill, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_neither_loses_nor_duplicates_across_a_clean_stop() {
    acked_records_survive_a_restart(Stop::Terminate, true).await;
}

/// With auto-creation off, a send to a missing topic fails once
/// `delivery.timeout.ms` has passed (not sooner: the topic may yet be
/// created), with an error naming the topic; the topic is not created and
/// the producer still delivers to existing topics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_a_missing_topic_fails_after_delivery_timeout() {
    let broker = Broker::start_with(&["auto.create.topics.enable=false"]);
    eddy_create_topic(&broker, "exists", 1).await;
    let delivery_timeout = Duration::from_millis(2500);
    let producer = eddy_producer(
        &broker,
        &[
            ("delivery.timeout.ms", "2500"),
            ("request.timeout.ms", "2000"),
            ("linger.ms", "5"),
        ],
    )
    .await;
    let topic = "no-such-topic";
    let start = Instant::now();
    let f = eddy_send(&producer, topic, None, b"lost".to_vec()).await;
    let result = tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("the send to a missing topic completes within 30 s");
    let elapsed = start.elapsed();
    let err = result.expect_err("a send to a missing topic must fail");
    let msg = err.to_string();
    assert!(
        msg.contains(topic),
        "the error should name the topic: {msg:?} ({err:?})"
    );
    assert!(
        matches!(err, ClientError::MetadataTimeout { .. }),
        "expected a metadata timeout, got {err:?}"
    );
    assert!(
        !eddy_topic_names(&broker).await.iter().any(|t| t == topic),
        "the topic was created although auto.create.topics.enable=false"
    );
    // The producer is not wedged.
    let ok = eddy_send(&producer, "exists", None, b"fine".to_vec())
        .await
        .await
        .expect("delivery to an existing topic");
    assert_eq!(ok, (0, 0));
    eddy_close(&producer).await;
    assert!(
        elapsed >= delivery_timeout,
        "the send failed after {elapsed:?}, before delivery.timeout.ms ({delivery_timeout:?}): {err:?}"
    );
    assert!(
        elapsed < Duration::from_secs(30),
        "failed only after {elapsed:?}"
    );
}

//! The producer, modelled on the Java client's.
//!
//! **Accumulating.** [`Producer::send`] places a record (explicit partition,
//! else the configured [`Partitioner`](crate::partitioner::Partitioner), else
//! murmur2 of the key like the Java client, else the uniform sticky
//! partitioner of KIP-480/KIP-794) and appends it to the open batch of its
//! partition (`batch.size`, `linger.ms`). Records waiting for delivery hold
//! `buffer.memory` bytes: `send` waits for room (and for the topic's
//! metadata) up to `max.block.ms`, [`Producer::try_send`] never waits.
//!
//! **Sending.** A background task drains ready batches into Produce requests
//! (one batch per partition per request, within `max.request.size`) and hands
//! them to one task per broker, which writes them on the broker's connection
//! in order and keeps up to `max.in.flight.requests.per.connection` of them
//! in flight, so several batches of one partition can be in flight. When a
//! response frees a slot, that task drains the next ready batches itself
//! (the sender task is woken only for timers: linger, retries, expiry).
//! Completions of a partition's records run in order, and `flush` returns
//! after the completions of the records it waited for ran.
//!
//! **Idempotence** (`enable.idempotence`, on by default under Java's rules):
//! an InitProducerId request gets a producer id and epoch, and every batch
//! carries them with the base sequence of its partition. When a batch fails
//! with a retriable error, the later batches of its partition in flight fail
//! too (OUT_OF_ORDER_SEQUENCE_NUMBER, as the broker sees a gap) and all are
//! retried in sequence order, one at a time until the partition has caught
//! up, so order and exactly-once writes survive retries. DUPLICATE_SEQUENCE_NUMBER
//! means the batch is already written (success). UNKNOWN_PRODUCER_ID or
//! OUT_OF_ORDER_SEQUENCE_NUMBER on the oldest unacknowledged batch of a
//! partition (the broker lost the producer's state, and did not write the
//! batch) bumps the epoch and resends the batches with fresh sequences;
//! INVALID_PRODUCER_EPOCH on a batch of the current epoch (fenced) fails it
//! with that error and gets a new epoch for the later batches. A batch that
//! fails for good after it was sent (or expired) also bumps the epoch, so the
//! partition's later sequences do not depend on it.
//!
//! **Without idempotence** and with more than one request in flight, a
//! retried batch can be written after a later batch of its partition (the
//! Java client's semantics); use `max.in.flight.requests.per.connection=1`
//! or idempotence to keep order.
//!
//! **Timeouts.** `request.timeout.ms` bounds each Produce request,
//! `retry.backoff.ms` separates retries, and `delivery.timeout.ms` bounds the
//! whole life of a record from `send` to its outcome, including waiting for
//! metadata of a topic that does not exist (the error names the topic).
//! NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE
//! (and lost connections) refresh the topic's metadata before the retry.
//!
//! Not implemented: transactions, adaptive partitioning (KIP-794's
//! `partitioner.adaptive.partitioning.enable`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), eddy_client::ClientError> {
//! use eddy_client::{Producer, ProducerConfig, ProducerRecord};
//! let producer = Producer::new(ProducerConfig::new("127.0.0.1:9092"))?;
//! // Waits (up to max.block.ms) for buffer room and metadata, then returns
//! // a future of the delivery.
//! let delivery = producer.send(ProducerRecord::new("orders", "v1").key("k")).await?;
//! println!("written at offset {}", delivery.await?.offset);
//! // The callback form.
//! producer
//!     .send_with_callback(ProducerRecord::new("orders", "v2"), |r| {
//!         if let Err(e) = r {
//!             eprintln!("not delivered: {e}");
//!         }
//!     })
//!     .await?;
//! producer.flush().await;
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use eddy_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use eddy_protocol::messages::{InitProducerIdRequest, ProduceRequest, ProduceResponse};
use eddy_protocol::records::{set_producer_state, Header, RecordBatchBuilder};
use eddy_protocol::ErrorCode;
use parking_lot::Mutex;
use rand::Rng;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::cluster::{Cluster, TopicInfo};
use crate::config::{Acks, ProducerConfig};
use crate::error::{ClientError, KafkaError};
use crate::partitioner::{partition_for_key, PartitionerChoice};
use crate::util::{ms_i32, now_ms};

/// A record to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct ProducerRecord {
    pub topic: String,
    /// The partition; `None` to let the partitioner choose.
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    /// Create time in ms since the epoch; `None` for now.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    pub fn timestamp(mut self, ts: i64) -> Self {
        self.timestamp = Some(ts);
        self
    }

    pub fn header(mut self, key: impl Into<String>, value: Option<Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value,
        });
        self
    }

    /// Upper bound of the record's encoded size in a batch.
    fn estimated_size(&self) -> usize {
        const RECORD_OVERHEAD: usize = 5 + 1 + 10 + 5 + 5 + 5 + 5;
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
        RECORD_OVERHEAD
            + len(&self.key)
            + len(&self.value)
            + self
                .headers
                .iter()
                .map(|h| 10 + h.key.len() + h.value.as_ref().map_or(0, Bytes::len))
                .sum::<usize>()
    }
}

/// Where a record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: i32,
    /// The record's offset; -1 with `acks=0`.
    pub offset: i64,
    /// The create time sent, or the broker's time with LogAppendTime topics.
    pub timestamp: i64,
}

type Outcome = Result<RecordMetadata, ClientError>;
type Callback = Box<dyn FnOnce(Outcome) + Send + 'static>;

/// How a record's outcome is reported.
enum Completion {
    Future(oneshot::Sender<Outcome>),
    Callback(Callback),
}

impl Completion {
    fn complete(self, outcome: Outcome) {
        match self {
            Completion::Future(tx) => {
                let _ = tx.send(outcome);
            }
            Completion::Callback(f) => {
                // A panicking callback must not take the broker's task (and
                // the other records' completions) down with it.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(outcome))).is_err() {
                    tracing::error!("a producer delivery callback panicked");
                }
            }
        }
    }
}

/// The outcome of [`Producer::send`]: resolves once the broker acknowledged
/// (or refused) the record.
#[derive(Debug)]
pub struct DeliveryFuture {
    rx: oneshot::Receiver<Outcome>,
}

impl Future for DeliveryFuture {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ClientError::Closed("producer"))))
    }
}

impl DeliveryFuture {
    /// The outcome if it is already known, without waiting. After it
    /// returned `Some`, the future must not be polled again.
    pub fn try_result(&mut self) -> Option<Outcome> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(ClientError::Closed("producer"))),
        }
    }
}

/// A record waiting for its topic's metadata.
struct Unresolved {
    record: ProducerRecord,
    timestamp: i64,
    completion: Completion,
    enqueued: Instant,
    size: usize,
}

/// The sequence numbers of a batch: its producer generation (a producer id
/// and epoch) and base sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seq {
    generation: u64,
    base: i32,
}

struct Batch {
    builder: Option<RecordBatchBuilder>,
    /// The encoded batch, once sent (kept for retries).
    built: Option<Bytes>,
    /// (completion, create timestamp) per record, in offset order.
    records: Vec<(Completion, i64)>,
    /// Creation order within the partition (retries go back in this order).
    order: u64,
    created: Instant,
    attempts: u32,
    retry_at: Option<Instant>,
    /// No more records may be appended.
    full: bool,
    /// Estimated encoded size.
    size: usize,
    /// `buffer.memory` bytes held by the records.
    memory: usize,
    seq: Option<Seq>,
}

impl Batch {
    fn new(compression: eddy_protocol::records::Compression, first_ts: i64, order: u64) -> Batch {
        Batch {
            builder: Some(RecordBatchBuilder::new(compression, first_ts)),
            built: None,
            records: Vec::new(),
            order,
            created: Instant::now(),
            attempts: 0,
            retry_at: None,
            full: false,
            size: eddy_protocol::records::BATCH_HEADER_LEN,
            memory: 0,
            seq: None,
        }
    }

    fn count(&self) -> i32 {
        i32::try_from(self.records.len()).unwrap_or(i32::MAX)
    }
}

#[derive(Default)]
struct PartitionQueue {
    batches: VecDeque<Batch>,
    /// Batches of this partition in flight.
    in_flight: usize,
    next_order: u64,
    /// The producer generation of `next_seq` and `acked_next`.
    seq_generation: u64,
    /// The base sequence of the next new batch.
    next_seq: i32,
    /// The base sequence of the oldest batch not yet acknowledged.
    acked_next: i32,
}

#[derive(Default)]
struct TopicState {
    info: Option<Arc<TopicInfo>>,
    partitions: Vec<PartitionQueue>,
    /// Sticky partition for unkeyed records and the bytes sent to it.
    sticky: Option<(i32, usize)>,
    unresolved: VecDeque<Unresolved>,
    resolving: bool,
    /// `send` calls waiting for this topic's metadata.
    waiters: usize,
    refreshing: bool,
    /// The last metadata error, whether it is final, and when it came.
    last_error: Option<(ClientError, bool, Instant)>,
}

impl TopicState {
    fn set_info(&mut self, info: Arc<TopicInfo>) {
        let n = info.partitions.len();
        if self.partitions.len() < n {
            self.partitions.resize_with(n, PartitionQueue::default);
        }
        self.info = Some(info);
    }
}

/// The producer id and epoch of an idempotent producer.
struct ProducerIdState {
    id: i64,
    epoch: i16,
    /// Increases with every new id or epoch; 0 before the first.
    generation: u64,
    requesting: bool,
    /// The epoch must be bumped before more batches are sent.
    bump: bool,
    /// The bump needs a new producer id (fenced, or the epoch is exhausted).
    new_id: bool,
}

struct LeaderState {
    jobs: mpsc::UnboundedSender<Drained>,
    /// Produce requests handed over and not yet answered.
    in_flight: usize,
}

struct State {
    topics: HashMap<String, TopicState>,
    leaders: HashMap<i32, LeaderState>,
    pid: ProducerIdState,
    /// `buffer.memory` bytes held by records not yet completed.
    buffer_used: usize,
    /// Records accepted and not yet completed.
    outstanding: usize,
    flushing: usize,
    closed: bool,
    /// When the sender task wakes next by itself (`None`: only when woken).
    sender_deadline: Option<Instant>,
}

struct Inner {
    cluster: Arc<Cluster>,
    config: ProducerConfig,
    idempotent: bool,
    state: Mutex<State>,
    /// Wakes the sender task.
    wake: Notify,
    /// Signalled when `outstanding` drops to zero.
    idle: Notify,
    /// Signalled when buffer memory is released.
    space: Notify,
    /// Signalled after each metadata attempt of a resolver.
    metadata: Notify,
}

/// The producer. Cheap to clone; the background sender stops when the last
/// clone is dropped (after delivering what was sent).
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
    _handle: Arc<CloseOnDrop>,
}

struct CloseOnDrop(Arc<Inner>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.state.lock().closed = true;
        self.0.wake.notify_one();
    }
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

/// Why a record was not queued.
enum Rejected {
    NoMetadata(ProducerRecord, Completion),
    Full(ProducerRecord, Completion),
    Failed(ClientError),
}

impl Producer {
    /// A producer with its own connections. Must be called within a tokio runtime.
    pub fn new(config: ProducerConfig) -> Result<Producer, ClientError> {
        config.validate()?;
        let cluster = Cluster::new(config.common.clone())?;
        Self::with_cluster(config, cluster)
    }

    /// A producer sharing `cluster`'s connections and metadata.
    pub fn with_cluster(
        config: ProducerConfig,
        cluster: Arc<Cluster>,
    ) -> Result<Producer, ClientError> {
        config.validate()?;
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            ClientError::InvalidArgument(
                "the producer must be created within a tokio runtime".into(),
            )
        })?;
        let inner = Arc::new(Inner::new(cluster, config));
        handle.spawn(sender_loop(inner.clone()));
        Ok(Producer {
            _handle: Arc::new(CloseOnDrop(inner.clone())),
            inner,
        })
    }

    pub fn config(&self) -> &ProducerConfig {
        &self.inner.config
    }

    /// Whether the producer is idempotent (see [`ProducerConfig::idempotence`]).
    pub fn is_idempotent(&self) -> bool {
        self.inner.idempotent
    }

    /// The producer id and epoch, once an idempotent producer has them.
    pub fn producer_id(&self) -> Option<(i64, i16)> {
        let st = self.inner.state.lock();
        (st.pid.generation > 0).then_some((st.pid.id, st.pid.epoch))
    }

    /// Queues a record and returns a future of its delivery. Waits up to
    /// `max.block.ms` for the topic's metadata and for room in
    /// `buffer.memory`, then fails ([`ClientError::MetadataTimeout`],
    /// [`ClientError::BufferFull`]). Records of one partition are written in
    /// call order.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture, ClientError> {
        let (tx, rx) = oneshot::channel();
        // The fast path is inline: no nested future to move the record into.
        match self.inner.enqueue(record, Completion::Future(tx), true) {
            Ok(()) => {}
            Err(Rejected::Failed(e)) => return Err(e),
            Err(Rejected::Full(r, c) | Rejected::NoMetadata(r, c)) => {
                self.send_waiting(r, c).await?
            }
        }
        Ok(DeliveryFuture { rx })
    }

    /// Like [`Producer::send`], but `callback` gets the outcome instead of a
    /// future. Callbacks of one partition's records run in order, on the
    /// producer's tasks: keep them short, and do not wait on the producer in
    /// them. When this returns an error, `callback` is not called.
    pub async fn send_with_callback(
        &self,
        record: ProducerRecord,
        callback: impl FnOnce(Result<RecordMetadata, ClientError>) + Send + 'static,
    ) -> Result<(), ClientError> {
        match self
            .inner
            .enqueue(record, Completion::Callback(Box::new(callback)), true)
        {
            Ok(()) => Ok(()),
            Err(Rejected::Failed(e)) => Err(e),
            Err(Rejected::Full(r, c) | Rejected::NoMetadata(r, c)) => self.send_waiting(r, c).await,
        }
    }

    /// Queues a record without waiting: fails at once with
    /// [`ClientError::BufferFull`] if `buffer.memory` has no room. A record
    /// whose topic's metadata is not known yet is queued until it is (and
    /// fails if it is not within `delivery.timeout.ms`).
    pub fn try_send(&self, record: ProducerRecord) -> Result<DeliveryFuture, ClientError> {
        let (tx, rx) = oneshot::channel();
        match self.inner.enqueue(record, Completion::Future(tx), false) {
            Ok(()) => Ok(DeliveryFuture { rx }),
            Err(Rejected::Failed(e)) => Err(e),
            Err(Rejected::Full(r, _)) => Err(self.inner.buffer_full(&r, Duration::ZERO)),
            Err(Rejected::NoMetadata(..)) => Err(ClientError::InvalidArgument(
                "internal error: try_send without metadata".into(),
            )),
        }
    }

    /// The slow path of `send`: waits for buffer room or metadata.
    async fn send_waiting(
        &self,
        mut record: ProducerRecord,
        mut completion: Completion,
    ) -> Result<(), ClientError> {
        let inner = &self.inner;
        let start = Instant::now();
        let deadline = start + inner.config.max_block;
        loop {
            // Register interest before checking again, so no wake-up is lost.
            let space = inner.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            match inner.enqueue(record, completion, true) {
                Ok(()) => return Ok(()),
                Err(Rejected::Failed(e)) => return Err(e),
                Err(Rejected::Full(r, c)) => {
                    if tokio::time::timeout_at(deadline.into(), space)
                        .await
                        .is_err()
                    {
                        return Err(inner.buffer_full(&r, start.elapsed()));
                    }
                    (record, completion) = (r, c);
                }
                Err(Rejected::NoMetadata(r, c)) => {
                    let until = deadline.min(start + inner.config.delivery_timeout);
                    inner.wait_metadata(&r.topic, start, until).await?;
                    (record, completion) = (r, c);
                }
            }
        }
    }

    /// Sends every queued record now and waits until all records sent before
    /// (and during) the call are delivered or failed.
    pub async fn flush(&self) {
        self.inner.state.lock().flushing += 1;
        self.inner.wake.notify_one();
        loop {
            let idle = self.inner.idle.notified();
            if self.inner.state.lock().outstanding == 0 {
                break;
            }
            idle.await;
        }
        self.inner.state.lock().flushing -= 1;
    }

    /// Flushes, then refuses further records.
    pub async fn close(&self) {
        self.flush().await;
        self.inner.state.lock().closed = true;
        self.inner.wake.notify_one();
    }
}

impl Inner {
    fn new(cluster: Arc<Cluster>, config: ProducerConfig) -> Inner {
        Inner {
            cluster,
            idempotent: config.idempotence(),
            config,
            state: Mutex::new(State {
                topics: HashMap::new(),
                leaders: HashMap::new(),
                pid: ProducerIdState {
                    id: -1,
                    epoch: -1,
                    generation: 0,
                    requesting: false,
                    bump: false,
                    new_id: false,
                },
                buffer_used: 0,
                outstanding: 0,
                flushing: 0,
                closed: false,
                sender_deadline: None,
            }),
            wake: Notify::new(),
            idle: Notify::new(),
            space: Notify::new(),
            metadata: Notify::new(),
        }
    }

    fn buffer_full(&self, record: &ProducerRecord, waited: Duration) -> ClientError {
        ClientError::BufferFull {
            size: record.estimated_size(),
            buffer_memory: self.config.buffer_memory,
            waited,
        }
    }

    /// Checks a record and queues it. With `wait`, a record whose topic has no
    /// metadata yet is handed back rather than queued.
    // The record is handed back by value on the (rare) rejections rather than boxed.
    #[allow(clippy::result_large_err)]
    fn enqueue(
        self: &Arc<Self>,
        record: ProducerRecord,
        completion: Completion,
        wait: bool,
    ) -> Result<(), Rejected> {
        let cfg = &self.config;
        let size = record.estimated_size();
        if size > cfg.max_request_size || size > cfg.buffer_memory {
            let (limit, name) = if size > cfg.max_request_size {
                (cfg.max_request_size, "max.request.size")
            } else {
                (cfg.buffer_memory, "buffer.memory")
            };
            return Err(Rejected::Failed(
                KafkaError::new(ErrorCode::MessageTooLarge)
                    .with_message(Some(format!(
                        "the record is {size} bytes, more than {name} ({limit})"
                    )))
                    .with_topic(&record.topic)
                    .into(),
            ));
        }
        if let Some(p) = record.partition {
            if p < 0 {
                return Err(Rejected::Failed(ClientError::InvalidArgument(format!(
                    "invalid partition {p}"
                ))));
            }
        }
        let mut guard = self.state.lock();
        let st = &mut *guard;
        if st.closed {
            return Err(Rejected::Failed(ClientError::Closed("producer")));
        }
        if st.buffer_used + size > cfg.buffer_memory {
            return Err(Rejected::Full(record, completion));
        }
        let ts = match st.topics.get_mut(record.topic.as_str()) {
            Some(ts) => ts,
            None => st.topics.entry(record.topic.clone()).or_default(),
        };
        if ts.info.is_none() || !ts.unresolved.is_empty() {
            if wait && ts.info.is_none() {
                return Err(Rejected::NoMetadata(record, completion));
            }
            let timestamp = record.timestamp.unwrap_or_else(now_ms);
            let spawn = (!ts.resolving).then(|| record.topic.clone());
            ts.resolving = true;
            ts.unresolved.push_back(Unresolved {
                record,
                timestamp,
                completion,
                enqueued: Instant::now(),
                size,
            });
            st.buffer_used += size;
            st.outstanding += 1;
            drop(guard);
            if let Some(topic) = spawn {
                tokio::spawn(resolve_topic(self.clone(), topic));
            }
            return Ok(());
        }
        let partition = match choose_partition(cfg, ts, &record, size) {
            Ok(p) => p,
            Err(e) => return Err(Rejected::Failed(e)),
        };
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let mut signal = append(cfg, ts, partition, &record, size, timestamp, completion);
        if signal && ts.partitions[partition as usize].batches.len() > 1 {
            // A batch filled up behind others. If the leader has no room for
            // another request, the next response drains it: no wake-up needed.
            let leader = ts
                .info
                .as_ref()
                .and_then(|i| i.partition(partition))
                .and_then(|p| p.leader);
            signal = leader
                .and_then(|l| st.leaders.get(&l))
                .is_none_or(|l| l.in_flight < cfg.max_in_flight);
        }
        st.buffer_used += size;
        st.outstanding += 1;
        drop(guard);
        if signal {
            self.wake.notify_one();
        }
        Ok(())
    }
}

impl Inner {
    /// Waits until `topic` has metadata (or a final error), up to `until`.
    async fn wait_metadata(
        self: &Arc<Self>,
        topic: &str,
        start: Instant,
        until: Instant,
    ) -> Result<(), ClientError> {
        struct Waiter<'a>(&'a Inner, &'a str);
        impl Drop for Waiter<'_> {
            fn drop(&mut self) {
                if let Some(ts) = self.0.state.lock().topics.get_mut(self.1) {
                    ts.waiters = ts.waiters.saturating_sub(1);
                }
            }
        }
        self.state
            .lock()
            .topics
            .entry(topic.to_string())
            .or_default()
            .waiters += 1;
        let _waiter = Waiter(self, topic);
        loop {
            let notified = self.metadata.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let spawn = {
                let mut st = self.state.lock();
                let ts = st.topics.entry(topic.to_string()).or_default();
                if ts.info.is_some() {
                    return Ok(());
                }
                if let Some((e, true, at)) = &ts.last_error {
                    if *at >= start {
                        return Err(e.clone());
                    }
                }
                let spawn = !ts.resolving;
                ts.resolving = true;
                spawn
            };
            if spawn {
                tokio::spawn(resolve_topic(self.clone(), topic.to_string()));
            }
            if tokio::time::timeout_at(until.into(), notified)
                .await
                .is_err()
            {
                let reason = self
                    .state
                    .lock()
                    .topics
                    .get(topic)
                    .and_then(|ts| ts.last_error.as_ref().map(|(e, _, _)| e.to_string()))
                    .unwrap_or_else(|| "no metadata response".to_string());
                return Err(ClientError::MetadataTimeout {
                    topic: topic.to_string(),
                    timeout: until.saturating_duration_since(start),
                    reason,
                });
            }
        }
    }
}

/// Releases the `buffer.memory` bytes of finished records and wakes the
/// `send` calls waiting for room.
fn release(inner: &Inner, st: &mut State, memory: usize) {
    st.buffer_used = st.buffer_used.saturating_sub(memory);
    if memory > 0 {
        inner.space.notify_waiters();
    }
}

/// Counts `records` as completed, once their completions ran (so `flush`
/// returns after the callbacks of the records it waited for).
fn settled(inner: &Inner, records: usize) {
    if records == 0 {
        return;
    }
    let mut st = inner.state.lock();
    st.outstanding = st.outstanding.saturating_sub(records);
    if st.outstanding == 0 {
        inner.idle.notify_waiters();
        if st.closed {
            inner.wake.notify_one();
        }
    }
}

/// Fetches a topic's metadata (retrying while the topic is unknown or has no
/// partitions) and moves its waiting records into batches; fails waiting
/// records after `delivery.timeout.ms`, or at once on a final error.
async fn resolve_topic(inner: Arc<Inner>, topic: String) {
    let cfg = &inner.config;
    let mut backoff = inner.cluster.config().retry_backoff;
    loop {
        let res = match inner.cluster.topic(&topic, true).await {
            Ok(info) if info.partitions.is_empty() => Err((
                KafkaError::new(ErrorCode::LeaderNotAvailable)
                    .with_topic(&topic)
                    .into(),
                false,
            )),
            Ok(info) => Ok(info),
            Err(e) => {
                let final_error = match &e {
                    ClientError::Kafka(k) => {
                        !(k.is_retriable() || k.code == ErrorCode::UnknownTopicOrPartition)
                    }
                    other => !other.is_retriable(),
                };
                Err((e, final_error))
            }
        };
        let mut failed: Vec<(Completion, ClientError)> = Vec::new();
        let mut placed = false;
        let done = {
            let mut guard = inner.state.lock();
            let st = &mut *guard;
            let ts = st.topics.entry(topic.clone()).or_default();
            let mut freed = (0, 0);
            let done = match res {
                Ok(info) => {
                    ts.set_info(info);
                    ts.last_error = None;
                    for u in std::mem::take(&mut ts.unresolved) {
                        match choose_partition(cfg, ts, &u.record, u.size) {
                            Ok(p) => {
                                append(cfg, ts, p, &u.record, u.size, u.timestamp, u.completion);
                                placed = true;
                            }
                            Err(e) => {
                                freed.0 += 1;
                                freed.1 += u.size;
                                failed.push((u.completion, e));
                            }
                        }
                    }
                    true
                }
                Err((e, final_error)) => {
                    tracing::debug!(%topic, error = %e, "no metadata for topic");
                    let now = Instant::now();
                    while let Some(u) = ts.unresolved.front() {
                        if !final_error && u.enqueued + cfg.delivery_timeout > now {
                            break;
                        }
                        let Some(u) = ts.unresolved.pop_front() else {
                            break;
                        };
                        let err = if final_error {
                            e.clone()
                        } else {
                            ClientError::MetadataTimeout {
                                topic: topic.clone(),
                                timeout: cfg.delivery_timeout,
                                reason: e.to_string(),
                            }
                        };
                        freed.0 += 1;
                        freed.1 += u.size;
                        failed.push((u.completion, err));
                    }
                    ts.last_error = Some((e, final_error, now));
                    final_error || (ts.unresolved.is_empty() && ts.waiters == 0)
                }
            };
            if done {
                ts.resolving = false;
            }
            release(&inner, st, freed.1);
            done
        };
        let n = failed.len();
        for (c, e) in failed {
            c.complete(Err(e));
        }
        settled(&inner, n);
        inner.metadata.notify_waiters();
        if placed {
            inner.wake.notify_one();
        }
        if done {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// The partition of `record` among the topic's partitions.
fn choose_partition(
    cfg: &ProducerConfig,
    ts: &mut TopicState,
    record: &ProducerRecord,
    size: usize,
) -> Result<i32, ClientError> {
    let TopicState { info, sticky, .. } = ts;
    let Some(info) = info.as_ref() else {
        return Err(KafkaError::new(ErrorCode::LeaderNotAvailable)
            .with_topic(&record.topic)
            .into());
    };
    let n = i32::try_from(info.partitions.len()).unwrap_or(i32::MAX);
    if let Some(p) = record.partition {
        return if p < n {
            Ok(p)
        } else {
            Err(KafkaError::new(ErrorCode::UnknownTopicOrPartition)
                .with_partition(&record.topic, p)
                .into())
        };
    }
    if n == 0 {
        return Err(KafkaError::new(ErrorCode::LeaderNotAvailable)
            .with_topic(&record.topic)
            .into());
    }
    if let PartitionerChoice::Custom(partitioner) = &cfg.partitioner {
        let p = partitioner.partition(info, record.key.as_deref(), record.value.as_deref());
        return if (0..n).contains(&p) {
            Ok(p)
        } else {
            Err(ClientError::InvalidArgument(format!(
                "the partitioner chose partition {p} of topic '{}', which has {n} partitions",
                record.topic
            )))
        };
    }
    if let Some(key) = &record.key {
        if !cfg.partitioner_ignore_keys {
            return Ok(partition_for_key(key, n));
        }
    }
    // Uniform sticky (KIP-794): stay on a partition until batch.size bytes
    // went to it, then move to another available one at random.
    if let Some((p, bytes)) = sticky {
        if *bytes < cfg.batch_size && *p < n {
            *bytes += size;
            return Ok(*p);
        }
    }
    let prev = sticky.map(|(p, _)| p);
    let available = info
        .available_partitions()
        .filter(|x| Some(x.partition) != prev)
        .count();
    let mut rng = rand::thread_rng();
    let p = if available > 0 {
        let i = rng.gen_range(0..available);
        info.available_partitions()
            .filter(|x| Some(x.partition) != prev)
            .nth(i)
            .map_or(0, |x| x.partition)
    } else if info.available_partitions().count() == 1 {
        prev.unwrap_or(0)
    } else {
        rng.gen_range(0..n)
    };
    *sticky = Some((p, size));
    Ok(p)
}

/// Appends a record to the partition's open batch (starting a new one if
/// needed). Returns whether a batch was created or became full.
fn append(
    cfg: &ProducerConfig,
    ts: &mut TopicState,
    partition: i32,
    record: &ProducerRecord,
    size: usize,
    timestamp: i64,
    completion: Completion,
) -> bool {
    let index = usize::try_from(partition).unwrap_or(0);
    if ts.partitions.len() <= index {
        ts.partitions
            .resize_with(index + 1, PartitionQueue::default);
    }
    let q = &mut ts.partitions[index];
    let fits = q.batches.back().is_some_and(|b| {
        !b.full && b.builder.is_some() && (b.records.is_empty() || b.size + size <= cfg.batch_size)
    });
    let mut signal = false;
    if !fits {
        if let Some(b) = q.batches.back_mut() {
            b.full = true;
        }
        let order = q.next_order;
        q.next_order += 1;
        let mut b = Batch::new(cfg.compression, timestamp, order);
        b.records
            .reserve((cfg.batch_size / size.max(1)).clamp(1, 4096));
        if let Some(builder) = b.builder.as_mut() {
            // Room for a full batch (capped), so appends do not reallocate.
            builder.reserve(cfg.batch_size.clamp(size, 1 << 20));
        }
        q.batches.push_back(b);
        signal = true;
    }
    let Some(b) = q.batches.back_mut() else {
        return signal;
    };
    if let Some(builder) = b.builder.as_mut() {
        builder.append(
            timestamp,
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
        );
    }
    b.size += size;
    b.memory += size;
    b.records.push((completion, timestamp));
    if b.size >= cfg.batch_size {
        b.full = true;
        signal = true;
    }
    signal
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap to 0.
fn increment_sequence(base: i32, n: i32) -> i32 {
    if base > i32::MAX - n {
        n - (i32::MAX - base) - 1
    } else {
        base + n
    }
}

/// Gives a batch its producer id, epoch and base sequence.
fn apply_seq(b: &mut Batch, id: i64, epoch: i16, base: i32) {
    if let Some(builder) = b.builder.take() {
        b.builder = Some(builder.producer(id, epoch, base));
    } else if let Some(built) = &b.built {
        let mut bytes = built.to_vec();
        set_producer_state(&mut bytes, id, epoch, base);
        b.built = Some(Bytes::from(bytes));
    }
}

async fn sender_loop(inner: Arc<Inner>) {
    loop {
        let wake = inner.wake.notified();
        let mut expired = Vec::new();
        let (next, init, refresh, done) = {
            let mut st = inner.state.lock();
            let (next, init, refresh) = drain(&inner, &mut st, &mut expired);
            st.sender_deadline = next;
            let done = st.closed && st.outstanding == 0;
            if done {
                st.leaders.clear();
            }
            (next, init, refresh, done)
        };
        complete_expired(&inner, expired);
        if done {
            tracing::debug!("producer sender stopped");
            return;
        }
        if init {
            tokio::spawn(init_producer_id(inner.clone()));
        }
        for topic in refresh {
            spawn_refresh(&inner, topic);
        }
        match next {
            Some(d) => {
                let _ = tokio::time::timeout_at(d.into(), wake).await;
            }
            None => wake.await,
        }
    }
}

type Drained = Vec<(String, i32, Batch)>;
type Expired = Vec<(Vec<(Completion, i64)>, ClientError)>;

/// Fails expired batches, then hands the ready batches to the brokers' tasks
/// as Produce requests (within `max.in.flight.requests.per.connection` and
/// `max.request.size`). Returns the earliest time at which a waiting batch
/// becomes ready, whether a producer id must be requested, and the topics
/// whose metadata must be refreshed.
fn drain(
    inner: &Arc<Inner>,
    st: &mut State,
    expired: &mut Expired,
) -> (Option<Instant>, bool, Vec<String>) {
    let cfg = &inner.config;
    let now = Instant::now();
    let force = st.flushing > 0 || st.closed;
    let mut next: Option<Instant> = None;
    let earliest = |t: Instant, next: &mut Option<Instant>| {
        *next = Some(next.map_or(t, |n: Instant| n.min(t)));
    };
    let mut refresh = Vec::new();
    let mut freed = (0, 0);
    let mut queued = false;
    let generation = st.pid.generation;
    for (name, ts) in st.topics.iter_mut() {
        if ts.info.is_some() {
            match inner.cluster.cached_topic(name) {
                Some(fresh) => {
                    if !ts.info.as_ref().is_some_and(|i| Arc::ptr_eq(i, &fresh)) {
                        ts.set_info(fresh);
                    }
                }
                None => {
                    if !ts.refreshing {
                        ts.refreshing = true;
                        refresh.push(name.clone());
                    }
                }
            }
        }
        for (p, q) in ts.partitions.iter_mut().enumerate() {
            while let Some(b) = q.batches.front() {
                if b.created + cfg.delivery_timeout > now {
                    earliest(b.created + cfg.delivery_timeout, &mut next);
                    break;
                }
                let Some(b) = q.batches.pop_front() else {
                    break;
                };
                if inner.idempotent && b.seq.is_some_and(|s| s.generation == generation) {
                    st.pid.bump = true;
                }
                freed.0 += b.records.len();
                freed.1 += b.memory;
                expired.push((
                    b.records,
                    ClientError::OperationTimeout {
                        what: format!(
                            "delivery to topic '{name}' partition {p} (delivery.timeout.ms)"
                        ),
                        timeout: cfg.delivery_timeout,
                    },
                ));
            }
            queued |= !q.batches.is_empty();
        }
    }
    release(inner, st, freed.1);
    // Like the Java client, an idempotent producer bumps its epoch locally
    // (the broker accepts a newer epoch starting at sequence 0); a new
    // producer id is requested first, when fenced, or when the epoch is exhausted.
    if inner.idempotent && st.pid.bump && !st.pid.requesting {
        if st.pid.new_id || st.pid.generation == 0 || st.pid.epoch >= i16::MAX - 1 {
            st.pid.new_id = true;
        } else {
            st.pid.epoch += 1;
            st.pid.generation += 1;
            st.pid.bump = false;
            tracing::debug!(
                producer_id = st.pid.id,
                epoch = st.pid.epoch,
                "producer epoch bumped"
            );
        }
    }
    let init = inner.idempotent
        && queued
        && !st.pid.requesting
        && (st.pid.generation == 0 || st.pid.new_id);
    if init {
        st.pid.requesting = true;
    }
    if inner.idempotent && (st.pid.generation == 0 || st.pid.bump || st.pid.requesting) {
        return (next, init, refresh);
    }
    let State {
        topics,
        leaders,
        pid,
        ..
    } = st;
    loop {
        let mut requests: BTreeMap<i32, (Drained, usize)> = BTreeMap::new();
        for (name, ts) in topics.iter_mut() {
            let TopicState {
                info,
                partitions,
                refreshing,
                ..
            } = ts;
            for (p, q) in partitions.iter_mut().enumerate() {
                let Some(front) = q.batches.front() else {
                    continue;
                };
                if let Some(at) = front.retry_at {
                    if at > now {
                        earliest(at, &mut next);
                        continue;
                    }
                }
                let is_retry = front.attempts > 0;
                // A retry of an idempotent batch goes alone, after the
                // partition's batches in flight settled (they come back in order).
                if inner.idempotent && is_retry && q.in_flight > 0 {
                    continue;
                }
                let linger_end = front.created + cfg.linger;
                if !(force || front.full || q.batches.len() > 1 || is_retry || linger_end <= now) {
                    earliest(linger_end, &mut next);
                    continue;
                }
                let partition = i32::try_from(p).unwrap_or(i32::MAX);
                let leader = info
                    .as_ref()
                    .and_then(|i| i.partition(partition).and_then(|x| x.leader));
                let Some(leader) = leader else {
                    if !*refreshing {
                        *refreshing = true;
                        refresh.push(name.clone());
                    }
                    earliest(now + inner.cluster.config().retry_backoff, &mut next);
                    continue;
                };
                let (req, bytes) = requests.entry(leader).or_default();
                if req.is_empty()
                    && leaders.get(&leader).map_or(0, |l| l.in_flight) >= cfg.max_in_flight
                {
                    continue; // resumes when a response arrives
                }
                let size = front.built.as_ref().map_or(front.size, Bytes::len);
                if !req.is_empty() && *bytes + size > cfg.max_request_size {
                    earliest(now, &mut next);
                    continue;
                }
                if inner.idempotent && q.seq_generation != pid.generation {
                    if q.in_flight > 0 {
                        continue; // the old epoch's batches settle first
                    }
                    q.seq_generation = pid.generation;
                    q.next_seq = 0;
                    q.acked_next = 0;
                }
                let Some(mut b) = q.batches.pop_front() else {
                    continue;
                };
                if inner.idempotent && b.seq.is_none_or(|s| s.generation != pid.generation) {
                    let base = q.next_seq;
                    q.next_seq = increment_sequence(base, b.count());
                    b.seq = Some(Seq {
                        generation: pid.generation,
                        base,
                    });
                    apply_seq(&mut b, pid.id, pid.epoch, base);
                }
                b.full = true;
                q.in_flight += 1;
                *bytes += size;
                req.push((name.clone(), partition, b));
            }
        }
        requests.retain(|_, (r, _)| !r.is_empty());
        if requests.is_empty() {
            break;
        }
        for (leader, (batches, _)) in requests {
            let l = leaders
                .entry(leader)
                .or_insert_with(|| spawn_leader(inner, leader));
            l.in_flight += 1;
            if let Err(mpsc::error::SendError(batches)) = l.jobs.send(batches) {
                let mut fresh = spawn_leader(inner, leader);
                fresh.in_flight = l.in_flight;
                let _ = fresh.jobs.send(batches);
                *l = fresh;
            }
        }
    }
    (next, false, refresh)
}

fn spawn_leader(inner: &Arc<Inner>, leader: i32) -> LeaderState {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(leader_loop(inner.clone(), leader, rx));
    LeaderState {
        jobs: tx,
        in_flight: 0,
    }
}

type PendingProduce = Pin<Box<dyn Future<Output = Result<ProduceResponse, ClientError>> + Send>>;

/// One broker's task: writes the Produce requests it is handed in order on
/// the broker's connection and completes them as their responses arrive (in
/// order too).
async fn leader_loop(inner: Arc<Inner>, leader: i32, mut jobs: mpsc::UnboundedReceiver<Drained>) {
    let mut conn: Option<Arc<crate::connection::Connection>> = None;
    let mut in_flight: VecDeque<(Drained, PendingProduce)> = VecDeque::new();
    let mut open = true;
    while open || !in_flight.is_empty() {
        tokio::select! {
            biased;
            res = async {
                match in_flight.front_mut() {
                    Some((_, f)) => f.as_mut().await,
                    None => std::future::pending().await,
                }
            }, if !in_flight.is_empty() => {
                if let Some((batches, _)) = in_flight.pop_front() {
                    complete_request(&inner, leader, batches, res.map(Some));
                }
            }
            job = jobs.recv(), if open => match job {
                None => open = false,
                Some(batches) => {
                    if let Some(p) = submit(&inner, leader, &mut conn, batches).await {
                        in_flight.push_back(p);
                    }
                }
            },
        }
    }
}

/// Encodes the batches and writes one Produce request; returns its pending
/// response (`None` once completed: acks=0, or failed).
async fn submit(
    inner: &Arc<Inner>,
    leader: i32,
    conn: &mut Option<Arc<crate::connection::Connection>>,
    mut batches: Drained,
) -> Option<(Drained, PendingProduce)> {
    let cfg = &inner.config;
    let mut bad = Vec::new();
    let mut i = 0;
    while i < batches.len() {
        let b = &mut batches[i].2;
        if b.built.is_none() {
            match b.builder.take().map(RecordBatchBuilder::build) {
                Some(Ok(bytes)) => b.built = Some(bytes),
                Some(Err(e)) => {
                    bad.push((batches.remove(i), ClientError::from(e)));
                    continue;
                }
                None => {
                    bad.push((
                        batches.remove(i),
                        ClientError::Records("batch has no records".into()),
                    ));
                    continue;
                }
            }
        }
        i += 1;
    }
    if !bad.is_empty() {
        finish_all(
            inner,
            None,
            bad.into_iter()
                .map(|((t, p, b), e)| (t, p, b, Err(e)))
                .collect(),
        );
    }
    if batches.is_empty() {
        complete_request(inner, leader, Vec::new(), Ok(None));
        return None;
    }
    let mut topics: BTreeMap<&str, Vec<PartitionProduceData>> = BTreeMap::new();
    for (topic, partition, b) in &batches {
        topics
            .entry(topic.as_str())
            .or_default()
            .push(PartitionProduceData {
                index: *partition,
                records: b.built.clone(),
            });
    }
    let req = ProduceRequest {
        transactional_id: None,
        acks: cfg.acks.as_i16(),
        timeout_ms: ms_i32(inner.cluster.config().request_timeout),
        topic_data: topics
            .into_iter()
            .map(|(name, partition_data)| TopicProduceData {
                name: name.to_string(),
                partition_data,
            })
            .collect(),
    };
    let c = match conn.as_ref().filter(|c| c.is_open()) {
        Some(c) => c.clone(),
        None => match inner.cluster.connection(leader).await {
            Ok(c) => {
                *conn = Some(c.clone());
                c
            }
            Err(e) => {
                complete_request(inner, leader, batches, Err(e));
                return None;
            }
        },
    };
    if cfg.acks == Acks::None {
        let res = c.send_no_response(&req).await.map(|_| None);
        complete_request(inner, leader, batches, res);
        return None;
    }
    match c.queue(&req).await {
        Ok(p) => Some((batches, Box::pin(p.response()))),
        Err(e) => {
            complete_request(inner, leader, batches, Err(e));
            None
        }
    }
}

type BatchOutcome = (String, i32, Batch, Result<(i64, i64), ClientError>);

/// Completes one Produce request: its batches' outcomes from the response.
fn complete_request(
    inner: &Arc<Inner>,
    leader: i32,
    batches: Drained,
    result: Result<Option<ProduceResponse>, ClientError>,
) {
    let outcomes: Vec<BatchOutcome> = match result {
        Ok(None) => batches
            .into_iter()
            .map(|(t, p, b)| (t, p, b, Ok((-1, -1))))
            .collect(),
        Ok(Some(resp)) => {
            let mut by_partition = HashMap::new();
            for t in resp.responses {
                for p in t.partition_responses {
                    by_partition.insert((t.name.clone(), p.index), p);
                }
            }
            batches
                .into_iter()
                .map(|(topic, partition, b)| {
                    let outcome = match by_partition.remove(&(topic.clone(), partition)) {
                        None => Err(ClientError::InvalidResponse {
                            api: eddy_protocol::ApiKey::Produce,
                            addr: format!("broker {leader}"),
                            reason: format!("no result for topic '{topic}' partition {partition}"),
                        }),
                        // A duplicate is a batch the broker already has.
                        Some(p)
                            if p.error_code == 0
                                || p.error_code == ErrorCode::DuplicateSequenceNumber.code() =>
                        {
                            Ok((p.base_offset, p.log_append_time_ms))
                        }
                        Some(p) => {
                            let mut msg = p.error_message.clone();
                            if msg.is_none() {
                                msg = p
                                    .record_errors
                                    .iter()
                                    .find_map(|r| r.batch_index_error_message.clone());
                            }
                            Err(
                                KafkaError::new(ErrorCode::from_code_or_unknown(p.error_code))
                                    .with_message(msg)
                                    .with_partition(&topic, partition)
                                    .into(),
                            )
                        }
                    };
                    (topic, partition, b, outcome)
                })
                .collect()
        }
        Err(e) => batches
            .into_iter()
            .map(|(t, p, b)| (t, p, b, Err(e.clone())))
            .collect(),
    };
    finish_all(inner, Some(leader), outcomes);
}

enum Done {
    Delivered {
        topic: String,
        partition: i32,
        records: Vec<(Completion, i64)>,
        base_offset: i64,
        log_append_time: i64,
    },
    Failed(Vec<(Completion, i64)>, ClientError),
    /// Put back for a retry.
    Retried,
}

/// Settles batches (and the request they came in, if `leader` is set):
/// completes, retries or fails each, then runs the completions unlocked.
fn finish_all(inner: &Arc<Inner>, leader: Option<i32>, outcomes: Vec<BatchOutcome>) {
    let mut done = Vec::with_capacity(outcomes.len());
    let mut refresh = Vec::new();
    // Retries, epoch bumps and closing need the sender's timers and checks;
    // otherwise the freed request slot is refilled right here.
    let wake_sender = {
        let mut guard = inner.state.lock();
        let st = &mut *guard;
        if let Some(l) = leader.and_then(|l| st.leaders.get_mut(&l)) {
            l.in_flight = l.in_flight.saturating_sub(1);
        }
        for (topic, partition, b, outcome) in outcomes {
            finish(
                inner,
                st,
                topic,
                partition,
                b,
                outcome,
                &mut done,
                &mut refresh,
            );
        }
        st.closed
            || st.flushing > 0
            || st.pid.bump
            || done.iter().any(|d| matches!(d, Done::Retried))
    };
    for topic in refresh {
        spawn_refresh(inner, topic);
    }
    let mut completed = 0;
    for d in done {
        match d {
            Done::Delivered {
                topic,
                partition,
                records,
                base_offset,
                log_append_time,
            } => {
                completed += records.len();
                for (i, (c, ts)) in records.into_iter().enumerate() {
                    c.complete(Ok(RecordMetadata {
                        topic: topic.clone(),
                        partition,
                        offset: if base_offset >= 0 {
                            base_offset + i as i64
                        } else {
                            -1
                        },
                        timestamp: if log_append_time >= 0 {
                            log_append_time
                        } else {
                            ts
                        },
                    }));
                }
            }
            Done::Failed(records, e) => {
                completed += records.len();
                for (c, _) in records {
                    c.complete(Err(e.clone()));
                }
            }
            Done::Retried => {}
        }
    }
    settled(inner, completed);
    if wake_sender {
        inner.wake.notify_one();
    } else {
        drain_now(inner);
    }
}

fn complete_expired(inner: &Inner, expired: Expired) {
    let mut n = 0;
    for (records, e) in expired {
        n += records.len();
        for (c, _) in records {
            c.complete(Err(e.clone()));
        }
    }
    settled(inner, n);
}

/// Drains from the calling task (a broker's task, after a response freed
/// room for another request) rather than waking the sender task.
fn drain_now(inner: &Arc<Inner>) {
    let mut expired = Vec::new();
    let (init, refresh, wake) = {
        let mut st = inner.state.lock();
        let (next, init, refresh) = drain(inner, &mut st, &mut expired);
        // A batch that became the front of its queue may linger: the sender
        // must wake for it if it sleeps longer.
        let wake = next.is_some_and(|t| st.sender_deadline.is_none_or(|d| t < d));
        (init, refresh, wake)
    };
    if wake {
        inner.wake.notify_one();
    }
    complete_expired(inner, expired);
    if init {
        tokio::spawn(init_producer_id(inner.clone()));
    }
    for topic in refresh {
        spawn_refresh(inner, topic);
    }
}

/// Completes a batch, or puts it back in its queue (in creation order) for a retry.
#[allow(clippy::too_many_arguments)]
fn finish(
    inner: &Inner,
    st: &mut State,
    topic: String,
    partition: i32,
    mut b: Batch,
    outcome: Result<(i64, i64), ClientError>,
    done: &mut Vec<Done>,
    refresh: &mut Vec<String>,
) {
    let cfg = &inner.config;
    let generation = st.pid.generation;
    let index = usize::try_from(partition).unwrap_or(0);
    let ts = st.topics.entry(topic.clone()).or_default();
    if ts.partitions.len() <= index {
        ts.partitions
            .resize_with(index + 1, PartitionQueue::default);
    }
    let q = &mut ts.partitions[index];
    q.in_flight = q.in_flight.saturating_sub(1);
    let e = match outcome {
        Ok((base_offset, log_append_time)) => {
            if let Some(s) = b.seq {
                if s.generation == q.seq_generation {
                    q.acked_next = increment_sequence(s.base, b.count());
                }
            }
            let memory = b.memory;
            done.push(Done::Delivered {
                topic,
                partition,
                records: b.records,
                base_offset,
                log_append_time,
            });
            release(inner, st, memory);
            return;
        }
        Err(e) => e,
    };
    let mut retriable = e.is_retriable();
    let mut bump = false;
    if let (true, Some(s)) = (inner.idempotent, b.seq) {
        let stale = s.generation != generation;
        let oldest = s.generation == q.seq_generation && s.base == q.acked_next;
        match e.code() {
            Some(
                ErrorCode::OutOfOrderSequenceNumber
                | ErrorCode::UnknownProducerId
                | ErrorCode::InvalidProducerEpoch,
            ) if stale => retriable = true,
            // An earlier batch failed: the broker saw a gap; resend in order.
            Some(ErrorCode::OutOfOrderSequenceNumber | ErrorCode::UnknownProducerId) if !oldest => {
                retriable = true
            }
            // The broker lost this producer's state and did not write the
            // batch: a new epoch restarts the sequences safely.
            Some(ErrorCode::OutOfOrderSequenceNumber | ErrorCode::UnknownProducerId) => {
                retriable = true;
                bump = true;
            }
            // Fenced by a newer epoch of this producer id: fail the batch,
            // continue with a new producer id.
            Some(ErrorCode::InvalidProducerEpoch) => {
                retriable = false;
                bump = true;
                st.pid.new_id = true;
            }
            _ => {}
        }
    }
    if e.invalidates_metadata() {
        inner.cluster.invalidate(&topic);
        if !ts.refreshing {
            ts.refreshing = true;
            refresh.push(topic.clone());
        }
    }
    b.attempts += 1;
    let retry = retriable
        && b.attempts <= cfg.retries
        && b.created.elapsed() + cfg.common.retry_backoff < cfg.delivery_timeout;
    if retry {
        tracing::debug!(%topic, partition, error = %e, attempt = b.attempts, "retrying batch");
        b.retry_at = Some(Instant::now() + cfg.common.retry_backoff);
        let at = q
            .batches
            .iter()
            .position(|x| x.order > b.order)
            .unwrap_or(q.batches.len());
        q.batches.insert(at, b);
        if bump {
            st.pid.bump = true;
        }
        done.push(Done::Retried);
    } else {
        if inner.idempotent && (bump || b.seq.is_some_and(|s| s.generation == generation)) {
            st.pid.bump = true;
        }
        let memory = b.memory;
        done.push(Done::Failed(b.records, e));
        release(inner, st, memory);
    }
}

/// Gets a (new) producer id for an idempotent producer, retrying until it
/// succeeds or the producer is closed and idle.
async fn init_producer_id(inner: Arc<Inner>) {
    let backoff = inner.cluster.config().retry_backoff;
    loop {
        let res: Result<(i64, i16), ClientError> = async {
            let conn = inner.cluster.any_connection().await?;
            let version = conn.version::<InitProducerIdRequest>()?;
            let req = InitProducerIdRequest {
                transactional_id: None,
                transaction_timeout_ms: 60_000,
                producer_id: -1,
                producer_epoch: -1,
            };
            let resp = conn.send_version(&req, version).await?;
            if resp.error_code != 0 {
                return Err(
                    KafkaError::new(ErrorCode::from_code_or_unknown(resp.error_code)).into(),
                );
            }
            Ok((resp.producer_id, resp.producer_epoch))
        }
        .await;
        match res {
            Ok((id, epoch)) => {
                let mut st = inner.state.lock();
                tracing::debug!(producer_id = id, epoch, "producer id");
                st.pid.id = id;
                st.pid.epoch = epoch;
                st.pid.generation += 1;
                st.pid.bump = false;
                st.pid.new_id = false;
                st.pid.requesting = false;
                drop(st);
                inner.wake.notify_one();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "InitProducerId failed, retrying");
                let stop = {
                    let mut st = inner.state.lock();
                    let stop = st.closed && st.outstanding == 0;
                    if stop {
                        st.pid.requesting = false;
                    }
                    stop
                };
                if stop {
                    return;
                }
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

/// Refreshes a topic's metadata in the background, then wakes the sender.
fn spawn_refresh(inner: &Arc<Inner>, topic: String) {
    let inner = inner.clone();
    tokio::spawn(async move {
        inner.cluster.invalidate(&topic);
        let res = inner.cluster.topic(&topic, true).await;
        if let Err(e) = &res {
            tracing::debug!(%topic, error = %e, "metadata refresh failed");
            tokio::time::sleep(inner.cluster.config().retry_backoff).await;
        }
        {
            let mut st = inner.state.lock();
            if let Some(ts) = st.topics.get_mut(&topic) {
                ts.refreshing = false;
                if let Ok(info) = res {
                    if !info.partitions.is_empty() {
                        ts.set_info(info);
                    }
                }
            }
        }
        inner.wake.notify_one();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::PartitionInfo;
    use eddy_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use eddy_protocol::Uuid;

    fn topic(n: i32) -> TopicInfo {
        TopicInfo {
            name: "t".into(),
            topic_id: Uuid::ZERO,
            is_internal: false,
            partitions: (0..n)
                .map(|p| PartitionInfo {
                    partition: p,
                    leader: Some(1),
                    leader_epoch: 0,
                    replicas: vec![1],
                    isr: vec![1],
                    offline_replicas: vec![],
                    error: None,
                })
                .collect(),
        }
    }

    fn cfg(batch_size: usize) -> ProducerConfig {
        let mut c = ProducerConfig::new("127.0.0.1:9");
        c.batch_size = batch_size;
        c
    }

    fn topic_state(n: i32) -> TopicState {
        let mut ts = TopicState::default();
        ts.set_info(Arc::new(topic(n)));
        ts
    }

    fn add(
        c: &ProducerConfig,
        ts: &mut TopicState,
        r: ProducerRecord,
    ) -> (i32, oneshot::Receiver<Outcome>) {
        let size = r.estimated_size();
        let p = choose_partition(c, ts, &r, size).unwrap();
        let (tx, rx) = oneshot::channel();
        append(c, ts, p, &r, size, 1000, Completion::Future(tx));
        (p, rx)
    }

    #[test]
    fn keyed_records_follow_murmur2_unless_keys_are_ignored() {
        let c = cfg(16384);
        let mut ts = topic_state(6);
        for key in ["a", "orders-17", "21", ""] {
            let (p, _rx) = add(
                &c,
                &mut ts,
                ProducerRecord::new("t", "v").key(key.as_bytes().to_vec()),
            );
            assert_eq!(p, partition_for_key(key.as_bytes(), 6), "key {key:?}");
        }
        let place = |ts: &mut TopicState, r: ProducerRecord| choose_partition(&c, ts, &r, 10);
        assert_eq!(
            place(&mut ts, ProducerRecord::new("t", "v").key("a").partition(4)).unwrap(),
            4
        );
        let e = place(&mut ts, ProducerRecord::new("t", "v").partition(6)).unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::UnknownTopicOrPartition));
        assert!(place(&mut topic_state(0), ProducerRecord::new("t", "v")).is_err());
        // partitioner.ignore.keys: keyed records stick like unkeyed ones.
        let mut c2 = cfg(16384);
        c2.partitioner_ignore_keys = true;
        let mut ts = topic_state(6);
        let parts: Vec<i32> = (0..20)
            .map(|i| {
                add(
                    &c2,
                    &mut ts,
                    ProducerRecord::new("t", "v").key(format!("k{i}")),
                )
                .0
            })
            .collect();
        assert!(parts.iter().all(|p| *p == parts[0]), "{parts:?}");
    }

    #[test]
    fn accumulator_fills_batches_up_to_batch_size() {
        // Records of 88 estimated bytes: two fit a 300-byte batch (61-byte header).
        let c = cfg(300);
        let mut ts = topic_state(1);
        let mut rxs = Vec::new();
        for i in 0..10 {
            rxs.push(
                add(
                    &c,
                    &mut ts,
                    ProducerRecord::new("t", vec![b'x'; 50]).key(format!("k{i}")),
                )
                .1,
            );
        }
        let q = &ts.partitions[0];
        let counts: Vec<usize> = q.batches.iter().map(|b| b.records.len()).collect();
        assert_eq!(counts, vec![2, 2, 2, 2, 2]);
        for b in q.batches.iter().take(q.batches.len() - 1) {
            assert!(b.full);
            assert!(b.size <= 300, "size {}", b.size);
        }
        assert!(!q.batches.back().unwrap().full);
        assert_eq!(q.batches.iter().map(|b| b.memory).sum::<usize>(), 10 * 88);
        // A record larger than batch.size gets a batch of its own.
        add(&c, &mut ts, ProducerRecord::new("t", vec![b'y'; 700]));
        let q = &ts.partitions[0];
        assert_eq!(q.batches.back().unwrap().records.len(), 1);
        assert!(q.batches.back().unwrap().full);
        // Batches are numbered in creation order; the built batch holds the records in order.
        let orders: Vec<u64> = q.batches.iter().map(|b| b.order).collect();
        assert_eq!(orders, vec![0, 1, 2, 3, 4, 5]);
        let b = ts.partitions[0].batches.pop_front().unwrap();
        let bytes = b.builder.unwrap().build().unwrap();
        let (_, recs) = eddy_protocol::records::decode_records(&bytes, 1 << 20).unwrap();
        assert_eq!(recs[0].key.as_deref(), Some(&b"k0"[..]));
        assert_eq!(recs[1].key.as_deref(), Some(&b"k1"[..]));
    }

    #[test]
    fn sticky_partition_moves_after_batch_size_bytes() {
        // KIP-794: 85-byte records, batch.size 300: the 4th record (340 bytes sent) moves on.
        let c = cfg(300);
        let mut ts = topic_state(4);
        let parts: Vec<i32> = (0..8)
            .map(|_| add(&c, &mut ts, ProducerRecord::new("t", vec![0u8; 50])).0)
            .collect();
        assert!(parts[..4].iter().all(|p| *p == parts[0]), "{parts:?}");
        assert_ne!(parts[4], parts[0], "{parts:?}");
        assert!(parts[4..].iter().all(|p| *p == parts[4]), "{parts:?}");
        // A single-partition topic always uses partition 0.
        let mut one = topic_state(1);
        for _ in 0..10 {
            assert_eq!(
                add(&c, &mut one, ProducerRecord::new("t", vec![0u8; 120])).0,
                0
            );
        }
        // Partitions without a leader are avoided.
        let mut info = topic(3);
        info.partitions[0].leader = None;
        info.partitions[2].leader = None;
        let mut ts = TopicState::default();
        ts.set_info(Arc::new(info));
        for _ in 0..20 {
            assert_eq!(
                add(&c, &mut ts, ProducerRecord::new("t", vec![0u8; 120])).0,
                1
            );
        }
    }

    #[test]
    fn estimated_size_bounds_the_encoding() {
        let r = ProducerRecord::new("t", vec![1u8; 300])
            .key("key")
            .header("h", Some(Bytes::from_static(b"v")));
        let mut b = RecordBatchBuilder::new(eddy_protocol::records::Compression::None, 0);
        b.append(0, r.key.as_deref(), r.value.as_deref(), &r.headers);
        let actual = b.estimated_size() - eddy_protocol::records::BATCH_HEADER_LEN;
        assert!(
            r.estimated_size() >= actual,
            "{} < {actual}",
            r.estimated_size()
        );
    }

    #[test]
    fn sequences_wrap_like_kafka() {
        assert_eq!(increment_sequence(0, 5), 5);
        assert_eq!(increment_sequence(i32::MAX - 2, 2), i32::MAX);
        assert_eq!(increment_sequence(i32::MAX - 2, 3), 0);
        assert_eq!(increment_sequence(i32::MAX, 10), 9);
    }

    /// An `Inner` whose cluster metadata has topic "t" with `n` partitions led by node 1.
    fn inner_with_topic(n: i32, cfg: ProducerConfig) -> Arc<Inner> {
        let cluster = Cluster::new(cfg.common.clone()).unwrap();
        cluster.merge(
            &crate::cluster::MetadataResult {
                version: 12,
                cluster_id: None,
                controller_id: Some(1),
                brokers: vec![],
                topics: vec![("t".to_string(), Ok(Arc::new(topic(n))))],
            },
            false,
        );
        let inner = Arc::new(Inner::new(cluster, cfg));
        inner.state.lock().topics.insert("t".into(), topic_state(n));
        inner
    }

    fn enqueue(inner: &Arc<Inner>, r: ProducerRecord) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        assert!(inner.enqueue(r, Completion::Future(tx), true).is_ok());
        rx
    }

    // A current-thread runtime: the brokers' tasks spawned by `drain` do not
    // run while the test inspects the state.
    #[tokio::test]
    async fn drain_honours_linger_in_flight_and_request_size() {
        let mut c = cfg(16384);
        c.acks = Acks::Leader;
        c.linger = Duration::from_secs(60);
        c.max_request_size = 1000;
        c.max_in_flight = 1;
        let inner = inner_with_topic(4, c.clone());
        assert!(!inner.idempotent);
        let _rxs: Vec<_> = (0..4)
            .map(|p| {
                enqueue(
                    &inner,
                    ProducerRecord::new("t", vec![0u8; 400]).partition(p),
                )
            })
            .collect();
        let mut st = inner.state.lock();
        assert_eq!(st.outstanding, 4);
        assert_eq!(st.buffer_used, 4 * 436);
        // Within linger and not full: nothing is ready; the deadline is the linger end.
        let (next, init, _) = drain(&inner, &mut st, &mut Vec::new());
        assert!(!init);
        assert!(st.leaders.is_empty());
        assert!(next.unwrap() > Instant::now() + Duration::from_secs(50));
        // Flushing makes everything ready: one request (max.in.flight 1) of
        // two ~500-byte batches (max.request.size 1000).
        st.flushing = 1;
        drain(&inner, &mut st, &mut Vec::new());
        assert_eq!(st.leaders[&1].in_flight, 1);
        let sent = |st: &State| {
            st.topics["t"]
                .partitions
                .iter()
                .filter(|q| q.in_flight > 0)
                .count()
        };
        assert_eq!(sent(&st), 2);
        // The request is answered: the other two go in the next one.
        st.leaders.get_mut(&1).unwrap().in_flight = 0;
        drain(&inner, &mut st, &mut Vec::new());
        assert_eq!(st.leaders[&1].in_flight, 1);
        assert_eq!(sent(&st), 4);
        // With 5 in flight allowed, the same batches go in two requests at once.
        drop(st);
        let mut c5 = c.clone();
        c5.max_in_flight = 5;
        let inner = inner_with_topic(4, c5);
        let _rxs: Vec<_> = (0..4)
            .map(|p| {
                enqueue(
                    &inner,
                    ProducerRecord::new("t", vec![0u8; 400]).partition(p),
                )
            })
            .collect();
        let mut st = inner.state.lock();
        st.flushing = 1;
        drain(&inner, &mut st, &mut Vec::new());
        assert_eq!(st.leaders[&1].in_flight, 2);
        assert_eq!(sent(&st), 4);
    }

    /// A batch of one record with a sequence, as if drained (in flight).
    fn sent_batch(
        inner: &Arc<Inner>,
        order: u64,
        base: i32,
    ) -> (Batch, oneshot::Receiver<Outcome>) {
        let mut b = Batch::new(inner.config.compression, 0, order);
        if let Some(builder) = b.builder.as_mut() {
            builder.append(0, None, Some(b"v"), &[]);
        }
        let (tx, rx) = oneshot::channel();
        b.records.push((Completion::Future(tx), 0));
        b.memory = 10;
        b.seq = Some(Seq {
            generation: 1,
            base,
        });
        let mut st = inner.state.lock();
        st.outstanding += 1;
        st.buffer_used += 10;
        st.pid = ProducerIdState {
            id: 7,
            epoch: 0,
            generation: 1,
            requesting: false,
            bump: false,
            new_id: false,
        };
        let q = &mut st.topics.get_mut("t").unwrap().partitions[0];
        q.seq_generation = 1;
        q.in_flight += 1;
        (b, rx)
    }

    fn kafka(code: ErrorCode) -> Result<(i64, i64), ClientError> {
        Err(KafkaError::new(code).with_partition("t", 0).into())
    }

    #[tokio::test]
    async fn idempotent_retries_go_back_in_sequence_order_one_at_a_time() {
        let inner = inner_with_topic(1, cfg(16384));
        assert!(inner.idempotent);
        let (b0, _r0) = sent_batch(&inner, 0, 0);
        let (b1, _r1) = sent_batch(&inner, 1, 1);
        let (b2, _r2) = sent_batch(&inner, 2, 2);
        // Batch 0 fails retriably; the broker then sees gaps for 1 and 2.
        // Their outcomes may be handled in any order.
        finish_all(
            &inner,
            None,
            vec![
                (
                    "t".into(),
                    0,
                    b2,
                    kafka(ErrorCode::OutOfOrderSequenceNumber),
                ),
                ("t".into(), 0, b0, kafka(ErrorCode::NotLeaderOrFollower)),
                (
                    "t".into(),
                    0,
                    b1,
                    kafka(ErrorCode::OutOfOrderSequenceNumber),
                ),
            ],
        );
        let mut st = inner.state.lock();
        assert!(
            !st.pid.bump,
            "a gap after a failed batch is not a lost state"
        );
        let q = &mut st.topics.get_mut("t").unwrap().partitions[0];
        assert_eq!(q.in_flight, 0);
        let seqs: Vec<i32> = q.batches.iter().map(|b| b.seq.unwrap().base).collect();
        assert_eq!(seqs, vec![0, 1, 2]);
        for b in q.batches.iter_mut() {
            assert_eq!(b.attempts, 1);
            b.retry_at = None;
        }
        // Retries go one at a time, keeping their sequences.
        drain(&inner, &mut st, &mut Vec::new());
        let q = &st.topics["t"].partitions[0];
        assert_eq!(q.in_flight, 1);
        assert_eq!(q.batches.len(), 2);
        assert_eq!(q.batches[0].seq.unwrap().base, 1);
        assert_eq!(st.leaders[&1].in_flight, 1);
        assert_eq!(st.outstanding, 3, "nothing completed");
    }

    #[tokio::test]
    async fn idempotent_errors_on_the_oldest_batch_bump_the_epoch() {
        // OUT_OF_ORDER_SEQUENCE_NUMBER on the oldest unacknowledged batch: the
        // broker lost the producer's state; retried under a new epoch.
        let inner = inner_with_topic(1, cfg(16384));
        let (b0, mut r0) = sent_batch(&inner, 0, 0);
        finish_all(
            &inner,
            None,
            vec![(
                "t".into(),
                0,
                b0,
                kafka(ErrorCode::OutOfOrderSequenceNumber),
            )],
        );
        assert!(inner.state.lock().pid.bump);
        assert!(r0.try_recv().is_err(), "retried, not failed");
        // The epoch is bumped locally (as the Java client does) and the batch
        // goes again with sequence 0 of the new epoch.
        {
            let mut st = inner.state.lock();
            st.topics.get_mut("t").unwrap().partitions[0].batches[0].retry_at = None;
            let (_, init, _) = drain(&inner, &mut st, &mut Vec::new());
            assert!(!init, "no InitProducerId for a bump");
            assert_eq!((st.pid.id, st.pid.epoch, st.pid.generation), (7, 1, 2));
            assert!(!st.pid.bump);
            let q = &st.topics["t"].partitions[0];
            assert_eq!((q.in_flight, q.seq_generation, q.next_seq), (1, 2, 1));
        }

        // INVALID_PRODUCER_EPOCH on a batch of the current epoch: fenced,
        // the batch fails and a new epoch is requested.
        let inner = inner_with_topic(1, cfg(16384));
        let (b0, mut r0) = sent_batch(&inner, 0, 0);
        finish_all(
            &inner,
            None,
            vec![("t".into(), 0, b0, kafka(ErrorCode::InvalidProducerEpoch))],
        );
        let st = inner.state.lock();
        assert!(st.pid.bump && st.pid.new_id, "fenced: a new producer id");
        assert_eq!((st.outstanding, st.buffer_used), (0, 0));
        drop(st);
        let e = r0.try_recv().unwrap().unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::InvalidProducerEpoch));

        // DUPLICATE_SEQUENCE_NUMBER: already written, a success.
        let inner = inner_with_topic(1, cfg(16384));
        let (b0, mut r0) = sent_batch(&inner, 0, 0);
        let resp = ProduceResponse {
            responses: vec![TopicProduceResponse {
                name: "t".into(),
                partition_responses: vec![PartitionProduceResponse {
                    index: 0,
                    error_code: ErrorCode::DuplicateSequenceNumber.code(),
                    base_offset: 42,
                    ..Default::default()
                }],
            }],
            ..Default::default()
        };
        complete_request(&inner, 1, vec![("t".into(), 0, b0)], Ok(Some(resp)));
        assert_eq!(r0.try_recv().unwrap().unwrap().offset, 42);
        let st = inner.state.lock();
        assert!(!st.pid.bump);
        assert_eq!(st.topics["t"].partitions[0].acked_next, 1);
    }
}

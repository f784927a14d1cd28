//! The producer: records are partitioned (murmur2 of the key like the Java
//! client, sticky per batch without a key), accumulated into one open batch
//! per partition (`batch.size`, `linger.ms`), and sent by a background task
//! to each partition's leader, one request per leader with one batch per
//! partition.
//!
//! Ordering: a partition has at most one batch in flight, so a retried batch
//! (after a retriable error such as NOT_LEADER_OR_FOLLOWER) never overtakes a
//! later one. Not yet implemented: idempotence and transactions,
//! `buffer.memory`/`max.block.ms` back-pressure (callers bound the records in
//! flight themselves, e.g. by awaiting delivery futures).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use eddy_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use eddy_protocol::messages::ProduceRequest;
use eddy_protocol::records::{Header, RecordBatchBuilder};
use eddy_protocol::ErrorCode;
use parking_lot::Mutex;
use rand::Rng;
use tokio::sync::{oneshot, Notify};

use crate::cluster::{Cluster, TopicInfo};
use crate::config::{Acks, ProducerConfig};
use crate::error::{ClientError, KafkaError};
use crate::partitioner::partition_for_key;
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

type Reply = oneshot::Sender<Result<RecordMetadata, ClientError>>;

/// The outcome of [`Producer::send`]: resolves once the broker acknowledged
/// (or refused) the record.
#[derive(Debug)]
pub struct DeliveryFuture {
    state: DeliveryState,
}

#[derive(Debug)]
enum DeliveryState {
    Waiting(oneshot::Receiver<Result<RecordMetadata, ClientError>>),
    Failed(Option<ClientError>),
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            DeliveryState::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(ClientError::Closed("producer")))),
            DeliveryState::Failed(e) => {
                Poll::Ready(Err(e.take().unwrap_or(ClientError::Closed("producer"))))
            }
        }
    }
}

impl DeliveryFuture {
    /// The outcome if it is already known, without waiting. After it
    /// returned `Some`, the future must not be polled again.
    pub fn try_result(&mut self) -> Option<Result<RecordMetadata, ClientError>> {
        match &mut self.state {
            DeliveryState::Waiting(rx) => match rx.try_recv() {
                Ok(r) => Some(r),
                Err(oneshot::error::TryRecvError::Empty) => None,
                Err(oneshot::error::TryRecvError::Closed) => {
                    Some(Err(ClientError::Closed("producer")))
                }
            },
            DeliveryState::Failed(e) => e.take().map(Err),
        }
    }

    fn failed(e: ClientError) -> Self {
        DeliveryFuture {
            state: DeliveryState::Failed(Some(e)),
        }
    }
}

/// A record waiting for its topic's metadata.
struct Unresolved {
    record: ProducerRecord,
    timestamp: i64,
    reply: Reply,
    enqueued: Instant,
}

struct Batch {
    builder: Option<RecordBatchBuilder>,
    /// The encoded batch, once drained (kept for retries).
    built: Option<Bytes>,
    /// (reply, create timestamp) per record, in offset order.
    replies: Vec<(Reply, i64)>,
    created: Instant,
    attempts: u32,
    /// No more records may be appended.
    full: bool,
    size: usize,
}

impl Batch {
    fn new(compression: eddy_protocol::records::Compression, first_ts: i64) -> Batch {
        Batch {
            builder: Some(RecordBatchBuilder::new(compression, first_ts)),
            built: None,
            replies: Vec::new(),
            created: Instant::now(),
            attempts: 0,
            full: false,
            size: eddy_protocol::records::BATCH_HEADER_LEN,
        }
    }

    fn fail(self, e: &ClientError) {
        for (tx, _) in self.replies {
            let _ = tx.send(Err(e.clone()));
        }
    }
}

#[derive(Default)]
struct PartitionQueue {
    batches: VecDeque<Batch>,
    in_flight: bool,
    retry_at: Option<Instant>,
}

#[derive(Default)]
struct State {
    unresolved: HashMap<String, VecDeque<Unresolved>>,
    resolving: HashSet<String>,
    /// Topics whose metadata is being refreshed (leader unknown or changed).
    refreshing: HashSet<String>,
    queues: BTreeMap<(String, i32), PartitionQueue>,
    /// Sticky partition per topic for unkeyed records, and whether a batch
    /// was started on it.
    sticky: HashMap<String, (i32, bool)>,
    /// Records accepted and not yet completed.
    outstanding: usize,
    flushing: usize,
    closed: bool,
}

struct Inner {
    cluster: Arc<Cluster>,
    config: ProducerConfig,
    state: Mutex<State>,
    /// Wakes the sender task.
    wake: Notify,
    /// Signalled when `outstanding` drops to zero.
    idle: Notify,
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

impl Producer {
    /// A producer with its own connections. Must be called within a tokio runtime.
    pub fn new(config: ProducerConfig) -> Result<Producer, ClientError> {
        let cluster = Cluster::new(config.common.clone())?;
        Self::with_cluster(config, cluster)
    }

    /// A producer sharing `cluster`'s connections and metadata.
    pub fn with_cluster(
        config: ProducerConfig,
        cluster: Arc<Cluster>,
    ) -> Result<Producer, ClientError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            ClientError::InvalidArgument(
                "the producer must be created within a tokio runtime".into(),
            )
        })?;
        let inner = Arc::new(Inner {
            cluster,
            config,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            idle: Notify::new(),
        });
        handle.spawn(sender_loop(inner.clone()));
        Ok(Producer {
            _handle: Arc::new(CloseOnDrop(inner.clone())),
            inner,
        })
    }

    pub fn config(&self) -> &ProducerConfig {
        &self.inner.config
    }

    /// Queues a record and returns a future of its delivery. Records are
    /// queued in call order; records of one partition are written in that order.
    pub fn send(&self, record: ProducerRecord) -> DeliveryFuture {
        let size = record.estimated_size();
        if size > self.inner.config.max_request_size {
            return DeliveryFuture::failed(
                KafkaError::new(ErrorCode::MessageTooLarge)
                    .with_message(Some(format!(
                        "the record is {size} bytes, more than max.request.size ({})",
                        self.inner.config.max_request_size
                    )))
                    .with_topic(&record.topic)
                    .into(),
            );
        }
        if let Some(p) = record.partition {
            if p < 0 {
                return DeliveryFuture::failed(ClientError::InvalidArgument(format!(
                    "invalid partition {p}"
                )));
            }
        }
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let (tx, rx) = oneshot::channel();
        let mut st = self.inner.state.lock();
        if st.closed {
            return DeliveryFuture::failed(ClientError::Closed("producer"));
        }
        st.outstanding += 1;
        let waiting_topic = st
            .unresolved
            .get(&record.topic)
            .is_some_and(|q| !q.is_empty());
        let info = if waiting_topic {
            None
        } else {
            self.inner.cluster.cached_topic(&record.topic)
        };
        match info.and_then(|t| {
            choose_partition(&mut st, &t, &record, self.inner.config.batch_size).map(|p| (t, p))
        }) {
            Some((_, partition)) => {
                let new_batch = append(
                    &self.inner.config,
                    &mut st,
                    partition,
                    record,
                    timestamp,
                    tx,
                );
                if new_batch {
                    self.inner.wake.notify_one();
                }
            }
            None => {
                st.unresolved
                    .entry(record.topic.clone())
                    .or_default()
                    .push_back(Unresolved {
                        record,
                        timestamp,
                        reply: tx,
                        enqueued: Instant::now(),
                    });
                self.inner.wake.notify_one();
            }
        }
        DeliveryFuture {
            state: DeliveryState::Waiting(rx),
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

/// The partition of `record`, or `None` if the metadata cannot place it
/// (explicit partition out of range, or no available partition).
fn choose_partition(
    st: &mut State,
    topic: &TopicInfo,
    record: &ProducerRecord,
    batch_size: usize,
) -> Option<i32> {
    let n = i32::try_from(topic.partitions.len()).ok()?;
    if n == 0 {
        return None;
    }
    if let Some(p) = record.partition {
        return (p < n).then_some(p);
    }
    if let Some(key) = &record.key {
        return Some(partition_for_key(key, n));
    }
    // Sticky: keep the partition while its open batch has room; move on when
    // a new batch would be started after the previous one closed.
    let current = st.sticky.get(&topic.name).copied();
    if let Some((p, started)) = current {
        let open = st
            .queues
            .get(&(topic.name.clone(), p))
            .and_then(|q| q.batches.back())
            .is_some_and(|b| {
                !b.full && b.builder.is_some() && b.size + record.estimated_size() <= batch_size
            });
        if open || !started {
            return Some(p);
        }
    }
    let available: Vec<i32> = topic.available_partitions().map(|p| p.partition).collect();
    let pool: Vec<i32> = if available.is_empty() {
        (0..n).collect()
    } else {
        available
    };
    let prev = current.map(|(p, _)| p);
    let candidates: Vec<i32> = if pool.len() > 1 {
        pool.iter().copied().filter(|p| Some(*p) != prev).collect()
    } else {
        pool
    };
    let p = candidates[rand::thread_rng().gen_range(0..candidates.len())];
    st.sticky.insert(topic.name.clone(), (p, false));
    Some(p)
}

/// Appends a record to the partition's open batch (starting a new one if
/// needed). Returns whether a batch became ready (full) or was created.
fn append(
    config: &ProducerConfig,
    st: &mut State,
    partition: i32,
    record: ProducerRecord,
    timestamp: i64,
    reply: Reply,
) -> bool {
    let size = record.estimated_size();
    let q = st
        .queues
        .entry((record.topic.clone(), partition))
        .or_default();
    let fits = q.batches.back().is_some_and(|b| {
        !b.full
            && b.builder.is_some()
            && (b.replies.is_empty() || b.size + size <= config.batch_size)
    });
    let mut signal = false;
    if !fits {
        if let Some(b) = q.batches.back_mut() {
            b.full = true;
        }
        q.batches
            .push_back(Batch::new(config.compression, timestamp));
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
    b.replies.push((reply, timestamp));
    if b.size >= config.batch_size {
        b.full = true;
        signal = true;
    }
    if record.key.is_none() && record.partition.is_none() {
        if let Some(s) = st.sticky.get_mut(&record.topic) {
            if s.0 == partition {
                s.1 = true;
            }
        }
    }
    signal
}

/// Completes `n` records: decrements the outstanding count and wakes flushers.
fn completed(inner: &Inner, st: &mut State, n: usize) {
    st.outstanding = st.outstanding.saturating_sub(n);
    if st.outstanding == 0 {
        inner.idle.notify_waiters();
    }
}

async fn sender_loop(inner: Arc<Inner>) {
    loop {
        let wake = inner.wake.notified();
        let (ready, resolve, next_deadline, done) = {
            let mut st = inner.state.lock();
            let resolve: Vec<String> = st
                .unresolved
                .iter()
                .filter(|(t, q)| !q.is_empty() && !st.resolving.contains(*t))
                .map(|(t, _)| t.clone())
                .collect();
            for t in &resolve {
                st.resolving.insert(t.clone());
            }
            let (ready, next) = drain_ready(&inner, &mut st);
            let done = st.closed && st.outstanding == 0;
            (ready, resolve, next, done)
        };
        if done {
            tracing::debug!("producer sender stopped");
            return;
        }
        for topic in resolve {
            tokio::spawn(resolve_topic(inner.clone(), topic));
        }
        for (leader, batches) in ready {
            tokio::spawn(send_to_leader(inner.clone(), leader, batches));
        }
        match next_deadline {
            Some(d) => {
                let _ = tokio::time::timeout_at(d.into(), wake).await;
            }
            None => wake.await,
        }
    }
}

type Drained = Vec<((String, i32), Batch)>;

/// Takes the batches that are ready to send, grouped by leader, marking their
/// partitions in flight; fails expired batches. Returns the earliest time at
/// which a waiting batch becomes ready.
fn drain_ready(inner: &Arc<Inner>, st: &mut State) -> (BTreeMap<i32, Drained>, Option<Instant>) {
    let cfg = &inner.config;
    let now = Instant::now();
    let force = st.flushing > 0 || st.closed;
    let mut ready: BTreeMap<i32, Drained> = BTreeMap::new();
    let mut next: Option<Instant> = None;
    let mut expired = Vec::new();
    let mut refresh = HashSet::new();
    let mut request_bytes: HashMap<i32, usize> = HashMap::new();
    let earliest = |t: Instant, next: &mut Option<Instant>| {
        *next = Some(next.map_or(t, |n: Instant| n.min(t)));
    };
    for ((topic, partition), q) in st.queues.iter_mut() {
        // Expire batches waiting longer than delivery.timeout.ms (not in flight).
        while let Some(b) = q.batches.front() {
            if q.in_flight || b.created + cfg.delivery_timeout > now {
                break;
            }
            if let Some(b) = q.batches.pop_front() {
                expired.push((topic.clone(), *partition, b));
            }
        }
        if let Some(b) = q.batches.front() {
            earliest(b.created + cfg.delivery_timeout, &mut next);
        }
        if q.in_flight {
            continue;
        }
        if let Some(at) = q.retry_at {
            if at > now {
                earliest(at, &mut next);
                continue;
            }
            q.retry_at = None;
        }
        let Some(front) = q.batches.front() else {
            continue;
        };
        let linger_end = front.created + cfg.linger;
        let is_ready = force
            || front.full
            || q.batches.len() > 1
            || linger_end <= now
            || front.built.is_some();
        if !is_ready {
            earliest(linger_end, &mut next);
            continue;
        }
        let leader = inner
            .cluster
            .cached_topic(topic)
            .and_then(|t| t.partition(*partition).and_then(|p| p.leader));
        let Some(leader) = leader else {
            refresh.insert(topic.clone());
            earliest(now + inner.cluster.config().retry_backoff, &mut next);
            continue;
        };
        // Keep each request within max.request.size (a lone batch may exceed it).
        let size = front.built.as_ref().map_or(front.size, Bytes::len);
        let bytes = request_bytes.entry(leader).or_insert(0usize);
        if *bytes > 0 && *bytes + size > cfg.max_request_size {
            earliest(now, &mut next);
            continue;
        }
        *bytes += size;
        let Some(mut b) = q.batches.pop_front() else {
            continue;
        };
        b.full = true;
        q.in_flight = true;
        ready
            .entry(leader)
            .or_default()
            .push(((topic.clone(), *partition), b));
    }
    for (topic, partition, b) in expired {
        let n = b.replies.len();
        b.fail(&ClientError::OperationTimeout {
            what: format!("delivery to topic '{topic}' partition {partition}"),
            timeout: cfg.delivery_timeout,
        });
        completed(inner, st, n);
    }
    for topic in refresh {
        spawn_refresh(inner, st, &topic);
    }
    (ready, next)
}

/// Fetches the topic's metadata and moves its waiting records into batches
/// (or fails them).
async fn resolve_topic(inner: Arc<Inner>, topic: String) {
    let timeout = inner
        .config
        .delivery_timeout
        .min(inner.cluster.config().request_timeout * 2);
    inner.cluster.invalidate(&topic);
    let res = inner
        .cluster
        .topic_with_leaders(&topic, true, timeout)
        .await;
    let mut st = inner.state.lock();
    st.resolving.remove(&topic);
    let waiting = st.unresolved.remove(&topic).unwrap_or_default();
    let mut failed = 0;
    for u in waiting {
        match &res {
            Ok(info) => match choose_partition(&mut st, info, &u.record, inner.config.batch_size) {
                Some(p) => {
                    append(&inner.config, &mut st, p, u.record, u.timestamp, u.reply);
                }
                None => {
                    let p = u.record.partition.unwrap_or(-1);
                    let _ = u
                        .reply
                        .send(Err(KafkaError::new(ErrorCode::UnknownTopicOrPartition)
                            .with_partition(&topic, p)
                            .into()));
                    failed += 1;
                }
            },
            Err(e) => {
                tracing::debug!(%topic, waited_ms = u.enqueued.elapsed().as_millis() as u64, "metadata failed");
                let _ = u.reply.send(Err(e.clone()));
                failed += 1;
            }
        }
    }
    completed(&inner, &mut st, failed);
    drop(st);
    inner.wake.notify_one();
}

/// Sends one Produce request with the batches to `leader` and completes or
/// requeues them.
async fn send_to_leader(inner: Arc<Inner>, leader: i32, mut batches: Drained) {
    let cfg = &inner.config;
    let mut build_errors = Vec::new();
    for (i, (_, b)) in batches.iter_mut().enumerate() {
        if b.built.is_none() {
            match b.builder.take().map(RecordBatchBuilder::build) {
                Some(Ok(bytes)) => b.built = Some(bytes),
                Some(Err(e)) => build_errors.push((i, ClientError::from(e))),
                None => build_errors.push((i, ClientError::Records("batch has no records".into()))),
            }
        }
    }
    // Fail batches that could not be encoded.
    for (i, e) in build_errors.into_iter().rev() {
        let ((topic, partition), b) = batches.remove(i);
        finish(&inner, &topic, partition, b, Err(e));
    }
    if batches.is_empty() {
        inner.wake.notify_one();
        return;
    }
    let mut topics: BTreeMap<&str, Vec<PartitionProduceData>> = BTreeMap::new();
    for ((topic, partition), b) in &batches {
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
    let result = match inner.cluster.connection(leader).await {
        Ok(conn) if cfg.acks == Acks::None => conn.send_no_response(&req).await.map(|_| None),
        Ok(conn) => conn.send(&req).await.map(Some),
        Err(e) => Err(e),
    };
    match result {
        Ok(None) => {
            for ((topic, partition), b) in batches {
                let meta = |ts| RecordMetadata {
                    topic: topic.clone(),
                    partition,
                    offset: -1,
                    timestamp: ts,
                };
                let n = b.replies.len();
                for (tx, ts) in b.replies {
                    let _ = tx.send(Ok(meta(ts)));
                }
                done_partition(&inner, &topic, partition, n);
            }
        }
        Ok(Some(resp)) => {
            let mut by_partition = HashMap::new();
            for t in resp.responses {
                for p in t.partition_responses {
                    by_partition.insert((t.name.clone(), p.index), p);
                }
            }
            for ((topic, partition), b) in batches {
                let outcome = match by_partition.remove(&(topic.clone(), partition)) {
                    None => Err(ClientError::InvalidResponse {
                        api: eddy_protocol::ApiKey::Produce,
                        addr: String::new(),
                        reason: format!("no result for topic '{topic}' partition {partition}"),
                    }),
                    Some(p) if p.error_code == 0 => Ok((p.base_offset, p.log_append_time_ms)),
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
                finish(&inner, &topic, partition, b, outcome);
            }
        }
        Err(e) => {
            for ((topic, partition), b) in batches {
                finish(&inner, &topic, partition, b, Err(e.clone()));
            }
        }
    }
    inner.wake.notify_one();
}

/// Completes a batch, or puts it back at the front of its queue for a retry.
fn finish(
    inner: &Arc<Inner>,
    topic: &str,
    partition: i32,
    mut b: Batch,
    outcome: Result<(i64, i64), ClientError>,
) {
    let cfg = &inner.config;
    match outcome {
        Ok((base_offset, log_append_time)) => {
            let n = b.replies.len();
            for (i, (tx, ts)) in b.replies.into_iter().enumerate() {
                let _ = tx.send(Ok(RecordMetadata {
                    topic: topic.to_string(),
                    partition,
                    offset: base_offset + i as i64,
                    timestamp: if log_append_time >= 0 {
                        log_append_time
                    } else {
                        ts
                    },
                }));
            }
            done_partition(inner, topic, partition, n);
        }
        Err(e) => {
            if e.invalidates_metadata() {
                inner.cluster.invalidate(topic);
            }
            b.attempts += 1;
            let retry = e.is_retriable()
                && b.attempts <= cfg.retries
                && b.created.elapsed() + cfg.common.retry_backoff < cfg.delivery_timeout;
            let mut st = inner.state.lock();
            if retry {
                tracing::debug!(%topic, partition, error = %e, attempt = b.attempts, "retrying batch");
                let q = st.queues.entry((topic.to_string(), partition)).or_default();
                q.batches.push_front(b);
                q.in_flight = false;
                q.retry_at = Some(Instant::now() + cfg.common.retry_backoff);
                if e.invalidates_metadata() {
                    spawn_refresh(inner, &mut st, topic);
                }
            } else {
                let n = b.replies.len();
                b.fail(&e);
                if let Some(q) = st.queues.get_mut(&(topic.to_string(), partition)) {
                    q.in_flight = false;
                }
                completed(inner, &mut st, n);
            }
        }
    }
}

/// Refreshes a topic's metadata in the background, then wakes the sender.
fn spawn_refresh(inner: &Arc<Inner>, st: &mut State, topic: &str) {
    if !st.refreshing.insert(topic.to_string()) {
        return;
    }
    let inner = inner.clone();
    let topic = topic.to_string();
    tokio::spawn(async move {
        inner.cluster.invalidate(&topic);
        if let Err(e) = inner.cluster.topic(&topic, true).await {
            tracing::debug!(%topic, error = %e, "metadata refresh failed");
            tokio::time::sleep(inner.cluster.config().retry_backoff).await;
        }
        inner.state.lock().refreshing.remove(&topic);
        inner.wake.notify_one();
    });
}

fn done_partition(inner: &Inner, topic: &str, partition: i32, n: usize) {
    let mut st = inner.state.lock();
    let key = (topic.to_string(), partition);
    if let Some(q) = st.queues.get_mut(&key) {
        q.in_flight = false;
        if q.batches.is_empty() {
            st.queues.remove(&key);
        }
    }
    completed(inner, &mut st, n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::PartitionInfo;
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

    fn add(
        st: &mut State,
        c: &ProducerConfig,
        t: &TopicInfo,
        r: ProducerRecord,
    ) -> (i32, oneshot::Receiver<Result<RecordMetadata, ClientError>>) {
        let p = choose_partition(st, t, &r, c.batch_size).unwrap();
        let (tx, rx) = oneshot::channel();
        append(c, st, p, r, 1000, tx);
        (p, rx)
    }

    #[test]
    fn keyed_records_follow_murmur2() {
        let t = topic(6);
        let c = cfg(16384);
        let mut st = State::default();
        for key in ["a", "orders-17", "21", ""] {
            let (p, _rx) = add(
                &mut st,
                &c,
                &t,
                ProducerRecord::new("t", "v").key(key.as_bytes().to_vec()),
            );
            assert_eq!(p, partition_for_key(key.as_bytes(), 6), "key {key:?}");
        }
        // Explicit partitions win; out of range ones cannot be placed.
        let place =
            |st: &mut State, t: &TopicInfo, r: ProducerRecord| choose_partition(st, t, &r, 16384);
        assert_eq!(
            place(
                &mut st,
                &t,
                ProducerRecord::new("t", "v").key("a").partition(4)
            ),
            Some(4)
        );
        assert_eq!(
            place(&mut st, &t, ProducerRecord::new("t", "v").partition(6)),
            None
        );
        assert_eq!(
            place(&mut st, &topic(0), ProducerRecord::new("t", "v")),
            None
        );
    }

    #[test]
    fn accumulator_fills_batches_up_to_batch_size() {
        // Records of ~87 bytes: two fit a 300-byte batch (61-byte header).
        let c = cfg(300);
        let t = topic(1);
        let mut st = State::default();
        let mut rxs = Vec::new();
        for i in 0..10 {
            let (_, rx) = add(
                &mut st,
                &c,
                &t,
                ProducerRecord::new("t", vec![b'x'; 50]).key(format!("k{i}")),
            );
            rxs.push(rx);
        }
        let q = &st.queues[&("t".to_string(), 0)];
        let counts: Vec<usize> = q.batches.iter().map(|b| b.replies.len()).collect();
        assert_eq!(counts.iter().sum::<usize>(), 10);
        assert_eq!(counts, vec![2, 2, 2, 2, 2]);
        for b in q.batches.iter().take(q.batches.len() - 1) {
            assert!(b.full);
            assert!(b.size <= 300, "size {}", b.size);
        }
        assert!(!q.batches.back().unwrap().full);
        // A record larger than batch.size gets a batch of its own.
        let (_, _rx) = add(&mut st, &c, &t, ProducerRecord::new("t", vec![b'y'; 700]));
        let q = &st.queues[&("t".to_string(), 0)];
        assert_eq!(q.batches.back().unwrap().replies.len(), 1);
        assert!(q.batches.back().unwrap().full);
        // The built batch holds the records in order.
        let mut q = st.queues.remove(&("t".to_string(), 0)).unwrap();
        let b = q.batches.pop_front().unwrap();
        let bytes = b.builder.unwrap().build().unwrap();
        let (_, recs) = eddy_protocol::records::decode_records(&bytes, 1 << 20).unwrap();
        assert_eq!(recs[0].key.as_deref(), Some(&b"k0"[..]));
        assert_eq!(recs[1].key.as_deref(), Some(&b"k1"[..]));
    }

    #[test]
    fn sticky_partition_changes_when_its_batch_closes() {
        // Records of 50-byte values take 85 bytes; a batch starts at 61.
        let c = cfg(300);
        let t = topic(4);
        let mut st = State::default();
        let (p1, _r1) = add(&mut st, &c, &t, ProducerRecord::new("t", vec![0u8; 50]));
        let (p2, _r2) = add(&mut st, &c, &t, ProducerRecord::new("t", vec![0u8; 50]));
        assert_eq!(
            p1, p2,
            "stays while the batch has room (61 + 2 * 85 <= 300)"
        );
        let (p3, _r3) = add(&mut st, &c, &t, ProducerRecord::new("t", vec![0u8; 50]));
        assert_ne!(p3, p1, "moves to another partition when the batch is full");
        let (p4, _r4) = add(&mut st, &c, &t, ProducerRecord::new("t", vec![0u8; 10]));
        assert_eq!(p4, p3);
        assert_eq!(st.queues[&("t".to_string(), p1)].batches.len(), 1);
        // When the sticky partition's batch is drained, the next record moves on.
        st.queues
            .get_mut(&("t".to_string(), p3))
            .unwrap()
            .batches
            .clear();
        let (p5, _r5) = add(&mut st, &c, &t, ProducerRecord::new("t", vec![0u8; 10]));
        assert_ne!(p5, p3);
        // A single-partition topic always uses partition 0.
        let one = topic(1);
        let mut st = State::default();
        for _ in 0..5 {
            assert_eq!(
                add(&mut st, &c, &one, ProducerRecord::new("t", vec![0u8; 120])).0,
                0
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
        Arc::new(Inner {
            cluster,
            config: cfg,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            idle: Notify::new(),
        })
    }

    #[tokio::test]
    async fn drain_honours_linger_in_flight_and_request_size() {
        let mut c = cfg(16384);
        c.linger = std::time::Duration::from_secs(60);
        c.max_request_size = 1000;
        let inner = inner_with_topic(4, c.clone());
        let mut st = inner.state.lock();
        let mut rxs = Vec::new();
        for p in 0..4 {
            rxs.push(
                add(
                    &mut st,
                    &c,
                    &topic(4),
                    ProducerRecord::new("t", vec![0u8; 400]).partition(p),
                )
                .1,
            );
        }
        // Within linger and not full: nothing is ready; the deadline is the linger end.
        let (ready, next) = drain_ready(&inner, &mut st);
        assert!(ready.is_empty());
        let next = next.unwrap();
        assert!(next > Instant::now() + std::time::Duration::from_secs(50));
        // Flushing makes everything ready, two ~500-byte batches per 1000-byte request.
        st.flushing = 1;
        let (ready, next) = drain_ready(&inner, &mut st);
        let sent: Vec<i32> = ready[&1].iter().map(|((_, p), _)| *p).collect();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(next.unwrap() <= Instant::now(), "the rest is due at once");
        // Partitions in flight are skipped; the others go in the next request.
        let (ready2, _) = drain_ready(&inner, &mut st);
        let sent2: Vec<i32> = ready2[&1].iter().map(|((_, p), _)| *p).collect();
        assert_eq!(sent2.len(), 2);
        assert!(sent2.iter().all(|p| !sent.contains(p)));
        let (ready3, _) = drain_ready(&inner, &mut st);
        assert!(ready3.is_empty());
        assert!(st.queues.values().all(|q| q.in_flight));
    }
}

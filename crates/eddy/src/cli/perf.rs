//! `eddy perf produce|consume`: load generators reporting in the format of
//! Kafka's `kafka-producer-perf-test` and `kafka-consumer-perf-test`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Args, Subcommand};
use eddy_client::{
    AutoOffsetReset, ClientError, Cluster, Consumer, ConsumerConfig, ConsumerRecord, ErrorCode,
    Producer, ProducerConfig, ProducerRecord, StartOffset,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{CliError, ConnArgs};

/// Latency samples kept for the percentiles, at most (as Kafka's tool).
const MAX_SAMPLES: u64 = 500_000;
/// Interval of the progress reports.
const REPORT_EVERY: Duration = Duration::from_secs(5);
const MB: f64 = 1024.0 * 1024.0;

#[derive(Subcommand, Debug)]
pub enum PerfCommand {
    /// Produce generated records as fast as possible (or at --throughput),
    /// reporting like kafka-producer-perf-test.
    Produce(ProducePerfArgs),
    /// Consume records from the beginning, reporting like kafka-consumer-perf-test.
    Consume(ConsumePerfArgs),
}

#[derive(Args, Debug)]
pub struct ProducePerfArgs {
    /// Topic to produce to.
    #[arg(long)]
    topic: String,
    /// Number of records to send.
    #[arg(long)]
    records: u64,
    /// Size of each record's value in bytes.
    #[arg(long)]
    record_size: usize,
    /// Maximum records per second (-1: unlimited).
    #[arg(long, default_value_t = -1.0, allow_hyphen_values = true)]
    throughput: f64,
    /// Acknowledgements: 0, 1 or all (-1); default: the producer's (all).
    #[arg(long, allow_hyphen_values = true)]
    acks: Option<String>,
    /// A producer property KEY=VALUE, e.g. linger.ms=10 (repeatable).
    #[arg(long = "producer-config", value_name = "KEY=VALUE")]
    producer_config: Vec<String>,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct ConsumePerfArgs {
    /// Topic to consume.
    #[arg(long)]
    topic: String,
    /// Number of records to consume.
    #[arg(long)]
    records: u64,
    /// Consume as a member of this group (default: assign all partitions).
    #[arg(long)]
    group: Option<String>,
    /// Give up when no record arrives for this long (ms).
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// A consumer property KEY=VALUE, e.g. fetch.max.bytes=1048576 (repeatable).
    #[arg(long = "consumer-config", value_name = "KEY=VALUE")]
    consumer_config: Vec<String>,
    #[command(flatten)]
    conn: ConnArgs,
}

pub async fn run(cmd: PerfCommand) -> Result<ExitCode, CliError> {
    match cmd {
        PerfCommand::Produce(a) => produce(a).await,
        PerfCommand::Consume(a) => consume(a).await,
    }
}

/// A payload like kafka-producer-perf-test's: random upper-case letters.
fn payload(size: usize) -> Bytes {
    let mut x: u64 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9e37_79b9_7f4a_7c15)
        | 1;
    (0..size)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'A' + (x % 26) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// The statistics of kafka-producer-perf-test: totals, a 5 s window, and a
/// sample of latencies for the percentiles.
#[derive(Debug)]
struct Stats {
    count: u64,
    bytes: u64,
    total_latency_us: u64,
    max_latency_us: u64,
    /// Every `sampling`-th record's latency in ms.
    samples: Vec<u32>,
    sampling: u64,
    window_start: Instant,
    window_count: u64,
    window_bytes: u64,
    window_total_latency_us: u64,
    window_max_latency_us: u64,
}

impl Stats {
    fn new(records: u64, now: Instant) -> Stats {
        let sampling = (records / records.clamp(1, MAX_SAMPLES)).max(1);
        Stats {
            count: 0,
            bytes: 0,
            total_latency_us: 0,
            max_latency_us: 0,
            samples: Vec::with_capacity((records / sampling).min(MAX_SAMPLES) as usize + 1),
            sampling,
            window_start: now,
            window_count: 0,
            window_bytes: 0,
            window_total_latency_us: 0,
            window_max_latency_us: 0,
        }
    }

    /// Records the acknowledgement of record number `iteration`.
    fn record(&mut self, iteration: u64, latency: Duration, bytes: usize) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.count += 1;
        self.bytes += bytes as u64;
        self.total_latency_us = self.total_latency_us.saturating_add(us);
        self.max_latency_us = self.max_latency_us.max(us);
        self.window_count += 1;
        self.window_bytes += bytes as u64;
        self.window_total_latency_us = self.window_total_latency_us.saturating_add(us);
        self.window_max_latency_us = self.window_max_latency_us.max(us);
        if iteration.is_multiple_of(self.sampling) {
            self.samples
                .push(u32::try_from(latency.as_millis()).unwrap_or(u32::MAX));
        }
    }

    /// The 5 s report, if the window is over (and starts a new one).
    fn window_report(&mut self, now: Instant) -> Option<String> {
        let elapsed = now.duration_since(self.window_start);
        if elapsed < REPORT_EVERY {
            return None;
        }
        let line = window_line(
            self.window_count,
            self.window_bytes,
            elapsed,
            self.window_total_latency_us,
            self.window_max_latency_us,
        );
        self.window_start = now;
        self.window_count = 0;
        self.window_bytes = 0;
        self.window_total_latency_us = 0;
        self.window_max_latency_us = 0;
        Some(line)
    }

    /// kafka-producer-perf-test's final line.
    fn total_line(&mut self, elapsed: Duration) -> String {
        self.samples.sort_unstable();
        let [p50, p95, p99, p999] = [0.5, 0.95, 0.99, 0.999].map(|p| percentile(&self.samples, p));
        let secs = elapsed.as_secs_f64().max(1e-9);
        format!(
            "{} records sent, {:.6} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {p50} ms 50th, {p95} ms 95th, {p99} ms 99th, {p999} ms 99.9th.",
            self.count,
            self.count as f64 / secs,
            self.bytes as f64 / MB / secs,
            avg_ms(self.total_latency_us, self.count),
            self.max_latency_us as f64 / 1000.0,
        )
    }
}

fn avg_ms(total_us: u64, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        total_us as f64 / count as f64 / 1000.0
    }
}

/// kafka-producer-perf-test's periodic line.
fn window_line(count: u64, bytes: u64, elapsed: Duration, total_us: u64, max_us: u64) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    format!(
        "{count} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
        count as f64 / secs,
        bytes as f64 / MB / secs,
        avg_ms(total_us, count),
        max_us as f64 / 1000.0,
    )
}

/// The `p` quantile of sorted samples, as Kafka's tool takes it.
fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i]
}

/// A progress bar on stderr if it is a terminal.
fn progress_bar(len: u64, unit: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let template = format!("{{elapsed_precise}} [{{wide_bar}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, eta {{eta}})");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        pb.set_style(style.progress_chars("=> "));
    }
    Some(pb)
}

/// Prints a line on stdout without garbling the progress bar.
fn say(pb: Option<&ProgressBar>, line: &str) {
    match pb {
        Some(pb) => pb.suspend(|| println!("{line}")),
        None => println!("{line}"),
    }
}

/// What the acknowledgement callbacks collect.
struct Collected {
    stats: Stats,
    failed: u64,
    first_error: Option<ClientError>,
    /// The last clock read of the callbacks and the calls since.
    clock: (Instant, u64),
}

/// Records between two clock reads of the producing loop and of the callbacks.
const CLOCK_EVERY: u64 = 16;

/// The state shared by the delivery callbacks of `perf produce`.
struct Acks {
    collected: Mutex<Collected>,
    pb: Option<ProgressBar>,
}

impl Acks {
    fn acknowledged(
        &self,
        i: u64,
        sent: Instant,
        r: Result<eddy_client::RecordMetadata, ClientError>,
        bytes: usize,
    ) {
        let mut c = self.collected.lock().unwrap_or_else(|e| e.into_inner());
        if c.clock.1.is_multiple_of(CLOCK_EVERY) {
            c.clock.0 = Instant::now();
        }
        c.clock.1 += 1;
        let now = c.clock.0;
        match r {
            Ok(_) => c
                .stats
                .record(i, now.saturating_duration_since(sent), bytes),
            Err(e) => {
                c.failed += 1;
                if c.first_error.is_none() {
                    c.first_error = Some(e);
                }
            }
        }
        if let Some(pb) = &self.pb {
            pb.inc(1);
        }
        if let Some(line) = c.stats.window_report(now) {
            say(self.pb.as_ref(), &line);
        }
    }
}

async fn produce(a: ProducePerfArgs) -> Result<ExitCode, CliError> {
    if a.records == 0 {
        return Err(CliError::Usage("--records must be positive".into()));
    }
    if a.throughput == 0.0 || (a.throughput < 0.0 && a.throughput != -1.0) {
        return Err(CliError::Usage(format!(
            "--throughput {} must be positive or -1 (unlimited)",
            a.throughput
        )));
    }
    let mut props = a.conn.properties()?;
    if let Some(acks) = &a.acks {
        props.insert("acks", acks.as_str());
    }
    for p in &a.producer_config {
        props.insert_assignment(p)?;
    }
    let cfg = ProducerConfig::from_config(&props)?;
    let cluster = Cluster::new(cfg.common.clone())?;
    cluster.any_connection().await?;
    // The broker creates a missing topic (1 partition by default) if it auto-creates.
    match cluster
        .topic_with_leaders(&a.topic, true, Duration::from_secs(10))
        .await
    {
        Ok(_) => {}
        Err(ClientError::Kafka(k)) if k.code == ErrorCode::UnknownTopicOrPartition => {
            return Err(CliError::Usage(format!(
                "topic '{}' does not exist and the broker does not create topics automatically \
                 (create it with `eddy topic create {}`)",
                a.topic, a.topic
            )));
        }
        Err(e) => return Err(e.into()),
    }
    let producer = Producer::with_cluster(cfg, cluster)?;
    let value = payload(a.record_size);
    let record_bytes = a.record_size;
    let pb = progress_bar(a.records, "records");
    let start = Instant::now();

    // Acknowledgements are counted by the delivery callbacks; `send` waits
    // when buffer.memory is full, which bounds the records in flight (as in
    // kafka-producer-perf-test). The callbacks share the tally through a
    // `'static` reference (leaked once per run) rather than an `Arc`, whose
    // count would bounce between the sending and the acknowledging threads
    // for every record.
    let shared: &'static Acks = Box::leak(Box::new(Acks {
        collected: Mutex::new(Collected {
            stats: Stats::new(a.records, start),
            failed: 0,
            first_error: None,
            clock: (start, 0),
        }),
        pb: pb.clone(),
    }));
    let per_record = (a.throughput > 0.0).then(|| 1.0 / a.throughput);
    // Create times derive from the monotonic send times, and the clock is
    // read once per CLOCK_EVERY records on each side (reads are costly here
    // and the error is a few microseconds against latencies in ms).
    let start_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut send_error = None;
    let mut sent = start;
    for i in 0..a.records {
        if let Some(per) = per_record {
            // Like Kafka's ThroughputThrottler: sleep when ahead of schedule.
            let due = start + Duration::from_secs_f64(i as f64 * per);
            let now = Instant::now();
            if due > now + Duration::from_millis(1) {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        if per_record.is_some() || i.is_multiple_of(CLOCK_EVERY) {
            sent = Instant::now();
        }
        let mut record = ProducerRecord::new(a.topic.clone(), value.clone());
        record.timestamp = Some(start_ms + sent.duration_since(start).as_millis() as i64);
        let res = producer
            .send_with_callback(record, move |r| {
                shared.acknowledged(i, sent, r, record_bytes)
            })
            .await;
        if let Err(e) = res {
            send_error = Some(e);
            break;
        }
    }
    producer.flush().await;
    if let Some(e) = send_error {
        return Err(e.into());
    }
    let mut c = std::mem::replace(
        &mut *shared.collected.lock().unwrap_or_else(|e| e.into_inner()),
        Collected {
            stats: Stats::new(0, start),
            failed: 0,
            first_error: None,
            clock: (start, 0),
        },
    );
    let elapsed = start.elapsed();
    if let Some(pb) = &pb {
        pb.finish_and_clear();
    }
    println!("{}", c.stats.total_line(elapsed));
    producer.close().await;
    match c.first_error {
        None => Ok(ExitCode::SUCCESS),
        Some(e) => Err(CliError::Usage(format!(
            "{} of {} records failed: {e}",
            c.failed, a.records
        ))),
    }
}

/// kafka-consumer-perf-test's header.
const CONSUMER_HEADER: &str = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec";

/// The figures of a consumer run.
#[derive(Debug, Clone, Copy)]
struct ConsumeReport {
    start: SystemTime,
    end: SystemTime,
    bytes: u64,
    messages: u64,
    elapsed: Duration,
    rebalance: Duration,
}

impl ConsumeReport {
    /// kafka-consumer-perf-test's line (times in UTC).
    fn line(&self) -> String {
        let mb = self.bytes as f64 / MB;
        let secs = self.elapsed.as_secs_f64();
        let fetch = self.elapsed.saturating_sub(self.rebalance);
        let fetch_secs = fetch.as_secs_f64();
        let rate = |x: f64, s: f64| if s > 0.0 { x / s } else { 0.0 };
        format!(
            "{}, {}, {:.4}, {:.4}, {}, {:.4}, {}, {}, {:.4}, {:.4}",
            format_time(self.start),
            format_time(self.end),
            mb,
            rate(mb, secs),
            self.messages,
            rate(self.messages as f64, secs),
            self.rebalance.as_millis(),
            fetch.as_millis(),
            rate(mb, fetch_secs),
            rate(self.messages as f64, fetch_secs),
        )
    }
}

/// `yyyy-MM-dd HH:mm:ss:SSS` (Kafka's tool's format), in UTC.
fn format_time(t: SystemTime) -> String {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}:{:03}",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn record_size(r: &ConsumerRecord) -> u64 {
    (r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len())) as u64
}

async fn consume(a: ConsumePerfArgs) -> Result<ExitCode, CliError> {
    if a.records == 0 {
        return Err(CliError::Usage("--records must be positive".into()));
    }
    let mut props = a.conn.properties()?;
    for p in &a.consumer_config {
        props.insert_assignment(p)?;
    }
    let mut cfg = ConsumerConfig::from_config(&props)?;
    cfg.auto_offset_reset = AutoOffsetReset::Earliest;
    let idle_limit = Duration::from_millis(a.timeout_ms);
    let pb = progress_bar(a.records, "records");
    let start_wall = SystemTime::now();
    let start = Instant::now();
    let cluster = Cluster::new(cfg.common.clone())?;
    cluster.any_connection().await?;
    let mut messages = 0u64;
    let mut bytes = 0u64;
    let mut rebalance = Duration::ZERO;
    let mut last_record = Instant::now();
    let mut count = |records: &[ConsumerRecord], messages: &mut u64| {
        for r in records {
            if *messages >= a.records {
                break;
            }
            *messages += 1;
            bytes += record_size(r);
        }
        if let Some(pb) = &pb {
            pb.set_position(*messages);
        }
    };
    let timed_out = match &a.group {
        None => {
            let mut consumer = Consumer::with_cluster(cfg, cluster);
            consumer
                .assign_topic(&a.topic, StartOffset::Earliest)
                .await?;
            loop {
                if messages >= a.records {
                    break false;
                }
                let left = idle_limit.saturating_sub(last_record.elapsed());
                if left.is_zero() {
                    break true;
                }
                let records = consumer.poll(left.min(Duration::from_secs(1))).await?;
                if !records.is_empty() {
                    last_record = Instant::now();
                    count(&records, &mut messages);
                }
            }
        }
        Some(group) => {
            let mut cfg = cfg;
            cfg.group_id = Some(group.clone());
            let mut consumer = Consumer::with_cluster(cfg, cluster);
            consumer.subscribe([a.topic.clone()])?;
            let mut assigned = false;
            let result: Result<bool, ClientError> = async {
                loop {
                    if messages >= a.records {
                        return Ok(false);
                    }
                    let left = idle_limit.saturating_sub(last_record.elapsed());
                    if left.is_zero() {
                        return Ok(true);
                    }
                    let records = consumer.poll(left.min(Duration::from_secs(1))).await?;
                    if !assigned && !consumer.assignment().is_empty() {
                        assigned = true;
                        rebalance = start.elapsed();
                        last_record = Instant::now();
                    }
                    if !records.is_empty() {
                        last_record = Instant::now();
                        count(&records, &mut messages);
                    }
                }
            }
            .await;
            let closed = consumer.close().await;
            let timed_out = result?;
            closed?;
            timed_out
        }
    };
    let report = ConsumeReport {
        start: start_wall,
        end: SystemTime::now(),
        bytes,
        messages,
        elapsed: start.elapsed(),
        rebalance,
    };
    if let Some(pb) = &pb {
        pb.finish_and_clear();
    }
    println!("{CONSUMER_HEADER}");
    println!("{}", report.line());
    if timed_out {
        return Err(CliError::Usage(format!(
            "consumed {messages} of {} records: none arrived for {} ms",
            a.records, a.timeout_ms
        )));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_letters() {
        let p = payload(1000);
        assert_eq!(p.len(), 1000);
        assert!(p.iter().all(u8::is_ascii_uppercase));
        assert!(p.iter().any(|&b| b != p[0]), "not constant");
    }

    #[test]
    fn percentiles_as_kafka() {
        let s: Vec<u32> = (0..1000).collect();
        assert_eq!(percentile(&s, 0.5), 500);
        assert_eq!(percentile(&s, 0.999), 999);
        assert_eq!(percentile(&[7], 0.999), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn producer_lines() {
        let t0 = Instant::now();
        let mut s = Stats::new(4, t0);
        for (i, ms) in [1u64, 2, 3, 10].into_iter().enumerate() {
            s.record(i as u64, Duration::from_millis(ms), 100);
        }
        assert_eq!(
            s.total_line(Duration::from_secs(2)),
            "4 records sent, 2.000000 records/sec (0.00 MB/sec), 4.00 ms avg latency, \
             10.00 ms max latency, 3 ms 50th, 10 ms 95th, 10 ms 99th, 10 ms 99.9th."
        );
        assert_eq!(s.window_report(t0 + Duration::from_secs(1)), None);
        assert_eq!(
            s.window_report(t0 + Duration::from_secs(5)).as_deref(),
            Some(
                "4 records sent, 0.8 records/sec (0.00 MB/sec), 4.0 ms avg latency, 10.0 ms max latency."
            )
        );
        assert_eq!(s.window_count, 0);
    }

    #[test]
    fn sampling_caps_samples() {
        let mut s = Stats::new(2_000_000, Instant::now());
        assert_eq!(s.sampling, 4);
        for i in 0..2_000_000 {
            s.record(i, Duration::from_micros(10), 1);
        }
        assert_eq!(s.samples.len(), 500_000);
    }

    #[test]
    fn consumer_line() {
        let start = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let r = ConsumeReport {
            start,
            end: start + Duration::from_secs(2),
            bytes: 2 * 1024 * 1024,
            messages: 20_000,
            elapsed: Duration::from_secs(2),
            rebalance: Duration::from_secs(1),
        };
        assert_eq!(
            r.line(),
            "2023-11-14 22:13:20:123, 2023-11-14 22:13:22:123, 2.0000, 1.0000, 20000, 10000.0000, 1000, 1000, 2.0000, 20000.0000"
        );
        assert_eq!(
            CONSUMER_HEADER.split(", ").count(),
            r.line().split(", ").count()
        );
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(format_time(UNIX_EPOCH), "1970-01-01 00:00:00:000");
    }
}

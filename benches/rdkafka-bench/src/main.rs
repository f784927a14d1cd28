//! `eddy-bench`: produce and consume throughput of an eddy broker, measured
//! with librdkafka (the `rdkafka` crate).
//!
//! By default it starts `--broker-bin` (a release `eddy`) on a temporary data
//! directory on loopback; with `--bootstrap` it uses an already running broker.
//! For each record size × partition count it creates a topic, produces N
//! records (acks=1, linger.ms=5, 1 MiB batches, no compression), then reads
//! them back with an assigned consumer from the beginning, and prints a table.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

#[derive(Parser, Debug)]
#[command(
    name = "eddy-bench",
    about = "Throughput of an eddy broker, measured with librdkafka"
)]
struct Args {
    /// The broker binary to start (ignored with --bootstrap).
    #[arg(long, default_value = "target/release/eddy")]
    broker_bin: PathBuf,
    /// Use an already running broker at HOST:PORT instead of starting one.
    #[arg(long)]
    bootstrap: Option<String>,
    /// Data directory for the started broker (default: a temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Extra broker settings, passed as `--set key=value`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Record sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "100,1024")]
    sizes: Vec<usize>,
    /// Partition counts.
    #[arg(long, value_delimiter = ',', default_value = "1,6")]
    partitions: Vec<i32>,
    /// Records per case for sizes below 1000 bytes.
    #[arg(long, default_value_t = 5_000_000)]
    small_records: u64,
    /// Records per case for sizes of 1000 bytes and more.
    #[arg(long, default_value_t = 2_000_000)]
    large_records: u64,
    /// Keep the benchmark topics instead of deleting them after each case.
    #[arg(long)]
    keep_topics: bool,
}

/// A started broker, terminated on drop.
struct BrokerProcess {
    child: Child,
    _data: Option<tempfile::TempDir>,
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own, not yet reaped child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_ready_line(line: &str) -> Option<String> {
    const MARK: &str = "eddy broker ready on";
    let idx = line.find(MARK)?;
    let rest = line[idx + MARK.len()..].trim_start_matches(|c: char| c.is_whitespace() || c == '"');
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']' | '-'))
        .collect();
    let port: u16 = addr.rsplit(':').next()?.parse().ok()?;
    (port != 0).then_some(addr)
}

fn start_broker(args: &Args) -> Result<(BrokerProcess, String), String> {
    let (data, data_path) = match &args.data_dir {
        Some(p) => (None, p.clone()),
        None => {
            let t = tempfile::Builder::new()
                .prefix("eddy-bench-")
                .tempdir()
                .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let mut cmd = Command::new(&args.broker_bin);
    cmd.arg("broker")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(&data_path)
        .env("NO_COLOR", "1")
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for s in &args.settings {
        cmd.arg("--set").arg(s);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", args.broker_bin.display()))?;
    let (tx, rx) = mpsc::channel();
    for stream in [
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        thread::spawn(move || {
            let mut tail: Vec<String> = Vec::new();
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = parse_ready_line(&line) {
                    let _ = tx.send(Ok(addr));
                }
                tail.push(line);
                if tail.len() > 20 {
                    tail.remove(0);
                }
            }
            let _ = tx.send(Err(tail.join("\n")));
        });
    }
    drop(tx);
    let mut proc = BrokerProcess { child, _data: data };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("the broker printed no ready line within 30 s".into());
        }
        match rx.recv_timeout(left) {
            Ok(Ok(addr)) => return Ok((proc, addr)),
            Ok(Err(tail)) => {
                if let Ok(Some(status)) = proc.child.try_wait() {
                    return Err(format!("the broker exited with {status}:\n{tail}"));
                }
            }
            Err(_) => return Err("the broker printed no ready line within 30 s".into()),
        }
    }
}

#[derive(Default)]
struct Counts {
    delivered: AtomicU64,
    failed: AtomicU64,
}

struct CountingContext(Arc<Counts>);

impl ClientContext for CountingContext {}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.0.delivered.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.0.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

struct Outcome {
    records: u64,
    size: usize,
    partitions: i32,
    produce: Duration,
    consume: Duration,
}

fn base_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", "eddy-bench")
        .set("log_level", "3");
    c
}

fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = base_config(bootstrap)
        .create()
        .map_err(|e| format!("admin client: {e}"))?;
    let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let res =
        block_on(admin.create_topics([&t], &opts)).map_err(|e| format!("CreateTopics: {e}"))?;
    for r in res {
        r.map_err(|(n, code)| format!("creating {n}: {code}"))?;
    }
    Ok(())
}

fn delete_topic(bootstrap: &str, topic: &str) {
    if let Ok(admin) = base_config(bootstrap).create::<AdminClient<DefaultClientContext>>() {
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        if let Err(e) = block_on(admin.delete_topics(&[topic], &opts)) {
            eprintln!("warning: could not delete {topic}: {e}");
        }
    }
}

/// Minimal executor for the admin futures (they complete from librdkafka's thread).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct ThreadWaker(thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park_timeout(Duration::from_millis(50));
    }
}

fn produce(bootstrap: &str, topic: &str, n: u64, size: usize) -> Result<Duration, String> {
    let counts = Arc::new(Counts::default());
    let producer: BaseProducer<CountingContext> = base_config(bootstrap)
        .set("acks", "1")
        .set("linger.ms", "5")
        .set("batch.size", "1048576")
        .set("message.max.bytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("compression.type", "none")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "120000")
        .create_with_context(CountingContext(counts.clone()))
        .map_err(|e| format!("producer: {e}"))?;
    // Pseudo-random payload (compression is off anyway).
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let payload: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let start = Instant::now();
    let mut i = 0u64;
    while i < n {
        match producer.send(BaseRecord::<(), _>::to(topic).payload(&payload)) {
            Ok(()) => {
                i += 1;
                if i & 0xFFF == 0 {
                    producer.poll(Duration::ZERO);
                }
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(format!("enqueue: {e}")),
        }
    }
    producer
        .flush(Duration::from_secs(300))
        .map_err(|e| format!("flush: {e}"))?;
    let elapsed = start.elapsed();
    producer.poll(Duration::ZERO);
    let failed = counts.failed.load(Ordering::Relaxed);
    let delivered = counts.delivered.load(Ordering::Relaxed);
    if failed > 0 || delivered != n {
        return Err(format!(
            "{delivered} of {n} records delivered, {failed} failed"
        ));
    }
    Ok(elapsed)
}

fn consume(bootstrap: &str, topic: &str, partitions: i32, n: u64) -> Result<Duration, String> {
    // assign() needs a group id in librdkafka; nothing is committed.
    let consumer: BaseConsumer = base_config(bootstrap)
        .set("group.id", "eddy-bench")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("fetch.wait.max.ms", "100")
        .set("queued.max.messages.kbytes", "1048576")
        // librdkafka pauses fetching for fetch.queue.backoff.ms (1 s by default)
        // once queued.min.messages (100k) are buffered; with 100-byte records
        // that, not the broker, would set the pace.
        .set("queued.min.messages", "5000000")
        .set("fetch.queue.backoff.ms", "1")
        .set("check.crcs", "false")
        .create()
        .map_err(|e| format!("consumer: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| format!("assign: {e}"))?;
    }
    let start = Instant::now();
    consumer.assign(&tpl).map_err(|e| format!("assign: {e}"))?;
    let mut got = 0u64;
    let mut last_progress = Instant::now();
    while got < n {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                if m.payload().is_some() {
                    got += 1;
                    last_progress = Instant::now();
                }
            }
            Some(Err(e)) => return Err(format!("consume: {e}")),
            None => {
                if last_progress.elapsed() > Duration::from_secs(30) {
                    return Err(format!(
                        "consumed {got} of {n} records, then nothing for 30 s"
                    ));
                }
            }
        }
    }
    Ok(start.elapsed())
}

fn rate(records: u64, bytes: u64, d: Duration) -> (f64, f64) {
    let s = d.as_secs_f64().max(1e-9);
    (records as f64 / s, bytes as f64 / s / 1e6)
}

fn run() -> Result<(), String> {
    let args = Args::parse();
    let (_broker, bootstrap) = match &args.bootstrap {
        Some(b) => (None, b.clone()),
        None => {
            let (p, addr) = start_broker(&args)?;
            (Some(p), addr)
        }
    };
    eprintln!("benchmarking the broker at {bootstrap}");
    let run_id = std::process::id();
    let mut outcomes = Vec::new();
    for &size in &args.sizes {
        for &partitions in &args.partitions {
            let n = if size < 1000 {
                args.small_records
            } else {
                args.large_records
            };
            let topic = format!("bench-{size}b-{partitions}p-{run_id}");
            create_topic(&bootstrap, &topic, partitions)?;
            eprintln!("{topic}: producing {n} records of {size} bytes");
            let p = produce(&bootstrap, &topic, n, size)?;
            eprintln!("{topic}: consuming");
            let c = consume(&bootstrap, &topic, partitions, n)?;
            if !args.keep_topics {
                delete_topic(&bootstrap, &topic);
            }
            outcomes.push(Outcome {
                records: n,
                size,
                partitions,
                produce: p,
                consume: c,
            });
        }
    }

    let cmd: Vec<String> = std::env::args().collect();
    println!("command: {}", cmd.join(" "));
    println!(
        "broker: {}",
        args.bootstrap
            .as_deref()
            .map_or_else(|| args.broker_bin.display().to_string(), |b| b.to_string())
    );
    println!("producer: acks=1 linger.ms=5 batch.size=1048576 compression=none; consumer: assigned, from the beginning, fetch.max.bytes=50MB");
    println!("MB = 10^6 bytes of record values");
    println!();
    println!("| record size | partitions | records | produce rec/s | produce MB/s | consume rec/s | consume MB/s |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for o in &outcomes {
        let bytes = o.records * o.size as u64;
        let (pr, pm) = rate(o.records, bytes, o.produce);
        let (cr, cm) = rate(o.records, bytes, o.consume);
        println!(
            "| {} B | {} | {} | {:.0} | {:.1} | {:.0} | {:.1} |",
            o.size, o.partitions, o.records, pr, pm, cr, cm
        );
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("eddy-bench: {e}");
        std::process::exit(1);
    }
}

//! Shared helpers for the end-to-end tests: a guard around a real `eddy broker`
//! process, librdkafka client configurations, the CLI runner and small utilities.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

/// Path of the broker/CLI binary under test (built by Cargo before the tests).
pub const EDDY: &str = env!("CARGO_BIN_EXE_eddy");

/// How long the broker may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Generous per-operation timeout for client calls.
pub const OP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `eddy broker` child process on its own temporary data directory.
///
/// The child is killed (SIGKILL) when the guard is dropped; when the test is
/// panicking, the tail of the broker's log is printed to help diagnose it.
pub struct Broker {
    child: Option<Child>,
    data_dir: tempfile::TempDir,
    addr: String,
    extra_args: Vec<String>,
    log: Arc<Mutex<String>>,
}

impl Broker {
    /// Starts a broker with default settings.
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// Starts a broker with `--set key=value` for each of `settings`.
    pub fn start_with(settings: &[&str]) -> Broker {
        let mut extra_args = Vec::new();
        for s in settings {
            extra_args.push("--set".to_string());
            extra_args.push((*s).to_string());
        }
        let data_dir = tempfile::Builder::new()
            .prefix("eddy-e2e-")
            .tempdir()
            .expect("create temp data dir");
        let log = Arc::new(Mutex::new(String::new()));
        let mut broker = Broker {
            child: None,
            data_dir,
            addr: String::new(),
            extra_args,
            log,
        };
        broker.spawn("127.0.0.1:0");
        broker
    }

    fn spawn(&mut self, listen: &str) {
        let (child, addr) = self.try_spawn(listen).unwrap_or_else(|why| {
            panic!(
                "eddy broker did not become ready: {why}\n---- broker output ----\n{}",
                self.log_text()
            )
        });
        self.child = Some(child);
        self.addr = addr;
    }

    fn try_spawn(&self, listen: &str) -> Result<(Child, String), String> {
        // The ready line is logged at info level; EDDY_E2E_LOG=debug gives more.
        let log_level = std::env::var("EDDY_E2E_LOG").unwrap_or_else(|_| "info".to_string());
        let mut cmd = Command::new(EDDY);
        cmd.arg("broker")
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .args(&self.extra_args)
            .env("NO_COLOR", "1")
            .env("EDDY_LOG", &log_level)
            .env("RUST_LOG", &log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("spawn {EDDY}: {e}"))?;
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("child stdout");
        let stderr = child.stderr.take().expect("child stderr");
        spawn_log_reader(stderr, self.log.clone(), tx.clone());
        spawn_log_reader(stdout, self.log.clone(), tx);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no ready line within {READY_TIMEOUT:?}"));
            }
            match rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(addr) => return Ok((child, addr)),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        // Give the readers a moment to drain the last lines.
                        thread::sleep(Duration::from_millis(100));
                        return Err(format!("broker exited before ready with {status}"));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().map_err(|e| e.to_string())?;
                    return Err(format!("broker closed its output, exited with {status}"));
                }
            }
        }
    }

    /// `HOST:PORT` the broker listens on.
    pub fn bootstrap(&self) -> &str {
        &self.addr
    }

    /// The broker's data directory.
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Directory of one partition in Kafka's layout.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir.path().join(format!("{topic}-{partition}"))
    }

    /// Everything the broker printed so far (all incarnations).
    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// OS process id of the running broker.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker is not running").id()
    }

    /// True while the broker process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Panics (with the broker's log) unless the process is still running.
    pub fn assert_alive(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                panic!(
                    "broker died with {status}\n---- broker output ----\n{}",
                    self.log_text()
                );
            }
        } else {
            panic!("broker is not running");
        }
    }

    /// SIGKILL: the broker gets no chance to flush or clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("broker is not running");
        let pid = c.id() as libc::pid_t;
        // SAFETY: plain kill(2) on our own child's pid, which has not been reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "broker did not exit within 20 s of SIGTERM\n---- broker output ----\n{}",
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the broker again on the same data directory, on the same port
    /// when it is free (so existing clients can reconnect), else on a new one.
    /// Kills the current process first if it is still running.
    pub fn restart(&mut self) {
        self.kill();
        self.append_log("\n==== restart ====\n");
        let same = self.addr.clone();
        match self.try_spawn(&same) {
            Ok((child, addr)) => {
                self.child = Some(child);
                self.addr = addr;
            }
            Err(_) => self.spawn("127.0.0.1:0"),
        }
    }

    fn append_log(&self, s: &str) {
        if let Ok(mut l) = self.log.lock() {
            l.push_str(s);
        }
    }

    /// Base librdkafka configuration pointing at this broker.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap())
            .set("client.id", "eddy-e2e")
            .set("socket.timeout.ms", "10000")
            .set("reconnect.backoff.ms", "20")
            .set("reconnect.backoff.max.ms", "500")
            .set("log_level", "3");
        c
    }

    /// Producer configuration: acks=1, small linger, bounded delivery time.
    pub fn producer_config(&self) -> ClientConfig {
        let mut c = self.client_config();
        c.set("acks", "1")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "15000")
            .set("enable.idempotence", "false");
        c
    }

    /// Consumer configuration for manually assigned consumers (no group).
    pub fn consumer_config(&self) -> ClientConfig {
        let mut c = self.client_config();
        // The consumers are assigned partitions explicitly and never commit;
        // librdkafka still wants a group id for assign().
        c.set("group.id", "eddy-e2e")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "50")
            .set("check.crcs", "true");
        c
    }

    pub fn admin(&self) -> AdminClient<DefaultClientContext> {
        self.client_config().create().expect("create admin client")
    }

    pub fn consumer(&self) -> BaseConsumer {
        self.consumer_config().create().expect("create consumer")
    }

    /// Creates topics with replication factor 1 and panics on any error.
    pub fn create_topics(&self, topics: &[(&str, i32)]) {
        let admin = self.admin();
        let new: Vec<NewTopic> = topics
            .iter()
            .map(|(name, parts)| NewTopic::new(name, *parts, TopicReplication::Fixed(1)))
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(OP_TIMEOUT));
        let res = block_on(admin.create_topics(new.iter(), &opts)).expect("create_topics");
        for r in res {
            if let Err((name, code)) = r {
                panic!("creating topic {name:?} failed: {code:?}");
            }
        }
    }

    /// Partition count of `topic` as seen by a fresh metadata request, or
    /// `None` when the broker does not know the topic. Uses a consumer-type
    /// client so the request never auto-creates the topic.
    pub fn partition_count(&self, topic: &str) -> Option<usize> {
        let consumer = self.consumer();
        let md = consumer
            .fetch_metadata(None, OP_TIMEOUT)
            .expect("metadata for all topics");
        md.topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().len())
    }

    /// Names of all topics the broker lists.
    pub fn topic_names(&self) -> Vec<String> {
        let consumer = self.consumer();
        let md = consumer
            .fetch_metadata(None, OP_TIMEOUT)
            .expect("metadata for all topics");
        md.topics().iter().map(|t| t.name().to_string()).collect()
    }

    /// (low, high) watermarks of one partition.
    pub fn watermarks(&self, topic: &str, partition: i32) -> (i64, i64) {
        self.consumer()
            .fetch_watermarks(topic, partition, OP_TIMEOUT)
            .unwrap_or_else(|e| panic!("watermarks of {topic}/{partition}: {e}"))
    }

    /// Reads every record of the given partitions, from the low watermark up to
    /// the high watermark observed before reading starts.
    pub fn consume_all(&self, topic: &str, partitions: &[i32]) -> Vec<OwnedMessage> {
        let consumer = self.consumer();
        let mut remaining: HashMap<i32, i64> = HashMap::new();
        let mut tpl = TopicPartitionList::new();
        for &p in partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, OP_TIMEOUT)
                .unwrap_or_else(|e| panic!("watermarks of {topic}/{p}: {e}"));
            if high > low {
                remaining.insert(p, high);
            }
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("add partition");
        }
        consumer.assign(&tpl).expect("assign");
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !remaining.is_empty() {
            if Instant::now() > deadline {
                panic!(
                    "timed out consuming {topic}: still waiting for {remaining:?}, got {} records\n---- broker output ----\n{}",
                    out.len(),
                    self.log_text()
                );
            }
            match consumer.poll(Duration::from_millis(200)) {
                None => {}
                Some(Err(e)) => panic!("consumer error on {topic}: {e}"),
                Some(Ok(m)) => {
                    let p = m.partition();
                    if let Some(&high) = remaining.get(&p) {
                        if m.offset() + 1 >= high {
                            remaining.remove(&p);
                        }
                    }
                    out.push(m.detach());
                }
            }
        }
        out
    }

    /// Records of `consume_all` grouped per partition, in offset order.
    pub fn consume_by_partition(
        &self,
        topic: &str,
        partitions: &[i32],
    ) -> BTreeMap<i32, Vec<OwnedMessage>> {
        let mut map: BTreeMap<i32, Vec<OwnedMessage>> = BTreeMap::new();
        for m in self.consume_all(topic, partitions) {
            map.entry(m.partition()).or_default().push(m);
        }
        map
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("---- last broker output ({}) ----", self.addr);
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn spawn_log_reader<R: Read + Send + 'static>(
    stream: R,
    log: Arc<Mutex<String>>,
    ready: mpsc::Sender<String>,
) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = strip_ansi(&String::from_utf8_lossy(&buf));
                    if let Some(addr) = parse_ready_line(&line) {
                        let _ = ready.send(addr);
                    }
                    if let Ok(mut l) = log.lock() {
                        // Keep memory bounded for chatty brokers.
                        if l.len() > 4 << 20 {
                            let cut = l.len() - (2 << 20);
                            let cut = (cut..l.len())
                                .find(|&i| l.is_char_boundary(i))
                                .unwrap_or(l.len());
                            l.drain(..cut);
                        }
                        l.push_str(&line);
                        if !line.ends_with('\n') {
                            l.push('\n');
                        }
                    }
                }
            }
        }
    });
}

/// Removes ANSI escape sequences (colours) from a log line.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c2 in chars.by_ref() {
                    if c2.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Extracts `HOST:PORT` from a line containing `eddy broker ready on HOST:PORT`.
pub fn parse_ready_line(line: &str) -> Option<String> {
    const MARK: &str = "eddy broker ready on";
    let idx = line.find(MARK)?;
    let rest = line[idx + MARK.len()..].trim_start_matches(|c: char| c.is_whitespace() || c == '"');
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']' | '-'))
        .collect();
    let port = addr.rsplit(':').next()?;
    if port.parse::<u16>().ok()? == 0 {
        return None;
    }
    Some(addr)
}

/// Runs the `eddy` binary with `args`, feeding `stdin`, with a 60 s limit.
/// Returns (exit status, stdout, stderr).
pub fn run_cli(args: &[&str], stdin: &str) -> (ExitStatus, String, String) {
    let mut child = Command::new(EDDY)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {EDDY}: {e}"));
    let mut sin = child.stdin.take().expect("stdin");
    let input = stdin.as_bytes().to_vec();
    let writer = thread::spawn(move || {
        let _ = sin.write_all(&input);
        // Dropping closes stdin.
    });
    let mut sout = child.stdout.take().expect("stdout");
    let mut serr = child.stderr.take().expect("stderr");
    let out_reader = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = sout.read_to_end(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = serr.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for eddy") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let out = out_reader.join().unwrap_or_default();
            let err = err_reader.join().unwrap_or_default();
            panic!(
                "`eddy {}` did not finish within 60 s\nstdout: {}\nstderr: {}",
                args.join(" "),
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    (
        status,
        String::from_utf8_lossy(&out).into_owned(),
        strip_ansi(&String::from_utf8_lossy(&err)),
    )
}

/// Runs a future to completion on a small current-thread Tokio runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Headers of a message as an ordered list of (key, value) with null values kept.
pub fn headers_of<M: Message>(m: &M) -> Vec<(String, Option<Vec<u8>>)> {
    match m.headers() {
        None => Vec::new(),
        Some(h) => h
            .iter()
            .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
            .collect(),
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), for payloads and garbage.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// Kafka's request framing over a raw socket.
pub struct RawConn {
    pub stream: TcpStream,
}

impl RawConn {
    pub fn connect(addr: &str) -> RawConn {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        stream.set_nodelay(true).expect("nodelay");
        RawConn { stream }
    }

    /// Sends one size-prefixed frame.
    pub fn send_frame(&mut self, body: &[u8]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(body.len() + 4);
        buf.extend_from_slice(&(body.len() as i32).to_be_bytes());
        buf.extend_from_slice(body);
        self.stream.write_all(&buf)
    }

    /// Reads one size-prefixed response frame; `None` when the broker closed
    /// the connection (or reset it) instead of answering.
    pub fn read_frame(&mut self) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).ok()?;
        let n = i32::from_be_bytes(len);
        assert!(
            (0..=64 << 20).contains(&n),
            "broker sent an implausible frame size {n}"
        );
        let mut body = vec![0u8; n as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(body)
    }

    /// True when the broker closes the connection (EOF or reset) within `timeout`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        self.stream
            .set_read_timeout(Some(timeout))
            .expect("read timeout");
        let mut sink = [0u8; 4096];
        let deadline = Instant::now() + timeout;
        loop {
            match self.stream.read(&mut sink) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return false
                }
                Err(_) => return true,
            }
            if Instant::now() > deadline {
                return false;
            }
        }
    }
}

/// Request header v1: api_key, api_version, correlation_id, client_id.
pub fn request_header_v1(api_key: i16, api_version: i16, correlation_id: i32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&api_key.to_be_bytes());
    b.extend_from_slice(&api_version.to_be_bytes());
    b.extend_from_slice(&correlation_id.to_be_bytes());
    let client = b"e2e-raw";
    b.extend_from_slice(&(client.len() as i16).to_be_bytes());
    b.extend_from_slice(client);
    b
}

/// ApiVersions v0 request frame body.
pub fn api_versions_v0(correlation_id: i32) -> Vec<u8> {
    request_header_v1(18, 0, correlation_id)
}

/// Parses an ApiVersions v0-format response body (after the size prefix):
/// (correlation id, error code, [(api key, min, max)]).
pub fn parse_api_versions_v0(body: &[u8]) -> (i32, i16, Vec<(i16, i16, i16)>) {
    assert!(body.len() >= 10, "ApiVersions response too short: {body:?}");
    let corr = i32::from_be_bytes(body[0..4].try_into().unwrap());
    let err = i16::from_be_bytes(body[4..6].try_into().unwrap());
    let n = i32::from_be_bytes(body[6..10].try_into().unwrap());
    assert!(n >= 0, "negative api array length {n}");
    let mut keys = Vec::new();
    let mut pos = 10;
    for _ in 0..n {
        assert!(body.len() >= pos + 6, "truncated ApiVersions array");
        let k = i16::from_be_bytes(body[pos..pos + 2].try_into().unwrap());
        let lo = i16::from_be_bytes(body[pos + 2..pos + 4].try_into().unwrap());
        let hi = i16::from_be_bytes(body[pos + 4..pos + 6].try_into().unwrap());
        keys.push((k, lo, hi));
        pos += 6;
    }
    (corr, err, keys)
}

/// CRC-32C (Castagnoli), as used by Kafka record batches.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82F6_3B78 & mask);
        }
    }
    !crc
}

/// Walks a Kafka segment file: returns (start position, total length) of every
/// complete record batch, stopping at the first incomplete or zero-length one.
pub fn segment_batches(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 12 <= data.len() {
        let len = i32::from_be_bytes(data[pos + 8..pos + 12].try_into().unwrap());
        if len <= 0 {
            break;
        }
        let total = 12 + len as usize;
        if pos + total > data.len() {
            break;
        }
        out.push((pos, total));
        pos += total;
    }
    out
}

#[test]
fn ready_line_parsing() {
    let plain = "2026-11-23T00:00:00.000Z  INFO eddy::broker: eddy broker ready on 127.0.0.1:40123";
    assert_eq!(parse_ready_line(plain).as_deref(), Some("127.0.0.1:40123"));
    let coloured = "\u{1b}[32m INFO\u{1b}[0m eddy broker ready on 127.0.0.1:9093 node_id=1\n";
    assert_eq!(
        parse_ready_line(&strip_ansi(coloured)).as_deref(),
        Some("127.0.0.1:9093")
    );
    assert_eq!(
        parse_ready_line("eddy broker ready on [::1]:7000").as_deref(),
        Some("[::1]:7000")
    );
    assert_eq!(parse_ready_line("eddy broker ready on 127.0.0.1:0"), None);
    assert_eq!(parse_ready_line("listening on 127.0.0.1:9092"), None);
}

#[test]
fn helper_self_checks() {
    // The standard CRC-32C check value.
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    // Two batches (12-byte header + body), then a torn third one.
    let mut seg = Vec::new();
    for (base, body) in [(0i64, 20usize), (1, 7)] {
        seg.extend_from_slice(&base.to_be_bytes());
        seg.extend_from_slice(&(body as i32).to_be_bytes());
        seg.extend_from_slice(&vec![7u8; body]);
    }
    seg.extend_from_slice(&2i64.to_be_bytes());
    seg.extend_from_slice(&100i32.to_be_bytes());
    seg.extend_from_slice(&[1, 2, 3]);
    assert_eq!(segment_batches(&seg), vec![(0, 32), (32, 19)]);
}

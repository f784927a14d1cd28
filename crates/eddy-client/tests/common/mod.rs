//! A real `eddy broker` process for the integration tests, and helpers to
//! run the `eddy` CLI.
//!
//! The binary is `target/<profile>/eddy`, found from the test executable's
//! path (`target/<profile>/deps/<test>`); if it is missing it is built with
//! `cargo build -p eddy` (`cargo test --workspace` builds it anyway).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use eddy_client::{
    AdminClient, CommonConfig, Consumer, ConsumerConfig, ConsumerRecord, ProducerConfig,
};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Path of the `eddy` binary, building it once if needed.
pub fn eddy_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        // target/<profile>/deps/<test-binary>
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("test binary is in target/<profile>/deps")
            .to_path_buf();
        let bin = profile_dir.join(format!("eddy{}", std::env::consts::EXE_SUFFIX));
        if !bin.exists() || sources_newer_than(&bin) {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
            let status = Command::new(cargo)
                .args(["build", "-p", "eddy", "--bin", "eddy"])
                .status()
                .expect("run cargo build -p eddy");
            // A broken work tree elsewhere: fall back to the binary there is.
            if !status.success() {
                assert!(bin.exists(), "cargo build -p eddy failed");
                eprintln!(
                    "warning: cargo build -p eddy failed; testing the existing {}",
                    bin.display()
                );
            }
        }
        assert!(bin.exists(), "{} not found", bin.display());
        bin
    })
    .clone()
}

/// Whether a source file of the binary's crates changed after it was built
/// (`cargo test -p eddy-client` does not rebuild the `eddy` binary).
fn sources_newer_than(bin: &std::path::Path) -> bool {
    let Ok(built) = bin.metadata().and_then(|m| m.modified()) else {
        return true;
    };
    let crates = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut stack: Vec<PathBuf> = [
        "eddy",
        "eddy-client",
        "eddy-broker",
        "eddy-log",
        "eddy-meta",
        "eddy-protocol",
    ]
    .iter()
    .map(|c| crates.join(c).join("src"))
    .collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t > built)
            {
                return true;
            }
        }
    }
    false
}

/// A broker on 127.0.0.1 (port chosen by the OS) with its own data dir;
/// killed on drop. Its output is kept and printed if the test fails. It can
/// be stopped (SIGKILL or SIGTERM) and restarted on the same data dir and port.
pub struct Broker {
    child: Option<Child>,
    addr: String,
    settings: Vec<String>,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        Self::start_with(&[])
    }

    /// Starts a broker with `--set KEY=VALUE` for each setting.
    pub fn start_with(settings: &[&str]) -> Broker {
        let dir = tempfile::Builder::new()
            .prefix("eddy-client-it-")
            .tempdir()
            .expect("tempdir");
        let mut broker = Broker {
            child: None,
            addr: String::new(),
            settings: settings.iter().map(|s| s.to_string()).collect(),
            log: Arc::new(Mutex::new(String::new())),
            _dir: dir,
        };
        let (child, addr) = broker
            .spawn("127.0.0.1:0")
            .unwrap_or_else(|why| panic!("{why}:\n{}", broker.log_text()));
        broker.child = Some(child);
        broker.addr = addr;
        broker
    }

    fn spawn(&self, listen: &str) -> Result<(Child, String), String> {
        let mut cmd = Command::new(eddy_bin());
        cmd.arg("broker")
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(self._dir.path());
        for s in &self.settings {
            cmd.arg("--set").arg(s);
        }
        let mut child = cmd
            .env("NO_COLOR", "1")
            .env("EDDY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn eddy broker");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        read_lines(out, self.log.clone(), tx.clone());
        read_lines(err, self.log.clone(), tx);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(addr) => return Ok((child, addr)),
                Err(_) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err("broker not ready in time".to_string());
                }
                Err(_) => {
                    if let Ok(Some(st)) = child.try_wait() {
                        thread::sleep(Duration::from_millis(100));
                        return Err(format!("broker exited with {st} before ready"));
                    }
                }
            }
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Everything the broker printed so far (all incarnations).
    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// SIGKILL: the broker gets no chance to flush or clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and waits (up to 20 s) for the broker to exit; returns its status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("broker is not running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {} failed", c.id());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "broker did not exit within 20 s of SIGTERM:\n{}",
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the broker again (killing it first if it still runs) on the
    /// same data dir and the same port, so that clients reconnect to it.
    pub fn restart(&mut self) {
        self.kill();
        if let Ok(mut l) = self.log.lock() {
            l.push_str("\n==== restart ====\n");
        }
        let addr = self.addr.clone();
        // The port was just released; binding it again can briefly fail.
        let deadline = Instant::now() + Duration::from_secs(20);
        let (child, new_addr) = loop {
            match self.spawn(&addr) {
                Ok(r) => break r,
                Err(why) if Instant::now() > deadline => {
                    panic!("restart on {addr} failed: {why}:\n{}", self.log_text())
                }
                Err(_) => thread::sleep(Duration::from_millis(100)),
            }
        };
        assert_eq!(new_addr, addr, "restarted on another address");
        self.child = Some(child);
    }

    /// The broker's data directory (`<topic>-<partition>/` per partition).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn common(&self) -> CommonConfig {
        let mut c = CommonConfig::new(&self.addr);
        c.request_timeout = Duration::from_secs(15);
        c
    }

    pub fn admin(&self) -> AdminClient {
        AdminClient::new(self.common()).expect("admin client")
    }

    pub fn producer_config(&self) -> ProducerConfig {
        ProducerConfig::with_common(self.common())
    }

    pub fn consumer_config(&self) -> ConsumerConfig {
        let mut c = ConsumerConfig::with_common(self.common());
        c.fetch_max_wait = Duration::from_millis(100);
        c
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- broker {} output (last lines) ----", self.addr);
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

fn read_lines<R: Read + Send + 'static>(
    r: R,
    log: Arc<Mutex<String>>,
    ready: mpsc::Sender<String>,
) {
    thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if let Some(addr) = ready_addr(&line) {
                        let _ = ready.send(addr);
                    }
                    if let Ok(mut l) = log.lock() {
                        if l.len() < (8 << 20) {
                            l.push_str(&line);
                        }
                    }
                }
            }
        }
    });
}

/// `HOST:PORT` from a line containing `eddy broker ready on HOST:PORT`.
fn ready_addr(line: &str) -> Option<String> {
    let rest = line.split("eddy broker ready on").nth(1)?.trim_start();
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    let port: u16 = addr.rsplit(':').next()?.parse().ok()?;
    (port != 0).then_some(addr)
}

/// Runs `eddy ARGS --bootstrap ADDR` with `stdin`; returns (status, stdout, stderr).
pub fn cli(broker: &Broker, args: &[&str], stdin: &[u8]) -> (ExitStatus, Vec<u8>, String) {
    let mut full = args.to_vec();
    full.extend(["--bootstrap", broker.addr()]);
    cli_raw(&full, stdin)
}

/// Runs `eddy ARGS` with `stdin`; returns (status, stdout, stderr).
pub fn cli_raw(args: &[&str], stdin: &[u8]) -> (ExitStatus, Vec<u8>, String) {
    let mut child = Command::new(eddy_bin())
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("EDDY_BOOTSTRAP")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn eddy");
    let mut sin = child.stdin.take().expect("stdin");
    let input = stdin.to_vec();
    let writer = thread::spawn(move || {
        let _ = sin.write_all(&input);
    });
    let mut sout = child.stdout.take().expect("stdout");
    let mut serr = child.stderr.take().expect("stderr");
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = sout.read_to_end(&mut v);
        v
    });
    let err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = serr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("eddy {args:?} did not finish within 60 s");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    let out = out.join().unwrap_or_default();
    let err = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    (status, out, err)
}

/// Polls until `n` records arrived (panics after 30 s, or if more arrive).
pub async fn poll_n(consumer: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} records arrived",
            out.len()
        );
        out.extend(
            consumer
                .poll(Duration::from_millis(200))
                .await
                .expect("poll"),
        );
    }
    assert_eq!(out.len(), n, "more records than expected");
    out
}

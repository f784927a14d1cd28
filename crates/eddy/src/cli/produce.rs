//! `eddy produce TOPIC`: one record per line of stdin.

use std::collections::VecDeque;
use std::process::ExitCode;

use bytes::Bytes;
use clap::Args;
use eddy_client::{Acks, Cluster, Compression, DeliveryFuture, Header, Producer, ProducerRecord};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{parse_kv, unescape, CliError, ConnArgs};

/// Records awaiting acknowledgement before reading more input.
const MAX_IN_FLIGHT: usize = 50_000;

#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// Topic to produce to.
    topic: String,
    /// Split each line into KEY<separator>VALUE at the first separator.
    #[arg(long)]
    parse_key: bool,
    /// Key separator for --parse-key (escapes like \t are understood).
    #[arg(long, default_value = ":")]
    key_separator: String,
    /// A header KEY=VALUE added to every record (repeatable; KEY alone for a null value).
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Partition to write to (default: by key, or sticky for records without key).
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// Acknowledgements: 0, 1 or all (-1).
    #[arg(long, default_value = "all", allow_hyphen_values = true)]
    acks: String,
    /// Compression: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// linger.ms: how long to wait for more records before sending a batch.
    #[arg(long)]
    linger_ms: Option<u64>,
    #[command(flatten)]
    conn: ConnArgs,
}

/// How each stdin line becomes a record.
struct LineFormat {
    separator: Option<Vec<u8>>,
    headers: Vec<Header>,
    partition: Option<i32>,
}

impl LineFormat {
    fn record(&self, topic: &str, line: &[u8], line_no: u64) -> Result<ProducerRecord, CliError> {
        let (key, value) = match &self.separator {
            None => (None, line),
            Some(sep) => match find(line, sep) {
                Some(i) => (Some(&line[..i]), &line[i + sep.len()..]),
                None => {
                    return Err(CliError::Usage(format!(
                        "line {line_no} has no key separator '{}'",
                        String::from_utf8_lossy(sep).escape_default()
                    )))
                }
            },
        };
        Ok(ProducerRecord {
            topic: topic.to_string(),
            partition: self.partition,
            key: key.map(Bytes::copy_from_slice),
            value: Some(Bytes::copy_from_slice(value)),
            headers: self.headers.clone(),
            timestamp: None,
        })
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Strips the line terminator (`\n` or `\r\n`).
fn strip_newline(mut line: &[u8]) -> &[u8] {
    if let Some(l) = line.strip_suffix(b"\n") {
        line = l;
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
    }
    line
}

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    first_error: Option<String>,
}

impl Tally {
    fn fail(&mut self, e: &dyn std::fmt::Display) {
        self.failed += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }

    async fn settle(&mut self, f: DeliveryFuture) {
        match f.await {
            Ok(_) => self.ok += 1,
            Err(e) => self.fail(&e),
        }
    }
}

pub async fn run(a: ProduceArgs) -> Result<ExitCode, CliError> {
    let mut cfg = a.conn.producer()?;
    cfg.acks = a
        .acks
        .parse::<Acks>()
        .map_err(|e| CliError::Usage(format!("--acks {}: {e}", a.acks)))?;
    cfg.compression = a.compression.parse::<Compression>().map_err(|_| {
        CliError::Usage(format!(
            "--compression {}: expected none, gzip, snappy, lz4 or zstd",
            a.compression
        ))
    })?;
    if let Some(ms) = a.linger_ms {
        cfg.linger = std::time::Duration::from_millis(ms);
    }
    let mut headers = Vec::new();
    for h in &a.headers {
        let header = match h.split_once('=') {
            Some(_) => {
                let (k, v) = parse_kv(h, "--header")?;
                Header {
                    key: k,
                    value: Some(Bytes::from(v)),
                }
            }
            None if !h.trim().is_empty() => Header {
                key: h.trim().to_string(),
                value: None,
            },
            None => return Err(CliError::Usage("empty --header".to_string())),
        };
        headers.push(header);
    }
    let format = LineFormat {
        separator: a.parse_key.then(|| unescape(&a.key_separator).into_bytes()),
        headers,
        partition: a.partition,
    };
    if format.separator.as_ref().is_some_and(|s| s.is_empty()) {
        return Err(CliError::Usage(
            "--key-separator must not be empty".to_string(),
        ));
    }
    // Fail fast (rather than retry until delivery.timeout.ms) if no broker answers.
    let cluster = Cluster::new(cfg.common.clone())?;
    cluster.any_connection().await?;
    let producer = Producer::with_cluster(cfg, cluster)?;
    let mut tally = Tally::default();
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::new();
    let mut stdin = BufReader::with_capacity(256 * 1024, tokio::io::stdin());
    let mut line = Vec::new();
    let mut line_no = 0u64;
    loop {
        line.clear();
        let n = stdin
            .read_until(b'\n', &mut line)
            .await
            .map_err(|source| CliError::Io {
                context: "cannot read stdin",
                source,
            })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        match format.record(&a.topic, strip_newline(&line), line_no) {
            Ok(r) => pending.push_back(producer.send(r).await?),
            Err(e) => tally.fail(&e),
        }
        while pending.len() >= MAX_IN_FLIGHT {
            if let Some(f) = pending.pop_front() {
                tally.settle(f).await;
            }
        }
        // Count what is already delivered without waiting.
        while let Some(r) = pending.front_mut().and_then(DeliveryFuture::try_result) {
            pending.pop_front();
            match r {
                Ok(_) => tally.ok += 1,
                Err(e) => tally.fail(&e),
            }
        }
    }
    producer.flush().await;
    for f in pending {
        tally.settle(f).await;
    }
    finish(&tally)
}

fn finish(t: &Tally) -> Result<ExitCode, CliError> {
    let records = |n: u64| if n == 1 { "record" } else { "records" };
    if t.failed == 0 {
        eprintln!("produced {} {}", t.ok, records(t.ok));
        return Ok(ExitCode::SUCCESS);
    }
    Err(CliError::Usage(format!(
        "produced {} {}, {} failed: {}",
        t.ok,
        records(t.ok),
        t.failed,
        t.first_error.as_deref().unwrap_or("unknown error")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(sep: Option<&str>) -> LineFormat {
        LineFormat {
            separator: sep.map(|s| s.as_bytes().to_vec()),
            headers: vec![],
            partition: None,
        }
    }

    #[test]
    fn lines_become_records() {
        let r = fmt(Some(":")).record("t", b"k1:hello:again", 1).unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(r.value.as_deref(), Some(&b"hello:again"[..]));
        let r = fmt(None).record("t", b"a:b", 1).unwrap();
        assert_eq!(r.key, None);
        assert_eq!(r.value.as_deref(), Some(&b"a:b"[..]));
        let r = fmt(Some("||")).record("t", b"k||", 1).unwrap();
        assert_eq!(
            (r.key.as_deref(), r.value.as_deref()),
            (Some(&b"k"[..]), Some(&b""[..]))
        );
        let e = fmt(Some(":")).record("t", b"nokey", 7).unwrap_err();
        assert_eq!(e.to_string(), "line 7 has no key separator ':'");
    }

    #[test]
    fn newline_stripping() {
        assert_eq!(strip_newline(b"a\n"), b"a");
        assert_eq!(strip_newline(b"a\r\n"), b"a");
        assert_eq!(strip_newline(b"a"), b"a");
        assert_eq!(strip_newline(b"a\r"), b"a\r");
        assert_eq!(strip_newline(b"\n"), b"");
    }

    #[test]
    fn summary() {
        let t = Tally {
            ok: 3,
            failed: 0,
            first_error: None,
        };
        assert!(finish(&t).is_ok());
        let t = Tally {
            ok: 1,
            failed: 2,
            first_error: Some("boom".into()),
        };
        assert_eq!(
            finish(&t).unwrap_err().to_string(),
            "produced 1 record, 2 failed: boom"
        );
    }
}

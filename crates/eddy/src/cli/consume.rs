//! `eddy consume TOPIC`: records to stdout, one per line.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use eddy_client::{AutoOffsetReset, Cluster, Consumer, ConsumerRecord, StartOffset};

use super::{unescape, CliError, ConnArgs};

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// Topic to consume.
    topic: String,
    /// Start at the beginning of each partition (default: the end).
    #[arg(long, conflicts_with_all = ["offset", "from_timestamp"])]
    from_beginning: bool,
    /// Start at this offset (in each consumed partition).
    #[arg(long, conflicts_with = "from_timestamp")]
    offset: Option<i64>,
    /// Start at the first record at or after this time (ms since the epoch).
    #[arg(long)]
    from_timestamp: Option<i64>,
    /// Consume only this partition (default: all).
    #[arg(long, short = 'p', conflicts_with = "group")]
    partition: Option<i32>,
    /// Join this consumer group (`group.protocol` classic by default; set
    /// `group.protocol=consumer` for KIP-848): partitions are assigned by the
    /// group, each starts at the group's committed offset (else per
    /// --from-beginning, or the end), and the offsets of printed records are
    /// committed every second and on exit.
    #[arg(long, short = 'g', conflicts_with_all = ["offset", "from_timestamp"])]
    group: Option<String>,
    /// Print the key before the value ("null" for none).
    #[arg(long)]
    print_key: bool,
    /// Print "offset:N".
    #[arg(long)]
    print_offset: bool,
    /// Print "timestamp:MS" (CreateTime or LogAppendTime).
    #[arg(long)]
    print_timestamp: bool,
    /// Print "partition:N".
    #[arg(long)]
    print_partition: bool,
    /// Print "headers:k1=v1,k2=v2".
    #[arg(long)]
    print_headers: bool,
    /// Separator between the printed fields (escapes like \t are understood).
    #[arg(long, default_value = "\\t")]
    key_separator: String,
    /// Exit after this many records.
    #[arg(long, short = 'n')]
    max_messages: Option<u64>,
    /// Exit when no record arrives for this long (ms).
    #[arg(long)]
    timeout_ms: Option<u64>,
    #[command(flatten)]
    conn: ConnArgs,
}

/// What to print for each record.
#[derive(Debug, Clone)]
struct Format {
    separator: Vec<u8>,
    timestamp: bool,
    partition: bool,
    offset: bool,
    headers: bool,
    key: bool,
}

impl Format {
    /// `[timestamp:T] [partition:P] [offset:O] [headers:H] [KEY] VALUE\n`, fields
    /// joined by the separator; invalid UTF-8 is replaced (U+FFFD).
    fn write(&self, out: &mut Vec<u8>, r: &ConsumerRecord) {
        let sep = &self.separator;
        if self.timestamp {
            out.extend_from_slice(format!("timestamp:{}", r.timestamp).as_bytes());
            out.extend_from_slice(sep);
        }
        if self.partition {
            out.extend_from_slice(format!("partition:{}", r.partition).as_bytes());
            out.extend_from_slice(sep);
        }
        if self.offset {
            out.extend_from_slice(format!("offset:{}", r.offset).as_bytes());
            out.extend_from_slice(sep);
        }
        if self.headers {
            out.extend_from_slice(b"headers:");
            for (i, h) in r.headers.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(h.key.as_bytes());
                if let Some(v) = &h.value {
                    out.push(b'=');
                    lossy(out, v);
                }
            }
            out.extend_from_slice(sep);
        }
        if self.key {
            lossy(out, r.key.as_deref().unwrap_or(b"null"));
            out.extend_from_slice(sep);
        }
        lossy(out, r.value.as_deref().unwrap_or(b"null"));
        out.push(b'\n');
    }
}

fn lossy(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(String::from_utf8_lossy(b).as_bytes());
}

pub async fn run(a: ConsumeArgs) -> Result<ExitCode, CliError> {
    let start = if a.from_beginning {
        StartOffset::Earliest
    } else if let Some(o) = a.offset {
        if o < 0 {
            return Err(CliError::Usage(format!(
                "--offset {o} must not be negative"
            )));
        }
        StartOffset::Offset(o)
    } else if let Some(t) = a.from_timestamp {
        StartOffset::Timestamp(t)
    } else {
        StartOffset::Latest
    };
    let format = Format {
        separator: unescape(&a.key_separator).into_bytes(),
        timestamp: a.print_timestamp,
        partition: a.print_partition,
        offset: a.print_offset,
        headers: a.print_headers,
        key: a.print_key,
    };
    let mut cfg = a.conn.consumer()?;
    // Fail fast (rather than retry) if no broker answers.
    let cluster = Cluster::new(cfg.common.clone())?;
    cluster.any_connection().await?;
    if let Some(group) = &a.group {
        cfg.auto_offset_reset = if a.from_beginning {
            AutoOffsetReset::Earliest
        } else {
            AutoOffsetReset::Latest
        };
        cfg.group_id = Some(group.clone());
        cfg.enable_auto_commit = true;
        cfg.auto_commit_interval = Duration::from_secs(1);
        let mut consumer = Consumer::with_cluster(cfg, cluster);
        consumer.subscribe([a.topic.clone()])?;
        return run_group(&a, &format, consumer).await;
    }
    let mut consumer = Consumer::with_cluster(cfg, cluster);
    match a.partition {
        Some(p) => {
            let info = consumer
                .cluster()
                .topic_with_leaders(&a.topic, false, Duration::from_secs(10))
                .await?;
            if info.partition(p).is_none() {
                return Err(CliError::Usage(format!(
                    "topic '{}' has no partition {p} (it has {})",
                    a.topic,
                    info.partitions.len()
                )));
            }
            consumer.assign(vec![(a.topic.clone(), p, start)]).await?;
        }
        None => consumer.assign_topic(&a.topic, start).await?,
    }
    let idle_limit = a.timeout_ms.map(Duration::from_millis);
    let mut consumed = 0u64;
    let mut last_record = Instant::now();
    let mut stdout = std::io::stdout().lock();
    let mut buf = Vec::with_capacity(64 * 1024);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    'outer: loop {
        if a.max_messages.is_some_and(|m| consumed >= m) {
            break;
        }
        let wait = match idle_limit {
            Some(limit) => {
                let left = limit.saturating_sub(last_record.elapsed());
                if left.is_zero() {
                    break;
                }
                left.min(Duration::from_secs(1))
            }
            None => Duration::from_secs(1),
        };
        let records = tokio::select! {
            r = consumer.poll(wait) => r?,
            _ = &mut ctrl_c => break,
        };
        if records.is_empty() {
            continue;
        }
        last_record = Instant::now();
        buf.clear();
        for r in &records {
            if a.max_messages.is_some_and(|m| consumed >= m) {
                break;
            }
            format.write(&mut buf, r);
            consumed += 1;
        }
        if let Err(e) = stdout.write_all(&buf).and_then(|()| stdout.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                // The reader went away (e.g. `| head`): stop quietly.
                break 'outer;
            }
            return Err(CliError::Io {
                context: "cannot write to stdout",
                source: e,
            });
        }
    }
    let _ = stdout.flush();
    eprintln!(
        "consumed {consumed} {}",
        if consumed == 1 { "record" } else { "records" }
    );
    Ok(ExitCode::SUCCESS)
}

/// The first record of each partition in `records`.
pub(crate) fn first_per_partition(records: &[ConsumerRecord]) -> Vec<&ConsumerRecord> {
    let mut firsts: Vec<&ConsumerRecord> = Vec::new();
    for r in records {
        if !firsts
            .iter()
            .any(|f| f.topic == r.topic && f.partition == r.partition)
        {
            firsts.push(r);
        }
    }
    firsts
}

/// The loop of `consume --group`: like the plain one, but only the records
/// printed count as consumed (and get committed), and the member leaves the
/// group on exit.
async fn run_group(
    a: &ConsumeArgs,
    format: &Format,
    mut consumer: Consumer,
) -> Result<ExitCode, CliError> {
    let idle_limit = a.timeout_ms.map(Duration::from_millis);
    let mut consumed = 0u64;
    let mut last_record = Instant::now();
    // The idle clock starts once the group assigned partitions (a classic
    // join takes group.initial.rebalance.delay.ms), or after JOIN_GRACE.
    const JOIN_GRACE: Duration = Duration::from_secs(30);
    let started = Instant::now();
    let mut assigned_once = false;
    let mut buf = Vec::with_capacity(64 * 1024);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let result: Result<(), CliError> = async {
        let mut stdout = std::io::stdout().lock();
        loop {
            let left = a.max_messages.map(|m| m.saturating_sub(consumed));
            if left == Some(0) {
                return Ok(());
            }
            let wait = match idle_limit {
                Some(limit) => {
                    let left = limit.saturating_sub(last_record.elapsed());
                    if left.is_zero() {
                        return Ok(());
                    }
                    left.min(Duration::from_secs(1))
                }
                None => Duration::from_secs(1),
            };
            let mut records = tokio::select! {
                r = consumer.poll(wait) => r?,
                _ = &mut ctrl_c => return Ok(()),
            };
            if !assigned_once {
                assigned_once = !consumer.assignment().is_empty();
                if assigned_once || started.elapsed() < JOIN_GRACE {
                    last_record = Instant::now();
                }
            }
            if records.is_empty() {
                continue;
            }
            if let Some(left) = left.map(|l| usize::try_from(l).unwrap_or(usize::MAX)) {
                if records.len() > left {
                    // Only printed records count as consumed: move back to
                    // the first record not printed, so it is not committed.
                    let dropped = records.split_off(left);
                    for r in first_per_partition(&dropped) {
                        consumer
                            .seek(&r.topic, r.partition, StartOffset::Offset(r.offset))
                            .await?;
                    }
                }
            }
            last_record = Instant::now();
            buf.clear();
            for r in &records {
                format.write(&mut buf, r);
                consumed += 1;
            }
            if let Err(e) = stdout.write_all(&buf).and_then(|()| stdout.flush()) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(CliError::Io {
                    context: "cannot write to stdout",
                    source: e,
                });
            }
        }
    }
    .await;
    // Commit what was printed and leave the group, even after an error.
    let closed = consumer.close().await;
    result?;
    closed?;
    eprintln!(
        "consumed {consumed} {}",
        if consumed == 1 { "record" } else { "records" }
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use eddy_client::{Header, TimestampType};

    fn record() -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 5,
            timestamp: 1700000000000,
            timestamp_type: TimestampType::CreateTime,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v\xffalue")),
            headers: vec![
                Header {
                    key: "a".into(),
                    value: Some(Bytes::from_static(b"1")),
                },
                Header {
                    key: "b".into(),
                    value: None,
                },
            ],
        }
    }

    fn line(f: &Format, r: &ConsumerRecord) -> Vec<u8> {
        let mut out = Vec::new();
        f.write(&mut out, r);
        out
    }

    #[test]
    fn record_lines() {
        let mut f = Format {
            separator: b"\t".to_vec(),
            timestamp: false,
            partition: false,
            offset: false,
            headers: false,
            key: false,
        };
        assert_eq!(line(&f, &record()), "v\u{fffd}alue\n".as_bytes());
        f.offset = true;
        f.key = true;
        assert_eq!(
            line(&f, &record()),
            "offset:5\tk\tv\u{fffd}alue\n".as_bytes()
        );
        f.timestamp = true;
        f.partition = true;
        f.headers = true;
        f.separator = b" | ".to_vec();
        assert_eq!(
            line(&f, &record()),
            "timestamp:1700000000000 | partition:2 | offset:5 | headers:a=1,b | k | v\u{fffd}alue\n"
                .as_bytes()
        );
        let mut r = record();
        r.key = None;
        r.value = None;
        f = Format {
            separator: b"\t".to_vec(),
            timestamp: false,
            partition: false,
            offset: false,
            headers: false,
            key: true,
        };
        assert_eq!(line(&f, &r), b"null\tnull\n");
    }
}

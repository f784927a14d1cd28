//! `eddy perf produce|consume` against a real broker: the output formats of
//! Kafka's perf tools, the records really written, and the throttle.

mod common;

use std::time::{Duration, Instant};

use eddy_client::OffsetSpec;

use common::{cli, Broker};

fn run_ok(broker: &Broker, args: &[&str]) -> String {
    let (status, out, err) = cli(broker, args, b"");
    assert!(status.success(), "eddy {args:?} failed: {err}");
    String::from_utf8(out).expect("utf-8 output")
}

fn end_offset(broker: &Broker, topic: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let admin = broker.admin();
        let res = admin
            .list_offsets(&[(topic.to_string(), 0, OffsetSpec::Latest)])
            .await
            .expect("list offsets");
        res[0].as_ref().expect("partition 0 offset").offset
    })
}

/// Checks kafka-producer-perf-test's final line
/// (`^\d+ records sent, [\d.]+ records/sec \([\d.]+ MB/sec\), [\d.]+ ms avg latency,
/// [\d.]+ ms max latency, \d+ ms 50th, \d+ ms 95th, \d+ ms 99th, \d+ ms 99.9th\.$`)
/// and returns the record count.
fn parse_producer_line(line: &str) -> u64 {
    fn digits(s: &str) -> bool {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
    }
    fn decimal(s: &str) -> bool {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    }
    let body = line
        .strip_suffix('.')
        .unwrap_or_else(|| panic!("no final dot: {line}"));
    let parts: Vec<&str> = body.split(", ").collect();
    assert_eq!(parts.len(), 8, "{line}");
    let count = parts[0]
        .strip_suffix(" records sent")
        .unwrap_or_else(|| panic!("{line}"));
    let rate = parts[1];
    assert!(digits(count), "{line}");
    let (rps, mbs) = rate
        .strip_suffix(" MB/sec)")
        .and_then(|r| r.split_once(" records/sec ("))
        .unwrap_or_else(|| panic!("{line}"));
    assert!(decimal(rps) && decimal(mbs), "{line}");
    let avg = parts[2].strip_suffix(" ms avg latency");
    let max = parts[3].strip_suffix(" ms max latency");
    assert!(
        avg.is_some_and(decimal) && max.is_some_and(decimal),
        "{line}"
    );
    for (p, suffix) in parts[4..]
        .iter()
        .zip([" ms 50th", " ms 95th", " ms 99th", " ms 99.9th"])
    {
        assert!(p.strip_suffix(suffix).is_some_and(digits), "{line}");
    }
    count.parse().expect("count")
}

#[test]
fn producer_line_parser_rejects_other_lines() {
    let good = "2000000 records sent, 1234567.8 records/sec (117.74 MB/sec), 3.20 ms avg latency, \
                45.00 ms max latency, 2 ms 50th, 8 ms 95th, 12 ms 99th, 30 ms 99.9th.";
    assert_eq!(parse_producer_line(good), 2_000_000);
    let bad = good.replace("12 ms 99th", "12.5 ms 99th");
    assert!(std::panic::catch_unwind(|| parse_producer_line(&bad)).is_err());
}

#[test]
fn perf_produce_then_consume() {
    let broker = Broker::start();
    let out = run_ok(
        &broker,
        &[
            "perf",
            "produce",
            "--topic",
            "perf1",
            "--records",
            "20000",
            "--record-size",
            "100",
        ],
    );
    let last = out.lines().last().expect("some output");
    assert_eq!(parse_producer_line(last), 20_000, "{out}");
    assert_eq!(end_offset(&broker, "perf1"), 20_000);

    let out = run_ok(
        &broker,
        &["perf", "consume", "--topic", "perf1", "--records", "20000"],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(
        lines[0],
        "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, \
         rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
    );
    let fields: Vec<&str> = lines[1].split(", ").collect();
    assert_eq!(fields.len(), 10, "{out}");
    assert_eq!(fields[4], "20000", "{out}");
    // 20000 × 100 bytes of values, no keys.
    assert_eq!(fields[2], format!("{:.4}", 2_000_000.0 / 1024.0 / 1024.0));

    // The same through a consumer group.
    let out = run_ok(
        &broker,
        &[
            "perf",
            "consume",
            "--topic",
            "perf1",
            "--records",
            "20000",
            "--group",
            "pg",
        ],
    );
    let line = out.lines().nth(1).expect("summary line");
    assert_eq!(line.split(", ").nth(4), Some("20000"), "{out}");

    // Asking for more than there is fails after the idle timeout.
    let (status, _, err) = cli(
        &broker,
        &[
            "perf",
            "consume",
            "--topic",
            "perf1",
            "--records",
            "20001",
            "--timeout-ms",
            "1500",
        ],
        b"",
    );
    assert!(!status.success());
    assert!(err.contains("consumed 20000 of 20001 records"), "{err}");
}

#[test]
fn perf_produce_throttles() {
    let broker = Broker::start();
    let t0 = Instant::now();
    let out = run_ok(
        &broker,
        &[
            "perf",
            "produce",
            "--topic",
            "slow",
            "--records",
            "10000",
            "--record-size",
            "10",
            "--throughput",
            "5000",
            "--acks",
            "1",
        ],
    );
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(1800), "took only {took:?}");
    assert_eq!(
        parse_producer_line(out.lines().last().unwrap_or("")),
        10_000
    );
    assert_eq!(end_offset(&broker, "slow"), 10_000);
}

#[test]
fn perf_produce_without_auto_create_fails_clearly() {
    let broker = Broker::start_with(&["auto.create.topics.enable=false"]);
    let (status, out, err) = cli(
        &broker,
        &[
            "perf",
            "produce",
            "--topic",
            "missing",
            "--records",
            "10",
            "--record-size",
            "10",
        ],
        b"",
    );
    assert!(!status.success(), "{}", String::from_utf8_lossy(&out));
    assert!(
        err.starts_with("eddy: topic 'missing' does not exist"),
        "{err}"
    );
}

//! Malformed input on raw sockets (no client library): oversized frames,
//! absurd array lengths, unknown APIs and versions, garbage. The broker must
//! answer or close the offending connection, and keep serving everyone else.

use std::io::Write;
use std::thread;
use std::time::Duration;

use crate::common::{
    api_versions_v0, crc32c, parse_api_versions_v0, request_header_v1, Broker, RawConn, Rng,
};

/// Sends ApiVersions v0 on `conn` and checks a well-formed answer.
fn api_versions_ok(conn: &mut RawConn, corr: i32) {
    conn.send_frame(&api_versions_v0(corr))
        .expect("send ApiVersions");
    let body = conn.read_frame().expect("ApiVersions response");
    let (c, err, keys) = parse_api_versions_v0(&body);
    assert_eq!(c, corr, "correlation id");
    assert_eq!(err, 0, "ApiVersions error");
    assert!(keys.iter().any(|k| k.0 == 18), "ApiVersions lists itself");
}

/// The broker is alive, a fresh connection works, and librdkafka still gets metadata.
fn still_serving(broker: &mut Broker) {
    broker.assert_alive();
    let mut fresh = RawConn::connect(broker.bootstrap());
    api_versions_ok(&mut fresh, 777);
    let _ = broker.topic_names();
    broker.assert_alive();
}

/// Sends a frame and returns the response, or None when the broker closed
/// the connection instead. A response must carry the request's correlation id.
fn send_expect_answer_or_close(conn: &mut RawConn, body: &[u8], corr: i32) -> Option<Vec<u8>> {
    if conn.send_frame(body).is_err() {
        return None;
    }
    let resp = conn.read_frame()?;
    assert!(resp.len() >= 4, "short response {resp:?}");
    assert_eq!(
        i32::from_be_bytes(resp[0..4].try_into().expect("4 bytes")),
        corr,
        "response correlation id"
    );
    Some(resp)
}

#[test]
fn oversized_frames_close_only_their_connection() {
    let mut broker = Broker::start_with(&["socket.request.max.bytes=1048576"]);
    let addr = broker.bootstrap().to_string();
    let mut good = RawConn::connect(&addr);
    api_versions_ok(&mut good, 1);

    for size in [2 * 1024 * 1024i32, i32::MAX, -1, i32::MIN] {
        let mut bad = RawConn::connect(&addr);
        let mut frame = size.to_be_bytes().to_vec();
        frame.extend_from_slice(&request_header_v1(3, 1, 5));
        let _ = bad.stream.write_all(&frame);
        assert!(
            bad.closed_within(Duration::from_secs(10)),
            "connection with frame size {size} was not closed"
        );
        // The other connection is unaffected.
        api_versions_ok(&mut good, 2);
    }
    still_serving(&mut broker);
}

#[test]
fn absurd_array_lengths_do_not_crash() {
    let mut broker = Broker::start();
    let addr = broker.bootstrap().to_string();
    let mut requests: Vec<(&str, Vec<u8>)> = Vec::new();

    // Metadata v1 whose topic array claims 2^31-1 entries: a 13+ byte request.
    let mut b = request_header_v1(3, 1, 11);
    b.extend_from_slice(&i32::MAX.to_be_bytes());
    requests.push(("Metadata v1", b));

    // Metadata v9 (flexible): compact array length u32::MAX as a varint.
    let mut b = request_header_v1(3, 9, 12);
    b.push(0); // header tagged fields
    b.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]);
    requests.push(("Metadata v9", b));

    // CreateTopics v2 with a huge topic count.
    let mut b = request_header_v1(19, 2, 13);
    b.extend_from_slice(&0x7FFF_FFF0i32.to_be_bytes());
    requests.push(("CreateTopics v2", b));

    // Produce v3 with a huge topic count.
    let mut b = request_header_v1(0, 3, 14);
    b.extend_from_slice(&(-1i16).to_be_bytes()); // transactional id: null
    b.extend_from_slice(&1i16.to_be_bytes()); // acks
    b.extend_from_slice(&5000i32.to_be_bytes()); // timeout
    b.extend_from_slice(&i32::MAX.to_be_bytes()); // topics
    requests.push(("Produce v3", b));

    // Fetch v4 with a huge topic count.
    let mut b = request_header_v1(1, 4, 15);
    b.extend_from_slice(&(-1i32).to_be_bytes()); // replica id
    b.extend_from_slice(&100i32.to_be_bytes()); // max wait
    b.extend_from_slice(&1i32.to_be_bytes()); // min bytes
    b.extend_from_slice(&1_000_000i32.to_be_bytes()); // max bytes
    b.push(0); // isolation level
    b.extend_from_slice(&i32::MAX.to_be_bytes()); // topics
    requests.push(("Fetch v4", b));

    // A string whose length prefix runs past the frame.
    let mut b = request_header_v1(19, 2, 16);
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&i16::MAX.to_be_bytes());
    b.extend_from_slice(b"short");
    requests.push(("CreateTopics v2 long string", b));

    for (what, body) in &requests {
        let mut conn = RawConn::connect(&addr);
        let corr = i32::from_be_bytes(body[4..8].try_into().expect("corr"));
        let answered = send_expect_answer_or_close(&mut conn, body, corr).is_some();
        eprintln!("{what}: {}", if answered { "answered" } else { "closed" });
        broker.assert_alive();
        let mut other = RawConn::connect(&addr);
        api_versions_ok(&mut other, corr + 100);
    }
    still_serving(&mut broker);
}

fn zigzag_varint(v: i64, out: &mut Vec<u8>) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let byte = (z & 0x7F) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
}

/// A v2 record batch holding one record, whose header claims `count` records.
fn record_batch(value: &[u8], count: i32) -> Vec<u8> {
    let mut rec = Vec::new();
    rec.push(0); // attributes
    zigzag_varint(0, &mut rec); // timestamp delta
    zigzag_varint(0, &mut rec); // offset delta
    zigzag_varint(-1, &mut rec); // null key
    zigzag_varint(value.len() as i64, &mut rec);
    rec.extend_from_slice(value);
    zigzag_varint(0, &mut rec); // no headers
    let mut records = Vec::new();
    zigzag_varint(rec.len() as i64, &mut records);
    records.extend_from_slice(&rec);

    let ts = 1_700_000_000_000i64;
    let mut after_crc = Vec::new();
    after_crc.extend_from_slice(&0i16.to_be_bytes()); // attributes
    after_crc.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    after_crc.extend_from_slice(&ts.to_be_bytes());
    after_crc.extend_from_slice(&ts.to_be_bytes());
    after_crc.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    after_crc.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    after_crc.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    after_crc.extend_from_slice(&count.to_be_bytes());
    after_crc.extend_from_slice(&records);

    let mut batch = Vec::new();
    batch.extend_from_slice(&0i64.to_be_bytes()); // base offset
    let len = 4 + 1 + 4 + after_crc.len();
    batch.extend_from_slice(&(len as i32).to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend_from_slice(&crc32c(&after_crc).to_be_bytes());
    batch.extend_from_slice(&after_crc);
    batch
}

fn produce_v3(corr: i32, topic: &str, batch: &[u8]) -> Vec<u8> {
    let mut b = request_header_v1(0, 3, corr);
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&1i16.to_be_bytes());
    b.extend_from_slice(&5000i32.to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    b.extend_from_slice(topic.as_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // partition
    b.extend_from_slice(&(batch.len() as i32).to_be_bytes());
    b.extend_from_slice(batch);
    b
}

/// (error code, base offset) of the single partition in a Produce v3 response.
fn parse_produce_v3(resp: &[u8], topic: &str) -> (i16, i64) {
    let mut pos = 4; // correlation id
    let rd_i16 = |p: usize| i16::from_be_bytes(resp[p..p + 2].try_into().expect("i16"));
    let rd_i32 = |p: usize| i32::from_be_bytes(resp[p..p + 4].try_into().expect("i32"));
    assert_eq!(rd_i32(pos), 1, "one topic");
    pos += 4;
    let n = rd_i16(pos) as usize;
    pos += 2;
    assert_eq!(&resp[pos..pos + n], topic.as_bytes());
    pos += n;
    assert_eq!(rd_i32(pos), 1, "one partition");
    pos += 4;
    assert_eq!(rd_i32(pos), 0, "partition 0");
    pos += 4;
    let err = rd_i16(pos);
    let base = i64::from_be_bytes(resp[pos + 2..pos + 10].try_into().expect("i64"));
    (err, base)
}

#[test]
fn produce_batch_with_lying_record_count_is_rejected() {
    let mut broker = Broker::start();
    let topic = "raw";
    broker.create_topics(&[(topic, 1)]);
    let addr = broker.bootstrap().to_string();

    // A correct hand-built request is accepted (validates the builder).
    let mut conn = RawConn::connect(&addr);
    let resp = send_expect_answer_or_close(
        &mut conn,
        &produce_v3(21, topic, &record_batch(b"ok", 1)),
        21,
    )
    .expect("response to a valid Produce");
    assert_eq!(
        parse_produce_v3(&resp, topic),
        (0, 0),
        "valid hand-built Produce"
    );
    assert_eq!(broker.watermarks(topic, 0), (0, 1));

    // Claims 2^31-1 records but holds one; the CRC is right.
    for (i, count) in [i32::MAX, 2, -5].into_iter().enumerate() {
        let corr = 30 + i as i32;
        let mut conn = RawConn::connect(&addr);
        let req = produce_v3(corr, topic, &record_batch(b"liar", count));
        if let Some(resp) = send_expect_answer_or_close(&mut conn, &req, corr) {
            let (err, _) = parse_produce_v3(&resp, topic);
            assert_ne!(err, 0, "batch claiming {count} records was accepted");
        }
        broker.assert_alive();
        assert_eq!(
            broker.watermarks(topic, 0),
            (0, 1),
            "nothing appended for count {count}"
        );
    }

    // A batch with a wrong CRC: CORRUPT_MESSAGE (2).
    let mut batch = record_batch(b"crc", 1);
    let last = batch.len() - 2;
    batch[last] ^= 0xFF;
    let mut conn = RawConn::connect(&addr);
    if let Some(resp) = send_expect_answer_or_close(&mut conn, &produce_v3(40, topic, &batch), 40) {
        assert_eq!(
            parse_produce_v3(&resp, topic).0,
            2,
            "CRC mismatch → CORRUPT_MESSAGE"
        );
    }
    assert_eq!(
        broker.watermarks(topic, 0),
        (0, 1),
        "corrupt batch not appended"
    );
    still_serving(&mut broker);
}

#[test]
fn unknown_api_keys_and_versions() {
    let mut broker = Broker::start();
    let addr = broker.bootstrap().to_string();

    // ApiVersions v3 (what librdkafka sends): lists the APIs the broker serves.
    let mut conn = RawConn::connect(&addr);
    let mut b = request_header_v1(18, 3, 50);
    b.push(0); // header tagged fields
    b.extend_from_slice(&[5]); // compact string "eddy"
    b.extend_from_slice(b"e2ee");
    b.extend_from_slice(&[2, b'1']); // compact string "1"
    b.push(0); // tagged fields
    conn.send_frame(&b).expect("send");
    let resp = conn.read_frame().expect("ApiVersions v3 response");
    assert_eq!(i32::from_be_bytes(resp[0..4].try_into().expect("corr")), 50);
    assert_eq!(i16::from_be_bytes(resp[4..6].try_into().expect("err")), 0);
    let n = resp[6] as usize; // compact array length + 1 (fits one byte for < 127 APIs)
    assert!(n > 1 && resp[6] < 0x80, "api array length byte {}", resp[6]);
    let mut apis = Vec::new();
    let mut pos = 7;
    for _ in 0..n - 1 {
        let k = i16::from_be_bytes(resp[pos..pos + 2].try_into().expect("key"));
        let lo = i16::from_be_bytes(resp[pos + 2..pos + 4].try_into().expect("min"));
        let hi = i16::from_be_bytes(resp[pos + 4..pos + 6].try_into().expect("max"));
        assert_eq!(resp[pos + 6], 0, "no tagged fields per api");
        assert!(lo <= hi, "api {k}: min {lo} > max {hi}");
        apis.push(k);
        pos += 7;
    }
    for k in [0, 1, 2, 3, 18, 19, 20, 21, 32, 33, 37, 44, 60] {
        assert!(
            apis.contains(&k),
            "ApiVersions does not list api key {k}: {apis:?}"
        );
    }

    // ApiVersions with a version the broker does not know: v0-format answer
    // with UNSUPPORTED_VERSION (35) and the supported ranges.
    let mut b = request_header_v1(18, 999, 51);
    b.push(0);
    b.extend_from_slice(&[5]);
    b.extend_from_slice(b"e2ee");
    b.extend_from_slice(&[2, b'1']);
    b.push(0);
    conn.send_frame(&b).expect("send");
    let resp = conn.read_frame().expect("ApiVersions v999 answer");
    let (corr, err, keys) = parse_api_versions_v0(&resp);
    assert_eq!(corr, 51);
    assert_eq!(err, 35, "UNSUPPORTED_VERSION");
    assert!(
        keys.iter()
            .any(|&(k, lo, hi)| k == 18 && lo == 0 && hi >= 3),
        "ApiVersions range in the fallback answer: {keys:?}"
    );
    // The connection stays usable.
    api_versions_ok(&mut conn, 52);

    // An unknown API key, and a known API at an unknown version: an error
    // answer or a closed connection, never a crash.
    for (key, version, corr) in [(9999i16, 0i16, 60), (-3, 0, 61), (3, 999, 62), (0, 999, 63)] {
        let mut c = RawConn::connect(&addr);
        let mut b = request_header_v1(key, version, corr);
        b.extend_from_slice(&[0u8; 16]);
        let _ = send_expect_answer_or_close(&mut c, &b, corr);
        broker.assert_alive();
    }
    still_serving(&mut broker);
}

#[test]
fn garbage_and_odd_framing_do_not_affect_other_connections() {
    let mut broker = Broker::start();
    let addr = broker.bootstrap().to_string();
    let mut good = RawConn::connect(&addr);
    api_versions_ok(&mut good, 1);
    let mut rng = Rng::new(0xEDD1);

    // 64 KiB of noise.
    let mut noisy = RawConn::connect(&addr);
    let _ = noisy.stream.write_all(&rng.bytes(64 * 1024));
    api_versions_ok(&mut good, 2);

    // Small frames with random content and random API keys/versions.
    let mut conn = RawConn::connect(&addr);
    for i in 0..200 {
        let len = 4 + (rng.next_u64() % 60) as usize;
        let mut body = rng.bytes(len);
        if i % 2 == 0 {
            // Make the key plausible so real decoders see the noise.
            let key = (rng.next_u64() % 70) as i16;
            body[0..2].copy_from_slice(&key.to_be_bytes());
            body[2..4].copy_from_slice(&((rng.next_u64() % 12) as i16).to_be_bytes());
        }
        if conn.send_frame(&body).is_err() {
            conn = RawConn::connect(&addr);
        }
        if i % 20 == 0 {
            broker.assert_alive();
        }
    }
    drop(conn);
    drop(noisy);

    // A truncated frame, then the client goes away.
    {
        let mut c = RawConn::connect(&addr);
        let _ = c.stream.write_all(&100i32.to_be_bytes());
        let _ = c.stream.write_all(&[0, 3, 0, 1]);
    }

    // A request delivered one byte at a time is still answered.
    let mut slow = RawConn::connect(&addr);
    let mut frame = Vec::new();
    let body = api_versions_v0(3);
    frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
    frame.extend_from_slice(&body);
    for byte in &frame {
        slow.stream.write_all(&[*byte]).expect("write byte");
        slow.stream.flush().expect("flush");
        thread::sleep(Duration::from_millis(2));
    }
    let resp = slow.read_frame().expect("answer to a byte-by-byte request");
    assert_eq!(parse_api_versions_v0(&resp).0, 3);

    // Pipelined requests are answered in order.
    let mut pipe = RawConn::connect(&addr);
    let mut all = Vec::new();
    for corr in 100..120 {
        let body = api_versions_v0(corr);
        all.extend_from_slice(&(body.len() as i32).to_be_bytes());
        all.extend_from_slice(&body);
    }
    pipe.stream.write_all(&all).expect("write pipelined");
    for corr in 100..120 {
        let resp = pipe.read_frame().expect("pipelined answer");
        assert_eq!(parse_api_versions_v0(&resp).0, corr, "answers out of order");
    }

    api_versions_ok(&mut good, 4);
    still_serving(&mut broker);
}

//! Idempotent producers across broker restarts: a batch whose acknowledgement was lost when
//! the broker died is retried after the restart and must not be stored twice. The broker
//! rebuilds the producers' sequence state from the tail of each partition's log when it
//! starts (`eddy_broker::partition::restore_producers`).
//!
//! Raw Produce v3 and InitProducerId v0 requests over a socket, so the test controls exactly
//! which bytes are resent (a real client would resend the identical batch).

mod common;

use eddy_protocol::records::{Compression, RecordBatchBuilder};

use crate::common::{request_header_v1, Broker, RawConn};

const TOPIC: &str = "idem";
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;

/// InitProducerId v0 without a transactional id: (error code, producer id, epoch).
fn init_producer_id(conn: &mut RawConn, corr: i32) -> (i16, i64, i16) {
    let mut b = request_header_v1(22, 0, corr);
    b.extend_from_slice(&(-1i16).to_be_bytes()); // transactional_id: null
    b.extend_from_slice(&60_000i32.to_be_bytes()); // transaction_timeout_ms
    conn.send_frame(&b).expect("send InitProducerId");
    let r = conn.read_frame().expect("InitProducerId response");
    assert_eq!(i32::from_be_bytes(r[0..4].try_into().unwrap()), corr);
    // correlation id, throttle_time_ms, error_code, producer_id, producer_epoch
    let err = i16::from_be_bytes(r[8..10].try_into().unwrap());
    let pid = i64::from_be_bytes(r[10..18].try_into().unwrap());
    let epoch = i16::from_be_bytes(r[18..20].try_into().unwrap());
    (err, pid, epoch)
}

/// An idempotent batch of `n` records with sequences `seq..seq+n`.
fn batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let mut b =
        RecordBatchBuilder::new(Compression::None, 1_700_000_000_000).producer(pid, epoch, seq);
    for i in 0..n {
        let value = format!("pid {pid} seq {}", seq + i as i32);
        b.append(
            1_700_000_000_000 + i as i64,
            None,
            Some(value.as_bytes()),
            &[],
        );
    }
    b.build().expect("build batch").to_vec()
}

/// Produce v3 (acks=1) of one batch to partition 0: (error code, base offset).
fn produce(conn: &mut RawConn, corr: i32, batch: &[u8]) -> (i16, i64) {
    let mut b = request_header_v1(0, 3, corr);
    b.extend_from_slice(&(-1i16).to_be_bytes()); // transactional_id
    b.extend_from_slice(&1i16.to_be_bytes()); // acks
    b.extend_from_slice(&5000i32.to_be_bytes()); // timeout
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&(TOPIC.len() as i16).to_be_bytes());
    b.extend_from_slice(TOPIC.as_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // partition
    b.extend_from_slice(&(batch.len() as i32).to_be_bytes());
    b.extend_from_slice(batch);
    conn.send_frame(&b).expect("send Produce");
    let r = conn.read_frame().expect("Produce response");
    let i16_at = |p: usize| i16::from_be_bytes(r[p..p + 2].try_into().expect("i16"));
    let i32_at = |p: usize| i32::from_be_bytes(r[p..p + 4].try_into().expect("i32"));
    assert_eq!(i32_at(0), corr);
    assert_eq!(i32_at(4), 1, "one topic");
    let n = i16_at(8) as usize;
    assert_eq!(&r[10..10 + n], TOPIC.as_bytes());
    let mut pos = 10 + n;
    assert_eq!(i32_at(pos), 1, "one partition");
    assert_eq!(i32_at(pos + 4), 0, "partition 0");
    pos += 8;
    let base = i64::from_be_bytes(r[pos + 2..pos + 10].try_into().expect("i64"));
    (i16_at(pos), base)
}

#[derive(Clone, Copy, Debug)]
enum Stop {
    Kill,
    Terminate,
}

fn retried_batches_are_not_duplicated_after(stop: Stop) {
    let mut broker = Broker::start();
    broker.create_topics(&[(TOPIC, 1)]);
    let mut conn = RawConn::connect(broker.bootstrap());
    let (err, pid, epoch) = init_producer_id(&mut conn, 1);
    assert_eq!((err, epoch), (0, 0));
    assert!(pid >= 0);

    // A plain batch first, so offsets and sequences differ.
    let plain = {
        let mut b = RecordBatchBuilder::new(Compression::None, 1_700_000_000_000);
        b.append(1_700_000_000_000, None, Some(b"plain"), &[]);
        b.build().expect("build").to_vec()
    };
    assert_eq!(produce(&mut conn, 2, &plain), (0, 0));
    let a = batch(pid, epoch, 0, 3); // offsets 1..=3
    let b = batch(pid, epoch, 3, 2); // offsets 4..=5
    assert_eq!(produce(&mut conn, 3, &a), (0, 1));
    assert_eq!(produce(&mut conn, 4, &b), (0, 4));
    // Before any restart a retry is already answered from memory.
    assert_eq!(produce(&mut conn, 5, &b), (0, 4));
    assert_eq!(broker.watermarks(TOPIC, 0), (0, 6));
    drop(conn);

    match stop {
        Stop::Kill => broker.kill(),
        Stop::Terminate => assert!(broker.terminate().success(), "clean exit"),
    }
    broker.restart();

    // The producer's responses were "lost": it resends the identical batches.
    let mut conn = RawConn::connect(broker.bootstrap());
    assert_eq!(
        produce(&mut conn, 10, &b),
        (0, 4),
        "{stop:?}: the retried last batch gets its original offset"
    );
    assert_eq!(
        produce(&mut conn, 11, &a),
        (0, 1),
        "{stop:?}: an older batch within the last five too"
    );
    assert_eq!(
        broker.watermarks(TOPIC, 0),
        (0, 6),
        "{stop:?}: nothing appended twice"
    );

    // The next sequence goes on; a gap is refused.
    let c = batch(pid, epoch, 5, 1);
    assert_eq!(
        produce(&mut conn, 12, &c),
        (0, 6),
        "{stop:?}: next sequence"
    );
    assert_eq!(produce(&mut conn, 13, &c), (0, 6), "{stop:?}: its retry");
    let gap = batch(pid, epoch, 9, 1);
    assert_eq!(
        produce(&mut conn, 14, &gap).0,
        OUT_OF_ORDER_SEQUENCE_NUMBER,
        "{stop:?}: a sequence gap"
    );
    assert_eq!(broker.watermarks(TOPIC, 0), (0, 7));

    // Every record is stored once, in order.
    let values: Vec<Vec<u8>> = broker
        .consume_all(TOPIC, &[0])
        .iter()
        .map(|m| rdkafka::Message::payload(m).unwrap_or_default().to_vec())
        .collect();
    let mut want = vec![b"plain".to_vec()];
    want.extend((0..6).map(|s| format!("pid {pid} seq {s}").into_bytes()));
    assert_eq!(values, want, "{stop:?}");
    assert!(
        broker
            .log_text()
            .contains("restored idempotent producer state"),
        "{stop:?}: the restore is logged"
    );
}

#[test]
fn retried_batches_are_not_duplicated_after_sigkill() {
    retried_batches_are_not_duplicated_after(Stop::Kill);
}

#[test]
fn retried_batches_are_not_duplicated_after_clean_stop() {
    retried_batches_are_not_duplicated_after(Stop::Terminate);
}

//! Append of 1 MiB batches and reads from the page cache.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eddy_log::{Log, LogConfig};
use eddy_protocol::records::{Compression, RecordBatchBuilder};
use std::hint::black_box;

fn batch_1mib() -> BytesMut {
    let mut b = RecordBatchBuilder::new(Compression::None, 1_700_000_000_000);
    let value: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut i = 0i64;
    while b.estimated_size() < 1024 * 1024 - 1100 {
        b.append(
            1_700_000_000_000 + i,
            Some(&i.to_be_bytes()),
            Some(&value),
            &[],
        );
        i += 1;
    }
    BytesMut::from(&b.build().expect("build")[..])
}

fn bench(c: &mut Criterion) {
    let template = batch_1mib();
    let mut g = c.benchmark_group("log");
    g.throughput(Throughput::Bytes(template.len() as u64));
    g.sample_size(30);

    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        segment_bytes: 256 * 1024 * 1024,
        retention_bytes: 512 * 1024 * 1024,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg).expect("open");
    let mut buf = template.clone();
    g.bench_function("append_1mib_batch", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(&template);
            log.append(black_box(&mut buf), Some(0), None)
                .expect("append");
            if log.segment_count() > 3 {
                log.apply_retention(0).expect("retention");
            }
        })
    });

    let end = log.log_end_offset();
    let start = log.log_start_offset();
    let per_batch = (end - start) / log.size_bytes().div_ceil(template.len() as u64).max(1) as i64;
    let mut off = start;
    g.bench_function("read_1mib_from_page_cache", |b| {
        b.iter(|| {
            let r = log.read(black_box(off), 1024 * 1024, end).expect("read");
            off += per_batch;
            if off >= end {
                off = start;
            }
            r
        })
    });
    let mid = start + (end - start) / 2;
    g.throughput(Throughput::Elements(1));
    g.bench_function("read_small_lookup", |b| {
        b.iter(|| log.read(black_box(mid), 1, end).expect("read"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

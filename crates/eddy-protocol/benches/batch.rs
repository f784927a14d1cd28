//! Benchmarks of batch validation and decoding.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eddy_protocol::records::{
    decode_records, validate_batch, BatchIter, Compression, RecordBatchBuilder,
};
use std::hint::black_box;

fn batch_1mib(compression: Compression) -> bytes::Bytes {
    let mut b = RecordBatchBuilder::new(compression, 1_700_000_000_000);
    let value: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut i = 0i64;
    while b.estimated_size() < 1024 * 1024 - 1100 {
        let key = i.to_be_bytes();
        b.append(1_700_000_000_000 + i, Some(&key), Some(&value), &[]);
        i += 1;
    }
    b.build().expect("build")
}

fn bench(c: &mut Criterion) {
    let batch = batch_1mib(Compression::None);
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.bench_function("validate_batch_1mib", |b| {
        b.iter(|| validate_batch(black_box(&batch)).expect("valid"))
    });
    let mut many = Vec::new();
    for _ in 0..16 {
        many.extend_from_slice(&batch);
    }
    g.throughput(Throughput::Bytes(many.len() as u64));
    g.bench_function("batch_iter_16x1mib", |b| {
        b.iter(|| {
            BatchIter::new(black_box(&many))
                .filter(|r| r.is_ok())
                .count()
        })
    });
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.bench_function("decode_records_1mib", |b| {
        b.iter(|| decode_records(black_box(&batch), 2 << 20).expect("decode"))
    });
    let lz4 = batch_1mib(Compression::Lz4);
    g.bench_function("decode_records_lz4_1mib", |b| {
        b.iter(|| decode_records(black_box(&lz4), 2 << 20).expect("decode"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

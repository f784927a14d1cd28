//! Arbitrary bytes through the batch iterator, validation and decoding:
//! nothing may panic, and a batch that validates has a CRC that recomputes
//! equal and survives the in-place patches.
#![no_main]

use bytes::Bytes;
use eddy_protocol::records::{
    compute_crc, decode_records, set_base_offset, set_log_append_time, set_partition_leader_epoch,
    validate_batch, BatchHeader, BatchIter, BATCH_HEADER_LEN,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = BatchHeader::parse(data);
    let _ = compute_crc(data);
    for item in BatchIter::headers_only(data) {
        if item.is_err() {
            break;
        }
    }
    for item in BatchIter::new(data) {
        let Ok((header, range)) = item else { break };
        let batch = &data[range.clone()];
        assert_eq!(range.len(), header.total_size());
        assert_eq!(compute_crc(batch), header.crc);
        let again = validate_batch(batch).expect("a batch the iterator accepted validates");
        assert_eq!(again, header);

        let bytes = Bytes::copy_from_slice(batch);
        if let Ok((h, records)) = decode_records(&bytes, 1 << 20) {
            assert_eq!(h, header);
            assert_eq!(records.len(), header.records_count as usize);
        }

        let mut m = batch.to_vec();
        set_base_offset(&mut m, 42);
        set_partition_leader_epoch(&mut m, 7);
        set_log_append_time(&mut m, 1_000);
        let h = validate_batch(&m).expect("patched batch still validates");
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.max_timestamp, 1_000);
    }
    let _ = decode_records(&Bytes::copy_from_slice(data), 1 << 20);
    let _ = validate_batch(data);

    // The CRC stops almost every mutation at validation. Also force the
    // input into a well-framed batch (magic, length, CRC fixed up) so the
    // record decoder and the decompressors see arbitrary payloads.
    if data.len() >= BATCH_HEADER_LEN {
        let mut m = data.to_vec();
        m[16] = 2;
        let len = (m.len() - 12) as i32;
        m[8..12].copy_from_slice(&len.to_be_bytes());
        let crc = compute_crc(&m);
        m[17..21].copy_from_slice(&crc.to_be_bytes());
        if let Ok(h) = validate_batch(&m) {
            assert_eq!(h.total_size(), m.len());
            if let Ok((_, records)) = decode_records(&Bytes::from(m), 1 << 20) {
                assert_eq!(records.len(), h.records_count as usize);
            }
        }
    }
});

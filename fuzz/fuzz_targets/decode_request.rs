//! Decodes a whole request (header + body) from arbitrary bytes. When that
//! succeeds, re-encoding must succeed, decode to the same request, and be
//! stable (encoding the re-decoded request gives the same bytes).

#![no_main]

use bytes::Bytes;
use eddy_protocol::codec::WriteBuf;
use eddy_protocol::messages::RequestKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = Bytes::copy_from_slice(data);
    let Ok((header, request)) = RequestKind::decode_with_header(&mut buf) else {
        return;
    };

    let mut w = WriteBuf::new();
    request
        .encode_with_header(&header, &mut w)
        .expect("a decoded request must re-encode");
    let encoded = w.into_bytes();

    let mut again = encoded.clone();
    let (header2, request2) =
        RequestKind::decode_with_header(&mut again).expect("re-encoded request must decode");
    assert!(again.is_empty(), "re-encoded request has trailing bytes");
    assert_eq!(header2, header);
    // Debug text rather than PartialEq so that NaN floats compare equal.
    assert_eq!(format!("{request2:?}"), format!("{request:?}"));

    let mut w2 = WriteBuf::new();
    request2
        .encode_with_header(&header2, &mut w2)
        .expect("second re-encode");
    assert_eq!(w2.into_bytes(), encoded, "encoding is not stable");
});

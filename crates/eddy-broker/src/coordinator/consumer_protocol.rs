//! The embedded consumer protocol of classic groups with protocol type `consumer`
//! (`ConsumerProtocolSubscription` / `ConsumerProtocolAssignment`): only what the broker
//! needs to read (the subscribed topics, for OffsetDelete) and write (assignments of
//! KIP-848 members, which are not sent through it).

use bytes::Bytes;
use eddy_protocol::codec::{read_array, read_i16, read_string};

/// Topics of a `ConsumerProtocolSubscription` (any version: the topic list comes first after
/// the version in all of them); `None` if it cannot be decoded.
pub fn subscription_topics(metadata: &Bytes) -> Option<Vec<String>> {
    let mut b = metadata.clone();
    let version = read_i16(&mut b).ok()?;
    if version < 0 {
        return None;
    }
    read_array(&mut b, false, "topics", |b| read_string(b, false, "topic")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_topics_of_a_v0_subscription() {
        let mut raw = vec![0, 0, 0, 0, 0, 2];
        raw.extend_from_slice(&[0, 1, b'a', 0, 2, b'b', b'c']);
        raw.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // null user data
        assert_eq!(
            subscription_topics(&Bytes::from(raw)),
            Some(vec!["a".to_string(), "bc".to_string()])
        );
        assert_eq!(
            subscription_topics(&Bytes::from_static(&[0, 0, 0, 0, 0, 9])),
            None
        );
        assert_eq!(subscription_topics(&Bytes::new()), None);
    }
}

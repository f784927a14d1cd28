//! The records the group coordinator writes to `__consumer_offsets`, in Kafka's schemas
//! (`group-coordinator/src/main/resources/common/message/*.json`): every key and value starts
//! with its schema version as an int16.
//!
//! * key version 0/1: `OffsetCommitKey` (group, topic, partition); value `OffsetCommitValue`
//!   v0-v4 (Eddy writes v3, or v1 when an expire timestamp is set, as Kafka does).
//! * key version 2: `GroupMetadataKey` (group); value `GroupMetadataValue` v0-v4 (Eddy
//!   writes v3).
//! * key versions 3+: KIP-848 consumer group records, which Eddy does not write; they are
//!   skipped on replay.
//!
//! A null value is a tombstone: the offset or the group was deleted.

use bytes::Bytes;
use eddy_protocol::codec::*;

/// Why a record of `__consumer_offsets` could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum RecordSchemaError {
    #[error("cannot decode {what}: {source}")]
    Decode {
        what: &'static str,
        source: DecodeError,
    },
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        source: EncodeError,
    },
    #[error("unsupported {what} version {version}")]
    Version { what: &'static str, version: i16 },
}

fn dec(what: &'static str) -> impl FnOnce(DecodeError) -> RecordSchemaError {
    move |source| RecordSchemaError::Decode { what, source }
}

fn enc(what: &'static str) -> impl FnOnce(EncodeError) -> RecordSchemaError {
    move |source| RecordSchemaError::Encode { what, source }
}

/// A decoded key of `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
    /// A record type Eddy does not replay (KIP-848, share groups...).
    Other(i16),
}

/// `OffsetCommitValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only in version 1: -1 when absent.
    pub expire_timestamp: i64,
}

/// One member of `GroupMetadataValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// `GroupMetadataValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

pub fn offset_key(group: &str, topic: &str, partition: i32) -> Result<Bytes, RecordSchemaError> {
    let mut w = WriteBuf::with_capacity(8 + group.len() + topic.len());
    w.put_i16(1);
    put_string(&mut w, group, false).map_err(enc("OffsetCommitKey"))?;
    put_string(&mut w, topic, false).map_err(enc("OffsetCommitKey"))?;
    w.put_i32(partition);
    Ok(w.into_bytes())
}

pub fn group_key(group: &str) -> Result<Bytes, RecordSchemaError> {
    let mut w = WriteBuf::with_capacity(4 + group.len());
    w.put_i16(2);
    put_string(&mut w, group, false).map_err(enc("GroupMetadataKey"))?;
    Ok(w.into_bytes())
}

pub fn decode_key(mut b: Bytes) -> Result<RecordKey, RecordSchemaError> {
    let what = "__consumer_offsets key";
    let version = read_i16(&mut b).map_err(dec(what))?;
    match version {
        0 | 1 => {
            let group = read_string(&mut b, false, "group").map_err(dec(what))?;
            let topic = read_string(&mut b, false, "topic").map_err(dec(what))?;
            let partition = read_i32(&mut b).map_err(dec(what))?;
            Ok(RecordKey::Offset {
                group,
                topic,
                partition,
            })
        }
        2 => {
            let group = read_string(&mut b, false, "group").map_err(dec(what))?;
            Ok(RecordKey::Group { group })
        }
        v if v > 2 => Ok(RecordKey::Other(v)),
        v => Err(RecordSchemaError::Version { what, version: v }),
    }
}

pub fn encode_offset_value(v: &OffsetValue) -> Result<Bytes, RecordSchemaError> {
    let what = "OffsetCommitValue";
    let mut w = WriteBuf::with_capacity(32 + v.metadata.len());
    if v.expire_timestamp >= 0 {
        w.put_i16(1);
        w.put_i64(v.offset);
        put_string(&mut w, &v.metadata, false).map_err(enc(what))?;
        w.put_i64(v.commit_timestamp);
        w.put_i64(v.expire_timestamp);
    } else {
        w.put_i16(3);
        w.put_i64(v.offset);
        w.put_i32(v.leader_epoch);
        put_string(&mut w, &v.metadata, false).map_err(enc(what))?;
        w.put_i64(v.commit_timestamp);
    }
    Ok(w.into_bytes())
}

pub fn decode_offset_value(mut b: Bytes) -> Result<OffsetValue, RecordSchemaError> {
    let what = "OffsetCommitValue";
    let version = read_i16(&mut b).map_err(dec(what))?;
    if !(0..=4).contains(&version) {
        return Err(RecordSchemaError::Version { what, version });
    }
    let flexible = version >= 4;
    let offset = read_i64(&mut b).map_err(dec(what))?;
    let leader_epoch = if version >= 3 {
        read_i32(&mut b).map_err(dec(what))?
    } else {
        -1
    };
    let metadata = read_string(&mut b, flexible, "metadata").map_err(dec(what))?;
    let commit_timestamp = read_i64(&mut b).map_err(dec(what))?;
    let expire_timestamp = if version == 1 {
        read_i64(&mut b).map_err(dec(what))?
    } else {
        -1
    };
    if flexible {
        skip_tagged_fields(&mut b).map_err(dec(what))?;
    }
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
        expire_timestamp,
    })
}

pub fn encode_group_value(v: &GroupValue) -> Result<Bytes, RecordSchemaError> {
    let what = "GroupMetadataValue";
    let e = enc(what);
    let mut w = WriteBuf::with_capacity(128);
    let r: Result<(), EncodeError> = (|| {
        w.put_i16(3);
        put_string(&mut w, &v.protocol_type, false)?;
        w.put_i32(v.generation);
        put_nullable_string(&mut w, v.protocol.as_deref(), false)?;
        put_nullable_string(&mut w, v.leader.as_deref(), false)?;
        w.put_i64(v.current_state_timestamp);
        put_array_len(&mut w, Some(v.members.len()), false)?;
        for m in &v.members {
            put_string(&mut w, &m.member_id, false)?;
            put_nullable_string(&mut w, m.group_instance_id.as_deref(), false)?;
            put_string(&mut w, &m.client_id, false)?;
            put_string(&mut w, &m.client_host, false)?;
            w.put_i32(m.rebalance_timeout);
            w.put_i32(m.session_timeout);
            put_bytes(&mut w, &m.subscription, false)?;
            put_bytes(&mut w, &m.assignment, false)?;
        }
        Ok(())
    })();
    r.map_err(e)?;
    Ok(w.into_bytes())
}

pub fn decode_group_value(mut b: Bytes) -> Result<GroupValue, RecordSchemaError> {
    let what = "GroupMetadataValue";
    let version = read_i16(&mut b).map_err(dec(what))?;
    if !(0..=4).contains(&version) {
        return Err(RecordSchemaError::Version { what, version });
    }
    let c = version >= 4;
    let r: Result<GroupValue, DecodeError> = (|| {
        let protocol_type = read_string(&mut b, c, "protocolType")?;
        let generation = read_i32(&mut b)?;
        let protocol = read_nullable_string(&mut b, c)?;
        let leader = read_nullable_string(&mut b, c)?;
        let current_state_timestamp = if version >= 2 { read_i64(&mut b)? } else { -1 };
        let members = read_array(&mut b, c, "members", |b| {
            let member_id = read_string(b, c, "memberId")?;
            let group_instance_id = if version >= 3 {
                read_nullable_string(b, c)?
            } else {
                None
            };
            let client_id = read_string(b, c, "clientId")?;
            let client_host = read_string(b, c, "clientHost")?;
            let rebalance_timeout = if version >= 1 { read_i32(b)? } else { -1 };
            let session_timeout = read_i32(b)?;
            let subscription = read_bytes(b, c, "subscription")?;
            let assignment = read_bytes(b, c, "assignment")?;
            if c {
                skip_tagged_fields(b)?;
            }
            Ok(MemberValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout,
                session_timeout,
                subscription,
                assignment,
            })
        })?;
        if c {
            skip_tagged_fields(&mut b)?;
        }
        Ok(GroupValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp,
            members,
        })
    })();
    r.map_err(dec(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_key_layout_is_kafkas() {
        let k = offset_key("g", "t", 7).unwrap();
        assert_eq!(&k[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 7]);
        assert_eq!(
            decode_key(k).unwrap(),
            RecordKey::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 7
            }
        );
        let g = group_key("grp").unwrap();
        assert_eq!(&g[..], &[0, 2, 0, 3, b'g', b'r', b'p']);
        assert_eq!(
            decode_key(g).unwrap(),
            RecordKey::Group {
                group: "grp".into()
            }
        );
        assert_eq!(
            decode_key(Bytes::from_static(&[0, 3, 0, 0])).unwrap(),
            RecordKey::Other(3)
        );
        assert!(decode_key(Bytes::from_static(&[0, 1, 0, 9, b'x'])).is_err());
        assert!(decode_key(Bytes::from_static(&[0xff, 0xff])).is_err());
    }

    #[test]
    fn offset_values_round_trip_in_v3_and_v1() {
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 5,
            metadata: "meta".into(),
            commit_timestamp: 1_700_000_000_000,
            expire_timestamp: -1,
        };
        let b = encode_offset_value(&v).unwrap();
        assert_eq!(&b[..2], &[0, 3]);
        assert_eq!(b.len(), 2 + 8 + 4 + 2 + 4 + 8);
        assert_eq!(decode_offset_value(b).unwrap(), v);
        let v1 = OffsetValue {
            expire_timestamp: 1_800_000_000_000,
            leader_epoch: -1,
            ..v
        };
        let b = encode_offset_value(&v1).unwrap();
        assert_eq!(&b[..2], &[0, 1]);
        assert_eq!(decode_offset_value(b).unwrap(), v1);
    }

    #[test]
    fn flexible_offset_value_v4_decodes() {
        // v4: offset, leaderEpoch, compact metadata, commitTimestamp, tagged fields.
        let mut raw = vec![0, 4];
        raw.extend_from_slice(&9i64.to_be_bytes());
        raw.extend_from_slice(&2i32.to_be_bytes());
        raw.extend_from_slice(&[3, b'h', b'i']);
        raw.extend_from_slice(&77i64.to_be_bytes());
        raw.push(0);
        let v = decode_offset_value(Bytes::from(raw)).unwrap();
        assert_eq!(
            (v.offset, v.leader_epoch, v.metadata.as_str()),
            (9, 2, "hi")
        );
        assert_eq!(v.commit_timestamp, 77);
    }

    #[test]
    fn group_value_round_trips() {
        let v = GroupValue {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 123,
            members: vec![MemberValue {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout: 300_000,
                session_timeout: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let b = encode_group_value(&v).unwrap();
        assert_eq!(&b[..2], &[0, 3]);
        assert_eq!(decode_group_value(b.clone()).unwrap(), v);
        // Truncations never panic.
        for n in 0..b.len() {
            assert!(decode_group_value(b.slice(..n)).is_err());
        }
    }
}

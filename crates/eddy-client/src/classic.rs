//! The classic consumer group member (JoinGroup/SyncGroup).

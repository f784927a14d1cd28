//! The Eddy broker: a Kafka-protocol server over Eddy's partition logs.
//!
//! * [`server`]: listener, accept loop, background housekeeping, shutdown.
//! * [`connection`]: framing of one connection, responses in request order.
//! * [`router`]: request header, version checks, dispatch to [`handlers`].
//! * [`broker`]: shared state: metadata store, topics and partitions, effective configs.
//! * [`partition`]: one partition's log and produce-path settings.
//!
//! Architecture invariant: record batches are never re-encoded here. The produce path reads
//! batch headers and checks CRCs; the log stores the bytes; the fetch path returns them.

// Generated message structs gain fields when Kafka adds them; `..Default::default()` keeps
// handlers compiling and correct across such additions.
#![allow(clippy::needless_update)]

pub mod broker;
pub mod config;
pub mod connection;
pub mod coordinator;
pub mod handlers;
pub mod partition;
pub mod router;
pub mod server;

pub use broker::{Broker, BrokerError};
pub use config::{BrokerConfig, BrokerConfigError};
pub use server::{run, ServerError};

//! End-to-end tests: each test starts the real `eddy` binary on its own
//! temporary data directory and port, and drives it with librdkafka (the
//! `rdkafka` crate), the `eddy` CLI, or raw sockets.

mod common;

mod admin;
mod cli;
mod durability;
mod malformed;
mod produce_consume;

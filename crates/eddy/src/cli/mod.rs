//! The client commands of `eddy`: `topic`, `produce`, `consume`, `cluster`, `group`,
//! `perf`.
//!
//! Output on stdout is meant to be parsed by scripts; errors are one
//! sentence on stderr (`eddy: ...`) with exit code 1.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use eddy_client::{ClientConfig, ClientError, CommonConfig, ConsumerConfig, ProducerConfig};

mod cluster;
mod consume;
mod group;
mod perf;
mod produce;
mod topic;

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Create, list, describe, alter and delete topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Produce records read from stdin, one per line.
    Produce(produce::ProduceArgs),
    /// Consume records and print them to stdout, one per line.
    Consume(consume::ConsumeArgs),
    /// Show the cluster: id, controller, brokers, api versions.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// List, describe and delete consumer groups; reset their offsets.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Performance tests: produce or consume many records, reporting like
    /// kafka-producer-perf-test and kafka-consumer-perf-test.
    #[command(subcommand)]
    Perf(perf::PerfCommand),
}

/// Connection options shared by every client command.
#[derive(Args, Debug, Clone)]
pub struct ConnArgs {
    /// Broker(s) to bootstrap from: HOST:PORT[,HOST:PORT...].
    #[arg(
        long,
        short = 'b',
        env = "EDDY_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    bootstrap: String,
    /// A client property, e.g. -X request.timeout.ms=5000 (repeatable).
    #[arg(short = 'X', long = "property", value_name = "KEY=VALUE")]
    properties: Vec<String>,
}

impl ConnArgs {
    /// The client properties: `bootstrap.servers`, `client.id`, then `-X`.
    fn properties(&self) -> Result<ClientConfig, CliError> {
        let mut c = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap.as_str())
            .set("client.id", "eddy-cli");
        for p in &self.properties {
            c.insert_assignment(p)?;
        }
        Ok(c)
    }

    fn common(&self) -> Result<CommonConfig, CliError> {
        Ok(CommonConfig::from_config(&self.properties()?)?)
    }

    fn producer(&self) -> Result<ProducerConfig, CliError> {
        Ok(ProducerConfig::from_config(&self.properties()?)?)
    }

    fn consumer(&self) -> Result<ConsumerConfig, CliError> {
        Ok(ConsumerConfig::from_config(&self.properties()?)?)
    }
}

/// An error of a client command, printed as one sentence.
#[derive(thiserror::Error, Debug)]
pub enum CliError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Usage(String),
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        source: std::io::Error,
    },
}

pub fn main(cmd: ClientCommand) -> ExitCode {
    // perf keeps the producer's sender (or the fetches) apart from the
    // load generator and its latency bookkeeping: several threads.
    let mut builder = if matches!(cmd, ClientCommand::Perf(_)) {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            return report(&CliError::Io {
                context: "cannot start the async runtime",
                source: e,
            })
        }
    };
    let result = rt.block_on(async move {
        match cmd {
            ClientCommand::Topic(c) => topic::run(c).await,
            ClientCommand::Produce(a) => produce::run(a).await,
            ClientCommand::Consume(a) => consume::run(a).await,
            ClientCommand::Cluster(c) => cluster::run(c).await,
            ClientCommand::Group(c) => group::run(c).await,
            ClientCommand::Perf(c) => perf::run(c).await,
        }
    });
    // Don't wait for background tasks (e.g. idle connections) on exit.
    rt.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

/// Prints `eddy: <error>` as a single line and returns the failure code.
fn report(e: &CliError) -> ExitCode {
    eprintln!("eddy: {}", one_line(&e.to_string()));
    ExitCode::FAILURE
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses `KEY=VALUE`.
fn parse_kv(s: &str, what: &str) -> Result<(String, String), CliError> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(CliError::Usage(format!("{what} '{s}' is not KEY=VALUE"))),
    }
}

/// Interprets the escapes `\t`, `\n`, `\r`, `\0` and `\\` in a separator
/// given on the command line.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('\\') => out.push('\\'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_are_unescaped() {
        assert_eq!(unescape("\\t"), "\t");
        assert_eq!(unescape(":"), ":");
        assert_eq!(unescape("a\\nb\\\\"), "a\nb\\");
        assert_eq!(unescape("\\x"), "\\x");
        assert_eq!(unescape("\\"), "\\");
    }

    #[test]
    fn kv_parsing() {
        assert_eq!(
            parse_kv("a=b=c", "config").unwrap(),
            ("a".into(), "b=c".into())
        );
        assert_eq!(parse_kv("a=", "config").unwrap(), ("a".into(), "".into()));
        assert!(parse_kv("a", "config").is_err());
        assert!(parse_kv("=b", "config").is_err());
    }

    #[test]
    fn errors_are_one_line() {
        assert_eq!(one_line("a\n  b\tc "), "a b c");
    }
}

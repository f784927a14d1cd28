//! `eddy`: the broker and the command-line client in one binary.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod broker_cmd;
mod cli;

#[derive(Parser, Debug)]
#[command(
    name = "eddy",
    version,
    about = "Eddy: a Kafka-protocol event streaming platform",
    propagate_version = true
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a broker (single node; data in ./eddy-data by default).
    Broker(broker_cmd::BrokerArgs),
    #[command(flatten)]
    Client(cli::ClientCommand),
}

fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDDY_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Command::Broker(b) => {
            init_logging("info");
            broker_cmd::run(b)
        }
        Command::Client(c) => {
            init_logging("warn");
            cli::main(c)
        }
    }
}

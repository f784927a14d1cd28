//! The client commands of `eddy` (placeholder until eddy-client lands).

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum ClientCommand {}

pub fn main(cmd: ClientCommand) -> ExitCode {
    match cmd {}
}

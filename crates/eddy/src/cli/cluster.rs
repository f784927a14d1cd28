//! `eddy cluster info`.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use eddy_client::protocol::{BrokerApiVersions, CLIENT_APIS};
use eddy_client::{AdminClient, ClusterDescription};
use eddy_protocol::ApiKey;

use super::{CliError, ConnArgs};

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Cluster id, controller, brokers and the api versions a broker serves.
    Info(InfoArgs),
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    conn: ConnArgs,
}

pub async fn run(cmd: ClusterCommand) -> Result<ExitCode, CliError> {
    match cmd {
        ClusterCommand::Info(a) => info(a).await,
    }
}

async fn info(a: InfoArgs) -> Result<ExitCode, CliError> {
    let admin = AdminClient::new(a.conn.common()?)?;
    let cluster = admin.describe_cluster().await?;
    let (addr, versions) = admin.api_versions().await?;
    print!("{}", format_info(&cluster, &addr, &versions));
    Ok(ExitCode::SUCCESS)
}

/// ```text
/// ClusterId: <id>
/// Controller: 1
/// Brokers:
///   1 127.0.0.1:9092 (controller)
/// ApiVersions of 127.0.0.1:9092:
///   Produce(0): 3 to 11 [usable: 11]
///   LeaderAndIsr(4): 0 to 7 [not used by this client]
/// ```
fn format_info(c: &ClusterDescription, addr: &str, versions: &BrokerApiVersions) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ClusterId: {}",
        c.cluster_id.as_deref().unwrap_or("none")
    );
    let _ = writeln!(
        out,
        "Controller: {}",
        c.controller_id
            .map_or_else(|| "none".to_string(), |id| id.to_string())
    );
    let _ = writeln!(out, "Brokers:");
    for b in &c.brokers {
        let mut line = format!("  {} {}", b.node_id, b.addr());
        if let Some(rack) = &b.rack {
            let _ = write!(line, " rack={rack}");
        }
        if c.controller_id == Some(b.node_id) {
            line.push_str(" (controller)");
        }
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "ApiVersions of {addr}:");
    for (key, min, max) in versions.all() {
        let name =
            ApiKey::from_i16(key).map_or_else(|| format!("Unknown{key}"), |k| k.name().to_string());
        let usable = match ApiKey::from_i16(key)
            .and_then(|k| CLIENT_APIS.iter().find(|(c, _, _)| *c == k))
        {
            None => "[not used by this client]".to_string(),
            Some(&(k, cmin, cmax)) => match versions.negotiate(k, cmin, cmax, None) {
                Ok(v) => format!("[usable: {v}]"),
                Err(_) => "[unusable]".to_string(),
            },
        };
        let _ = writeln!(out, "  {name}({key}): {min} to {max} {usable}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_client::BrokerInfo;
    use eddy_protocol::messages::api_versions_response::ApiVersion;
    use eddy_protocol::messages::ApiVersionsResponse;

    #[test]
    fn info_layout() {
        let c = ClusterDescription {
            cluster_id: Some("abc".into()),
            controller_id: Some(1),
            brokers: vec![BrokerInfo {
                node_id: 1,
                host: "127.0.0.1".into(),
                port: 9092,
                rack: None,
            }],
        };
        let resp = ApiVersionsResponse {
            api_keys: vec![
                ApiVersion {
                    api_key: 0,
                    min_version: 3,
                    max_version: 12,
                },
                ApiVersion {
                    api_key: 4,
                    min_version: 0,
                    max_version: 7,
                },
                ApiVersion {
                    api_key: 1,
                    min_version: 18,
                    max_version: 18,
                },
            ],
            ..Default::default()
        };
        let out = format_info(
            &c,
            "127.0.0.1:9092",
            &BrokerApiVersions::from_response(&resp),
        );
        assert_eq!(
            out,
            "ClusterId: abc\nController: 1\nBrokers:\n  1 127.0.0.1:9092 (controller)\n\
             ApiVersions of 127.0.0.1:9092:\n  Produce(0): 3 to 12 [usable: 11]\n  \
             Fetch(1): 18 to 18 [unusable]\n  LeaderAndIsr(4): 0 to 7 [not used by this client]\n"
        );
    }
}

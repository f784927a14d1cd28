//! `eddy broker`: parse the flags, build the config, run until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use eddy_broker::BrokerConfig;

#[derive(Args, Debug)]
pub struct BrokerArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: String,
    /// Host name given to clients in metadata (default: the listen address).
    #[arg(long)]
    advertised_host: Option<String>,
    /// Data directory.
    #[arg(long, default_value = "./eddy-data")]
    data_dir: PathBuf,
    /// This broker's node id.
    #[arg(long, default_value_t = 1)]
    node_id: i32,
    /// A Kafka-style server.properties file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override one config, e.g. --set num.partitions=3 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

fn build_config(args: &BrokerArgs) -> Result<BrokerConfig, String> {
    let listen = tokio_addr(&args.listen)?;
    let mut config = BrokerConfig::new(listen, args.data_dir.clone());
    config.node_id = args.node_id;
    config.advertised_host = args.advertised_host.clone();
    if let Some(path) = &args.config {
        config.props = BrokerConfig::read_properties(path).map_err(|e| e.to_string())?;
    }
    for s in &args.set {
        let (k, v) = BrokerConfig::parse_assignment(s).map_err(|e| e.to_string())?;
        config.props.insert(k, v);
    }
    // server.properties keys that Eddy also takes as flags: the flags win when given.
    if args.config.is_some() {
        if let Some(dirs) = config.props.get("log.dirs").cloned() {
            if args.data_dir.as_os_str() == "./eddy-data" {
                config.data_dir =
                    PathBuf::from(dirs.split(',').next().unwrap_or("./eddy-data").trim());
            }
        }
        if let Some(id) = config
            .props
            .get("node.id")
            .or(config.props.get("broker.id"))
            .and_then(|v| v.trim().parse().ok())
        {
            if args.node_id == 1 {
                config.node_id = id;
            }
        }
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

fn tokio_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    s.to_socket_addrs()
        .map_err(|e| format!("--listen {s}: {e}"))?
        .next()
        .ok_or_else(|| format!("--listen {s}: no address"))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

pub fn run(args: BrokerArgs) -> ExitCode {
    let config = match build_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("eddy broker: {e}");
            return ExitCode::from(2);
        }
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("eddy broker: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(eddy_broker::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("eddy broker: {e}");
            ExitCode::FAILURE
        }
    }
}

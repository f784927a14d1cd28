//! The broker's own configuration: where it listens, where it keeps data, and the
//! `server.properties` keys (static broker configs) given by `--config` and `--set`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use eddy_meta::config::{find, validate_value, ConfigError, ConfigScope};
use thiserror::Error;

/// A configuration the broker cannot start with.
#[derive(Debug, Error)]
pub enum BrokerConfigError {
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    #[error("cannot read the config file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("'{0}' is not of the form key=value")]
    NotKeyValue(String),
}

/// Everything the broker needs to start.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub listen: SocketAddr,
    /// The host name put in Metadata responses (defaults to the listen address' IP).
    pub advertised_host: Option<String>,
    pub data_dir: PathBuf,
    pub node_id: i32,
    /// Static broker configs (`server.properties` keys) as given.
    pub props: BTreeMap<String, String>,
}

impl BrokerConfig {
    /// A config with defaults, listening on `listen` and storing in `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        BrokerConfig {
            listen,
            advertised_host: None,
            data_dir,
            node_id: 1,
            props: BTreeMap::new(),
        }
    }

    /// Checks every known key's value; unknown keys are kept (Kafka warns about them, it does
    /// not refuse them) and reported by [`BrokerConfig::unknown_keys`].
    pub fn validate(&self) -> Result<(), BrokerConfigError> {
        for (k, v) in &self.props {
            if let Some(def) = find(ConfigScope::Broker, k) {
                validate_value(def, v)?;
            }
        }
        Ok(())
    }

    /// Keys Eddy does not know (logged at startup).
    pub fn unknown_keys(&self) -> Vec<&str> {
        self.props
            .keys()
            .filter(|k| find(ConfigScope::Broker, k).is_none())
            .map(String::as_str)
            .collect()
    }

    /// Parses `key=value` (for `--set`).
    pub fn parse_assignment(s: &str) -> Result<(String, String), BrokerConfigError> {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| BrokerConfigError::NotKeyValue(s.to_string()))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(BrokerConfigError::NotKeyValue(s.to_string()));
        }
        Ok((k.to_string(), v.trim().to_string()))
    }

    /// Reads a `server.properties` file.
    pub fn read_properties(
        path: &std::path::Path,
    ) -> Result<BTreeMap<String, String>, BrokerConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| BrokerConfigError::File {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(eddy_meta::store::parse_properties(&text))
    }
}

//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs, for topics and the broker.

use std::collections::BTreeMap;

use eddy_meta::config::{self as cfg, ConfigScope, ConfigType, ConfigValue};
use eddy_protocol::error_code::ErrorCode;

use crate::broker::Broker;
use crate::handlers::broker_error_code;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// Broker configs that cannot change while the broker runs.
const STATIC_ONLY: &[&str] = &[
    "node.id",
    "broker.id",
    "log.dirs",
    "socket.request.max.bytes",
];

/// Checks that a broker resource name names this broker (or "" for the cluster default).
fn check_broker_name(broker: &Broker, name: &str) -> Result<(), (ErrorCode, String)> {
    if name.is_empty() || name.parse::<i32>().ok() == Some(broker.node_id()) {
        Ok(())
    } else {
        Err((
            ErrorCode::InvalidRequest,
            format!(
                "Unexpected broker id, expected {} or empty string, but received {name}",
                broker.node_id()
            ),
        ))
    }
}

/// The current config overrides of a resource (topic overrides or dynamic broker configs).
fn current_overrides(
    broker: &Broker,
    resource_type: i8,
    name: &str,
) -> Result<BTreeMap<String, String>, (ErrorCode, String)> {
    match resource_type {
        RESOURCE_TOPIC => broker.topic_meta(name).map(|t| t.configs).ok_or_else(|| {
            (
                ErrorCode::UnknownTopicOrPartition,
                format!("Topic {name} does not exist"),
            )
        }),
        RESOURCE_BROKER => {
            check_broker_name(broker, name)?;
            Ok(broker.with_layers(|_, meta| meta.broker_configs().clone()))
        }
        other => Err((
            ErrorCode::InvalidRequest,
            format!("Unsupported resource type {other}"),
        )),
    }
}

/// Stores new overrides for a resource after validating them.
fn store_overrides(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), (ErrorCode, String)> {
    match resource_type {
        RESOURCE_TOPIC => broker
            .set_topic_configs(name, configs, validate_only)
            .map_err(|e| broker_error_code(&e)),
        RESOURCE_BROKER => {
            if let Some(k) = configs.keys().find(|k| STATIC_ONLY.contains(&k.as_str())) {
                return Err((
                    ErrorCode::InvalidRequest,
                    format!("Cannot update these configs dynamically: {k}"),
                ));
            }
            broker
                .set_broker_configs(configs, validate_only)
                .map_err(|e| broker_error_code(&e))
        }
        other => Err((
            ErrorCode::InvalidRequest,
            format!("Unsupported resource type {other}"),
        )),
    }
}

/// A read-only, Eddy-specific entry of a topic's DescribeConfigs: the largest cleanable dirty
/// ratio of its partitions (what Kafka shows as the cleaner's `max-dirty-percent` metric).
/// It is only returned when asked for by name, so the usual "all configs" answer is exactly
/// Kafka's.
pub const DIRTY_RATIO_KEY: &str = "eddy.cleanable.dirty.ratio";

fn dirty_ratio_entry(broker: &Broker, topic: &str) -> Option<ConfigValue> {
    let state = broker.topic(topic)?;
    let ratio = state
        .partitions
        .iter()
        .map(|p| p.log.read().cleanable_dirty_ratio())
        .fold(0.0f64, f64::max);
    Some(ConfigValue {
        name: DIRTY_RATIO_KEY.to_string(),
        value: Some(format!("{ratio:.4}")),
        source: cfg::ConfigKind::DefaultConfig,
        ty: ConfigType::Double,
        read_only: true,
        sensitive: false,
        doc: "Largest share of a partition's log not yet compacted (read-only, Eddy-specific).",
        synonyms: vec![],
    })
}

fn describe(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    keys: Option<&Vec<String>>,
) -> Result<Vec<ConfigValue>, (ErrorCode, String)> {
    match resource_type {
        RESOURCE_TOPIC => {
            let overrides = current_overrides(broker, resource_type, name)?;
            let mut values =
                broker.with_layers(|layers, _| cfg::resolve_all_topic_configs(&overrides, layers));
            if keys.is_some_and(|k| k.iter().any(|k| k == DIRTY_RATIO_KEY)) {
                values.extend(dirty_ratio_entry(broker, name));
            }
            Ok(values)
        }
        RESOURCE_BROKER => {
            check_broker_name(broker, name)?;
            Ok(broker.with_layers(|layers, _| {
                cfg::BROKER_CONFIGS
                    .iter()
                    .map(|d| cfg::resolve_broker_config(d, layers))
                    .collect()
            }))
        }
        other => Err((
            ErrorCode::InvalidRequest,
            format!("Unsupported resource type {other}"),
        )),
    }
}

/// DescribeConfigs.
pub mod describe_configs {
    use std::sync::Arc;

    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::describe_configs_response::{
        DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
    };
    use eddy_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

    use super::describe;
    use crate::broker::Broker;
    use crate::router::RequestContext;

    pub async fn handle(
        broker: &Arc<Broker>,
        ctx: &RequestContext,
        req: DescribeConfigsRequest,
    ) -> DescribeConfigsResponse {
        let results = req
            .resources
            .into_iter()
            .map(|r| {
                match describe(
                    broker,
                    r.resource_type,
                    &r.resource_name,
                    r.configuration_keys.as_ref(),
                ) {
                    Ok(values) => {
                        let configs = values
                            .into_iter()
                            .filter(|v| {
                                r.configuration_keys
                                    .as_ref()
                                    .is_none_or(|keys| keys.contains(&v.name))
                            })
                            .map(|v| DescribeConfigsResourceResult {
                                is_default: v.source as i8 == 5,
                                config_source: v.source as i8,
                                read_only: v.read_only,
                                is_sensitive: v.sensitive,
                                synonyms: if req.include_synonyms {
                                    v.synonyms
                                        .iter()
                                        .map(|(n, val, s)| DescribeConfigsSynonym {
                                            name: n.clone(),
                                            value: Some(val.clone()),
                                            source: *s as i8,
                                            ..Default::default()
                                        })
                                        .collect()
                                } else {
                                    vec![]
                                },
                                config_type: if ctx.api_version >= 3 { v.ty as i8 } else { 0 },
                                documentation: if req.include_documentation {
                                    Some(v.doc.to_string())
                                } else {
                                    None
                                },
                                name: v.name,
                                value: v.value,
                                ..Default::default()
                            })
                            .collect();
                        DescribeConfigsResult {
                            error_code: 0,
                            error_message: None,
                            resource_type: r.resource_type,
                            resource_name: r.resource_name,
                            configs,
                            ..Default::default()
                        }
                    }
                    Err((code, msg)) => DescribeConfigsResult {
                        error_code: code.code(),
                        error_message: Some(msg),
                        resource_type: r.resource_type,
                        resource_name: r.resource_name,
                        configs: vec![],
                        ..Default::default()
                    },
                }
            })
            .collect();
        DescribeConfigsResponse {
            results,
            ..Default::default()
        }
    }

    pub fn error_response(
        req: &DescribeConfigsRequest,
        code: ErrorCode,
    ) -> DescribeConfigsResponse {
        DescribeConfigsResponse {
            results: req
                .resources
                .iter()
                .map(|r| DescribeConfigsResult {
                    error_code: code.code(),
                    resource_type: r.resource_type,
                    resource_name: r.resource_name.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }
}

/// AlterConfigs: replaces all overrides of a resource.
pub mod alter_configs {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
    use eddy_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

    use super::store_overrides;
    use crate::broker::Broker;
    use crate::router::RequestContext;

    fn result(
        resource_type: i8,
        name: String,
        outcome: Result<(), (ErrorCode, String)>,
    ) -> AlterConfigsResourceResponse {
        let (code, msg) = match outcome {
            Ok(()) => (ErrorCode::None, None),
            Err((c, m)) => (c, Some(m)),
        };
        AlterConfigsResourceResponse {
            error_code: code.code(),
            error_message: msg,
            resource_type,
            resource_name: name,
            ..Default::default()
        }
    }

    pub async fn handle(
        broker: &Arc<Broker>,
        _ctx: &RequestContext,
        req: AlterConfigsRequest,
    ) -> AlterConfigsResponse {
        let responses = req
            .resources
            .into_iter()
            .map(|r| {
                let mut configs = BTreeMap::new();
                for c in &r.configs {
                    match &c.value {
                        Some(v) => {
                            configs.insert(c.name.clone(), v.clone());
                        }
                        None => {
                            return result(
                                r.resource_type,
                                r.resource_name,
                                Err((
                                    ErrorCode::InvalidRequest,
                                    format!("Null value not supported for: {}", c.name),
                                )),
                            )
                        }
                    }
                }
                let outcome = store_overrides(
                    broker,
                    r.resource_type,
                    &r.resource_name,
                    configs,
                    req.validate_only,
                );
                result(r.resource_type, r.resource_name, outcome)
            })
            .collect();
        AlterConfigsResponse {
            responses,
            ..Default::default()
        }
    }

    pub fn error_response(req: &AlterConfigsRequest, code: ErrorCode) -> AlterConfigsResponse {
        AlterConfigsResponse {
            responses: req
                .resources
                .iter()
                .map(|r| {
                    result(
                        r.resource_type,
                        r.resource_name.clone(),
                        Err((code, code.message().to_string())),
                    )
                })
                .collect(),
            ..Default::default()
        }
    }
}

/// IncrementalAlterConfigs: SET, DELETE, APPEND, SUBTRACT on single configs.
pub mod incremental_alter_configs {
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Arc;

    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::incremental_alter_configs_request::AlterableConfig;
    use eddy_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    use eddy_protocol::messages::{
        IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    };

    use super::{current_overrides, is_list, store_overrides};
    use crate::broker::Broker;
    use crate::router::RequestContext;

    const SET: i8 = 0;
    const DELETE: i8 = 1;
    const APPEND: i8 = 2;
    const SUBTRACT: i8 = 3;

    fn apply(
        configs: &mut BTreeMap<String, String>,
        resource_type: i8,
        c: &AlterableConfig,
        effective: impl Fn(&str) -> Option<String>,
    ) -> Result<(), (ErrorCode, String)> {
        match c.config_operation {
            SET => {
                let v = c.value.clone().ok_or_else(|| {
                    (
                        ErrorCode::InvalidRequest,
                        format!("Null value not supported for: {}", c.name),
                    )
                })?;
                configs.insert(c.name.clone(), v);
            }
            DELETE => {
                configs.remove(&c.name);
            }
            APPEND | SUBTRACT => {
                if !is_list(resource_type, &c.name) {
                    return Err((
                        ErrorCode::InvalidConfig,
                        format!(
                            "Config value append/subtract is not allowed for config key: {}",
                            c.name
                        ),
                    ));
                }
                let current = configs
                    .get(&c.name)
                    .cloned()
                    .or_else(|| effective(&c.name))
                    .unwrap_or_default();
                let mut items: Vec<String> = current
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                let given: Vec<String> = c
                    .value
                    .as_deref()
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                if c.config_operation == APPEND {
                    for g in given {
                        if !items.contains(&g) {
                            items.push(g);
                        }
                    }
                } else {
                    items.retain(|i| !given.contains(i));
                }
                configs.insert(c.name.clone(), items.join(","));
            }
            other => {
                return Err((
                    ErrorCode::InvalidRequest,
                    format!("Unknown config operation {other}"),
                ))
            }
        }
        Ok(())
    }

    fn alter_one(
        broker: &Broker,
        resource_type: i8,
        name: &str,
        changes: &[AlterableConfig],
        validate_only: bool,
    ) -> Result<(), (ErrorCode, String)> {
        let mut seen = HashSet::new();
        if let Some(dup) = changes.iter().find(|c| !seen.insert(c.name.as_str())) {
            return Err((
                ErrorCode::InvalidRequest,
                format!("Error due to duplicate config keys: {}", dup.name),
            ));
        }
        let mut configs = current_overrides(broker, resource_type, name)?;
        for c in changes {
            apply(&mut configs, resource_type, c, |key| {
                super::effective_value(broker, resource_type, name, key)
            })?;
        }
        store_overrides(broker, resource_type, name, configs, validate_only)
    }

    pub async fn handle(
        broker: &Arc<Broker>,
        _ctx: &RequestContext,
        req: IncrementalAlterConfigsRequest,
    ) -> IncrementalAlterConfigsResponse {
        let responses = req
            .resources
            .into_iter()
            .map(|r| {
                let (code, msg) = match alter_one(
                    broker,
                    r.resource_type,
                    &r.resource_name,
                    &r.configs,
                    req.validate_only,
                ) {
                    Ok(()) => (ErrorCode::None, None),
                    Err((c, m)) => (c, Some(m)),
                };
                AlterConfigsResourceResponse {
                    error_code: code.code(),
                    error_message: msg,
                    resource_type: r.resource_type,
                    resource_name: r.resource_name,
                    ..Default::default()
                }
            })
            .collect();
        IncrementalAlterConfigsResponse {
            responses,
            ..Default::default()
        }
    }

    pub fn error_response(
        req: &IncrementalAlterConfigsRequest,
        code: ErrorCode,
    ) -> IncrementalAlterConfigsResponse {
        IncrementalAlterConfigsResponse {
            responses: req
                .resources
                .iter()
                .map(|r| AlterConfigsResourceResponse {
                    error_code: code.code(),
                    resource_type: r.resource_type,
                    resource_name: r.resource_name.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }
}

fn is_list(resource_type: i8, name: &str) -> bool {
    let scope = if resource_type == RESOURCE_TOPIC {
        ConfigScope::Topic
    } else {
        ConfigScope::Broker
    };
    cfg::find(scope, name).is_some_and(|d| d.ty == ConfigType::List)
}

/// The effective value of a config of a resource (for APPEND/SUBTRACT on an unset list).
fn effective_value(broker: &Broker, resource_type: i8, name: &str, key: &str) -> Option<String> {
    describe(broker, resource_type, name, None)
        .ok()?
        .into_iter()
        .find(|v| v.name == key)
        .and_then(|v| v.value)
}

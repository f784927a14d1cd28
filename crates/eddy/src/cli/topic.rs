//! `eddy topic create|list|describe|delete|alter`.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use eddy_client::{
    AdminClient, AlterConfigOp, ConfigResource, ErrorCode, NewTopic, TopicDescription,
};

use super::{parse_kv, CliError, ConnArgs};

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topic names, one per line.
    List(ListArgs),
    /// Show a topic's id, configs and partitions (leader, replicas, isr, offsets).
    Describe(DescribeArgs),
    /// Delete a topic.
    Delete(DeleteArgs),
    /// Add partitions or change configs.
    Alter(AlterArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Topic name.
    name: String,
    /// Number of partitions (default: the broker's num.partitions).
    #[arg(long, short = 'p')]
    partitions: Option<i32>,
    /// Replication factor (default: the broker's default.replication.factor).
    #[arg(long, short = 'r')]
    replication_factor: Option<i16>,
    /// A topic config KEY=VALUE, e.g. retention.ms=86400000 (repeatable).
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
    configs: Vec<String>,
    /// Succeed if the topic already exists.
    #[arg(long)]
    if_not_exists: bool,
    /// Only check that the topic could be created.
    #[arg(long)]
    validate_only: bool,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Also print the partition count (NAME<TAB>PARTITIONS).
    #[arg(long, short = 'l')]
    long: bool,
    /// Include internal topics.
    #[arg(long)]
    include_internal: bool,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// Topic name.
    name: String,
    /// Show every config, not only the ones that differ from the defaults.
    #[arg(long)]
    all_configs: bool,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Topic name.
    name: String,
    /// Succeed if the topic does not exist.
    #[arg(long)]
    if_exists: bool,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct AlterArgs {
    /// Topic name.
    name: String,
    /// The new (higher) number of partitions.
    #[arg(long, short = 'p')]
    partitions: Option<i32>,
    /// Set a topic config KEY=VALUE (repeatable).
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
    configs: Vec<String>,
    /// Revert a topic config to its default (repeatable).
    #[arg(long = "delete-config", value_name = "KEY")]
    delete_configs: Vec<String>,
    #[command(flatten)]
    conn: ConnArgs,
}

pub async fn run(cmd: TopicCommand) -> Result<ExitCode, CliError> {
    match cmd {
        TopicCommand::Create(a) => create(a).await,
        TopicCommand::List(a) => list(a).await,
        TopicCommand::Describe(a) => describe(a).await,
        TopicCommand::Delete(a) => delete(a).await,
        TopicCommand::Alter(a) => alter(a).await,
    }
}

fn admin(conn: &ConnArgs) -> Result<AdminClient, CliError> {
    Ok(AdminClient::new(conn.common()?)?)
}

async fn create(a: CreateArgs) -> Result<ExitCode, CliError> {
    let mut topic = NewTopic::new(&a.name, a.partitions.unwrap_or(-1))
        .replication_factor(a.replication_factor.unwrap_or(-1));
    for c in &a.configs {
        let (k, v) = parse_kv(c, "--config")?;
        topic = topic.config(k, v);
    }
    let admin = admin(&a.conn)?;
    match admin.create_topic(topic, a.validate_only).await {
        Ok(_) if a.validate_only => println!("Topic {} can be created.", a.name),
        Ok(_) => println!("Created topic {}.", a.name),
        Err(e) if a.if_not_exists && e.code() == Some(ErrorCode::TopicAlreadyExists) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(a: ListArgs) -> Result<ExitCode, CliError> {
    let topics = admin(&a.conn)?.list_topics(a.include_internal).await?;
    let mut out = String::new();
    for t in topics {
        if a.long {
            let _ = writeln!(out, "{}\t{}", t.name, t.partitions);
        } else {
            let _ = writeln!(out, "{}", t.name);
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

async fn describe(a: DescribeArgs) -> Result<ExitCode, CliError> {
    let admin = admin(&a.conn)?;
    let d = admin.describe_topic(&a.name).await?;
    let compacted = d
        .config("cleanup.policy")
        .and_then(|c| c.value.as_deref())
        .is_some_and(|p| p.contains("compact"));
    // Eddy brokers report the dirty ratio of compacted topics; other brokers answer nothing.
    let dirty_ratio = if compacted {
        let key = "eddy.cleanable.dirty.ratio".to_string();
        admin
            .describe_config_keys(
                &ConfigResource::Topic(a.name.clone()),
                Some(vec![key.clone()]),
            )
            .await
            .ok()
            .and_then(|entries| entries.into_iter().find(|e| e.name == key))
            .and_then(|e| e.value)
    } else {
        None
    };
    print!(
        "{}",
        format_description(&d, a.all_configs, dirty_ratio.as_deref())
    );
    Ok(ExitCode::SUCCESS)
}

/// kafka-topics.sh's layout plus the cleanup policy and log offsets:
///
/// ```text
/// Topic: orders<TAB>TopicId: ...<TAB>PartitionCount: 2<TAB>ReplicationFactor: 1<TAB>CleanupPolicy: delete<TAB>Configs: retention.ms=1000
/// <TAB>Topic: orders<TAB>Partition: 0<TAB>Leader: 1<TAB>Replicas: 1<TAB>Isr: 1<TAB>LogStartOffset: 0<TAB>LogEndOffset: 5
/// ```
fn format_description(
    d: &TopicDescription,
    all_configs: bool,
    dirty_ratio: Option<&str>,
) -> String {
    let configs: Vec<String> = d
        .configs
        .iter()
        .filter(|c| all_configs || !c.is_default())
        .map(|c| {
            let v = if c.is_sensitive {
                "(sensitive)"
            } else {
                c.value.as_deref().unwrap_or("")
            };
            format!("{}={}", c.name, v)
        })
        .collect();
    let cleanup = d
        .config("cleanup.policy")
        .and_then(|c| c.value.clone())
        .unwrap_or_else(|| "unknown".to_string());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tCleanupPolicy: {}{}\tConfigs: {}",
        d.name,
        d.topic_id,
        d.partitions.len(),
        d.replication_factor(),
        cleanup,
        dirty_ratio.map(|r| format!("\tDirtyRatio: {r}")).unwrap_or_default(),
        configs.join(",")
    );
    let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    let off = |o: Option<i64>| o.map_or_else(|| "unknown".to_string(), |o| o.to_string());
    for p in &d.partitions {
        let _ = writeln!(
            out,
            "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}\tLogStartOffset: {}\tLogEndOffset: {}",
            d.name,
            p.info.partition,
            p.info.leader.map_or_else(|| "none".to_string(), |l| l.to_string()),
            ids(&p.info.replicas),
            ids(&p.info.isr),
            off(p.log_start_offset),
            off(p.log_end_offset),
        );
    }
    out
}

async fn delete(a: DeleteArgs) -> Result<ExitCode, CliError> {
    match admin(&a.conn)?.delete_topic(&a.name).await {
        Ok(()) => println!("Deleted topic {}.", a.name),
        Err(e) if a.if_exists && e.code() == Some(ErrorCode::UnknownTopicOrPartition) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(ExitCode::SUCCESS)
}

async fn alter(a: AlterArgs) -> Result<ExitCode, CliError> {
    if a.partitions.is_none() && a.configs.is_empty() && a.delete_configs.is_empty() {
        return Err(CliError::Usage(
            "nothing to alter: give --partitions, --config or --delete-config".to_string(),
        ));
    }
    let mut ops = Vec::new();
    for c in &a.configs {
        let (k, v) = parse_kv(c, "--config")?;
        ops.push(AlterConfigOp::Set(k, v));
    }
    for k in &a.delete_configs {
        ops.push(AlterConfigOp::Delete(k.trim().to_string()));
    }
    let admin = admin(&a.conn)?;
    // Fail early, with the usual message, if the topic does not exist.
    admin.cluster().invalidate(&a.name);
    admin.cluster().topic(&a.name, false).await?;
    if let Some(n) = a.partitions {
        admin.create_partitions(&a.name, n, false).await?;
        println!("Topic {} now has {} partitions.", a.name, n);
    }
    if !ops.is_empty() {
        admin
            .incremental_alter_configs(&ConfigResource::Topic(a.name.clone()), &ops, false)
            .await?;
        println!("Updated the configs of topic {}.", a.name);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_client::{ConfigEntry, ConfigSource, PartitionDescription, PartitionInfo, Uuid};

    #[test]
    fn description_layout() {
        let entry = |name: &str, value: &str, source| ConfigEntry {
            name: name.into(),
            value: Some(value.into()),
            source,
            read_only: false,
            is_sensitive: false,
        };
        let d = TopicDescription {
            name: "orders".into(),
            topic_id: Uuid::ZERO,
            is_internal: false,
            partitions: vec![PartitionDescription {
                info: PartitionInfo {
                    partition: 0,
                    leader: Some(1),
                    leader_epoch: 0,
                    replicas: vec![1, 2],
                    isr: vec![1],
                    offline_replicas: vec![],
                    error: None,
                },
                log_start_offset: Some(3),
                log_end_offset: None,
            }],
            configs: vec![
                entry("cleanup.policy", "compact", ConfigSource::DynamicTopic),
                entry("retention.ms", "604800000", ConfigSource::Default),
            ],
        };
        let with_ratio = format_description(&d, false, Some("0.2500"));
        assert!(
            with_ratio.starts_with("Topic: orders\tTopicId: AAAAAAAAAAAAAAAAAAAAAA\tPartitionCount: 1\tReplicationFactor: 2\tCleanupPolicy: compact\tDirtyRatio: 0.2500\tConfigs:"),
            "{with_ratio}"
        );
        let out = format_description(&d, false, None);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "Topic: orders\tTopicId: AAAAAAAAAAAAAAAAAAAAAA\tPartitionCount: 1\tReplicationFactor: 2\tCleanupPolicy: compact\tConfigs: cleanup.policy=compact"
        );
        assert_eq!(
            lines[1],
            "\tTopic: orders\tPartition: 0\tLeader: 1\tReplicas: 1,2\tIsr: 1\tLogStartOffset: 3\tLogEndOffset: unknown"
        );
        let all = format_description(&d, true, None);
        assert!(all
            .lines()
            .next()
            .unwrap()
            .ends_with("Configs: cleanup.policy=compact,retention.ms=604800000"));
    }
}

//! `eddy group list|describe|delete|reset-offsets`.
//!
//! Output formats (tab-separated, for scripts):
//! - `list`: one group id per line, sorted (like `kafka-consumer-groups
//!   --list`); with `--long`: `GROUP<TAB>STATE<TAB>PROTOCOL_TYPE`.
//! - `describe`: `KEY<TAB>VALUE` lines (`GROUP`, `STATE`, `TYPE`,
//!   `ASSIGNOR`, `COORDINATOR` as `ID<TAB>HOST:PORT`), one line per member
//!   `MEMBER<TAB>ID<TAB>CLIENT-ID<TAB>HOST<TAB>T:P,T:P`, then the table
//!   `TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID` (`-`
//!   for no committed offset / no owner; lag = log end - committed), then
//!   `TOTAL-LAG<TAB>N` (sum of the known lags).
//! - `reset-offsets`: `TOPIC PARTITION NEW-OFFSET` table; applied only with
//!   `--execute`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand};
use eddy_client::{AdminClient, OffsetSpec};

use super::{CliError, ConnArgs};

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups (ids; --long adds state and protocol type).
    List(ListArgs),
    /// Show a group: state, coordinator, members, committed offsets and lag.
    Describe(DescribeArgs),
    /// Delete a group without members (its committed offsets too).
    Delete(DeleteArgs),
    /// Plan (or with --execute apply) new committed offsets for a topic.
    ResetOffsets(ResetArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print GROUP<TAB>STATE<TAB>PROTOCOL_TYPE.
    #[arg(long, short = 'l')]
    long: bool,
    /// Only groups in this state, e.g. Stable, Empty (repeatable).
    #[arg(long = "state")]
    states: Vec<String>,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// Group id.
    group: String,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Group id.
    group: String,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("to").required(true).args(
    ["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"])))]
pub struct ResetArgs {
    /// Group id.
    group: String,
    /// Topic whose partitions are reset (all of them).
    #[arg(long)]
    topic: String,
    /// To the log start offset.
    #[arg(long)]
    to_earliest: bool,
    /// To the log end offset.
    #[arg(long)]
    to_latest: bool,
    /// To this offset (clamped to the log's range).
    #[arg(long)]
    to_offset: Option<i64>,
    /// To the first record at or after this time, ISO 8601
    /// (2026-01-02T03:04:05Z, 2026-01-02T03:04:05.123+02:00).
    #[arg(long)]
    to_datetime: Option<String>,
    /// Move the committed offsets by N (negative: back), clamped to the log.
    #[arg(long, allow_hyphen_values = true)]
    shift_by: Option<i64>,
    /// Apply the plan (default: only print it).
    #[arg(long)]
    execute: bool,
    #[command(flatten)]
    conn: ConnArgs,
}

pub async fn run(cmd: GroupCommand) -> Result<ExitCode, CliError> {
    match cmd {
        GroupCommand::List(a) => list(a).await,
        GroupCommand::Describe(a) => describe(a).await,
        GroupCommand::Delete(a) => delete(a).await,
        GroupCommand::ResetOffsets(a) => reset(a).await,
    }
}

fn admin(conn: &ConnArgs) -> Result<AdminClient, CliError> {
    Ok(AdminClient::new(conn.common()?)?)
}

async fn list(a: ListArgs) -> Result<ExitCode, CliError> {
    let groups = admin(&a.conn)?.list_groups(&a.states).await?;
    let mut out = String::new();
    for g in groups {
        if a.long {
            let _ = writeln!(out, "{}\t{}\t{}", g.group_id, g.state, g.protocol_type);
        } else {
            let _ = writeln!(out, "{}", g.group_id);
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// Log start and end offsets of every partition of the given topics.
async fn log_range(
    admin: &AdminClient,
    parts: &[(String, i32)],
) -> Result<Vec<(i64, i64)>, CliError> {
    let mut specs = Vec::new();
    for (t, p) in parts {
        specs.push((t.clone(), *p, OffsetSpec::Earliest));
        specs.push((t.clone(), *p, OffsetSpec::Latest));
    }
    let r = admin.list_offsets(&specs).await?;
    let mut out = Vec::new();
    let mut it = r.into_iter();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        out.push((a?.offset, b?.offset));
    }
    Ok(out)
}

async fn describe(a: DescribeArgs) -> Result<ExitCode, CliError> {
    let admin = admin(&a.conn)?;
    let d = admin.describe_group(&a.group).await?;
    let committed = admin.list_group_offsets(&a.group).await?;
    if d.state == "Dead" && committed.is_empty() {
        return Err(CliError::Usage(format!(
            "consumer group '{}' does not exist",
            a.group
        )));
    }
    let mut out = String::new();
    let _ = writeln!(out, "GROUP\t{}", d.group_id);
    let _ = writeln!(out, "STATE\t{}", d.state);
    let _ = writeln!(out, "TYPE\t{}", d.group_type);
    let _ = writeln!(out, "ASSIGNOR\t{}", d.assignor);
    let _ = writeln!(
        out,
        "COORDINATOR\t{}\t{}:{}",
        d.coordinator.node_id, d.coordinator.host, d.coordinator.port
    );
    // (topic, partition) -> (committed, owner)
    let mut rows: BTreeMap<(String, i32), (Option<i64>, Option<String>)> = BTreeMap::new();
    for m in &d.members {
        let parts: Vec<String> = m
            .assignment
            .iter()
            .map(|(t, p)| format!("{t}:{p}"))
            .collect();
        let _ = writeln!(
            out,
            "MEMBER\t{}\t{}\t{}\t{}",
            m.member_id,
            m.client_id,
            m.client_host,
            parts.join(",")
        );
        for (t, p) in &m.assignment {
            rows.entry((t.clone(), *p)).or_default().1 = Some(m.member_id.clone());
        }
    }
    for c in committed {
        rows.entry((c.topic, c.partition)).or_default().0 = Some(c.offset);
    }
    let keys: Vec<(String, i32)> = rows.keys().cloned().collect();
    let ranges = log_range(&admin, &keys).await?;
    let _ = writeln!(
        out,
        "TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tCONSUMER-ID"
    );
    let mut total = 0i64;
    for (((t, p), (committed, owner)), (_, end)) in rows.iter().zip(ranges) {
        let (cur, lag) = match committed {
            Some(c) => {
                let lag = (end - c).max(0);
                total += lag;
                (c.to_string(), lag.to_string())
            }
            None => ("-".to_string(), "-".to_string()),
        };
        let _ = writeln!(
            out,
            "{t}\t{p}\t{cur}\t{end}\t{lag}\t{}",
            owner.as_deref().unwrap_or("-")
        );
    }
    let _ = writeln!(out, "TOTAL-LAG\t{total}");
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

async fn delete(a: DeleteArgs) -> Result<ExitCode, CliError> {
    admin(&a.conn)?.delete_group(&a.group).await?;
    println!("Deleted group {}.", a.group);
    Ok(ExitCode::SUCCESS)
}

async fn reset(a: ResetArgs) -> Result<ExitCode, CliError> {
    let admin = admin(&a.conn)?;
    let info = admin
        .cluster()
        .topic_with_leaders(&a.topic, false, std::time::Duration::from_secs(10))
        .await?;
    let parts: Vec<(String, i32)> = info
        .partitions
        .iter()
        .map(|p| (a.topic.clone(), p.partition))
        .collect();
    let ranges = log_range(&admin, &parts).await?;
    let targets: Vec<i64> = if a.to_earliest {
        ranges.iter().map(|r| r.0).collect()
    } else if a.to_latest {
        ranges.iter().map(|r| r.1).collect()
    } else if let Some(o) = a.to_offset {
        ranges.iter().map(|r| o.clamp(r.0, r.1)).collect()
    } else if let Some(dt) = &a.to_datetime {
        let ms = parse_iso8601(dt)
            .ok_or_else(|| CliError::Usage(format!("'{dt}' is not an ISO 8601 date-time")))?;
        let specs: Vec<_> = parts
            .iter()
            .map(|(t, p)| (t.clone(), *p, OffsetSpec::Timestamp(ms)))
            .collect();
        let mut v = Vec::new();
        for (r, range) in admin.list_offsets(&specs).await?.into_iter().zip(&ranges) {
            let o = r?.offset;
            v.push(if o < 0 { range.1 } else { o });
        }
        v
    } else if let Some(n) = a.shift_by {
        let committed: BTreeMap<(String, i32), i64> = admin
            .list_group_offsets(&a.group)
            .await?
            .into_iter()
            .map(|c| ((c.topic, c.partition), c.offset))
            .collect();
        let mut v = Vec::new();
        for ((t, p), r) in parts.iter().zip(&ranges) {
            let cur = committed.get(&(t.clone(), *p)).ok_or_else(|| {
                CliError::Usage(format!(
                    "group '{}' has no committed offset for topic '{t}' partition {p} to shift",
                    a.group
                ))
            })?;
            v.push(cur.saturating_add(n).clamp(r.0, r.1));
        }
        v
    } else {
        return Err(CliError::Usage("choose where to reset to".into()));
    };
    let plan: Vec<(String, i32, i64)> = parts
        .iter()
        .zip(targets)
        .map(|((t, p), o)| (t.clone(), *p, o))
        .collect();
    if a.execute {
        let d = admin.describe_group(&a.group).await?;
        if !d.members.is_empty() {
            return Err(CliError::Usage(format!(
                "offsets of group '{}' can only be reset while it has no members, but its state is {} with {} member(s)",
                a.group,
                d.state,
                d.members.len()
            )));
        }
        admin.alter_group_offsets(&a.group, &plan).await?;
    }
    let mut out = String::from("TOPIC\tPARTITION\tNEW-OFFSET\n");
    for (t, p, o) in &plan {
        let _ = writeln!(out, "{t}\t{p}\t{o}");
    }
    print!("{out}");
    if !a.execute {
        eprintln!("dry run: add --execute to apply");
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM|±HHMM]` (no zone: UTC) into
/// milliseconds since the epoch.
fn parse_iso8601(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once(['T', ' '])?;
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let mo: i64 = d.next()?.parse().ok()?;
    let da: i64 = d.next()?.parse().ok()?;
    if d.next().is_some() || !(1..=12).contains(&mo) || !(1..=31).contains(&da) {
        return None;
    }
    // Split off the zone.
    let (time, offset_min) = if let Some(t) = rest.strip_suffix(['Z', 'z']) {
        (t, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (t, z) = rest.split_at(i);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let z = z[1..].replace(':', "");
        if z.len() != 4 || !z.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let h: i64 = z[..2].parse().ok()?;
        let m: i64 = z[2..].parse().ok()?;
        (t, sign * (h * 60 + m))
    } else {
        (rest, 0)
    };
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (time, None),
    };
    let mut t = hms.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let mi: i64 = t.next()?.parse().ok()?;
    let se: i64 = match t.next() {
        Some(x) => x.parse().ok()?,
        None => 0,
    };
    if t.next().is_some() || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let millis = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            let f3: String = f.chars().chain("000".chars()).take(3).collect();
            f3.parse().ok()?
        }
        Some(_) => return None,
    };
    // Days from civil (Howard Hinnant).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + h * 3600 + mi * 60 + se - offset_min * 60;
    Some(secs * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::parse_iso8601;

    #[test]
    fn iso8601() {
        assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_iso8601("2026-01-02T03:04:05Z"),
            Some(1_767_323_045_000)
        );
        assert_eq!(
            parse_iso8601("2026-01-02T03:04:05.123Z"),
            Some(1_767_323_045_123)
        );
        assert_eq!(
            parse_iso8601("2026-01-02T05:04:05.5+02:00"),
            Some(1_767_323_045_500)
        );
        assert_eq!(
            parse_iso8601("2026-01-01T22:04:05-0500"),
            Some(1_767_323_045_000)
        );
        assert_eq!(parse_iso8601("2000-02-29T00:00:00"), Some(951_782_400_000));
        assert_eq!(parse_iso8601("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_iso8601("yesterday"), None);
        assert_eq!(parse_iso8601("2026-01-02T03:04:05+2"), None);
    }
}

//! Checks the schema cannot express: GUC names and values against the PostgreSQL catalog,
//! the supported versions, Patroni's timing rule.
//!
//! They run on the JSON document next to the schema check, so that one pass reports every
//! problem; a part the model cannot read (a schema error there) is skipped here.

use std::collections::HashMap;

use serde_json::Value;

use super::diagnostic::Pos;
use super::model::{GucValue, PatroniSettings, Postgres};
use super::positions::{Positions, escape_segment};
use crate::pg;

pub(crate) fn check(doc: &Value, positions: &Positions) -> Vec<(Pos, String)> {
    let mut out = Vec::new();
    check_data_dir(doc, positions, &mut out);
    check_ports(doc, positions, &mut out);
    check_docker(doc, positions, &mut out);
    check_ssh(doc, positions, &mut out);
    check_adopted(doc, positions, &mut out);
    check_health(doc, positions, &mut out);
    check_backup(doc, positions, &mut out);
    check_restore_from(doc, positions, &mut out);
    check_postgres(doc, positions, &mut out);
    check_patroni(doc, positions, &mut out);
    check_resources(doc, positions, &mut out);
    out
}

/// Names PostgreSQL reserves for roles (`CREATE ROLE public` fails, and these words mean
/// something else wherever a role is named).
const RESERVED_ROLE_WORDS: [&str; 6] = [
    "public",
    "current_user",
    "session_user",
    "current_role",
    "none",
    "all",
];

/// Directories a cluster's data may not live in or be: the system's own trees.
const SYSTEM_TREES: [&str; 24] = [
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media",
    "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
    "/var/lib", "/var/log",
];

/// A spec's `data_dir`: absolute, without `.` or `..`, and not a system tree itself.
fn check_data_dir(doc: &Value, positions: &Positions, out: &mut Vec<(Pos, String)>) {
    for provider in ["local", "ssh"] {
        check_data_dir_of(provider, doc, positions, out);
    }
}

fn check_data_dir_of(
    provider: &str,
    doc: &Value,
    positions: &Positions,
    out: &mut Vec<(Pos, String)>,
) {
    let pointer = format!("/spec/provider/{provider}/data_dir");
    let pointer = pointer.as_str();
    let Some(dir) = doc.pointer(pointer).and_then(Value::as_str) else {
        return;
    };
    let at = positions.value_or_key(pointer);
    let path = std::path::Path::new(dir);
    let problem = if !path.is_absolute() {
        Some("must be an absolute path".to_owned())
    } else if path.components().any(|c| {
        matches!(
            c,
            std::path::Component::ParentDir | std::path::Component::CurDir
        )
    }) || dir.contains("//")
    {
        Some("must be normalized: no `.`, `..` or empty components".to_owned())
    } else if dir.chars().any(char::is_control) {
        Some("must not contain control characters".to_owned())
    } else {
        let trimmed = dir.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        SYSTEM_TREES
            .contains(&trimmed)
            .then(|| format!("`{trimmed}` is a system directory; give the cluster a directory of its own (such as /var/lib/pgdba/<name>)"))
    };
    if let Some(p) = problem {
        out.push((at, format!("spec.provider.{provider}.data_dir `{dir}` {p}")));
    }
}

/// Ports that add up: member `i` listens on `pg_port + i` and `api_port + i`, etcd's peer on
/// `etcd_port + 1`; every one of them must be a port.
fn check_ports(doc: &Value, positions: &Positions, out: &mut Vec<(Pos, String)>) {
    let replicas = doc
        .pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    for (field, extra) in [
        ("pg_port", replicas),
        ("api_port", replicas),
        ("etcd_port", 1),
    ] {
        let pointer = format!("/spec/provider/local/{field}");
        let Some(port) = doc.pointer(&pointer).and_then(Value::as_u64) else {
            continue;
        };
        if port.saturating_add(extra) > u64::from(u16::MAX) {
            out.push((
                positions.value_or_key(&pointer),
                format!(
                    "spec.provider.local.{field} {port} leaves no room: the cluster also needs port {port} + {extra}, above 65535"
                ),
            ));
        }
    }
}

/// `spec.backup`: an absolute repository path, archiving left to pgdba, a provider that runs
/// pgBackRest beside the members.
fn check_backup(doc: &Value, positions: &Positions, out: &mut Vec<(Pos, String)>) {
    let Some(backup) = doc.pointer("/spec/backup") else {
        return;
    };
    check_repository(doc, positions, "/spec/backup/repository", out);
    if backup.get("from_standby").and_then(Value::as_bool) == Some(true)
        && doc.pointer("/spec/replicas").and_then(Value::as_u64) == Some(0)
    {
        out.push((
            positions.value_or_key("/spec/backup/from_standby"),
            "spec.backup.from_standby needs a replica to back up from, and spec.replicas is 0"
                .to_owned(),
        ));
    }
    if backup.get("from_standby").and_then(Value::as_bool) == Some(true)
        && doc.pointer("/spec/provider/docker").is_some()
    {
        out.push((
            positions.value_or_key("/spec/backup/from_standby"),
            "spec.backup.from_standby works on the local provider so far: in a container pgBackRest reaches only its own member's PostgreSQL, and the primary's too is needed"
                .to_owned(),
        ));
    }
    if backup.get("from_standby").and_then(Value::as_bool) == Some(true)
        && doc.pointer("/spec/provider/ssh").is_some()
    {
        out.push((
            positions.value_or_key("/spec/backup/from_standby"),
            "spec.backup.from_standby works on the local provider so far: on a host pgBackRest reaches only its own member's PostgreSQL, and the primary's too is needed"
                .to_owned(),
        ));
    }
    for name in crate::spec::model::BACKUP_PARAMETERS
        .iter()
        .chain(&["archive_library"])
    {
        let pointer = format!("/spec/postgres/parameters/{name}");
        if doc.pointer(&pointer).is_some() {
            out.push((
                positions.key_or_value(&pointer),
                format!("parameter `{name}` is set by pgdba from spec.backup (WAL is archived through pgBackRest); remove it here"),
            ));
        }
    }
    check_schedule(backup, positions, out);
    if let Some(provider) = doc
        .pointer("/spec/provider")
        .and_then(Value::as_object)
        .and_then(|o| o.keys().next())
        && !["local", "docker", "ssh"].contains(&provider.as_str())
    {
        out.push((
            positions.key_or_value("/spec/backup"),
            format!("spec.backup works on the local, docker and ssh providers so far; the {provider} provider does not run pgBackRest yet"),
        ));
    }
}

/// A backup repository (`spec.backup.repository`, `spec.restore_from.repository`): an absolute
/// directory, or an S3 bucket as pgBackRest reaches it: over HTTPS at an endpoint that is a host
/// name (no scheme, path or port: the port has its own field), a bucket name S3 accepts, a
/// region, an absolute prefix, an absolute CA file.
fn check_repository(doc: &Value, positions: &Positions, base: &str, out: &mut Vec<(Pos, String)>) {
    let name = base.trim_start_matches('/').replace('/', ".");
    let absolute = |p: &str| p.starts_with('/') && !p.split('/').any(|c| c == "..");
    let mut problem = |field: &str, message: String| {
        out.push((
            positions.value_or_key(&format!("{base}/{field}")),
            format!("{name}.{} {message}", field.replace('/', ".")),
        ));
    };
    if let Some(path) = doc.pointer(&format!("{base}/path")).and_then(Value::as_str)
        && !absolute(path)
    {
        problem(
            "path",
            format!("`{path}` must be an absolute path without `..`"),
        );
    }
    // Both or neither: the schema says so, once.
    let Some(s3) = doc.pointer(&format!("{base}/s3")) else {
        return;
    };
    if doc.pointer(&format!("{base}/path")).is_some() {
        return;
    }
    let text = |field: &str| s3.get(field).and_then(Value::as_str);
    if let Some(bucket) = text("bucket")
        && !valid_bucket(bucket)
    {
        problem(
            "s3/bucket",
            format!(
                "`{bucket}` is not a bucket name: 3 to 63 lowercase letters, digits, `.` and `-`, starting and ending with a letter or digit"
            ),
        );
    }
    if let Some(endpoint) = text("endpoint") {
        let why = if endpoint.is_empty() {
            Some("is empty")
        } else if endpoint.contains("://") {
            Some("must be a host name without a scheme: pgBackRest always reaches S3 over HTTPS")
        } else if endpoint.contains('/') {
            Some("must be a host name, without a path")
        } else if endpoint.contains(':') {
            Some("must be a host name without a port: set `port`")
        } else if !endpoint
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            Some("must be a host name: letters, digits, `.` and `-`")
        } else {
            None
        };
        if let Some(why) = why {
            problem("s3/endpoint", format!("`{endpoint}` {why}"));
        }
    }
    if let Some(region) = text("region")
        && (region.is_empty() || region.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        problem(
            "s3/region",
            format!("`{region}` must be a region name such as `eu-west-1`"),
        );
    }
    if let Some(prefix) = text("path")
        && !absolute(prefix)
    {
        problem(
            "s3/path",
            format!("`{prefix}` must be an absolute prefix (`/pgdba`) without `..`"),
        );
    }
    if let Some(ca) = text("ca_file")
        && !absolute(ca)
    {
        problem(
            "s3/ca_file",
            format!("`{ca}` must be an absolute path without `..`"),
        );
    }
}

/// S3's rules for a bucket name (which pgBackRest's host-style URIs rely on).
fn valid_bucket(bucket: &str) -> bool {
    let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=63).contains(&bucket.len())
        && bucket.chars().all(|c| edge(c) || c == '.' || c == '-')
        && bucket.starts_with(edge)
        && bucket.ends_with(edge)
}

/// `spec.backup.schedule`: each entry a cron expression pgdba can install (`spec::cron`).
fn check_schedule(backup: &Value, positions: &Positions, out: &mut Vec<(Pos, String)>) {
    let Some(schedule) = backup.get("schedule").and_then(Value::as_object) else {
        return;
    };
    for (kind, expr) in schedule {
        let Some(expr) = expr.as_str() else {
            continue;
        };
        if let Err(e) = super::cron::Cron::parse(expr) {
            let pointer = format!("/spec/backup/schedule/{}", escape_segment(kind));
            out.push((
                positions.value_or_key(&pointer),
                format!("spec.backup.schedule.{kind}: {e}"),
            ));
        }
    }
}

/// `spec.restore_from`: an absolute repository path, a stanza, at most one target (a time
/// PostgreSQL reads), and the local provider.
fn check_restore_from(doc: &Value, positions: &Positions, out: &mut Vec<(Pos, String)>) {
    let base = "/spec/restore_from";
    let Some(restore) = doc.pointer(base) else {
        return;
    };
    check_repository(doc, positions, &format!("{base}/repository"), out);
    if let Some(stanza) = restore.get("stanza").and_then(Value::as_str)
        && (stanza.is_empty()
            || !stanza
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        out.push((
            positions.value_or_key(&format!("{base}/stanza")),
            format!("spec.restore_from.stanza `{stanza}`: letters, digits, `-` and `_` only"),
        ));
    }
    let targets: Vec<&str> = ["target_time", "target_lsn", "target_xid"]
        .into_iter()
        .filter(|k| restore.get(*k).is_some())
        .collect();
    if targets.len() > 1 {
        out.push((
            positions.key_or_value(&format!("{base}/{}", targets[1])),
            format!(
                "spec.restore_from takes at most one target; it has {}",
                targets.join(", ")
            ),
        ));
    }
    if let Some(t) = restore.get("target_time").and_then(Value::as_str)
        && crate::spec::model::parse_target_time(t).is_none()
    {
        out.push((
            positions.value_or_key(&format!("{base}/target_time")),
            format!(
                "spec.restore_from.target_time `{t}` is not a time: RFC 3339 (2026-12-02T06:50:00Z) or PostgreSQL's form (2026-12-02 06:50:00+00)"
            ),
        ));
    }
    if let Some(l) = restore.get("target_lsn").and_then(Value::as_str)
        && !l.split_once('/').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.len() <= 8
                && b.len() <= 8
                && a.chars().chain(b.chars()).all(|c| c.is_ascii_hexdigit())
        })
    {
        out.push((
            positions.value_or_key(&format!("{base}/target_lsn")),
            format!("spec.restore_from.target_lsn `{l}` is not a WAL location (0/3000060)"),
        ));
    }
    if let Some(x) = restore.get("target_xid").and_then(Value::as_str)
        && (x.is_empty() || !x.chars().all(|c| c.is_ascii_digit()))
    {
        out.push((
            positions.value_or_key(&format!("{base}/target_xid")),
            format!("spec.restore_from.target_xid `{x}` is not a transaction id"),
        ));
    }
    if let Some(provider) = doc
        .pointer("/spec/provider")
        .and_then(Value::as_object)
        .and_then(|o| o.keys().next())
        && provider != "local"
        && provider != "docker"
    {
        out.push((
            positions.key_or_value(base),
            format!("spec.restore_from works on the local and docker providers so far, not on {provider}"),
        ));
    }
}

/// The health checks' thresholds: each level in range, `warn` below `crit`.
fn check_health(doc: &Value, positions: &Positions, out: &mut Vec<(Pos, String)>) {
    let pointer = "/spec/health/thresholds";
    let Some(t) = doc.pointer(pointer) else {
        return;
    };
    // A value of the wrong type is the schema's to report.
    let Ok(t) = serde_json::from_value::<crate::ops::health::Thresholds>(t.clone()) else {
        return;
    };
    for p in t.problems() {
        out.push((
            positions.value_or_key(pointer),
            format!("spec.health.thresholds: {p}"),
        ));
    }
}

/// An adopted cluster's members: named once each, as many as the primary and `replicas`.
fn check_adopted(doc: &Value, positions: &Positions, out: &mut Vec<(Pos, String)>) {
    let Some(members) = doc
        .pointer("/spec/provider/adopted/members")
        .and_then(Value::as_array)
    else {
        return;
    };
    let at = positions.value_or_key("/spec/provider/adopted/members");
    if members.is_empty() {
        out.push((
            at,
            "spec.provider.adopted.members is empty: an adopted cluster has at least its leader"
                .to_owned(),
        ));
        return;
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, m) in members.iter().enumerate() {
        if let Some(name) = m.get("name").and_then(Value::as_str)
            && !seen.insert(name)
        {
            out.push((
                positions.value_or_key(&format!("/spec/provider/adopted/members/{i}/name")),
                format!("member `{name}` is listed twice"),
            ));
        }
    }
    if let Some(replicas) = doc.pointer("/spec/replicas").and_then(Value::as_u64)
        && replicas + 1 != members.len() as u64
    {
        out.push((
            positions.value_or_key("/spec/replicas"),
            format!(
                "replicas is {replicas}, but spec.provider.adopted lists {} members: an adopted cluster has the members it has (pgdba does not add or remove them)",
                members.len()
            ),
        ));
    }
}

/// The ssh provider's hosts: one per member, each once, keys as absolute paths.
fn check_ssh(doc: &Value, positions: &Positions, out: &mut Vec<(Pos, String)>) {
    let Some(hosts) = doc
        .pointer("/spec/provider/ssh/hosts")
        .and_then(Value::as_array)
    else {
        return;
    };
    let replicas = doc
        .pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if (hosts.len() as u64) < replicas + 1 {
        out.push((
            positions.key_or_value("/spec/provider/ssh/hosts"),
            format!(
                "spec.provider.ssh.hosts lists {} host(s), and spec.replicas {replicas} asks for {} members: one host per member",
                hosts.len(),
                replicas + 1
            ),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for list in ["hosts", "dcs_hosts"] {
        let Some(items) = doc
            .pointer(&format!("/spec/provider/ssh/{list}"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        if list == "dcs_hosts" && items.is_empty() {
            out.push((
                positions.key_or_value("/spec/provider/ssh/dcs_hosts"),
                "spec.provider.ssh.dcs_hosts is empty: list the hosts etcd runs on, or leave it out".to_owned(),
            ));
        }
        for (i, h) in items.iter().enumerate() {
            let at = format!("/spec/provider/ssh/{list}/{i}");
            let address = h.get("address").and_then(Value::as_str).unwrap_or_default();
            let port = h.get("port").and_then(Value::as_u64).unwrap_or(22);
            if address.is_empty()
                || address
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "/'\"\\$`@".contains(c))
            {
                out.push((
                    positions.value_or_key(&format!("{at}/address")),
                    format!("spec.provider.ssh.{list}[{i}].address `{address}` is not a host name or IP address"),
                ));
            }
            if list == "hosts" && !seen.insert((address.to_owned(), port)) {
                out.push((
                    positions.value_or_key(&format!("{at}/address")),
                    format!("spec.provider.ssh.hosts[{i}]: {address}:{port} is listed twice; each member needs a host of its own"),
                ));
            }
            if let Some(file) = h.pointer("/key/file").and_then(Value::as_str)
                && !std::path::Path::new(file).is_absolute()
            {
                out.push((
                    positions.value_or_key(&format!("{at}/key/file")),
                    format!(
                        "spec.provider.ssh.{list}[{i}].key.file `{file}` must be an absolute path"
                    ),
                ));
            }
        }
    }
}

/// The docker provider's names and subnet: what Docker accepts, with room for the cluster.
fn check_docker(doc: &Value, positions: &Positions, out: &mut Vec<(Pos, String)>) {
    let replicas = doc
        .pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if let Some(net) = doc
        .pointer("/spec/provider/docker/network")
        .and_then(Value::as_str)
    {
        let ok = net.len() <= 64
            && net
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && net
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            out.push((
                positions.value_or_key("/spec/provider/docker/network"),
                format!("spec.provider.docker.network `{net}` is not a Docker network name (letters, digits, `_`, `.`, `-`, starting with a letter or digit)"),
            ));
        }
    }
    let pointer = "/spec/provider/docker/subnet";
    if let Some(subnet) = doc.pointer(pointer).and_then(Value::as_str) {
        let problem = match crate::spec::parse_cidr(subnet) {
            Some((addr, _)) if addr.contains(':') => Some("must be an IPv4 subnet".to_owned()),
            Some(_) => {
                let bits: u32 = subnet
                    .rsplit_once('/')
                    .and_then(|(_, b)| b.parse().ok())
                    .unwrap_or(32);
                // The gateway, 3 etcd members, the members and PgBouncer.
                let needed = 1 + 3 + (replicas + 1) + 1;
                let room = 2u64.pow(32 - bits.min(32)).saturating_sub(2);
                (room < needed).then(|| {
                    format!("has room for {room} addresses; the cluster needs {needed} (use /28 or larger)")
                })
            }
            None => Some("is not a CIDR such as 10.201.0.0/24".to_owned()),
        };
        if let Some(p) = problem {
            out.push((
                positions.value_or_key(pointer),
                format!("spec.provider.docker.subnet `{subnet}` {p}"),
            ));
        }
    }
}

/// An HBA field: `all` (and, for databases, `sameuser`, `samerole`, `replication`; for users,
/// `+group`), or a comma list of plain names. Nothing PostgreSQL would read as another field,
/// a comment, a quoted name or a file include.
fn hba_field_problem(value: &str, database: bool) -> Option<String> {
    if value.is_empty() {
        return Some("is empty".to_owned());
    }
    for item in value.split(',') {
        let name = if database {
            item
        } else {
            item.strip_prefix('+').unwrap_or(item)
        };
        let keyword = matches!(item, "all")
            || (database && matches!(item, "sameuser" | "samerole" | "replication"));
        let plain = !name.is_empty()
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '-');
        if item.starts_with('@') {
            return Some(format!(
                "`{item}`: file includes are not supported; list the names"
            ));
        }
        if !keyword && !plain {
            return Some(format!(
                "`{item}` is not a name: use letters, digits, `_`, `$`, `-`, comma-separated, without spaces, quotes or `#`"
            ));
        }
    }
    None
}

fn items<'a>(doc: &'a Value, pointer: &str) -> Vec<(String, &'a Value)> {
    doc.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .enumerate()
                .map(|(i, v)| (format!("{pointer}/{i}"), v))
                .collect()
        })
        .unwrap_or_default()
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Roles, databases, extensions and HBA rules: names unique and known, pgdba's own roles
/// not redeclared, HBA addresses where the type needs them, expiry times that parse.
fn check_resources(doc: &Value, positions: &Positions, out: &mut Vec<(Pos, String)>) {
    let mut roles: HashMap<String, String> = HashMap::new();
    let role_items = items(doc, "/spec/roles");
    for (ptr, r) in &role_items {
        let Some(name) = str_at(r, "name") else {
            continue;
        };
        let at = positions.value_or_key(&format!("{ptr}/name"));
        if crate::roles::is_system(name) || name.starts_with("pg_") {
            out.push((at, format!("role `{name}` is managed by pgdba or PostgreSQL and cannot be declared in spec.roles")));
        } else if RESERVED_ROLE_WORDS.contains(&name.to_ascii_lowercase().as_str()) {
            out.push((
                at,
                format!("`{name}` is a word PostgreSQL reserves and cannot name a role"),
            ));
        } else if roles.insert(name.to_owned(), ptr.clone()).is_some() {
            out.push((at, format!("role `{name}` is declared twice")));
        }
        if let Some(v) = str_at(r, "valid_until")
            && crate::spec::valid_until_epoch(v).is_none()
        {
            out.push((
                    positions.value_or_key(&format!("{ptr}/valid_until")),
                    format!("valid_until `{v}`: use `infinity`, a date (2027-01-31) or an RFC 3339 time (2027-01-31T12:00:00Z)"),
                ));
        }
    }
    let known_role =
        |n: &str| roles.contains_key(n) || crate::roles::is_system(n) || n.starts_with("pg_");
    for (ptr, r) in &role_items {
        for (i, m) in r
            .get("in_roles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(m) = m.as_str() {
                if !roles.contains_key(m) && !m.starts_with("pg_") {
                    out.push((
                        positions.value_or_key(&format!("{ptr}/in_roles/{i}")),
                        format!("in_roles names `{m}`, which is neither in spec.roles nor a predefined pg_ role"),
                    ));
                } else if Some(m) == str_at(r, "name") {
                    out.push((
                        positions.value_or_key(&format!("{ptr}/in_roles/{i}")),
                        format!("role `{m}` cannot be a member of itself"),
                    ));
                }
            }
        }
    }
    let mut dbs: HashMap<String, ()> = HashMap::new();
    for (ptr, d) in items(doc, "/spec/databases") {
        let Some(name) = str_at(d, "name") else {
            continue;
        };
        let at = positions.value_or_key(&format!("{ptr}/name"));
        if name == "template0" || name == "template1" {
            out.push((
                at,
                format!("database `{name}` is a template; pgdba does not manage templates"),
            ));
        } else if dbs.insert(name.to_owned(), ()).is_some() {
            out.push((at, format!("database `{name}` is declared twice")));
        }
        if let Some(owner) = str_at(d, "owner")
            && (!known_role(owner) || owner.starts_with("pg_"))
        {
            out.push((
                positions.value_or_key(&format!("{ptr}/owner")),
                format!("owner `{owner}` of database `{name}` is not in spec.roles"),
            ));
        }
        let mut exts: HashMap<String, ()> = HashMap::new();
        for (eptr, e) in items(d, "/extensions") {
            if let Some(ename) = str_at(e, "name")
                && exts.insert(ename.to_owned(), ()).is_some()
            {
                out.push((
                    positions.value_or_key(&format!("{ptr}{eptr}/name")),
                    format!("extension `{ename}` is declared twice in database `{name}`"),
                ));
            }
        }
    }
    for (ptr, h) in items(doc, "/spec/hba") {
        for (field, database) in [("database", true), ("user", false)] {
            if let Some(v) = str_at(h, field)
                && let Some(p) = hba_field_problem(v, database)
            {
                out.push((
                    positions.value_or_key(&format!("{ptr}/{field}")),
                    format!("hba {field} {p}"),
                ));
            }
        }
        let kind = str_at(h, "type").unwrap_or("");
        let address = str_at(h, "address");
        match (kind, address) {
            ("local", Some(_)) => out.push((
                positions.value_or_key(&format!("{ptr}/address")),
                "a `local` rule has no address (it is for Unix-socket connections)".to_owned(),
            )),
            ("local", None) | ("", _) => {}
            (_, None) => out.push((
                positions.key_or_value(&ptr),
                format!("a `{kind}` rule needs an address (a CIDR such as 10.0.0.0/8, or samehost/samenet)"),
            )),
            (_, Some(a)) => {
                if !matches!(a, "samehost" | "samenet" | "all") && crate::spec::parse_cidr(a.trim()).filter(|_| a.trim() == a).is_none() {
                    out.push((
                        positions.value_or_key(&format!("{ptr}/address")),
                        format!("address `{a}` is not a CIDR (10.0.0.0/8, ::1/128), samehost or samenet"),
                    ));
                }
            }
        }
    }
}

/// The message for a `spec.postgres.version` pgdba does not offer (also the schema's message
/// for it, so that both checks say the same).
pub(crate) fn unsupported_version(version: impl std::fmt::Display) -> String {
    format!(
        "PostgreSQL {version} is not supported (supported: {})",
        pg::supported_majors_list()
    )
}

fn check_postgres(doc: &Value, positions: &Positions, out: &mut Vec<(Pos, String)>) {
    // A version of the wrong type (the schema reports it) still lets the parameters be
    // checked, against the default version's catalog.
    let version = doc
        .pointer("/spec/postgres/version")
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(Postgres::default().version);
    let Some(catalog) = pg::catalog(version) else {
        out.push((
            positions.value_or_key("/spec/postgres/version"),
            unsupported_version(version),
        ));
        return;
    };
    let Some(parameters) = doc
        .pointer("/spec/postgres/parameters")
        .and_then(Value::as_object)
    else {
        return;
    };
    let allowed_unsafe: Vec<&str> = doc
        .pointer("/spec/postgres/allow_unsafe_parameters")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut seen: HashMap<String, &str> = HashMap::new();
    for (name, raw) in parameters {
        let pointer = format!("/spec/postgres/parameters/{}", escape_segment(name));
        let at_key = positions.key_or_value(&pointer);
        let at_value = positions.value_or_key(&pointer);
        if let Some(first) = seen.insert(name.to_ascii_lowercase(), name) {
            out.push((
                at_key,
                format!(
                    "parameter `{name}` is set twice (also as `{first}`; PostgreSQL names are \
                     case-insensitive)"
                ),
            ));
            continue;
        }
        if let Ok(value) = serde_json::from_value::<GucValue>(raw.clone())
            && value.to_conf_string().chars().any(char::is_control)
        {
            out.push((
                at_value,
                format!("parameter `{name}`: a value may not hold control characters (a new line would end the setting in PostgreSQL's configuration file)"),
            ));
            continue;
        }
        if pg::is_unsafe_parameter(name)
            && !allowed_unsafe.iter().any(|a| a.eq_ignore_ascii_case(name))
        {
            out.push((
                at_key,
                format!("parameter `{name}` runs a command or loads code on every member; name it in spec.postgres.allow_unsafe_parameters to set it"),
            ));
            continue;
        }
        if pg::is_custom_name(name) {
            continue; // an extension's GUC: PostgreSQL accepts it as a placeholder
        }
        if let Some(hint) = pg::managed_by_pgdba(name) {
            out.push((
                at_key,
                format!("parameter `{name}` is managed by pgdba and cannot be set here: {hint}"),
            ));
            continue;
        }
        let Some(def) = catalog.get(name) else {
            let mut message = format!("unknown parameter `{name}` for PostgreSQL {version}");
            if let Some(close) = catalog.suggest(name) {
                message.push_str(&format!(" (did you mean `{close}`?)"));
            }
            out.push((at_key, message));
            continue;
        };
        if def.context == pg::GucContext::Internal {
            out.push((
                at_key,
                format!(
                    "parameter `{}` is read-only (fixed when PostgreSQL was built or the cluster \
                     initialized) and cannot be set",
                    def.name
                ),
            ));
            continue;
        }
        let Ok(value) = serde_json::from_value::<GucValue>(raw.clone()) else {
            continue; // the schema reports it
        };
        match def.normalize(&value.to_conf_string()) {
            Err(e) => out.push((at_value, e.to_string())),
            Ok(n) => {
                if let Some(why) = pg::replaced_by_patroni(name, &n) {
                    out.push((at_value, why));
                } else if let Some(why) = replication_needs(doc, name, &n) {
                    out.push((at_value, why));
                }
            }
        }
    }
}

/// Settings too low for the spec's replicas: each standby streams through its own WAL sender
/// (and a new one's base backup needs one more), and Patroni keeps a slot per standby.
fn replication_needs(doc: &Value, name: &str, value: &pg::Normalized) -> Option<String> {
    // `replicas` is required: without it the schema reports the spec, and this waits.
    let replicas = doc.pointer("/spec/replicas").and_then(Value::as_i64)?;
    let pg::Normalized::Integer { value, .. } = value else {
        return None;
    };
    let (needed, why) = match name.to_ascii_lowercase().as_str() {
        "max_wal_senders" => (
            replicas + 1,
            "each replica streams through its own WAL sender, and a new replica's base backup \
             needs one more",
        ),
        "max_replication_slots" => (replicas, "Patroni keeps a replication slot per replica"),
        _ => return None,
    };
    (*value < needed).then(|| {
        format!("{name} {value} is too low for {replicas} replicas: {why} (at least {needed})")
    })
}

fn check_patroni(doc: &Value, positions: &Positions, out: &mut Vec<(Pos, String)>) {
    check_patroni_timing(doc, positions, out);
    check_patroni_synchronous(doc, positions, out);
}

/// Patroni's rule for its timers: `ttl >= loop_wait + 2 × retry_timeout`.
fn check_patroni_timing(doc: &Value, positions: &Positions, out: &mut Vec<(Pos, String)>) {
    // Field by field, so that a bad unrelated field (the schema reports it) does not hide
    // this rule; a bad field of the three does, since the rule cannot be computed.
    let defaults = PatroniSettings::default();
    let field = |name: &str, default: u32| -> Option<u64> {
        match doc.pointer(&format!("/spec/patroni/{name}")) {
            None => Some(u64::from(default)),
            Some(v) => v.as_u64().filter(|n| u32::try_from(*n).is_ok()),
        }
    };
    let (Some(ttl), Some(loop_wait), Some(retry)) = (
        field("ttl", defaults.ttl),
        field("loop_wait", defaults.loop_wait),
        field("retry_timeout", defaults.retry_timeout),
    ) else {
        return; // the schema reports it
    };
    let needed = loop_wait + 2 * retry;
    if ttl >= needed {
        return;
    }
    let (at, ttl_text) = match positions.value("/spec/patroni/ttl") {
        Some(at) => (at, format!("spec.patroni.ttl {ttl}")),
        None => (
            positions.key_or_value("/spec/patroni"),
            format!("spec.patroni.ttl (default {ttl})"),
        ),
    };
    out.push((
        at,
        format!(
            "{ttl_text} is too short: Patroni needs ttl >= loop_wait + 2 × retry_timeout \
             = {loop_wait} + 2 × {retry} = {needed}"
        ),
    ));
}

/// Synchronous replication: the standbys it waits for must exist, and strict mode means
/// nothing without it. A field of the wrong type is the schema's to report.
fn check_patroni_synchronous(doc: &Value, positions: &Positions, out: &mut Vec<(Pos, String)>) {
    let flag = |name: &str| doc.pointer(&format!("/spec/patroni/{name}"))?.as_bool();
    let sync = flag("synchronous_mode").unwrap_or(false);
    if flag("synchronous_mode_strict") == Some(true) && !sync {
        out.push((
            positions.value_or_key("/spec/patroni/synchronous_mode_strict"),
            "spec.patroni.synchronous_mode_strict needs spec.patroni.synchronous_mode: true \
             (strict mode only changes what synchronous mode does when no standby is left)"
                .to_owned(),
        ));
    }
    if !sync {
        return;
    }
    let count_pointer = "/spec/patroni/synchronous_node_count";
    let count = match doc.pointer(count_pointer) {
        None => u64::from(PatroniSettings::default().synchronous_node_count),
        Some(v) => match v.as_u64() {
            Some(n) => n,
            None => return, // the schema reports it
        },
    };
    // `replicas` is required: without it the schema reports the spec, and this waits.
    let Some(replicas) = doc.pointer("/spec/replicas").and_then(Value::as_u64) else {
        return;
    };
    if count <= replicas {
        return;
    }
    let (at, message) = match positions.value(count_pointer) {
        Some(at) => (
            at,
            format!(
                "spec.patroni.synchronous_node_count {count} is more than spec.replicas \
                 {replicas}: only replicas can be synchronous standbys"
            ),
        ),
        None => (
            positions.value_or_key("/spec/patroni/synchronous_mode"),
            format!(
                "spec.patroni.synchronous_mode needs at least {count} replica as its synchronous \
                 standby (synchronous_node_count, default {count}), and spec.replicas is {replicas}"
            ),
        ),
    };
    out.push((at, message));
}

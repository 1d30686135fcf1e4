//! Adopting a running Patroni cluster pgdba did not create (`cluster connect`): the pre-flight
//! checks, and what is found, turned into a spec that plans clean.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::Server;
use crate::patroni::Reader;

/// What one check of the pre-flight found wrong.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("Patroni's REST API at {url} does not answer as Patroni: {why}")]
    Patroni { url: String, why: String },
    #[error(
        "PostgreSQL of the leader {member} at {host}:{port} does not accept pgdba's session: {why}"
    )]
    Postgres {
        member: String,
        host: String,
        port: u16,
        why: String,
    },
    #[error("replication is not healthy: {0}")]
    Replication(String),
    #[error("{0}")]
    Unsupported(String),
}

/// One member as found: as `GET /cluster` lists it.
pub type FoundMember = crate::patroni::ClusterEntry;

/// A role as the catalogs hold it.
#[derive(Debug, Clone)]
pub struct FoundRole {
    pub name: String,
    pub superuser: bool,
    pub inherit: bool,
    pub createrole: bool,
    pub createdb: bool,
    pub login: bool,
    pub replication: bool,
    pub bypassrls: bool,
    pub connection_limit: i32,
    pub valid_until: Option<f64>,
    pub member_of: Vec<String>,
}

/// Everything `cluster connect` found.
#[derive(Debug, Clone)]
pub struct Found {
    pub members: Vec<FoundMember>,
    pub leader: String,
    /// The DCS's dynamic configuration (`GET /config`).
    pub config: Value,
    pub major: u32,
    pub roles: Vec<FoundRole>,
    /// Databases not made by initdb, with their owner and extensions (plpgsql aside).
    pub databases: BTreeMap<String, (String, Vec<String>)>,
}

/// Ask Patroni at `url` for the cluster, check every member, connect to the leader's
/// PostgreSQL (at `leader_at` when given) and read its roles and databases.
pub async fn discover(
    reader: &Reader,
    url: &str,
    leader_at: Option<(String, Option<u16>)>,
    password: &str,
) -> Result<Found, AdoptError> {
    let url = url.trim_end_matches('/').to_owned();
    let patroni = |why: String| AdoptError::Patroni {
        url: url.clone(),
        why,
    };
    let cluster = reader
        .cluster(&url)
        .await
        .map_err(|e| patroni(crate::error_chain(&e)))?;
    let members = crate::patroni::cluster_entries(&cluster);
    if members.is_empty() {
        return Err(patroni(format!("GET /cluster lists no members: {cluster}")));
    }
    let config = reader
        .config(&url)
        .await
        .map_err(|e| patroni(format!("GET /config: {}", crate::error_chain(&e))))?;
    let leader = members
        .iter()
        .find(|m| crate::patroni::parse_role(&m.role) == crate::observe::model::Role::Leader)
        .ok_or_else(|| AdoptError::Replication("the cluster has no leader".to_owned()))?
        .clone();
    if leader.state != "running" {
        return Err(AdoptError::Replication(format!(
            "the leader {} is {}",
            leader.name, leader.state
        )));
    }
    // Every member's own REST API answers, and every replica streams.
    for m in &members {
        if let Err(e) = reader.status(&m.api_url).await {
            return Err(AdoptError::Patroni {
                url: m.api_url.clone(),
                why: format!("member {}: {}", m.name, crate::error_chain(&e)),
            });
        }
        if m.name != leader.name && m.state != "streaming" {
            return Err(AdoptError::Replication(format!(
                "member {} is {}, not streaming from the leader {}",
                m.name, m.state, leader.name
            )));
        }
    }
    let (host, port) = match leader_at {
        Some((h, p)) => (h, p.unwrap_or(leader.port)),
        None => (leader.host.clone(), leader.port),
    };
    let server = Server {
        name: leader.name.clone(),
        host: host.clone(),
        port,
        user: crate::roles::SUPERUSER.to_owned(),
        password: Some(password.to_owned()),
        database: "postgres".to_owned(),
        socket_dir: None,
        data_dir: None,
        api_url: Some(leader.api_url.clone()),
    };
    let pg = |why: String| AdoptError::Postgres {
        member: leader.name.clone(),
        host: host.clone(),
        port,
        why,
    };
    let client = server
        .connect(Duration::from_secs(10))
        .await
        .map_err(|e| pg(crate::error_chain(&e)))?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int, \
             (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming')::int, \
             (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
            &[],
        )
        .await
        .map_err(|e| pg(crate::error_chain(&e)))?;
    let version: i32 = row.get(0);
    let streaming: i32 = row.get(1);
    let superuser: bool = row.get(2);
    if !superuser {
        return Err(pg("the user postgres is not a superuser there".to_owned()));
    }
    let major = u32::try_from(version / 10000).unwrap_or(0);
    if !crate::pg::SUPPORTED_MAJORS.contains(&major) {
        return Err(AdoptError::Unsupported(format!(
            "the cluster runs PostgreSQL {major}; pgdba manages PostgreSQL {}",
            crate::pg::SUPPORTED_MAJORS
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(" and ")
        )));
    }
    let replicas = members.len().saturating_sub(1);
    if usize::try_from(streaming).unwrap_or(0) < replicas {
        return Err(AdoptError::Replication(format!(
            "the leader {} streams to {streaming} standbys, but the cluster has {replicas} replicas",
            leader.name
        )));
    }
    let roles = client
        .query(
            "SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, \
             r.rolcanlogin, r.rolreplication, r.rolbypassrls, r.rolconnlimit, \
             EXTRACT(EPOCH FROM r.rolvaliduntil)::float8, \
             ARRAY(SELECT b.rolname::text FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid \
                   WHERE m.member = r.oid ORDER BY 1) \
             FROM pg_roles r WHERE r.oid >= 16384 AND r.rolname !~ '^pg_' ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| pg(crate::error_chain(&e)))?
        .iter()
        .map(|r| FoundRole {
            name: r.get(0),
            superuser: r.get(1),
            inherit: r.get(2),
            createrole: r.get(3),
            createdb: r.get(4),
            login: r.get(5),
            replication: r.get(6),
            bypassrls: r.get(7),
            connection_limit: r.get(8),
            valid_until: r.get(9),
            member_of: r.get(10),
        })
        .collect();
    let dbs = client
        .query(
            "SELECT datname::text, pg_get_userbyid(datdba)::text FROM pg_database \
             WHERE datname NOT IN ('template0', 'template1', 'postgres') AND datallowconn \
             ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| pg(crate::error_chain(&e)))?;
    let mut databases = BTreeMap::new();
    for r in dbs {
        let name: String = r.get(0);
        let owner: String = r.get(1);
        let c = server
            .connect_to(&name, Duration::from_secs(10))
            .await
            .map_err(|e| pg(format!("database {name}: {}", crate::error_chain(&e))))?;
        let extensions = c
            .query(
                "SELECT extname::text FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| pg(crate::error_chain(&e)))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        databases.insert(name, (owner, extensions));
    }
    Ok(Found {
        members,
        leader: leader.name,
        config,
        major,
        roles,
        databases,
    })
}

/// A spec document for what was found, the members' addresses as given, with notes on what it
/// leaves out and why. `leader_at` replaces the leader's address.
pub fn spec_document(
    name: &str,
    found: &Found,
    leader_at: Option<(String, Option<u16>)>,
) -> Result<(Value, Vec<String>), AdoptError> {
    let mut notes = Vec::new();
    let members: Vec<Value> = found
        .members
        .iter()
        .map(|m| {
            let (host, port) = match (&leader_at, m.name == found.leader) {
                (Some((h, p)), true) => (h.clone(), p.unwrap_or(m.port)),
                _ => (m.host.clone(), m.port),
            };
            json!({ "name": m.name, "api_url": m.api_url, "host": host, "port": port })
        })
        .collect();
    let c = &found.config;
    let num = |k: &str, default: u64| c.get(k).and_then(Value::as_u64).unwrap_or(default);
    let flag = |k: &str| c.get(k).and_then(patroni_bool).unwrap_or(false);
    let mut patroni = Map::new();
    patroni.insert("ttl".into(), json!(num("ttl", 30)));
    patroni.insert("loop_wait".into(), json!(num("loop_wait", 10)));
    patroni.insert("retry_timeout".into(), json!(num("retry_timeout", 10)));
    patroni.insert(
        "maximum_lag_on_failover".into(),
        json!(num("maximum_lag_on_failover", 1_048_576)),
    );
    patroni.insert("failsafe_mode".into(), json!(flag("failsafe_mode")));
    if flag("synchronous_mode") {
        patroni.insert("synchronous_mode".into(), json!(true));
        patroni.insert(
            "synchronous_node_count".into(),
            json!(num("synchronous_node_count", 1)),
        );
        if flag("synchronous_mode_strict") {
            patroni.insert("synchronous_mode_strict".into(), json!(true));
        }
    }
    // Parameters: those the spec may hold (pgdba's validation's rules).
    let catalog = crate::pg::catalog(found.major);
    let mut parameters = Map::new();
    let mut unsafe_allowed = Vec::new();
    let dcs_params = c
        .get("postgresql")
        .and_then(|p| p.get("parameters"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (k, v) in dcs_params {
        let text = match crate::observe::model::json_scalar_string(&v) {
            Some(t) => t,
            None => {
                notes.push(format!(
                    "parameter {k} left out: its DCS value {v} is not a scalar"
                ));
                continue;
            }
        };
        if let Some(hint) = crate::pg::managed_by_pgdba(&k) {
            notes.push(format!("parameter {k} left out: {hint}"));
            continue;
        }
        if !crate::pg::is_custom_name(&k) {
            let Some(def) = catalog.and_then(|cat| cat.get(&k)) else {
                notes.push(format!(
                    "parameter {k} left out: PostgreSQL {} does not know it",
                    found.major
                ));
                continue;
            };
            if def.context == crate::pg::GucContext::Internal {
                notes.push(format!("parameter {k} left out: it is read-only"));
                continue;
            }
            match def.normalize(&text) {
                Ok(n) => {
                    if let Some(why) = crate::pg::replaced_by_patroni(&k, &n) {
                        notes.push(format!("parameter {k} left out: {why}"));
                        continue;
                    }
                }
                Err(e) => {
                    notes.push(format!("parameter {k} left out: {e}"));
                    continue;
                }
            }
        }
        if crate::pg::is_unsafe_parameter(&k) {
            unsafe_allowed.push(k.clone());
        }
        parameters.insert(k, v);
    }
    // HBA rules from the DCS: every rule must be expressible, or applying the spec would
    // drop it.
    let hba_lines: Vec<String> = c
        .get("postgresql")
        .and_then(|p| p.get("pg_hba"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut hba = Vec::new();
    for line in &hba_lines {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        hba.push(hba_rule(t).ok_or_else(|| {
            AdoptError::Unsupported(format!(
                "the DCS's pg_hba rule `{t}` cannot be written in a spec (options, or an address with a separate netmask); pgdba would drop it on apply, so the cluster is not adopted"
            ))
        })?);
    }
    if hba_lines.is_empty() {
        notes.push("the DCS holds no pg_hba: each member's own file rules; the spec's default rules would replace them (plan shows it)".to_owned());
    }
    let roles: Vec<Value> = found
        .roles
        .iter()
        .filter(|r| {
            let reserved = crate::roles::is_system(&r.name);
            if reserved {
                notes.push(format!(
                    "role {} left out: pgdba reserves the name for its own clusters (it is not managed)",
                    r.name
                ));
            }
            !reserved
        })
        .map(|r| {
            let mut o = Map::new();
            o.insert("name".into(), json!(r.name));
            for (k, v) in [
                ("login", r.login),
                ("superuser", r.superuser),
                ("createdb", r.createdb),
                ("createrole", r.createrole),
                ("replication", r.replication),
                ("bypassrls", r.bypassrls),
            ] {
                if v {
                    o.insert(k.into(), json!(true));
                }
            }
            if !r.inherit {
                o.insert("inherit".into(), json!(false));
            }
            if r.connection_limit != -1 {
                o.insert("connection_limit".into(), json!(r.connection_limit));
            }
            if let Some(t) = r.valid_until.filter(|t| t.is_finite()) {
                #[allow(clippy::cast_possible_truncation)]
                let secs = t as i64;
                if let Some(at) = chrono::DateTime::from_timestamp(secs, 0) {
                    o.insert(
                        "valid_until".into(),
                        json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                    );
                }
            }
            let member_of: Vec<&String> = r
                .member_of
                .iter()
                .filter(|m| !crate::roles::is_system(m))
                .collect();
            if !member_of.is_empty() {
                o.insert("in_roles".into(), json!(member_of));
            }
            Value::Object(o)
        })
        .collect();
    let databases: Vec<Value> = found
        .databases
        .iter()
        .map(|(name, (owner, extensions))| {
            let mut o = Map::new();
            o.insert("name".into(), json!(name));
            o.insert("owner".into(), json!(owner));
            if !extensions.is_empty() {
                o.insert(
                    "extensions".into(),
                    extensions.iter().map(|e| json!({ "name": e })).collect(),
                );
            }
            Value::Object(o)
        })
        .collect();
    let mut postgres = Map::new();
    postgres.insert("version".into(), json!(found.major));
    postgres.insert("parameters".into(), Value::Object(parameters));
    if !unsafe_allowed.is_empty() {
        postgres.insert("allow_unsafe_parameters".into(), json!(unsafe_allowed));
    }
    let mut spec = Map::new();
    spec.insert(
        "provider".into(),
        json!({ "adopted": { "members": members } }),
    );
    spec.insert("postgres".into(), Value::Object(postgres));
    spec.insert(
        "replicas".into(),
        json!(found.members.len().saturating_sub(1)),
    );
    spec.insert("patroni".into(), Value::Object(patroni));
    if !roles.is_empty() {
        spec.insert("roles".into(), Value::Array(roles));
    }
    if !databases.is_empty() {
        spec.insert("databases".into(), Value::Array(databases));
    }
    if !hba.is_empty() {
        spec.insert("hba".into(), Value::Array(hba));
    }
    let doc = json!({
        "apiVersion": "pgdba/v1",
        "kind": "Cluster",
        "metadata": { "name": name, "labels": { "adopted": "true" } },
        "spec": spec,
    });
    Ok((doc, notes))
}

/// A `pg_hba` line as a spec rule, when a spec can say it.
fn hba_rule(line: &str) -> Option<Value> {
    let t: Vec<&str> = line.split_whitespace().collect();
    let kind = *t.first()?;
    let known_method = |m: &str| {
        matches!(
            m,
            "trust" | "reject" | "scram-sha-256" | "md5" | "password" | "peer" | "ident" | "cert"
        )
    };
    match (kind, t.len()) {
        ("local", 4) if known_method(t[3]) => Some(json!({
            "type": "local", "database": t[1], "user": t[2], "method": t[3],
        })),
        ("host" | "hostssl" | "hostnossl", 5) if known_method(t[4]) => Some(json!({
            "type": kind, "database": t[1], "user": t[2], "address": t[3], "method": t[4],
        })),
        _ => None,
    }
}

/// A boolean as Patroni reads one.
fn patroni_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "on" | "yes" | "1" => Some(true),
            "false" | "off" | "no" | "0" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_u64().map(|n| n != 0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hba_rules_a_spec_can_say() {
        assert_eq!(
            hba_rule("host all all 127.0.0.1/32 scram-sha-256"),
            Some(
                json!({"type": "host", "database": "all", "user": "all", "address": "127.0.0.1/32", "method": "scram-sha-256"})
            )
        );
        assert_eq!(
            hba_rule("local all postgres peer"),
            Some(json!({"type": "local", "database": "all", "user": "postgres", "method": "peer"}))
        );
        assert_eq!(hba_rule("local all postgres peer map=x"), None);
        assert_eq!(hba_rule("host all all 10.0.0.0 255.0.0.0 md5"), None);
        assert_eq!(hba_rule("host all all 10.0.0.0/8 ldap"), None);
    }

    #[test]
    fn patroni_booleans() {
        assert_eq!(patroni_bool(&json!("on")), Some(true));
        assert_eq!(patroni_bool(&json!(false)), Some(false));
        assert_eq!(patroni_bool(&json!("maybe")), None);
    }
}

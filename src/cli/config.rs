//! `config tune` (PGTune's recommendations), `config show` (pg_settings per member),
//! `config diff` (live vs spec vs recommended) and `config apply` (parameters into the spec,
//! then plan and apply).
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use clap::Args;
use serde_json::{Map, Value, json};

use super::Global;
use super::commands::codes;
use super::commands::{Failure, Outcome};
use super::target::{ClusterArg, MemberArg, Target, resolve, select_member};
use crate::ops::tune::{self, Os, Storage, TuneInput, Workload};
use crate::output::Format;

/// PGTune's inputs.
#[derive(Debug, Args, Clone)]
pub struct TuneArgs {
    /// The workload (olap = dw).
    #[arg(long, value_enum)]
    workload: Workload,
    #[command(flatten)]
    machine: MachineArgs,
}

/// The machine PGTune tunes for; what is not given is read from this machine.
#[derive(Debug, Args, Clone)]
pub struct MachineArgs {
    /// Memory PostgreSQL may use (16GB, 512MB) [default: this machine's].
    #[arg(long)]
    memory: Option<String>,
    /// CPUs [default: this machine's].
    #[arg(long)]
    cpus: Option<u32>,
    /// The storage the data is on.
    #[arg(long, value_enum, default_value = "ssd")]
    storage: Storage,
    /// Expected client connections [default: PGTune's for the workload].
    #[arg(long)]
    connections: Option<u32>,
    /// The PostgreSQL major version [default: the cluster's, else 15].
    #[arg(long)]
    pg_version: Option<u32>,
    #[arg(long, value_enum, default_value = "linux")]
    os: Os,
    /// The database's size (100GB): against the memory it picks PGTune's "DB size" class.
    #[arg(long)]
    db_size: Option<String>,
}

/// `config apply`'s PGTune inputs (the workload optional: without it, --from).
#[derive(Debug, Args)]
pub struct TuneApplyArgs {
    /// Write PGTune's recommendations for this workload (olap = dw).
    #[arg(long, value_enum)]
    workload: Option<Workload>,
    #[command(flatten)]
    machine: MachineArgs,
}

/// A size as a DBA writes one: `16GB`, `512MB`, `1TB`, `2048kB`, bytes without a unit.
/// Units are binary (1GB = 1024MB), as PostgreSQL and PGTune count.
pub(super) fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a size (16GB, 512MB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1 << 10,
        "mb" | "m" => 1 << 20,
        "gb" | "g" => 1 << 30,
        "tb" | "t" => 1 << 40,
        u => {
            return Err(format!(
                "`{text}`: unknown unit `{u}` (use kB, MB, GB or TB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// PGTune's input from the flags, this machine filling in memory and CPUs.
fn input(
    workload: Workload,
    m: &MachineArgs,
    default_version: u32,
) -> Result<(TuneInput, Value), Failure> {
    let (host_memory, host_cpus) = tune::detect_host();
    let usage = |flag: &str, e: String| Failure::new(codes::USAGE, format!("--{flag}: {e}"));
    let memory = match &m.memory {
        Some(s) => parse_size(s).map_err(|e| usage("memory", e))?,
        None => host_memory.ok_or_else(|| {
            Failure::new(
                codes::USAGE,
                "this machine's memory could not be read: give --memory",
            )
        })?,
    };
    let db_size = m
        .db_size
        .as_deref()
        .map(parse_size)
        .transpose()
        .map_err(|e| usage("db-size", e))?;
    let cpus = m.cpus.or(host_cpus);
    let inp = TuneInput {
        workload,
        memory_bytes: memory,
        cpus,
        connections: m.connections,
        storage: m.storage,
        pg_version: m.pg_version.unwrap_or(default_version),
        os: m.os,
        db_size_bytes: db_size,
    };
    let sources = json!({
        "memory": if m.memory.is_some() { "given" } else { "this machine" },
        "cpus": match (m.cpus, host_cpus) {
            (Some(_), _) => "given",
            (None, Some(_)) => "this machine",
            (None, None) => "unknown",
        },
    });
    Ok((inp, sources))
}

/// An enum's name as it is written on the command line.
fn word<T: serde::Serialize>(t: &T) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn recommend(inp: &TuneInput) -> Result<tune::Recommendation, Failure> {
    tune::recommend(inp).map_err(|e| Failure::new(codes::INVALID_INPUT, e.to_string()))
}

fn parameters_object(r: &tune::Recommendation) -> Map<String, Value> {
    r.parameters
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

pub(super) fn tune(t: &TuneArgs) -> Result<Outcome, Failure> {
    let (inp, sources) = input(t.workload, &t.machine, 15)?;
    let r = recommend(&inp)?;
    let mut human = format!(
        "# PGTune's recommendations: PostgreSQL {}, {} workload, {} MB memory, {} CPUs, {} connections, {} storage, {}\n",
        inp.pg_version,
        word(&inp.workload),
        inp.memory_bytes >> 20,
        inp.cpus.map_or("unknown".to_owned(), |c| c.to_string()),
        inp.connections
            .map_or("the workload's default".to_owned(), |c| c.to_string()),
        word(&inp.storage),
        word(&inp.os),
    );
    for n in &r.notes {
        human.push_str(&format!("# WARNING: {n}\n"));
    }
    for (k, v) in &r.parameters {
        human.push_str(&format!("{k} = {v}\n"));
    }
    Ok(Outcome::ok(
        json!({
            "parameters": parameters_object(&r),
            "notes": r.notes,
            "input": inp,
            "input_sources": sources,
        }),
        human,
    ))
}

/// One `pg_settings` row as `config show` prints it.
async fn settings_of(
    server: &crate::ops::Server,
    params: &[String],
    changed: bool,
) -> Result<Vec<Value>, String> {
    let client = server
        .connect(Duration::from_secs(10))
        .await
        .map_err(|e| crate::error_chain(&e))?;
    let rows = client
        .query(
            "SELECT name, setting, unit, source, context, pending_restart, short_desc, \
             sourcefile, boot_val, current_setting(name) FROM pg_settings \
             WHERE (cardinality($1::text[]) = 0 OR name = ANY($1)) \
             AND (NOT $2 OR source NOT IN ('default', 'override')) ORDER BY name",
            &[&params, &changed],
        )
        .await
        .map_err(|e| crate::error_chain(&e))?;
    Ok(rows
        .iter()
        .map(|r| {
            json!({
                "name": r.get::<_, String>(0),
                "setting": r.get::<_, Option<String>>(1),
                "unit": r.get::<_, Option<String>>(2),
                "source": r.get::<_, Option<String>>(3),
                "context": r.get::<_, Option<String>>(4),
                "pending_restart": r.get::<_, Option<bool>>(5),
                "description": r.get::<_, Option<String>>(6),
                "sourcefile": r.get::<_, Option<String>>(7),
                "default": r.get::<_, Option<String>>(8),
                "value": r.get::<_, Option<String>>(9),
            })
        })
        .collect())
}

pub(super) async fn show(
    g: &Global,
    c: &ClusterArg,
    m: &MemberArg,
    params: &[String],
    changed: bool,
) -> Result<Outcome, Failure> {
    let target = resolve(g, c).await?;
    let servers = target.servers();
    let chosen: Vec<crate::ops::Server> = match select_member(&servers, m, target_name(&target))? {
        Some(s) => vec![s.clone()],
        None => servers,
    };
    let mut members = Vec::new();
    let mut human = String::new();
    let mut answered = 0;
    for s in &chosen {
        match settings_of(s, params, changed).await {
            Ok(rows) => {
                answered += 1;
                human.push_str(&format!("member {} ({}:{})\n", s.name, s.host, s.port));
                let table: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        let t = |k: &str| r[k].as_str().unwrap_or("").to_owned();
                        vec![
                            t("name"),
                            t("value"),
                            t("source"),
                            t("context"),
                            if r["pending_restart"] == true {
                                "yes"
                            } else {
                                ""
                            }
                            .to_owned(),
                        ]
                    })
                    .collect();
                human.push_str(&crate::output::columns(
                    &["NAME", "SETTING", "SOURCE", "CONTEXT", "PENDING_RESTART"],
                    &table,
                ));
                human.push('\n');
                members.push(json!({ "name": s.name, "settings": rows }));
            }
            Err(e) => {
                human.push_str(&format!("member {}: not read: {e}\n\n", s.name));
                members.push(json!({ "name": s.name, "error": e }));
            }
        }
    }
    if answered == 0 {
        return Err(
            Failure::new(codes::UNREACHABLE, format!("no server answered: {human}"))
                .data(json!({ "members": members })),
        );
    }
    Ok(Outcome::ok(json!({ "members": members }), human))
}

fn target_name(t: &Target) -> &str {
    match t {
        Target::Cluster(k) => &k.name,
        Target::Plain(s) => &s.name,
    }
}

pub(super) async fn diff(
    g: &Global,
    c: &ClusterArg,
    workload: Workload,
) -> Result<Outcome, Failure> {
    let target = resolve(g, c).await?;
    let (spec_params, version): (BTreeMap<String, String>, Option<u32>) = match &target {
        Target::Cluster(k) => (
            k.spec
                .spec
                .postgres
                .parameters
                .iter()
                .map(|(n, v)| (n.clone(), v.to_conf_string()))
                .collect(),
            Some(k.spec.spec.postgres.version),
        ),
        Target::Plain(_) => (BTreeMap::new(), None),
    };
    // The live values: from the member that accepts writes (the leader), else the first.
    let mut live: Option<(String, Vec<Value>)> = None;
    let mut errors = Vec::new();
    for s in target.servers() {
        match settings_of(&s, &[], false).await {
            Ok(rows) => {
                let leads = s.connect(Duration::from_secs(5)).await.ok();
                let writable = match leads {
                    Some(cl) => cl
                        .query_one("SELECT NOT pg_is_in_recovery()", &[])
                        .await
                        .map(|r| r.get::<_, bool>(0))
                        .unwrap_or(false),
                    None => false,
                };
                if writable || live.is_none() {
                    live = Some((s.name.clone(), rows));
                }
                if writable {
                    break;
                }
            }
            Err(e) => errors.push(format!("{}: {e}", s.name)),
        }
    }
    let Some((from, rows)) = live else {
        return Err(Failure::new(
            codes::UNREACHABLE,
            format!("no server answered: {}", errors.join("; ")),
        ));
    };
    let live_version = rows
        .iter()
        .find(|r| r["name"] == "server_version_num")
        .and_then(|r| r["setting"].as_str())
        .and_then(|v| v.parse::<u32>().ok())
        .map(|v| v / 10000);
    let major = version.or(live_version).unwrap_or(15);
    let machine = MachineArgs {
        memory: None,
        cpus: None,
        storage: Storage::Ssd,
        connections: None,
        pg_version: Some(major),
        os: Os::Linux,
        db_size: None,
    };
    let (inp, sources) = input(workload, &machine, major)?;
    let rec = recommend(&inp)?;
    let catalog = crate::pg::catalog(major);
    let by_name: BTreeMap<&str, &Value> = rows
        .iter()
        .filter_map(|r| Some((r["name"].as_str()?, r)))
        .collect();
    let mut names: Vec<String> = rec.parameters.iter().map(|(k, _)| k.clone()).collect();
    names.extend(
        spec_params
            .keys()
            .filter(|k| !names.contains(k))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let mut out = Vec::new();
    let mut table = Vec::new();
    for name in names {
        let row = by_name.get(name.as_str());
        let setting = row.and_then(|r| r["setting"].as_str()).map(str::to_owned);
        let def = catalog.and_then(|c| c.get(&name));
        let live_human = match (&setting, def) {
            (Some(s), Some(d)) => Some(d.format_human(s)),
            (s, _) => s.clone(),
        };
        let recommended = rec
            .parameters
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone());
        let same = |want: &Option<String>| -> Option<bool> {
            let (w, s) = (want.as_ref()?, setting.as_ref()?);
            Some(match def {
                Some(d) => d.equivalent(w, s),
                None => w == s,
            })
        };
        let spec_value = spec_params.get(&name).cloned();
        let live_matches_spec = same(&spec_value);
        let live_matches_recommended = same(&recommended);
        table.push(vec![
            name.clone(),
            live_human.clone().unwrap_or_else(|| "-".to_owned()),
            spec_value.clone().unwrap_or_else(|| "-".to_owned()),
            recommended.clone().unwrap_or_else(|| "-".to_owned()),
            match (live_matches_spec, live_matches_recommended) {
                (Some(false), _) => "live differs from the spec".to_owned(),
                (_, Some(false)) => "differs from PGTune".to_owned(),
                _ => String::new(),
            },
        ]);
        out.push(json!({
            "name": name,
            "live": live_human,
            "spec": spec_value,
            "recommended": recommended,
            "live_matches_spec": live_matches_spec,
            "live_matches_recommended": live_matches_recommended,
        }));
    }
    let mut human = format!(
        "live values from {from}; recommendations: PGTune, {} workload, PostgreSQL {major}, this machine's memory and CPUs\n\n",
        word(&workload)
    );
    human.push_str(&crate::output::columns(
        &["PARAMETER", "LIVE", "SPEC", "RECOMMENDED", "NOTE"],
        &table,
    ));
    Ok(Outcome::ok(
        json!({
            "live_from": from,
            "workload": workload,
            "input": inp,
            "input_sources": sources,
            "parameters": out,
            "notes": rec.notes,
        }),
        human,
    ))
}

pub(super) async fn apply(
    g: &Global,
    format: Format,
    file: &Path,
    from: Option<&Path>,
    t: &TuneApplyArgs,
    auto_approve: bool,
) -> Result<Outcome, Failure> {
    let command = "config apply";
    super::replica::require_approval(auto_approve, command)?;
    let loaded = super::specs::load_one(file, command)?;
    let name = loaded.spec.metadata.name.clone();
    let (params, source) = match (from, t.workload) {
        (Some(p), _) => (read_parameters(p)?, p.display().to_string()),
        (None, Some(w)) => {
            let (inp, _) = input(w, &t.machine, loaded.spec.spec.postgres.version)?;
            let r = recommend(&inp)?;
            (r.parameters, format!("PGTune ({} workload)", word(&w)))
        }
        (None, None) => {
            return Err(Failure::new(
                codes::USAGE,
                "config apply needs the parameters: --from FILE, or --workload for PGTune's",
            ));
        }
    };
    let before = &loaded.spec.spec.postgres.parameters;
    let keys: Vec<[&str; 4]> = params
        .iter()
        .map(|(k, _)| ["spec", "postgres", "parameters", k.as_str()])
        .collect();
    let edits: Vec<(&[&str], Value)> = keys
        .iter()
        .zip(&params)
        .map(|(k, (_, v))| (&k[..], scalar(v)))
        .collect();
    let edited = crate::spec::edit::prepare_many(file, &edits).map_err(|e| match &e {
        crate::spec::edit::EditError::Invalid { diagnostics, .. } => {
            super::specs::diagnostics_failure(diagnostics)
                .hint(format!("{} was not changed", file.display()))
        }
        _ => Failure::new(codes::SPEC_NOT_EDITED, crate::error_chain(&e))
            .hint(format!("{} was not changed", file.display())),
    })?;
    let changes: Map<String, Value> = params
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                json!({ "before": before.get(k).map(|b| b.to_conf_string()), "after": v }),
            )
        })
        .collect();
    let mut data = Map::new();
    data.insert("cluster".to_owned(), json!(name));
    data.insert("spec".to_owned(), json!(file.display().to_string()));
    data.insert("source".to_owned(), json!(source));
    data.insert("parameters".to_owned(), Value::Object(changes));
    if !edited.changed() {
        data.insert("apply".to_owned(), Value::Null);
        return Ok(Outcome::ok(
            Value::Object(data),
            format!(
                "{} already holds these values; nothing to apply.\n",
                file.display()
            ),
        ));
    }
    let serial = super::replica::state_serial(g, &name)?;
    edited.write().map_err(|e| {
        Failure::new(codes::SPEC_NOT_EDITED, crate::error_chain(&e))
            .hint("run the command again: it reads the file anew")
    })?;
    let human = format!(
        "{}: {} parameters from {source} written.\n",
        file.display(),
        params.len()
    );
    let result =
        super::apply::apply_spec(g, format, file, auto_approve, super::apply::Allow::NOTHING).await;
    super::apply::ending_in_apply(result, data, human, |f, data| {
        use super::replica::SpecAfter;
        match super::replica::after_failed_apply(g, &name, serial, f, &edited) {
            SpecAfter::Kept => format!(
                "{} keeps the new values (actions ran); `pgdba plan -f {}` shows what remains",
                file.display(),
                file.display()
            ),
            SpecAfter::Restored => {
                data.insert("spec_restored".to_owned(), json!(true));
                format!("nothing was applied, and {} is as it was", file.display())
            }
            SpecAfter::NotRestored(e) => format!(
                "nothing was applied, but {} could not be put back ({e}); undo it by hand",
                file.display()
            ),
        }
    })
}

/// A value as a spec holds it: a number when it is one (`200`, `0.9`), else the text.
fn scalar(v: &str) -> Value {
    if let Ok(i) = v.parse::<i64>() {
        return json!(i);
    }
    if let Ok(f) = v.parse::<f64>()
        && f.is_finite()
        && v.contains('.')
    {
        return json!(f);
    }
    Value::String(v.to_owned())
}

/// The parameters in `path`: a YAML or JSON object of name: value, or `config tune`'s JSON
/// output (its envelope, or its `data`), whose `parameters` object is taken.
fn read_parameters(path: &Path) -> Result<Vec<(String, String)>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::new(codes::USAGE, format!("--from {}: {e}", path.display())))?;
    let doc: Value = serde_yaml::from_str(&text).map_err(|e| {
        Failure::new(
            codes::USAGE,
            format!("--from {}: not YAML or JSON: {e}", path.display()),
        )
    })?;
    let object = doc
        .pointer("/data/parameters")
        .or_else(|| doc.get("parameters"))
        .unwrap_or(&doc);
    let Some(map) = object.as_object() else {
        return Err(Failure::new(
            codes::USAGE,
            format!(
                "--from {}: expected an object of parameter: value (or `config tune`'s JSON)",
                path.display()
            ),
        ));
    };
    map.iter()
        .map(
            |(k, v)| match crate::observe::model::json_scalar_string(v) {
                Some(s) => Ok((k.clone(), s)),
                None => Err(Failure::new(
                    codes::USAGE,
                    format!(
                        "--from {}: parameter {k}: {v} is not a single value",
                        path.display()
                    ),
                )),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16GB"), Ok(16 << 30));
        assert_eq!(parse_size("512mb"), Ok(512 << 20));
        assert_eq!(parse_size("1TB"), Ok(1 << 40));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("16XB").is_err());
        assert!(parse_size("GB").is_err());
    }
}

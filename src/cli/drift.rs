//! `pgdba drift`: read-only by construction. It loads the state (it takes no lock, which would
//! write a file), reads secrets without creating them, and observes through a
//! `patroni::Reader` (GET only) and read-only PostgreSQL sessions. Nothing here holds a handle
//! that can write.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::json;

use super::Global;
use super::cluster::{Cluster, credentials, managed, observe_with};
use super::commands::codes;
use super::commands::{Failure, Outcome};
use super::specs::{fleet_error, load_all, over_fleet};
use crate::drift::{Class, FailOn, Item};
use crate::spec::LoadedSpec;
use crate::spec::model::ClusterSpec;
use crate::state::StateStore;

#[derive(serde::Serialize)]
struct ClusterDrift {
    name: String,
    file: String,
    drift: Vec<Item>,
    /// Parameters set in the DCS outside the spec: information, never drift.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    unmanaged_parameters: std::collections::BTreeMap<String, String>,
    notes: Vec<String>,
}

async fn one(store: &StateStore, loaded: &LoadedSpec) -> Result<ClusterDrift, Failure> {
    let name = loaded.spec.metadata.name.clone();
    let state = store.load(&name)?.ok_or_else(|| {
        Failure::new(
            codes::NOT_MANAGED,
            format!(
                "cluster {name}: no state in {}; pgdba never applied it",
                store.dir().display()
            ),
        )
    })?;
    let mut notes = Vec::new();
    let parse = |v: &serde_json::Value| serde_json::from_value::<ClusterSpec>(v.clone()).ok();
    let applied: Option<ClusterSpec> = state.applied_spec.as_ref().and_then(parse);
    // Newest first.
    let partials: Vec<(ClusterSpec, &BTreeSet<String>, &str)> = state
        .partial_applies
        .iter()
        .rev()
        .filter_map(|p| Some((parse(&p.spec)?, &p.done, p.at.as_str())))
        .collect();
    if let Some((_, _, at)) = partials.first() {
        notes.push(format!(
            "the apply of {at} stopped part-way: what it changed is compared with its spec, the rest with the last complete apply"
        ));
    } else if applied.is_none() {
        notes.push("no applied spec in the state: comparing with the spec file".to_owned());
    }
    if state.spec_hash.as_deref() != Some(loaded.source_hash.as_str()) {
        notes.push(format!(
            "{} has changes that were not applied (`pgdba plan` shows them); drift compares with what pgdba last applied",
            loaded.path.display()
        ));
    }
    // Observe as the newest spec pgdba applied (even in part) lays the cluster out.
    let newest = partials
        .first()
        .map(|p| &p.0)
        .or(applied.as_ref())
        .unwrap_or(&loaded.spec);
    let cluster = Cluster::new(newest);
    cluster
        .trust_hosts(Some(&state), &Default::default())
        .await?;
    // Drift never makes or rotates passwords: without them it still observes (over the
    // members' sockets), and says what it could not check.
    let creds = match credentials(store, &name, Some(&state)) {
        Ok(c) => c,
        Err(f) if f.code == "SECRETS_MISSING" => {
            notes.push(format!("{}: pgdba's own passwords not checked", f.message));
            None
        }
        Err(f) => return Err(f),
    };
    let managed = managed(Some(&state));
    // Drift reads the password-check memo and never writes it.
    let memo = store.scram_memo(&name)?;
    let obs = observe_with(&cluster, creds.as_ref(), &managed, memo, true).await?;
    // Nothing of it here at all (not even stopped): it cannot be checked from this machine.
    // A cluster whose processes are all down is another matter: that is dangerous drift.
    if !obs.dcs.exists && !obs.inventory.iter().any(|m| m.exists) {
        return Err(Failure::new(
            codes::UNREACHABLE,
            format!("cluster {name}: nothing of it is here (no etcd, no member)"),
        ));
    }
    let diff_of = |spec: &ClusterSpec| {
        let cluster = Cluster::new(spec);
        crate::diff::diff(&crate::diff::Input {
            spec,
            topology: cluster.topology(),
            managed: &managed,
            observation: &obs,
        })
    };
    // Without any applied spec, the spec file stands in for it.
    let applied = match (&applied, partials.is_empty()) {
        (Some(a), _) => Some(diff_of(a)),
        (None, true) => Some(diff_of(&loaded.spec)),
        (None, false) => None,
    };
    // The state keeps addresses as text; one it cannot read names nothing drift compares.
    let partial_diffs: Vec<(crate::diff::Diff, BTreeSet<crate::diff::Address>)> = partials
        .iter()
        .map(|(s, done, _)| {
            (
                diff_of(s),
                done.iter().filter_map(|a| a.parse().ok()).collect(),
            )
        })
        .collect();
    let partial_diffs: Vec<(crate::diff::Diff, &BTreeSet<crate::diff::Address>)> = partial_diffs
        .iter()
        .map(|(d, done)| (d.clone(), done))
        .collect();
    let d = crate::drift::baseline(applied, &partial_diffs);
    let mut drift = crate::drift::detect(&d, &obs, state.leader.as_deref());
    drift.extend(super::schedule::drift_items(store.dir(), &name));
    notes.extend(obs.notes.iter().cloned());
    Ok(ClusterDrift {
        name,
        file: loaded.path.display().to_string(),
        drift,
        unmanaged_parameters: d.unmanaged.clone(),
        notes,
    })
}

fn render(c: &ClusterDrift) -> String {
    let count = |k: Class| c.drift.iter().filter(|i| i.class == k).count();
    let mut out = format!(
        "cluster {}: {}\n",
        c.name,
        if c.drift.is_empty() {
            "no drift".to_owned()
        } else {
            format!(
                "{} dangerous, {} benign, {} expected",
                count(Class::Dangerous),
                count(Class::Benign),
                count(Class::Expected)
            )
        }
    );
    for i in &c.drift {
        let change = match (&i.before, &i.after) {
            (Some(b), Some(a)) => format!("{b} -> {a}"),
            (Some(b), None) => format!("{b} -> (gone)"),
            (None, Some(a)) => format!("(none) -> {a}"),
            (None, None) => String::new(),
        };
        let at = i
            .member
            .as_ref()
            .map(|m| format!(" on {m}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {:<9} {}  [{}{at}]  {change}\n            {}\n",
            format!("{:?}", i.class).to_lowercase(),
            i.address,
            i.source,
            i.message
        ));
    }
    for (name, value) in &c.unmanaged_parameters {
        out.push_str(&format!(
            "  info      pg_parameter.{name}  [Patroni DCS]  {value:?}\n            set outside the spec; pgdba leaves it as is\n"
        ));
    }
    for n in &c.notes {
        out.push_str(&format!("  note: {n}\n"));
    }
    out
}

/// Every spec under `path`, concurrently (up to `--parallelism`). A cluster that cannot be
/// checked is reported and the others go on; the exit code says so at the end: 1 if any
/// could not be checked, else 2 if drift counts under `--fail-on`, else 0.
pub async fn run(g: &Global, path: &Path, fail_on: FailOn) -> Result<Outcome, Failure> {
    let specs = load_all(path)?;
    let store = StateStore::new(&g.state_dir);
    let results = over_fleet(g, &specs, |s| one(&store, s)).await;
    let mut clusters = Vec::new();
    let mut errors = Vec::new();
    let mut human = String::new();
    for (spec, r) in specs.iter().zip(results) {
        match r {
            Ok(c) => {
                human.push_str(&render(&c));
                clusters.push(c);
            }
            Err(f) => {
                let (entry, line) = fleet_error(spec, &f, "checked");
                human.push_str(&line);
                errors.push(entry);
            }
        }
    }
    let drifted = clusters
        .iter()
        .any(|c| c.drift.iter().any(|i| fail_on.counts(i.class)));
    let data = json!({ "clusters": clusters, "errors": errors });
    if !errors.is_empty() {
        return Err(Failure::new(
            codes::UNREACHABLE,
            format!(
                "{} of {} clusters could not be checked\n{}",
                errors.len(),
                specs.len(),
                human.trim_end()
            ),
        )
        .data(data));
    }
    let mut out = Outcome::ok(data, human);
    if drifted {
        out.exit = 2;
    }
    Ok(out)
}

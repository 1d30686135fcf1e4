//! Loading specs (one file, or a fleet's directory checked as a whole) and `validate`.

// `Failure` is the CLI edge's error, made at most once per run: its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use super::Global;
use super::cluster::Cluster;
use super::commands::codes;
use super::commands::{Failure, Outcome};
use crate::spec::{self, LoadedSpec};

pub(super) fn diagnostics_failure(diags: &[spec::Diagnostic]) -> Failure {
    let human: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    let files: BTreeSet<&str> = diags.iter().map(|d| d.file.as_str()).collect();
    Failure::new(
        codes::INVALID_SPEC,
        format!(
            "{} problem{} in {}:\n{}",
            diags.len(),
            if diags.len() == 1 { "" } else { "s" },
            files.into_iter().collect::<Vec<_>>().join(", "),
            human.join("\n")
        ),
    )
    .data(json!({
        "diagnostics": diags.iter().map(|d| json!({
            "file": d.file, "line": d.line, "column": d.column, "message": d.message,
        })).collect::<Vec<_>>()
    }))
}

pub(super) fn load_all(path: &Path) -> Result<Vec<LoadedSpec>, Failure> {
    let files = spec::discover(path).map_err(|d| diagnostics_failure(&[d]))?;
    let mut loaded = Vec::new();
    let mut diags = Vec::new();
    for f in files {
        match spec::load_file(&f) {
            Ok(s) => loaded.push(s),
            Err(d) => diags.extend(d),
        }
    }
    if !diags.is_empty() {
        return Err(diagnostics_failure(&diags));
    }
    let mut names = BTreeSet::new();
    for s in &loaded {
        if !names.insert(s.spec.metadata.name.clone()) {
            return Err(Failure::new(
                codes::INVALID_SPEC,
                format!(
                    "{}: cluster name `{}` is used by another spec in {}",
                    s.path.display(),
                    s.spec.metadata.name,
                    path.display()
                ),
            ));
        }
    }
    // Two clusters of one fleet may not share a directory or a port.
    let clusters: Vec<Cluster> = loaded.iter().map(|s| Cluster::new(&s.spec)).collect();
    let mut clashes = Vec::new();
    for (i, a) in clusters.iter().enumerate() {
        for b in &clusters[i + 1..] {
            for c in a.conflicts_with(b) {
                clashes.push(format!(
                    "{}: {}: {c} ({})",
                    loaded[i].path.display(),
                    a.provider.spec_section(),
                    loaded
                        .iter()
                        .find(|s| s.spec.metadata.name == b.name())
                        .map_or_else(String::new, |s| s.path.display().to_string())
                ));
            }
        }
    }
    if !clashes.is_empty() {
        return Err(Failure::new(
            codes::INVALID_SPEC,
            format!(
                "{} clash{} between the specs in {}:\n{}",
                clashes.len(),
                if clashes.len() == 1 { "" } else { "es" },
                path.display(),
                clashes.join("\n")
            ),
        ));
    }
    Ok(loaded)
}

/// Runs `each` over a fleet's specs, at most `--parallelism` at once; results in spec order.
pub(super) async fn over_fleet<'s, T, Fut>(
    g: &Global,
    specs: &'s [LoadedSpec],
    each: impl Fn(&'s LoadedSpec) -> Fut,
) -> Vec<T>
where
    Fut: std::future::Future<Output = T>,
{
    let sem = tokio::sync::Semaphore::new(g.parallelism.max(1));
    let sem = &sem;
    futures::future::join_all(specs.iter().map(|s| {
        let work = each(s);
        async move {
            let _permit = sem.acquire().await;
            work.await
        }
    }))
    .await
}

/// A cluster of a fleet that could not be `what` (planned, checked): its entry in the
/// envelope's `errors`, and its line for people.
pub(super) fn fleet_error(spec: &LoadedSpec, f: &Failure, what: &str) -> (Value, String) {
    let name = &spec.spec.metadata.name;
    let file = spec.path.display();
    (
        json!({ "file": file.to_string(), "cluster": name, "code": f.code, "message": f.message }),
        format!(
            "cluster {name} ({file}): could not be {what}: {}: {}\n",
            f.code, f.message
        ),
    )
}

pub(super) fn load_one(path: &Path, command: &str) -> Result<LoadedSpec, Failure> {
    let mut all = load_all(path)?;
    if all.len() != 1 {
        return Err(Failure::new(
            codes::USAGE,
            format!(
                "{command} takes one spec file; {} holds {}",
                path.display(),
                all.len()
            ),
        ));
    }
    Ok(all.remove(0))
}

pub(super) fn validate(path: &Path) -> Result<Outcome, Failure> {
    let loaded = load_all(path)?;
    let names: Vec<Value> = loaded
        .iter()
        .map(|s| json!({ "file": s.path.display().to_string(), "cluster": s.spec.metadata.name }))
        .collect();
    let human = loaded
        .iter()
        .map(|s| {
            format!(
                "{}: valid (cluster {})\n",
                s.path.display(),
                s.spec.metadata.name
            )
        })
        .collect();
    Ok(Outcome::ok(json!({ "valid": true, "specs": names }), human))
}

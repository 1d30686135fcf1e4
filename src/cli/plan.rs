//! `pgdba plan`: a fleet's plans, printed, and one cluster's saved (signed) with `--out`.

// `Failure` is the CLI edge's error, made at most once per run: its size does not matter.
#![allow(clippy::result_large_err)]

use std::path::Path;

use serde_json::{Value, json};

use super::Global;
use super::cluster::{Planned, plan_one};
use super::commands::codes;
use super::commands::{Failure, Outcome};
use super::specs::{fleet_error, load_all, over_fleet};
use crate::diff::fingerprint;
use crate::output::{Format, plan as plan_view};
use crate::plan::{
    self, Plan,
    saved::{SAVED_FORMAT, SavedPlan, StateRef},
};
use crate::state::StateStore;

fn plan_data(plans: &[&Plan]) -> Value {
    json!({ "format_version": plan::FORMAT_VERSION, "clusters": plans })
}

fn saved_plan(p: &Planned) -> SavedPlan {
    let touched = p.plan.touched_addresses();
    SavedPlan {
        format: SAVED_FORMAT.to_owned(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        pgdba_version: env!("CARGO_PKG_VERSION").to_owned(),
        spec_path: p.loaded_path.display().to_string(),
        spec_hash: p.spec_hash.clone(),
        spec: p.cluster.spec.clone(),
        state: p.state.as_ref().map(|s| StateRef {
            lineage: s.lineage.clone(),
            serial: s.serial,
        }),
        fingerprints: fingerprint::fingerprints(&p.observation, touched.iter()),
        plan: p.plan.clone(),
        signature: None,
    }
}

/// A saved plan is written like the state: a temp file of mode 0600 in the same directory,
/// fsynced, renamed into place, the directory fsynced.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    crate::state::write_private(path, bytes)
        .map_err(|e| Failure::new(codes::IO_ERROR, crate::error_chain(&e)))
}

pub(super) async fn plan_cmd(
    g: &Global,
    format: Format,
    path: &Path,
    out: Option<&Path>,
    detailed: bool,
) -> Result<Outcome, Failure> {
    let specs = load_all(path)?;
    let store = StateStore::new(&g.state_dir);
    let results = over_fleet(g, &specs, |s| plan_one(&store, s, None)).await;
    // A fleet: one cluster that cannot be planned is reported, the others are still planned.
    let mut planned = Vec::new();
    let mut errors = Vec::new();
    for (spec, r) in specs.iter().zip(results) {
        match r {
            Ok(p) => planned.push(p),
            Err(f) if specs.len() == 1 => return Err(f),
            Err(f) => errors.push((spec, f)),
        }
    }
    if let Some(out) = out {
        if planned.len() != 1 {
            return Err(Failure::new(
                codes::USAGE,
                "--out saves the plan of one cluster; give one spec file",
            ));
        }
        let mut saved = saved_plan(&planned[0]);
        let key = store
            .plan_key(true)?
            .ok_or_else(|| Failure::new(codes::STATE_ERROR, "no plan signing key"))?;
        saved.sign(&key);
        let bytes = serde_json::to_vec_pretty(&saved)
            .map_err(|e| Failure::new(codes::INTERNAL, crate::error_chain(&e)))?;
        write_atomic(out, &bytes)?;
    }
    let plans: Vec<&Plan> = planned.iter().map(|p| &p.plan).collect();
    let pending = plans.iter().any(|p| !p.is_empty());
    let mut human = match format {
        Format::Markdown => {
            crate::output::markdown::render(&plans.iter().map(|p| (*p).clone()).collect::<Vec<_>>())
        }
        Format::Dot => plan_view::dot(&plans.iter().map(|p| (*p).clone()).collect::<Vec<_>>()),
        _ => plans
            .iter()
            .map(|p| plan_view::table(p))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    if let Some(out) = out
        && format == Format::Table
    {
        human.push_str(&format!(
            "\nSaved the plan to {}. Apply exactly it with: pgdba apply {}\n",
            out.display(),
            out.display()
        ));
    }
    let mut data = plan_data(&plans);
    if !errors.is_empty() {
        let mut list = Vec::new();
        for (spec, f) in &errors {
            let (entry, line) = fleet_error(spec, f, "planned");
            list.push(entry);
            human.push('\n');
            human.push_str(&line);
        }
        data["errors"] = Value::Array(list);
        return Err(Failure::new(
            codes::PLAN_FAILED,
            format!(
                "{} of {} clusters could not be planned\n{}",
                errors.len(),
                specs.len(),
                human.trim_end()
            ),
        )
        .data(data));
    }
    let mut outcome = Outcome::ok(data, human);
    if detailed && pending {
        outcome.exit = 2;
    }
    Ok(outcome)
}

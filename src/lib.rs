//! pgdba: a declarative desired-state engine for PostgreSQL HA clusters.
//!
//! `spec` (desired) + `observe` (what runs) go into `diff` and `plan`, which do no IO;
//! `apply` walks the immutable plan. See ARCHITECTURE.md for the code map.

pub mod apply;
pub mod cli;
pub mod diff;
pub mod drift;
pub mod observe;
pub mod ops;
pub mod output;
pub mod patroni;
pub mod pg;
pub mod plan;
pub mod poll;
pub mod providers;
pub mod roles;
pub mod secret;
pub mod spec;
pub mod state;

/// An error and its sources, joined with ": " (library errors' `Display` does not repeat the
/// source, so this is how they are shown).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

//! pgdba: a declarative desired-state engine for PostgreSQL HA clusters.
//!
//! `spec` (desired) + `observe` (what runs) go into `diff` and `plan`, which do no IO;
//! `apply` walks the immutable plan. See ARCHITECTURE.md for the code map.

pub mod apply;
pub mod cli;
pub mod diff;
pub mod observe;
pub mod output;
pub mod patroni;
pub mod pg;
pub mod plan;
pub mod providers;
pub mod spec;
pub mod state;

//! pgdba: a declarative desired-state engine for PostgreSQL HA clusters.
//!
//! `spec` (desired) + `observe` (what runs) go into `diff` and `plan`, which do no IO;
//! `apply` walks the immutable plan. See ARCHITECTURE.md for the code map.

pub mod spec;
pub mod pg;
pub mod state;

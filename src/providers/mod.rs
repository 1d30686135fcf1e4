//! Providers: where members run. Only `local` (processes on this machine) exists so far.
pub mod local;

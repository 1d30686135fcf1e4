//! The spec: parsing (YAML, with positions), validation with diagnostics, the JSON Schema.
pub mod model;

//! PostgreSQL knowledge: the GUC catalog and value normalization.
//!
//! Architecture Invariant: `pg/` is pure. It does no IO, takes no clock and never talks to a
//! server; the catalogs are embedded at build time (`scripts/gen-guc-catalog.sh` makes them).
//! GUC values are compared after PostgreSQL's own parsing (`128MB` = `131072kB` = `16384`
//! 8kB pages), never as raw strings.

mod catalog;
mod cnum;
mod guc;

pub mod scram;
#[cfg(test)]
mod tests;

pub(crate) use catalog::edit_distance;
pub use catalog::{Catalog, CatalogError, catalog, supported_majors};
pub use guc::{GucContext, GucDef, GucValueError, Normalized, Unit, VarType};

/// GUCs a hot standby must hold at least as high as its primary, or it refuses to start
/// (they size shared memory for the transactions, locks and processes it replays).
/// Raise them on standbys before the primary; lower them on the primary first.
pub fn is_shared_memory_floor(name: &str) -> bool {
    const FLOORS: [&str; 5] = [
        "max_connections",
        "max_worker_processes",
        "max_wal_senders",
        "max_prepared_transactions",
        "max_locks_per_transaction",
    ];
    FLOORS.iter().any(|f| f.eq_ignore_ascii_case(name))
}

/// GUCs a spec must not set because Patroni or the provider owns them, with a hint saying
/// where the setting lives instead. `None` for every other name.
pub fn managed_by_pgdba(name: &str) -> Option<&'static str> {
    let hint = match name.to_ascii_lowercase().as_str() {
        "port" => "the port comes from the provider: set spec.provider.local.pg_port",
        "listen_addresses" => "Patroni sets it from the provider's member addresses",
        "unix_socket_directories" => {
            "pgdba gives each member its own socket directory (see `pgdba state show`)"
        }
        "data_directory" => {
            "the data directory comes from the provider: set spec.provider.local.data_dir"
        }
        "config_file" | "hba_file" | "ident_file" => {
            "Patroni writes and owns PostgreSQL's configuration files"
        }
        "cluster_name" => "Patroni sets it from metadata.name",
        "hot_standby" => "Patroni keeps it on so that standbys serve reads",
        "primary_conninfo" | "primary_slot_name" => {
            "Patroni sets it on each standby to follow the current primary"
        }
        _ => return None,
    };
    Some(hint)
}

/// Whether `name` is a custom (extension) GUC such as `pg_stat_statements.max`: dotted
/// identifiers, which PostgreSQL accepts as placeholders before the extension loads.
/// The catalog knows nothing about them, so their values are passed through unchecked.
pub fn is_custom_name(name: &str) -> bool {
    let mut parts = name.split('.');
    let valid_ident = |p: &str| {
        let mut chars = p.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    };
    name.contains('.') && parts.all(valid_ident)
}

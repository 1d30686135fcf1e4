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
pub use catalog::{Catalog, CatalogError, SUPPORTED_MAJORS, catalog, supported_majors_list};
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

/// Parameters that make PostgreSQL run a command or load code: a spec that sets one runs that
/// command as the `postgres` user on every member. pgdba's own features will own some of them
/// (backups set `archive_command`); others need `spec.postgres.allow_unsafe_parameters`.
pub fn is_unsafe_parameter(name: &str) -> bool {
    const UNSAFE: [&str; 13] = [
        "archive_command",
        "archive_library",
        "restore_command",
        "archive_cleanup_command",
        "recovery_end_command",
        "ssl_passphrase_command",
        "shared_preload_libraries",
        "local_preload_libraries",
        "session_preload_libraries",
        "dynamic_library_path",
        "jit_provider",
        "log_directory",
        "ssl_library",
    ];
    UNSAFE.iter().any(|u| u.eq_ignore_ascii_case(name))
}

/// Values Patroni does not pass on: it starts PostgreSQL with these settings on the command
/// line and replaces a value its validator refuses by its own default (`CMDLINE_OPTIONS` in
/// Patroni's `postgresql/config.py`). The spec would then say one thing and the cluster run
/// another, so `validate` refuses them. `Some(why)` for such a value; `value` is normalized.
pub fn replaced_by_patroni(name: &str, value: &Normalized) -> Option<String> {
    // (name, Patroni's minimum in the base unit, shown, Patroni's default)
    const MINIMA: [(&str, i64, &str, &str); 6] = [
        ("max_connections", 25, "25", "100"),
        ("max_wal_senders", 3, "3", "10"),
        ("wal_keep_size", 16, "16MB", "128MB"),
        ("max_locks_per_transaction", 32, "32", "64"),
        ("max_replication_slots", 4, "4", "10"),
        ("max_worker_processes", 2, "2", "8"),
    ];
    let lower = name.to_ascii_lowercase();
    match value {
        Normalized::Enum(v) if lower == "wal_level" && v != "replica" && v != "logical" => {
            Some(format!(
                "wal_level `{v}` would not take effect: Patroni runs PostgreSQL with `replica` \
                 instead, because standbys need the WAL a primary writes for them (use replica \
                 or logical)"
            ))
        }
        Normalized::Integer { value, .. } => {
            let (_, min, shown, default) = MINIMA.iter().find(|m| m.0 == lower)?;
            (value < min).then(|| {
                format!(
                    "{name} below {shown} would not take effect: Patroni refuses it and runs \
                     PostgreSQL with {default} instead"
                )
            })
        }
        _ => None,
    }
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

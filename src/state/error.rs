use std::path::PathBuf;

use super::lock::LockInfo;

/// Everything that can go wrong reading or writing the state. Every variant names the file or the
/// cluster it concerns; `Display` does not repeat the `#[source]`.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "invalid cluster name {name:?}: use 1 to 50 lowercase letters, digits and '-', \
         not starting or ending with '-'"
    )]
    InvalidClusterName { name: String },

    /// A filesystem operation failed; `action` says which ("read", "write", "create directory", …).
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The state file is not valid JSON or does not match the state format.
    #[error("state file {path} is damaged: it is not a valid pgdba state")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// The state file was written by a newer pgdba.
    #[error(
        "state file {path} has format version {found}, this pgdba reads up to version \
         {supported}: upgrade pgdba"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u64,
        supported: u32,
    },

    /// The file `<cluster>.json` holds the state of another cluster (renamed by hand?).
    #[error("state file {path} holds the state of cluster {found:?}, not {cluster:?}")]
    ClusterMismatch {
        path: PathBuf,
        cluster: String,
        found: String,
    },

    /// Saving would overwrite the state of a different cluster that has the same name.
    #[error(
        "refusing to overwrite state file {path}: it belongs to another cluster named {cluster} \
         (lineage {found}, the state being saved has lineage {expected})"
    )]
    LineageMismatch {
        path: PathBuf,
        cluster: String,
        expected: String,
        found: String,
    },

    /// Saving would overwrite a newer state written since this one was loaded.
    #[error(
        "refusing to overwrite state file {path}: the state of cluster {cluster} was saved by \
         someone else since it was loaded (serial {found} on disk, {expected} loaded)"
    )]
    SerialConflict {
        path: PathBuf,
        cluster: String,
        expected: u64,
        found: u64,
    },

    /// A live process holds the lock (one that died released it: the kernel holds it).
    #[error("state of cluster {cluster} is locked by {holder}")]
    Locked {
        cluster: String,
        holder: Box<LockInfo>,
    },

    /// The lock file exists but cannot be understood; it still counts as held.
    #[error(
        "lock file {path} of cluster {cluster} is damaged; make sure no pgdba works on the \
         cluster, then run `pgdba state unlock {cluster} --force`"
    )]
    CorruptLock {
        path: PathBuf,
        cluster: String,
        #[source]
        source: serde_json::Error,
    },

    /// The lock file this process locked was deleted or replaced while it held it: another
    /// process may have taken the lock.
    #[error(
        "the lock of cluster {cluster} was taken from this run: {path} was deleted or replaced while it was held; stopping before writing the state"
    )]
    LockLost { cluster: String, path: PathBuf },

    /// `state unlock --force` on a lock a live process holds.
    #[error(
        "the lock of cluster {cluster} is held by a live process{}",
        holder.as_ref().map(|h| format!(": {h}")).unwrap_or_default()
    )]
    LockHeld {
        cluster: String,
        holder: Option<Box<LockInfo>>,
    },

    /// The lock file kept appearing and disappearing while we tried to take it.
    #[error("lock file {path} of cluster {cluster} kept changing while taking it; try again")]
    LockContended { path: PathBuf, cluster: String },

    /// The secrets file is not valid JSON or lacks a password.
    #[error("secrets file {path} is damaged")]
    CorruptSecrets {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// A value could not be encoded as JSON (not expected to happen for pgdba's own types).
    #[error("cannot encode the content of {path}")]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder() -> Box<LockInfo> {
        Box::new(LockInfo {
            id: "3f1c".into(),
            owner: "root".into(),
            pid: 1234,
            host: "db1".into(),
            operation: "apply".into(),
            created_at: "2026-01-02T03:04:05Z".into(),
        })
    }

    #[test]
    fn locked_names_the_holder() {
        let e = StateError::Locked {
            cluster: "demo".into(),
            holder: holder(),
        };
        assert_eq!(
            e.to_string(),
            "state of cluster demo is locked by root@db1 pid 1234 (apply since 2026-01-02T03:04:05Z)"
        );
    }

    #[test]
    fn a_held_lock_refuses_force_unlock_naming_the_holder() {
        let e = StateError::LockHeld {
            cluster: "demo".into(),
            holder: Some(holder()),
        };
        assert_eq!(
            e.to_string(),
            "the lock of cluster demo is held by a live process: root@db1 pid 1234 (apply since 2026-01-02T03:04:05Z)"
        );
    }
}

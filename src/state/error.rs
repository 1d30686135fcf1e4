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

    /// Another process holds the lock. `stale` is true when the holder ran on this host and its
    /// process is gone; the lock is still not broken without `force_unlock`.
    #[error("state of cluster {cluster} is locked by {holder}{}", stale_note(.cluster, .holder, *.stale))]
    Locked {
        cluster: String,
        holder: Box<LockInfo>,
        stale: bool,
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

fn stale_note(cluster: &str, holder: &LockInfo, stale: bool) -> String {
    if stale {
        format!(
            " (stale: process {} is gone; run `pgdba state unlock {cluster} --force`)",
            holder.pid
        )
    } else {
        String::new()
    }
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
            stale: false,
        };
        assert_eq!(
            e.to_string(),
            "state of cluster demo is locked by root@db1 pid 1234 (apply since 2026-01-02T03:04:05Z)"
        );
    }

    #[test]
    fn stale_lock_says_how_to_break_it() {
        let e = StateError::Locked {
            cluster: "demo".into(),
            holder: holder(),
            stale: true,
        };
        assert_eq!(
            e.to_string(),
            "state of cluster demo is locked by root@db1 pid 1234 (apply since \
             2026-01-02T03:04:05Z) (stale: process 1234 is gone; run `pgdba state unlock demo --force`)"
        );
    }
}

//! The state directory: load, save, list and remove states; lock; secrets.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fsutil::{self, Install};
use super::lock::{self, LockGuard, LockInfo, LockStatus};
use super::secrets::{self, Secrets};
use super::{ClusterState, STATE_VERSION, StateError, sys};

const STATE_EXT: &str = ".json";
const LOCK_EXT: &str = ".lock";
const SECRETS_EXT: &str = ".secrets.json";
const STATE_MODE: u32 = 0o644;
const MAX_CLUSTER_NAME_LEN: usize = 50;

/// Checks a cluster name before it becomes part of a file name: 1 to 50 characters of
/// `[a-z0-9-]`, not starting or ending with `-` (the spec's `metadata.name` rule).
pub fn validate_cluster_name(name: &str) -> Result<(), StateError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_CLUSTER_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidClusterName {
            name: name.to_owned(),
        })
    }
}

/// One line of `pgdba state list`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StateSummary {
    pub cluster: String,
    pub serial: u64,
    pub lineage: String,
    pub updated_at: String,
    /// Number of members.
    pub members: usize,
    /// The lock, if someone holds it.
    pub lock: Option<LockStatus>,
}

/// A directory of cluster states (`--state-dir`). See the module documentation for the files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    /// A store in `dir`. No IO: the directory is created by the first write.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<cluster>.json`
    pub fn state_path(&self, cluster: &str) -> Result<PathBuf, StateError> {
        self.file(cluster, STATE_EXT)
    }

    /// `<dir>/<cluster>.lock`
    pub fn lock_path(&self, cluster: &str) -> Result<PathBuf, StateError> {
        self.file(cluster, LOCK_EXT)
    }

    /// `<dir>/<cluster>.secrets.json`
    /// `<dir>/<cluster>.json.prev`: the state before the last save.
    pub fn previous_path(&self, cluster: &str) -> Result<PathBuf, StateError> {
        self.file(cluster, &format!("{STATE_EXT}.prev"))
    }

    /// The state before the last save, if one was kept.
    pub fn load_previous(&self, cluster: &str) -> Result<Option<ClusterState>, StateError> {
        let path = self.previous_path(cluster)?;
        match fsutil::read_optional(&path)? {
            Some(bytes) => parse_state(&path, cluster, &bytes).map(Some),
            None => Ok(None),
        }
    }

    pub fn secrets_path(&self, cluster: &str) -> Result<PathBuf, StateError> {
        self.file(cluster, SECRETS_EXT)
    }

    fn file(&self, cluster: &str, ext: &str) -> Result<PathBuf, StateError> {
        validate_cluster_name(cluster)?;
        Ok(self.dir.join(format!("{cluster}{ext}")))
    }

    /// The state of `cluster`, `None` if there is none. A damaged file, a file of a newer format
    /// or a file holding another cluster's state is an error naming the file.
    pub fn load(&self, cluster: &str) -> Result<Option<ClusterState>, StateError> {
        let path = self.state_path(cluster)?;
        match fsutil::read_optional(&path)? {
            Some(bytes) => parse_state(&path, cluster, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Writes `state`: `serial` is bumped, `updated_at` set to now and `version` to
    /// [`STATE_VERSION`], then the file is replaced atomically (temp file in the same directory,
    /// fsync, rename, fsync of the directory). The directory is created if needed. `state` is
    /// only modified when the write succeeded.
    ///
    /// Like Terraform, refuses to overwrite a state of another lineage
    /// ([`StateError::LineageMismatch`]) or one saved by someone else since `state` was loaded
    /// ([`StateError::SerialConflict`]). Callers should hold the cluster's lock.
    ///
    /// The state it replaces is kept as `<cluster>.json.prev` (written the same crash-safe way
    /// first): one step back, should the new one be lost or wrong.
    pub fn save(&self, state: &mut ClusterState) -> Result<(), StateError> {
        let path = self.state_path(&state.cluster)?;
        fsutil::create_dir_all(&self.dir)?;
        if let Some(bytes) = fsutil::read_optional(&path)? {
            fsutil::write_atomic(
                &self.previous_path(&state.cluster)?,
                &bytes,
                STATE_MODE,
                Install::Replace,
            )?;
            let on_disk = parse_state(&path, &state.cluster, &bytes)?;
            if on_disk.lineage != state.lineage {
                return Err(StateError::LineageMismatch {
                    path,
                    cluster: state.cluster.clone(),
                    expected: state.lineage.clone(),
                    found: on_disk.lineage,
                });
            }
            if on_disk.serial > state.serial {
                return Err(StateError::SerialConflict {
                    path,
                    cluster: state.cluster.clone(),
                    expected: state.serial,
                    found: on_disk.serial,
                });
            }
        }
        let mut next = state.clone();
        next.version = STATE_VERSION;
        next.serial = state.serial.saturating_add(1);
        next.updated_at = sys::now_rfc3339();
        let bytes = to_json(&path, &next)?;
        fsutil::write_atomic(&path, &bytes, STATE_MODE, Install::Replace)?;
        *state = next;
        Ok(())
    }

    /// Removes the state and secrets files of `cluster` (after destroy). Missing files are fine;
    /// the lock is left to its guard.
    pub fn remove(&self, cluster: &str) -> Result<(), StateError> {
        let mut removed = false;
        for path in [
            self.state_path(cluster)?,
            self.previous_path(cluster)?,
            self.secrets_path(cluster)?,
            self.file(cluster, ".scram-memo.json")?,
            self.file(cluster, ".history.json")?,
        ] {
            removed |= fsutil::remove_optional(&path)?;
        }
        if removed {
            fsutil::sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// One summary per state file, sorted by cluster name. Lock, secrets and temp files, and
    /// files whose name is not a valid cluster name, are ignored. A missing directory is empty.
    pub fn list(&self) -> Result<Vec<StateSummary>, StateError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(fsutil::io_err("read directory", &self.dir)(e)),
        };
        let mut summaries = Vec::new();
        for entry in entries {
            let entry = entry.map_err(fsutil::io_err("read directory", &self.dir))?;
            let name = entry.file_name();
            let Some(cluster) = name.to_str().and_then(cluster_of_state_file) else {
                continue;
            };
            if !entry.path().is_file() {
                continue;
            }
            // Removed since read_dir saw it: not a state any more.
            let Some(state) = self.load(cluster)? else {
                continue;
            };
            summaries.push(StateSummary {
                cluster: state.cluster,
                serial: state.serial,
                lineage: state.lineage,
                updated_at: state.updated_at,
                members: state.members.len(),
                lock: self.read_lock(cluster)?,
            });
        }
        summaries.sort_by(|a, b| a.cluster.cmp(&b.cluster));
        Ok(summaries)
    }

    /// Takes the lock of `cluster` for `operation` (`apply`, `destroy`, …). Never waits: when a
    /// live process holds it, fails at once with [`StateError::Locked`] naming the holder. A
    /// process that dies releases it at once (the kernel holds it).
    pub fn lock(&self, cluster: &str, operation: &str) -> Result<LockGuard, StateError> {
        let path = self.lock_path(cluster)?;
        lock::acquire(cluster, &path, operation)
    }

    /// The lock of `cluster`, if a live process holds it. Reads only: it neither creates the
    /// lock file nor takes the lock.
    pub fn read_lock(&self, cluster: &str) -> Result<Option<LockStatus>, StateError> {
        let path = self.lock_path(cluster)?;
        lock::read_lock(cluster, &path)
    }

    /// Removes the lock file of `cluster` (`pgdba state unlock NAME --force`), returning what
    /// it held; `None` when there was none. A lock a live process holds is refused with
    /// [`StateError::LockHeld`] unless `even_if_alive`.
    pub fn force_unlock(
        &self,
        cluster: &str,
        even_if_alive: bool,
    ) -> Result<Option<LockInfo>, StateError> {
        let path = self.lock_path(cluster)?;
        lock::force_remove(cluster, &path, even_if_alive)
    }

    /// The generated passwords of `cluster`: loaded, or generated and written once to
    /// `<cluster>.secrets.json` with mode 0600 from its creation.
    pub fn secrets(&self, cluster: &str) -> Result<Secrets, StateError> {
        let path = self.secrets_path(cluster)?;
        secrets::load_or_create(&path)
    }

    /// Write the secrets file of a cluster pgdba adopts (its superuser's password only).
    pub fn create_adopted_secrets(
        &self,
        cluster: &str,
        superuser_password: &str,
    ) -> Result<(), StateError> {
        secrets::create_adopted(&self.secrets_path(cluster)?, superuser_password)
    }

    /// The key saved plans are signed with (`.plan-signing-key`, mode 0600): made on first
    /// use when `create`; `None` when there is none and `create` is false.
    pub fn plan_key(&self, create: bool) -> Result<Option<Vec<u8>>, StateError> {
        let path = self.dir.join(".plan-signing-key");
        if let Some(bytes) = fsutil::read_optional(&path)? {
            return Ok(Some(bytes));
        }
        if !create {
            return Ok(None);
        }
        fsutil::create_dir_all(&self.dir)?;
        let mut key = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut key);
        let key = hex::encode(key).into_bytes();
        match fsutil::write_atomic(&path, &key, 0o600, Install::CreateNew)? {
            fsutil::Written::Installed => Ok(Some(key)),
            fsutil::Written::AlreadyExists => Ok(Some(
                std::fs::read(&path).map_err(fsutil::io_err("read", &path))?,
            )),
        }
    }

    /// The password-check memo of `cluster` (`<cluster>.scram-memo.json`, 0600): a fresh one
    /// when there is none or it cannot be read (it only saves work).
    pub fn scram_memo(&self, cluster: &str) -> Result<crate::pg::scram::Memo, StateError> {
        let path = self.file(cluster, ".scram-memo.json")?;
        Ok(fsutil::read_optional(&path)?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default())
    }

    /// Keep the password-check memo of `cluster`.
    pub fn save_scram_memo(
        &self,
        cluster: &str,
        memo: &crate::pg::scram::Memo,
    ) -> Result<(), StateError> {
        let path = self.file(cluster, ".scram-memo.json")?;
        let bytes = serde_json::to_vec(memo).map_err(|source| StateError::Encode {
            path: path.clone(),
            source,
        })?;
        fsutil::create_dir_all(&self.dir)?;
        fsutil::write_atomic(&path, &bytes, 0o600, Install::Replace).map(|_| ())
    }

    /// The operations run on `cluster` outside apply (switchovers, failovers, ...), oldest
    /// first. Kept beside the state, not in it: recording one does not change the state's
    /// serial, so it never makes a saved plan stale.
    pub fn history(&self, cluster: &str) -> Result<Vec<super::HistoryEntry>, StateError> {
        let path = self.file(cluster, ".history.json")?;
        match fsutil::read_optional(&path)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StateError::Corrupt { path, source }),
            None => Ok(Vec::new()),
        }
    }

    /// Record an operation in `cluster`'s history (the newest [`super::MAX_HISTORY`] are
    /// kept), written atomically. Callers hold the cluster's lock.
    pub fn record(&self, cluster: &str, entry: super::HistoryEntry) -> Result<(), StateError> {
        let path = self.file(cluster, ".history.json")?;
        let mut all = self.history(cluster)?;
        all.push(entry);
        let excess = all.len().saturating_sub(super::MAX_HISTORY);
        all.drain(..excess);
        let bytes = to_json(&path, &all)?;
        fsutil::create_dir_all(&self.dir)?;
        fsutil::write_atomic(&path, &bytes, STATE_MODE, Install::Replace).map(|_| ())
    }

    /// The generated passwords of `cluster` if they exist; never creates them.
    pub fn read_secrets(&self, cluster: &str) -> Result<Option<Secrets>, StateError> {
        let path = self.secrets_path(cluster)?;
        secrets::load(&path)
    }
}

/// `demo.json` → `demo`; `None` for lock, secrets and temp files and anything else.
fn cluster_of_state_file(file_name: &str) -> Option<&str> {
    let stem = file_name.strip_suffix(STATE_EXT)?;
    validate_cluster_name(stem).ok().map(|()| stem)
}

/// Just enough of a state file to refuse a newer format with a clear message, before its
/// unknown shape gives a confusing parse error.
#[derive(Deserialize)]
struct VersionProbe {
    version: Option<serde_json::Value>,
}

fn parse_state(path: &Path, cluster: &str, bytes: &[u8]) -> Result<ClusterState, StateError> {
    let corrupt = |source| StateError::Corrupt {
        path: path.to_path_buf(),
        source,
    };
    let found = serde_json::from_slice::<VersionProbe>(bytes)
        .ok()
        .and_then(|p| p.version)
        .and_then(|v| v.as_u64());
    match found {
        Some(found) if found > u64::from(STATE_VERSION) => {
            return Err(StateError::UnsupportedVersion {
                path: path.to_path_buf(),
                found,
                supported: STATE_VERSION,
            });
        }
        Some(0) => {
            return Err(corrupt(serde::de::Error::custom(
                "format version 0 does not exist",
            )));
        }
        _ => {}
    }
    let state: ClusterState = serde_json::from_slice(bytes).map_err(corrupt)?;
    if state.cluster != cluster {
        return Err(StateError::ClusterMismatch {
            path: path.to_path_buf(),
            cluster: cluster.to_owned(),
            found: state.cluster,
        });
    }
    Ok(state)
}

fn to_json<T: Serialize>(path: &Path, value: &T) -> Result<Vec<u8>, StateError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| StateError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_that_are_safe_in_paths() {
        for ok in ["demo", "a", "pg-15", "0", &"a".repeat(50)] {
            assert!(validate_cluster_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-demo",
            "demo-",
            "Demo",
            "de.mo",
            "../etc",
            "a/b",
            "demo.secrets",
            "dé",
            " demo",
            &"a".repeat(51),
        ] {
            assert!(
                matches!(
                    validate_cluster_name(bad),
                    Err(StateError::InvalidClusterName { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_state_files_name_clusters() {
        assert_eq!(cluster_of_state_file("demo.json"), Some("demo"));
        for other in [
            "demo.lock",
            "demo.secrets.json",
            ".demo.json.0123456789abcdef.tmp",
            ".demo.json",
            "demo.json.bak",
            "README",
        ] {
            assert_eq!(cluster_of_state_file(other), None, "{other}");
        }
    }
}

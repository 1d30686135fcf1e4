//! The per-cluster lock: a file created exclusively, holding who took it and why.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fsutil::{self, Install, Written};
use super::{StateError, sys};

/// Who holds a cluster's lock: the content of `<cluster>.lock`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LockInfo {
    /// UUID v4 of this acquisition; a guard only removes a lock with its own id.
    pub id: String,
    /// OS user of the holding process.
    pub owner: String,
    pub pid: u32,
    pub host: String,
    /// What the holder is doing: `apply`, `destroy`, …
    pub operation: String,
    /// RFC3339 UTC.
    pub created_at: String,
}

impl LockInfo {
    /// A lock for `operation`, held by this process.
    pub(super) fn for_this_process(operation: &str) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            owner: sys::user_name(),
            pid: std::process::id(),
            host: sys::hostname(),
            operation: operation.to_owned(),
            created_at: sys::now_rfc3339(),
        }
    }

    /// True when the holder ran on this host and its process no longer exists. A lock from
    /// another host is never judged stale: we cannot see its processes.
    pub fn is_stale(&self) -> bool {
        self.host == sys::hostname() && !sys::pid_alive(self.pid)
    }
}

/// `root@db1 pid 1234 (apply since 2026-01-02T03:04:05Z)`
impl fmt::Display for LockInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{} pid {} ({} since {})",
            self.owner, self.host, self.pid, self.operation, self.created_at
        )
    }
}

/// A lock as found on disk.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LockStatus {
    pub info: LockInfo,
    /// Same host and the holding process is gone (see [`LockInfo::is_stale`]).
    pub stale: bool,
}

impl LockStatus {
    pub(super) fn of(info: LockInfo) -> Self {
        let stale = info.is_stale();
        Self { info, stale }
    }
}

/// Proof that this process holds a cluster's lock. Dropping it removes the lock file, but only if
/// the file still holds this guard's id (it may have been force-unlocked and taken by another).
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard {
    cluster: String,
    path: PathBuf,
    info: LockInfo,
    released: bool,
}

impl LockGuard {
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    /// Path of the lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Releases the lock now, reporting errors that `Drop` has to swallow. Returns `false` when the
    /// lock file was gone or belonged to someone else (it is then left alone).
    pub fn release(mut self) -> Result<bool, StateError> {
        self.released = true;
        release(&self.cluster, &self.path, &self.info.id)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.released {
            let _ = release(&self.cluster, &self.path, &self.info.id);
        }
    }
}

/// Removes the lock at `path` if it holds `id`.
///
/// Between reading the id and removing the file another process could force-unlock and take the
/// lock; that needs a human running `state unlock --force` on a live lock within microseconds, and
/// is accepted.
fn release(cluster: &str, path: &Path, id: &str) -> Result<bool, StateError> {
    match read_lock_file(cluster, path) {
        Ok(Some(info)) if info.id == id => {
            let removed = fsutil::remove_optional(path)?;
            if removed {
                fsutil::sync_dir(fsutil::parent_dir(path))?;
            }
            Ok(removed)
        }
        Ok(_) => Ok(false),
        // A damaged lock is not provably ours: leave it.
        Err(StateError::CorruptLock { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads a lock file; `None` when there is none.
pub(super) fn read_lock_file(cluster: &str, path: &Path) -> Result<Option<LockInfo>, StateError> {
    let Some(bytes) = fsutil::read_optional(path)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StateError::CorruptLock {
            path: path.to_path_buf(),
            cluster: cluster.to_owned(),
            source,
        })
}

/// How often `acquire` retries when the lock file vanishes between "it exists" and reading it.
const ACQUIRE_ATTEMPTS: usize = 5;

/// Takes the lock at `path`, or fails at once with [`StateError::Locked`] naming the holder.
///
/// The lock file is written completely to a temp file and then hard-linked into place: `link(2)`
/// fails when the target exists, exactly like `O_EXCL`, and a reader never sees a half-written lock.
pub(super) fn acquire(
    cluster: &str,
    path: &Path,
    operation: &str,
) -> Result<LockGuard, StateError> {
    fsutil::create_dir_all(fsutil::parent_dir(path))?;
    let info = LockInfo::for_this_process(operation);
    let mut bytes = serde_json::to_vec_pretty(&info).map_err(|source| StateError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    bytes.push(b'\n');
    for _ in 0..ACQUIRE_ATTEMPTS {
        match fsutil::write_atomic(path, &bytes, 0o644, Install::CreateNew)? {
            Written::Installed => {
                return Ok(LockGuard {
                    cluster: cluster.to_owned(),
                    path: path.to_path_buf(),
                    info,
                    released: false,
                });
            }
            Written::AlreadyExists => {
                if let Some(holder) = read_lock_file(cluster, path)? {
                    let status = LockStatus::of(holder);
                    return Err(StateError::Locked {
                        cluster: cluster.to_owned(),
                        holder: Box::new(status.info),
                        stale: status.stale,
                    });
                }
                // Released between our link and our read: try again.
            }
        }
    }
    Err(StateError::LockContended {
        path: path.to_path_buf(),
        cluster: cluster.to_owned(),
    })
}

/// Removes the lock whatever its holder, returning what it held (`None` if there was no lock or
/// it was damaged). The file is first renamed aside so that what is returned is exactly what was
/// removed.
pub(super) fn force_remove(cluster: &str, path: &Path) -> Result<Option<LockInfo>, StateError> {
    let aside = fsutil::TempFile::beside(path);
    match std::fs::rename(path, aside.path()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fsutil::io_err("remove", path)(e)),
    }
    let info = match read_lock_file(cluster, aside.path()) {
        Ok(info) => info,
        Err(StateError::CorruptLock { .. }) => None,
        Err(e) => return Err(e),
    };
    fsutil::remove_optional(aside.path())?;
    drop(aside);
    fsutil::sync_dir(fsutil::parent_dir(path))?;
    Ok(info)
}

//! The per-cluster lock: an open file description lock (`F_OFD_SETLK`) on `<cluster>.lock`,
//! which holds who took it and why.
//!
//! The kernel holds the lock, not the file's existence: it is released the moment the holding
//! process exits, however it ends (a crashed apply needs no `unlock --force`), and rewriting the
//! file does not release it. The holder writes its [`LockInfo`] into the file for others to
//! read, and removes the file when it releases. A lock file nobody holds is no lock.
//!
//! Deleting the file while it is held would let another process lock a new file under the same
//! name: the holder checks before every state write that the name still is its file
//! ([`LockGuard::check`]) and stops when it is not.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};
use serde::{Deserialize, Serialize};

use super::fsutil;
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

/// A lock as found: held by a live process (the kernel says so).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LockStatus {
    pub info: LockInfo,
    /// Always false: a lock whose process is gone is released by the kernel and not reported.
    /// Kept for scripts that read it.
    pub stale: bool,
}

/// Proof that this process holds a cluster's lock. Dropping it releases the lock: the file is
/// removed (if it still is this guard's) and the kernel lock goes with the file description.
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard {
    cluster: String,
    path: PathBuf,
    info: LockInfo,
    /// The locked file; the lock lives as long as it is open.
    file: Option<File>,
    /// Device and inode of the locked file: the name must still point at it.
    identity: (u64, u64),
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

    /// The lock file still is the one this guard locked. Someone who deleted or replaced it
    /// could have let another process take the lock: [`StateError::LockLost`].
    pub fn check(&self) -> Result<(), StateError> {
        if identity_of(&self.path) == Some(self.identity) {
            Ok(())
        } else {
            Err(StateError::LockLost {
                cluster: self.cluster.clone(),
                path: self.path.clone(),
            })
        }
    }

    /// Releases the lock now, reporting errors that `Drop` has to swallow. Returns `false` when
    /// the lock file was no longer this guard's (it is then left alone).
    pub fn release(mut self) -> Result<bool, StateError> {
        self.release_now()
    }

    fn release_now(&mut self) -> Result<bool, StateError> {
        let Some(file) = self.file.take() else {
            return Ok(false);
        };
        // Remove the name while still holding the lock, so that no one locks this file after
        // us believing it current; then close, which releases the kernel lock.
        let ours = identity_of(&self.path) == Some(self.identity);
        let removed = ours && fsutil::remove_optional(&self.path)?;
        if removed {
            fsutil::sync_dir(fsutil::parent_dir(&self.path))?;
        }
        drop(file);
        Ok(removed)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.release_now();
    }
}

fn identity_of(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// A whole-file write lock, for `F_OFD_SETLK` and `F_OFD_GETLK`.
fn whole_file(kind: libc::c_int) -> libc::flock {
    libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

/// Is the open `file` locked by some other open file description (a live process)?
fn held_by_other(file: &File, path: &Path) -> Result<bool, StateError> {
    let mut probe = whole_file(libc::F_WRLCK);
    fcntl(file, FcntlArg::F_OFD_GETLK(&mut probe))
        .map_err(|e| fsutil::io_err("test the lock", path)(e.into()))?;
    Ok(i32::from(probe.l_type) != libc::F_UNLCK)
}

/// Opens an existing lock file for reading, never following a symbolic link.
fn open_existing(path: &Path) -> Result<Option<File>, StateError> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(fsutil::io_err("open", path)(e)),
    }
}

/// The lock of `cluster` at `path` when a live process holds it; `None` when no one does (no
/// file, or a file its holder left when it died).
pub(super) fn read_lock(cluster: &str, path: &Path) -> Result<Option<LockStatus>, StateError> {
    let Some(file) = open_existing(path)? else {
        return Ok(None);
    };
    if !held_by_other(&file, path)? {
        return Ok(None);
    }
    Ok(read_lock_file(cluster, path)?.map(|info| LockStatus { info, stale: false }))
}

/// Reads a lock file; `None` when there is none or it is still empty (its holder is writing).
pub(super) fn read_lock_file(cluster: &str, path: &Path) -> Result<Option<LockInfo>, StateError> {
    let Some(bytes) = fsutil::read_optional(path)? else {
        return Ok(None);
    };
    if bytes.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StateError::CorruptLock {
            path: path.to_path_buf(),
            cluster: cluster.to_owned(),
            source,
        })
}

/// How often `acquire` retries when the lock file changes under it.
const ACQUIRE_ATTEMPTS: usize = 20;

/// Takes the lock at `path`, or fails at once with [`StateError::Locked`] naming the holder.
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
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(fsutil::io_err("open", path))?;
        let lock = whole_file(libc::F_WRLCK);
        match fcntl(&file, FcntlArg::F_OFD_SETLK(&lock)) {
            Ok(_) => {}
            Err(Errno::EAGAIN | Errno::EACCES) => {
                match read_lock_file(cluster, path)? {
                    Some(holder) => {
                        return Err(StateError::Locked {
                            cluster: cluster.to_owned(),
                            holder: Box::new(holder),
                        });
                    }
                    // Its holder has not written who it is yet.
                    None => {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        continue;
                    }
                }
            }
            Err(e) => return Err(fsutil::io_err("lock", path)(e.into())),
        }
        // The name may have been removed (by a holder releasing) or replaced between our open
        // and our lock: then this file is not the lock anymore; start again.
        let meta = file.metadata().map_err(fsutil::io_err("stat", path))?;
        let identity = (meta.dev(), meta.ino());
        if identity_of(path) != Some(identity) {
            continue;
        }
        file.set_len(0).map_err(fsutil::io_err("write", path))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(fsutil::io_err("write", path))?;
        fsutil::sync_dir(fsutil::parent_dir(path))?;
        return Ok(LockGuard {
            cluster: cluster.to_owned(),
            path: path.to_path_buf(),
            info,
            file: Some(file),
            identity,
        });
    }
    Err(StateError::LockContended {
        path: path.to_path_buf(),
        cluster: cluster.to_owned(),
    })
}

/// Removes a lock (`pgdba state unlock NAME --force`), returning what it held. A lock a live
/// process holds is refused ([`StateError::LockHeld`]) unless `even_if_alive`: removing it
/// lets another run in beside the holder, which stops at its next state write.
pub(super) fn force_remove(
    cluster: &str,
    path: &Path,
    even_if_alive: bool,
) -> Result<Option<LockInfo>, StateError> {
    let Some(file) = open_existing(path)? else {
        return Ok(None);
    };
    let info = match read_lock_file(cluster, path) {
        Ok(info) => info,
        Err(StateError::CorruptLock { .. }) => None,
        Err(e) => return Err(e),
    };
    if held_by_other(&file, path)? && !even_if_alive {
        return Err(StateError::LockHeld {
            cluster: cluster.to_owned(),
            holder: info.map(Box::new),
        });
    }
    fsutil::remove_optional(path)?;
    fsutil::sync_dir(fsutil::parent_dir(path))?;
    Ok(info)
}

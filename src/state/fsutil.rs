//! Crash-safe file writes: a temp file in the same directory, written and fsynced, then renamed
//! (or hard-linked) into place, then the directory fsynced.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::Rng;

use super::StateError;

/// Suffix of temp files; readers skip names that start with `.`, which all temp files do.
pub(super) const TEMP_SUFFIX: &str = ".tmp";

/// How the finished temp file takes the target's place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Install {
    /// `rename`: atomically replace whatever is there.
    Replace,
    /// `link`: create the target only if it does not exist (like `O_EXCL`), so that of two
    /// processes exactly one wins, and the target is never seen half written.
    CreateNew,
}

/// What [`write_atomic`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Written {
    Installed,
    /// Only with [`Install::CreateNew`]: the target already existed and was left alone.
    AlreadyExists,
}

pub(super) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StateError {
    let path = path.to_path_buf();
    move |source| StateError::Io {
        action,
        path,
        source,
    }
}

pub(super) fn create_dir_all(dir: &Path) -> Result<(), StateError> {
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))
}

/// Reads a file, `None` when it does not exist.
pub(super) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

/// Removes a file; `false` when it did not exist.
pub(super) fn remove_optional(path: &Path) -> Result<bool, StateError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

/// Makes renames, links and removals in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

/// The directory holding `path` (`.` for a bare file name).
pub(super) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A temp file path beside `target`: `.<name>.<random>.tmp`.
fn temp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nonce: u64 = rand::rng().random();
    parent_dir(target).join(format!(".{name}.{nonce:016x}{TEMP_SUFFIX}"))
}

/// Removes its file on drop (best effort), so that no early return leaves a temp file behind.
pub(super) struct TempFile {
    path: PathBuf,
}

impl TempFile {
    /// A fresh temp name beside `target`; nothing is created yet.
    pub(super) fn beside(target: &Path) -> Self {
        Self {
            path: temp_path(target),
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Writes `contents` to `target` so that a reader sees either the old file or the new one, never
/// a mix, even if the machine crashes. The file has permission `mode` from its creation (before
/// the umask is applied).
pub(super) fn write_atomic(
    target: &Path,
    contents: &[u8],
    mode: u32,
    install: Install,
) -> Result<Written, StateError> {
    let dir = parent_dir(target);
    let temp = TempFile::beside(target);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(temp.path())
        .map_err(io_err("create", temp.path()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(io_err("write", temp.path()))?;
    drop(file);

    let written = match install {
        Install::Replace => {
            fs::rename(temp.path(), target).map_err(io_err("replace", target))?;
            Written::Installed
        }
        Install::CreateNew => match fs::hard_link(temp.path(), target) {
            Ok(()) => Written::Installed,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Written::AlreadyExists,
            Err(e) => return Err(io_err("create", target)(e)),
        },
    };
    // For Replace the temp name is gone already; for CreateNew this drops the extra link.
    drop(temp);
    if written == Written::Installed {
        sync_dir(dir)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replace_leaves_only_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.json");
        for content in [&b"one"[..], b"two"] {
            let w = write_atomic(&target, content, 0o644, Install::Replace).unwrap();
            assert_eq!(w, Written::Installed);
        }
        assert_eq!(fs::read(&target).unwrap(), b"two");
        assert_eq!(entries(dir.path()), ["a.json"]);
    }

    #[test]
    fn create_new_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.lock");
        let first = write_atomic(&target, b"first", 0o644, Install::CreateNew).unwrap();
        let second = write_atomic(&target, b"second", 0o644, Install::CreateNew).unwrap();
        assert_eq!(first, Written::Installed);
        assert_eq!(second, Written::AlreadyExists);
        assert_eq!(fs::read(&target).unwrap(), b"first");
        assert_eq!(entries(dir.path()), ["a.lock"]);
    }

    #[test]
    fn failed_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty directory, so the rename fails after the temp file exists.
        let target = dir.path().join("a.json");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("x"), b"x").unwrap();
        let err = write_atomic(&target, b"data", 0o644, Install::Replace).unwrap_err();
        assert!(matches!(err, StateError::Io { .. }), "{err:?}");
        assert_eq!(entries(dir.path()), ["a.json"]);
    }
}

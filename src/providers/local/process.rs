//! Processes and files of the local provider. Linux only (`/proc`).
//!
//! pgdba runs as root; the cluster's processes run as an unprivileged user (`postgres`), which
//! owns the member directories and so could plant symbolic links in them. Hence:
//!
//! - Files in the run-as user's directories (configuration, logs, pidfiles, the socket
//!   directory) are created and written with that user's file-system identity
//!   ([`RunAs::as_user`], `setfsuid`), never following a link in their last component: a link
//!   planted there reaches nothing the run-as user could not write itself.
//! - Directories pgdba creates for the run-as user are created by root in a root-owned
//!   parent, then handed over through the opened directory (`fchown`), never by path.
//! - A cluster's root directory must sit below directories only root can change.
//! - A process is the one pgdba started when its pid, its start time (`/proc/PID/stat`) and its
//!   executable are those pgdba recorded at the start; a reused pid is never signalled.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Gid, Pid, Uid, User};
use serde::{Deserialize, Serialize};

use super::ProviderError;

/// Who the cluster's processes run as.
#[derive(Debug, Clone, Copy)]
pub struct RunAs {
    pub uid: Uid,
    pub gid: Gid,
    /// pgdba runs as root and switches to `uid`/`gid` for its children.
    pub switch: bool,
}

impl RunAs {
    /// The run-as user when pgdba is root; the current user otherwise.
    pub fn resolve(user: &str) -> Result<RunAs, ProviderError> {
        if !Uid::effective().is_root() {
            return Ok(RunAs {
                uid: Uid::effective(),
                gid: Gid::effective(),
                switch: false,
            });
        }
        let u = User::from_name(user)
            .map_err(|e| ProviderError::User {
                user: user.to_owned(),
                message: e.to_string(),
            })?
            .ok_or_else(|| ProviderError::User {
                user: user.to_owned(),
                message: "no such user".to_owned(),
            })?;
        if u.uid.is_root() {
            return Err(ProviderError::User {
                user: user.to_owned(),
                message: "PostgreSQL refuses to run as root; name an unprivileged user".to_owned(),
            });
        }
        Ok(RunAs {
            uid: u.uid,
            gid: u.gid,
            switch: true,
        })
    }

    /// Runs `f` with the run-as user's file-system identity: what it creates is that user's,
    /// and what it opens is checked against that user's permissions. `f` must not await (the
    /// identity is the calling thread's).
    pub fn as_user<T>(&self, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        if !self.switch {
            return f();
        }
        let gid = nix::unistd::setfsgid(self.gid);
        let uid = nix::unistd::setfsuid(self.uid);
        let r = f();
        nix::unistd::setfsuid(uid);
        nix::unistd::setfsgid(gid);
        r
    }

    /// Create `dir` for the run-as user in a parent only root can change (the cluster's root):
    /// created by root, then handed over through the opened directory. An existing `dir` must
    /// be a directory (not a link) of the run-as user or root; it is left as it is.
    pub fn make_dir(&self, dir: &Path, mode: u32) -> Result<(), ProviderError> {
        let io = |e| ProviderError::io(dir, e);
        match fs::DirBuilder::new().mode(mode).create(dir) {
            Ok(()) => {
                let d = open_dir_nofollow(dir).map_err(io)?;
                if self.switch {
                    std::os::unix::fs::fchown(&d, Some(self.uid.as_raw()), Some(self.gid.as_raw()))
                        .map_err(io)?;
                }
                d.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(io)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let meta = fs::symlink_metadata(dir).map_err(io)?;
                if !meta.is_dir() {
                    return Err(ProviderError::Config(format!(
                        "{} exists and is not a directory (a link?); pgdba does not follow it",
                        dir.display()
                    )));
                }
                if meta.uid() != self.uid.as_raw() && meta.uid() != 0 {
                    return Err(ProviderError::Config(format!(
                        "{} belongs to uid {}, neither the cluster's user nor root",
                        dir.display(),
                        meta.uid()
                    )));
                }
                Ok(())
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Create a directory inside a directory of the run-as user, as that user.
    pub fn make_dir_as_user(&self, dir: &Path, mode: u32) -> Result<(), ProviderError> {
        self.as_user(|| match fs::DirBuilder::new().mode(mode).create(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if fs::symlink_metadata(dir)?.is_dir() {
                    Ok(())
                } else {
                    Err(io::Error::other("exists and is not a directory"))
                }
            }
            Err(e) => Err(e),
        })
        .map_err(|e| ProviderError::io(dir, e))
    }

    /// Write a file as the run-as user with `mode`, never through a link.
    pub fn write_file(&self, path: &Path, contents: &[u8], mode: u32) -> Result<(), ProviderError> {
        self.as_user(|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)?;
            f.set_permissions(fs::Permissions::from_mode(mode))?;
            f.write_all(contents)?;
            f.sync_all()
        })
        .map_err(|e| ProviderError::io(path, e))
    }

    /// Open a log for appending as the run-as user, never through a link.
    fn open_log(&self, path: &Path) -> Result<File, ProviderError> {
        self.as_user(|| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)
        })
        .map_err(|e| ProviderError::io(path, e))
    }
}

fn open_dir_nofollow(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
}

/// Create a cluster's root directory, owned by root, mode 0755, below directories only root
/// can change (see [`check_safe_ancestors`]). Returns whether it was created now; an existing
/// one is left as it is (the caller decides whether it may be used).
pub fn create_root(root: &Path) -> Result<bool, ProviderError> {
    check_safe_ancestors(root)?;
    let mut created = false;
    let mut missing: Vec<&Path> = Vec::new();
    let mut p = Some(root);
    while let Some(d) = p {
        if fs::symlink_metadata(d).is_ok() {
            break;
        }
        missing.push(d);
        p = d.parent();
    }
    for d in missing.into_iter().rev() {
        fs::DirBuilder::new()
            .mode(0o755)
            .create(d)
            .map_err(|e| ProviderError::io(d, e))?;
        fs::set_permissions(d, fs::Permissions::from_mode(0o755))
            .map_err(|e| ProviderError::io(d, e))?;
        created = true;
    }
    let meta = fs::symlink_metadata(root).map_err(|e| ProviderError::io(root, e))?;
    if !meta.is_dir() {
        return Err(ProviderError::Config(format!(
            "{} exists and is not a directory (a link?)",
            root.display()
        )));
    }
    Ok(created)
}

/// Every existing ancestor of `dir` is a real directory (not a link) that only root can
/// change: owned by root, and not writable by others unless sticky (`/tmp`). Otherwise another
/// user could swap a component under pgdba, which works there as root. Each must also be
/// searchable by others, or the run-as user could not reach the cluster.
pub fn check_safe_ancestors(dir: &Path) -> Result<(), ProviderError> {
    let mut p = dir.parent();
    while let Some(d) = p {
        if let Ok(meta) = fs::symlink_metadata(d) {
            let mode = meta.permissions().mode();
            let problem = if meta.file_type().is_symlink() {
                Some("is a symbolic link".to_owned())
            } else if meta.uid() != 0 && Uid::effective().is_root() {
                Some(format!("belongs to uid {}, not root", meta.uid()))
            } else if mode & 0o022 != 0 && mode & 0o1000 == 0 {
                Some("is writable by other users".to_owned())
            } else if mode & 0o001 == 0 {
                Some(
                    "is not searchable by other users, so the cluster's processes cannot reach it"
                        .to_owned(),
                )
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ProviderError::Config(format!(
                    "{} {problem}; choose spec.provider.local.data_dir below directories only root can change (such as /var/lib/pgdba)",
                    d.display()
                )));
            }
        }
        p = d.parent();
    }
    Ok(())
}

pub struct Spawn<'a> {
    pub program: &'a Path,
    pub args: Vec<String>,
    pub envs: Vec<(String, String)>,
    pub cwd: &'a Path,
    pub log: &'a Path,
    pub pidfile: &'a Path,
}

/// A process as pgdba started it: its pid, its start time (clock ticks after boot, from
/// `/proc/PID/stat`) and its executable. The pidfiles hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    pub pid: u32,
    pub start: u64,
    pub exe: PathBuf,
}

impl ProcessId {
    /// What `/proc` says of `pid` now; `None` when it does not exist or is a zombie.
    pub fn of(pid: u32) -> Option<ProcessId> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name is in parentheses and may hold spaces: fields start after it.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            return None;
        }
        // Field 22 of stat is the start time; after the name, it is the 20th.
        let start = fields.get(19)?.parse().ok()?;
        let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
        Some(ProcessId { pid, start, exe })
    }

    /// Is this process still running: the same pid, started at the same time, from the same
    /// executable (or the same one replaced on disk since, which `/proc` marks `(deleted)`)?
    pub fn is_running(&self) -> bool {
        ProcessId::of(self.pid).is_some_and(|now| {
            now.start == self.start
                && (now.exe == self.exe
                    || now.exe.to_string_lossy() == format!("{} (deleted)", self.exe.display()))
        })
    }
}

/// Start a detached process (own process group, output to its log) and write its pidfile with
/// what identifies it.
pub fn spawn(run_as: RunAs, s: Spawn<'_>) -> Result<u32, ProviderError> {
    let log = run_as.open_log(s.log)?;
    let err = log.try_clone().map_err(|e| ProviderError::io(s.log, e))?;
    let mut cmd = Command::new(s.program);
    cmd.args(&s.args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .env("HOME", s.cwd)
        .envs(s.envs.iter().map(|(k, v)| (k, v)))
        .current_dir(s.cwd)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0);
    if run_as.switch {
        cmd.uid(run_as.uid.as_raw()).gid(run_as.gid.as_raw());
    }
    // `spawn` returns once the program is executing (or failed to): `/proc` shows it.
    let child = cmd.spawn().map_err(|e| ProviderError::Spawn {
        program: s.program.to_path_buf(),
        source: e,
    })?;
    let pid = child.id();
    let id = ProcessId::of(pid).ok_or_else(|| ProviderError::Exited {
        what: s.program.display().to_string(),
        log: s.log.display().to_string(),
        tail: tail(s.log, 15),
    })?;
    let record = serde_json::to_vec(&id).map_err(|e| ProviderError::Config(e.to_string()))?;
    run_as.write_file(s.pidfile, &record, 0o644)?;
    // The child is not waited for: it outlives pgdba, and init reaps it.
    drop(child);
    Ok(pid)
}

/// Run `program` to its end as `run_as`, with a clean environment plus `envs`, in `cwd`;
/// killed (its process group) after `within`.
pub async fn run(
    run_as: &RunAs,
    program: &str,
    args: &[String],
    envs: &[(String, String)],
    cwd: &Path,
    within: Duration,
) -> Result<crate::providers::Ran, ProviderError> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .env("HOME", cwd)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if run_as.switch {
        cmd.uid(run_as.uid.as_raw()).gid(run_as.gid.as_raw());
    }
    let child = cmd.spawn().map_err(|e| ProviderError::Spawn {
        program: PathBuf::from(program),
        source: e,
    })?;
    let out = tokio::time::timeout(within, child.wait_with_output())
        .await
        .map_err(|_| ProviderError::Timeout {
            what: format!("{program} {}", args.join(" ")),
            secs: within.as_secs(),
            log: "its output".to_owned(),
            tail: String::new(),
        })?
        .map_err(|e| ProviderError::Spawn {
            program: PathBuf::from(program),
            source: e,
        })?;
    Ok(crate::providers::Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The process a pidfile records, if it still runs. A pidfile that does not identify its
/// process (an older format, a bare pid) names nothing: pgdba never signals on a guess.
pub fn running(pidfile: &Path) -> Option<ProcessId> {
    let bytes = fs::read(pidfile).ok()?;
    let id: ProcessId = serde_json::from_slice(&bytes).ok()?;
    id.is_running().then_some(id)
}

/// A data directory's postmaster, if it runs: the pid in `postmaster.pid`, when that process
/// is `bin_dir/postgres` working in that data directory.
pub fn postmaster(data_dir: &Path, bin_dir: &Path) -> Option<ProcessId> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid: u32 = text.lines().next()?.trim().parse().ok()?;
    let id = ProcessId::of(pid)?;
    let cwd = fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    let exe_ok = id.exe == bin_dir.join("postgres")
        || fs::canonicalize(bin_dir.join("postgres")).is_ok_and(|p| p == id.exe);
    let cwd_ok = fs::canonicalize(data_dir).is_ok_and(|d| d == cwd);
    (exe_ok && cwd_ok).then_some(id)
}

/// SIGTERM, wait up to `grace`, then SIGKILL. Returns when the process is gone. Each signal is
/// sent only while `id` still is the process pgdba started.
pub async fn stop(id: &ProcessId, grace: Duration) -> Result<(), ProviderError> {
    let Ok(raw) = i32::try_from(id.pid) else {
        return Ok(());
    };
    let target = Pid::from_raw(raw);
    if !id.is_running() {
        return Ok(());
    }
    let gone = || async {
        if id.is_running() {
            crate::poll::Probe::NotYet(String::new())
        } else {
            crate::poll::Probe::Done(())
        }
    };
    let every = Duration::from_millis(50);
    let _ = kill(target, Signal::SIGTERM);
    if crate::poll::poll_until(grace, every, gone).await.is_ok() {
        return Ok(());
    }
    if id.is_running() {
        let _ = kill(target, Signal::SIGKILL);
    }
    if crate::poll::poll_until(Duration::from_secs(5), every, gone)
        .await
        .is_ok()
    {
        return Ok(());
    }
    Err(ProviderError::Stuck { pid: id.pid })
}

/// SIGKILL now (a crash, not a stop), while `id` still is the process pgdba started; returns
/// once it is gone.
pub async fn kill_now(id: &ProcessId) -> Result<(), ProviderError> {
    let Ok(raw) = i32::try_from(id.pid) else {
        return Ok(());
    };
    if id.is_running() {
        let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
    }
    let gone = || async {
        if id.is_running() {
            crate::poll::Probe::NotYet(String::new())
        } else {
            crate::poll::Probe::Done(())
        }
    };
    crate::poll::poll_until(Duration::from_secs(5), Duration::from_millis(20), gone)
        .await
        .map_err(|_| ProviderError::Stuck { pid: id.pid })
}

/// `pid` and every process descending from it (from `/proc`'s parent links), parents first.
pub fn with_descendants(pid: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // After the command name in parentheses: state, then the parent's pid.
            if let Some(ppid) = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u32>().ok())
            {
                parent_of.push((p, ppid));
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            parent_of
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    out
}

/// SIGSTOP (`stop`) or SIGCONT to `id` and every process descending from it, while `id` still
/// is the process pgdba started.
pub fn pause(id: &ProcessId, stop: bool) {
    if !id.is_running() {
        return;
    }
    let signal = if stop {
        Signal::SIGSTOP
    } else {
        Signal::SIGCONT
    };
    for pid in with_descendants(id.pid) {
        if let Ok(raw) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(raw), signal);
        }
    }
}

/// Is a TCP port on 127.0.0.1 free to listen on?
pub fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind((super::layout::HOST, port)).is_ok()
}

/// Who listens on a TCP port, as far as `/proc` tells: `pid 1234 (postgres)`. `None` when no
/// listening socket is found or its process cannot be seen (another user's, without root).
pub fn port_holder(port: u16) -> Option<String> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|table| {
            let text = fs::read_to_string(table).ok()?;
            text.lines().skip(1).find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let local = fields.get(1)?;
                let state = fields.get(3)?;
                let inode = fields.get(9)?;
                let p = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
                // 0A: LISTEN.
                (p == port && *state == "0A").then(|| (*inode).to_owned())
            })
        })?;
    let target = format!("socket:[{inode}]");
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str()));
        if holds {
            let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            return Some(format!("pid {pid} ({})", comm.trim()));
        }
    }
    None
}

/// The last `n` lines of a log, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Remove a directory and everything in it; a link inside is removed, never followed.
pub fn remove_dir(path: &Path) -> Result<(), ProviderError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ProviderError::io(path, e)),
        Ok(m) if !m.is_dir() => {
            // A link (or file) where a directory was: remove the link itself.
            return fs::remove_file(path).map_err(|e| ProviderError::io(path, e));
        }
        Ok(_) => {}
    }
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ProviderError::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn this_process_identifies_itself_and_a_changed_start_time_does_not() {
        let me = ProcessId::of(std::process::id()).unwrap();
        assert!(me.is_running());
        let mut other = me.clone();
        other.start += 1;
        assert!(!other.is_running(), "a reused pid is another process");
        let mut other = me;
        other.exe = PathBuf::from("/usr/bin/not-this");
        assert!(!other.is_running());
    }

    #[test]
    fn a_bare_pid_in_a_pidfile_names_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.pid");
        fs::write(&f, format!("{}\n", std::process::id())).unwrap();
        assert!(running(&f).is_none());
        fs::write(
            &f,
            serde_json::to_vec(&ProcessId::of(std::process::id()).unwrap()).unwrap(),
        )
        .unwrap();
        assert!(running(&f).is_some());
    }
}

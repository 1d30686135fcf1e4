//! Processes of the local provider: spawning detached as the run-as user, pidfiles, liveness,
//! stopping. Linux only (`/proc`).

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Gid, Pid, Uid, User};

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

    /// Create `dir` (and parents) and make it the run-as user's, with `mode`.
    pub fn make_dir(&self, dir: &Path, mode: u32) -> Result<(), ProviderError> {
        fs::create_dir_all(dir).map_err(|e| ProviderError::io(dir, e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(mode))
            .map_err(|e| ProviderError::io(dir, e))?;
        self.own(dir)
    }

    pub fn own(&self, path: &Path) -> Result<(), ProviderError> {
        if self.switch {
            std::os::unix::fs::chown(path, Some(self.uid.as_raw()), Some(self.gid.as_raw()))
                .map_err(|e| ProviderError::io(path, e))?;
        }
        Ok(())
    }

    /// Write a file owned by the run-as user with `mode`.
    pub fn write_file(&self, path: &Path, contents: &[u8], mode: u32) -> Result<(), ProviderError> {
        fs::write(path, contents).map_err(|e| ProviderError::io(path, e))?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| ProviderError::io(path, e))?;
        self.own(path)
    }
}

/// Every parent of `dir` must be traversable by the run-as user.
pub fn check_traversable(dir: &Path) -> Result<(), ProviderError> {
    let mut p = dir.parent();
    while let Some(d) = p {
        if let Ok(meta) = fs::metadata(d)
            && meta.permissions().mode() & 0o001 == 0
        {
            return Err(ProviderError::Config(format!(
                "{} is not searchable by other users, so the cluster's processes cannot reach {}; \
                     choose spec.provider.local.data_dir elsewhere",
                d.display(),
                dir.display()
            )));
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

/// Start a detached process (own process group, output to its log) and write its pidfile.
pub fn spawn(run_as: RunAs, s: Spawn<'_>) -> Result<u32, ProviderError> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(s.log)
        .map_err(|e| ProviderError::io(s.log, e))?;
    run_as.own(s.log)?;
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
    let child = cmd.spawn().map_err(|e| ProviderError::Spawn {
        program: s.program.to_path_buf(),
        source: e,
    })?;
    let pid = child.id();
    fs::write(s.pidfile, format!("{pid}\n")).map_err(|e| ProviderError::io(s.pidfile, e))?;
    // The child is not waited for: it outlives pgdba, and init reaps it.
    drop(child);
    Ok(pid)
}

/// The pid in `pidfile` if that process is alive and its command line contains `needle`.
pub fn running_pid(pidfile: &Path, needle: &str) -> Option<u32> {
    let pid: u32 = fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    alive(pid, needle).then_some(pid)
}

pub fn alive(pid: u32, needle: &str) -> bool {
    let cmdline = match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(c) => c,
        Err(_) => return false,
    };
    // A zombie has an empty command line.
    if cmdline.is_empty() {
        return false;
    }
    if let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat"))
        && stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
    {
        return false;
    }
    String::from_utf8_lossy(&cmdline).contains(needle)
}

/// SIGTERM, wait up to `grace`, then SIGKILL. Returns when the process is gone.
pub async fn stop(pid: u32, needle: &str, grace: Duration) -> Result<(), ProviderError> {
    let Ok(raw) = i32::try_from(pid) else {
        return Ok(());
    };
    let target = Pid::from_raw(raw);
    if !alive(pid, needle) {
        return Ok(());
    }
    let _ = kill(target, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !alive(pid, needle) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = kill(target, Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if !alive(pid, needle) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(ProviderError::Stuck { pid })
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

pub fn remove_dir(path: &Path) -> Result<(), ProviderError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ProviderError::io(path, e)),
    }
}

//! SSH to the provider's hosts with russh: one connection per host, opened on first use and
//! reused by every command after it (each command a channel of its own), logged in with the
//! spec's key, the host's key checked before anything is sent.
//!
//! A host's key is trusted when the spec's `known_hosts` file lists it, or when the state
//! recorded it (trust on first use, by an apply whose plan showed it). A host whose key is
//! neither is not logged in to: its key is kept as offered, for the plan to show. A host whose
//! key differs from the one trusted is refused, with both fingerprints.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::ChannelMsg;
use russh::client;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};

use crate::spec::model::SshHost;

/// How long a host has to accept a TCP connection and finish the SSH handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a host could not be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SshError {
    /// No connection (refused, timed out, no route).
    #[error("host {endpoint} is unreachable: {message}")]
    Unreachable { endpoint: String, message: String },
    /// The host's key is not trusted yet (trust on first use: the plan shows it).
    #[error(
        "host {endpoint} offers host key {fingerprint}, which pgdba does not trust yet: the plan records it on apply"
    )]
    Untrusted {
        endpoint: String,
        fingerprint: String,
    },
    /// The host's key is not the one trusted.
    #[error(
        "host {endpoint}'s key changed: it offers {offered}, pgdba trusts {trusted}; nothing was sent to it; if the host was reinstalled, check its new key and list it in the file spec.provider.ssh.known_hosts names, which pgdba trusts before the state"
    )]
    KeyChanged {
        endpoint: String,
        offered: String,
        trusted: String,
    },
    /// Logged in no further (the key was refused, the key file is unreadable).
    #[error("host {endpoint}: {message}")]
    Login { endpoint: String, message: String },
    /// The connection broke or a command could not be run.
    #[error("host {endpoint}: {message}")]
    Channel { endpoint: String, message: String },
}

/// A host key as the state keeps it: its OpenSSH line (`ssh-ed25519 AAAA...`).
pub fn key_line(key: &PublicKey) -> String {
    key.to_openssh().unwrap_or_default()
}

/// `SHA256:...`, as `ssh-keygen -l` shows it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The fingerprint of a key line, or the line itself when it does not parse.
pub fn fingerprint_of_line(line: &str) -> String {
    PublicKey::from_openssh(line).map_or_else(|_| line.to_owned(), |k| fingerprint(&k))
}

/// What a command did on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Its exit status (-1 when none came: a signal ended it).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

struct Checker {
    trusted: Option<PublicKey>,
    offered: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for Checker {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        if let Ok(mut o) = self.offered.lock() {
            *o = Some(key.clone());
        }
        Ok(self.trusted.as_ref() == Some(key))
    }
}

type Handle = client::Handle<Checker>;
/// A host's connection, made on first use (each host has its own, so that connecting to one
/// does not wait for another).
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Handle>>>>;

/// The hosts of one cluster and their connections.
pub struct Hosts {
    known_hosts: Option<std::path::PathBuf>,
    /// Commands go through `sudo -n` on hosts whose login user is not root.
    sudo: bool,
    /// Keys the state recorded, by endpoint.
    recorded: Mutex<BTreeMap<String, String>>,
    /// Keys hosts offered that nothing trusts yet, by endpoint.
    offered: Mutex<BTreeMap<String, String>>,
    /// Hosts that did not answer, and when: asked again within [`CONNECT_TIMEOUT`], they fail
    /// at once rather than make a run wait for each of its commands.
    unanswered: Mutex<HashMap<String, (std::time::Instant, SshError)>>,
    /// One connection per endpoint, made on first use.
    conns: tokio::sync::Mutex<HashMap<String, Slot>>,
}

impl Hosts {
    pub fn new(known_hosts: Option<std::path::PathBuf>, sudo: bool) -> Hosts {
        Hosts {
            known_hosts,
            sudo,
            recorded: Mutex::new(BTreeMap::new()),
            offered: Mutex::new(BTreeMap::new()),
            unanswered: Mutex::new(HashMap::new()),
            conns: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The keys the state recorded (endpoint → key line).
    pub fn trust(&self, keys: &BTreeMap<String, String>) {
        if let Ok(mut r) = self.recorded.lock() {
            r.clone_from(keys);
        }
    }

    /// Keys offered by hosts nothing trusts yet, seen so far (endpoint → key line).
    pub fn offered(&self) -> BTreeMap<String, String> {
        self.offered.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// The key `host` must present, if any is trusted: the spec's `known_hosts` first.
    fn trusted_key(&self, host: &SshHost) -> Result<Option<PublicKey>, SshError> {
        if let Some(path) = &self.known_hosts {
            let listed = russh::keys::known_hosts::known_host_keys_path(
                &host.address,
                host.port.unwrap_or(22),
                path,
            )
            .map_err(|e| SshError::Login {
                endpoint: host.endpoint(),
                message: format!("known_hosts {}: {e}", path.display()),
            })?;
            if let Some((_, k)) = listed.into_iter().next() {
                return Ok(Some(k));
            }
        }
        let recorded = self
            .recorded
            .lock()
            .ok()
            .and_then(|r| r.get(&host.endpoint()).cloned());
        Ok(recorded.and_then(|line| PublicKey::from_openssh(&line).ok()))
    }

    async fn connect(&self, host: &SshHost) -> Result<Handle, SshError> {
        let endpoint = host.endpoint();
        let trusted = self.trusted_key(host)?;
        let offered = Arc::new(Mutex::new(None));
        let checker = Checker {
            trusted: trusted.clone(),
            offered: offered.clone(),
        };
        let config = Arc::new(client::Config {
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(10)),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        });
        let addr = (host.address.as_str(), host.port.unwrap_or(22));
        let connected =
            tokio::time::timeout(CONNECT_TIMEOUT, client::connect(config, addr, checker)).await;
        let offered = offered.lock().ok().and_then(|o| o.clone());
        let mut handle = match connected {
            Err(_) => {
                return Err(SshError::Unreachable {
                    endpoint,
                    message: format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
                });
            }
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                return Err(match (offered, trusted) {
                    (Some(o), Some(t)) if o != t => SshError::KeyChanged {
                        endpoint,
                        offered: fingerprint(&o),
                        trusted: fingerprint(&t),
                    },
                    (Some(o), None) => {
                        if let Ok(mut m) = self.offered.lock() {
                            m.insert(endpoint.clone(), key_line(&o));
                        }
                        SshError::Untrusted {
                            endpoint,
                            fingerprint: fingerprint(&o),
                        }
                    }
                    _ => SshError::Unreachable {
                        endpoint,
                        message: e.to_string(),
                    },
                });
            }
        };
        let user = host.user.clone().unwrap_or_else(|| "root".to_owned());
        let key =
            russh::keys::load_secret_key(&host.key.file, None).map_err(|e| SshError::Login {
                endpoint: endpoint.clone(),
                message: format!("private key {}: {e}", host.key.file.display()),
            })?;
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten();
        let auth = handle
            .authenticate_publickey(
                user.clone(),
                PrivateKeyWithHashAlg::new(Arc::new(key), hash),
            )
            .await
            .map_err(|e| SshError::Login {
                endpoint: endpoint.clone(),
                message: e.to_string(),
            })?;
        if !auth.success() {
            return Err(SshError::Login {
                endpoint,
                message: format!(
                    "user {user} was not let in with key {}",
                    host.key.file.display()
                ),
            });
        }
        Ok(handle)
    }

    /// The connection to `host`, made now if there is none (or it broke).
    async fn handle(&self, host: &SshHost) -> Result<Arc<Handle>, SshError> {
        let slot = self
            .conns
            .lock()
            .await
            .entry(host.endpoint())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(h) = slot.as_ref()
            && !h.is_closed()
        {
            return Ok(h.clone());
        }
        let endpoint = host.endpoint();
        if let Some((at, e)) = self
            .unanswered
            .lock()
            .ok()
            .and_then(|u| u.get(&endpoint).cloned())
            && at.elapsed() < CONNECT_TIMEOUT * 2
        {
            return Err(e);
        }
        let h = match self.connect(host).await {
            Ok(h) => Arc::new(h),
            Err(e) => {
                if matches!(e, SshError::Unreachable { .. })
                    && let Ok(mut u) = self.unanswered.lock()
                {
                    u.insert(endpoint, (std::time::Instant::now(), e.clone()));
                }
                return Err(e);
            }
        };
        *slot = Some(h.clone());
        Ok(h)
    }

    /// Can pgdba log in to `host` now?
    pub async fn reach(&self, host: &SshHost) -> Result<(), SshError> {
        self.handle(host).await.map(|_| ())
    }

    /// Run `script` with `sh -c` on `host` as the login user, `stdin` fed to it, and wait for it
    /// (at most `within`). Secrets go on `stdin`, never in `script`: a command line is visible
    /// to every user of the host.
    pub async fn run(
        &self,
        host: &SshHost,
        script: &str,
        stdin: &[u8],
        within: Duration,
    ) -> Result<Output, SshError> {
        let endpoint = host.endpoint();
        let broke = |e: russh::Error| SshError::Channel {
            endpoint: endpoint.clone(),
            message: e.to_string(),
        };
        let handle = self.handle(host).await?;
        let run = async {
            let mut channel = handle.channel_open_session().await.map_err(broke)?;
            let root = host.user.as_deref().unwrap_or("root") == "root";
            let command = if self.sudo && !root {
                format!("exec sudo -n -- /bin/sh -c {}", quote(script))
            } else {
                format!("exec /bin/sh -c {}", quote(script))
            };
            channel.exec(true, command).await.map_err(broke)?;
            // Standard input goes once sshd said it runs the command: those packets carry the
            // acknowledgement of its reply, which it would otherwise wait for (Nagle's
            // algorithm, against this side's delayed acknowledgement: up to 200 ms a command)
            // before it sends the command's first output.
            let mut sent = false;
            let mut out = Output {
                code: -1,
                stdout: String::new(),
                stderr: String::new(),
            };
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            while let Some(msg) = channel.wait().await {
                if !sent && matches!(msg, ChannelMsg::Success | ChannelMsg::Failure) {
                    if matches!(msg, ChannelMsg::Failure) {
                        return Err(SshError::Channel {
                            endpoint: endpoint.clone(),
                            message: "sshd refused to run the command".to_owned(),
                        });
                    }
                    if !stdin.is_empty() {
                        channel.data(stdin).await.map_err(broke)?;
                    }
                    channel.eof().await.map_err(broke)?;
                    sent = true;
                    continue;
                }
                match msg {
                    ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
                    ChannelMsg::ExtendedData { data, .. } => stderr.extend_from_slice(&data),
                    ChannelMsg::ExitStatus { exit_status } => {
                        out.code = i32::try_from(exit_status).unwrap_or(-1);
                    }
                    _ => {}
                }
            }
            out.stdout = String::from_utf8_lossy(&stdout).into_owned();
            out.stderr = String::from_utf8_lossy(&stderr).into_owned();
            Ok(out)
        };
        tokio::time::timeout(within, run)
            .await
            .map_err(|_| SshError::Channel {
                endpoint: endpoint.clone(),
                message: format!("a command did not finish within {}s", within.as_secs()),
            })?
    }

    /// Forget every connection (they close as their last user drops them).
    pub async fn close(&self) {
        self.conns.lock().await.clear();
    }
}

/// `s` as one word for a POSIX shell.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoting_keeps_one_word() {
        assert_eq!(super::quote("a b"), "'a b'");
        assert_eq!(super::quote("it's"), "'it'\\''s'");
    }
}

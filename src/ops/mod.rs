//! The imperative half: what the operational commands (`health`, `config`, `query`,
//! `switchover`, `failover`, `cluster status`, ...) do, beside the declarative engine. Each
//! module takes what it needs to reach the servers ([`Server`]) and returns plain data the
//! CLI edge prints; nothing here prints or reads the command line.

pub mod adopt;
pub mod backup;
pub mod chaos;
pub mod cluster;
pub mod health;
pub mod leader;
pub mod logical;
pub mod query;
pub mod schedule;
pub mod tune;

use std::path::PathBuf;
use std::time::Duration;

/// One PostgreSQL server an operational command talks to: a member of a cluster pgdba knows
/// (from the state), or a plain server named by `PGDBA_PG_*`.
#[derive(Clone)]
pub struct Server {
    /// The member's name (`demo-1`), or `host:port` for a plain server.
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Never printed.
    pub password: Option<String>,
    pub database: String,
    /// Its Unix socket directory, tried first (peer authentication) when set.
    pub socket_dir: Option<PathBuf>,
    /// Its data directory, when it is on this machine (disk checks).
    pub data_dir: Option<PathBuf>,
    /// Its Patroni REST API, when Patroni runs it.
    pub api_url: Option<String>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "(sensitive)"))
            .field("database", &self.database)
            .field("socket_dir", &self.socket_dir)
            .field("data_dir", &self.data_dir)
            .field("api_url", &self.api_url)
            .finish()
    }
}

/// How long a command waits for a server to accept a session.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Server {
    /// A session on the server's own database, as `application_name` `pgdba`; the socket
    /// (peer authentication) first when there is one, then TCP with the password. Statements
    /// run at most `statement_timeout`.
    pub async fn connect(
        &self,
        statement_timeout: Duration,
    ) -> Result<tokio_postgres::Client, crate::observe::pg::PgError> {
        self.connect_to(&self.database.clone(), statement_timeout)
            .await
    }

    /// A session on another database of the same server.
    pub async fn connect_to(
        &self,
        dbname: &str,
        statement_timeout: Duration,
    ) -> Result<tokio_postgres::Client, crate::observe::pg::PgError> {
        let config = |dbname: &str| {
            let mut cfg = tokio_postgres::Config::new();
            cfg.port(self.port)
                .user(&self.user)
                .dbname(dbname)
                .application_name("pgdba")
                .options(format!(
                    "-c statement_timeout={}ms -c lock_timeout=5s",
                    statement_timeout.as_millis()
                ))
                .connect_timeout(CONNECT_TIMEOUT);
            cfg
        };
        if let Some(dir) = &self.socket_dir {
            let mut cfg = config(dbname);
            cfg.host_path(dir);
            match crate::observe::pg::open(cfg, CONNECT_TIMEOUT).await {
                Ok(client) => return Ok(client),
                Err(e) => tracing::debug!(
                    "peer connection over {} failed, using TCP: {e}",
                    dir.display()
                ),
            }
        }
        let mut cfg = config(dbname);
        cfg.host(&self.host);
        if let Some(p) = &self.password {
            cfg.password(p);
        }
        crate::observe::pg::open(cfg, CONNECT_TIMEOUT).await
    }
}

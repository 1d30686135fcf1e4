//! PgBouncer as pgdba runs it, on every provider: its configuration (pure) and the supervisor
//! that keeps its `[databases]` on Patroni's leader (`pgbouncer_follow.py`).
//!
//! Clients log in with their own roles' passwords: PgBouncer looks up their SCRAM verifier as
//! pgdba's auth user ([`crate::roles::POOLER_USER`]) through `pgbouncer.get_auth()`, a function
//! pgdba creates in every database (`apply::sql::pooler_auth`), and passes SCRAM through to
//! PostgreSQL. Superusers and pgdba's own roles cannot log in through it.

use crate::spec::model::PgBouncer;

/// The supervisor, run with Debian's python3 (no package beyond the standard library).
pub const FOLLOW_SCRIPT: &str = include_str!("pgbouncer_follow.py");
pub const FOLLOW_FILE: &str = "pgbouncer-follow.py";
pub const BASE_FILE: &str = "pgbouncer.base.ini";
pub const USERLIST_FILE: &str = "userlist.txt";

/// `pgbouncer.ini` without `[databases]` (the supervisor adds it): listening on `listen_addr`
/// and `port`, the auth user's password in `dir/userlist.txt`.
pub fn base_ini(p: &PgBouncer, listen_addr: &str, port: u16, dir: &str) -> String {
    format!(
        "; written by pgdba\n[pgbouncer]\nlisten_addr = {listen_addr}\nlisten_port = {port}\nunix_socket_dir =\nauth_type = scram-sha-256\nauth_file = {dir}/{USERLIST_FILE}\nauth_user = {user}\nauth_query = SELECT usename, passwd FROM pgbouncer.get_auth($1)\npool_mode = {mode}\nmax_client_conn = 1000\ndefault_pool_size = 20\nignore_startup_parameters = extra_float_digits,options\nserver_reset_query = DISCARD ALL\nlog_connections = 0\nlog_disconnections = 0\n",
        user = crate::roles::POOLER_USER,
        mode = p.pool_mode.as_str(),
    )
}

/// PgBouncer's `auth_file`: the auth user and its password (mode 0600, never on the host for
/// the docker provider).
pub fn userlist(password: &str) -> String {
    format!(
        "\"{}\" \"{}\"\n",
        crate::roles::POOLER_USER,
        password.replace('"', "\"\"")
    )
}

/// Does PgBouncer itself answer at `host:port`? It answers PostgreSQL's SSLRequest with one
/// byte (`N`, or `S`). A TCP connection alone proves nothing: Docker's port forwarding accepts
/// one before anything listens in the container.
pub async fn answers(host: &str, port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        s.write_all(&SSL_REQUEST).await.ok()?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.ok()?;
        Some(matches!(b[0], b'N' | b'S'))
    };
    tokio::time::timeout(std::time::Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::model::PoolMode;

    #[test]
    fn the_base_names_the_auth_user_and_mode() {
        let p = PgBouncer {
            port: None,
            pool_mode: PoolMode::Transaction,
        };
        let ini = base_ini(&p, "0.0.0.0", 6432, "/etc/pgdba");
        assert!(ini.contains("pool_mode = transaction\n"));
        assert!(ini.contains("auth_user = pgbouncer\n"));
        assert!(ini.contains("auth_file = /etc/pgdba/userlist.txt\n"));
        assert!(!ini.contains("[databases]"));
        assert_eq!(userlist("a\"b"), "\"pgbouncer\" \"a\"\"b\"\n");
    }
}

//! Reading `pg_settings` from one member: one query per member, for the parameters that matter.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_postgres::NoTls;

use super::model::{AutoConf, HbaLine, PgSetting};

/// How to reach one member's PostgreSQL as pgdba's superuser.
#[derive(Clone)]
pub struct Conn<'a> {
    pub host: String,
    pub port: u16,
    pub user: &'a str,
    pub password: &'a str,
    pub timeout: Duration,
    /// Every transaction read-only (`default_transaction_read_only`): observation's
    /// connections cannot write.
    pub read_only: bool,
    /// The member's socket directory, tried first with peer authentication (pg_ident's
    /// `pgdba` map), which costs no SCRAM; TCP with the password when that fails.
    pub socket: Option<&'a std::path::Path>,
}

impl Conn<'_> {
    pub async fn connect(&self) -> Result<tokio_postgres::Client, PgError> {
        self.connect_to("postgres").await
    }

    pub async fn connect_to(&self, dbname: &str) -> Result<tokio_postgres::Client, PgError> {
        if let Some(dir) = self.socket {
            let mut cfg = self.config(dbname);
            cfg.host_path(dir);
            match open(cfg, self.timeout).await {
                Ok(client) => return Ok(client),
                Err(e) => tracing::debug!(
                    "peer connection over {} failed, using TCP: {e}",
                    dir.display()
                ),
            }
        }
        let mut cfg = self.config(dbname);
        cfg.host(&self.host).password(self.password);
        open(cfg, self.timeout).await
    }

    fn config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut cfg = tokio_postgres::Config::new();
        cfg.port(self.port)
            .user(self.user)
            .dbname(dbname)
            .application_name("pgdba")
            // Observation reads and never waits on a lock for long; apply's DDL waits for a
            // lock at most 10 s and runs at most 10 minutes (a large CREATE DATABASE).
            .options(if self.read_only {
                "-c default_transaction_read_only=on -c statement_timeout=10s -c lock_timeout=5s"
            } else {
                "-c statement_timeout=600s -c lock_timeout=10s"
            })
            .connect_timeout(self.timeout);
        cfg
    }
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    /// TCP connected, but the server did not finish the startup and authentication in time
    /// (a hung or overloaded server).
    #[error("no answer to the connection's startup and authentication within {0:?}")]
    Timeout(Duration),
}

/// Opens a session: TCP connect, startup and authentication, all within `bound`.
pub(crate) async fn open(
    cfg: tokio_postgres::Config,
    bound: Duration,
) -> Result<tokio_postgres::Client, PgError> {
    let (client, connection) = tokio::time::timeout(bound, cfg.connect(NoTls))
        .await
        .map_err(|_| PgError::Timeout(bound))??;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("postgres connection ended: {e}");
        }
    });
    Ok(client)
}

/// What one connection to a member tells: its `pg_settings` rows for the parameters that
/// matter, its `pg_hba_file_rules`, and, when it is the primary, the cluster's roles,
/// databases and extensions (replicas have the same catalogs, possibly behind).
pub struct MemberFacts {
    /// In recovery: a standby, read-only.
    pub in_recovery: bool,
    /// From the control file's last checkpoint.
    pub timeline: Option<u64>,
    pub settings: BTreeMap<String, PgSetting>,
    pub auto_conf: BTreeMap<String, AutoConf>,
    pub hba: Vec<HbaLine>,
    pub catalogs: Option<super::model::SqlObjects>,
}

/// One connection per member, its queries pipelined.
pub async fn member_facts(
    conn: &Conn<'_>,
    names: &[String],
    needs: Option<&super::sql::Needs>,
) -> Result<MemberFacts, PgError> {
    let client = conn.connect().await?;
    // The timeline a primary writes on (its current WAL file's name starts with it; the
    // control file's lags until the next checkpoint after a promotion), or a standby's last
    // checkpoint's.
    let recovery = client.query_one(
        "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() \
         THEN (SELECT timeline_id FROM pg_control_checkpoint()) \
         ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END",
        &[],
    );
    let (settings, auto_conf, hba, recovery) = tokio::join!(
        settings_on(&client, names),
        auto_conf_on(&client, names),
        hba_on(&client),
        recovery
    );
    let recovery = recovery?;
    let in_recovery: bool = recovery.try_get(0)?;
    let timeline = recovery
        .try_get::<_, Option<i32>>(1)?
        .and_then(|t| u64::try_from(t).ok());
    let primary = !in_recovery;
    let catalogs = match needs {
        Some(needs) if primary => Some(super::sql::objects_on(&client, conn, needs).await?),
        _ => None,
    };
    Ok(MemberFacts {
        in_recovery,
        timeline,
        settings: settings?,
        auto_conf: auto_conf?,
        hba: hba?,
        catalogs,
    })
}

pub async fn settings(
    conn: &Conn<'_>,
    names: &[String],
) -> Result<BTreeMap<String, PgSetting>, PgError> {
    settings_on(&conn.connect().await?, names).await
}

async fn settings_on(
    client: &tokio_postgres::Client,
    names: &[String],
) -> Result<BTreeMap<String, PgSetting>, PgError> {
    let rows = client
        .query(
            "SELECT name, setting, unit, context, source, sourcefile, pending_restart \
             FROM pg_settings WHERE name = ANY($1)",
            &[&names],
        )
        .await?;
    let mut out = BTreeMap::new();
    for row in rows {
        let s = PgSetting {
            name: row.try_get(0)?,
            setting: row.try_get(1)?,
            unit: row.try_get(2)?,
            context: row.try_get(3)?,
            source: row.try_get(4)?,
            sourcefile: row.try_get(5)?,
            pending_restart: row.try_get(6)?,
        };
        out.insert(s.name.clone(), s);
    }
    Ok(out)
}

/// The `postgresql.auto.conf` entries (`ALTER SYSTEM`) of these parameters, from
/// `pg_file_settings`, which parses the file when asked: an `ALTER SYSTEM` that finished is seen
/// at once, before any reload (`pg_settings` shows it only once a reload or restart applied it).
/// The last entry of a name wins, as in PostgreSQL.
async fn auto_conf_on(
    client: &tokio_postgres::Client,
    names: &[String],
) -> Result<BTreeMap<String, AutoConf>, PgError> {
    let rows = client
        .query(
            "SELECT name, setting, applied, error FROM pg_file_settings \
             WHERE name = ANY($1) AND sourcefile LIKE '%/postgresql.auto.conf' ORDER BY seqno",
            &[&names],
        )
        .await?;
    let mut out = BTreeMap::new();
    for row in rows {
        out.insert(
            row.try_get(0)?,
            AutoConf {
                setting: row.try_get::<_, Option<String>>(1)?.unwrap_or_default(),
                applied: row.try_get(2)?,
                error: row.try_get(3)?,
            },
        );
    }
    Ok(out)
}

async fn hba_on(client: &tokio_postgres::Client) -> Result<Vec<HbaLine>, PgError> {
    let rows = client
        .query(
            "SELECT type, coalesce(database, '{}'), coalesce(user_name, '{}'), address, netmask, \
             coalesce(auth_method, ''), error FROM pg_hba_file_rules ORDER BY line_number",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(HbaLine {
                kind: r.try_get::<_, Option<String>>(0)?.unwrap_or_default(),
                database: r.try_get(1)?,
                user: r.try_get(2)?,
                address: r.try_get(3)?,
                netmask: r.try_get(4)?,
                method: r.try_get(5)?,
                error: r.try_get(6)?,
            })
        })
        .collect()
}

/// How many settings wait for a restart (`pg_settings.pending_restart`), as PostgreSQL itself
/// knows right after a reload, before Patroni notices.
pub async fn pending_restarts(conn: &Conn<'_>) -> Result<i64, PgError> {
    let client = conn.connect().await?;
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_settings WHERE pending_restart",
            &[],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Create a physical replication slot reserving WAL now, unless it exists.
pub async fn ensure_physical_slot(conn: &Conn<'_>, slot: &str) -> Result<(), PgError> {
    let client = conn.connect().await?;
    client
        .execute(
            "SELECT pg_create_physical_replication_slot($1, true) \
             WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
            &[&slot],
        )
        .await?;
    Ok(())
}

/// Which WAL position to read.
#[derive(Debug, Clone, Copy)]
pub enum WalPosition {
    /// The primary's current write position.
    Current,
    /// How far a standby has replayed.
    Replayed,
}

/// A WAL position as a byte offset.
pub async fn wal_position(conn: &Conn<'_>, which: WalPosition) -> Result<u64, PgError> {
    let client = conn.connect().await?;
    let function = match which {
        WalPosition::Current => "pg_current_wal_lsn()",
        WalPosition::Replayed => "pg_last_wal_replay_lsn()",
    };
    let row = client
        .query_one(
            &format!("SELECT coalesce(({function} - '0/0'::pg_lsn)::bigint, 0)"),
            &[],
        )
        .await?;
    Ok(u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0))
}

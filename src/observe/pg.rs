//! Reading `pg_settings` from one member: one query per member, for the parameters that matter.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_postgres::NoTls;

use super::model::PgSetting;

/// How to reach one member's PostgreSQL as pgdba's superuser.
#[derive(Clone)]
pub struct Conn<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub password: &'a str,
    pub timeout: Duration,
}

impl Conn<'_> {
    pub async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(self.host)
            .port(self.port)
            .user(self.user)
            .password(self.password)
            .dbname("postgres")
            .application_name("pgdba")
            .connect_timeout(self.timeout);
        let (client, connection) = cfg.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("postgres connection ended: {e}");
            }
        });
        Ok(client)
    }
}

pub async fn settings(
    conn: &Conn<'_>,
    names: &[String],
) -> Result<BTreeMap<String, PgSetting>, tokio_postgres::Error> {
    let client = conn.connect().await?;
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

/// How many settings wait for a restart (`pg_settings.pending_restart`), as PostgreSQL itself
/// knows right after a reload, before Patroni notices.
pub async fn pending_restarts(conn: &Conn<'_>) -> Result<i64, tokio_postgres::Error> {
    let client = conn.connect().await?;
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_settings WHERE pending_restart",
            &[],
        )
        .await?;
    row.try_get(0)
}

/// Create a physical replication slot reserving WAL now, unless it exists.
pub async fn ensure_physical_slot(
    conn: &Conn<'_>,
    slot: &str,
) -> Result<(), tokio_postgres::Error> {
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

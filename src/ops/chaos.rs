//! Failover drills that measure: a writer that commits numbered rows through whichever member
//! accepts writes, and keeps every number PostgreSQL acknowledged, so that after a fault the
//! outage (RTO) and the acknowledged commits the new leader does not have (RPO) are figures
//! read back from the cluster, not promises.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Server;

/// How often the writer commits.
const WRITE_EVERY: Duration = Duration::from_millis(20);

/// The drill's table, in the `postgres` database: one per drill, dropped at its end.
pub fn table_name(drill: &str) -> String {
    format!("pgdba_drill_{drill}")
}

/// What the writer saw: each acknowledged number with when, and when writes failed.
#[derive(Debug, Default)]
struct Log {
    acked: Vec<(u64, Instant)>,
    failures: Vec<Instant>,
}

/// A writer committing `INSERT INTO <table> VALUES (n)` with `n` counting up, on the member of
/// `servers` that accepts writes (libpq's `target_session_attrs=read-write`), reconnecting
/// after a failure. A number is kept as acknowledged only once its COMMIT returned.
pub struct Writer {
    stop: Arc<AtomicBool>,
    log: Arc<std::sync::Mutex<Log>>,
    task: tokio::task::JoinHandle<()>,
}

/// What a writer measured.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    /// Every number PostgreSQL acknowledged, in order.
    #[serde(skip)]
    pub acked: Vec<u64>,
    pub commits: usize,
    pub failed_writes: usize,
    /// From the first write that failed at or after the fault to the first one acknowledged
    /// after it (0 when no write failed).
    pub rto_ms: u64,
    /// From the fault to that first acknowledged write after a failed one.
    #[serde(skip)]
    pub recovered_after_ms: Option<u64>,
    /// No write failed at or after the fault, or one was acknowledged after it: false when
    /// the writer stopped still failing (then `rto_ms` measures nothing).
    #[serde(skip)]
    pub recovered: bool,
}

impl Writer {
    /// Start writing into `table` (made first by [`prepare`]) numbers from `base + 1` on.
    pub fn start(servers: &[Server], table: &str, base: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(std::sync::Mutex::new(Log::default()));
        let cfg = config(servers, "pgdba-drill-writer");
        let sql = format!("INSERT INTO {table} (n) VALUES ($1)");
        let task = {
            let stop = stop.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let mut client: Option<tokio_postgres::Client> = None;
                let mut n: u64 = base;
                while !stop.load(Ordering::Relaxed) {
                    if client
                        .as_ref()
                        .is_none_or(tokio_postgres::Client::is_closed)
                    {
                        client = crate::observe::pg::open(cfg.clone(), Duration::from_secs(2))
                            .await
                            .ok();
                    }
                    let ok = match &client {
                        Some(c) => {
                            n += 1;
                            let v = i64::try_from(n).unwrap_or(i64::MAX);
                            matches!(
                                tokio::time::timeout(
                                    Duration::from_secs(3),
                                    c.execute(&sql, &[&v])
                                )
                                .await,
                                Ok(Ok(1))
                            )
                        }
                        None => false,
                    };
                    if let Ok(mut l) = log.lock() {
                        if ok {
                            l.acked.push((n, Instant::now()));
                        } else {
                            l.failures.push(Instant::now());
                        }
                    }
                    if !ok {
                        client = None;
                    }
                    tokio::time::sleep(WRITE_EVERY).await;
                }
            })
        };
        Writer { stop, log, task }
    }

    /// Commits acknowledged so far.
    pub fn commits(&self) -> usize {
        self.log.lock().map(|l| l.acked.len()).unwrap_or(0)
    }

    /// Wait until a commit is acknowledged after `after`, at most `within`.
    pub async fn commit_after(&self, after: Instant, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let last = self
                .log
                .lock()
                .ok()
                .and_then(|l| l.acked.last().map(|a| a.1));
            if last.is_some_and(|t| t > after) {
                return true;
            }
            tokio::time::sleep(WRITE_EVERY).await;
        }
        false
    }

    /// Stop, and measure against `fault` (when the fault was injected).
    pub async fn finish(self, fault: Instant) -> Written {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let log = self
            .log
            .lock()
            .map(|l| Log {
                acked: l.acked.clone(),
                failures: l.failures.clone(),
            })
            .unwrap_or_default();
        let first_failure = log.failures.iter().copied().find(|t| *t >= fault);
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let recovered = first_failure.and_then(|f| log.acked.iter().find(|a| a.1 > f).map(|a| a.1));
        let rto_ms = first_failure.zip(recovered).map_or(0, |(f, r)| ms(r - f));
        Written {
            commits: log.acked.len(),
            failed_writes: log.failures.len(),
            rto_ms,
            recovered_after_ms: recovered.map(|r| ms(r.saturating_duration_since(fault))),
            recovered: first_failure.is_none() || recovered.is_some(),
            acked: log.acked.iter().map(|a| a.0).collect(),
        }
    }
}

/// A session on whichever of `servers` accepts writes.
fn config(servers: &[Server], application: &str) -> tokio_postgres::Config {
    let mut cfg = tokio_postgres::Config::new();
    for s in servers {
        cfg.host(&s.host).port(s.port);
    }
    if let Some(s) = servers.first() {
        cfg.user(&s.user).dbname("postgres");
        if let Some(p) = &s.password {
            cfg.password(p);
        }
    }
    cfg.application_name(application)
        .target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite)
        .options("-c statement_timeout=3000 -c synchronous_commit=on")
        .connect_timeout(Duration::from_secs(1));
    cfg
}

async fn session(servers: &[Server]) -> Result<tokio_postgres::Client, String> {
    crate::observe::pg::open(config(servers, "pgdba-drill"), Duration::from_secs(5))
        .await
        .map_err(|e| crate::error_chain(&e))
}

/// Make the drill's table on the leader.
pub async fn prepare(servers: &[Server], table: &str) -> Result<(), String> {
    let c = session(servers).await?;
    c.batch_execute(&format!(
        "CREATE TABLE {table} (n bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())"
    ))
    .await
    .map_err(|e| format!("creating {table}: {}", crate::error_chain(&e)))
}

/// The acknowledged numbers the current leader does not have (in order), and the table
/// dropped.
pub async fn missing(servers: &[Server], table: &str, acked: &[u64]) -> Result<Vec<u64>, String> {
    let c = session(servers).await?;
    let rows = c
        .query(&format!("SELECT n FROM {table}"), &[])
        .await
        .map_err(|e| format!("reading {table}: {}", crate::error_chain(&e)))?;
    let found: std::collections::BTreeSet<u64> = rows
        .iter()
        .filter_map(|r| r.try_get::<_, i64>(0).ok())
        .filter_map(|n| u64::try_from(n).ok())
        .collect();
    c.batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
        .await
        .map_err(|e| format!("dropping {table}: {}", crate::error_chain(&e)))?;
    Ok(acked
        .iter()
        .copied()
        .filter(|n| !found.contains(n))
        .collect())
}

/// How far each streaming replica's flushed WAL is behind `target`, in bytes (0 once it has
/// it), as the leader's `pg_stat_replication` says.
async fn behind(
    c: &tokio_postgres::Client,
    target: &str,
) -> Result<Vec<(String, u64)>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT application_name, greatest(0, ($1::text::pg_lsn - flush_lsn))::bigint \
             FROM pg_stat_replication WHERE state = 'streaming' AND flush_lsn IS NOT NULL \
             ORDER BY application_name",
            &[&target],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let name: String = r.try_get(0).ok()?;
            let lag: i64 = r.try_get(1).ok()?;
            Some((name, u64::try_from(lag).unwrap_or(0)))
        })
        .collect())
}

/// Wait, at most `within`, until one of `candidates` has flushed all the WAL the leader had
/// written when the wait began; the candidate that did, or what each still lacked.
///
/// A fault injected while the replicas are still receiving a burst of WAL (a backup's
/// `pg_backup_stop` switches to a new segment, and the rest of the old one streams after it)
/// measures the burst, not the failover: Patroni promotes no replica that lags more than
/// `maximum_lag_on_failover` behind the last position the leader published, and with the leader
/// dead it never catches up.
pub async fn caught_up(
    servers: &[Server],
    candidates: &[String],
    within: Duration,
) -> Result<String, String> {
    let c = session(servers).await?;
    let target: String = c
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .map_err(|e| {
            format!(
                "reading the leader's WAL position: {}",
                crate::error_chain(&e)
            )
        })?
        .try_get(0)
        .map_err(|e| crate::error_chain(&e))?;
    let deadline = Instant::now() + within;
    loop {
        let lags = behind(&c, &target)
            .await
            .map_err(|e| format!("reading pg_stat_replication: {}", crate::error_chain(&e)))?;
        if let Some((name, _)) = lags
            .iter()
            .find(|(n, lag)| *lag == 0 && candidates.contains(n))
        {
            return Ok(name.clone());
        }
        if Instant::now() >= deadline {
            let seen: Vec<String> = candidates
                .iter()
                .map(|n| match lags.iter().find(|(m, _)| m == n) {
                    Some((_, lag)) => format!("{n} lacks {lag} bytes"),
                    None => format!("{n} does not stream"),
                })
                .collect();
            return Err(format!(
                "no replica flushed the leader's WAL up to {target} within {} s: {}",
                within.as_secs(),
                seen.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The numbers the writer through the pooler commits start here, clear of the others'.
pub const POOLER_BASE: u64 = 2_000_000_000;

/// A login role of the drill's own for the writer through PgBouncer (which lets no superuser
/// in): a random password, valid for an hour, allowed to insert into and read `table` only.
/// Its name and password (never shown).
pub async fn pooler_role(servers: &[Server], table: &str) -> Result<(String, String), String> {
    use rand::Rng;
    let role = format!("{table}_writer");
    let password: String = rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    // Its SCRAM verifier, made here: the password itself never reaches a server's log.
    let verifier = crate::pg::scram::make_verifier(&password);
    let c = session(servers).await?;
    c.batch_execute(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD '{verifier}' VALID UNTIL '{}'; \
         GRANT INSERT, SELECT ON {table} TO {role}",
        (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()
    ))
    .await
    .map_err(|e| format!("creating the role {role}: {}", crate::error_chain(&e)))?;
    Ok((role, password))
}

/// Drop the role [`pooler_role`] made (its table already dropped, or dropped with it).
pub async fn drop_role(servers: &[Server], role: &str) -> Result<(), String> {
    let c = session(servers).await?;
    c.batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
        .await
        .map_err(|e| format!("dropping the role {role}: {}", crate::error_chain(&e)))
}

/// The numbers the writer beside a member commits start here, clear of the outside writer's.
pub const BESIDE_BASE: u64 = 1_000_000_000;

/// A writer that runs beside a member, for `seconds`, as a client on its side of a network cut
/// would: one `psql` over the member's Unix socket per row (killed after 3 s: a commit that
/// waits is not acknowledged), numbered from [`BESIDE_BASE`], every 100 ms. It prints one line
/// per attempt: `ok|fail <n> <unix ms>`.
pub fn beside_writer(table: &str, seconds: u64) -> Vec<String> {
    let script = format!(
        "end=$(( $(date +%s) + {seconds} )); i=0; \
         while [ \"$(date +%s)\" -lt \"$end\" ]; do \
           i=$((i + 1)); n=$(({BESIDE_BASE} + i)); \
           if timeout 3 psql -XqAt -d postgres -c \"INSERT INTO {table} (n) VALUES ($n)\" >/dev/null 2>&1; \
           then r=ok; else r=fail; fi; \
           echo \"$r $n $(date +%s%3N)\"; sleep 0.1; \
         done"
    );
    vec!["bash".into(), "-c".into(), script]
}

/// One attempt of the writer beside a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BesideWrite {
    pub ok: bool,
    pub n: u64,
    /// Unix time, in milliseconds.
    pub at_ms: i64,
}

/// The lines [`beside_writer`] printed (anything else skipped).
pub fn parse_beside(out: &str) -> Vec<BesideWrite> {
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let ok = match w.next()? {
                "ok" => true,
                "fail" => false,
                _ => return None,
            };
            Some(BesideWrite {
                ok,
                n: w.next()?.parse().ok()?,
                at_ms: w.next()?.parse().ok()?,
            })
        })
        .collect()
}

/// The longest a failover can take with Patroni's timings, once the leader is gone: its leader
/// key lives `ttl` seconds after the last renewal, and a replica notices within `loop_wait`.
pub fn expected_max_ms(ttl: u32, loop_wait: u32) -> u64 {
    (u64::from(ttl) + u64::from(loop_wait)) * 1000
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_theoretical_window_is_ttl_plus_loop_wait() {
        assert_eq!(super::expected_max_ms(30, 10), 40_000);
        assert_eq!(super::expected_max_ms(10, 2), 12_000);
        assert_eq!(super::table_name("a1b2"), "pgdba_drill_a1b2");
    }

    #[test]
    fn the_writer_beside_a_member_is_read_back_line_by_line() {
        let argv = super::beside_writer("pgdba_drill_x", 50);
        assert_eq!(argv[..2], ["bash".to_owned(), "-c".to_owned()]);
        assert!(argv[2].contains("INSERT INTO pgdba_drill_x (n) VALUES ($n)"));
        assert!(argv[2].contains("+ 50 ))"));
        let w = super::parse_beside(
            "ok 1000000001 1764672000100\nnoise\nfail 1000000002 1764672000300\nok x 1\n",
        );
        assert_eq!(
            w,
            vec![
                super::BesideWrite {
                    ok: true,
                    n: 1_000_000_001,
                    at_ms: 1_764_672_000_100
                },
                super::BesideWrite {
                    ok: false,
                    n: 1_000_000_002,
                    at_ms: 1_764_672_000_300
                },
            ]
        );
    }
}

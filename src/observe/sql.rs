//! Cluster-wide objects from the leader's catalogs: roles and databases with one query each,
//! whatever their number; extensions with one query per database that the spec or the state
//! asks about (each database has its own `pg_extension`).

use std::collections::BTreeMap;

use futures::stream::{self, StreamExt};

use super::model::{ObservedDatabase, ObservedExtension, ObservedRole, SqlObjects};
use super::pg::{Conn, PgError};
use crate::pg::scram;

/// What to look at beyond the catalogs every observation reads.
#[derive(Default)]
pub struct Needs {
    /// Clear secrets of roles whose password the spec sets, to check against the verifiers.
    /// In memory only.
    pub secrets: BTreeMap<String, String>,
    /// Databases whose extensions matter.
    pub extension_dbs: Vec<String>,
    /// Databases whose size matters (a plan may destroy them); sizing walks every file of a
    /// database, so the others are not sized.
    pub size_dbs: Vec<String>,
    /// What earlier checks found to match (see `scram::Memo`).
    pub memo: scram::Memo,
    /// Read the primary's `pg_stat_archiver` (a spec with `spec.backup` archives WAL).
    pub archiver: bool,
}

const ARCHIVER: &str = "\
SELECT failed_count, last_failed_wal,
       to_char(last_failed_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
       last_archived_wal,
       to_char(last_archived_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
       coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false)
FROM pg_stat_archiver";

async fn archiver(client: &tokio_postgres::Client) -> Result<super::model::ArchiverStat, PgError> {
    let r = client.query_one(ARCHIVER, &[]).await?;
    Ok(super::model::ArchiverStat {
        failed_count: r.try_get(0)?,
        last_failed_wal: r.try_get(1)?,
        last_failed_at: r.try_get(2)?,
        last_archived_wal: r.try_get(3)?,
        last_archived_at: r.try_get(4)?,
        failing: r.try_get(5)?,
    })
}

// `pg_authid` itself, not the `pg_roles` view over it: the same rows, fewer catalogs for a
// new session to load, and the verifier without a second join. Memberships and dependencies are
// aggregated once and joined, not looked up per role: with a thousand roles (and the planner's
// estimates of a catalog that grew since its last ANALYZE), per-role subqueries scanned
// `pg_authid` once per role.
const ROLES: &str = "\
WITH mem AS (
       SELECT m.member, array_agg(g.rolname::text ORDER BY g.rolname) AS groups
       FROM pg_auth_members m JOIN pg_authid g ON g.oid = m.roleid GROUP BY m.member),
     dep AS (
       SELECT s.refobjid, count(*) FILTER (WHERE s.deptype = 'o') AS owned,
              count(*) FILTER (WHERE s.deptype = 'a') AS privileges
       FROM pg_shdepend s WHERE s.refclassid = 'pg_authid'::regclass GROUP BY s.refobjid)
SELECT a.rolname, a.rolcanlogin, a.rolsuper, a.rolcreatedb, a.rolcreaterole, a.rolreplication,
       a.rolbypassrls, a.rolinherit, a.rolconnlimit,
       CASE WHEN a.rolvaliduntil IS NULL THEN NULL
            WHEN a.rolvaliduntil = 'infinity' THEN 'Infinity'::float8
            ELSE extract(epoch FROM a.rolvaliduntil)::float8 END,
       a.rolpassword,
       coalesce(mem.groups, '{}'),
       coalesce(dep.owned, 0),
       coalesce(dep.privileges, 0)
FROM pg_authid a
LEFT JOIN mem ON mem.member = a.oid
LEFT JOIN dep ON dep.refobjid = a.oid
WHERE a.rolname !~ '^pg_'";

const DATABASES: &str = "\
SELECT d.datname::text, pg_get_userbyid(d.datdba)::text, pg_encoding_to_char(d.encoding)::text,
       d.datcollate::text, d.datctype::text,
       CASE WHEN d.datname = ANY($1) THEN pg_database_size(d.oid) END
FROM pg_database d WHERE NOT d.datistemplate";

// With the table columns whose type is one of the extension's: dropping it drops them.
const EXTENSIONS: &str = "\
SELECT e.extname::text, e.extversion, n.nspname::text,
       (SELECT count(*) FROM pg_depend d
        JOIN pg_attribute a ON a.atttypid = d.objid AND a.attnum > 0 AND NOT a.attisdropped
        JOIN pg_class c ON c.oid = a.attrelid AND c.relkind IN ('r', 'p', 'm')
        WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
          AND d.classid = 'pg_type'::regclass AND d.deptype = 'e')
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace";

type Extensions = Result<BTreeMap<String, ObservedExtension>, PgError>;

/// Roles, databases and (where needed) extensions, through `client`, a session on the
/// primary; `conn` reaches the other databases for their extensions.
pub async fn objects_on(
    client: &tokio_postgres::Client,
    conn: &Conn<'_>,
    needs: &Needs,
) -> Result<SqlObjects, PgError> {
    let sized: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&needs.size_dbs];
    let stat = async {
        if needs.archiver {
            archiver(client).await.map(Some)
        } else {
            Ok(None)
        }
    };
    let (roles, databases, stat) = tokio::join!(
        client.query(ROLES, &[]),
        client.query(DATABASES, &sized),
        stat
    );
    let mut out = SqlObjects {
        archiver: stat?,
        ..SqlObjects::default()
    };
    let roles = roles?;
    // The passwords to check, each a PBKDF2 of thousands of rounds: on every core.
    let mut checks = Vec::new();
    for r in &roles {
        let name: String = r.try_get(0)?;
        let verifier: Option<String> = r.try_get(10)?;
        if let (Some(secret), Some(v)) = (needs.secrets.get(&name), verifier) {
            if scram::iterations(&v).is_some_and(|n| n > scram::MAX_ITERATIONS) {
                out.notes.push(format!(
                    "role {name}: its stored password verifier asks for {} iterations, more than the {} pgdba checks: taken as not matching",
                    scram::iterations(&v).unwrap_or_default(),
                    scram::MAX_ITERATIONS
                ));
            }
            checks.push((name, secret.clone(), v));
        }
    }
    let (matches, learned) = verify_all(checks, &needs.memo).await;
    out.matched = learned;
    for r in roles {
        let name: String = r.try_get(0)?;
        let verifier: Option<String> = r.try_get(10)?;
        let password_matches = needs
            .secrets
            .contains_key(&name)
            .then(|| matches.get(&name).copied().unwrap_or(false));
        out.roles.insert(
            name,
            ObservedRole {
                login: r.try_get(1)?,
                superuser: r.try_get(2)?,
                createdb: r.try_get(3)?,
                createrole: r.try_get(4)?,
                replication: r.try_get(5)?,
                bypassrls: r.try_get(6)?,
                inherit: r.try_get(7)?,
                connection_limit: r.try_get(8)?,
                valid_until: r.try_get(9)?,
                has_password: verifier.is_some(),
                member_of: r.try_get(11)?,
                password_matches,
                owned_objects: r.try_get(12)?,
                privileges: r.try_get(13)?,
            },
        );
    }
    for d in databases? {
        out.databases.insert(
            d.try_get(0)?,
            ObservedDatabase {
                owner: d.try_get(1)?,
                encoding: d.try_get(2)?,
                collate: d.try_get(3)?,
                ctype: d.try_get(4)?,
                size_bytes: d.try_get(5)?,
                extensions: None,
            },
        );
    }
    let wanted: Vec<String> = needs
        .extension_dbs
        .iter()
        .filter(|d| out.databases.contains_key(*d))
        .cloned()
        .collect();
    let found: Vec<(String, Extensions)> = stream::iter(wanted)
        .map(|db| async move {
            let r = extensions(conn, &db).await;
            (db, r)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for (db, exts) in found {
        if let Some(d) = out.databases.get_mut(&db) {
            d.extensions = Some(exts?);
        }
    }
    Ok(out)
}

/// Checks secrets against stored verifiers, each pair the memo does not know on every core,
/// off the async runtime's threads. The results, and the memo entries of every pair that
/// matched (known before or found now).
async fn verify_all(
    checks: Vec<(String, String, String)>,
    memo: &scram::Memo,
) -> (BTreeMap<String, bool>, std::collections::BTreeSet<String>) {
    let mut results = BTreeMap::new();
    let mut entries = std::collections::BTreeSet::new();
    let mut unknown = Vec::new();
    for (name, secret, verifier) in checks {
        if memo.known(&verifier, &secret) {
            entries.extend(memo.entry(&verifier, &secret));
            results.insert(name, true);
        } else {
            unknown.push((name, secret, verifier));
        }
    }
    let found = verify_on_every_core(&unknown).await;
    for (name, secret, verifier) in &unknown {
        let ok = found.get(name).copied().unwrap_or(false);
        if ok {
            entries.extend(memo.entry(verifier, secret));
        }
        results.insert(name.clone(), ok);
    }
    (results, entries)
}

async fn verify_on_every_core(checks: &[(String, String, String)]) -> BTreeMap<String, bool> {
    if checks.is_empty() {
        return BTreeMap::new();
    }
    let checks = checks.to_vec();
    tokio::task::spawn_blocking(move || {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = checks.len().div_ceil(cores).max(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = checks
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|(name, secret, v)| {
                                (name.clone(), scram::verify(secret, v).unwrap_or(false))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        })
    })
    .await
    .unwrap_or_default()
}

async fn extensions(
    conn: &Conn<'_>,
    db: &str,
) -> Result<BTreeMap<String, ObservedExtension>, PgError> {
    let client = conn.connect_to(db).await?;
    let mut out = BTreeMap::new();
    for e in client.query(EXTENSIONS, &[]).await? {
        out.insert(
            e.try_get(0)?,
            ObservedExtension {
                version: e.try_get(1)?,
                schema: e.try_get(2)?,
                dependent_columns: e.try_get(3)?,
            },
        );
    }
    Ok(out)
}

//! The SQL actions: roles, databases and extensions on the leader. Identifiers and literals are
//! escaped by `postgres-protocol`; passwords are sent as SCRAM verifiers, never in clear, and
//! no statement is logged.

use postgres_protocol::escape::{escape_identifier as ident, escape_literal as literal};

use super::actions::{Outcome, leader_conn, member};
use super::{ActionError, Context, Effect};
use crate::diff::hba;
use crate::observe::pg::Conn;
use crate::pg::scram;
use crate::plan::{Action, ActionKind};
use crate::spec::model::RoleSpec;

fn name_of(a: &Action, prefix: &str) -> Result<String, ActionError> {
    a.target
        .to_string()
        .strip_prefix(prefix)
        .map(str::to_owned)
        .ok_or_else(|| ActionError::from(format!("{} is not a {prefix} address", a.target)))
}

fn sql_err<E: std::error::Error + 'static>(what: &str) -> impl Fn(E) -> ActionError + '_ {
    move |e| ActionError::Sql {
        what: what.to_owned(),
        detail: crate::error_chain(&e),
    }
}

fn flag(on: bool, word: &str) -> String {
    if on {
        word.to_owned()
    } else {
        format!("NO{word}")
    }
}

fn valid_until(r: &RoleSpec) -> String {
    match r
        .valid_until
        .as_deref()
        .and_then(crate::spec::valid_until_epoch)
    {
        Some(e) if e.is_finite() => chrono::DateTime::from_timestamp(e as i64, 0)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| "infinity".to_owned()),
        _ => "infinity".to_owned(),
    }
}

/// The attribute clause of CREATE/ALTER ROLE.
fn attributes(r: &RoleSpec) -> String {
    format!(
        "{} {} {} {} {} {} {} CONNECTION LIMIT {} VALID UNTIL {}",
        flag(r.login, "LOGIN"),
        flag(r.superuser, "SUPERUSER"),
        flag(r.createdb, "CREATEDB"),
        flag(r.createrole, "CREATEROLE"),
        flag(r.replication, "REPLICATION"),
        flag(r.bypassrls, "BYPASSRLS"),
        flag(r.inherit, "INHERIT"),
        r.connection_limit,
        literal(&valid_until(r)),
    )
}

/// The password of a role as a SCRAM verifier: the spec's secret, or pgdba's own for its roles.
fn verifier(ctx: &Context<'_>, r: &RoleSpec, system: bool) -> Result<Option<String>, ActionError> {
    let secret = if system {
        crate::roles::system(&r.name)
            .and_then(|s| ctx.creds.get(s.secret))
            .map(str::to_owned)
    } else if r.password.is_some() {
        ctx.role_secrets
            .get(&r.name)
            .map_err(|e| format!("password of role {}: {e}", r.name))?
            .map(str::to_owned)
    } else {
        None
    };
    Ok(secret.map(|s| scram::make_verifier(&s)))
}

async fn exists(conn: &Conn<'_>, query: &str, name: &str) -> Result<bool, ActionError> {
    let client = conn.connect().await.map_err(sql_err("connect"))?;
    let rows = client
        .query(query, &[&name])
        .await
        .map_err(sql_err("check"))?;
    Ok(!rows.is_empty())
}

pub async fn run(a: &Action, ctx: &Context<'_>) -> Outcome {
    match &a.kind {
        ActionKind::CreateRole { role } => create_role(ctx, role).await,
        ActionKind::AlterRole {
            role,
            attributes: attrs,
            password,
            grant,
            revoke,
            system,
        } => {
            let mut stmts = Vec::new();
            if *attrs {
                stmts.push(format!(
                    "ALTER ROLE {} WITH {}",
                    ident(&role.name),
                    attributes(role)
                ));
            }
            if *password && let Some(v) = verifier(ctx, role, *system)? {
                stmts.push(format!(
                    "ALTER ROLE {} PASSWORD {}",
                    ident(&role.name),
                    literal(&v)
                ));
            }
            stmts.extend(
                grant
                    .iter()
                    .map(|g| format!("GRANT {} TO {}", ident(g), ident(&role.name))),
            );
            stmts.extend(
                revoke
                    .iter()
                    .map(|g| format!("REVOKE {} FROM {}", ident(g), ident(&role.name))),
            );
            on_leader(
                ctx,
                &stmts.join(";\n"),
                &format!("ALTER ROLE {}", role.name),
            )
            .await?;
            if !*system {
                ctx.recorder.update(|s| {
                    s.managed_roles.insert(role.name.clone());
                })?;
            }
            Ok(Effect::Changed)
        }
        ActionKind::DropRole => {
            let name = name_of(a, "role.")?;
            on_leader(
                ctx,
                &format!("DROP ROLE IF EXISTS {}", ident(&name)),
                &format!("DROP ROLE {name}"),
            )
            .await?;
            ctx.recorder.update(|s| {
                s.managed_roles.remove(&name);
            })?;
            Ok(Effect::Changed)
        }
        ActionKind::CreateDatabase {
            owner,
            encoding,
            locale,
            template,
        } => {
            let name = name_of(a, "database.")?;
            let conn = leader_conn(ctx).await?;
            let note =
                if exists(&conn, "SELECT 1 FROM pg_database WHERE datname = $1", &name).await? {
                    Effect::AlreadyDone(format!("database {name} already exists"))
                } else {
                    let mut sql = format!(
                        "CREATE DATABASE {} OWNER {} ENCODING {} TEMPLATE {}",
                        ident(&name),
                        ident(owner),
                        literal(encoding),
                        ident(template)
                    );
                    if let Some(l) = locale {
                        sql.push_str(&format!(" LOCALE {}", literal(l)));
                    }
                    on_leader(ctx, &sql, &format!("CREATE DATABASE {name}")).await?;
                    if ctx.spec.pgbouncer().is_some() {
                        // From template0 it lacks the pooler's lookup function.
                        pooler_auth(ctx, &name).await?;
                    }
                    Effect::Changed
                };
            ctx.recorder.update(|s| {
                s.managed_databases.insert(name.clone());
            })?;
            Ok(note)
        }
        ActionKind::AlterDatabase { owner } => {
            let name = name_of(a, "database.")?;
            on_leader(
                ctx,
                &format!("ALTER DATABASE {} OWNER TO {}", ident(&name), ident(owner)),
                &format!("ALTER DATABASE {name}"),
            )
            .await?;
            ctx.recorder.update(|s| {
                s.managed_databases.insert(name.clone());
            })?;
            Ok(Effect::Changed)
        }
        ActionKind::DropDatabase => {
            let name = name_of(a, "database.")?;
            on_leader(
                ctx,
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(&name)),
                &format!("DROP DATABASE {name}"),
            )
            .await?;
            ctx.recorder.update(|s| {
                s.managed_databases.remove(&name);
                s.managed_extensions.remove(&name);
            })?;
            Ok(Effect::Changed)
        }
        ActionKind::CreateExtension {
            database,
            name,
            version,
            schema,
        } => {
            let mut sql = format!("CREATE EXTENSION IF NOT EXISTS {}", ident(name));
            if let Some(s) = schema {
                sql.push_str(&format!(" SCHEMA {}", ident(s)));
            }
            if let Some(v) = version {
                sql.push_str(&format!(" VERSION {}", literal(v)));
            }
            in_database(ctx, database, &sql).await?;
            ctx.recorder.update(|s| {
                s.managed_extensions
                    .entry(database.clone())
                    .or_default()
                    .insert(name.clone());
            })?;
            Ok(Effect::Changed)
        }
        ActionKind::UpdateExtension {
            database,
            name,
            version,
            schema,
        } => {
            let mut stmts = Vec::new();
            if let Some(v) = version {
                stmts.push(format!(
                    "ALTER EXTENSION {} UPDATE TO {}",
                    ident(name),
                    literal(v)
                ));
            }
            if let Some(s) = schema {
                stmts.push(format!(
                    "ALTER EXTENSION {} SET SCHEMA {}",
                    ident(name),
                    ident(s)
                ));
            }
            in_database(ctx, database, &stmts.join(";\n")).await?;
            ctx.recorder.update(|s| {
                s.managed_extensions
                    .entry(database.clone())
                    .or_default()
                    .insert(name.clone());
            })?;
            Ok(Effect::Changed)
        }
        ActionKind::DropExtension {
            database,
            name,
            cascade,
        } => {
            let cascade = if *cascade { " CASCADE" } else { "" };
            in_database(
                ctx,
                database,
                &format!("DROP EXTENSION IF EXISTS {}{cascade}", ident(name)),
            )
            .await?;
            ctx.recorder.update(|s| {
                if let Some(set) = s.managed_extensions.get_mut(database) {
                    set.remove(name);
                }
            })?;
            Ok(Effect::Changed)
        }
        ActionKind::AwaitHba { rules } => await_hba(a, ctx, rules).await,
        ActionKind::ResetOverride { parameter } => {
            // On that member, not the leader: postgresql.auto.conf is each member's own.
            let name = member(a)?;
            let conn = super::actions::pg_conn(ctx, name).await?;
            let client = conn.connect().await.map_err(sql_err("connect"))?;
            // ALTER SYSTEM cannot run in a transaction block: two separate statements.
            client
                .batch_execute(&format!("ALTER SYSTEM RESET {}", ident(parameter)))
                .await
                .map_err(sql_err(&format!(
                    "ALTER SYSTEM RESET {parameter} on {name}"
                )))?;
            client
                .batch_execute("SELECT pg_reload_conf()")
                .await
                .map_err(sql_err("pg_reload_conf()"))?;
            Ok(Effect::Changed)
        }
        other => Err(format!("{} is not a SQL action", other.name()).into()),
    }
}

async fn create_role(ctx: &Context<'_>, role: &RoleSpec) -> Outcome {
    let conn = leader_conn(ctx).await?;
    let system = crate::roles::is_system(&role.name);
    // Precondition: the role does not exist yet; one made meanwhile is left to the next plan.
    // One of pgdba's own roles found made (a cluster restored from another cluster's backup
    // carries the source's, with the source's password) is taken over: pgdba's attributes and
    // this cluster's password.
    let found = exists(
        &conn,
        "SELECT 1 FROM pg_roles WHERE rolname = $1",
        &role.name,
    )
    .await?;
    if found && !system {
        ctx.recorder.update(|s| {
            s.managed_roles.insert(role.name.clone());
        })?;
        return Ok(Effect::AlreadyDone(format!(
            "role {} already exists",
            role.name
        )));
    }
    let mut sql = format!(
        "{} ROLE {} WITH {}",
        if found { "ALTER" } else { "CREATE" },
        ident(&role.name),
        attributes(role)
    );
    if let Some(v) = verifier(ctx, role, system)? {
        sql.push_str(&format!(" PASSWORD {}", literal(&v)));
    }
    if !role.in_roles.is_empty() && !found {
        let groups: Vec<String> = role.in_roles.iter().map(|g| ident(g)).collect();
        sql.push_str(&format!(" IN ROLE {}", groups.join(", ")));
    }
    let what = format!(
        "{} ROLE {}",
        if found { "ALTER" } else { "CREATE" },
        role.name
    );
    on_leader(ctx, &sql, &what).await?;
    if role.name == crate::roles::POOLER_USER {
        // Its lookup function, in every database a client may reach through the pooler
        // (and template1, which databases made later copy).
        let client = conn
            .connect()
            .await
            .map_err(sql_err("connect to the leader"))?;
        let rows = client
            .query("SELECT datname FROM pg_database WHERE datallowconn", &[])
            .await
            .map_err(sql_err("list databases"))?;
        for r in rows {
            let db: String = r.get(0);
            pooler_auth(ctx, &db).await?;
        }
        return Ok(Effect::Changed);
    }
    if !system {
        ctx.recorder.update(|s| {
            s.managed_roles.insert(role.name.clone());
        })?;
    }
    Ok(Effect::Changed)
}

/// The function PgBouncer's `auth_query` calls in `database`: the SCRAM verifier of a role that
/// may log in through the pooler (not a superuser, not one of pgdba's own), readable only by
/// the pooler's auth user.
pub(super) async fn pooler_auth(ctx: &Context<'_>, database: &str) -> Result<(), ActionError> {
    let user = ident(crate::roles::POOLER_USER);
    let own: Vec<String> = crate::roles::SYSTEM_ROLES
        .iter()
        .map(|r| literal(r.name))
        .collect();
    let sql = format!(
        "CREATE SCHEMA IF NOT EXISTS pgbouncer;
         REVOKE ALL ON SCHEMA pgbouncer FROM PUBLIC;
         GRANT USAGE ON SCHEMA pgbouncer TO {user};
         CREATE OR REPLACE FUNCTION pgbouncer.get_auth(p_usename text)
           RETURNS TABLE(usename name, passwd text)
           LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS
           $$ SELECT rolname, rolpassword FROM pg_catalog.pg_authid
              WHERE rolname = p_usename AND rolcanlogin AND NOT rolsuper
                AND rolname NOT IN ({}) $$;
         REVOKE ALL ON FUNCTION pgbouncer.get_auth(text) FROM PUBLIC;
         GRANT EXECUTE ON FUNCTION pgbouncer.get_auth(text) TO {user};",
        own.join(", ")
    );
    in_database_as(
        ctx,
        database,
        &sql,
        &format!("the pooler's lookup function in database {database}"),
    )
    .await
}

/// One SQL text, in one round trip, in `database` on the leader; `what` names it in errors.
async fn in_database_as(
    ctx: &Context<'_>,
    database: &str,
    sql: &str,
    what: &str,
) -> Result<(), ActionError> {
    let conn = leader_conn(ctx).await?;
    let client = conn
        .connect_to(database)
        .await
        .map_err(sql_err(&format!("connect to database {database}")))?;
    client.batch_execute(sql).await.map_err(sql_err(what))
}

async fn in_database(ctx: &Context<'_>, database: &str, sql: &str) -> Result<(), ActionError> {
    in_database_as(ctx, database, sql, &format!("in database {database}")).await
}

/// As `in_database`, in the `postgres` database (roles and databases are cluster-wide).
async fn on_leader(ctx: &Context<'_>, sql: &str, what: &str) -> Result<(), ActionError> {
    in_database_as(ctx, "postgres", sql, what).await
}

async fn await_hba(a: &Action, ctx: &Context<'_>, rules: &[String]) -> Outcome {
    let name = member(a)?;
    let conn = super::actions::pg_conn(ctx, name).await?;
    let every = std::time::Duration::from_millis(200);
    crate::poll::poll_until(ctx.gate_timeout, every, || async {
        use crate::poll::Probe;
        match crate::observe::pg::member_facts(&conn, &[], None).await {
            Ok(f) if hba::member_matches(&f.hba, rules) => Probe::Done(Effect::Changed),
            Ok(f) => Probe::NotYet(match f.hba.iter().find_map(|l| l.error.clone()) {
                Some(e) => format!("pg_hba.conf has an error: {e}"),
                None => "pg_hba_file_rules does not match yet".to_owned(),
            }),
            Err(e) => Probe::NotYet(crate::error_chain(&e)),
        }
    })
    .await
    .map_err(|g| match g {
        crate::poll::Gave::Up { last } | crate::poll::Gave::Failed(last) => {
            ActionError::GaveUp(format!(
                "member {name}: {last} after {}s",
                ctx.gate_timeout.as_secs()
            ))
        }
    })
}

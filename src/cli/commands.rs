//! Running commands: from parsed arguments to an `Outcome` (data for the JSON envelope, text
//! for people, an exit code), and `Failure`, the CLI edge's error. Each command runs in its own
//! file beside this one; all IO of the CLI edge lives in them, and the engine never prints.

use serde_json::Value;

use super::apply::{Allow, apply_saved, apply_spec};
use super::destroy::destroy;
use super::plan::plan_cmd;
use super::specs::validate;
use super::state::state_cmd;
use super::{
    BackupCommand, ChaosCommand, ClusterCommand, Command, ConfigCommand, DrillCommand,
    FailoverCommand, Global, HealthCommand, QueryCommand, ReplicaCommand, StateCommand,
};
use crate::output::{ErrorBody, Format};
use crate::state::StateError;

/// What a command produced.
pub struct Outcome {
    pub data: Value,
    pub human: String,
    pub exit: u8,
    pub error: Option<ErrorBody>,
}

impl Outcome {
    pub(super) fn ok(data: Value, human: String) -> Outcome {
        Outcome {
            data,
            human,
            exit: 0,
            error: None,
        }
    }
}

/// A stable error code: one of [`codes::ALL`], the table the README's "Error codes" lists.
/// Made only there, so a command cannot answer with a code the table lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code(&'static str);

impl Code {
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

macro_rules! error_codes {
    ($($name:ident: $meaning:literal,)*) => {
        $(#[doc = $meaning] pub const $name: Code = Code(stringify!($name));)*
        /// Every code with its meaning.
        pub const ALL: &[(Code, &str)] = &[$(($name, $meaning)),*];
    };
}

/// The error codes, what each means. The README's table lists each (a test checks it).
pub mod codes {
    use super::Code;
    error_codes! {
        ADOPTED: "the cluster was adopted, not created, by pgdba: it will not destroy it (`cluster forget` drops it from the state)",
        APPLY_FAILED: "an action of the apply failed; the state records what was done and `plan` shows what remains",
        APPROVAL_REQUIRED: "the command applies a plan and stdin is not a terminal: add --auto-approve",
        BACKUP_FAILED: "pgBackRest or pg_dump failed (its own message is quoted) or could not be run",
        CANCELLED: "the apply was interrupted (Ctrl-C, SIGTERM) or not approved; what ran is recorded",
        CONFIRMATION_REQUIRED: "a destructive command without its confirmation flag (--confirm, --force)",
        DATA_LOSS: "the plan destroys data and --allow-data-loss was not given",
        DESTROY_FAILED: "destroy could not remove everything; what is left is named",
        DRILL_FAILED: "a failover drill in synchronous mode lost acknowledged commits (the message names them)",
        EXISTS: "what the command would create exists already (a cluster name in the state, a file)",
        EXISTS_UNMANAGED: "the cluster runs but the state dir has no state for it",
        FAILED: "a leader change failed (Patroni refused it, or the new leader took no write; in a drill, no member took writes after the fault)",
        INTERNAL: "a bug or an environment pgdba cannot run in (say how it happened)",
        INVALID_INPUT: "inputs a calculation refuses (PGTune's memory, CPU or connection range)",
        INVALID_PLAN: "a saved plan file that cannot be read as a plan",
        INVALID_SPEC: "the spec does not validate; every problem is listed with file:line:column",
        HOST_KEY_CHANGED: "a host of the ssh provider offers another key than the one pgdba trusts (both fingerprints in the message): nothing was sent to it",
        IN_USE: "something the plan needs (a network, a subnet, a container name) is used by something else",
        IN_USE_BY_ANOTHER_CLUSTER: "another cluster of the state dir uses this spec's directory or ports",
        IO_ERROR: "a file could not be read or written",
        LISTEN_FAILED: "health serve cannot listen on the address given",
        LOCK_LOST: "the cluster's lock was broken (`state unlock --force`) while this run held it",
        NOT_FOUND: "no such cluster, member, table or database",
        NOT_MANAGED: "drift or destroy of a cluster the state does not know (pgdba never applied it)",
        NO_BACKUP: "a backup command on a cluster without spec.backup, or whose repository has no stanza or no backup yet",
        NO_PATRONI: "an HA command on a plain PostgreSQL server (PGDBA_PG_*): there is no Patroni",
        NO_PG_STAT_STATEMENTS: "query slow-log without pg_stat_statements; the hint says how to enable it",
        NO_PRIMARY: "no member of the cluster accepts writes",
        NO_REPLICA: "backup create with spec.backup.from_standby, and no replica streams to back up from",
        OUTSIDE_WINDOW: "backup restore: the target is outside the recoverable window (the message gives it), or no backup ends before it",
        PATRONI_UNREACHABLE: "cluster connect: Patroni's REST API does not answer as Patroni",
        PENDING_CHANGES: "replica add/remove on a cluster that does not match its spec yet",
        PLAN_FAILED: "a cluster of a fleet could not be planned",
        PLAN_TAMPERED: "a saved plan whose signature does not match: it was changed after it was made",
        PORT_IN_USE: "a port the plan would listen on is held by another process",
        PRECHECK_FAILED: "a leader change refused by a pre-check, which the message names",
        PREFLIGHT_FAILED: "the provider cannot carry out the plan (a plan an adopted cluster cannot take, a missing binary)",
        PROTECTED: "a destructive command on a cluster labelled env: production without --allow-production",
        REFUSED: "an operation pgdba will not do, and why (a statement query analyze may not run, forgetting a created cluster)",
        REPLICATION_UNHEALTHY: "cluster connect: a replica does not stream, or the cluster has no leader",
        RESTORE_FAILED: "backup restore --in-place stopped after it began to remove the members; the hint names the spec that carries it on",
        SCHEDULE_FAILED: "backup schedule --install/--uninstall: systemctl failed (its message is quoted)",
        SECRETS_MISSING: "the state exists but its secrets file does not: restore it",
        SECRET_UNAVAILABLE: "a password or other secret the spec points at ({env: ...}, {file: ...}) cannot be read",
        SPEC_NOT_EDITED: "the spec file could not be edited (changed meanwhile, or a layout pgdba cannot edit)",
        SPLIT_BRAIN: "two members accept writes: nothing is done until one is stopped",
        SQL_ERROR: "PostgreSQL refused a statement; its SQLSTATE is in the message",
        STALE_PLAN: "a saved plan whose cluster changed since it was made",
        STATE_ERROR: "the state file is damaged, of another lineage, or was changed by someone else",
        STATE_LOCKED: "another run holds the cluster's lock",
        UNREACHABLE: "a server that should answer did not (the message names it); nothing was concluded",
        UNSUPPORTED: "cluster connect: the cluster runs something pgdba cannot manage (a PostgreSQL major, an HBA rule); chaos partition: the provider's members have no networks of their own to cut",
        USAGE: "the command line cannot be parsed, or lacks what the command needs; never exit 2",
        VERIFY_FAILED: "a backup's restore test failed, pgBackRest's verify finds a new backup damaged, or a logical backup's dump does not read back (the file is named); the report is in data",
    }
}

/// A refusal or failure with a stable code (CONTRACT.md), and data to go with it.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub message: String,
    pub hint: Option<String>,
    pub data: Value,
}

impl Failure {
    pub(super) fn new(code: Code, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            hint: None,
            data: Value::Null,
        }
    }
    pub(super) fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }
    pub(super) fn data(mut self, data: Value) -> Failure {
        self.data = data;
        self
    }
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Failure {
        match &e {
            StateError::Locked { .. } => Failure::new(codes::STATE_LOCKED, e.to_string()).hint(
                "wait for the other run to finish (a run that dies releases the lock at once)",
            ),
            StateError::LockLost { .. } => Failure::new(codes::LOCK_LOST, crate::error_chain(&e)),
            _ => Failure::new(codes::STATE_ERROR, crate::error_chain(&e)),
        }
    }
}

impl Failure {
    pub fn into_outcome(self) -> Outcome {
        Outcome {
            human: match &self.hint {
                Some(h) => format!("Error: {}\nHint: {h}\n", self.message),
                None => format!("Error: {}\n", self.message),
            },
            data: self.data,
            exit: 1,
            error: Some(ErrorBody {
                code: self.code.as_str().to_owned(),
                message: self.message,
                hint: self.hint,
            }),
        }
    }
}

pub fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Validate { .. } => "validate",
        Command::Plan { .. } => "plan",
        Command::Apply { .. } => "apply",
        Command::Destroy { .. } => "destroy",
        Command::Drift { .. } => "drift",
        Command::State(StateCommand::List { .. }) => "state list",
        Command::State(StateCommand::Show { .. }) => "state show",
        Command::State(StateCommand::Unlock { .. }) => "state unlock",
        Command::Cluster(ClusterCommand::Status { .. }) => "cluster status",
        Command::Cluster(ClusterCommand::List { .. }) => "cluster list",
        Command::Cluster(ClusterCommand::Init { .. }) => "cluster init",
        Command::Cluster(ClusterCommand::Connect { .. }) => "cluster connect",
        Command::Cluster(ClusterCommand::Forget { .. }) => "cluster forget",
        Command::Switchover { .. } => "switchover",
        Command::Failover(FailoverCommand::Trigger { .. }) => "failover trigger",
        Command::Failover(FailoverCommand::Status { .. }) => "failover status",
        Command::Replica(ReplicaCommand::Add { .. }) => "replica add",
        Command::Replica(ReplicaCommand::Remove { .. }) => "replica remove",
        Command::Replica(ReplicaCommand::Promote { .. }) => "replica promote",
        Command::Health(HealthCommand::Check { .. }) => "health check",
        Command::Health(HealthCommand::Report { .. }) => "health report",
        Command::Health(HealthCommand::Serve { .. }) => "health serve",
        Command::Config(ConfigCommand::Tune { .. }) => "config tune",
        Command::Config(ConfigCommand::Show { .. }) => "config show",
        Command::Config(ConfigCommand::Diff { .. }) => "config diff",
        Command::Config(ConfigCommand::Apply { .. }) => "config apply",
        Command::Query(QueryCommand::SlowLog { .. }) => "query slow-log",
        Command::Query(QueryCommand::Analyze { .. }) => "query analyze",
        Command::Query(QueryCommand::IndexSuggest { .. }) => "query index-suggest",
        Command::Backup(BackupCommand::Create { .. }) => "backup create",
        Command::Backup(BackupCommand::List { .. }) => "backup list",
        Command::Backup(BackupCommand::VerifyRestore { .. }) => "backup verify-restore",
        Command::Backup(BackupCommand::Verify { .. }) => "backup verify",
        Command::Backup(BackupCommand::Schedule { .. }) => "backup schedule",
        Command::Backup(BackupCommand::Restore { .. }) => "backup restore",
        Command::Chaos(ChaosCommand::Drill(DrillCommand::Failover { .. })) => {
            "chaos drill failover"
        }
        Command::Chaos(ChaosCommand::Drill(DrillCommand::Switchover { .. })) => {
            "chaos drill switchover"
        }
        Command::Chaos(ChaosCommand::Drill(DrillCommand::Partition { .. })) => {
            "chaos drill partition"
        }
        Command::Chaos(ChaosCommand::KillNode { .. }) => "chaos kill-node",
        Command::Chaos(ChaosCommand::Partition { .. }) => "chaos partition",
        Command::Chaos(ChaosCommand::Heal { .. }) => "chaos heal",
        Command::Chaos(ChaosCommand::Corrupt { .. }) => "chaos corrupt",
        Command::Chaos(ChaosCommand::Freeze { .. }) => "chaos freeze",
        Command::Chaos(ChaosCommand::Thaw { .. }) => "chaos thaw",
        Command::Chaos(ChaosCommand::Report { .. }) => "chaos report",
    }
}

/// Which formats each command can print.
pub fn supports(c: &Command, f: Format) -> bool {
    match f {
        Format::Json | Format::Yaml | Format::Table => true,
        Format::Dot => matches!(c, Command::Plan { .. }),
        Format::Markdown => matches!(
            c,
            Command::Plan { .. }
                | Command::Health(HealthCommand::Report { .. })
                | Command::Chaos(ChaosCommand::Report { .. })
        ),
        Format::Html => matches!(c, Command::Health(HealthCommand::Report { .. })),
    }
}

pub async fn run(command: Command, g: &Global, format: Format) -> Outcome {
    let result = match command {
        Command::Validate { file, .. } => validate(&file),
        Command::Plan {
            file,
            out,
            detailed_exitcode,
            ..
        } => plan_cmd(g, format, &file, out.as_deref(), detailed_exitcode).await,
        Command::Apply {
            plan_file: Some(p),
            file,
            allow_data_loss,
            allow_production,
            ..
        } => {
            let allow = Allow {
                data_loss: allow_data_loss,
                production: allow_production,
            };
            apply_saved(g, format, &p, file.as_deref(), allow).await
        }
        Command::Apply {
            file: Some(f),
            auto_approve,
            allow_data_loss,
            allow_production,
            ..
        } => {
            let allow = Allow {
                data_loss: allow_data_loss,
                production: allow_production,
            };
            apply_spec(g, format, &f, auto_approve, allow).await
        }
        Command::Apply { .. } => Err(Failure::new(
            codes::USAGE,
            "apply needs -f SPEC or a saved plan file",
        )),
        Command::Destroy {
            file,
            confirm,
            allow_production,
            ..
        } => destroy(g, &file, confirm, allow_production).await,
        Command::Drift { file, fail_on, .. } => super::drift::run(g, &file, fail_on).await,
        Command::State(s) => state_cmd(g, s),
        Command::Cluster(c) => match c {
            ClusterCommand::Status { cluster, .. } => super::opscluster::status(g, &cluster).await,
            ClusterCommand::List { .. } => super::opscluster::list(g),
            ClusterCommand::Init {
                placement,
                replicas,
                name,
                out,
                auto_approve,
                ..
            } => {
                super::opscluster::init(g, format, placement, replicas, &name, out, auto_approve)
                    .await
            }
            ClusterCommand::Connect {
                patroni_url,
                name,
                pg_host,
                pg_port,
                password_env,
                write_spec,
                ..
            } => {
                let a = super::adopt::ConnectArgs {
                    patroni_url,
                    name,
                    pg_host,
                    pg_port,
                    password_env,
                    write_spec,
                };
                super::adopt::connect(g, a).await
            }
            ClusterCommand::Forget { name, .. } => super::adopt::forget(g, &name),
        },
        Command::Switchover {
            to, at, cluster, ..
        } => super::leader::switchover(g, &cluster, &to, at.as_deref()).await,
        Command::Failover(FailoverCommand::Trigger {
            target, cluster, ..
        }) => super::leader::failover(g, &cluster, &target).await,
        Command::Failover(FailoverCommand::Status { cluster, .. }) => {
            super::leader::status(g, &cluster).await
        }
        Command::Replica(ReplicaCommand::Promote {
            member, cluster, ..
        }) => super::leader::promote(g, &cluster, &member).await,
        Command::Replica(ReplicaCommand::Add {
            file, auto_approve, ..
        }) => super::replica::add(g, format, &file, auto_approve).await,
        Command::Replica(ReplicaCommand::Remove {
            spec,
            member,
            auto_approve,
            ..
        }) => super::replica::remove(g, format, &spec, &member, auto_approve).await,
        Command::Health(HealthCommand::Check { cluster, .. }) => {
            super::health::check(g, &cluster).await
        }
        Command::Health(HealthCommand::Report { cluster, .. }) => {
            super::health::report(g, &cluster, format).await
        }
        Command::Health(HealthCommand::Serve {
            listen,
            interval,
            cluster,
            ..
        }) => super::healthserve::serve(g, &cluster, &listen, interval).await,
        Command::Config(ConfigCommand::Tune { tune, .. }) => super::config::tune(&tune),
        Command::Config(ConfigCommand::Show {
            cluster,
            member,
            params,
            changed,
            ..
        }) => super::config::show(g, &cluster, &member, &params, changed).await,
        Command::Config(ConfigCommand::Diff {
            cluster, workload, ..
        }) => super::config::diff(g, &cluster, workload).await,
        Command::Config(ConfigCommand::Apply {
            file,
            from,
            tune,
            auto_approve,
            ..
        }) => super::config::apply(g, format, &file, from.as_deref(), &tune, auto_approve).await,
        Command::Query(QueryCommand::SlowLog {
            threshold,
            limit,
            cluster,
            ..
        }) => super::query::slow_log(g, &cluster, &threshold, limit).await,
        Command::Query(QueryCommand::Analyze {
            sql,
            database,
            allow_writes,
            cluster,
            ..
        }) => super::query::analyze(g, &cluster, &sql, database.as_deref(), allow_writes).await,
        Command::Query(QueryCommand::IndexSuggest {
            table,
            database,
            cluster,
            ..
        }) => super::query::index_suggest(g, &cluster, &table, database.as_deref()).await,
        Command::Backup(BackupCommand::Create {
            kind,
            database,
            no_verify,
            cluster,
            ..
        }) => match (kind.physical(), database) {
            (Some(k), None) => super::backup::create(g, format, &cluster, k, no_verify).await,
            (Some(k), Some(_)) => Err(Failure::new(
                codes::USAGE,
                format!(
                    "--database is for logical backups: a {k} backup (pgBackRest) copies the whole cluster"
                ),
            )),
            (None, _) if no_verify => Err(Failure::new(
                codes::USAGE,
                "--no-verify is for pgBackRest's backups: a logical backup is always read back",
            )),
            (None, database) => super::logical::create(g, &cluster, database.as_deref()).await,
        },
        Command::Backup(BackupCommand::Verify {
            backup_id, cluster, ..
        }) => super::logical::verify(g, &cluster, backup_id.as_deref()).await,
        Command::Backup(BackupCommand::Schedule {
            install,
            uninstall,
            cluster,
            ..
        }) => {
            let mode = match (install, uninstall) {
                (true, _) => super::schedule::Mode::Install,
                (_, true) => super::schedule::Mode::Uninstall,
                _ => super::schedule::Mode::Print,
            };
            super::schedule::schedule(g, &cluster, mode).await
        }
        Command::Backup(BackupCommand::List { cluster, .. }) => {
            super::backup::list(g, &cluster).await
        }
        Command::Backup(BackupCommand::Restore {
            to_cluster,
            in_place,
            i_know_what_i_am_doing,
            allow_production,
            target_time,
            target_lsn,
            target_xid,
            backup_id,
            out,
            data_dir,
            pg_port,
            api_port,
            etcd_port,
            auto_approve,
            cluster,
            ..
        }) => {
            let target = match (target_time, target_lsn, target_xid) {
                (Some(t), _, _) => Some(super::restore::RestoreTarget::Time(t)),
                (_, Some(l), _) => Some(super::restore::RestoreTarget::Lsn(l)),
                (_, _, Some(x)) => Some(super::restore::RestoreTarget::Xid(x)),
                _ => None,
            };
            match to_cluster.filter(|_| !in_place) {
                None => {
                    super::restore::restore_in_place(
                        g,
                        format,
                        &cluster,
                        target,
                        backup_id.as_deref(),
                        i_know_what_i_am_doing,
                        allow_production,
                    )
                    .await
                }
                Some(to_cluster) => {
                    let to = super::restore::RestoreTo {
                        name: to_cluster,
                        out,
                        data_dir,
                        pg_port,
                        api_port,
                        etcd_port,
                    };
                    super::restore::restore(
                        g,
                        format,
                        &cluster,
                        to,
                        target,
                        backup_id.as_deref(),
                        auto_approve,
                    )
                    .await
                }
            }
        }
        Command::Chaos(ChaosCommand::Drill(DrillCommand::Failover {
            i_know_what_i_am_doing,
            no_backup,
            cluster,
            ..
        })) => super::chaos::drill_failover(g, &cluster, i_know_what_i_am_doing, no_backup).await,
        Command::Chaos(ChaosCommand::Drill(DrillCommand::Switchover {
            i_know_what_i_am_doing,
            no_backup,
            cluster,
            ..
        })) => super::chaos::drill_switchover(g, &cluster, i_know_what_i_am_doing, no_backup).await,
        Command::Chaos(ChaosCommand::Drill(DrillCommand::Partition {
            i_know_what_i_am_doing,
            no_backup,
            cluster,
            ..
        })) => super::chaos::drill_partition(g, &cluster, i_know_what_i_am_doing, no_backup).await,
        Command::Chaos(ChaosCommand::Partition {
            isolate,
            i_know_what_i_am_doing,
            no_backup,
            cluster,
            ..
        }) => {
            super::chaos::partition(g, &cluster, &isolate, i_know_what_i_am_doing, no_backup).await
        }
        Command::Chaos(ChaosCommand::Corrupt {
            table,
            database,
            member,
            leader,
            i_know_what_i_am_doing,
            no_backup,
            cluster,
            ..
        }) => {
            super::chaos::corrupt(
                g,
                &cluster,
                &member,
                &table,
                &database,
                leader,
                i_know_what_i_am_doing,
                no_backup,
            )
            .await
        }
        Command::Chaos(ChaosCommand::Heal {
            member, cluster, ..
        }) => super::chaos::heal(g, &cluster, member.as_deref()).await,
        Command::Chaos(ChaosCommand::KillNode {
            member,
            i_know_what_i_am_doing,
            no_backup,
            cluster,
            ..
        }) => {
            super::chaos::kill_node(g, &cluster, &member, i_know_what_i_am_doing, no_backup).await
        }
        Command::Chaos(ChaosCommand::Freeze {
            member,
            i_know_what_i_am_doing,
            no_backup,
            cluster,
            ..
        }) => {
            super::chaos::freeze(
                g,
                &cluster,
                &member,
                true,
                i_know_what_i_am_doing,
                no_backup,
            )
            .await
        }
        Command::Chaos(ChaosCommand::Thaw {
            member, cluster, ..
        }) => super::chaos::freeze(g, &cluster, &member, false, true, true).await,
        Command::Chaos(ChaosCommand::Report { cluster, .. }) => {
            super::chaos::report(g, format, &cluster).await
        }
        Command::Backup(BackupCommand::VerifyRestore {
            backup_id,
            scratch_dir,
            scratch_port,
            cluster,
            ..
        }) => {
            super::backup::verify_restore(
                g,
                &cluster,
                backup_id.as_deref(),
                &scratch_dir,
                scratch_port,
            )
            .await
        }
    };
    result.unwrap_or_else(Failure::into_outcome)
}

#[cfg(test)]
mod tests {
    /// Every error code a command can answer with is in the README's table, with its meaning.
    #[test]
    fn the_readme_lists_every_error_code() {
        let readme = include_str!("../../README.md");
        let section = readme.split("## Error codes").nth(1).unwrap_or_default();
        for (code, _) in super::codes::ALL {
            assert!(
                section.contains(&format!("| `{code}` |")),
                "README.md's \"Error codes\" table lacks {code}"
            );
        }
    }
}

//! The command line: parsing (clap) here, the dispatch in `commands`, each command in its own
//! file (`specs`, `plan`, `apply`, `destroy`, `drift`, `state`; `cluster` holds what plan and
//! apply share).
//!
//! As in ripgrep, the parsed arguments ("low args": each subcommand with only the flags that
//! apply to it) are resolved once into what the program runs with ([`Global`], the "high
//! args"). The flags the contract calls global (`--format`, `--state-dir`, `-v`,
//! `--parallelism`) are also accepted before the subcommand, as earlier versions did; a flag
//! given after it wins.

mod adopt;
mod apply;
mod backup;
mod chaos;
mod cluster;
pub mod commands;
mod config;
mod destroy;
mod drift;
mod health;
mod healthserve;
mod leader;
mod logical;
mod opscluster;
mod plan;
mod query;
mod replica;
mod restore;
mod schedule;
mod specs;
mod state;
pub mod target;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::Format;

const DEFAULT_STATE_DIR: &str = "./state";
const DEFAULT_PARALLELISM: usize = 10;

#[derive(Debug, Parser)]
#[command(
    name = "pgdba",
    version,
    about = "Declarative desired state for PostgreSQL HA clusters (Patroni, etcd)",
    after_help = "Exit codes: 0 success; 1 an error (bad input, refused, unreachable, failed); 2 \
                  changes pending (plan --detailed-exitcode), drift found (drift) or a crit \
                  health check (health check, health report)."
)]
pub struct Cli {
    /// Also accepted after the subcommand, where its help lists the formats it prints.
    #[arg(long, value_enum, hide = true)]
    format: Option<Format>,
    #[arg(long, hide = true)]
    state_dir: Option<PathBuf>,
    #[arg(short, long, action = clap::ArgAction::Count, hide = true)]
    verbose: u8,
    #[arg(long, hide = true)]
    parallelism: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

/// What every command runs with, resolved from the command line and the environment.
#[derive(Debug, Clone)]
pub struct Global {
    pub format: Option<Format>,
    pub state_dir: PathBuf,
    pub verbose: u8,
    pub parallelism: usize,
}

/// The formats of commands that print a result or a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BasicFormat {
    Json,
    Yaml,
    Table,
}

impl From<BasicFormat> for Format {
    fn from(f: BasicFormat) -> Format {
        match f {
            BasicFormat::Json => Format::Json,
            BasicFormat::Yaml => Format::Yaml,
            BasicFormat::Table => Format::Table,
        }
    }
}

/// `--format` and `-v` for commands that print results.
#[derive(Debug, Args)]
pub struct Output {
    /// Output format (default: table on a terminal, json otherwise).
    #[arg(long, value_enum)]
    format: Option<BasicFormat>,
    /// More logging on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// `--format` and `-v` for `plan` (which also prints Markdown and DOT) and `chaos report`
/// (Markdown).
#[derive(Debug, Args)]
pub struct PlanOutput {
    /// Output format (default: table on a terminal, json otherwise); markdown for a pull
    /// request comment or a post-mortem, dot for Graphviz (plan).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// More logging on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// Where the state is.
#[derive(Debug, Args)]
pub struct StateDir {
    /// Where pgdba keeps its state [env: PGDBA_STATE_DIR] [default: ./state].
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

/// How many clusters (or actions) run at once.
#[derive(Debug, Args)]
pub struct Parallelism {
    /// How many clusters of a fleet, or actions of an apply, run at once [default: 10].
    #[arg(long)]
    parallelism: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and validate specs; every problem is reported with file:line:column.
    #[command(after_help = "Exit codes: 0 every spec is valid; 1 a problem (each one listed).")]
    Validate {
        /// A spec file (YAML or KDL), or a directory: every spec in it, checked as a fleet.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        #[command(flatten)]
        output: Output,
    },
    /// Observe, diff and show the actions that would make the cluster match the spec.
    #[command(
        after_help = "Exit codes: 0 success (with --detailed-exitcode: nothing to change); 1 an \
                      error (a cluster that cannot be planned, a port in use, ...); 2 with \
                      --detailed-exitcode: changes pending."
    )]
    Plan {
        /// A spec file, or a directory: every spec in it (a fleet), planned concurrently.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Save the plan (of one cluster) for `pgdba apply FILE`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Exit 0 when there is nothing to do, 2 when changes are pending.
        #[arg(long)]
        detailed_exitcode: bool,
        #[command(flatten)]
        output: PlanOutput,
        #[command(flatten)]
        state: StateDir,
        #[command(flatten)]
        parallelism: Parallelism,
    },
    /// Plan and execute (asks for `yes` on a terminal), or execute a saved plan.
    #[command(
        after_help = "Exit codes: 0 applied, or nothing to do; 1 an error, a refusal \
                      (STALE_PLAN, DATA_LOSS, STATE_LOCKED, ...) or a failed action. After a \
                      failed action the state records what was done, and `pgdba plan` shows \
                      what remains."
    )]
    Apply {
        /// A plan saved by `pgdba plan --out`: applied exactly, refused if anything it touches
        /// changed since.
        plan_file: Option<PathBuf>,
        /// One spec file: plan it, then apply. With a saved plan: the spec it was made from,
        /// which must not have changed since.
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// Apply without asking for `yes` (required when stdin is not a terminal).
        #[arg(long, conflicts_with = "plan_file")]
        auto_approve: bool,
        /// Allow actions that destroy data (dropping or re-creating a database, dropping an
        /// extension that table columns use, rebuilding a member).
        #[arg(long)]
        allow_data_loss: bool,
        /// Allow destructive changes (drops, removed members, data loss) on a cluster labelled
        /// env: production.
        #[arg(long)]
        allow_production: bool,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
        #[command(flatten)]
        parallelism: Parallelism,
    },
    /// Read-only: what changed outside pgdba since the last apply, classified (expected,
    /// benign, dangerous).
    #[command(
        after_help = "Exit codes: 0 no drift that counts under --fail-on; 2 drift found; 1 an \
                      error, or a cluster that could not be checked."
    )]
    Drift {
        /// A spec file, or a directory: every spec in it (a fleet), checked concurrently.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// What counts as drift for the exit code: any non-expected drift, or only dangerous.
        #[arg(long, value_enum, default_value = "any")]
        fail_on: crate::drift::FailOn,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
        #[command(flatten)]
        parallelism: Parallelism,
    },
    /// Remove everything pgdba created for a cluster: members, DCS and data.
    #[command(after_help = "Exit codes: 0 destroyed; 1 an error or a refusal.")]
    Destroy {
        /// The spec of the cluster to destroy (one file).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Required: destroying deletes the cluster's data.
        #[arg(long)]
        confirm: bool,
        /// Required to destroy a cluster labelled env: production.
        #[arg(long)]
        allow_production: bool,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Inspect the state, break a stuck lock.
    #[command(subcommand)]
    State(StateCommand),
    /// A cluster's topology and health, every cluster in the state, a new cluster, adopting a
    /// running Patroni cluster.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Hand the leader to a healthy replica (Patroni's switchover), measuring the write outage.
    #[command(
        after_help = "Exit codes: 0 the leader moved (or, with --at, the switchover is \
                      scheduled); 1 refused by a pre-check (it names which), or failed."
    )]
    Switchover {
        /// The member that should lead.
        #[arg(long)]
        to: String,
        /// Schedule it at this time (RFC3339, e.g. 2026-12-02T03:00:00Z) instead of now.
        #[arg(long)]
        at: Option<String>,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Forced leader changes (Patroni's failover), and what the cluster's leadership is now.
    #[command(subcommand)]
    Failover(FailoverCommand),
    /// Add, remove or promote a replica.
    #[command(subcommand)]
    Replica(ReplicaCommand),
    /// Health checks (ok, warn, crit), a report, and an HTTP endpoint for load balancers.
    #[command(subcommand)]
    Health(HealthCommand),
    /// PGTune's recommendations, settings as PostgreSQL holds them, and their differences.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Query diagnostics: slow statements, EXPLAIN ANALYZE, index suggestions.
    #[command(subcommand)]
    Query(QueryCommand),
    /// Backups (spec.backup): pgBackRest's physical ones and pg_dump's logical ones; take one,
    /// list them, prove one restores, schedule them.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Faults and drills that measure what the cluster does: RTO and RPO as figures.
    #[command(subcommand)]
    Chaos(ChaosCommand),
}

#[derive(Debug, Subcommand)]
pub enum ChaosCommand {
    /// Drills: a fault under a writer's load, measured.
    #[command(subcommand)]
    Drill(DrillCommand),
    /// Kill a member as a crash would (Patroni and PostgreSQL at once, or its container); it
    /// stays down until `pgdba apply` starts it again.
    #[command(
        after_help = "Needs --i-know-what-i-am-doing; refused for env: production. With spec.backup, \
                      an incremental backup is taken first unless --no-backup. `pgdba plan` then \
                      shows the member to start, `drift` reports it, `apply` starts it.\n\n\
                      Exit codes: 0 killed; 1 refused, no such member, or it could not be killed."
    )]
    KillNode {
        #[command(flatten)]
        member: target::MemberArg,
        /// Confirms the fault.
        #[arg(long)]
        i_know_what_i_am_doing: bool,
        /// Do not take a backup first (with spec.backup).
        #[arg(long)]
        no_backup: bool,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Freeze a member: every one of its processes stopped where it is (SIGSTOP; Docker:
    /// pause), as a machine that hangs, its connections open and silent; `chaos thaw` resumes
    /// it. On the local provider, whose members share one loopback that cannot be cut, this is
    /// the honest stand-in for a network partition.
    #[command(
        after_help = "Needs --i-know-what-i-am-doing; refused for env: production. With spec.backup, \
                      an incremental backup is taken first unless --no-backup. A frozen leader \
                      loses its leader key after Patroni's ttl and a replica takes over; thawed, \
                      it finds it lost the lock and rejoins.\n\n\
                      Exit codes: 0 frozen; 1 refused, no such member, or it does not run."
    )]
    Freeze {
        #[command(flatten)]
        member: target::MemberArg,
        /// Confirms the fault.
        #[arg(long)]
        i_know_what_i_am_doing: bool,
        /// Do not take a backup first (with spec.backup).
        #[arg(long)]
        no_backup: bool,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Cut a member off the cluster's network (Docker: its container disconnected; ssh: its
    /// host's firewall drops all but SSH), from the
    /// DCS, its peers and clients alike, its processes running on; `chaos heal` joins it again.
    #[command(
        after_help = "Needs a provider whose members have networks of their own (docker, ssh): the local \
                      provider's members share one loopback that cannot be cut, and `chaos freeze` \
                      is its stand-in. Needs --i-know-what-i-am-doing; refused for env: production. \
                      With spec.backup, an incremental backup is taken first unless --no-backup. An \
                      isolated leader cannot renew its leader key: Patroni demotes it, and a \
                      replica takes over after the key's ttl.\n\n\
                      Exit codes: 0 cut off; 1 refused (UNSUPPORTED on the local provider), no \
                      such member, or it could not be cut off."
    )]
    Partition {
        /// The member to cut off (its name).
        #[arg(long, value_name = "MEMBER")]
        isolate: String,
        /// Confirms the fault.
        #[arg(long)]
        i_know_what_i_am_doing: bool,
        /// Do not take a backup first (with spec.backup).
        #[arg(long)]
        no_backup: bool,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Damage one data page of a table's file on a member while it is down, then show that the
    /// damage is detected (the read fails, `pg_stat_database` counts checksum failures) and
    /// repair the member by cloning it again from the leader.
    #[command(
        after_help = "Needs --i-know-what-i-am-doing; refused for env: production; refused on the \
                      leader unless --leader (the lead is then handed to a replica before the \
                      repair). The member is killed, bytes in the middle of block 0 of the \
                      table's file are overwritten, and it is started again; data checksums (on \
                      since initdb in pgdba's clusters) must be on, and the table in the data \
                      directory's own tablespace. With spec.backup, an incremental backup is \
                      taken first unless --no-backup. `health check` reports checksum failures \
                      (`checksums`, crit).\n\n\
                      Exit codes: 0 damaged, detected and repaired; 1 refused, failed, or the \
                      damage went unnoticed (DRILL_FAILED)."
    )]
    Corrupt {
        /// The table (`name` or `schema.name`, as in SQL).
        #[arg(long)]
        table: String,
        /// Its database.
        #[arg(long, default_value = "postgres")]
        database: String,
        #[command(flatten)]
        member: target::MemberArg,
        /// Allow the member to be the leader.
        #[arg(long)]
        leader: bool,
        /// Confirms the fault.
        #[arg(long)]
        i_know_what_i_am_doing: bool,
        /// Do not take a backup first (with spec.backup).
        #[arg(long)]
        no_backup: bool,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Join every member cut off by `chaos partition` to the cluster's network again (or only
    /// --member M).
    #[command(
        after_help = "Exit codes: 0 every member is on the network; 1 no such member, \
                            the provider has no networks, or a member could not join."
    )]
    Heal {
        /// Only this member (its name).
        #[arg(long)]
        member: Option<String>,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Resume a frozen member (SIGCONT; Docker: unpause).
    #[command(after_help = "Exit codes: 0 resumed; 1 no such member, or it does not run.")]
    Thaw {
        #[command(flatten)]
        member: target::MemberArg,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Every fault and drill run against the cluster, with its figures (from its history);
    /// `--format markdown` for a post-mortem.
    #[command(after_help = "Exit codes: 0 listed (also when there is none); 1 no such cluster.")]
    Report {
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: PlanOutput,
        #[command(flatten)]
        state: StateDir,
    },
}

#[derive(Debug, Subcommand)]
pub enum DrillCommand {
    /// Kill the leader (Patroni and PostgreSQL at once, as a crash) while a writer commits
    /// numbered rows, and measure the write outage (RTO) and the acknowledged commits the new
    /// leader lacks (RPO); then bring the old leader back and measure how it rejoins.
    #[command(
        after_help = "Needs --i-know-what-i-am-doing; refused for env: production. With spec.backup, \
                      an incremental backup is taken first unless --no-backup. The writer commits \
                      through whichever member accepts writes (libpq's target_session_attrs) into \
                      a table of its own in the postgres database, dropped at the end. With \
                      spec.patroni.synchronous_mode, any acknowledged commit lost fails the drill.\n\n\
                      Exit codes: 0 the drill ran (and, in synchronous mode, lost nothing); 1 it \
                      could not run, was refused, or lost acknowledged commits in synchronous mode \
                      (DRILL_FAILED, the numbers in the message)."
    )]
    Failover {
        /// Confirms the fault: the leader is killed.
        #[arg(long)]
        i_know_what_i_am_doing: bool,
        /// Do not take a backup first (with spec.backup).
        #[arg(long)]
        no_backup: bool,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Hand the lead to the most caught-up replica (the synchronous standby when there is one)
    /// while the writer commits: the planned case, measured the same way.
    #[command(
        after_help = "Needs --i-know-what-i-am-doing; refused for env: production. With spec.backup, \
                      an incremental backup is taken first unless --no-backup. A switchover loses \
                      no acknowledged commit: one lost fails the drill.\n\n\
                      Exit codes: 0 the drill ran and lost nothing; 1 it could not run, was \
                      refused, or lost acknowledged commits (DRILL_FAILED)."
    )]
    Switchover {
        /// Confirms the drill: the leader changes.
        #[arg(long)]
        i_know_what_i_am_doing: bool,
        /// Do not take a backup first (with spec.backup).
        #[arg(long)]
        no_backup: bool,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Cut the leader off the network while two writers commit, one from outside (through
    /// whichever member accepts writes) and one beside the leader (a client on its side of the
    /// cut); measure the outage, how long the isolated leader still took writes, and whether
    /// two leaders ever took writes at once; then heal and measure how it rejoins.
    #[command(
        after_help = "Needs a provider whose members have networks of their own (docker, ssh), \
                      --i-know-what-i-am-doing; refused for env: production. With spec.backup, an \
                      incremental backup is taken first unless --no-backup. Commits the isolated \
                      leader acknowledged after the cut are reported, and those its rejoin \
                      discarded.\n\n\
                      Exit codes: 0 the drill ran and the isolated leader stopped taking writes \
                      before another member started; 1 it could not run, was refused (UNSUPPORTED \
                      on the local provider), or two members took writes at once (DRILL_FAILED)."
    )]
    Partition {
        /// Confirms the fault: the leader is cut off.
        #[arg(long)]
        i_know_what_i_am_doing: bool,
        /// Do not take a backup first (with spec.backup).
        #[arg(long)]
        no_backup: bool,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a backup beside the leader (pgBackRest, or pg_dump for logical), then verify it.
    #[command(
        after_help = "The cluster's lock is held meanwhile, and the backup is recorded in its \
                      history. pgBackRest takes a full backup when a diff or incremental one has \
                      no full one to build on, and says so. pgBackRest 2.45 verifies a whole \
                      repository, not one backup: --no-verify skips it on a large one.\n\n\
                      A logical backup is one `pg_dump --format=custom` per database (every one \
                      that is not a template, or --database), into \
                      <repository path>/logical/<cluster>/<id>/ with a manifest.json; each dump \
                      is read back whole with pg_restore, and the logical backups beyond \
                      spec.backup.retention.logical (default 7) are removed afterwards.\n\n\
                      Exit codes: 0 taken (and verified); 1 the cluster has no spec.backup \
                      (NO_BACKUP), pgBackRest or pg_dump failed (BACKUP_FAILED, with its own \
                      message), the repository is not a path (REFUSED, logical), or the backup \
                      was taken but its verification finds it damaged (VERIFY_FAILED)."
    )]
    Create {
        /// What to back up: every file (full), the changes since the last full backup (diff),
        /// or since the last backup of any type (incremental), all with pgBackRest; or each
        /// database with pg_dump (logical).
        #[arg(long = "type", value_enum, value_name = "TYPE")]
        kind: crate::ops::logical::BackupType,
        /// Logical backups: only this database [default: every database but the templates].
        #[arg(long)]
        database: Option<String>,
        /// Do not run pgBackRest's verify afterwards (physical backups; a logical backup is
        /// always read back).
        #[arg(long)]
        no_verify: bool,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// The backups in the repository and the window a restore can reach.
    #[command(
        after_help = "The window runs from the oldest backup's end to the last WAL segment the \
                      leader archived when archiving works (newest_source archived_wal), else to \
                      the newest backup's end (backup). Logical backups are listed too (type \
                      logical, from their manifests); they are not part of the window.\n\n\
                      Exit codes: 0 success; 1 no spec.backup, no stanza, or pgBackRest failed."
    )]
    List {
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Point-in-time recovery into a NEW cluster (its spec, with spec.restore_from, written
    /// beside the source's and applied; the source untouched), or of the cluster itself
    /// (--in-place).
    #[command(
        group(clap::ArgGroup::new("restore_into").required(true).args(["to_cluster", "in_place"])),
        after_help = "--to-cluster NEW: the new cluster's first member is bootstrapped by Patroni \
                      from the source's backup (pgBackRest restore from the source's repository \
                      and stanza, with archiving off), recovers to the target and promotes; its \
                      replicas clone from it. The new spec has no spec.backup: add one (its \
                      stanza is its own name) to back it up.\n\n\
                      --in-place --i-know-what-i-am-doing: a safety backup first (when pgBackRest \
                      can take one), then Patroni paused, every member stopped and removed \
                      (replicas first), the cluster's keys deleted from the DCS, the first member \
                      bootstrapped from the backup (recovery to the target, promotion onto a new \
                      timeline that archives into the same stanza), the replicas cloned from it, \
                      and the cluster's own spec applied. env: production also needs \
                      --allow-production.\n\n\
                      A target outside the recoverable window (`backup list`) is refused before \
                      anything is written or stopped.\n\n\
                      Exit codes: 0 restored and applied; 1 the target is outside the window \
                      (OUTSIDE_WINDOW), the name or file exists (EXISTS), no spec.backup or no \
                      backup (NO_BACKUP), an in-place restore that stopped after it began \
                      (RESTORE_FAILED, the hint says how to carry it on), or the apply failed."
    )]
    Restore {
        /// The new cluster's name ([a-z0-9-]).
        #[arg(long, value_name = "NEW")]
        to_cluster: Option<String>,
        /// Restore the cluster itself: its members are removed and made again from the backup.
        #[arg(long, requires = "i_know_what_i_am_doing", conflicts_with_all = ["out", "data_dir", "pg_port", "api_port", "etcd_port"])]
        in_place: bool,
        /// Confirms an in-place restore, which replaces the cluster's data.
        #[arg(long)]
        i_know_what_i_am_doing: bool,
        /// Allow an in-place restore of a cluster labelled env: production.
        #[arg(long)]
        allow_production: bool,
        /// Recover up to this time (RFC 3339, or PostgreSQL's `2026-12-02 06:50:00+00`)
        /// [default: the end of the archived WAL].
        #[arg(long, conflicts_with_all = ["target_lsn", "target_xid"])]
        target_time: Option<String>,
        /// Recover up to this WAL location (`0/3000060`).
        #[arg(long, conflicts_with = "target_xid")]
        target_lsn: Option<String>,
        /// Recover up to this transaction id.
        #[arg(long)]
        target_xid: Option<String>,
        /// The backup to start from [default: the newest that ends before the target].
        #[arg(long)]
        backup_id: Option<String>,
        /// Where to write the new spec (YAML) [default: NEW.yaml beside the source's spec].
        #[arg(long)]
        out: Option<PathBuf>,
        /// The new cluster's root directory [default: NEW beside the source's].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Member 0's PostgreSQL port [default: the source's moved up in steps of 10 until free].
        #[arg(long)]
        pg_port: Option<u16>,
        /// Member 0's Patroni REST API port [default: as --pg-port].
        #[arg(long)]
        api_port: Option<u16>,
        /// etcd's client port [default: as --pg-port].
        #[arg(long)]
        etcd_port: Option<u16>,
        /// Apply without asking for `yes` (required when stdin is not a terminal).
        #[arg(long)]
        auto_approve: bool,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Read a logical backup's dumps back whole (pg_restore) and check them against its
    /// manifest (size, SHA-256).
    #[command(
        after_help = "Runs beside the leader, as the user that runs PostgreSQL; restores \
                      nothing into any server. pgBackRest's backups are proven by \
                      `backup verify-restore`.\n\n\
                      Exit codes: 0 every dump reads back as it was written; 1 a dump is \
                      damaged (VERIFY_FAILED, each file named), no such backup (NOT_FOUND), or \
                      none yet (NO_BACKUP)."
    )]
    Verify {
        /// The logical backup (its id, from `backup list`) [default: the newest].
        #[arg(long)]
        backup_id: Option<String>,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// spec.backup.schedule as systemd timers or cron lines running `pgdba backup create`:
    /// print them (the default), install them, or remove them.
    #[command(
        after_help = "--print renders, for the local provider, a service and a timer per \
                      scheduled type (OnCalendar= translated from the cron expression) and the \
                      same jobs as /etc/cron.d lines; for the docker provider, the cron lines \
                      to run on the Docker host. --install writes the units to \
                      /etc/systemd/system and runs systemctl daemon-reload and enable --now \
                      when systemd is PID 1, else the cron.d file \
                      /etc/cron.d/pgdba-backup-<cluster> (cron must run); a file that holds \
                      its content already is left alone, and what an earlier install made for \
                      types no longer scheduled is removed. --uninstall removes it all. \
                      PGDBA_SCHEDULE_ROOT=DIR writes under DIR instead of / (systemctl is not \
                      run then); PGDBA_SCHEDULE_INIT=systemd|cron overrides the detection.\n\n\
                      Exit codes: 0 success; 1 no spec.backup (NO_BACKUP), no schedule to \
                      install (USAGE), a file that cannot be written (IO_ERROR), systemctl \
                      failed (SCHEDULE_FAILED)."
    )]
    Schedule {
        /// Print the units and cron lines (the default).
        #[arg(long, conflicts_with_all = ["install", "uninstall"])]
        print: bool,
        /// Install them (systemd timers, else /etc/cron.d).
        #[arg(long, conflicts_with = "uninstall")]
        install: bool,
        /// Remove what --install wrote for this cluster.
        #[arg(long)]
        uninstall: bool,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Restore a backup into a scratch directory beside the leader, start a throw-away
    /// PostgreSQL on it, check it (pg_amcheck, row counts against the primary), remove it.
    #[command(
        after_help = "The scratch server listens on no TCP address (a Unix socket in the scratch \
                      directory), does not archive and follows no primary; it is stopped and its \
                      directory removed whatever happened. Row counts that differ are a warning \
                      when the primary has written since the backup ended.\n\n\
                      Exit codes: 0 the restore test passed; 1 it failed (VERIFY_FAILED, the \
                      report in data), or it could not run."
    )]
    VerifyRestore {
        /// The backup to restore (its label, from `backup list`) [default: the latest].
        #[arg(long)]
        backup_id: Option<String>,
        /// Where the scratch directory is made, on the leader's machine; it needs room for
        /// the database.
        #[arg(long, default_value = "/var/tmp")]
        scratch_dir: PathBuf,
        /// The scratch server's port (only its socket's name) [default: a free one from 25432].
        #[arg(long)]
        scratch_port: Option<u16>,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Members, roles, states, timelines, lag, pending restarts, the DCS.
    #[command(after_help = "Exit codes: 0 success; 1 no such cluster, or it could not be read.")]
    Status {
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Every cluster in the state: provider, created or adopted, members, ports, subnet.
    #[command(after_help = "Exit codes: 0 success; 1 an unreadable state.")]
    List {
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Write a spec for a new cluster (PostgreSQL 15, Patroni's default timings), show its plan
    /// and apply it.
    #[command(
        after_help = "The spec is written first, never over an existing file, and stays when the \
                      apply is declined or fails: `pgdba apply -f FILE` goes on from there. \
                      local: directories under /var/lib/pgdba/NAME unless --data-dir, and unless \
                      given, the first ports from 15432 (PostgreSQL), 18008 (Patroni) and 12379 \
                      (etcd), in steps of 100, that no cluster in the state holds and nothing \
                      listens on. docker: the provider's defaults.\n\n\
                      Exit codes: 0 created; 1 an error, a refusal, or not confirmed."
    )]
    Init {
        // Where it runs, and (local) where its directories and ports are.
        #[command(flatten)]
        placement: opscluster::InitPlacement,
        /// Standbys besides the primary.
        #[arg(long, default_value_t = 2)]
        replicas: u32,
        /// The cluster's name ([a-z0-9-]).
        #[arg(long)]
        name: String,
        /// Where to write the spec [default: NAME.yaml].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Apply without asking for `yes` (required when stdin is not a terminal).
        #[arg(long)]
        auto_approve: bool,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Adopt a running Patroni cluster pgdba did not create: record it, write its spec.
    #[command(
        after_help = "Exit codes: 0 adopted; 1 a pre-flight check failed (it says which), or \
                      the name is taken."
    )]
    Connect {
        /// The REST API of any of its members (http://host:8008).
        #[arg(long)]
        patroni_url: String,
        /// The name pgdba gives it ([a-z0-9-]).
        #[arg(long)]
        name: String,
        /// Where the leader's PostgreSQL is reached, when not where Patroni says (a NAT, a
        /// proxy); the other members are reached where Patroni says.
        #[arg(long)]
        pg_host: Option<String>,
        /// The port with --pg-host [default: the one Patroni says].
        #[arg(long, requires = "pg_host")]
        pg_port: Option<u16>,
        /// The environment variable that holds the password of the superuser `postgres`, which
        /// pgdba connects as; it is kept in the 0600 secrets file beside the state.
        #[arg(long, default_value = "PGPASSWORD")]
        password_env: String,
        /// Write the spec of what was found here [default: NAME.yaml].
        #[arg(long)]
        write_spec: Option<PathBuf>,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Remove an adopted cluster from the state without touching it.
    #[command(after_help = "Exit codes: 0 forgotten; 1 no such cluster, or one pgdba created.")]
    Forget {
        /// The cluster's name.
        name: String,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
}

#[derive(Debug, Subcommand)]
pub enum FailoverCommand {
    /// Make this replica the leader now, even without a healthy leader (Patroni's failover).
    #[command(after_help = "Exit codes: 0 the target leads; 1 refused by a pre-check, or failed.")]
    Trigger {
        /// The member that should lead.
        #[arg(long)]
        target: String,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Who leads, since when (timeline), a scheduled switchover, pause, failover candidates.
    #[command(after_help = "Exit codes: 0 success; 1 the cluster could not be read.")]
    Status {
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReplicaCommand {
    /// One more replica: the spec's `replicas` goes up by one (the file is edited in place,
    /// its comments and layout kept), then plan and apply.
    #[command(
        after_help = "The new member is NAME-N, N the new count. Refused, with nothing changed, \
                      when the spec has other changes not applied yet: apply or undo them first. \
                      The spec file is put back as it was when the apply is declined or refused \
                      before any action ran; once actions ran it keeps the new count, since it \
                      then describes where the cluster is going (`pgdba plan` shows what \
                      remains).\n\n\
                      Exit codes: 0 added; 1 an error, a refusal, or not confirmed."
    )]
    Add {
        /// The cluster's spec file (it is edited).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Apply without asking for `yes` (required when stdin is not a terminal).
        #[arg(long)]
        auto_approve: bool,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// One replica fewer: the spec's `replicas` goes down by one (the file is edited in
    /// place), then plan and apply. The member removed is deleted with its data directory.
    #[command(
        after_help = "Members are numbered NAME-0 to NAME-N, and the one removed is always the \
                      highest-numbered, NAME-N (as the providers lay members out): --member or \
                      --host may name it, and naming any other member is refused. When it leads, \
                      the leader is first handed to the healthiest replica by a switchover, \
                      pre-checked and measured as `pgdba switchover` does. Refused, with nothing \
                      changed, when the spec has other changes not applied yet. The spec file is \
                      put back as it was when the apply is declined or refused before any action \
                      ran (a switchover already made stays made); once actions ran it keeps the \
                      new count.\n\n\
                      Exit codes: 0 removed; 1 an error, a refusal, or not confirmed."
    )]
    Remove {
        // The cluster's spec file (it is edited), and what its apply may destroy.
        #[command(flatten)]
        spec: replica::RemoveSpec,
        // The member to remove, if named: it must be the highest-numbered.
        #[command(flatten)]
        member: target::MemberArg,
        /// Apply without asking for `yes` (required when stdin is not a terminal).
        #[arg(long)]
        auto_approve: bool,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Make this replica the leader: a switchover to it.
    #[command(after_help = "Exit codes: 0 it leads; 1 refused by a pre-check, or failed.")]
    Promote {
        #[command(flatten)]
        member: target::MemberArg,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
}

/// `health report`'s formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Json,
    Yaml,
    Table,
    Markdown,
    Html,
}

#[derive(Debug, Subcommand)]
pub enum HealthCommand {
    /// Every check, each ok, warn or crit with its value and threshold.
    #[command(after_help = "Exit codes: 0 ok or warn; 2 crit; 1 the checks could not run.")]
    Check {
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// The checks as a report for people (Markdown or HTML).
    #[command(after_help = "Exit codes: 0 ok or warn; 2 crit; 1 the checks could not run.")]
    Report {
        #[command(flatten)]
        cluster: target::ClusterArg,
        /// Output format [default: markdown].
        #[arg(long, value_enum, default_value = "markdown")]
        format: ReportFormat,
        #[arg(short, long, action = clap::ArgAction::Count)]
        verbose: u8,
        #[command(flatten)]
        state: StateDir,
    },
    /// Answer GET /health (200 unless crit, else 503), /primary and /replica until stopped.
    #[command(after_help = "Exit codes: 0 stopped by a signal; 1 cannot listen, or an error.")]
    Serve {
        /// Where to listen (127.0.0.1:8080).
        #[arg(long)]
        listen: String,
        /// How often the checks run, in seconds.
        #[arg(long, default_value_t = 5)]
        interval: u64,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// PGTune's recommendations for a workload (this machine's memory and CPUs unless given).
    #[command(after_help = "Exit codes: 0 success; 1 inputs PGTune refuses.")]
    Tune {
        #[command(flatten)]
        tune: config::TuneArgs,
        #[command(flatten)]
        output: Output,
    },
    /// pg_settings of every member: value, unit, source, context, pending restart.
    #[command(after_help = "Exit codes: 0 success; 1 no member could be read.")]
    Show {
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        member: target::MemberArg,
        /// Only these parameters (repeatable).
        #[arg(long = "param")]
        params: Vec<String>,
        /// Only parameters not at their default.
        #[arg(long)]
        changed: bool,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Live value vs the spec vs PGTune's recommendation, per parameter.
    #[command(after_help = "Exit codes: 0 success; 1 the server could not be read.")]
    Diff {
        #[command(flatten)]
        cluster: target::ClusterArg,
        /// PGTune's workload to compare with [default: mixed].
        #[arg(long, value_enum, default_value = "mixed")]
        workload: crate::ops::tune::Workload,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Write parameters into the spec (from a file, or PGTune's recommendations), then plan
    /// and apply.
    #[command(after_help = "Exit codes: 0 applied; 1 an error, a refusal, or not confirmed.")]
    Apply {
        /// The cluster's spec file (its `postgres.parameters` are edited).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Parameters to write: a YAML or JSON object of name: value, or the JSON output of
        /// `config tune`.
        #[arg(long, conflicts_with = "workload")]
        from: Option<PathBuf>,
        /// Or PGTune's recommendations for this workload (the members' memory and CPUs
        /// unless given).
        #[command(flatten)]
        tune: config::TuneApplyArgs,
        /// Apply without asking for `yes` (required when stdin is not a terminal).
        #[arg(long)]
        auto_approve: bool,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueryCommand {
    /// The statements whose mean time is over the threshold (pg_stat_statements).
    #[command(after_help = "Exit codes: 0 success; 1 pg_stat_statements is missing, or an error.")]
    SlowLog {
        /// Mean execution time above which a statement is slow (1s, 250ms).
        #[arg(long, default_value = "1s")]
        threshold: String,
        /// At most this many statements, slowest first.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// EXPLAIN (ANALYZE, BUFFERS) a statement inside a transaction that is rolled back.
    #[command(after_help = "Exit codes: 0 success; 1 refused, or the statement failed.")]
    Analyze {
        /// One statement.
        #[arg(long)]
        sql: String,
        /// The database to run it in [default: the cluster's or PGDBA_PG_DATABASE].
        #[arg(long)]
        database: Option<String>,
        /// Allow statements other than one SELECT, INSERT, UPDATE, DELETE or WITH (they are
        /// still rolled back).
        #[arg(long)]
        allow_writes: bool,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Suggest an index for a table from its scans and its heaviest statements (nothing is
    /// executed).
    #[command(after_help = "Exit codes: 0 success; 1 no such table, or an error.")]
    IndexSuggest {
        /// The table (schema.table, or table on the search path).
        #[arg(long)]
        table: String,
        /// The database it is in [default: the cluster's or PGDBA_PG_DATABASE].
        #[arg(long)]
        database: Option<String>,
        #[command(flatten)]
        cluster: target::ClusterArg,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Every cluster in the state dir.
    #[command(after_help = "Exit codes: 0 success; 1 an error (an unreadable state).")]
    List {
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// One cluster's state: members, ports, DCS endpoints, the lock.
    #[command(after_help = "Exit codes: 0 success; 1 no such cluster, or an error.")]
    Show {
        /// The cluster's name (its metadata.name).
        name: String,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
    /// Remove a cluster's lock file (only with --force). A run that died has already released
    /// its lock: this is for a lock file a person must clear, or a live run to be overridden.
    #[command(after_help = "Exit codes: 0 unlocked (or not locked); 1 refused, or an error.")]
    Unlock {
        /// The cluster's name (its metadata.name).
        name: String,
        /// Required: breaking a lock can let two runs change the cluster at once.
        #[arg(long)]
        force: bool,
        /// Also when a live process on this machine holds it (that run stops at its next state
        /// write).
        #[arg(long, requires = "force")]
        even_if_alive: bool,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: StateDir,
    },
}

impl Cli {
    /// The subcommand's own flags, else those given before it, else the defaults.
    pub fn resolve(&self) -> Global {
        let (format, verbose, state_dir, parallelism) = self.command.flags();
        Global {
            format: format.or(self.format),
            verbose: verbose.max(self.verbose),
            state_dir: state_dir
                .or_else(|| self.state_dir.clone())
                .or_else(|| std::env::var_os("PGDBA_STATE_DIR").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            parallelism: parallelism
                .or(self.parallelism)
                .unwrap_or(DEFAULT_PARALLELISM)
                .max(1),
        }
    }
}

impl Command {
    /// (format, verbosity, state dir, parallelism) as given after the subcommand.
    fn flags(&self) -> (Option<Format>, u8, Option<PathBuf>, Option<usize>) {
        let basic = |o: &Output| (o.format.map(Format::from), o.verbose);
        let ((format, verbose), state, parallelism) = match self {
            Command::Validate { output, .. } => (basic(output), None, None),
            Command::Plan {
                output,
                state,
                parallelism,
                ..
            } => (
                (output.format, output.verbose),
                Some(state),
                Some(parallelism),
            ),
            Command::Apply {
                output,
                state,
                parallelism,
                ..
            }
            | Command::Drift {
                output,
                state,
                parallelism,
                ..
            } => (basic(output), Some(state), Some(parallelism)),
            Command::Destroy { output, state, .. }
            | Command::State(
                StateCommand::List { output, state }
                | StateCommand::Show { output, state, .. }
                | StateCommand::Unlock { output, state, .. },
            )
            | Command::Switchover { output, state, .. }
            | Command::Cluster(
                ClusterCommand::Status { output, state, .. }
                | ClusterCommand::List { output, state }
                | ClusterCommand::Init { output, state, .. }
                | ClusterCommand::Connect { output, state, .. }
                | ClusterCommand::Forget { output, state, .. },
            )
            | Command::Failover(
                FailoverCommand::Trigger { output, state, .. }
                | FailoverCommand::Status { output, state, .. },
            )
            | Command::Replica(
                ReplicaCommand::Add { output, state, .. }
                | ReplicaCommand::Remove { output, state, .. }
                | ReplicaCommand::Promote { output, state, .. },
            )
            | Command::Health(
                HealthCommand::Check { output, state, .. }
                | HealthCommand::Serve { output, state, .. },
            )
            | Command::Config(
                ConfigCommand::Show { output, state, .. }
                | ConfigCommand::Diff { output, state, .. }
                | ConfigCommand::Apply { output, state, .. },
            )
            | Command::Query(
                QueryCommand::SlowLog { output, state, .. }
                | QueryCommand::Analyze { output, state, .. }
                | QueryCommand::IndexSuggest { output, state, .. },
            )
            | Command::Backup(
                BackupCommand::Create { output, state, .. }
                | BackupCommand::List { output, state, .. }
                | BackupCommand::VerifyRestore { output, state, .. }
                | BackupCommand::Verify { output, state, .. }
                | BackupCommand::Schedule { output, state, .. }
                | BackupCommand::Restore { output, state, .. },
            )
            | Command::Chaos(
                ChaosCommand::Drill(
                    DrillCommand::Failover { output, state, .. }
                    | DrillCommand::Switchover { output, state, .. }
                    | DrillCommand::Partition { output, state, .. },
                )
                | ChaosCommand::KillNode { output, state, .. }
                | ChaosCommand::Partition { output, state, .. }
                | ChaosCommand::Heal { output, state, .. }
                | ChaosCommand::Corrupt { output, state, .. }
                | ChaosCommand::Freeze { output, state, .. }
                | ChaosCommand::Thaw { output, state, .. },
            ) => (basic(output), Some(state), None),
            Command::Chaos(ChaosCommand::Report { output, state, .. }) => {
                ((output.format, output.verbose), Some(state), None)
            }
            Command::Health(HealthCommand::Report {
                format,
                verbose,
                state,
                ..
            }) => (
                (
                    Some(match format {
                        ReportFormat::Json => Format::Json,
                        ReportFormat::Yaml => Format::Yaml,
                        ReportFormat::Table => Format::Table,
                        ReportFormat::Markdown => Format::Markdown,
                        ReportFormat::Html => Format::Html,
                    }),
                    *verbose,
                ),
                Some(state),
                None,
            ),
            Command::Config(ConfigCommand::Tune { output, .. }) => (basic(output), None, None),
        };
        (
            format,
            verbose,
            state.and_then(|s| s.state_dir.clone()),
            parallelism.and_then(|p| p.parallelism),
        )
    }
}

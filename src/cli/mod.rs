//! The command line: parsing (clap) here, the dispatch in `commands`, each command in its own
//! file (`specs`, `plan`, `apply`, `destroy`, `drift`, `state`; `cluster` holds what plan and
//! apply share).
//!
//! As in ripgrep, the parsed arguments ("low args": each subcommand with only the flags that
//! apply to it) are resolved once into what the program runs with ([`Global`], the "high
//! args"). The flags the contract calls global (`--format`, `--state-dir`, `-v`,
//! `--parallelism`) are also accepted before the subcommand, as earlier versions did; a flag
//! given after it wins.

mod apply;
mod cluster;
pub mod commands;
mod destroy;
mod drift;
mod plan;
mod specs;
mod state;

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
                  changes pending (plan --detailed-exitcode) or drift found (drift)."
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

/// `--format` and `-v` for `plan`, which also prints Markdown and DOT.
#[derive(Debug, Args)]
pub struct PlanOutput {
    /// Output format (default: table on a terminal, json otherwise); markdown for a pull
    /// request comment, dot for Graphviz.
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
            ) => (basic(output), Some(state), None),
        };
        (
            format,
            verbose,
            state.and_then(|s| s.state_dir.clone()),
            parallelism.and_then(|p| p.parallelism),
        )
    }
}

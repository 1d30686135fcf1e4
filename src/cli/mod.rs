//! The command line: parsing (clap) here, resolving and running in `commands`.

pub mod commands;
mod drift;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "pgdba",
    version,
    about = "Declarative desired state for PostgreSQL HA clusters (Patroni, etcd)"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Output format (default: table on a terminal, json otherwise).
    #[arg(long, global = true, value_enum)]
    pub format: Option<Format>,
    /// Where pgdba keeps its state.
    #[arg(
        long,
        global = true,
        env = "PGDBA_STATE_DIR",
        default_value = "./state"
    )]
    pub state_dir: PathBuf,
    /// More logging on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// How many actions (or clusters) run at once.
    #[arg(long, global = true, default_value_t = 10)]
    pub parallelism: usize,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and validate specs; every problem is reported with file:line:column.
    Validate {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Observe, diff and show the actions that would make the cluster match the spec.
    Plan {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Save the plan for `pgdba apply FILE`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Exit 0 when there is nothing to do, 2 when changes are pending.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Plan and execute (asks for `yes` on a terminal), or execute a saved plan.
    Apply {
        /// A plan saved by `pgdba plan --out`.
        plan_file: Option<PathBuf>,
        #[arg(short = 'f', long = "file", conflicts_with = "plan_file")]
        file: Option<PathBuf>,
        #[arg(long)]
        auto_approve: bool,
        /// Allow actions that destroy data (dropping or re-creating a database).
        #[arg(long)]
        allow_data_loss: bool,
    },
    /// Read-only: what changed outside pgdba since the last apply, classified (expected,
    /// benign, dangerous). Exit 0: none; 2: drift found; 1: error.
    Drift {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// What counts as drift for the exit code: any non-expected drift, or only dangerous.
        #[arg(long, value_enum, default_value = "any")]
        fail_on: crate::drift::FailOn,
    },
    /// Remove everything pgdba created for a cluster: members, DCS and data.
    Destroy {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Required: destroying deletes the cluster's data.
        #[arg(long)]
        confirm: bool,
    },
    /// Inspect the state, break a stuck lock.
    #[command(subcommand)]
    State(StateCommand),
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Every cluster in the state dir.
    List,
    /// One cluster's state: members, ports, DCS endpoints.
    Show { name: String },
    /// Remove a cluster's lock (only with --force).
    Unlock {
        name: String,
        #[arg(long)]
        force: bool,
    },
}

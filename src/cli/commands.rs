//! Running commands: from parsed arguments to an `Outcome` (data for the JSON envelope, text
//! for people, an exit code), and `Failure`, the CLI edge's error. Each command runs in its own
//! file beside this one; all IO of the CLI edge lives in them, and the engine never prints.

use serde_json::Value;

use super::apply::{Allow, apply_saved, apply_spec};
use super::destroy::destroy;
use super::plan::plan_cmd;
use super::specs::validate;
use super::state::state_cmd;
use super::{Command, Global, StateCommand};
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

/// A refusal or failure with a stable code (CONTRACT.md), and data to go with it.
#[derive(Debug)]
pub struct Failure {
    pub code: &'static str,
    pub message: String,
    pub hint: Option<String>,
    pub data: Value,
}

impl Failure {
    pub(super) fn new(code: &'static str, message: impl Into<String>) -> Failure {
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
            StateError::Locked { .. } => Failure::new("STATE_LOCKED", e.to_string()).hint(
                "wait for the other run to finish (a run that dies releases the lock at once)",
            ),
            StateError::LockLost { .. } => Failure::new("LOCK_LOST", crate::error_chain(&e)),
            _ => Failure::new("STATE_ERROR", crate::error_chain(&e)),
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
                code: self.code.to_owned(),
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
    }
}

/// Which formats each command can print.
pub fn supports(c: &Command, f: Format) -> bool {
    match f {
        Format::Json | Format::Yaml | Format::Table => true,
        Format::Dot => matches!(c, Command::Plan { .. }),
        Format::Markdown => matches!(c, Command::Plan { .. }),
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
            "USAGE",
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
    };
    result.unwrap_or_else(Failure::into_outcome)
}

//! Output: the JSON envelope of every command, the human views, and apply's reporters.
//! Results go to stdout; progress and logs to stderr.

pub mod markdown;
pub mod plan;
pub mod progress;

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Yaml,
    Table,
    Markdown,
    Dot,
    /// Only `health report` prints it (its own `--format` offers it).
    #[value(skip)]
    Html,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
            Format::Table => "table",
            Format::Markdown => "markdown",
            Format::Dot => "dot",
            Format::Html => "html",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    pub hint: Option<String>,
}

/// The one JSON object a command prints with `--format json`.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope {
    pub success: bool,
    pub timestamp: String,
    pub command: String,
    pub data: Value,
    pub error: Option<ErrorBody>,
}

impl Envelope {
    pub fn new(command: &str, data: Value, error: Option<ErrorBody>) -> Envelope {
        Envelope {
            success: error.is_none(),
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            command: command.to_owned(),
            data,
            error,
        }
    }
}

/// Rows under a header, each column as wide as its widest cell, two spaces apart.
pub fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        l.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

//! The spec: parsing (YAML or KDL, with positions), validation with diagnostics, the JSON Schema.
//!
//! One pass reports every problem of a file: YAML (`yaml`) or KDL (`kdl`, chosen by the `.kdl`
//! extension) is parsed into a JSON value that remembers where each key and value stands
//! (`positions`), checked against the JSON Schema generated from
//! `model` (`schema`, the single source of truth for shape, types and ranges) and against
//! PostgreSQL's GUC catalog and Patroni's rules (`semantic`); only a spec with no problem is
//! deserialized into [`model::ClusterSpec`].
//!
//! Architecture Invariant: `spec/` reads files only in [`load_file`] and [`discover`], and
//! `edit` (the commands that change a spec file: `replica add/remove`, `config apply`,
//! `cluster init`) writes them, each edit checked with the real loader first; all else is pure.
//! It never panics on any input.

pub mod cron;
mod diagnostic;
pub mod edit;
mod kdl;
pub mod model;
mod positions;
mod schema;
mod semantic;
mod yaml;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use diagnostic::Diagnostic;
pub use schema::json_schema;

use diagnostic::{Mark, Pos, Source, bare};

/// A spec file, loaded and valid.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedSpec {
    pub path: PathBuf,
    pub spec: model::ClusterSpec,
    /// SHA-256 of the file's bytes, lower-case hex.
    pub source_hash: String,
}

/// Reads, parses and validates one spec file. An unreadable file is one diagnostic at 1:1.
pub fn load_file(path: &Path) -> Result<LoadedSpec, Vec<Diagnostic>> {
    let label = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| vec![bare(&label, format!("cannot read the spec file: {e}"))])?;
    let spec = load_str(&label, &bytes)?;
    Ok(LoadedSpec {
        path: path.to_path_buf(),
        spec,
        source_hash: hex::encode(Sha256::digest(&bytes)),
    })
}

/// Parses and validates a spec from its bytes; `file_label` names it in diagnostics.
/// On error, every problem found, sorted by position.
pub fn load_str(file_label: &str, text: &[u8]) -> Result<model::ClusterSpec, Vec<Diagnostic>> {
    let text = match std::str::from_utf8(text) {
        Ok(t) => t,
        Err(e) => return Err(vec![invalid_utf8(file_label, text, e.valid_up_to())]),
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let source = Source::new(file_label, text);
    if let Some((at, c)) = first_control_char(text) {
        return Err(vec![source.diag(
            at,
            format!(
                "control character U+{:04X} is not allowed in a spec (is this a binary file?)",
                u32::from(c)
            ),
        )]);
    }
    let parsed = match Syntax::of(file_label) {
        Syntax::Yaml => yaml::parse(text).map_err(|e| vec![source.diag(e.pos, e.message)]),
        Syntax::Kdl => kdl::parse(text).map_err(|errors| {
            errors
                .into_iter()
                .map(|e| {
                    let mark = Mark {
                        width: e.width,
                        label: e.label.as_deref(),
                    };
                    source.diag_marked(e.pos, &mark, e.message)
                })
                .collect()
        }),
    };
    let (doc, positions) = match parsed? {
        Some(parsed) => parsed,
        None => return Err(vec![bare(file_label, "empty spec")]),
    };
    let mut problems = schema::check(&doc, &positions);
    for (at, message) in semantic::check(&doc, &positions) {
        // A value the schema already rejected needs no second message.
        if !problems.iter().any(|(p, _)| *p == at) {
            problems.push((at, message));
        }
    }
    if problems.is_empty() {
        match serde_json::from_value::<model::ClusterSpec>(doc) {
            Ok(mut spec) => {
                spec.derive_backup_parameters();
                return Ok(spec);
            }
            Err(e) => problems.push((
                Pos::START,
                format!("internal error: the spec passed the schema but not the model: {e}"),
            )),
        }
    }
    problems.sort_by_key(|p| p.0);
    problems.dedup();
    Err(problems
        .into_iter()
        .map(|(at, message)| source.diag(at, message))
        .collect())
}

/// The two spellings of a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    Yaml,
    Kdl,
}

impl Syntax {
    /// By the file's extension: `.kdl` (any case) is KDL, anything else YAML.
    fn of(file_label: &str) -> Syntax {
        match Path::new(file_label).extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("kdl") => Syntax::Kdl,
            _ => Syntax::Yaml,
        }
    }

    /// The extensions of spec files, as [`discover`] finds them.
    fn is_spec_extension(extension: &str) -> bool {
        ["yaml", "yml", "kdl"]
            .iter()
            .any(|e| extension.eq_ignore_ascii_case(e))
    }
}

/// The spec files a path names: a file is itself; a directory is every `*.yaml`, `*.yml` and
/// `*.kdl` directly in it (not recursive, hidden files skipped), sorted. No spec is an error.
pub fn discover(path: &Path) -> Result<Vec<PathBuf>, Diagnostic> {
    let label = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| bare(&label, format!("cannot read: {e}")))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| bare(&label, format!("cannot list the directory: {e}")))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| bare(&label, format!("cannot list the directory: {e}")))?;
        let p = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_spec = !name.starts_with('.')
            && p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(Syntax::is_spec_extension);
        if is_spec && p.is_file() {
            found.push(p);
        }
    }
    if found.is_empty() {
        return Err(bare(
            &label,
            "no spec files (*.yaml, *.yml, *.kdl) in this directory",
        ));
    }
    found.sort();
    Ok(found)
}

/// A diagnostic at the first byte that is not UTF-8.
fn invalid_utf8(label: &str, bytes: &[u8], valid_up_to: usize) -> Diagnostic {
    let valid = String::from_utf8_lossy(&bytes[..valid_up_to]);
    let at = diagnostic::end_pos(&valid);
    let bad = bytes.get(valid_up_to).copied().unwrap_or_default();
    let lossy = String::from_utf8_lossy(bytes);
    Source::new(label, &lossy).diag(
        at,
        format!(
            "invalid UTF-8 (byte 0x{bad:02X}): a spec must be UTF-8 text (is this a binary file?)"
        ),
    )
}

/// The first character YAML does not allow in a stream, nor KDL in a document (C0/C1 controls
/// other than tab, line feed, carriage return and NEL), with its position.
fn first_control_char(text: &str) -> Option<(Pos, char)> {
    let (i, c) = text
        .char_indices()
        .find(|(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{85}'))?;
    Some((diagnostic::end_pos(&text[..i]), c))
}

/// `valid_until` as seconds since the epoch (`f64::INFINITY` for `infinity`), or `None` when
/// it does not parse.
pub fn valid_until_epoch(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("infinity") {
        return Some(f64::INFINITY);
    }
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return Some(dt.timestamp() as f64);
    }
    let date = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp() as f64)
}

/// A CIDR (`10.0.0.0/8`, `::1/128`, or a bare address meaning a single host) as PostgreSQL's
/// `pg_hba_file_rules` shows it: (address, netmask).
pub fn parse_cidr(text: &str) -> Option<(String, String)> {
    use std::net::IpAddr;
    let (addr, bits) = match text.split_once('/') {
        Some((a, b)) => (a.parse::<IpAddr>().ok()?, Some(b.parse::<u8>().ok()?)),
        None => (text.parse::<IpAddr>().ok()?, None),
    };
    let mask = match addr {
        IpAddr::V4(_) => {
            let bits = bits.unwrap_or(32);
            if bits > 32 {
                return None;
            }
            let m = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            IpAddr::V4(std::net::Ipv4Addr::from(m))
        }
        IpAddr::V6(_) => {
            let bits = bits.unwrap_or(128);
            if bits > 128 {
                return None;
            }
            let m = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            IpAddr::V6(std::net::Ipv6Addr::from(m))
        }
    };
    Some((addr.to_string(), mask.to_string()))
}

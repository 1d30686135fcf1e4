//! Editing a spec file the way a person would: one value set, every other byte kept (comments,
//! order, quoting, indentation), in either spelling.
//!
//! [`set_scalar`] works on the text. It finds where the value stands with the loaders' own
//! positions (YAML) or the `kdl` crate's spans (KDL), replaces just that value's text, or, when
//! the key is absent, inserts it at the end of its mapping with the indentation of its
//! siblings (creating the mappings on the way, `spec.postgres.parameters` included). Then it
//! parses the result again and refuses it unless the document is exactly the old one with that
//! value set: an edit never changes anything else, whatever the layout.
//!
//! [`set_in_file`] and [`create_file`] are the only places `spec/` writes a file: they check the
//! result with the real loader ([`super::load_str`]) before writing, and write atomically
//! (a temp file in the same directory, fsynced, renamed over the file, keeping its mode).
//!
//! What is not edited (each refused with the file, line and column): a value written as a
//! block scalar (`|`, `>`), keys under a list (a path names mapping keys only), and layouts
//! where the edit would change more than the one value.
//!
//! [`NewSpec`] is the commented spec `pgdba cluster init` writes, in either spelling.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ::kdl::{KdlDocument, KdlEntry, KdlNode};
use serde_json::{Map, Value};

use super::diagnostic::{Diagnostic, LineIndex, Pos};
use super::model::ClusterSpec;
use super::positions::{Positions, escape_segment};

/// The two spellings of a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelling {
    Yaml,
    Kdl,
}

impl Spelling {
    /// By the file's extension, as the loader decides: `.kdl` is KDL, anything else YAML.
    pub fn of_path(path: &Path) -> Spelling {
        match super::Syntax::of(&path.display().to_string()) {
            super::Syntax::Yaml => Spelling::Yaml,
            super::Syntax::Kdl => Spelling::Kdl,
        }
    }
}

/// Why a spec could not be edited.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// Something at a place in the text (`file` once known).
    #[error("{}{message}", place(file.as_deref(), *line, *column))]
    At {
        file: Option<String>,
        line: usize,
        column: usize,
        message: String,
    },
    /// What was asked is not a single value of a spec.
    #[error("{0}")]
    Request(String),
    /// The edited spec does not pass the loader.
    #[error("{file}: with this change the spec would not be valid (the file is left as it was):\n{}",
        diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid {
        file: String,
        diagnostics: Vec<Diagnostic>,
    },
    #[error("{} already exists; pgdba does not overwrite it", path.display())]
    Exists { path: PathBuf },
    #[error("{} changed since pgdba read it; it is left as it is now", path.display())]
    Changed { path: PathBuf },
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn place(file: Option<&str>, line: usize, column: usize) -> String {
    match file {
        Some(f) => format!("{f}:{line}:{column}: "),
        None => format!("line {line}, column {column}: "),
    }
}

impl EditError {
    /// The same error, naming the file it is about.
    fn in_file(self, label: &str) -> EditError {
        match self {
            EditError::At {
                file: None,
                line,
                column,
                message,
            } => EditError::At {
                file: Some(label.to_owned()),
                line,
                column,
                message,
            },
            other => other,
        }
    }
}

fn at(pos: Pos, message: impl Into<String>) -> EditError {
    EditError::At {
        file: None,
        line: pos.line,
        column: pos.column,
        message: message.into(),
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> EditError {
    let path = path.to_path_buf();
    move |source| EditError::Io {
        action,
        path,
        source,
    }
}

/// Sets the value at `path` (mapping keys from the root: `["spec", "replicas"]`) in the text of
/// a spec, changing only that value's text, or inserting the key (and the mappings above it)
/// when it is absent. The result parses to the old document with that one value set, or this
/// is an error; a value already equal leaves the text as it is.
pub fn set_scalar(
    source: &str,
    spelling: Spelling,
    path: &[&str],
    value: &Value,
) -> Result<String, EditError> {
    if path.is_empty() {
        return Err(EditError::Request(
            "no key given: the value of a whole spec cannot be set".to_owned(),
        ));
    }
    if value.is_array() || value.is_object() {
        return Err(EditError::Request(format!(
            "`{}`: only a single value (a string, number, boolean or null) can be set, not {value}",
            dotted(path)
        )));
    }
    let value = normalize(value);
    let (bom, text) = match source.strip_prefix('\u{feff}') {
        Some(rest) => ("\u{feff}", rest),
        None => ("", source),
    };
    let (doc, positions) = parse(spelling, text)?;
    let expected = with_value(&doc, &positions, path, &value)?;
    if expected == doc {
        return Ok(source.to_owned());
    }
    let edited = match spelling {
        Spelling::Yaml => yaml_edit(text, &doc, &positions, path, &value)?,
        Spelling::Kdl => kdl_edit(text, path, &value)?,
    };
    let unverified = || {
        at(
            positions.key_or_value(&pointer(path)),
            format!(
                "pgdba cannot set `{}` in this file's layout without changing what else it says; \
                 set it by hand",
                dotted(path)
            ),
        )
    };
    match parse(spelling, &edited) {
        Ok((got, _)) if got == expected => Ok(format!("{bom}{edited}")),
        _ => Err(unverified()),
    }
}

/// A spec file with one value set: its text before and after, and the spec it holds after.
/// [`prepare`] makes one without writing; [`Edited::write`] writes it.
#[derive(Debug, Clone)]
pub struct Edited {
    pub path: PathBuf,
    pub before: String,
    pub after: String,
    pub spec: ClusterSpec,
}

impl Edited {
    /// Does the edit change the file?
    pub fn changed(&self) -> bool {
        self.before != self.after
    }

    /// The edited spec as the loader returns a file's, before it is written (to plan it).
    pub fn loaded(&self) -> super::LoadedSpec {
        super::LoadedSpec {
            path: self.path.clone(),
            spec: self.spec.clone(),
            source_hash: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                self.after.as_bytes(),
            )),
        }
    }

    /// Writes the edited text, if the file still holds what it was read with (else
    /// [`EditError::Changed`], and the file is left alone).
    pub fn write(&self) -> Result<(), EditError> {
        if !self.changed() {
            return Ok(());
        }
        self.replace(&self.before, &self.after)
    }

    /// Puts the file back as it was before the edit, if it still holds what the edit wrote
    /// (else [`EditError::Changed`]: someone changed it since, and it is left alone).
    pub fn restore(&self) -> Result<(), EditError> {
        if !self.changed() {
            return Ok(());
        }
        self.replace(&self.after, &self.before)
    }

    fn replace(&self, expected: &str, with: &str) -> Result<(), EditError> {
        let now = fs::read(&self.path).map_err(io("read", &self.path))?;
        if now != expected.as_bytes() {
            return Err(EditError::Changed {
                path: self.path.clone(),
            });
        }
        write_replacing(&self.path, with)
    }
}

/// Reads a spec file and sets one value in its text ([`set_scalar`]), checked with the real
/// loader. Nothing is written: [`Edited::write`] does.
pub fn prepare(path: &Path, keys: &[&str], value: &Value) -> Result<Edited, EditError> {
    prepare_many(path, &[(keys, value.clone())])
}

/// [`prepare`] for several values at once: each set in turn in the text, the result checked
/// once with the real loader. Nothing is written.
pub fn prepare_many(path: &Path, edits: &[(&[&str], Value)]) -> Result<Edited, EditError> {
    let label = path.display().to_string();
    let bytes = fs::read(path).map_err(io("read", path))?;
    let before = String::from_utf8(bytes).map_err(|e| {
        let valid =
            String::from_utf8_lossy(&e.as_bytes()[..e.utf8_error().valid_up_to()]).into_owned();
        at(
            super::diagnostic::end_pos(&valid),
            "not UTF-8 text: a spec must be UTF-8",
        )
        .in_file(&label)
    })?;
    let mut after = before.clone();
    for (keys, value) in edits {
        after = set_scalar(&after, Spelling::of_path(path), keys, value)
            .map_err(|e| e.in_file(&label))?;
    }
    let spec =
        super::load_str(&label, after.as_bytes()).map_err(|diagnostics| EditError::Invalid {
            file: label.clone(),
            diagnostics,
        })?;
    Ok(Edited {
        path: path.to_path_buf(),
        before,
        after,
        spec,
    })
}

/// Sets one value in a spec file: [`prepare`], then [`Edited::write`] (atomically, keeping the
/// file's mode, and its owner when pgdba may).
pub fn set_in_file(path: &Path, keys: &[&str], value: &Value) -> Result<Edited, EditError> {
    let edited = prepare(path, keys, value)?;
    edited.write()?;
    Ok(edited)
}

/// Writes a new spec file with `text`, after checking it with the real loader; an existing
/// file is never replaced ([`EditError::Exists`]).
pub fn create_file(path: &Path, text: &str) -> Result<ClusterSpec, EditError> {
    let label = path.display().to_string();
    let spec =
        super::load_str(&label, text.as_bytes()).map_err(|diagnostics| EditError::Invalid {
            file: label.clone(),
            diagnostics,
        })?;
    if fs::symlink_metadata(path).is_ok() {
        return Err(EditError::Exists {
            path: path.to_path_buf(),
        });
    }
    let dir = parent_dir(path);
    let (temp, file) = Temp::with_text(path, 0o666, text)?;
    drop(file);
    match fs::hard_link(&temp.path, path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(EditError::Exists {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(io("create", path)(e)),
    }
    drop(temp);
    sync_dir(&dir);
    Ok(spec)
}

/// Replaces the file at `path` (the file a symlink points to) with `text`: a temp file beside
/// it, fsynced, with its mode and owner, renamed over it; then the directory fsynced.
fn write_replacing(path: &Path, text: &str) -> Result<(), EditError> {
    let real = fs::canonicalize(path).map_err(io("resolve", path))?;
    let meta = fs::metadata(&real).map_err(io("read", &real))?;
    let (temp, file) = Temp::with_text(&real, 0o600, text)?;
    file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(io("set the mode of", &temp.path))?;
    // Only root may give a file away; anyone else writes their own file, as an editor does.
    let _ = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()));
    file.sync_all().map_err(io("write", &temp.path))?;
    drop(file);
    fs::rename(&temp.path, &real).map_err(io("replace", &real))?;
    sync_dir(&parent_dir(&real));
    Ok(())
}

/// A temp file beside a target, removed on drop (a no-op once renamed into place).
struct Temp {
    path: PathBuf,
}

impl Temp {
    /// A new file beside `target` (never an existing one, never through a symlink) holding
    /// `text`, fsynced; with its open handle.
    fn with_text(target: &Path, mode: u32, text: &str) -> Result<(Temp, fs::File), EditError> {
        let name = target
            .file_name()
            .map_or_else(|| "spec".into(), |n| n.to_string_lossy().into_owned());
        let path = parent_dir(target).join(format!(
            ".{name}.pgdba-{}-{:08x}.tmp",
            std::process::id(),
            rand::random::<u32>()
        ));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(io("create", &path))?;
        let temp = Temp { path };
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io("write", &temp.path))?;
        Ok((temp, file))
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Best effort: the rename is durable once its directory is.
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A new cluster's spec, as `pgdba cluster init` writes it: commented, in either spelling,
/// Patroni's timings at the model's defaults.
#[derive(Debug, Clone)]
pub struct NewSpec<'a> {
    pub name: &'a str,
    pub provider: NewProvider<'a>,
    pub replicas: u32,
    pub postgres_version: u32,
}

/// Where a new cluster runs.
#[derive(Debug, Clone)]
pub enum NewProvider<'a> {
    Local {
        data_dir: &'a Path,
        pg_port: u16,
        api_port: u16,
        etcd_port: u16,
    },
    Docker,
}

/// Columns the comments of a new spec line up at: YAML's and KDL's (deeper blocks).
const COMMENT_AT: (usize, usize) = (34, 42);

fn commented(code: String, comment: &str, marker: &str) -> String {
    let column = if marker == "#" {
        COMMENT_AT.0
    } else {
        COMMENT_AT.1
    };
    let pad = column.saturating_sub(code.chars().count()).max(1);
    format!("{code}{}{marker} {comment}\n", " ".repeat(pad))
}

impl NewSpec<'_> {
    pub fn text(&self, spelling: Spelling) -> String {
        let patroni = super::model::PatroniSettings::default();
        let (v, n) = (self.postgres_version, self.replicas);
        let replicas = if n == 1 { "replica" } else { "replicas" };
        let runs = match self.provider {
            NewProvider::Local { .. } => "all as processes on this machine (the `local` provider)",
            NewProvider::Docker => "all in Docker containers (the `docker` provider)",
        };
        let c = if spelling == Spelling::Kdl { "//" } else { "#" };
        let mut out = format!(
            "{c} Cluster {name}: PostgreSQL {v}, one primary and {n} streaming {replicas}, managed \
             by\n{c} Patroni on its own etcd, {runs}.\n{c} Written by `pgdba cluster init`. After \
             an edit, `pgdba plan -f` this file shows\n{c} what it does and `pgdba apply -f` makes \
             it so; `pgdba replica add` and `replica remove`\n{c} change `replicas`.\n",
            name = self.name,
        );
        let s = |text: &str| Value::from(text);
        match spelling {
            Spelling::Yaml => {
                out.push_str(&format!(
                    "apiVersion: pgdba/v1\nkind: Cluster\nmetadata:\n  name: {}\nspec:\n  provider:\n",
                    yaml_scalar(&s(self.name), None, false)
                ));
                match self.provider {
                    NewProvider::Local {
                        data_dir,
                        pg_port,
                        api_port,
                        etcd_port,
                    } => {
                        let dir = yaml_scalar(&s(&data_dir.display().to_string()), None, false);
                        out.push_str("    local:\n");
                        out.push_str(&commented(
                            format!("      data_dir: {dir}"),
                            "etcd, each member's config, logs and PGDATA",
                            c,
                        ));
                        out.push_str(&commented(
                            format!("      pg_port: {pg_port}"),
                            &format!("member i's PostgreSQL listens on {pg_port} + i"),
                            c,
                        ));
                        out.push_str(&commented(
                            format!("      api_port: {api_port}"),
                            &format!("member i's Patroni REST API on {api_port} + i"),
                            c,
                        ));
                        out.push_str(&commented(
                            format!("      etcd_port: {etcd_port}"),
                            &format!(
                                "etcd's client port (its peer port: {})",
                                u32::from(etcd_port) + 1
                            ),
                            c,
                        ));
                    }
                    NewProvider::Docker => out.push_str(&commented(
                        "    docker: {}".to_owned(),
                        &format!(
                            "network pgdba-{}, a subnet Docker picks, image pgdba/node:{v}",
                            self.name
                        ),
                        c,
                    )),
                }
                out.push_str(&format!("  postgres:\n    version: {v}\n"));
                out.push_str(&commented(
                    format!("  replicas: {n}"),
                    "streaming standbys besides the primary",
                    c,
                ));
                out.push_str(&format!(
                    "  patroni:\n    ttl: {}\n    loop_wait: {}\n    retry_timeout: {}\n",
                    patroni.ttl, patroni.loop_wait, patroni.retry_timeout
                ));
            }
            Spelling::Kdl => {
                out.push_str(&format!(
                    "apiVersion \"pgdba/v1\"\nkind Cluster\nmetadata {{\n    name {}\n}}\nspec {{\n    provider {{\n",
                    kdl_scalar(&s(self.name), None)
                ));
                match self.provider {
                    NewProvider::Local {
                        data_dir,
                        pg_port,
                        api_port,
                        etcd_port,
                    } => {
                        let dir = kdl_scalar(&s(&data_dir.display().to_string()), None);
                        out.push_str("        local {\n");
                        out.push_str(&commented(
                            format!("            data_dir {dir}"),
                            "etcd, each member's config, logs and PGDATA",
                            c,
                        ));
                        out.push_str(&commented(
                            format!("            pg_port {pg_port}"),
                            &format!("member i's PostgreSQL listens on {pg_port} + i"),
                            c,
                        ));
                        out.push_str(&commented(
                            format!("            api_port {api_port}"),
                            &format!("member i's Patroni REST API on {api_port} + i"),
                            c,
                        ));
                        out.push_str(&commented(
                            format!("            etcd_port {etcd_port}"),
                            &format!(
                                "etcd's client port (its peer port: {})",
                                u32::from(etcd_port) + 1
                            ),
                            c,
                        ));
                        out.push_str("        }\n");
                    }
                    NewProvider::Docker => out.push_str(&commented(
                        "        docker { }".to_owned(),
                        &format!(
                            "network pgdba-{}, a subnet Docker picks, image pgdba/node:{v}",
                            self.name
                        ),
                        c,
                    )),
                }
                out.push_str(&format!(
                    "    }}\n    postgres {{\n        version {v}\n    }}\n"
                ));
                out.push_str(&commented(
                    format!("    replicas {n}"),
                    "streaming standbys besides the primary",
                    c,
                ));
                out.push_str(&format!(
                    "    patroni {{\n        ttl {}\n        loop_wait {}\n        retry_timeout {}\n    }}\n}}\n",
                    patroni.ttl, patroni.loop_wait, patroni.retry_timeout
                ));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Shared: the document, the expected result, pointers.

fn parse(spelling: Spelling, text: &str) -> Result<(Value, Positions), EditError> {
    let parsed = match spelling {
        Spelling::Yaml => super::yaml::parse(text).map_err(|e| at(e.pos, e.message))?,
        Spelling::Kdl => super::kdl::parse(text).map_err(|errors| match errors.first() {
            Some(e) => at(e.pos, e.message.clone()),
            None => at(Pos::START, "invalid KDL"),
        })?,
    };
    parsed.ok_or_else(|| at(Pos::START, "the spec is empty"))
}

/// JSON pointer of a path of keys.
fn pointer(path: &[&str]) -> String {
    path.iter()
        .map(|s| format!("/{}", escape_segment(s)))
        .collect()
}

fn dotted(path: &[&str]) -> String {
    path.join(".")
}

/// A float with an integral value is an integer, as both loaders read `2.0`.
fn normalize(value: &Value) -> Value {
    match value.as_f64() {
        Some(f) if value.is_f64() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
            Value::from(f as i64)
        }
        _ => value.clone(),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// `doc` with `value` at `path` (mappings created on the way; an empty one becomes a mapping).
fn with_value(
    doc: &Value,
    positions: &Positions,
    path: &[&str],
    value: &Value,
) -> Result<Value, EditError> {
    let mut out = doc.clone();
    let mut cur = &mut out;
    for (i, seg) in path.iter().enumerate() {
        if cur.is_null() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else {
            let here = &path[..i];
            return Err(at(
                positions.value_or_key(&pointer(here)),
                format!(
                    "`{}` is {}, not a mapping: `{seg}` cannot be set in it",
                    if here.is_empty() {
                        "the document".to_owned()
                    } else {
                        dotted(here)
                    },
                    kind_of(cur)
                ),
            ));
        };
        if i + 1 == path.len() {
            if let Some(old) = map.get(*seg)
                && (old.is_array() || old.is_object())
            {
                return Err(at(
                    positions.value_or_key(&pointer(path)),
                    format!("`{}` is {}, not a single value", dotted(path), kind_of(old)),
                ));
            }
            map.insert((*seg).to_owned(), value.clone());
            break;
        }
        cur = map.entry((*seg).to_owned()).or_insert(Value::Null);
    }
    Ok(out)
}

/// How many leading keys of `path` the document has.
fn existing_depth(doc: &Value, path: &[&str]) -> usize {
    (0..path.len())
        .take_while(|&i| doc.pointer(&pointer(&path[..=i])).is_some())
        .count()
}

fn newline_of(text: &str) -> &'static str {
    if text.contains("\r\n") { "\r\n" } else { "\n" }
}

/// Byte offsets of line starts, lines as the loaders count them (`\r\n`, `\n`, a lone `\r`).
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Lines<'a> {
        let b = text.as_bytes();
        let mut starts = vec![0];
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'\r' if b.get(i + 1) == Some(&b'\n') => {
                    i += 2;
                    starts.push(i);
                }
                b'\r' | b'\n' => {
                    i += 1;
                    starts.push(i);
                }
                _ => i += 1,
            }
        }
        Lines { text, starts }
    }

    fn count(&self) -> usize {
        self.starts.len()
    }

    /// Line `n` (1-based) without its line break.
    fn line(&self, n: usize) -> &'a str {
        let Some(&start) = self.starts.get(n.wrapping_sub(1)) else {
            return "";
        };
        let end = self.starts.get(n).copied().unwrap_or(self.text.len());
        self.text[start..end].trim_end_matches(['\r', '\n'])
    }

    /// The offset just past line `n`'s line break (the end of the text for the last line).
    fn after(&self, n: usize) -> usize {
        self.starts.get(n).copied().unwrap_or(self.text.len())
    }

    /// The offset of the end of line `n`, before its line break.
    fn end(&self, n: usize) -> usize {
        self.starts.get(n.wrapping_sub(1)).copied().unwrap_or(0) + self.line(n).len()
    }

    /// The byte offset of a position (column in characters).
    fn offset(&self, pos: Pos) -> Option<usize> {
        let start = *self.starts.get(pos.line.checked_sub(1)?)?;
        let line = self.line(pos.line);
        let col = pos.column.checked_sub(1)?;
        match line.char_indices().nth(col) {
            Some((i, _)) => Some(start + i),
            None if col == line.chars().count() => Some(start + line.len()),
            None => None,
        }
    }

    /// The line holding `offset` (1-based).
    fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).max(1)
    }
}

fn indentation(line: &str) -> &str {
    &line[..line.len() - line.trim_start_matches([' ', '\t']).len()]
}

fn splice(text: &str, from: usize, to: usize, with: &str) -> String {
    let mut out = String::with_capacity(text.len() + with.len());
    out.push_str(&text[..from]);
    out.push_str(with);
    out.push_str(&text[to..]);
    out
}

// ---------------------------------------------------------------------------------------------
// YAML.

fn yaml_edit(
    text: &str,
    doc: &Value,
    positions: &Positions,
    path: &[&str],
    value: &Value,
) -> Result<String, EditError> {
    let lines = Lines::new(text);
    let offset_of = |pos: Pos| {
        lines
            .offset(pos)
            .ok_or_else(|| at(pos, "internal: a position outside the text"))
    };
    let depth = existing_depth(doc, path);
    if depth == path.len() {
        // Replace the value's text.
        let ptr = pointer(path);
        let parent = pointer(&path[..path.len() - 1]);
        let flow = yaml_is_flow(text, &lines, positions, &parent);
        let (Some(vpos), Some(kpos)) = (positions.value(&ptr), positions.key(&ptr)) else {
            return Err(at(
                positions.key_or_value(&ptr),
                "internal: no position for this key",
            ));
        };
        if vpos == kpos {
            // `key:` with nothing after it.
            let colon = yaml_colon_after_key(text, offset_of(kpos)?)
                .ok_or_else(|| at(kpos, "cannot find the `:` after this key"))?;
            return Ok(splice(
                text,
                colon + 1,
                colon + 1,
                &format!(" {}", yaml_scalar(value, None, flow)),
            ));
        }
        let start = offset_of(vpos)?;
        // A block scalar stands at its first line of text, after its `|` or `>` header.
        let key = offset_of(kpos)?;
        let header = yaml_colon_after_key(text, key)
            .and_then(|c| text.get(c + 1..start))
            .map(|h| h.trim_start());
        if header.is_some_and(|h| h.starts_with(['|', '>'])) {
            return Err(at(vpos, BLOCK_SCALAR));
        }
        let end = yaml_scalar_end(text, start, flow).map_err(|m| at(vpos, m))?;
        let old = &text[start..end];
        return Ok(splice(
            text,
            start,
            end,
            &yaml_scalar(value, Some(old), flow),
        ));
    }
    let parent_path = &path[..depth];
    let parent = pointer(parent_path);
    let rest = &path[depth..];
    let nl = newline_of(text);
    let step = yaml_step(doc, positions, &parent);
    let Some(ppos) = positions.value(&parent) else {
        return Err(at(Pos::START, "internal: no position for the mapping"));
    };
    match doc.pointer(&parent) {
        Some(Value::Object(_)) if yaml_is_flow(text, &lines, positions, &parent) => {
            let open = offset_of(ppos)?;
            let close = yaml_flow_end(text, open)
                .ok_or_else(|| at(ppos, "cannot find the end of this flow mapping (`{ … }`)"))?;
            let inner = &text[open + 1..close];
            let entry = yaml_flow_entry(rest, value);
            if inner.trim().is_empty() {
                return Ok(splice(text, open + 1, close, &entry));
            }
            let last = open + 1 + inner.trim_end().len();
            let sep = if text[..last].ends_with(',') {
                " "
            } else {
                ", "
            };
            Ok(splice(text, last, last, &format!("{sep}{entry}")))
        }
        Some(Value::Object(_)) => {
            // A block mapping: after its last line, with its keys' indentation.
            let indent = ppos.column.saturating_sub(1);
            let prefix = if parent.is_empty() {
                String::new()
            } else {
                format!("{parent}/")
            };
            let last = positions
                .keys
                .iter()
                .chain(positions.values.iter())
                .filter(|(p, _)| p.starts_with(&prefix) || **p == parent)
                .map(|(_, pos)| pos.line)
                .max()
                .unwrap_or(ppos.line);
            let mut after = last;
            for n in last + 1..=lines.count() {
                let line = lines.line(n);
                let body = line.trim_start_matches([' ', '\t']);
                if body.is_empty() || body.starts_with('#') {
                    continue;
                }
                if line.len() - body.len() > indent {
                    after = n;
                    continue;
                }
                break;
            }
            let at_offset = lines.after(after);
            let mut insert = String::new();
            if at_offset == text.len() && !text.is_empty() && !text.ends_with(['\n', '\r']) {
                insert.push_str(nl);
            }
            insert.push_str(&yaml_block(rest, value, indent, step, nl));
            Ok(splice(text, at_offset, at_offset, &insert))
        }
        Some(Value::Null) => {
            // `key:` or `key: ~`: its mapping starts here.
            let grandparent = pointer(&parent_path[..parent_path.len().saturating_sub(1)]);
            let flow = yaml_is_flow(text, &lines, positions, &grandparent);
            let Some(kpos) = positions.key(&parent) else {
                return Err(at(ppos, "internal: no position for this key"));
            };
            let (from, to) = if ppos == kpos {
                let colon = yaml_colon_after_key(text, offset_of(kpos)?)
                    .ok_or_else(|| at(kpos, "cannot find the `:` after this key"))?;
                (colon + 1, colon + 1)
            } else {
                let start = offset_of(ppos)?;
                let end = yaml_scalar_end(text, start, flow).map_err(|m| at(ppos, m))?;
                (start, end)
            };
            if flow {
                let with = format!(
                    "{}{{{}}}",
                    if from == to { " " } else { "" },
                    yaml_flow_entry(rest, value)
                );
                return Ok(splice(text, from, to, &with));
            }
            let line = lines.line_of(from);
            let eol = lines.end(line);
            let block = yaml_block(rest, value, kpos.column - 1 + step, step, nl);
            let block = block.strip_suffix(nl).unwrap_or(&block);
            let head = text[..from].trim_end_matches([' ', '\t']);
            Ok(format!(
                "{head}{}{nl}{block}{}",
                &text[to..eol],
                &text[eol..]
            ))
        }
        _ => Err(at(ppos, "internal: not a mapping")),
    }
}

/// Is the mapping at `ptr` written in flow style (`{a: 1}`)? A block mapping stands at its
/// first key, a flow mapping at its `{`.
fn yaml_is_flow(text: &str, lines: &Lines<'_>, positions: &Positions, ptr: &str) -> bool {
    positions
        .value(ptr)
        .and_then(|p| lines.offset(p))
        .is_some_and(|o| text[o..].starts_with('{'))
}

/// Columns one level of block mappings indents by: the mapping's own, else the first one the
/// document shows, else 2.
fn yaml_step(doc: &Value, positions: &Positions, parent: &str) -> usize {
    let step_of = |ptr: &str| -> Option<usize> {
        let (k, v) = (positions.key(ptr)?, positions.value(ptr)?);
        let nonempty = !doc.pointer(ptr).and_then(Value::as_object)?.is_empty();
        (nonempty && v.line > k.line && v.column > k.column).then(|| v.column - k.column)
    };
    if let Some(s) = step_of(parent) {
        return s;
    }
    let mut found: Vec<(Pos, usize)> = positions
        .keys
        .iter()
        .filter_map(|(p, k)| step_of(p).map(|s| (*k, s)))
        .collect();
    found.sort();
    found.first().map_or(2, |(_, s)| *s)
}

const BLOCK_SCALAR: &str =
    "this value is a block scalar (`|` or `>`); pgdba edits only values on one line";

/// The offset just past the scalar starting at `start`: quoted, or plain up to a comment, the
/// end of the line, or (in a flow collection) a `,`, `]` or `}`.
fn yaml_scalar_end(text: &str, start: usize, flow: bool) -> Result<usize, String> {
    let b = text.as_bytes();
    match b.get(start) {
        Some(b'\'') => {
            let mut i = start + 1;
            while i < b.len() {
                if b[i] == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    return Ok(i + 1);
                }
                i += 1;
            }
            Err("unterminated quoted string".to_owned())
        }
        Some(b'"') => {
            let mut i = start + 1;
            while i < b.len() {
                match b[i] {
                    b'\\' => i += 2,
                    b'"' => return Ok(i + 1),
                    _ => i += 1,
                }
            }
            Err("unterminated quoted string".to_owned())
        }
        Some(b'|' | b'>') => Err(BLOCK_SCALAR.to_owned()),
        _ => {
            let mut i = start;
            while i < b.len() {
                let c = b[i];
                let comment = c == b'#' && i > start && matches!(b[i - 1], b' ' | b'\t');
                if c == b'\n' || c == b'\r' || comment || (flow && matches!(c, b',' | b']' | b'}'))
                {
                    break;
                }
                i += 1;
            }
            Ok(start + text[start..i].trim_end_matches([' ', '\t']).len())
        }
    }
}

/// The offset of the `:` that ends the key starting at `start`.
fn yaml_colon_after_key(text: &str, start: usize) -> Option<usize> {
    let end = match text.as_bytes().get(start) {
        Some(b'\'' | b'"') => yaml_scalar_end(text, start, true).ok()?,
        _ => {
            let rest = &text[start..];
            let i = rest.char_indices().find(|&(i, c)| {
                c == ':'
                    && rest[i + 1..]
                        .chars()
                        .next()
                        .is_none_or(|n| n.is_whitespace() || matches!(n, ',' | '}' | ']'))
            })?;
            return Some(start + i.0);
        }
    };
    let skipped = text[end..].len() - text[end..].trim_start_matches([' ', '\t']).len();
    let colon = end + skipped;
    text[colon..].starts_with(':').then_some(colon)
}

/// The offset of the `}` that closes the flow mapping opening at `open`.
fn yaml_flow_end(text: &str, open: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return (b[i] == b'}').then_some(i);
                }
            }
            b'\'' | b'"' => {
                i = yaml_scalar_end(text, i, true).ok()?;
                continue;
            }
            b'#' if i > 0 && matches!(b[i - 1], b' ' | b'\t' | b'\n' | b'\r') => {
                while i < b.len() && !matches!(b[i], b'\n' | b'\r') {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// `rest` as block mapping lines, the first at `indent` columns, each ending with `nl`.
fn yaml_block(rest: &[&str], value: &Value, indent: usize, step: usize, nl: &str) -> String {
    let mut out = String::new();
    for (i, seg) in rest.iter().enumerate() {
        let pad = " ".repeat(indent + i * step);
        if i + 1 == rest.len() {
            out.push_str(&format!(
                "{pad}{}: {}{nl}",
                yaml_key(seg),
                yaml_scalar(value, None, false)
            ));
        } else {
            out.push_str(&format!("{pad}{}:{nl}", yaml_key(seg)));
        }
    }
    out
}

/// `rest` as one flow mapping entry: `a: {b: 1}`.
fn yaml_flow_entry(rest: &[&str], value: &Value) -> String {
    match rest {
        [] => String::new(),
        [last] => format!("{}: {}", yaml_key(last), yaml_scalar(value, None, true)),
        [first, more @ ..] => format!("{}: {{{}}}", yaml_key(first), yaml_flow_entry(more, value)),
    }
}

fn yaml_key(key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !key.starts_with(['-', '.']);
    if plain {
        key.to_owned()
    } else {
        Value::from(key).to_string()
    }
}

/// A scalar as YAML text: a string keeps the quoting of the value it replaces (`old`), and is
/// plain only where it reads back as the same string.
fn yaml_scalar(value: &Value, old: Option<&str>, flow: bool) -> String {
    let Value::String(s) = value else {
        return match value {
            Value::Null => "null".to_owned(),
            other => other.to_string(),
        };
    };
    let json = || Value::from(s.as_str()).to_string();
    match old.and_then(|o| o.chars().next()) {
        Some('\'') if !s.chars().any(char::is_control) => {
            return format!("'{}'", s.replace('\'', "''"));
        }
        Some('"') => return json(),
        _ => {}
    }
    let plain_chars = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '+'))
        && !s.starts_with(['-', '.', '+']);
    let reads_back = |doc: String| matches!(super::yaml::parse(&doc), Ok(Some((v, _))) if v.get("k") == Some(value));
    if plain_chars
        && reads_back(format!("k: {s}\n"))
        && (!flow || reads_back(format!("{{k: {s}}}")))
    {
        s.clone()
    } else {
        json()
    }
}

// ---------------------------------------------------------------------------------------------
// KDL.

/// Stack of the thread that runs the `kdl` parser (as `super::kdl` does: its recursive descent
/// needs more than a default thread's stack on deep input). Reserved, not committed.
const KDL_STACK: usize = 512 * 1024 * 1024;

fn kdl_document(text: &str) -> Result<KdlDocument, EditError> {
    let parsed = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("kdl-edit".to_owned())
            .stack_size(KDL_STACK)
            .spawn_scoped(scope, || KdlDocument::parse_v2(text).ok())
            .ok()
            .and_then(|h| h.join().ok())
            .flatten()
    });
    // `super::kdl::parse` accepted this text already; this cannot fail but on a resource limit.
    parsed.ok_or_else(|| at(Pos::START, "the KDL parser failed on this file"))
}

fn kdl_edit(text: &str, path: &[&str], value: &Value) -> Result<String, EditError> {
    let doc = kdl_document(text)?;
    let index = LineIndex::new(text);
    let pos = |offset: usize| index.pos(offset);
    let mut nodes: &[KdlNode] = doc.nodes();
    let mut owner: Option<&KdlNode> = None;
    for (i, seg) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        if let Some(o) = owner
            && let Some(prop) = o
                .entries()
                .iter()
                .find(|e| e.name().is_some_and(|n| n.value() == *seg))
        {
            if !last {
                return Err(at(
                    pos(prop.span().offset()),
                    format!("`{}` is a single value, not a mapping", dotted(&path[..=i])),
                ));
            }
            let (start, end) = kdl_value_span(text, prop)
                .ok_or_else(|| at(pos(prop.span().offset()), "cannot find this value's text"))?;
            let new = kdl_scalar(value, Some(&text[start..end]));
            return Ok(splice(text, start, end, &new));
        }
        match nodes.iter().find(|n| n.name().value() == *seg) {
            Some(node) if last => return kdl_set_node(text, node, value, &pos),
            Some(node) => {
                let items = node
                    .children()
                    .is_some_and(|c| c.nodes().iter().any(|n| n.name().value() == "-"));
                if node.entries().iter().any(|e| e.name().is_none()) || items {
                    return Err(at(
                        pos(node.name().span().offset()),
                        format!(
                            "`{}` is a value or a list, not a mapping: `{}` cannot be set in it",
                            dotted(&path[..=i]),
                            path[i + 1]
                        ),
                    ));
                }
                owner = Some(node);
                nodes = node.children().map_or(&[][..], KdlDocument::nodes);
            }
            None => return kdl_insert(text, owner, &path[i..], value, &pos),
        }
    }
    Err(EditError::Request("internal: an empty path".to_owned()))
}

/// The byte range of an entry's value (after its name, `=` and any comment between).
fn kdl_value_span(text: &str, entry: &KdlEntry) -> Option<(usize, usize)> {
    let span = entry.span();
    let end = span.offset() + span.len();
    let repr = &entry.format()?.value_repr;
    let start = end.checked_sub(repr.len())?;
    (start >= span.offset() && text.get(start..end) == Some(repr.as_str())).then_some((start, end))
}

/// `node` is the last key: its one argument is replaced, or one is added to a bare node.
fn kdl_set_node(
    text: &str,
    node: &KdlNode,
    value: &Value,
    pos: &dyn Fn(usize) -> Pos,
) -> Result<String, EditError> {
    let name = node.name().span();
    match (node.entries(), node.children()) {
        ([arg], None) if arg.name().is_none() => {
            let (start, end) = kdl_value_span(text, arg)
                .ok_or_else(|| at(pos(arg.span().offset()), "cannot find this value's text"))?;
            Ok(splice(
                text,
                start,
                end,
                &kdl_scalar(value, Some(&text[start..end])),
            ))
        }
        ([], None) => {
            let end = name.offset() + name.len();
            Ok(splice(
                text,
                end,
                end,
                &format!(" {}", kdl_scalar(value, None)),
            ))
        }
        _ => Err(at(
            pos(name.offset()),
            format!(
                "`{}` holds a list or a mapping, not a single value",
                node.name().value()
            ),
        )),
    }
}

/// Adds `rest` (keys not in the document yet) under `owner` (the root when `None`).
fn kdl_insert(
    text: &str,
    owner: Option<&KdlNode>,
    rest: &[&str],
    value: &Value,
    pos: &dyn Fn(usize) -> Pos,
) -> Result<String, EditError> {
    let nl = newline_of(text);
    let lines = Lines::new(text);
    let step = kdl_step(&lines);
    let Some(owner) = owner else {
        // A top-level node, at the end of the document.
        let mut insert = String::new();
        if !text.is_empty() && !text.ends_with(['\n', '\r']) {
            insert.push_str(nl);
        }
        insert.push_str(&kdl_block(rest, value, "", &step, nl));
        return Ok(format!("{text}{insert}"));
    };
    let span = owner.span();
    let owner_line = lines.line(lines.line_of(span.offset()));
    let owner_indent = indentation(owner_line);
    let Some(children) = owner.children() else {
        let end = owner
            .entries()
            .last()
            .map_or(owner.name().span(), KdlEntry::span);
        let end = end.offset() + end.len();
        let with = match rest {
            [only] => format!(" {}={}", kdl_name(only), kdl_scalar(value, None)),
            _ => format!(
                " {{{nl}{}{owner_indent}}}",
                kdl_block(rest, value, &format!("{owner_indent}{step}"), &step, nl)
            ),
        };
        return Ok(splice(text, end, end, &with));
    };
    // Its block: before the closing brace.
    let close = span.offset() + span.len() - 1;
    if text.as_bytes().get(close) != Some(&b'}') {
        return Err(at(
            pos(owner.name().span().offset()),
            "cannot find the `}` that closes this block",
        ));
    }
    let close_line = lines.line_of(close);
    let before_close = &text[lines.after(close_line - 1).min(close)..close];
    if close_line > lines.line_of(span.offset()) && before_close.trim().is_empty() {
        // `}` on a line of its own: a new line before it, indented as the last child.
        let indent = children
            .nodes()
            .last()
            .map(|n| indentation(lines.line(lines.line_of(n.span().offset()))).to_owned())
            .unwrap_or_else(|| format!("{owner_indent}{step}"));
        let at_offset = lines.after(close_line - 1);
        return Ok(splice(
            text,
            at_offset,
            at_offset,
            &kdl_block(rest, value, &indent, &step, nl),
        ));
    }
    // A block on one line: `{ a 1; b 2 }`, `{ }`.
    let last = text[..close].trim_end().len();
    let inline = kdl_inline(rest, value);
    Ok(match text.as_bytes().get(last.wrapping_sub(1)) {
        Some(b'{') => splice(text, last, close, &format!(" {inline} ")),
        Some(b';') => splice(text, last, last, &format!(" {inline};")),
        _ => splice(text, last, last, &format!("; {inline}")),
    })
}

/// The indentation one level of blocks adds: the first block the document shows, else four
/// spaces.
fn kdl_step(lines: &Lines<'_>) -> String {
    for n in 1..lines.count() {
        let line = lines.line(n);
        let body = line.trim_start_matches([' ', '\t']);
        if !body.trim_end().ends_with('{') || body.starts_with("//") {
            continue;
        }
        let next = (n + 1..=lines.count())
            .map(|m| lines.line(m))
            .find(|l| !l.trim().is_empty());
        let (outer, inner) = (indentation(line), next.map(indentation).unwrap_or_default());
        if let Some(step) = inner.strip_prefix(outer)
            && !step.is_empty()
        {
            return step.to_owned();
        }
    }
    "    ".to_owned()
}

/// `rest` as lines of nodes, the first at `indent`, each ending with `nl`.
fn kdl_block(rest: &[&str], value: &Value, indent: &str, step: &str, nl: &str) -> String {
    match rest {
        [] => String::new(),
        [last] => format!("{indent}{} {}{nl}", kdl_name(last), kdl_scalar(value, None)),
        [first, more @ ..] => format!(
            "{indent}{} {{{nl}{}{indent}}}{nl}",
            kdl_name(first),
            kdl_block(more, value, &format!("{indent}{step}"), step, nl)
        ),
    }
}

/// `rest` as nodes on one line: `a { b 1 }`.
fn kdl_inline(rest: &[&str], value: &Value) -> String {
    match rest {
        [] => String::new(),
        [last] => format!("{} {}", kdl_name(last), kdl_scalar(value, None)),
        [first, more @ ..] => format!("{} {{ {} }}", kdl_name(first), kdl_inline(more, value)),
    }
}

/// A node or property name: bare where KDL reads it back as the same name, else quoted.
fn kdl_name(name: &str) -> String {
    if kdl_bare_ok(name) {
        name.to_owned()
    } else {
        kdl_quoted(name)
    }
}

/// A bare identifier KDL reads as this string.
fn kdl_bare_ok(s: &str) -> bool {
    let simple = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'))
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && !matches!(s, "true" | "false" | "null" | "inf" | "-inf" | "nan" | "-");
    simple
        && !s
            .trim_start_matches(['-', '+', '.'])
            .starts_with(|c: char| c.is_ascii_digit())
}

/// A scalar as KDL text; a string replacing a bare one (`old`) stays bare where it can.
fn kdl_scalar(value: &Value, old: Option<&str>) -> String {
    match value {
        Value::Null => "#null".to_owned(),
        Value::Bool(b) => format!("#{b}"),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let was_bare = old.is_some_and(|o| !o.starts_with(['"', '#']));
            if was_bare && kdl_bare_ok(s) {
                s.clone()
            } else {
                kdl_quoted(s)
            }
        }
        other => other.to_string(),
    }
}

fn kdl_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn yaml(text: &str, path: &[&str], value: Value) -> String {
        set_scalar(text, Spelling::Yaml, path, &value)
            .unwrap_or_else(|e| panic!("{path:?} in {text:?}: {e}"))
    }

    fn kdl(text: &str, path: &[&str], value: Value) -> String {
        set_scalar(text, Spelling::Kdl, path, &value)
            .unwrap_or_else(|e| panic!("{path:?} in {text:?}: {e}"))
    }

    const YAML: &str = "\
# The demo cluster.   (a comment at the top)
apiVersion: pgdba/v1
kind: Cluster
metadata:
   name: demo        # three spaces of indentation here
   labels: {env: dev}
spec:
    provider:
        local:
            data_dir: /var/lib/pgdba/demo   # etcd, configs, logs
            pg_port: 15432
    postgres:
        version: 15
        parameters:
            work_mem: '4MB'     # quoted on purpose
            max_connections: 100
    # replicas: 5   (an old value, commented out)
    replicas: 2     # standbys
    patroni: {ttl: 30, loop_wait: 10, retry_timeout: 10}

# trailing comment
";

    #[test]
    fn yaml_replaces_only_the_value() {
        let out = yaml(YAML, &["spec", "replicas"], json!(3));
        assert_eq!(
            out,
            YAML.replace("replicas: 2     # standbys", "replicas: 3     # standbys")
        );
        let out = yaml(
            YAML,
            &["spec", "postgres", "parameters", "work_mem"],
            json!("8MB"),
        );
        assert_eq!(out, YAML.replace("'4MB'", "'8MB'"), "the quoting is kept");
        let out = yaml(
            YAML,
            &["spec", "provider", "local", "pg_port"],
            json!(25432),
        );
        assert_eq!(out, YAML.replace("15432", "25432"));
        let out = yaml(YAML, &["metadata", "name"], json!("other"));
        assert_eq!(
            out,
            YAML.replace("name: demo        #", "name: other        #")
        );
    }

    #[test]
    fn yaml_flow_mappings_are_edited_in_place() {
        let out = yaml(YAML, &["spec", "patroni", "loop_wait"], json!(5));
        assert_eq!(out, YAML.replace("loop_wait: 10", "loop_wait: 5"));
        let out = yaml(YAML, &["metadata", "labels", "env"], json!("test"));
        assert_eq!(out, YAML.replace("{env: dev}", "{env: test}"));
        let out = yaml(YAML, &["metadata", "labels", "team"], json!("db"));
        assert_eq!(out, YAML.replace("{env: dev}", "{env: dev, team: db}"));
        let out = yaml(
            "a:\n  b: {}\n  c: [1, {x: 2}]\n",
            &["a", "b", "k", "l"],
            json!(1),
        );
        assert_eq!(out, "a:\n  b: {k: {l: 1}}\n  c: [1, {x: 2}]\n");
        let out = yaml("a: {b: 1, c: [1, 2], }\n", &["a", "d"], json!(true));
        assert_eq!(out, "a: {b: 1, c: [1, 2], d: true }\n");
    }

    #[test]
    fn yaml_inserts_with_the_siblings_indentation() {
        let out = yaml(
            YAML,
            &["spec", "postgres", "parameters", "shared_buffers"],
            json!("128MB"),
        );
        assert_eq!(
            out,
            YAML.replace(
                "            max_connections: 100\n",
                "            max_connections: 100\n            shared_buffers: 128MB\n"
            )
        );
        // A mapping that does not exist yet, under one whose last key holds a mapping.
        let out = yaml(
            YAML,
            &["spec", "provider", "local", "etcd_port"],
            json!(12379),
        );
        assert_eq!(
            out,
            YAML.replace(
                "            pg_port: 15432\n",
                "            pg_port: 15432\n            etcd_port: 12379\n"
            )
        );
        let out = yaml(YAML, &["spec", "pooler", "pgbouncer", "port"], json!(6432));
        assert_eq!(
            out,
            YAML.replace(
                "retry_timeout: 10}\n",
                "retry_timeout: 10}\n    pooler:\n        pgbouncer:\n            port: 6432\n"
            )
        );
        // At the top level, after the last key (its comments stay where they are).
        let out = yaml(YAML, &["zzz"], json!(1));
        assert_eq!(
            out,
            YAML.replace("retry_timeout: 10}\n", "retry_timeout: 10}\nzzz: 1\n")
        );
    }

    #[test]
    fn yaml_creates_parameters_under_postgres() {
        let text = "spec:\n  postgres:\n    version: 15\n  replicas: 1\n";
        let out = yaml(
            text,
            &["spec", "postgres", "parameters", "work_mem"],
            json!("4MB"),
        );
        assert_eq!(
            out,
            "spec:\n  postgres:\n    version: 15\n    parameters:\n      work_mem: 4MB\n  replicas: 1\n"
        );
        // A key with nothing after it, or an explicit null, becomes the mapping.
        let text = "spec:\n  postgres:   # to fill in\n  replicas: 1\n";
        let out = yaml(text, &["spec", "postgres", "version"], json!(17));
        assert_eq!(
            out,
            "spec:\n  postgres:   # to fill in\n    version: 17\n  replicas: 1\n"
        );
        let text = "spec:\n  postgres: ~\n  replicas: 1\n";
        let out = yaml(text, &["spec", "postgres", "version"], json!(17));
        assert_eq!(out, "spec:\n  postgres:\n    version: 17\n  replicas: 1\n");
        let text = "spec:\n  replicas:\n";
        assert_eq!(
            yaml(text, &["spec", "replicas"], json!(2)),
            "spec:\n  replicas: 2\n"
        );
    }

    #[test]
    fn yaml_strings_are_quoted_only_when_they_must_be() {
        let base = "spec:\n  p:\n    a: x\n";
        for (v, written) in [
            (json!("128MB"), "128MB"),
            (json!("on"), "on"),
            (json!("100"), "\"100\""),
            (json!("true"), "\"true\""),
            (json!("a: b"), "\"a: b\""),
            (json!("x # y"), "\"x # y\""),
            (json!(""), "\"\""),
            (json!("it's"), "\"it's\""),
            (json!(0.9), "0.9"),
            (json!(false), "false"),
            (json!(null), "null"),
        ] {
            let out = yaml(base, &["spec", "p", "a"], v.clone());
            assert_eq!(out, format!("spec:\n  p:\n    a: {written}\n"), "{v}");
        }
        assert_eq!(
            yaml("a: 'x'\n", &["a"], json!("it's")),
            "a: 'it''s'\n",
            "single quotes stay single"
        );
        assert_eq!(yaml("a: \"x\"\n", &["a"], json!("y")), "a: \"y\"\n");
        assert_eq!(yaml("a: 1\n", &["a"], json!(2.0)), "a: 2\n");
    }

    #[test]
    fn yaml_keeps_crlf_and_a_missing_final_newline() {
        let out = yaml("a:\r\n  b: 1\r\n", &["a", "c"], json!(2));
        assert_eq!(out, "a:\r\n  b: 1\r\n  c: 2\r\n");
        let out = yaml("a:\n  b: 1", &["a", "c"], json!(2));
        assert_eq!(out, "a:\n  b: 1\n  c: 2\n");
        let out = yaml("\u{feff}a: 1\n", &["a"], json!(2));
        assert_eq!(out, "\u{feff}a: 2\n");
    }

    #[test]
    fn yaml_lists_and_block_scalars() {
        // Under a list item, a key is added with the item's indentation.
        let text = "spec:\n  roles:\n  - name: app\n    login: true\n  replicas: 1\n";
        let out = yaml(text, &["spec", "replicas"], json!(2));
        assert_eq!(out, text.replace("replicas: 1", "replicas: 2"));
        let out = yaml(text, &["spec", "zz"], json!(1));
        assert_eq!(out, format!("{text}  zz: 1\n"));
        // After a block scalar, its lines stay whole.
        let text = "a:\n  note: |\n    line one\n    line two\n\nb: 1\n";
        let out = yaml(text, &["a", "c"], json!(1));
        assert_eq!(
            out,
            "a:\n  note: |\n    line one\n    line two\n  c: 1\n\nb: 1\n"
        );
        let e = set_scalar(text, Spelling::Yaml, &["a", "note"], &json!("x")).unwrap_err();
        assert!(
            e.to_string()
                .contains("line 3, column 5: this value is a block scalar"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_place() {
        let e =
            set_scalar(YAML, Spelling::Yaml, &["spec", "replicas", "x"], &json!(1)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 18, column 15: `spec.replicas` is a number, not a mapping: `x` cannot be set in it"
        );
        let e = set_scalar(YAML, Spelling::Yaml, &["spec", "postgres"], &json!(1)).unwrap_err();
        assert!(
            e.to_string().contains("is a mapping, not a single value"),
            "{e}"
        );
        let e = set_scalar(YAML, Spelling::Yaml, &["spec"], &json!([1])).unwrap_err();
        assert!(e.to_string().contains("only a single value"), "{e}");
        let e = set_scalar("a: [\n", Spelling::Yaml, &["a"], &json!(1)).unwrap_err();
        assert!(
            e.to_string().starts_with("line 2, column 1: invalid YAML"),
            "{e}"
        );
        let e = e.in_file("demo.yaml");
        assert!(
            e.to_string().starts_with("demo.yaml:2:1: invalid YAML"),
            "{e}"
        );
    }

    #[test]
    fn an_equal_value_leaves_the_text_alone() {
        assert_eq!(yaml(YAML, &["spec", "replicas"], json!(2)), YAML);
        assert_eq!(yaml(YAML, &["spec", "replicas"], json!(2.0)), YAML);
    }

    const KDL: &str = "\
// The demo cluster.
apiVersion \"pgdba/v1\"
kind Cluster
metadata {
  name demo   // two spaces here
  labels env=dev
}
spec {
  provider {
    local {
      data_dir \"/var/lib/pgdba/demo\"  // etcd, configs, logs
      pg_port 15432
    }
  }
  postgres {
    version 15
    parameters {
      work_mem \"4MB\"
    }
  }
  /- replicas 5  // an old value, commented out
  replicas 2  // standbys
  patroni ttl=30 loop_wait=10 retry_timeout=10
  pooler { }
}
";

    #[test]
    fn kdl_replaces_only_the_value() {
        let out = kdl(KDL, &["spec", "replicas"], json!(3));
        assert_eq!(out, KDL.replace("replicas 2  //", "replicas 3  //"));
        let out = kdl(KDL, &["spec", "patroni", "loop_wait"], json!(5));
        assert_eq!(out, KDL.replace("loop_wait=10", "loop_wait=5"));
        let out = kdl(
            KDL,
            &["spec", "postgres", "parameters", "work_mem"],
            json!("8MB"),
        );
        assert_eq!(out, KDL.replace("\"4MB\"", "\"8MB\""));
        let out = kdl(KDL, &["metadata", "name"], json!("other"));
        assert_eq!(
            out,
            KDL.replace("name demo", "name other"),
            "bare stays bare"
        );
        let out = kdl(KDL, &["kind"], json!("1x"));
        assert_eq!(out, KDL.replace("kind Cluster", "kind \"1x\""));
        let out = kdl(KDL, &["metadata", "labels", "env"], json!(true));
        assert_eq!(out, KDL.replace("env=dev", "env=#true"));
    }

    #[test]
    fn kdl_inserts_nodes_and_properties() {
        let out = kdl(
            KDL,
            &["spec", "postgres", "parameters", "shared_buffers"],
            json!("128MB"),
        );
        assert_eq!(
            out,
            KDL.replace(
                "      work_mem \"4MB\"\n",
                "      work_mem \"4MB\"\n      shared_buffers \"128MB\"\n"
            )
        );
        let out = kdl(KDL, &["spec", "patroni", "synchronous_mode"], json!(true));
        assert_eq!(
            out,
            KDL.replace(
                "retry_timeout=10\n",
                "retry_timeout=10 synchronous_mode=#true\n"
            )
        );
        let out = kdl(KDL, &["metadata", "labels", "team"], json!("db"));
        assert_eq!(out, KDL.replace("env=dev", "env=dev team=\"db\""));
        let out = kdl(KDL, &["spec", "pooler", "pgbouncer", "port"], json!(6432));
        assert_eq!(
            out,
            KDL.replace("pooler { }", "pooler { pgbouncer { port 6432 } }")
        );
        // A block that does not exist yet, with the document's indentation.
        let out = kdl(KDL, &["spec", "hba_x", "a"], json!(1));
        assert_eq!(
            out,
            KDL.replace("  pooler { }\n", "  pooler { }\n  hba_x {\n    a 1\n  }\n")
        );
        let out = kdl(KDL, &["top"], json!(1));
        assert_eq!(out, format!("{KDL}top 1\n"));
        let out = kdl("a { b 1; c 2 }\n", &["a", "d"], json!(3));
        assert_eq!(out, "a { b 1; c 2; d 3 }\n");
        let out = kdl("a {}\n", &["a", "d"], json!(3));
        assert_eq!(out, "a { d 3 }\n");
        let out = kdl("a\n", &["a", "d"], json!(3));
        assert_eq!(out, "a d=3\n");
        let out = kdl("a\n", &["a"], json!(3));
        assert_eq!(out, "a 3\n");
        let out = kdl("a {\n\tb 1\n}\n", &["a", "c", "d"], json!(2));
        assert_eq!(out, "a {\n\tb 1\n\tc {\n\t\td 2\n\t}\n}\n");
    }

    #[test]
    fn kdl_errors_name_the_place() {
        let e = set_scalar(KDL, Spelling::Kdl, &["spec", "replicas", "x"], &json!(1)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 22, column 12: `spec.replicas` is a number, not a mapping: `x` cannot be set in it"
        );
        let e = set_scalar(KDL, Spelling::Kdl, &["spec", "provider"], &json!(1)).unwrap_err();
        assert!(
            e.to_string().contains("is a mapping, not a single value"),
            "{e}"
        );
        let e = set_scalar("a true\n", Spelling::Kdl, &["a"], &json!(1)).unwrap_err();
        assert!(e.to_string().contains("KDL 2 writes #true"), "{e}");
    }

    #[test]
    fn every_edit_reads_back_through_the_loader() {
        let yaml_spec = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/local-3node.yaml"
        ))
        .unwrap();
        let kdl_spec = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/kdl/local-3node.kdl"
        ))
        .unwrap();
        for (text, spelling, label) in [
            (&yaml_spec, Spelling::Yaml, "x.yaml"),
            (&kdl_spec, Spelling::Kdl, "x.kdl"),
        ] {
            let out = set_scalar(text, spelling, &["spec", "replicas"], &json!(3)).unwrap();
            let out = set_scalar(
                &out,
                spelling,
                &["spec", "postgres", "parameters", "effective_cache_size"],
                &json!("4GB"),
            )
            .unwrap();
            let spec = crate::spec::load_str(label, out.as_bytes()).unwrap();
            assert_eq!(spec.spec.replicas, 3);
            assert_eq!(
                spec.spec.postgres.parameters["effective_cache_size"],
                crate::spec::model::GucValue::Str("4GB".to_owned())
            );
            // Every comment line of the original is still there.
            for line in text.lines().filter(|l| l.contains('#') || l.contains("//")) {
                assert!(out.contains(line), "{label}: lost {line:?}");
            }
        }
    }

    #[test]
    fn a_new_spec_reads_the_same_in_both_spellings() {
        for provider in [
            NewProvider::Local {
                data_dir: Path::new("/var/lib/pgdba/my cluster"),
                pg_port: 15432,
                api_port: 18008,
                etcd_port: 12379,
            },
            NewProvider::Docker,
        ] {
            let new = NewSpec {
                name: "123",
                provider,
                replicas: 1,
                postgres_version: 15,
            };
            let yaml_text = new.text(Spelling::Yaml);
            let kdl_text = new.text(Spelling::Kdl);
            let from_yaml = crate::spec::load_str("n.yaml", yaml_text.as_bytes())
                .unwrap_or_else(|d| panic!("{yaml_text}\n{d:#?}"));
            let from_kdl = crate::spec::load_str("n.kdl", kdl_text.as_bytes())
                .unwrap_or_else(|d| panic!("{kdl_text}\n{d:#?}"));
            assert_eq!(from_yaml, from_kdl);
            assert_eq!(from_yaml.metadata.name, "123");
            assert_eq!(from_yaml.spec.replicas, 1);
            assert_eq!(from_yaml.spec.postgres.version, 15);
            assert_eq!(
                from_yaml.spec.patroni,
                crate::spec::model::PatroniSettings::default()
            );
            // What `replica add` does to it next.
            let out =
                set_scalar(&yaml_text, Spelling::Yaml, &["spec", "replicas"], &json!(2)).unwrap();
            assert_eq!(out, yaml_text.replacen("replicas: 1", "replicas: 2", 1));
            let out =
                set_scalar(&kdl_text, Spelling::Kdl, &["spec", "replicas"], &json!(2)).unwrap();
            assert_eq!(out, kdl_text.replacen("replicas 1", "replicas 2", 1));
        }
    }

    #[test]
    fn files_are_replaced_atomically_keeping_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.yaml");
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/local-3node.yaml"
        ))
        .unwrap();
        std::fs::write(&path, &text).unwrap();
        std::fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let edited = set_in_file(&path, &["spec", "replicas"], &json!(1)).unwrap();
        assert!(edited.changed());
        assert_eq!(edited.spec.spec.replicas, 1);
        let now = std::fs::read_to_string(&path).unwrap();
        assert_eq!(now, text.replace("replicas: 2", "replicas: 1"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file is left behind");
        edited.restore().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

        // An invalid result is refused and the file left alone.
        let e = set_in_file(&path, &["spec", "replicas"], &json!(99)).unwrap_err();
        assert!(matches!(e, EditError::Invalid { .. }), "{e}");
        assert!(e.to_string().contains("demo.yaml:"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        // A restore does not undo someone else's later edit.
        let edited = set_in_file(&path, &["spec", "replicas"], &json!(3)).unwrap();
        std::fs::write(&path, "changed by hand").unwrap();
        assert!(matches!(edited.restore(), Err(EditError::Changed { .. })));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "changed by hand");
        // Nor does a write overwrite an edit made since the file was read.
        std::fs::write(&path, &text).unwrap();
        let prepared = prepare(&path, &["spec", "replicas"], &json!(1)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            text,
            "prepare writes nothing"
        );
        let again = prepare(&path, &["spec", "replicas"], &json!(1)).unwrap();
        prepared.write().unwrap();
        let written = crate::spec::load_file(&path).unwrap();
        assert_eq!(
            written,
            prepared.loaded(),
            "what is planned is what is written"
        );
        std::fs::write(&path, format!("{text}\n")).unwrap();
        assert!(matches!(again.write(), Err(EditError::Changed { .. })));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{text}\n"));

        // A new file is created only if absent, and only valid.
        let new = dir.path().join("new.yaml");
        create_file(&new, &text).unwrap();
        assert_eq!(std::fs::read_to_string(&new).unwrap(), text);
        assert!(matches!(
            create_file(&new, &text),
            Err(EditError::Exists { .. })
        ));
        let bad = dir.path().join("bad.yaml");
        assert!(matches!(
            create_file(&bad, "kind: Cluster\n"),
            Err(EditError::Invalid { .. })
        ));
        assert!(!bad.exists());
    }
}

//! Query diagnostics: `query slow-log` (the statements whose mean time is over a threshold, from
//! `pg_stat_statements`), `query analyze` (`EXPLAIN (ANALYZE, BUFFERS)` of one statement, inside
//! a transaction that is always rolled back) and `query index-suggest` (a table's scans, its
//! indexes and the predicates of its heaviest statements, into one `CREATE INDEX` or a reason
//! why none).
//!
//! The pure parts are plain functions tested below: the SQL lexer and the statement
//! classifier ([`Explainable`]), the threshold's parsing ([`Threshold`]), the plan summary
//! ([`summarize_plan`]), the predicate extraction ([`predicates`]) and the index choice
//! ([`suggest_index`]). The async functions take a session the CLI opened and return plain data.
//!
//! The SQL is lexed by hand, not parsed with sqlparser-rs: the classifier only needs
//! PostgreSQL's token rules (comments that nest, dollar quoting, `E''` strings, quoted
//! identifiers), which a 200-line lexer follows exactly, while a general SQL parser would refuse
//! valid PostgreSQL its dialect does not know, and PostgreSQL's own parser (pg_query) needs a C
//! build. The extraction of predicates from `pg_stat_statements` text is a heuristic either way
//! (aliases, joins, `$1` placeholders), and works on the same tokens.
//!
//! Architecture Invariant: nothing here changes a database. [`analyze`] runs the statement in
//! a transaction it always rolls back, only after [`Explainable::new`] accepted it, and sends it
//! with the extended protocol, which takes one statement only (the server, not only the lexer,
//! refuses a second one); everything else reads catalogs and statistics.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Client;
use tokio_postgres::types::{FromSql, Type};

use crate::pg::{GucContext, GucDef, GucValueError, Normalized, Unit, VarType};

/// Starts every statement pgdba's diagnostics send, so that `slow-log` and `index-suggest` leave
/// pgdba's own catalog reads out of what they report.
const MARK: &str = "/* pgdba query */";

// ---------------------------------------------------------------------------------------------
// Lexing

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokKind {
    /// An unquoted identifier or keyword.
    Word,
    /// A `"quoted"` identifier; its text is the name, quotes undone.
    QuotedIdent,
    /// A string constant: `'...'`, `E'...'`, `B'...'`, `X'...'`, `U&'...'` or `$tag$...$tag$`.
    Str,
    Number,
    /// `$1`.
    Param,
    /// An operator: `=`, `<=`, `<>`, `||`, ...
    Op,
    /// `(`, `)`, `[`, `]`, `,`, `;`, `.`, `:`, `::` and anything else of one character.
    Punct,
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokKind,
    /// As written; for a quoted identifier, the name.
    text: String,
    /// Byte offset into the SQL.
    start: usize,
}

impl Token {
    fn is_kw(&self, kw: &str) -> bool {
        self.kind == TokKind::Word && self.text.eq_ignore_ascii_case(kw)
    }

    fn is_punct(&self, p: &str) -> bool {
        self.kind == TokKind::Punct && self.text == p
    }

    fn is_op(&self, op: &str) -> bool {
        self.kind == TokKind::Op && self.text == op
    }

    /// The name an identifier stands for: unquoted words folded to lower case (ASCII, as
    /// PostgreSQL does), quoted ones as written.
    fn name(&self) -> Option<String> {
        match self.kind {
            TokKind::Word => Some(self.text.to_ascii_lowercase()),
            TokKind::QuotedIdent => Some(self.text.clone()),
            _ => None,
        }
    }
}

/// SQL the lexer could not read to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {what} that starts at character {at} is not terminated")]
pub struct LexError {
    what: &'static str,
    /// 1-based, in characters, as PostgreSQL counts positions.
    at: usize,
}

/// The tokens of `sql`, comments and whitespace dropped, and the error that stopped the lexer
/// (the tokens before it are kept).
fn lex(sql: &str) -> (Vec<Token>, Option<LexError>) {
    let b = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let at = |i: usize| char_position(sql, i);
    let unterminated = |what, i| LexError { what, at: at(i) };
    let token = |kind, start: usize, end: usize| Token {
        kind,
        text: sql[start..end].to_owned(),
        start,
    };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => i += 1,
            b'-' if next == Some(b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if next == Some(b'*') => {
                let start = i;
                let mut depth = 0usize;
                loop {
                    if i >= b.len() {
                        return (tokens, Some(unterminated("comment", start)));
                    }
                    if b[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else if b[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'\'' => match string_end(b, i, false) {
                Some(end) => {
                    tokens.push(token(TokKind::Str, i, end));
                    i = end;
                }
                None => return (tokens, Some(unterminated("string constant", i))),
            },
            b'"' => match quoted_end(b, i) {
                Some(end) => {
                    let name = sql[i + 1..end - 1].replace("\"\"", "\"");
                    tokens.push(Token {
                        kind: TokKind::QuotedIdent,
                        text: name,
                        start: i,
                    });
                    i = end;
                }
                None => return (tokens, Some(unterminated("quoted identifier", i))),
            },
            b'$' if next.is_some_and(|n| n.is_ascii_digit()) => {
                let mut end = i + 1;
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
                tokens.push(token(TokKind::Param, i, end));
                i = end;
            }
            b'$' => match dollar_tag(b, i) {
                Some(tag_end) => {
                    let tag = &b[i..tag_end];
                    let body = tag_end;
                    match b[body..].windows(tag.len()).position(|w| w == tag) {
                        Some(p) => {
                            let end = body + p + tag.len();
                            tokens.push(token(TokKind::Str, i, end));
                            i = end;
                        }
                        None => {
                            return (tokens, Some(unterminated("dollar-quoted string", i)));
                        }
                    }
                }
                None => {
                    tokens.push(token(TokKind::Punct, i, i + 1));
                    i += 1;
                }
            },
            b'0'..=b'9' => {
                let end = number_end(b, i);
                tokens.push(token(TokKind::Number, i, end));
                i = end;
            }
            b'.' if next.is_some_and(|n| n.is_ascii_digit()) => {
                let end = number_end(b, i);
                tokens.push(token(TokKind::Number, i, end));
                i = end;
            }
            c if is_ident_start(c) => {
                let mut end = i + 1;
                while end < b.len() && is_ident_cont(b[end]) {
                    end += 1;
                }
                let word = &sql[i..end];
                let quote = b.get(end).copied();
                // E'...' takes backslash escapes; B'', X'', N'' are plain strings; U&'' and
                // U&"" are a string and an identifier with Unicode escapes.
                let prefixed = match (word, quote) {
                    ("e" | "E", Some(b'\'')) => Some(string_end(b, end, true)),
                    ("b" | "B" | "x" | "X" | "n" | "N", Some(b'\'')) => {
                        Some(string_end(b, end, false))
                    }
                    ("u" | "U", Some(b'&')) if b.get(end + 1) == Some(&b'\'') => {
                        Some(string_end(b, end + 1, false))
                    }
                    _ => None,
                };
                match prefixed {
                    Some(Some(send)) => {
                        tokens.push(token(TokKind::Str, i, send));
                        i = send;
                    }
                    Some(None) => {
                        return (tokens, Some(unterminated("string constant", i)));
                    }
                    None if matches!(word, "u" | "U")
                        && quote == Some(b'&')
                        && b.get(end + 1) == Some(&b'"') =>
                    {
                        match quoted_end(b, end + 1) {
                            Some(qend) => {
                                let name = sql[end + 2..qend - 1].replace("\"\"", "\"");
                                tokens.push(Token {
                                    kind: TokKind::QuotedIdent,
                                    text: name,
                                    start: i,
                                });
                                i = qend;
                            }
                            None => {
                                return (tokens, Some(unterminated("quoted identifier", i)));
                            }
                        }
                    }
                    None => {
                        tokens.push(token(TokKind::Word, i, end));
                        i = end;
                    }
                }
            }
            b':' if next == Some(b':') => {
                tokens.push(token(TokKind::Punct, i, i + 2));
                i += 2;
            }
            c if is_op_char(c) => {
                let mut end = i;
                while end < b.len()
                    && is_op_char(b[end])
                    && !b[end..].starts_with(b"--")
                    && !b[end..].starts_with(b"/*")
                {
                    end += 1;
                }
                // PostgreSQL's rule: a multi-character operator does not end in + or - unless
                // it holds one of ~ ! @ # % ^ & | ` ? (so `=-1` is `=` then `-1`).
                let op = &b[i..end];
                if op.len() > 1 && !op.iter().any(|c| b"~!@#%^&|`?".contains(c)) {
                    while end > i + 1 && matches!(b[end - 1], b'+' | b'-') {
                        end -= 1;
                    }
                }
                tokens.push(token(TokKind::Op, i, end));
                i = end;
            }
            _ => {
                // ASCII here (bytes from 0x80 start identifiers), so one byte is one character.
                tokens.push(token(TokKind::Punct, i, i + 1));
                i += 1;
            }
        }
    }
    (tokens, None)
}

/// The end (exclusive) of the string constant whose opening quote is at `i`; `''` is a quote
/// inside it, and with `escapes` (an `E''` string) so is `\'`.
fn string_end(b: &[u8], i: usize, escapes: bool) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' if escapes => j += 2,
            b'\'' if b.get(j + 1) == Some(&b'\'') => j += 2,
            b'\'' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// The end (exclusive) of the quoted identifier whose opening `"` is at `i`.
fn quoted_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        if b[j] == b'"' {
            if b.get(j + 1) == Some(&b'"') {
                j += 2;
                continue;
            }
            return Some(j + 1);
        }
        j += 1;
    }
    None
}

/// The end (exclusive) of the dollar-quote delimiter (`$$`, `$tag$`) that starts at `i`.
fn dollar_tag(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if b.get(j).is_some_and(|&c| is_ident_start(c)) {
        j += 1;
        while b
            .get(j)
            .is_some_and(|&c| is_ident_start(c) || c.is_ascii_digit())
        {
            j += 1;
        }
    }
    (b.get(j) == Some(&b'$')).then_some(j + 1)
}

fn number_end(b: &[u8], i: usize) -> usize {
    let mut j = i;
    while j < b.len() {
        let c = b[j];
        let exponent_sign = matches!(c, b'+' | b'-')
            && j > i
            && matches!(b[j - 1], b'e' | b'E')
            && b.get(j + 1).is_some_and(u8::is_ascii_digit);
        if c.is_ascii_alphanumeric()
            || c == b'_'
            || (c == b'.' && b.get(j + 1) != Some(&b'.'))
            || exponent_sign
        {
            j += 1;
        } else {
            break;
        }
    }
    j
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_cont(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == b'$'
}

fn is_op_char(c: u8) -> bool {
    b"+-*/<>=~!@#%^&|`?".contains(&c)
}

/// A byte offset as PostgreSQL counts positions: 1-based, in characters.
fn char_position(sql: &str, byte: usize) -> usize {
    sql.get(..byte).map_or(byte, |s| s.chars().count()) + 1
}

// ---------------------------------------------------------------------------------------------
// The statement `query analyze` runs

/// Statements EXPLAIN can run, besides the ones `query analyze` runs without `--allow-writes`.
const EXPLAINABLE_WITH_ALLOW_WRITES: [&str; 4] = ["merge", "create", "execute", "declare"];

/// One statement `query analyze` may run: a single SELECT (or VALUES, TABLE), INSERT, UPDATE,
/// DELETE or WITH, or with `--allow-writes` anything else EXPLAIN runs. Made only by
/// [`Explainable::new`].
#[derive(Debug, Clone)]
pub struct Explainable {
    sql: String,
    kind: String,
    writes: bool,
}

/// Why `query analyze` does not run a statement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("there is no statement, only whitespace and comments")]
    Empty,
    #[error("the SQL cannot be read: {0}")]
    Lex(LexError),
    #[error(
        "the SQL holds more than one statement: the `;` at character {at} is followed by `{next}`; query analyze runs one statement"
    )]
    Several { at: usize, next: String },
    #[error(
        "the statement has parameters ({param} at character {at}): put values in their place (pg_stat_statements shows constants as $1, $2, ...)"
    )]
    Parameters { param: String, at: usize },
    #[error(
        "the statement is already an EXPLAIN: give the statement alone, query analyze adds EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)"
    )]
    AlreadyExplain,
    #[error(
        "a {keyword} statement is not a SELECT, INSERT, UPDATE, DELETE or WITH: query analyze runs it only with --allow-writes (and rolls it back)"
    )]
    NeedsAllowWrites { keyword: String },
    #[error(
        "the WITH statement modifies data ({keyword} at character {at}): query analyze runs it only with --allow-writes (and rolls it back)"
    )]
    WritingWith { keyword: String, at: usize },
    #[error(
        "EXPLAIN cannot run a {keyword} statement: it runs SELECT, INSERT, UPDATE, DELETE, MERGE, VALUES, TABLE, EXECUTE, DECLARE, CREATE TABLE AS and CREATE MATERIALIZED VIEW"
    )]
    NotExplainable { keyword: String },
}

impl Refusal {
    /// Bad input (the user meant something else) rather than a refused operation.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Refusal::Empty | Refusal::Lex(_) | Refusal::Parameters { .. } | Refusal::AlreadyExplain
        )
    }
}

impl Explainable {
    /// Classifies `sql` by lexing it: comments and whitespace skipped, one statement only (a `;`
    /// may end it, followed by nothing but whitespace and comments), of a kind `query analyze`
    /// runs. A WITH that holds INSERT, UPDATE, DELETE or MERGE needs `allow_writes`.
    pub fn new(sql: &str, allow_writes: bool) -> Result<Explainable, Refusal> {
        let (tokens, error) = lex(sql);
        if let Some(e) = error {
            return Err(Refusal::Lex(e));
        }
        let (body, end) = match tokens.iter().position(|t| t.is_punct(";")) {
            Some(i) => {
                if let Some(next) = tokens.get(i + 1) {
                    return Err(Refusal::Several {
                        at: char_position(sql, tokens[i].start),
                        next: excerpt(&sql[next.start..], 40),
                    });
                }
                (&tokens[..i], tokens[i].start)
            }
            None => (&tokens[..], sql.len()),
        };
        if let Some(p) = body.iter().find(|t| t.kind == TokKind::Param) {
            return Err(Refusal::Parameters {
                param: p.text.clone(),
                at: char_position(sql, p.start),
            });
        }
        // A statement may stand in parentheses: `(SELECT 1) UNION (SELECT 2)`.
        let Some(first) = body.iter().find(|t| !t.is_punct("(")) else {
            return Err(Refusal::Empty);
        };
        let keyword = first
            .name()
            .unwrap_or_else(|| first.text.clone())
            .to_ascii_lowercase();
        let locks_rows = locking_clause(body);
        let (writes, refusal) = match keyword.as_str() {
            "select" | "values" | "table" => (locks_rows || select_into(body), None),
            "insert" | "update" | "delete" => (true, None),
            "with" => match data_modifying(body) {
                Some(t) => (
                    true,
                    (!allow_writes).then(|| Refusal::WritingWith {
                        keyword: t.text.to_ascii_uppercase(),
                        at: char_position(sql, t.start),
                    }),
                ),
                None => (locks_rows, None),
            },
            "explain" => (false, Some(Refusal::AlreadyExplain)),
            k if EXPLAINABLE_WITH_ALLOW_WRITES.contains(&k) => (
                true,
                (!allow_writes).then(|| Refusal::NeedsAllowWrites {
                    keyword: k.to_ascii_uppercase(),
                }),
            ),
            k => (
                true,
                Some(Refusal::NotExplainable {
                    keyword: k.to_ascii_uppercase(),
                }),
            ),
        };
        if let Some(r) = refusal {
            return Err(r);
        }
        Ok(Explainable {
            sql: sql[..end].trim_end().to_owned(),
            kind: keyword.to_ascii_uppercase(),
            writes,
        })
    }

    /// The statement, without its closing `;`.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Its first keyword, upper case: `SELECT`, `WITH`, `INSERT`, ...
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Whether it may change rows (it is rolled back either way): INSERT, UPDATE, DELETE, a
    /// data-modifying WITH, SELECT ... FOR UPDATE or INTO. A function it calls may write too,
    /// which no lexer sees.
    pub fn writes(&self) -> bool {
        self.writes
    }
}

/// `FOR UPDATE`, `FOR NO KEY UPDATE`, `FOR SHARE`, `FOR KEY SHARE`.
fn locking_clause(tokens: &[Token]) -> bool {
    tokens.windows(2).any(|w| {
        w[0].is_kw("for")
            && (w[1].is_kw("update")
                || w[1].is_kw("share")
                || w[1].is_kw("no")
                || w[1].is_kw("key"))
    })
}

/// `SELECT ... INTO new_table`: creates a table.
fn select_into(tokens: &[Token]) -> bool {
    let mut depth = 0i32;
    tokens.iter().any(|t| {
        if t.is_punct("(") {
            depth += 1;
        } else if t.is_punct(")") {
            depth -= 1;
        }
        depth == 0 && t.is_kw("into")
    })
}

/// The first INSERT, UPDATE, DELETE or MERGE in a WITH statement, other than the UPDATE of a
/// locking clause (`FOR [NO KEY] UPDATE`). A column named `delete` is refused too: the safe side.
fn data_modifying(tokens: &[Token]) -> Option<&Token> {
    tokens.iter().enumerate().find_map(|(i, t)| {
        let dml = t.is_kw("insert") || t.is_kw("update") || t.is_kw("delete") || t.is_kw("merge");
        let locking = t.is_kw("update")
            && i > 0
            && (tokens[i - 1].is_kw("for") || tokens[i - 1].is_kw("key"));
        (dml && !locking).then_some(t)
    })
}

/// `text` on one line, at most `max` characters, with `…` when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

// ---------------------------------------------------------------------------------------------
// The threshold

/// The mean execution time over which a statement is slow, parsed as PostgreSQL parses a time
/// setting in milliseconds (`log_min_duration_statement`): `1s`, `250ms`, `2min`, `1.5s`, and a
/// bare number is milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    ms: f64,
    shown: String,
}

impl Threshold {
    pub fn parse(value: &str) -> Result<Threshold, GucValueError> {
        let def = GucDef {
            name: "--threshold".to_owned(),
            vartype: VarType::Real,
            unit: Some(Unit::Time { micros: 1000 }),
            context: GucContext::User,
            min: Some(0.0),
            // A year is plenty; keeps `inf` out.
            max: Some(365.0 * 86_400_000.0),
            enumvals: Vec::new(),
            boot_val: None,
        };
        match def.normalize(value.trim())? {
            n @ Normalized::Real { value, .. } => Ok(Threshold {
                ms: value,
                shown: n.to_string(),
            }),
            // A Real definition always yields a Real.
            other => Ok(Threshold {
                ms: 0.0,
                shown: other.to_string(),
            }),
        }
    }

    pub fn ms(&self) -> f64 {
        self.ms
    }
}

impl fmt::Display for Threshold {
    /// As `SHOW` spells it: `1s`, `250ms`, `2min`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// What PostgreSQL answered to a statement that failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerError {
    pub sqlstate: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// In the statement the user gave, 1-based characters.
    pub position: Option<u32>,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.sqlstate)?;
        if let Some(d) = &self.detail {
            write!(f, "; {d}")?;
        }
        Ok(())
    }
}

impl ServerError {
    /// The server's error in `e`, its position moved back by `prefix` characters (the text
    /// pgdba put before the user's statement).
    fn from_pg(e: &tokio_postgres::Error, prefix: u32) -> Option<ServerError> {
        let db = e.as_db_error()?;
        let position = match db.position() {
            Some(tokio_postgres::error::ErrorPosition::Original(p)) => {
                p.checked_sub(prefix).filter(|p| *p > 0)
            }
            _ => None,
        };
        Some(ServerError {
            sqlstate: db.code().code().to_owned(),
            message: db.message().to_owned(),
            detail: db.detail().map(str::to_owned),
            hint: db.hint().map(str::to_owned),
            position,
        })
    }
}

/// Why a diagnostic could not be made.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// PostgreSQL answered with an error.
    #[error("{what}: {error}")]
    Server {
        what: &'static str,
        error: ServerError,
    },
    /// The session broke (no answer of PostgreSQL's).
    #[error("{what}")]
    Session {
        what: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("pg_stat_statements is not loaded: {}", preload_text(.current))]
    NotPreloaded {
        /// `shared_preload_libraries`, when the session may read it.
        current: Option<String>,
    },
    #[error(
        "the pg_stat_statements extension is not created in any database (looked in {})",
        .databases.join(", ")
    )]
    NotCreated { databases: Vec<String> },
    #[error("no table {table} in database {database}")]
    TableNotFound { table: String, database: String },
    #[error("{table} is {what}, not a table")]
    NotATable { table: String, what: &'static str },
    #[error("EXPLAIN's output cannot be read: {0}")]
    Plan(String),
}

fn preload_text(current: &Option<String>) -> String {
    match current {
        Some(c) => format!("shared_preload_libraries is '{c}'"),
        None => "it must be named in shared_preload_libraries".to_owned(),
    }
}

impl QueryError {
    fn pg(what: &'static str, prefix: u32) -> impl FnOnce(tokio_postgres::Error) -> QueryError {
        move |e| match ServerError::from_pg(&e, prefix) {
            Some(error) => QueryError::Server { what, error },
            None => QueryError::Session { what, source: e },
        }
    }
}

fn pg(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> QueryError {
    QueryError::pg(what, 0)
}

// ---------------------------------------------------------------------------------------------
// pg_stat_statements

/// Where a session reads `pg_stat_statements`: the extension's schema (quoted) in its database,
/// and the names of the time columns (`mean_exec_time` since PostgreSQL 13, `mean_time`
/// before).
#[derive(Debug, Clone)]
pub struct StatementsSource {
    pub database: String,
    schema: String,
    legacy_times: bool,
}

impl StatementsSource {
    fn view(&self) -> String {
        format!("{}.pg_stat_statements", self.schema)
    }

    fn time(&self, which: &str) -> String {
        if self.legacy_times {
            format!("s.{which}_time")
        } else {
            format!("s.{which}_exec_time")
        }
    }
}

/// Whether a `shared_preload_libraries` value loads pg_stat_statements (names or paths, quoted
/// or not, with or without `.so`).
pub fn preloads_pg_stat_statements(setting: &str) -> bool {
    setting.split(',').any(|lib| {
        let lib = lib.trim().trim_matches('"').trim();
        let base = lib.rsplit('/').next().unwrap_or(lib);
        let base = base.strip_suffix(".so").unwrap_or(base);
        base.eq_ignore_ascii_case("pg_stat_statements")
    })
}

/// `shared_preload_libraries`, when the session may read it (`None`: hidden from this role).
pub async fn preload_setting(client: &Client) -> Result<Option<String>, QueryError> {
    let rows = client
        .query(
            &format!(
                "{MARK} SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'"
            ),
            &[],
        )
        .await
        .map_err(pg("reading shared_preload_libraries"))?;
    Ok(rows.first().and_then(|r| r.get::<_, Option<String>>(0)))
}

/// The extension in the session's database, or `None` when it is not created there.
pub async fn statements_source(client: &Client) -> Result<Option<StatementsSource>, QueryError> {
    let row = client
        .query_opt(
            &format!(
                "{MARK} SELECT current_database()::text, quote_ident(n.nspname), \
                 NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = \
                 to_regclass(quote_ident(n.nspname) || '.pg_stat_statements') \
                 AND a.attname = 'mean_exec_time') \
                 FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace \
                 WHERE e.extname = 'pg_stat_statements'"
            ),
            &[],
        )
        .await
        .map_err(pg("looking for the pg_stat_statements extension"))?;
    row.map(|r| {
        Ok(StatementsSource {
            database: r.try_get(0)?,
            schema: r.try_get(1)?,
            legacy_times: r.try_get(2)?,
        })
    })
    .transpose()
    .map_err(pg("looking for the pg_stat_statements extension"))
}

/// The other databases a session may look in for the extension.
pub async fn other_databases(client: &Client) -> Result<Vec<String>, QueryError> {
    let rows = client
        .query(
            &format!(
                "{MARK} SELECT datname::text FROM pg_database WHERE datallowconn \
                 AND NOT datistemplate AND datname <> current_database() ORDER BY datname"
            ),
            &[],
        )
        .await
        .map_err(pg("listing the databases"))?;
    rows.iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(pg("listing the databases"))
}

/// Reading the view of a library that is not loaded fails with this SQLSTATE.
const NOT_LOADED: &str = "55000";

fn statements_error(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> QueryError {
    move |e| match pg(what)(e) {
        QueryError::Server { error, .. } if error.sqlstate == NOT_LOADED => {
            QueryError::NotPreloaded { current: None }
        }
        other => other,
    }
}

/// One statement of `pg_stat_statements`. Times in milliseconds; `rows` and blocks are totals
/// over all calls.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlowStatement {
    pub queryid: Option<i64>,
    pub database: Option<String>,
    pub user: Option<String>,
    /// As pg_stat_statements keeps it: constants replaced by `$1`, `$2`, ...
    pub query: String,
    pub calls: i64,
    pub mean_ms: f64,
    pub max_ms: f64,
    pub total_ms: f64,
    pub rows: i64,
    pub shared_blks_hit: i64,
    pub shared_blks_read: i64,
    /// hit / (hit + read); `None` when it read no block.
    pub cache_hit_ratio: Option<f64>,
}

/// The statements of every database whose mean execution time is over `threshold`, slowest
/// first, at most `limit`.
pub async fn slow_statements(
    client: &Client,
    source: &StatementsSource,
    threshold: &Threshold,
    limit: u32,
) -> Result<Vec<SlowStatement>, QueryError> {
    let sql = format!(
        "{MARK} SELECT s.queryid, d.datname::text, r.rolname::text, s.query, s.calls, \
         {mean}, {max}, {total}, s.rows, s.shared_blks_hit, s.shared_blks_read \
         FROM {view} s LEFT JOIN pg_database d ON d.oid = s.dbid \
         LEFT JOIN pg_roles r ON r.oid = s.userid \
         WHERE {mean} > $1 AND position($3 in s.query) = 0 \
         ORDER BY {mean} DESC LIMIT $2",
        mean = source.time("mean"),
        max = source.time("max"),
        total = source.time("total"),
        view = source.view(),
    );
    let rows = client
        .query(&sql, &[&threshold.ms(), &i64::from(limit), &MARK])
        .await
        .map_err(statements_error("reading pg_stat_statements"))?;
    rows.iter()
        .map(|r| {
            let hit: i64 = r.try_get(9)?;
            let read: i64 = r.try_get(10)?;
            Ok(SlowStatement {
                queryid: r.try_get(0)?,
                database: r.try_get(1)?,
                user: r.try_get(2)?,
                query: r.try_get::<_, Option<String>>(3)?.unwrap_or_default(),
                calls: r.try_get(4)?,
                mean_ms: round3(r.try_get(5)?),
                max_ms: round3(r.try_get(6)?),
                total_ms: round3(r.try_get(7)?),
                rows: r.try_get(8)?,
                shared_blks_hit: hit,
                shared_blks_read: read,
                cache_hit_ratio: ratio(hit, read),
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(pg("reading pg_stat_statements"))
}

fn ratio(hit: i64, read: i64) -> Option<f64> {
    let all = hit + read;
    (all > 0).then(|| round3(hit as f64 / all as f64))
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------------------------
// analyze

/// What pgdba puts before the statement.
const EXPLAIN: &str = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ";

/// `EXPLAIN (ANALYZE, BUFFERS)` of a statement and its summary.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub summary: PlanSummary,
    /// The costliest nodes by their own time, at most five.
    pub nodes: Vec<PlanNode>,
    /// EXPLAIN's JSON as PostgreSQL gave it: `{"Plan": {...}, "Planning Time": ..., ...}`.
    pub plan: Value,
    /// Always true on success: the transaction was rolled back.
    pub rolled_back: bool,
}

/// Whether the server is a standby (it does not accept writes).
pub async fn in_recovery(client: &Client) -> Result<bool, QueryError> {
    let row = client
        .query_one(&format!("{MARK} SELECT pg_is_in_recovery()"), &[])
        .await
        .map_err(pg("asking pg_is_in_recovery()"))?;
    row.try_get(0).map_err(pg("asking pg_is_in_recovery()"))
}

/// Runs `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` of the statement in a transaction, then rolls
/// it back, whatever happened. A failing statement comes back as [`QueryError::Server`], its
/// position in the statement the user gave.
pub async fn analyze(client: &Client, statement: &Explainable) -> Result<Analysis, QueryError> {
    client
        .batch_execute("BEGIN")
        .await
        .map_err(pg("starting a transaction"))?;
    // The extended protocol (a prepared statement) takes exactly one statement.
    let prefix = u32::try_from(EXPLAIN.chars().count()).unwrap_or(0);
    let result = client
        .query_one(&format!("{EXPLAIN}{}", statement.sql()), &[])
        .await;
    let rollback = client.batch_execute("ROLLBACK").await;
    let row = result.map_err(QueryError::pg("the statement failed", prefix))?;
    // A session that broke before ROLLBACK is rolled back by the server.
    rollback.map_err(pg("rolling back"))?;
    let JsonText(text) = row.try_get(0).map_err(pg("reading EXPLAIN's output"))?;
    let explain: Value =
        serde_json::from_str(&text).map_err(|e| QueryError::Plan(e.to_string()))?;
    let (summary, nodes) = summarize_plan(&explain, TOP_NODES).map_err(QueryError::Plan)?;
    let plan = match explain {
        Value::Array(mut a) if a.len() == 1 => a.remove(0),
        other => other,
    };
    Ok(Analysis {
        summary,
        nodes,
        plan,
        rolled_back: true,
    })
}

/// How many nodes the summary names.
pub const TOP_NODES: usize = 5;

/// A `json` value as text (tokio-postgres reads `json` only with a feature pgdba does not need).
struct JsonText(String);

impl<'a> FromSql<'a> for JsonText {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        // jsonb's binary form is a version byte, then the text.
        let raw = match (*ty == Type::JSONB, raw.split_first()) {
            (true, Some((1, rest))) => rest,
            _ => raw,
        };
        Ok(JsonText(std::str::from_utf8(raw)?.to_owned()))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON || *ty == Type::JSONB
    }
}

/// The plan as a whole.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanSummary {
    pub execution_ms: Option<f64>,
    pub planning_ms: Option<f64>,
    /// Trigger time (foreign keys, user triggers), outside the plan's nodes.
    pub triggers_ms: f64,
    pub node_count: usize,
    /// The top node's rows, actual and estimated.
    pub rows_actual: f64,
    pub rows_planned: f64,
    /// The top node's buffers: the whole plan's.
    pub shared_hit_blocks: u64,
    pub shared_read_blocks: u64,
    /// Parallel workers launched (Gather nodes). With workers, a node's time is summed over
    /// the processes that ran it, so the nodes' shares may add up to more than 1.
    pub parallel_workers: u64,
}

/// One node of the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanNode {
    pub node_type: String,
    pub relation: Option<String>,
    pub alias: Option<String>,
    pub index: Option<String>,
    /// Depth in the plan: 0 for the top node.
    pub depth: usize,
    /// Its own time: its actual total time × loops, less its children's (summed over parallel
    /// workers, never below 0).
    pub self_ms: f64,
    /// Its own time's share of the execution time, 0 to 1.
    pub self_share: Option<f64>,
    /// Actual total time × loops, children included.
    pub total_ms: f64,
    /// Actual rows per loop, as EXPLAIN shows them.
    pub rows_actual: f64,
    /// The planner's estimate of rows per loop.
    pub rows_planned: f64,
    /// actual / planned rows: far from 1, the estimate misled the planner.
    pub estimate_factor: Option<f64>,
    pub loops: u64,
    /// Buffers of the node and its children, as EXPLAIN counts them.
    pub shared_hit_blocks: u64,
    pub shared_read_blocks: u64,
    /// Its condition: Index Cond, Filter, Hash Cond, Join Filter, ...
    pub condition: Option<String>,
    pub rows_removed_by_filter: Option<f64>,
}

/// The summary of EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)'s output (the one-element array or
/// its object) and its `top` costliest nodes by their own time.
pub fn summarize_plan(explain: &Value, top: usize) -> Result<(PlanSummary, Vec<PlanNode>), String> {
    let doc = match explain {
        Value::Array(a) => a.first().ok_or("an empty array")?,
        v => v,
    };
    let root = doc.get("Plan").ok_or("no \"Plan\"")?;
    let execution_ms = doc.get("Execution Time").and_then(Value::as_f64);
    let mut nodes = Vec::new();
    walk(root, 0, &mut nodes);
    let triggers_ms = doc
        .get("Triggers")
        .and_then(Value::as_array)
        .map_or(0.0, |ts| {
            ts.iter()
                .filter_map(|t| t.get("Time").and_then(Value::as_f64))
                .sum()
        });
    let summary = PlanSummary {
        execution_ms: execution_ms.map(round3),
        planning_ms: doc.get("Planning Time").and_then(Value::as_f64).map(round3),
        triggers_ms: round3(triggers_ms),
        node_count: nodes.len(),
        rows_actual: num(root, "Actual Rows"),
        rows_planned: num(root, "Plan Rows"),
        shared_hit_blocks: num(root, "Shared Hit Blocks") as u64,
        shared_read_blocks: num(root, "Shared Read Blocks") as u64,
        parallel_workers: workers_launched(root),
    };
    for n in &mut nodes {
        n.self_share = execution_ms
            .filter(|e| *e > 0.0)
            .map(|e| round3((n.self_ms / e).min(1.0)));
    }
    // Stable: equal times keep the plan's order.
    nodes.sort_by(|a, b| b.self_ms.total_cmp(&a.self_ms));
    nodes.truncate(top);
    Ok((summary, nodes))
}

fn num(node: &Value, key: &str) -> f64 {
    node.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn text(node: &Value, key: &str) -> Option<String> {
    node.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn workers_launched(node: &Value) -> u64 {
    let own = num(node, "Workers Launched") as u64;
    own + node
        .get("Plans")
        .and_then(Value::as_array)
        .map_or(0, |c| c.iter().map(workers_launched).sum())
}

/// A node's inclusive time: actual total time (per loop) × loops.
fn inclusive_ms(node: &Value) -> f64 {
    num(node, "Actual Total Time") * num(node, "Actual Loops")
}

fn walk(node: &Value, depth: usize, out: &mut Vec<PlanNode>) {
    let children: &[Value] = node
        .get("Plans")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let total = inclusive_ms(node);
    let children_ms: f64 = children.iter().map(inclusive_ms).sum();
    let rows_actual = num(node, "Actual Rows");
    let rows_planned = num(node, "Plan Rows");
    let loops = num(node, "Actual Loops") as u64;
    let condition = [
        "Index Cond",
        "Recheck Cond",
        "Filter",
        "Hash Cond",
        "Merge Cond",
        "Join Filter",
    ]
    .iter()
    .filter_map(|k| text(node, k).map(|v| format!("{k}: {v}")))
    .collect::<Vec<_>>();
    out.push(PlanNode {
        node_type: text(node, "Node Type").unwrap_or_default(),
        relation: text(node, "Relation Name"),
        alias: text(node, "Alias"),
        index: text(node, "Index Name"),
        depth,
        self_ms: round3((total - children_ms).max(0.0)),
        self_share: None,
        total_ms: round3(total),
        rows_actual,
        rows_planned,
        estimate_factor: (rows_planned > 0.0 && loops > 0)
            .then(|| round3(rows_actual / rows_planned)),
        loops,
        shared_hit_blocks: num(node, "Shared Hit Blocks") as u64,
        shared_read_blocks: num(node, "Shared Read Blocks") as u64,
        condition: (!condition.is_empty()).then(|| condition.join("; ")),
        rows_removed_by_filter: node.get("Rows Removed by Filter").and_then(Value::as_f64),
    });
    for c in children {
        walk(c, depth + 1, out);
    }
}

// ---------------------------------------------------------------------------------------------
// index-suggest: reading

/// A table, as the catalogs name it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    pub schema: String,
    pub name: String,
    /// `schema.table`, each part quoted where SQL needs it.
    pub qualified: String,
    pub partitioned: bool,
    pub columns: Vec<Column>,
    #[serde(skip)]
    oid: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    pub name: String,
    /// Quoted where SQL needs it.
    #[serde(skip)]
    pub quoted: String,
}

/// The table `name` (`schema.table`, or `table` on the session's search path), as
/// `to_regclass` finds it.
pub async fn find_table(client: &Client, name: &str) -> Result<Table, QueryError> {
    let not_found = || async {
        let database = client
            .query_one("SELECT current_database()::text", &[])
            .await
            .ok()
            .and_then(|r| r.try_get(0).ok())
            .unwrap_or_default();
        QueryError::TableNotFound {
            table: name.to_owned(),
            database,
        }
    };
    let row = client
        .query_opt(
            &format!(
                "{MARK} SELECT c.oid, n.nspname::text, c.relname::text, \
                 quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relkind::text \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.oid = to_regclass($1)"
            ),
            &[&name],
        )
        .await;
    let row = match row {
        Ok(Some(r)) => r,
        Ok(None) => return Err(not_found().await),
        // An improper name (`a.b.c.d`, a lone quote) names no table either.
        Err(e)
            if e.as_db_error().is_some_and(|d| {
                matches!(d.code().code(), "42602" | "42601" | "42P01" | "3F000")
            }) =>
        {
            return Err(not_found().await);
        }
        Err(e) => return Err(pg("looking up the table")(e)),
    };
    let read = pg("looking up the table");
    let (oid, schema, name, qualified, relkind): (u32, String, String, String, String) = (|| {
        Ok((
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
            row.try_get(4)?,
        ))
    })()
    .map_err(read)?;
    let what = match relkind.as_str() {
        "r" | "p" | "m" => None,
        "v" => Some("a view"),
        "i" | "I" => Some("an index"),
        "S" => Some("a sequence"),
        "f" => Some("a foreign table"),
        "c" => Some("a composite type"),
        _ => Some("another kind of relation"),
    };
    if let Some(what) = what {
        return Err(QueryError::NotATable {
            table: qualified,
            what,
        });
    }
    let columns = client
        .query(
            &format!(
                "{MARK} SELECT attname::text, quote_ident(attname) FROM pg_attribute \
                 WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            ),
            &[&oid],
        )
        .await
        .map_err(pg("reading the table's columns"))?
        .iter()
        .map(|r| {
            Ok(Column {
                name: r.try_get(0)?,
                quoted: r.try_get(1)?,
            })
        })
        .collect::<Result<_, _>>()
        .map_err(pg("reading the table's columns"))?;
    Ok(Table {
        schema,
        name,
        qualified,
        partitioned: relkind == "p",
        columns,
        oid,
    })
}

/// From `pg_stat_user_tables` (zeros when the statistics have no row for the table).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TableStats {
    pub seq_scan: i64,
    pub seq_tup_read: i64,
    pub idx_scan: i64,
    pub n_live_tup: i64,
    /// seq_tup_read / seq_scan.
    pub rows_per_seq_scan: Option<i64>,
    pub size_bytes: i64,
}

pub async fn table_stats(client: &Client, table: &Table) -> Result<TableStats, QueryError> {
    let row = client
        .query_opt(
            &format!(
                "{MARK} SELECT coalesce(seq_scan, 0), coalesce(seq_tup_read, 0), \
                 coalesce(idx_scan, 0), coalesce(n_live_tup, 0), pg_relation_size(relid) \
                 FROM pg_stat_user_tables WHERE relid = $1"
            ),
            &[&table.oid],
        )
        .await
        .map_err(pg("reading pg_stat_user_tables"))?;
    let Some(r) = row else {
        return Ok(TableStats::default());
    };
    (|| {
        let seq_scan: i64 = r.try_get(0)?;
        let seq_tup_read: i64 = r.try_get(1)?;
        Ok(TableStats {
            seq_scan,
            seq_tup_read,
            idx_scan: r.try_get(2)?,
            n_live_tup: r.try_get(3)?,
            rows_per_seq_scan: (seq_scan > 0).then(|| seq_tup_read / seq_scan),
            size_bytes: r.try_get(4)?,
        })
    })()
    .map_err(pg("reading pg_stat_user_tables"))
}

/// One index of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExistingIndex {
    pub name: String,
    /// Its key columns in order; `(expression)` for an expression.
    pub columns: Vec<String>,
    pub method: String,
    pub unique: bool,
    pub primary: bool,
    /// False for a failed `CREATE INDEX CONCURRENTLY`: the planner does not use it.
    pub valid: bool,
    /// Partial (`WHERE ...`).
    pub partial: bool,
    pub idx_scan: i64,
    pub definition: String,
}

pub async fn table_indexes(
    client: &Client,
    table: &Table,
) -> Result<Vec<ExistingIndex>, QueryError> {
    let rows = client
        .query(
            &format!(
                "{MARK} SELECT ic.relname::text, ARRAY(SELECT coalesce(a.attname::text, \
                 '(expression)') FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord) \
                 LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                 WHERE k.ord <= i.indnkeyatts ORDER BY k.ord), am.amname::text, \
                 i.indisunique, i.indisprimary, i.indisvalid, i.indpred IS NOT NULL, \
                 coalesce(s.idx_scan, 0), pg_get_indexdef(i.indexrelid) \
                 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
                 JOIN pg_am am ON am.oid = ic.relam \
                 LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid \
                 WHERE i.indrelid = $1 ORDER BY ic.relname"
            ),
            &[&table.oid],
        )
        .await
        .map_err(pg("reading the table's indexes"))?;
    rows.iter()
        .map(|r| {
            Ok(ExistingIndex {
                name: r.try_get(0)?,
                columns: r.try_get(1)?,
                method: r.try_get(2)?,
                unique: r.try_get(3)?,
                primary: r.try_get(4)?,
                valid: r.try_get(5)?,
                partial: r.try_get(6)?,
                idx_scan: r.try_get(7)?,
                definition: r.try_get(8)?,
            })
        })
        .collect::<Result<_, _>>()
        .map_err(pg("reading the table's indexes"))
}

/// Distinct values per column from `pg_stats` (after ANALYZE), as counts: PostgreSQL's
/// negative n_distinct (a fraction of the rows) is turned into a count with `rows`.
pub async fn distinct_values(
    client: &Client,
    table: &Table,
    rows: i64,
) -> Result<BTreeMap<String, f64>, QueryError> {
    let out = client
        .query(
            &format!(
                "{MARK} SELECT attname::text, n_distinct FROM pg_stats \
                 WHERE schemaname = $1 AND tablename = $2"
            ),
            &[&table.schema, &table.name],
        )
        .await
        .map_err(pg("reading pg_stats"))?
        .iter()
        .filter_map(|r| {
            let name: String = r.try_get(0).ok()?;
            let n: Option<f32> = r.try_get(1).ok()?;
            let n = f64::from(n?);
            Some((name, if n < 0.0 { -n * rows as f64 } else { n }))
        })
        .collect();
    Ok(out)
}

/// A statement of `pg_stat_statements` that mentions the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeavyStatement {
    pub query: String,
    pub calls: i64,
    pub total_ms: f64,
    pub mean_ms: f64,
    /// The table's columns it compares by equality (`=`, `IN`, `IS NULL`) ...
    pub equality: BTreeSet<String>,
    /// ... and by range (`<`, `>`, `<=`, `>=`, `BETWEEN`).
    pub range: BTreeSet<String>,
}

/// How many of the heaviest statements on a table are read.
pub const HEAVY_STATEMENTS: usize = 20;

/// The heaviest statements (by total time) of `database` that mention the table, with the
/// table's columns their predicates use; at most [`HEAVY_STATEMENTS`].
pub async fn heavy_statements(
    client: &Client,
    source: &StatementsSource,
    database: &str,
    table: &Table,
) -> Result<Vec<HeavyStatement>, QueryError> {
    let sql = format!(
        "{MARK} SELECT s.query, s.calls, {total}, {mean} FROM {view} s \
         WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = $1) \
         AND position(lower($2) in lower(s.query)) > 0 AND position($3 in s.query) = 0 \
         ORDER BY {total} DESC LIMIT 200",
        total = source.time("total"),
        mean = source.time("mean"),
        view = source.view(),
    );
    let rows = client
        .query(&sql, &[&database, &table.name, &MARK])
        .await
        .map_err(statements_error("reading pg_stat_statements"))?;
    let mut out = Vec::new();
    let read = |r: &tokio_postgres::Row| -> Result<_, tokio_postgres::Error> {
        Ok((
            r.try_get::<_, Option<String>>(0)?,
            r.try_get::<_, i64>(1)?,
            r.try_get::<_, f64>(2)?,
            r.try_get::<_, f64>(3)?,
        ))
    };
    for r in &rows {
        let (query, calls, total, mean) = read(r).map_err(pg("reading pg_stat_statements"))?;
        let Some(query) = query else { continue };
        let Some(p) = predicates(&query, table) else {
            continue;
        };
        out.push(HeavyStatement {
            query,
            calls,
            total_ms: round3(total),
            mean_ms: round3(mean),
            equality: p.equality,
            range: p.range,
        });
        if out.len() == HEAVY_STATEMENTS {
            break;
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// index-suggest: predicates

/// The table's columns a statement's predicates (WHERE and JOIN ... ON) compare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Predicates {
    pub equality: BTreeSet<String>,
    pub range: BTreeSet<String>,
}

/// Keywords after which a table name is a table reference.
const BEFORE_TABLE: &str = "from join update into only using table";

/// Words that end a table reference rather than name its alias.
const NOT_ALIAS: &str = "where join inner left right full cross natural on using set group \
    order limit offset fetch having window union intersect except returning for tablesample \
    values select default lateral as and or when then overriding with";

/// Words that end a WHERE or ON clause at its own parenthesis depth.
const END_OF_CONDITION: &str = "group order limit offset fetch having window union intersect \
    except returning for where join inner left right full cross natural on using";

/// Whether `t` is one of the whitespace-separated keywords of `list`.
fn is_any_kw(t: &Token, list: &str) -> bool {
    t.kind == TokKind::Word && list.split_whitespace().any(|k| t.is_kw(k))
}

/// The predicates on `table`'s columns in one statement, or `None` when the statement does
/// not name the table (as `table`, `schema.table` or an alias of it). EXPLAIN statements are
/// left out: they are diagnostics, not the workload.
pub fn predicates(sql: &str, table: &Table) -> Option<Predicates> {
    let (tokens, _) = lex(sql);
    if tokens.first().is_some_and(|t| t.is_kw("explain")) {
        return None;
    }
    let columns: BTreeSet<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    let mut qualifiers: BTreeSet<String> = BTreeSet::new();
    let mut named = false;
    for i in 0..tokens.len() {
        if tokens[i].name().as_deref() != Some(table.name.as_str()) {
            continue;
        }
        // `orders.id` names a column; `orders(` a function, except after INTO (`INSERT INTO
        // orders (id) ...`).
        let next = tokens.get(i + 1);
        if next.is_some_and(|t| t.is_punct(".")) {
            continue;
        }
        // `schema.table`: the schema must be the table's.
        let mut before = i;
        if i >= 2 && tokens[i - 1].is_punct(".") {
            if tokens[i - 2].name().as_deref() != Some(table.schema.as_str()) {
                continue;
            }
            before = i - 2;
        }
        let Some(prev) = before.checked_sub(1).map(|p| &tokens[p]) else {
            continue;
        };
        if !(prev.is_punct(",") || is_any_kw(prev, BEFORE_TABLE)) {
            continue;
        }
        if next.is_some_and(|t| t.is_punct("(")) && !prev.is_kw("into") {
            continue;
        }
        named = true;
        qualifiers.insert(table.name.clone());
        let mut j = i + 1;
        if tokens.get(j).is_some_and(|t| t.is_kw("as")) {
            j += 1;
        }
        if let Some(t) = tokens.get(j) {
            let alias = match t.kind {
                TokKind::QuotedIdent => true,
                TokKind::Word => !is_any_kw(t, NOT_ALIAS),
                _ => false,
            };
            if alias && let Some(a) = t.name() {
                qualifiers.insert(a);
            }
        }
    }
    if !named {
        return None;
    }
    let mut out = Predicates::default();
    for (i, t) in tokens.iter().enumerate() {
        if t.is_kw("where") || t.is_kw("on") {
            let end = condition_end(&tokens, i + 1);
            collect_comparisons(&tokens[i + 1..end], &columns, &qualifiers, &mut out);
        }
    }
    out.range.retain(|c| !out.equality.contains(c));
    Some(out)
}

/// Where the condition that starts at `start` ends: a clause keyword at its depth, a `)` that
/// closes the parenthesis it stands in, a `;`, or the end.
fn condition_end(tokens: &[Token], start: usize) -> usize {
    let mut depth = 0i32;
    for (k, t) in tokens.iter().enumerate().skip(start) {
        if t.is_punct("(") {
            depth += 1;
        } else if t.is_punct(")") {
            depth -= 1;
            if depth < 0 {
                return k;
            }
        } else if t.is_punct(";") || (depth == 0 && is_any_kw(t, END_OF_CONDITION)) {
            return k;
        }
    }
    tokens.len()
}

/// A comparison's kind, from the operator beside a column.
fn comparison(op: &Token, after: Option<&Token>, column_first: bool) -> Option<bool> {
    // Some(true): equality; Some(false): range.
    if op.is_op("=") {
        return Some(true);
    }
    if ["<", ">", "<=", ">="].iter().any(|o| op.is_op(o)) {
        return Some(false);
    }
    if !column_first {
        return None;
    }
    if op.is_kw("in") {
        return Some(true);
    }
    if op.is_kw("between") {
        return Some(false);
    }
    if op.is_kw("is") && after.is_some_and(|t| t.is_kw("null")) {
        return Some(true);
    }
    None
}

fn collect_comparisons(
    tokens: &[Token],
    columns: &BTreeSet<&str>,
    qualifiers: &BTreeSet<String>,
    out: &mut Predicates,
) {
    for (k, t) in tokens.iter().enumerate() {
        let Some(name) = t.name() else { continue };
        if !columns.contains(name.as_str()) {
            continue;
        }
        let next = tokens.get(k + 1);
        // A qualifier (`t.`) or a function (`lower(`) is not this column.
        if next.is_some_and(|n| n.is_punct(".") || n.is_punct("(")) {
            continue;
        }
        // `q.column`: q must be the table or its alias; the reference starts at q.
        let first = if k >= 2 && tokens[k - 1].is_punct(".") {
            let q = tokens[k - 2].name();
            if !q.is_some_and(|q| qualifiers.contains(&q)) {
                continue;
            }
            k - 2
        } else if k >= 1 && tokens[k - 1].is_punct(".") {
            continue;
        } else {
            k
        };
        let kind = match next {
            Some(op) => comparison(op, tokens.get(k + 2), true),
            None => None,
        }
        .or_else(|| {
            let op = first.checked_sub(1).map(|p| &tokens[p])?;
            // `$1 = column`, `a.x = column`: what stands before the operator is an operand.
            let operand = first.checked_sub(2).map(|p| &tokens[p])?;
            let is_operand = matches!(
                operand.kind,
                TokKind::Param
                    | TokKind::Number
                    | TokKind::Str
                    | TokKind::Word
                    | TokKind::QuotedIdent
            ) || operand.is_punct(")");
            if is_operand {
                comparison(op, None, false)
            } else {
                None
            }
        });
        match kind {
            Some(true) => {
                out.equality.insert(name);
            }
            Some(false) => {
                out.range.insert(name);
            }
            None => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// index-suggest: the choice

/// Below this many live rows a table is read whole about as fast as through an index.
pub const SMALL_TABLE_ROWS: i64 = 10_000;
/// Index scans dominate when there are this many times more of them than sequential scans.
pub const INDEX_SCANS_DOMINATE: i64 = 20;
/// A column with at most this many distinct values does not lead an index (not selective).
const LOW_CARDINALITY: f64 = 2.0;
/// At most this many equality columns in the suggestion (then one range column).
const MAX_EQUALITY_COLUMNS: usize = 3;

/// How many heavy statements compare a column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredicateColumn {
    pub column: String,
    /// Statements that compare it by equality ...
    pub equality: usize,
    /// ... and by range.
    pub range: usize,
    /// Their total execution time.
    pub total_ms: f64,
    /// Distinct values from pg_stats, when analyzed.
    pub distinct: Option<f64>,
}

/// An index to create (nothing is executed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    pub sql: String,
    pub columns: Vec<String>,
    pub reasons: Vec<String>,
}

/// What the choice saw and decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexAdvice {
    pub predicates: Vec<PredicateColumn>,
    pub suggestion: Option<Suggestion>,
    /// Why this suggestion, or why none.
    pub reasons: Vec<String>,
}

/// What the choice takes.
pub struct IndexInput<'a> {
    pub table: &'a Table,
    pub stats: &'a TableStats,
    pub indexes: &'a [ExistingIndex],
    /// `Err(why)` when pg_stat_statements could not be read.
    pub statements: Result<&'a [HeavyStatement], &'a str>,
    pub distinct: &'a BTreeMap<String, f64>,
}

/// Equality columns first, then one range column, each ordered by how many heavy statements
/// compare it; the leading column's statements decide which other columns join it (a
/// composite index serves the statements that filter on all its leading columns). `None`
/// columns, with the reasons, when none is suggested.
pub fn suggest_index(input: &IndexInput<'_>) -> IndexAdvice {
    let s = input.stats;
    let mut reasons = vec![scan_facts(s)];
    let statements = input.statements.unwrap_or(&[]);
    let predicates = tally(statements, input.table, input.distinct);
    let none = |mut reasons: Vec<String>, why: String, predicates| {
        reasons.push(why);
        IndexAdvice {
            predicates,
            suggestion: None,
            reasons,
        }
    };
    if s.n_live_tup < SMALL_TABLE_ROWS {
        return none(
            reasons,
            format!(
                "no index suggested: the table holds about {} rows (fewer than {SMALL_TABLE_ROWS}), which a sequential scan reads about as fast as an index",
                s.n_live_tup
            ),
            predicates,
        );
    }
    if s.seq_scan == 0 {
        return none(
            reasons,
            "no index suggested: no sequential scan of the table since its statistics were reset"
                .to_owned(),
            predicates,
        );
    }
    if s.idx_scan >= s.seq_scan.saturating_mul(INDEX_SCANS_DOMINATE) {
        return none(
            reasons,
            format!(
                "no index suggested: index scans dominate ({} index scans for {} sequential, more than {INDEX_SCANS_DOMINATE} to 1)",
                s.idx_scan, s.seq_scan
            ),
            predicates,
        );
    }
    let statements = match input.statements {
        Ok(st) => st,
        Err(why) => {
            return none(
                reasons,
                format!(
                    "no index suggested: the statements' predicates are unknown ({why}), and pgdba does not guess columns"
                ),
                predicates,
            );
        }
    };
    let filtering: Vec<&HeavyStatement> = statements
        .iter()
        .filter(|st| !st.equality.is_empty() || !st.range.is_empty())
        .collect();
    if filtering.is_empty() {
        return none(
            reasons,
            format!(
                "no index suggested: none of the {} heaviest statements that mention {} compares its columns in a WHERE or JOIN condition",
                statements.len(),
                input.table.qualified
            ),
            predicates,
        );
    }
    // The leading column: the equality column most statements use and that is selective.
    let selective = |p: &&PredicateColumn| p.distinct.is_none_or(|d| d > LOW_CARDINALITY);
    for p in predicates
        .iter()
        .filter(|p| p.equality > 0 && !selective(p))
    {
        reasons.push(format!(
            "{} has about {} distinct values: too few to lead an index",
            p.column,
            p.distinct.unwrap_or(0.0)
        ));
    }
    let lead = predicates
        .iter()
        .filter(|p| p.equality > 0)
        .find(selective)
        .map(|p| (p, true))
        .or_else(|| {
            let mut ranges: Vec<&PredicateColumn> =
                predicates.iter().filter(|p| p.range > 0).collect();
            ranges.sort_by_key(|p| std::cmp::Reverse(p.range));
            ranges.into_iter().find(selective).map(|p| (p, false))
        });
    let Some((lead, lead_equality)) = lead else {
        return none(
            reasons,
            "no index suggested: the columns the statements compare are not selective".to_owned(),
            predicates,
        );
    };
    let with_lead: Vec<&HeavyStatement> = filtering
        .iter()
        .copied()
        .filter(|st| {
            if lead_equality {
                st.equality.contains(&lead.column)
            } else {
                st.range.contains(&lead.column)
            }
        })
        .collect();
    let mut columns = vec![lead.column.clone()];
    let mut range_column = (!lead_equality).then(|| lead.column.clone());
    if lead_equality {
        let count = |col: &str, eq: bool| {
            with_lead
                .iter()
                .filter(|st| {
                    if eq {
                        st.equality.contains(col)
                    } else {
                        st.range.contains(col)
                    }
                })
                .count()
        };
        let mut more: Vec<(&str, usize)> = predicates
            .iter()
            .filter(|p| p.column != lead.column && selective(p))
            .map(|p| (p.column.as_str(), count(&p.column, true)))
            .filter(|(_, n)| *n > 0)
            .collect();
        more.sort_by_key(|m| std::cmp::Reverse(m.1));
        columns.extend(
            more.iter()
                .take(MAX_EQUALITY_COLUMNS - 1)
                .map(|(c, _)| (*c).to_owned()),
        );
        let mut ranges: Vec<(&str, usize)> = predicates
            .iter()
            .filter(|p| !columns.contains(&p.column))
            .map(|p| (p.column.as_str(), count(&p.column, false)))
            .filter(|(_, n)| *n > 0)
            .collect();
        ranges.sort_by_key(|r| std::cmp::Reverse(r.1));
        if let Some((c, _)) = ranges.first() {
            columns.push((*c).to_owned());
            range_column = Some((*c).to_owned());
        }
    }
    // An index that already leads with these columns serves the statements.
    if let Some(ix) = input.indexes.iter().find(|ix| {
        ix.valid
            && !ix.partial
            && ix.method == "btree"
            && ix.columns.len() >= columns.len()
            && ix.columns[..columns.len()] == columns[..]
    }) {
        return none(
            reasons,
            format!(
                "no index suggested: index {} already leads with ({}); if the statements still scan sequentially, their selectivity is low or the statistics are stale (ANALYZE {})",
                ix.name,
                columns.join(", "),
                input.table.qualified
            ),
            predicates,
        );
    }
    for ix in input.indexes {
        if ix.columns.first() == columns.first() && ix.method == "btree" {
            if !ix.valid {
                reasons.push(format!(
                    "index {} on ({}) is INVALID (a failed CREATE INDEX CONCURRENTLY): the planner ignores it; drop it before creating the suggested one",
                    ix.name,
                    ix.columns.join(", ")
                ));
            } else if ix.partial {
                reasons.push(format!(
                    "index {} leads with {} but is partial: it serves only the statements that imply its WHERE",
                    ix.name, lead.column
                ));
            } else {
                reasons.push(format!(
                    "index {} already leads with {}; the suggested one adds {} for the statements that compare them together",
                    ix.name,
                    lead.column,
                    columns[1..].join(", ")
                ));
            }
        }
    }
    let shown: Vec<String> = with_lead
        .iter()
        .take(3)
        .map(|st| {
            format!(
                "`{}` ({} calls, {} ms in all)",
                excerpt(&st.query, 100),
                st.calls,
                st.total_ms
            )
        })
        .collect();
    reasons.push(format!(
        "{} leads: {} of the {} heaviest statements that mention {} compare it by {}{}: {}",
        lead.column,
        with_lead.len(),
        statements.len(),
        input.table.qualified,
        if lead_equality { "equality" } else { "range" },
        lead.distinct.map_or(String::new(), |d| format!(
            " (about {d:.0} distinct values)"
        )),
        shown.join("; ")
    ));
    for c in &columns[1..] {
        if Some(c) == range_column.as_ref() {
            reasons.push(format!(
                "{c} is compared by range in the same statements: it comes last, since a btree serves a range only after the equality columns before it"
            ));
        } else {
            reasons.push(format!(
                "{c} is compared by equality in the same statements: it follows {}",
                lead.column
            ));
        }
    }
    let quoted: Vec<String> = columns
        .iter()
        .map(|c| {
            input
                .table
                .columns
                .iter()
                .find(|col| &col.name == c)
                .map_or_else(|| c.clone(), |col| col.quoted.clone())
        })
        .collect();
    let sql = if input.table.partitioned {
        reasons.push(
            "the table is partitioned, and CREATE INDEX on a partitioned table cannot be CONCURRENTLY: it blocks writes while it builds (or create it on each partition CONCURRENTLY, then ON ONLY the parent, and attach them)".to_owned(),
        );
        format!(
            "CREATE INDEX ON {} ({})",
            input.table.qualified,
            quoted.join(", ")
        )
    } else {
        reasons.push(
            "CONCURRENTLY builds it without blocking writes (it takes longer and cannot run inside a transaction block)".to_owned(),
        );
        format!(
            "CREATE INDEX CONCURRENTLY ON {} ({})",
            input.table.qualified,
            quoted.join(", ")
        )
    };
    IndexAdvice {
        predicates,
        suggestion: Some(Suggestion {
            sql,
            columns,
            reasons: reasons.clone(),
        }),
        reasons,
    }
}

fn scan_facts(s: &TableStats) -> String {
    let per_scan = s
        .rows_per_seq_scan
        .map_or(String::new(), |r| format!(", {r} rows per scan"));
    let share = if s.seq_scan + s.idx_scan > 0 {
        format!(
            " ({:.0}% of its scans sequential)",
            100.0 * s.seq_scan as f64 / (s.seq_scan + s.idx_scan) as f64
        )
    } else {
        String::new()
    };
    format!(
        "{} sequential scans read {} rows{per_scan}; {} index scans{share}; about {} live rows",
        s.seq_scan, s.seq_tup_read, s.idx_scan, s.n_live_tup
    )
}

/// Per column, how many statements compare it, most used first (equality, then range, then
/// total time, then the column's position).
fn tally(
    statements: &[HeavyStatement],
    table: &Table,
    distinct: &BTreeMap<String, f64>,
) -> Vec<PredicateColumn> {
    let mut out: Vec<PredicateColumn> = table
        .columns
        .iter()
        .filter_map(|c| {
            let eq: Vec<&HeavyStatement> = statements
                .iter()
                .filter(|s| s.equality.contains(&c.name))
                .collect();
            let range: Vec<&HeavyStatement> = statements
                .iter()
                .filter(|s| s.range.contains(&c.name))
                .collect();
            if eq.is_empty() && range.is_empty() {
                return None;
            }
            let total: f64 = eq.iter().chain(range.iter()).map(|s| s.total_ms).sum();
            Some(PredicateColumn {
                column: c.name.clone(),
                equality: eq.len(),
                range: range.len(),
                total_ms: round3(total),
                distinct: distinct.get(&c.name).copied(),
            })
        })
        .collect();
    // Stable: ties keep the columns' order in the table.
    out.sort_by(|a, b| {
        b.equality
            .cmp(&a.equality)
            .then(b.range.cmp(&a.range))
            .then(b.total_ms.total_cmp(&a.total_ms))
    });
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kinds(sql: &str) -> Vec<(TokKind, String)> {
        lex(sql).0.into_iter().map(|t| (t.kind, t.text)).collect()
    }

    #[test]
    fn lexer_skips_comments_and_keeps_strings_whole() {
        let toks = kinds(
            "/* a /* nested */ comment */ SELECT 'it''s; here' -- tail ;\n, \"we\"\"ird\", $q$ ; $q$, E'a\\'b;', $1, x::int",
        );
        let texts: Vec<&str> = toks.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "SELECT",
                "'it''s; here'",
                ",",
                "we\"ird",
                ",",
                "$q$ ; $q$",
                ",",
                "E'a\\'b;'",
                ",",
                "$1",
                ",",
                "x",
                "::",
                "int"
            ]
        );
        assert_eq!(toks[3].0, TokKind::QuotedIdent);
        assert_eq!(toks[9].0, TokKind::Param);
    }

    #[test]
    fn lexer_splits_operators_as_postgres_does() {
        let texts: Vec<String> = kinds("a=-1 AND b<=$2 AND c<>3 AND d||'x'")
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        assert_eq!(
            texts,
            vec![
                "a", "=", "-", "1", "AND", "b", "<=", "$2", "AND", "c", "<>", "3", "AND", "d",
                "||", "'x'"
            ]
        );
    }

    #[test]
    fn lexer_reports_what_is_not_terminated() {
        assert_eq!(
            lex("SELECT 'abc").1,
            Some(LexError {
                what: "string constant",
                at: 8
            })
        );
        assert!(lex("SELECT 1 /* /* */").1.is_some());
        assert!(lex("SELECT $$abc").1.is_some());
        assert!(lex("SELECT \"abc").1.is_some());
    }

    #[test]
    fn classifier_accepts_one_read_or_dml_statement() {
        for (sql, kind, writes) in [
            ("SELECT 1", "SELECT", false),
            (
                "  -- why\n /* c */ select * from t;  -- done",
                "SELECT",
                false,
            ),
            ("(SELECT 1) UNION (SELECT 2)", "SELECT", false),
            ("VALUES (1)", "VALUES", false),
            ("INSERT INTO t VALUES (1)", "INSERT", true),
            ("update t set a = 1", "UPDATE", true),
            ("DELETE FROM t WHERE a = ';'", "DELETE", true),
            ("WITH x AS (SELECT 1) SELECT * FROM x", "WITH", false),
            ("SELECT * FROM t FOR UPDATE", "SELECT", true),
            ("SELECT * INTO t2 FROM t", "SELECT", true),
            (
                "WITH x AS (SELECT * FROM t FOR NO KEY UPDATE) SELECT 1",
                "WITH",
                true,
            ),
            ("SELECT $$;DROP TABLE t;$$", "SELECT", false),
        ] {
            let e = Explainable::new(sql, false).unwrap_or_else(|r| panic!("{sql}: {r}"));
            assert_eq!((e.kind(), e.writes()), (kind, writes), "{sql}");
        }
        assert_eq!(
            Explainable::new("select 1 ; -- c\n /* d */", false)
                .unwrap()
                .sql(),
            "select 1"
        );
    }

    #[test]
    fn classifier_refuses_several_statements_even_with_allow_writes() {
        for sql in [
            "SELECT 1; DROP TABLE t",
            "SELECT 1;;",
            "SELECT 'a'';'; DELETE FROM t",
            "SELECT 1 /* ; */ ; /* x */ SELECT 2",
        ] {
            assert!(
                matches!(Explainable::new(sql, true), Err(Refusal::Several { .. })),
                "{sql}"
            );
        }
        let Err(Refusal::Several { at, next }) = Explainable::new("SELECT 1; DROP TABLE t", false)
        else {
            panic!("not refused");
        };
        assert_eq!((at, next.as_str()), (9, "DROP TABLE t"));
    }

    #[test]
    fn classifier_refuses_other_statements_unless_allowed() {
        assert!(matches!(
            Explainable::new("DROP TABLE t", true),
            Err(Refusal::NotExplainable { keyword }) if keyword == "DROP"
        ));
        assert!(matches!(
            Explainable::new("/* x */ truncate t", false),
            Err(Refusal::NotExplainable { .. })
        ));
        assert!(matches!(
            Explainable::new("CREATE TABLE t2 AS SELECT 1", false),
            Err(Refusal::NeedsAllowWrites { keyword }) if keyword == "CREATE"
        ));
        assert!(Explainable::new("CREATE TABLE t2 AS SELECT 1", true).is_ok());
        assert!(matches!(
            Explainable::new("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", false),
            Err(Refusal::WritingWith { keyword, at: 12 }) if keyword == "DELETE"
        ));
        assert!(matches!(
            Explainable::new("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", false),
            Err(Refusal::WritingWith { .. })
        ));
        let w = Explainable::new(
            "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
            true,
        )
        .unwrap();
        assert!(w.writes());
        assert!(matches!(
            Explainable::new("EXPLAIN SELECT 1", true),
            Err(Refusal::AlreadyExplain)
        ));
        assert!(matches!(
            Explainable::new("SELECT * FROM t WHERE a = $1", false),
            Err(Refusal::Parameters { .. })
        ));
        assert!(matches!(
            Explainable::new(" -- nothing\n", false),
            Err(Refusal::Empty)
        ));
        assert!(matches!(
            Explainable::new("SELECT 'x; DROP TABLE t", false),
            Err(Refusal::Lex(_))
        ));
        assert!(Refusal::Empty.is_usage());
        assert!(
            !Refusal::NotExplainable {
                keyword: "DROP".into()
            }
            .is_usage()
        );
    }

    #[test]
    fn threshold_parses_postgres_time_units() {
        for (s, ms, shown) in [
            ("1s", 1000.0, "1s"),
            ("250ms", 250.0, "250ms"),
            ("2min", 120_000.0, "2min"),
            ("1.5s", 1500.0, "1500ms"),
            ("100", 100.0, "100ms"),
            (" 3 s ", 3000.0, "3s"),
            ("0", 0.0, "0"),
        ] {
            let t = Threshold::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!((t.ms(), t.to_string().as_str()), (ms, shown), "{s}");
        }
        for s in ["", "fast", "1 parsec", "-1s", "1S", "inf"] {
            assert!(Threshold::parse(s).is_err(), "{s}");
        }
        let e = Threshold::parse("5 parsecs").unwrap_err().to_string();
        assert!(
            e.contains("unknown unit `parsecs`") && e.contains("us, ms, s, min, h, d"),
            "{e}"
        );
    }

    #[test]
    fn preload_list_is_read_as_postgres_reads_it() {
        assert!(preloads_pg_stat_statements("pg_stat_statements"));
        assert!(preloads_pg_stat_statements(
            "auto_explain, \"pg_stat_statements\""
        ));
        assert!(preloads_pg_stat_statements("$libdir/pg_stat_statements.so"));
        assert!(!preloads_pg_stat_statements(""));
        assert!(!preloads_pg_stat_statements("auto_explain,pg_stat_kcache"));
    }

    fn plan() -> Value {
        json!([{
            "Plan": {
                "Node Type": "Hash Join", "Actual Total Time": 50.0, "Actual Loops": 1,
                "Actual Rows": 100, "Plan Rows": 10, "Shared Hit Blocks": 30,
                "Shared Read Blocks": 70, "Hash Cond": "(a.id = b.a_id)",
                "Plans": [
                    {"Node Type": "Seq Scan", "Relation Name": "a", "Alias": "a",
                     "Actual Total Time": 30.0, "Actual Loops": 1, "Actual Rows": 1000,
                     "Plan Rows": 1000, "Shared Hit Blocks": 10, "Shared Read Blocks": 60,
                     "Filter": "(x > 1)", "Rows Removed by Filter": 5},
                    {"Node Type": "Hash", "Actual Total Time": 12.0, "Actual Loops": 1,
                     "Actual Rows": 10, "Plan Rows": 10,
                     "Plans": [
                        {"Node Type": "Index Scan", "Relation Name": "b", "Index Name": "b_pkey",
                         "Actual Total Time": 2.5, "Actual Loops": 4, "Actual Rows": 2,
                         "Plan Rows": 1}
                     ]},
                    {"Node Type": "Seq Scan", "Relation Name": "c", "Actual Loops": 0,
                     "Plan Rows": 5}
                ]
            },
            "Planning Time": 0.5,
            "Execution Time": 51.0,
            "Triggers": [{"Trigger Name": "fk", "Time": 1.25, "Calls": 3}]
        }])
    }

    #[test]
    fn plan_summary_ranks_nodes_by_their_own_time() {
        let (summary, nodes) = summarize_plan(&plan(), 5).unwrap();
        assert_eq!(summary.execution_ms, Some(51.0));
        assert_eq!(summary.planning_ms, Some(0.5));
        assert_eq!(summary.triggers_ms, 1.25);
        assert_eq!(summary.node_count, 5);
        assert_eq!(
            (summary.shared_hit_blocks, summary.shared_read_blocks),
            (30, 70)
        );
        let got: Vec<(&str, f64)> = nodes
            .iter()
            .map(|n| (n.node_type.as_str(), n.self_ms))
            .collect();
        // Seq Scan a 30; Index Scan 2.5 × 4 = 10; Hash 12 − 10 = 2; Hash Join 50 − 30 − 12 − 0
        // = 8; the never-executed scan 0.
        assert_eq!(
            got,
            vec![
                ("Seq Scan", 30.0),
                ("Index Scan", 10.0),
                ("Hash Join", 8.0),
                ("Hash", 2.0),
                ("Seq Scan", 0.0)
            ]
        );
        let scan = &nodes[0];
        assert_eq!(scan.relation.as_deref(), Some("a"));
        assert_eq!(scan.condition.as_deref(), Some("Filter: (x > 1)"));
        assert_eq!(scan.rows_removed_by_filter, Some(5.0));
        assert_eq!(scan.self_share, Some(round3(30.0 / 51.0)));
        assert_eq!(nodes[1].index.as_deref(), Some("b_pkey"));
        assert_eq!((nodes[1].loops, nodes[1].depth), (4, 2));
        assert_eq!(nodes[1].estimate_factor, Some(2.0));
        assert_eq!(nodes[4].estimate_factor, None);
        let (_, two) = summarize_plan(&plan()[0], 2).unwrap();
        assert_eq!(two.len(), 2);
        assert!(summarize_plan(&json!([]), 5).is_err());
        assert!(summarize_plan(&json!({"x": 1}), 5).is_err());
    }

    #[test]
    fn a_child_slower_than_its_parent_leaves_the_parent_no_time() {
        // Parallel workers: the child's time × loops sums the workers' time.
        let p = json!({"Plan": {"Node Type": "Gather", "Actual Total Time": 10.0, "Actual Loops": 1, "Workers Launched": 2,
            "Plans": [{"Node Type": "Parallel Seq Scan", "Actual Total Time": 9.0, "Actual Loops": 3}]}});
        let (summary, nodes) = summarize_plan(&p, 5).unwrap();
        assert_eq!(summary.parallel_workers, 2);
        assert_eq!(nodes[0].self_ms, 27.0);
        assert_eq!(nodes[1].self_ms, 0.0);
    }

    fn orders() -> Table {
        Table {
            schema: "public".into(),
            name: "orders".into(),
            qualified: "public.orders".into(),
            partitioned: false,
            columns: ["id", "customer_id", "status", "created_at", "Total"]
                .iter()
                .map(|c| Column {
                    name: (*c).to_owned(),
                    quoted: if *c == "Total" {
                        "\"Total\"".into()
                    } else {
                        (*c).to_owned()
                    },
                })
                .collect(),
            oid: 1,
        }
    }

    fn preds(sql: &str) -> Option<(Vec<String>, Vec<String>)> {
        predicates(sql, &orders()).map(|p| {
            (
                p.equality.into_iter().collect(),
                p.range.into_iter().collect(),
            )
        })
    }

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn predicates_are_read_from_where_and_on() {
        assert_eq!(
            preds("SELECT * FROM orders WHERE customer_id = $1 AND created_at >= $2"),
            Some((v(&["customer_id"]), v(&["created_at"])))
        );
        assert_eq!(
            preds(
                "select o.id from public.orders o join customers c on c.id = o.customer_id \
                 where o.status in ($1, $2) and c.status = $3 and o.created_at between $4 and $5 \
                 order by o.id limit $6"
            ),
            Some((v(&["customer_id", "status"]), v(&["created_at"])))
        );
        assert_eq!(
            preds("UPDATE orders SET status = $1 WHERE id = $2"),
            Some((v(&["id"]), v(&[])))
        );
        assert_eq!(
            preds("DELETE FROM orders AS x WHERE $1 > x.created_at AND x.\"Total\" IS NULL"),
            Some((v(&["Total"]), v(&["created_at"])))
        );
        // A function of the column, a cast, an inequality or NOT IN: no index on the column
        // serves it.
        assert_eq!(
            preds(
                "SELECT 1 FROM orders WHERE lower(status) = $1 AND id <> $2 AND customer_id NOT IN ($3)"
            ),
            Some((v(&[]), v(&[])))
        );
        // Equality wins over range for one column.
        assert_eq!(
            preds("SELECT 1 FROM orders WHERE id = $1 OR id > $2"),
            Some((v(&["id"]), v(&[])))
        );
        // Another table's columns, a column of the same name in a subquery's other table.
        assert_eq!(
            preds("SELECT * FROM customers WHERE id = $1"),
            None,
            "orders is not named"
        );
        assert_eq!(
            preds(
                "SELECT * FROM orders o WHERE o.customer_id IN (SELECT c.id FROM customers c WHERE c.status = $1)"
            ),
            Some((v(&["customer_id"]), v(&[])))
        );
        assert_eq!(preds("SELECT * FROM other.orders WHERE id = $1"), None);
        assert_eq!(preds("EXPLAIN SELECT * FROM orders WHERE id = $1"), None);
        assert_eq!(
            preds("INSERT INTO orders (id) VALUES ($1)"),
            Some((v(&[]), v(&[])))
        );
    }

    fn heavy(query: &str, calls: i64, total_ms: f64) -> HeavyStatement {
        let p = predicates(query, &orders()).unwrap_or_default();
        HeavyStatement {
            query: query.to_owned(),
            calls,
            total_ms,
            mean_ms: total_ms / calls as f64,
            equality: p.equality,
            range: p.range,
        }
    }

    fn stats(seq_scan: i64, idx_scan: i64, rows: i64) -> TableStats {
        TableStats {
            seq_scan,
            seq_tup_read: seq_scan * rows,
            idx_scan,
            n_live_tup: rows,
            rows_per_seq_scan: (seq_scan > 0).then_some(rows),
            size_bytes: rows * 100,
        }
    }

    fn pkey() -> ExistingIndex {
        ExistingIndex {
            name: "orders_pkey".into(),
            columns: v(&["id"]),
            method: "btree".into(),
            unique: true,
            primary: true,
            valid: true,
            partial: false,
            idx_scan: 0,
            definition: String::new(),
        }
    }

    fn advise(
        stats: &TableStats,
        indexes: &[ExistingIndex],
        statements: Result<&[HeavyStatement], &str>,
        distinct: &BTreeMap<String, f64>,
    ) -> IndexAdvice {
        suggest_index(&IndexInput {
            table: &orders(),
            stats,
            indexes,
            statements,
            distinct,
        })
    }

    #[test]
    fn suggestion_puts_equality_columns_first_then_one_range_column() {
        let st = vec![
            heavy(
                "SELECT * FROM orders WHERE customer_id = $1 AND created_at > $2 AND \"Total\" = $3",
                100,
                9000.0,
            ),
            heavy("SELECT * FROM orders WHERE customer_id = $1", 50, 4000.0),
            heavy("SELECT * FROM orders WHERE created_at < $1", 10, 3000.0),
            heavy("SELECT count(*) FROM orders", 10, 2000.0),
        ];
        let a = advise(
            &stats(500, 10, 1_000_000),
            &[pkey()],
            Ok(&st),
            &BTreeMap::new(),
        );
        let s = a.suggestion.unwrap_or_else(|| panic!("{:?}", a.reasons));
        assert_eq!(s.columns, v(&["customer_id", "Total", "created_at"]));
        assert_eq!(
            s.sql,
            "CREATE INDEX CONCURRENTLY ON public.orders (customer_id, \"Total\", created_at)"
        );
        assert_eq!(s.reasons, a.reasons);
        assert!(
            a.reasons[0].contains("500 sequential scans"),
            "{:?}",
            a.reasons
        );
        assert!(
            a.reasons
                .iter()
                .any(|r| r.starts_with("customer_id leads: 2 of the 4 heaviest"))
        );
        assert_eq!(a.predicates[0].column, "customer_id");
        assert_eq!((a.predicates[0].equality, a.predicates[0].range), (2, 0));
    }

    #[test]
    fn no_suggestion_when_an_index_leads_with_the_columns_or_scans_do_not_call_for_one() {
        let st = vec![heavy(
            "SELECT * FROM orders WHERE customer_id = $1",
            50,
            4000.0,
        )];
        let none = BTreeMap::new();
        let mut ix = pkey();
        ix.name = "orders_customer".into();
        ix.columns = v(&["customer_id", "status"]);
        let a = advise(&stats(500, 10, 1_000_000), &[ix.clone()], Ok(&st), &none);
        assert!(a.suggestion.is_none());
        assert!(
            a.reasons
                .last()
                .unwrap()
                .contains("orders_customer already leads")
        );
        // An invalid index does not count, and is named.
        ix.valid = false;
        let a = advise(&stats(500, 10, 1_000_000), &[ix], Ok(&st), &none);
        assert!(a.suggestion.is_some());
        assert!(a.reasons.iter().any(|r| r.contains("INVALID")));

        let a = advise(&stats(500, 10, 2_000), &[], Ok(&st), &none);
        assert!(a.suggestion.is_none() && a.reasons.last().unwrap().contains("2000 rows"));
        let a = advise(&stats(10, 500, 1_000_000), &[], Ok(&st), &none);
        assert!(a.suggestion.is_none() && a.reasons.last().unwrap().contains("dominate"));
        let a = advise(&stats(0, 0, 1_000_000), &[], Ok(&st), &none);
        assert!(a.suggestion.is_none());
        let a = advise(&stats(500, 0, 1_000_000), &[], Err("not loaded"), &none);
        assert!(a.suggestion.is_none() && a.reasons.last().unwrap().contains("not loaded"));
        let bare = vec![heavy("SELECT count(*) FROM orders", 10, 2000.0)];
        let a = advise(&stats(500, 0, 1_000_000), &[], Ok(&bare), &none);
        assert!(a.suggestion.is_none() && a.reasons.last().unwrap().contains("compares"));
    }

    #[test]
    fn a_column_of_few_values_does_not_lead() {
        let st = vec![
            heavy(
                "SELECT * FROM orders WHERE status = $1 AND created_at > $2",
                90,
                9000.0,
            ),
            heavy("SELECT * FROM orders WHERE status = $1", 90, 9000.0),
        ];
        let distinct = BTreeMap::from([("status".to_owned(), 2.0)]);
        let a = advise(&stats(500, 0, 1_000_000), &[], Ok(&st), &distinct);
        let s = a.suggestion.unwrap_or_else(|| panic!("{:?}", a.reasons));
        assert_eq!(s.columns, v(&["created_at"]));
        assert!(a.reasons.iter().any(|r| r.contains("too few to lead")));
    }

    #[test]
    fn a_partitioned_table_gets_a_plain_create_index() {
        let st = vec![heavy(
            "SELECT * FROM orders WHERE customer_id = $1",
            50,
            4000.0,
        )];
        let mut t = orders();
        t.partitioned = true;
        let a = suggest_index(&IndexInput {
            table: &t,
            stats: &stats(500, 0, 1_000_000),
            indexes: &[],
            statements: Ok(&st),
            distinct: &BTreeMap::new(),
        });
        let s = a.suggestion.unwrap();
        assert_eq!(s.sql, "CREATE INDEX ON public.orders (customer_id)");
    }

    #[test]
    fn excerpt_is_one_line_and_cut() {
        assert_eq!(excerpt("SELECT\n  *\tFROM t", 80), "SELECT * FROM t");
        assert_eq!(excerpt("abcdefghij", 5), "abcd…");
    }
}

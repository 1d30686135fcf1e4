//! KDL → JSON value, remembering where every key and value stands in the source: the second
//! spelling of a spec, producing exactly what [`super::yaml::parse`] produces for the same
//! spec in YAML, so that the schema, the semantic checks and the model see one value.
//!
//! The mapping is generic: it knows no field name of the spec, so a field added to the model
//! needs no change here. KDL 2.0 syntax only (the `kdl` crate without its `v1-fallback`): a
//! KDL 1.0 file is refused with a hint at what changed (`#true`, `#null`, `#"raw"#`).
//!
//! | KDL | JSON |
//! | --- | --- |
//! | `name value` | `"name": value` (string, integer, float, `#true`/`#false`, `#null`) |
//! | `name v1 v2 …` (several arguments) | `"name": [v1, v2, …]` |
//! | `name { children }` | `"name": { …children… }` |
//! | `name key=value …` (properties) | `"name": { "key": value, … }`, merged with children if any |
//! | `name { }` | `"name": {}` (an empty mapping) |
//! | `name` (nothing after it) | `"name": null` |
//! | `name { - …; - … }` (every child is `-`) | `"name": [ …items… ]` |
//! | `- value` / `- v1 v2` / `- key=value { … }` | a list item: a scalar / a list / a mapping |
//!
//! - The document's top-level nodes form the root mapping.
//! - A list of one item is written with `-` (`in_roles { - "app" }`): `name value` is always a
//!   scalar. There is no spelling of an empty list: leave the field out (every list of the
//!   model defaults to empty).
//! - Errors: the same name twice in one block (as nodes, properties, or one of each), `-` items
//!   mixed with named nodes, properties on a `-` list, arguments together with properties or
//!   children, type annotations (`(u8)5`), and numbers JSON cannot hold (`#inf`, `#nan`).
//! - Numbers as in YAML: an integer stays an integer (beyond 64 bits it becomes a float), and a
//!   float with an integral value (`2.0`, `1e3`) becomes an integer, so that `replicas 2.0`
//!   means what `replicas: 2.0` means.
//! - Positions: a key is at its node's name (or its property's name), a value at its argument
//!   or property value; a mapping at its first key, a list at its first item.

use std::collections::HashMap;

use ::kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};
use miette::Diagnostic as _;
use serde_json::{Map, Number, Value};

use super::diagnostic::{LineIndex, Pos};
use super::positions::{Positions, escape_segment};

/// A KDL problem at a position, with the width and label of what the snippet underlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KdlError {
    pub pos: Pos,
    /// Characters to underline from `pos` (at least 1).
    pub width: usize,
    pub label: Option<String>,
    pub message: String,
}

/// Parses a KDL document into a JSON value and the positions of its nodes.
/// `Ok(None)` for a document with no node (empty, or only comments). On error, every problem
/// found: the parser's syntax errors (the first of each line), or every problem of the mapping.
pub(crate) fn parse(text: &str) -> Result<Option<(Value, Positions)>, Vec<KdlError>> {
    let index = LineIndex::new(text);
    prescan(text, &index).map_err(|e| vec![e])?;
    on_parser_stack(|| {
        let doc = KdlDocument::parse_v2(text).map_err(|e| syntax_errors(text, &index, &e))?;
        if doc.nodes().is_empty() {
            return Ok(None);
        }
        let mut builder = Builder {
            index: &index,
            positions: Positions::default(),
            errors: Vec::new(),
        };
        let (value, at) = builder.block(&[], doc.nodes(), "", Pos::START, 0);
        builder.positions.values.insert(String::new(), at);
        if builder.errors.is_empty() {
            return Ok(Some((value, builder.positions)));
        }
        let mut errors = builder.errors;
        errors.sort_by_key(|e| e.pos);
        Err(at_most_max_errors(errors))
    })
    .unwrap_or_else(|message| Err(vec![error(Pos::START, 1, message)]))
}

/// Largest KDL spec accepted. A cluster spec is a few KiB; the bound keeps the parser's
/// recursion (one level per stray character at the top level) within [`PARSER_STACK`].
const MAX_BYTES: usize = 256 * 1024;
/// Most `{` and `/*` a KDL spec may hold: each can open one more level of the parser's
/// recursion, a few KiB of stack each.
const MAX_BLOCKS: usize = 4096;
/// Stack of the thread that runs the `kdl` parser, whose recursive descent overflows a 2 MiB
/// stack (a test's or a tokio worker's) at about 60 nested blocks or 3000 stray characters.
/// Reserved, not committed: only a pathological file touches more than a few pages of it.
const PARSER_STACK: usize = 512 * 1024 * 1024;
/// Most problems reported for one file; past them, one line says how many more there are.
const MAX_ERRORS: usize = 100;
/// Longest token a hint quotes back.
const MAX_TOKEN: usize = 80;
/// Deepest nesting of blocks mapped (a spec needs about 6), as the YAML parser allows.
const MAX_DEPTH: usize = 64;

/// Runs `f` on a thread with [`PARSER_STACK`]; a panic there comes back as an error message.
fn on_parser_stack<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, String> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("kdl-parser".to_owned())
            .stack_size(PARSER_STACK)
            .spawn_scoped(scope, f)
            .map_err(|e| format!("cannot start the KDL parser: {e}"))?;
        handle
            .join()
            .map_err(|_| "internal error: the KDL parser failed on this file".to_owned())
    })
}

/// The first [`MAX_ERRORS`] problems, and in place of the rest one that counts them.
fn at_most_max_errors(mut errors: Vec<KdlError>) -> Vec<KdlError> {
    if errors.len() > MAX_ERRORS {
        let more = errors.len() - MAX_ERRORS;
        errors.truncate(MAX_ERRORS + 1);
        if let Some(last) = errors.last_mut() {
            last.message = format!("… and {more} more problems");
            last.label = None;
        }
    }
    errors
}

fn error(pos: Pos, width: usize, message: impl Into<String>) -> KdlError {
    KdlError {
        pos,
        width,
        label: None,
        message: message.into(),
    }
}

/// What the `kdl` parser cannot take without overflowing its stack or taking minutes: a file
/// beyond [`MAX_BYTES`], more than [`MAX_BLOCKS`] blocks, `/-` slashdashing another `/-`.
fn prescan(text: &str, index: &LineIndex<'_>) -> Result<(), KdlError> {
    if text.len() > MAX_BYTES {
        return Err(error(
            Pos::START,
            1,
            format!(
                "the file is {} KiB; a KDL spec may be at most {} KiB",
                text.len().div_ceil(1024),
                MAX_BYTES / 1024
            ),
        ));
    }
    let b = text.as_bytes();
    // Counted over every byte, in strings and comments too: a bound that cannot be fooled.
    let mut blocks = 0;
    for (i, &c) in b.iter().enumerate() {
        if c == b'{' || (c == b'/' && b.get(i + 1) == Some(&b'*')) {
            blocks += 1;
            if blocks > MAX_BLOCKS {
                return Err(error(
                    index.pos(i),
                    1,
                    format!(
                        "more than {MAX_BLOCKS} `{{` blocks and `/*` comments; a spec needs a \
                         few dozen"
                    ),
                ));
            }
        }
    }
    // A `/-` right after a `/-` makes the parser backtrack for minutes on a long chain.
    let mut pending = false;
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1).copied()) {
            (b'/', Some(b'/')) => {
                i = b[i..]
                    .iter()
                    .position(|&c| c == b'\n' || c == b'\r')
                    .map_or(b.len(), |n| i + n);
            }
            (b'/', Some(b'*')) => i = skip_block_comment(b, i),
            (b'/', Some(b'-')) => {
                if pending {
                    return Err(error(
                        index.pos(i),
                        2,
                        "`/-` comments out the next node, value or block, not another `/-`",
                    ));
                }
                pending = true;
                i += 2;
            }
            (b'"', _) => {
                i = skip_string(b, i, 0);
                pending = false;
            }
            (b'#', _) => {
                let hashes = b[i..].iter().take_while(|&&c| c == b'#').count();
                i = if b.get(i + hashes) == Some(&b'"') {
                    skip_string(b, i + hashes, hashes)
                } else {
                    i + hashes
                };
                pending = false;
            }
            (b' ' | b'\t' | b'\n' | b'\r' | b'\\', _) => i += 1,
            _ => {
                pending = false;
                i += 1;
            }
        }
    }
    Ok(())
}

/// The offset just past the (nested) block comment opening at `start`, or the end.
fn skip_block_comment(b: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < b.len() {
        match (b[i], b.get(i + 1).copied()) {
            (b'/', Some(b'*')) => {
                depth += 1;
                i += 2;
            }
            (b'*', Some(b'/')) => {
                depth = depth.saturating_sub(1);
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    b.len()
}

/// The offset just past the string whose opening quote is at `quote`: `"…"`, `"""…"""`, or
/// with `hashes` > 0 the raw `#"…"#` and `#"""…"""#`. A single-line string ends at a newline
/// (where the parser stops it with an error), an unterminated one at the end.
fn skip_string(b: &[u8], quote: usize, hashes: usize) -> usize {
    let multi = b[quote..].starts_with(b"\"\"\"");
    let delimiter: Vec<u8> = if multi { &b"\"\"\""[..] } else { &b"\""[..] }
        .iter()
        .copied()
        .chain(std::iter::repeat_n(b'#', hashes))
        .collect();
    let mut i = quote + if multi { 3 } else { 1 };
    while i < b.len() {
        if hashes == 0 && b[i] == b'\\' {
            i += 2;
        } else if b[i..].starts_with(&delimiter) {
            return i + delimiter.len();
        } else if !multi && (b[i] == b'\n' || b[i] == b'\r') {
            return i;
        } else {
            i += 1;
        }
    }
    b.len()
}

/// The parser's errors as positioned problems: the first of each line (the rest of a line is
/// mostly the parser recovering), each with our hint where a common slip is recognised.
fn syntax_errors(text: &str, index: &LineIndex<'_>, e: &::kdl::KdlError) -> Vec<KdlError> {
    let mut found: Vec<(Pos, usize, usize, &::kdl::KdlDiagnostic)> = e
        .diagnostics
        .iter()
        .map(|d| {
            let (offset, len) = d
                .labels()
                .and_then(|mut labels| labels.next())
                .map_or((d.span.offset(), d.span.len()), |l| (l.offset(), l.len()));
            (index.pos(offset), offset, len, d)
        })
        .collect();
    found.sort_by_key(|f| f.0);
    found.dedup_by_key(|f| f.0.line);
    let mut out: Vec<KdlError> = found
        .into_iter()
        .map(|(pos, offset, len, d)| {
            let mut message = format!("invalid KDL: {}", lowercase_first(&d.to_string()));
            let hint = hint(text, offset).or_else(|| d.help().map(|h| h.to_string()));
            if let Some(hint) = hint {
                message.push_str(&format!(
                    " ({})",
                    lowercase_first(hint.trim_end_matches('.'))
                ));
            }
            KdlError {
                pos,
                width: index.chars_between(offset, offset + len).max(1),
                label: d
                    .labels()
                    .and_then(|mut labels| labels.next())
                    .and_then(|l| l.label().map(str::to_owned)),
                message,
            }
        })
        .collect();
    if out.is_empty() {
        out.push(error(Pos::START, 1, "invalid KDL"));
    }
    at_most_max_errors(out)
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        // Keep acronyms (`EOF`) as they are.
        (Some(a), Some(b)) if a.is_uppercase() && !b.is_uppercase() => a
            .to_lowercase()
            .chain(std::iter::once(b))
            .chain(chars)
            .collect(),
        _ => s.to_owned(),
    }
}

/// A hint for the slips a DBA makes most, from the token where the parser stopped.
fn hint(text: &str, offset: usize) -> Option<String> {
    let token: String = text
        .get(offset..)?
        .chars()
        .take_while(|&c| !(c.is_whitespace() || matches!(c, ';' | '{' | '}')))
        .take(MAX_TOKEN + 1)
        .collect();
    if token.is_empty() || token.chars().count() > MAX_TOKEN {
        return None;
    }
    let token = token.as_str();
    let quoted = format!("quote it: {}", serde_json::Value::from(token));
    match token {
        "true" | "false" | "null" => {
            return Some(format!(
                "KDL 2 writes #{token}, KDL 1 wrote {token}; quote it to mean the string"
            ));
        }
        "inf" | "-inf" | "nan" => return Some(format!("KDL 2 writes #{token}")),
        _ => {}
    }
    if token.starts_with("r\"") || token.starts_with("r#") {
        return Some("KDL 2 writes raw strings as #\"…\"#, KDL 1 wrote r\"…\"".to_owned());
    }
    let digits = token.trim_start_matches(['-', '+', '.']);
    if digits.starts_with(|c: char| c.is_ascii_digit()) {
        return Some(format!(
            "{quoted}; a bare value that starts with a digit must be a number"
        ));
    }
    let comment = token.starts_with("//") || token.starts_with("/*") || token.starts_with("/-");
    if token.contains('/') && !comment {
        return Some(quoted);
    }
    None
}

struct Builder<'a> {
    index: &'a LineIndex<'a>,
    positions: Positions,
    errors: Vec<KdlError>,
}

/// One member of a mapping being built: its name, where the name stands, its value and where
/// the value stands.
struct Member {
    name: String,
    key_at: Pos,
    value: Value,
    value_at: Pos,
}

impl Builder<'_> {
    fn at(&self, span: miette::SourceSpan) -> Pos {
        self.index.pos(span.offset())
    }

    fn fail(&mut self, span: miette::SourceSpan, message: impl Into<String>) {
        let width = self
            .index
            .chars_between(span.offset(), span.offset() + span.len())
            .max(1);
        self.errors.push(error(self.at(span), width, message));
    }

    /// The value of a block: the properties of its node and its child nodes, at `pointer`.
    /// `owner_at` stands for an empty block. Returns the value and its position.
    fn block(
        &mut self,
        props: &[&KdlEntry],
        children: &[KdlNode],
        pointer: &str,
        owner_at: Pos,
        depth: usize,
    ) -> (Value, Pos) {
        let is_item = |n: &KdlNode| n.name().value() == "-";
        if let Some(first) = children.first()
            && children.iter().any(is_item)
        {
            if let Some(odd) = children.iter().find(|n| is_item(n) != is_item(first)) {
                self.fail(
                    odd.name().span(),
                    "a block holds either `-` list items or named nodes, not both",
                );
                return (Value::Null, owner_at);
            }
            if let Some(prop) = props.first() {
                self.fail(
                    prop.span(),
                    "a list (a block of `-` items) cannot also have properties",
                );
                return (Value::Null, owner_at);
            }
            let mut items = Vec::with_capacity(children.len());
            for (i, item) in children.iter().enumerate() {
                let child = format!("{pointer}/{i}");
                let (value, at) = self.node(item, &child, depth + 1);
                self.positions.values.insert(child, at);
                items.push(value);
            }
            return (Value::Array(items), self.at(first.name().span()));
        }

        let mut members: Vec<Member> = Vec::with_capacity(props.len() + children.len());
        for prop in props {
            let Some(name) = prop.name() else { continue };
            let value_at = self.value_at(prop);
            let value = self.scalar(prop, value_at);
            members.push(Member {
                name: name.value().to_owned(),
                key_at: self.at(name.span()),
                value,
                value_at,
            });
        }
        for node in children {
            let child = format!("{pointer}/{}", escape_segment(node.name().value()));
            let (value, value_at) = self.node(node, &child, depth + 1);
            members.push(Member {
                name: node.name().value().to_owned(),
                key_at: self.at(node.name().span()),
                value,
                value_at,
            });
        }
        let at = members.first().map_or(owner_at, |m| m.key_at);
        let mut map = Map::new();
        let mut first_at: HashMap<String, Pos> = HashMap::new();
        for m in members {
            if let Some(first) = first_at.get(&m.name) {
                let message = format!(
                    "`{}` is set twice (first at line {}, column {})",
                    m.name, first.line, first.column
                );
                self.errors
                    .push(error(m.key_at, m.name.chars().count().max(1), message));
                continue;
            }
            first_at.insert(m.name.clone(), m.key_at);
            let child = format!("{pointer}/{}", escape_segment(&m.name));
            self.positions.keys.insert(child.clone(), m.key_at);
            self.positions.values.insert(child, m.value_at);
            map.insert(m.name, m.value);
        }
        (Value::Object(map), at)
    }

    /// The value of one node (positions of what it holds recorded under `pointer`) and where
    /// that value stands.
    fn node(&mut self, node: &KdlNode, pointer: &str, depth: usize) -> (Value, Pos) {
        let name_at = self.at(node.name().span());
        if depth > MAX_DEPTH {
            self.fail(
                node.name().span(),
                format!("nesting deeper than {MAX_DEPTH} levels"),
            );
            return (Value::Null, name_at);
        }
        if let Some(ty) = node.ty() {
            self.fail(ty.span(), annotation_message(ty.value()));
        }
        for entry in node.entries() {
            if let Some(ty) = entry.ty() {
                self.fail(ty.span(), annotation_message(ty.value()));
            }
        }
        let (args, props): (Vec<&KdlEntry>, Vec<&KdlEntry>) =
            node.entries().iter().partition(|e| e.name().is_none());
        let children = node.children();
        match args.as_slice() {
            [] if props.is_empty() && children.is_none() => (Value::Null, name_at),
            [] => {
                let nodes = children.map_or(&[][..], KdlDocument::nodes);
                self.block(&props, nodes, pointer, name_at, depth)
            }
            [first, ..] if !props.is_empty() || children.is_some() => {
                self.fail(
                    first.span(),
                    format!(
                        "`{}` has both a value and properties or children: write a value \
                         (`name 1`), a list (`name 1 2`) or a mapping (`name key=1 {{ … }}`)",
                        node.name().value()
                    ),
                );
                (Value::Null, name_at)
            }
            [one] => {
                let at = self.value_at(one);
                (self.scalar(one, at), at)
            }
            [first, ..] => {
                let mut items = Vec::with_capacity(args.len());
                for (i, arg) in args.iter().enumerate() {
                    let at = self.value_at(arg);
                    self.positions.values.insert(format!("{pointer}/{i}"), at);
                    items.push(self.scalar(arg, at));
                }
                (Value::Array(items), self.value_at(first))
            }
        }
    }

    /// Where an entry's value stands: after its name, `=` and any type annotation.
    fn value_at(&self, entry: &KdlEntry) -> Pos {
        let span = entry.span();
        let end = span.offset() + span.len();
        let offset = entry
            .format()
            .map(|f| end.saturating_sub(f.value_repr.len()))
            .filter(|&o| o >= span.offset())
            .unwrap_or(span.offset());
        self.index.pos(offset)
    }

    /// An entry's value as a JSON scalar; numbers as YAML's core schema gives them.
    fn scalar(&mut self, entry: &KdlEntry, at: Pos) -> Value {
        match entry.value() {
            KdlValue::String(s) => Value::String(s.clone()),
            KdlValue::Bool(b) => Value::Bool(*b),
            KdlValue::Null => Value::Null,
            KdlValue::Integer(i) => {
                if let Ok(i) = i64::try_from(*i) {
                    Value::from(i)
                } else if let Ok(u) = u64::try_from(*i) {
                    Value::from(u)
                } else {
                    // Beyond 64 bits, as YAML loaders do: a float.
                    Number::from_f64(*i as f64).map_or(Value::Null, Value::Number)
                }
            }
            KdlValue::Float(f) => match float(*f) {
                Some(v) => v,
                None => {
                    let repr = entry
                        .format()
                        .map_or_else(|| f.to_string(), |fmt| fmt.value_repr.clone());
                    let message =
                        format!("`{repr}` is not a finite number; quote it if you mean a string");
                    self.errors
                        .push(error(at, repr.chars().count().max(1), message));
                    Value::Null
                }
            },
        }
    }
}

/// A finite float as JSON; integral and exactly representable, an integer (as YAML's `2.0`).
fn float(f: f64) -> Option<Value> {
    if !f.is_finite() {
        return None;
    }
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        return Some(Value::from(f as i64));
    }
    Number::from_f64(f).map(Value::Number)
}

fn annotation_message(ty: &str) -> String {
    format!(
        "type annotations like `({ty})` are not part of a spec; the field's type comes from the \
         schema"
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value(text: &str) -> Value {
        match parse(text) {
            Ok(Some((v, _))) => v,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    fn errors(text: &str) -> Vec<KdlError> {
        match parse(text) {
            Err(e) => e,
            Ok(v) => panic!("{text:?} parsed: {v:?}"),
        }
    }

    /// The one error of `text`: its position and message.
    #[track_caller]
    fn assert_error(text: &str, line: usize, column: usize, fragment: &str) {
        let e = errors(text);
        assert_eq!(e.len(), 1, "{text:?}: {e:#?}");
        assert_eq!(
            (e[0].pos.line, e[0].pos.column),
            (line, column),
            "{text:?}: {e:?}"
        );
        assert!(e[0].message.contains(fragment), "{text:?}: {e:?}");
    }

    #[test]
    fn the_convention_maps_nodes_to_json() {
        let v = value(concat!(
            "scalar 1\n",
            "list 1 \"two\" #true\n",
            "block { a 1; b { c #null } }\n",
            "props a=1 b=\"x\"\n",
            "both a=1 { b 2 }\n",
            "empty { }\n",
            "bare\n",
            "items { - name=app login=#true; - name=ro }\n",
            "words { - a; - b }\n",
            "nested { - 1 2; - { - x } }\n",
            "one { - only }\n",
        ));
        assert_eq!(
            v,
            json!({
                "scalar": 1,
                "list": [1, "two", true],
                "block": {"a": 1, "b": {"c": null}},
                "props": {"a": 1, "b": "x"},
                "both": {"a": 1, "b": 2},
                "empty": {},
                "bare": null,
                "items": [{"name": "app", "login": true}, {"name": "ro"}],
                "words": ["a", "b"],
                "nested": [[1, 2], ["x"]],
                "one": ["only"],
            })
        );
    }

    #[test]
    fn numbers_read_as_yaml_reads_them() {
        let v = value(concat!(
            "a 2\nb 2.0\nc 1e3\nd 0.9\ne -5\nf 0x1F\ng 0o17\nh 1_000\n",
            "i 18446744073709551615\nj 170141183460469231731687303715884105727\n",
            "k \"100\"\nl on\n",
        ));
        assert_eq!(
            v,
            json!({"a": 2, "b": 2, "c": 1000, "d": 0.9, "e": -5, "f": 31, "g": 15, "h": 1000,
                   "i": 18446744073709551615u64, "j": 1.7014118346046923e38, "k": "100", "l": "on"})
        );
        assert!(v["a"].is_i64() && v["b"].is_i64() && v["d"].is_f64());
    }

    #[test]
    fn the_top_level_can_be_a_list_for_the_schema_to_refuse() {
        assert_eq!(value("- 1\n- 2\n"), json!([1, 2]));
    }

    #[test]
    fn positions_point_at_names_and_values() {
        let text = concat!(
            "spec {\n",
            "  postgres {\n",
            "    parameters {\n",
            "      work_mem \"4MB\"\n",
            "    }\n",
            "  }\n",
            "  provider { local pg_port=5432 }\n",
            "  list 1 2\n",
            "  roles { - name=app; - \"x\" }\n",
            "  é x=1\n",
            "}\n",
        );
        let (_, p) = parse(text).unwrap().unwrap();
        let at = |line, column| Some(Pos { line, column });
        let ptr = "/spec/postgres/parameters/work_mem";
        assert_eq!(p.key(ptr), at(4, 7));
        assert_eq!(p.value(ptr), at(4, 16));
        // A mapping stands at its first key; the root at its first node.
        assert_eq!(p.value("/spec/postgres"), at(3, 5));
        assert_eq!(p.value(""), at(1, 1));
        assert_eq!(p.key("/spec/provider/local/pg_port"), at(7, 20));
        assert_eq!(p.value("/spec/provider/local/pg_port"), at(7, 28));
        // A list of arguments stands at its first, each item at its own.
        assert_eq!(p.value("/spec/list"), at(8, 8));
        assert_eq!(p.value("/spec/list/1"), at(8, 10));
        // `-` items: no key; a mapping item at its first property, a scalar at its argument.
        assert_eq!(p.value("/spec/roles"), at(9, 11));
        assert_eq!(p.key("/spec/roles/0"), None);
        assert_eq!(p.value("/spec/roles/0"), at(9, 13));
        assert_eq!(p.value("/spec/roles/0/name"), at(9, 18));
        assert_eq!(p.value("/spec/roles/1"), at(9, 25));
        // Columns count characters, not bytes.
        assert_eq!(p.key("/spec/é/x"), at(10, 5));
        assert_eq!(p.value("/spec/é/x"), at(10, 7));
    }

    #[test]
    fn values_after_comments_and_spaces_around_equals_are_found() {
        let (v, p) = parse("k a /* c */ = /* d */ 7 \\\n  b=\"x\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(v, json!({"k": {"a": 7, "b": "x"}}));
        assert_eq!(
            p.value("/k/a"),
            Some(Pos {
                line: 1,
                column: 23
            })
        );
        assert_eq!(p.value("/k/b"), Some(Pos { line: 2, column: 5 }));
    }

    #[test]
    fn mapping_errors_carry_positions() {
        assert_error(
            "a 1\nb 2\na 3\n",
            3,
            1,
            "`a` is set twice (first at line 1, column 1)",
        );
        assert_error(
            "n k=1 {\n  k 2\n}\n",
            2,
            3,
            "`k` is set twice (first at line 1, column 3)",
        );
        assert_error(
            "n k=1 k=2\n",
            1,
            7,
            "`k` is set twice (first at line 1, column 3)",
        );
        assert_error(
            "n {\n  - 1\n  x 2\n}\n",
            3,
            3,
            "either `-` list items or named nodes",
        );
        assert_error("n k=1 {\n  - 1\n}\n", 1, 3, "cannot also have properties");
        assert_error("n 1 k=2\n", 1, 3, "`n` has both a value and properties");
        assert_error("n 1 { x 1 }\n", 1, 3, "`n` has both a value and properties");
        assert_error("n (u8)5\n", 1, 4, "type annotations like `(u8)`");
        assert_error("(t)n 5\n", 1, 2, "type annotations like `(t)`");
        assert_error("n #inf\n", 1, 3, "`#inf` is not a finite number");
        assert_error("n x=1e999\n", 1, 5, "`1e999` is not a finite number");
    }

    #[test]
    fn every_mapping_error_is_reported_in_order() {
        let e = errors("a 1\na 2\nb (t)1\nc #nan\n");
        let got: Vec<(usize, usize)> = e.iter().map(|e| (e.pos.line, e.pos.column)).collect();
        assert_eq!(got, [(2, 1), (3, 4), (4, 3)], "{e:#?}");
    }

    #[test]
    fn syntax_errors_carry_positions_spans_and_hints() {
        let cases: &[(&str, usize, usize, usize, &str)] = &[
            (
                "a \"unterminated\nb 1\n",
                1,
                3,
                13,
                "single-line quoted string",
            ),
            ("a 1\nb {\n  c 1\n", 2, 3, 1, "no closing '}'"),
            ("a true\n", 1, 3, 4, "KDL 2 writes #true"),
            ("a null\n", 1, 3, 4, "KDL 2 writes #null"),
            ("a r\"x\"\n", 1, 3, 4, "raw strings as #\"…\"#"),
            ("work_mem 4MB\n", 1, 10, 3, "quote it: \"4MB\""),
            ("apiVersion pgdba/v1\n", 1, 12, 8, "quote it: \"pgdba/v1\""),
            ("a 1\n}\n", 2, 1, 1, "expected end of document"),
        ];
        for (text, line, column, width, fragment) in cases {
            let e = errors(text);
            assert_eq!(
                (e[0].pos.line, e[0].pos.column, e[0].width),
                (*line, *column, *width),
                "{text:?}: {e:#?}"
            );
            assert!(e[0].message.starts_with("invalid KDL: "), "{e:?}");
            assert!(e[0].message.contains(fragment), "{text:?}: {e:#?}");
            assert!(e[0].label.is_some(), "{text:?}: {e:#?}");
        }
    }

    #[test]
    fn one_syntax_error_per_line() {
        let e = errors("data_dir /var/lib\nx 4MB\n");
        let lines: Vec<usize> = e.iter().map(|e| e.pos.line).collect();
        assert_eq!(lines, [1, 2], "{e:#?}");
    }

    #[test]
    fn past_100_problems_one_more_counts_the_rest() {
        let e = errors(&"a 1\n".repeat(300));
        assert_eq!(e.len(), 101);
        assert_eq!(
            e[100].pos,
            Pos {
                line: 102,
                column: 1
            }
        );
        assert_eq!(e[100].message, "… and 199 more problems");
        let e = errors(&"x 4MB\n".repeat(300));
        assert_eq!(e.len(), 101);
        assert_eq!(e[100].message, "… and 200 more problems");
    }

    #[test]
    fn empty_and_comment_only_documents_are_none() {
        for text in ["", "\n\n", "// only a comment\n", "/* a */\n/-node 1\n"] {
            assert!(parse(text).unwrap().is_none(), "{text:?}");
        }
    }

    #[test]
    fn what_would_overflow_the_parser_is_refused_first() {
        let e = errors(&"a {".repeat(5000));
        assert!(e[0].message.contains("more than 4096"), "{e:?}");
        assert_eq!(
            e[0].pos,
            Pos {
                line: 1,
                column: 3 * 4096 + 3
            }
        );
        let e = errors(&format!("a {}", "/*".repeat(5000)));
        assert!(e[0].message.contains("more than 4096"), "{e:?}");
        let e = errors(&format!("a 1 {}", "/- ".repeat(300)));
        assert_eq!(e[0].pos, Pos { line: 1, column: 8 });
        assert!(e[0].message.contains("not another `/-`"), "{e:?}");
        let e = errors(&"x".repeat(MAX_BYTES + 1));
        assert!(e[0].message.contains("at most 256 KiB"), "{e:?}");
        // Deep but within the bound: the mapping's own limit answers.
        let deep = format!("{}{}", "a {".repeat(100), "}".repeat(100));
        let e = errors(&deep);
        assert!(
            e[0].message.contains("nesting deeper than 64 levels"),
            "{e:?}"
        );
        // Thousands of stray characters at the top level recurse in the parser: no overflow.
        let e = errors(&"}".repeat(100_000));
        assert_eq!(e[0].pos, Pos::START);
    }

    #[test]
    fn slashdash_chains_in_strings_and_comments_are_not_refused() {
        let v = value("a \"/- /- x\" // /- /-\nb #\"/- /-\"# /* /- /- */\n/- c 1\n");
        assert_eq!(v, json!({"a": "/- /- x", "b": "/- /-"}));
    }
}

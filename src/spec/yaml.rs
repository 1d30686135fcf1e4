//! YAML → JSON value, remembering where every key and value stands in the source.
//!
//! yaml-rust2's event parser feeds a small recursive-descent builder. Scalars resolve by the
//! YAML 1.2 core schema (`on`, `yes` and `no` stay strings). Duplicate keys, a second
//! document, complex keys, unknown tags and non-finite numbers are errors; anchors and
//! aliases are resolved (within a size budget).

use std::collections::HashMap;
use std::str::Chars;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::diagnostic::Pos;
use super::positions::{Positions, escape_segment};

/// A YAML problem at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    pub pos: Pos,
    pub message: String,
}

/// Parses one YAML document into a JSON value and the positions of its nodes.
/// `Ok(None)` for a stream with no document or a document that is only `null`.
pub(crate) fn parse(text: &str) -> Result<Option<(Value, Positions)>, YamlError> {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        budget: NODE_BUDGET,
    };
    let Some(root) = builder.document()? else {
        return Ok(None);
    };
    if matches!(root.kind, Kind::Scalar(Value::Null)) {
        return Ok(None);
    }
    let mut positions = Positions::default();
    let value = root.into_json(String::new(), &mut positions);
    Ok(Some((value, positions)))
}

/// Deepest nesting accepted (a spec needs about 5 levels).
const MAX_DEPTH: usize = 64;
/// Most nodes a document may have once aliases are expanded (guards against alias bombs).
const NODE_BUDGET: usize = 100_000;

#[derive(Debug, Clone)]
struct Node {
    pos: Pos,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Scalar(Value),
    Seq(Vec<Node>),
    Map(Vec<(String, Pos, Node)>),
}

impl Node {
    fn into_json(self, pointer: String, positions: &mut Positions) -> Value {
        positions.values.insert(pointer.clone(), self.pos);
        match self.kind {
            Kind::Scalar(v) => v,
            Kind::Seq(items) => Value::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, n)| n.into_json(format!("{pointer}/{i}"), positions))
                    .collect(),
            ),
            Kind::Map(entries) => {
                let mut map = Map::new();
                for (key, key_pos, node) in entries {
                    let child = format!("{pointer}/{}", escape_segment(&key));
                    positions.keys.insert(child.clone(), key_pos);
                    map.insert(key, node.into_json(child, positions));
                }
                Value::Object(map)
            }
        }
    }

    fn size(&self) -> usize {
        match &self.kind {
            Kind::Scalar(_) => 1,
            Kind::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            Kind::Map(entries) => 1 + entries.iter().map(|(_, _, n)| 1 + n.size()).sum::<usize>(),
        }
    }
}

fn pos(m: &Marker) -> Pos {
    // yaml-rust2: lines are 1-based, columns 0-based (in characters).
    Pos {
        line: m.line().max(1),
        column: m.col() + 1,
    }
}

fn err(at: Pos, message: impl Into<String>) -> YamlError {
    YamlError {
        pos: at,
        message: message.into(),
    }
}

struct Builder<'a> {
    parser: Parser<Chars<'a>>,
    anchors: HashMap<usize, Node>,
    budget: usize,
}

impl Builder<'_> {
    fn next(&mut self) -> Result<(Event, Marker), YamlError> {
        self.parser
            .next_token()
            .map_err(|e| err(pos(e.marker()), yaml_message(e.info())))
    }

    fn document(&mut self) -> Result<Option<Node>, YamlError> {
        let (ev, m) = self.next()?;
        if ev != Event::StreamStart {
            return Err(err(pos(&m), "not a YAML stream"));
        }
        let (ev, m) = self.next()?;
        match ev {
            Event::StreamEnd => return Ok(None),
            Event::DocumentStart => {}
            _ => return Err(err(pos(&m), "expected a YAML document")),
        }
        let (ev, m) = self.next()?;
        let root = self.node(ev, m, 0)?;
        let (ev, m) = self.next()?;
        if ev != Event::DocumentEnd {
            return Err(err(pos(&m), "expected the end of the document"));
        }
        let (ev, m) = self.next()?;
        match ev {
            Event::StreamEnd => Ok(Some(root)),
            Event::DocumentStart => Err(err(
                pos(&m),
                "a second YAML document: a spec file holds one cluster; put each in its own file",
            )),
            _ => Err(err(pos(&m), "unexpected content after the document")),
        }
    }

    fn node(&mut self, ev: Event, m: Marker, depth: usize) -> Result<Node, YamlError> {
        let at = pos(&m);
        if depth > MAX_DEPTH {
            return Err(err(at, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        self.budget = self
            .budget
            .checked_sub(1)
            .ok_or_else(|| err(at, "document too large (more than 100000 nodes)"))?;
        let (node, anchor) = match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let value = resolve_scalar(&text, style, tag.as_ref(), at)?;
                (
                    Node {
                        pos: at,
                        kind: Kind::Scalar(value),
                    },
                    anchor,
                )
            }
            Event::SequenceStart(anchor, tag) => {
                check_collection_tag(tag.as_ref(), "seq", at)?;
                let mut items = Vec::new();
                loop {
                    let (ev, m) = self.next()?;
                    if ev == Event::SequenceEnd {
                        break;
                    }
                    items.push(self.node(ev, m, depth + 1)?);
                }
                (
                    Node {
                        pos: at,
                        kind: Kind::Seq(items),
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, tag) => {
                check_collection_tag(tag.as_ref(), "map", at)?;
                let mut entries: Vec<(String, Pos, Node)> = Vec::new();
                let mut node_pos = at;
                loop {
                    let (ev, km) = self.next()?;
                    let key_pos = pos(&km);
                    let key = match ev {
                        Event::MappingEnd => break,
                        Event::Scalar(text, ..) => text,
                        _ => {
                            return Err(err(
                                key_pos,
                                "a mapping key must be a plain string, not a list, mapping or alias",
                            ));
                        }
                    };
                    // A block mapping's start marker follows its first key: point at the key.
                    if entries.is_empty() && km.index() < m.index() {
                        node_pos = key_pos;
                    }
                    if let Some((_, first, _)) = entries.iter().find(|(k, _, _)| *k == key) {
                        return Err(err(
                            key_pos,
                            format!(
                                "duplicate key `{key}` (first set at line {}, column {})",
                                first.line, first.column
                            ),
                        ));
                    }
                    let (ev, vm) = self.next()?;
                    // An empty value (`work_mem:`) is marked at the next token: use the key.
                    let empty = matches!(&ev, Event::Scalar(t, TScalarStyle::Plain, _, None) if t.is_empty());
                    let mut value = self.node(ev, vm, depth + 1)?;
                    if empty {
                        value.pos = key_pos;
                    }
                    entries.push((key, key_pos, value));
                }
                (
                    Node {
                        pos: node_pos,
                        kind: Kind::Map(entries),
                    },
                    anchor,
                )
            }
            Event::Alias(id) => {
                let target = self
                    .anchors
                    .get(&id)
                    .ok_or_else(|| err(at, "alias to an unknown anchor"))?;
                let size = target.size();
                self.budget = self.budget.checked_sub(size).ok_or_else(|| {
                    err(
                        at,
                        "aliases expand to more than 100000 nodes; write the values out",
                    )
                })?;
                let mut node = target.clone();
                node.pos = at;
                (node, 0)
            }
            _ => return Err(err(at, "unexpected YAML event")),
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

/// yaml-rust2's messages, made a little plainer.
fn yaml_message(info: &str) -> String {
    format!("invalid YAML: {info}")
}

const CORE_TAG: &str = "tag:yaml.org,2002:";

fn check_collection_tag(tag: Option<&Tag>, expected: &str, at: Pos) -> Result<(), YamlError> {
    match tag {
        None => Ok(()),
        Some(t) if t.handle == CORE_TAG && t.suffix == expected => Ok(()),
        Some(t) => Err(err(
            at,
            format!("unsupported YAML tag `{}{}`", t.handle, t.suffix),
        )),
    }
}

/// Resolves a scalar per the YAML 1.2 core schema, or by its explicit `!!` tag.
fn resolve_scalar(
    text: &str,
    style: TScalarStyle,
    tag: Option<&Tag>,
    at: Pos,
) -> Result<Value, YamlError> {
    let forced = match tag {
        None => None,
        // The non-specific tag `!` makes a plain scalar a string.
        Some(t) if t.handle == "!" && t.suffix.is_empty() => Some("str"),
        Some(t) if t.handle == CORE_TAG => Some(t.suffix.as_str()),
        Some(t) => {
            return Err(err(
                at,
                format!("unsupported YAML tag `{}{}`", t.handle, t.suffix),
            ));
        }
    };
    let quoted = style != TScalarStyle::Plain;
    let bad = |what: &str| err(at, format!("`{text}` is not {what}"));
    match forced {
        Some("str") => Ok(Value::String(text.to_owned())),
        Some("null") => match text {
            "" | "~" | "null" | "Null" | "NULL" => Ok(Value::Null),
            _ => Err(bad("null")),
        },
        Some("bool") => core_bool(text)
            .map(Value::Bool)
            .ok_or_else(|| bad("a boolean")),
        Some("int") => core_int(text).ok_or_else(|| bad("an integer")),
        Some("float") => match core_int(text).or_else(|| core_float(text)) {
            Some(v) => Ok(v),
            None => Err(non_finite(text, at).unwrap_or_else(|| bad("a number"))),
        },
        Some(other) => Err(err(at, format!("unsupported YAML tag `!!{other}`"))),
        None if quoted => Ok(Value::String(text.to_owned())),
        None => {
            if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
                return Ok(Value::Null);
            }
            if let Some(b) = core_bool(text) {
                return Ok(Value::Bool(b));
            }
            if let Some(v) = core_int(text).or_else(|| core_float(text)) {
                return Ok(v);
            }
            if let Some(e) = non_finite(text, at) {
                return Err(e);
            }
            Ok(Value::String(text.to_owned()))
        }
    }
}

fn core_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Core-schema integers: `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`. Integers beyond 64 bits
/// become floats, as most YAML loaders do.
fn core_int(text: &str) -> Option<Value> {
    let radix_int = |digits: &str, radix: u32| -> Option<Value> {
        if digits.is_empty() {
            return None;
        }
        u64::from_str_radix(digits, radix).ok().map(Value::from)
    };
    if let Some(d) = text.strip_prefix("0o") {
        return radix_int(d, 8);
    }
    if let Some(d) = text.strip_prefix("0x") {
        return radix_int(d, 16);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Ok(i) = text.parse::<i64>() {
        return Some(Value::from(i));
    }
    if let Ok(u) = text.trim_start_matches('+').parse::<u64>() {
        return Some(Value::from(u));
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
}

/// Core-schema floats: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`. A float with
/// an integral value (`2.0`, `1e3`) becomes an integer, so that it fits the model's integer
/// fields; a GUC value means the same either way.
fn core_float(text: &str) -> Option<Value> {
    let b = text.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let int_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return None;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'-' | b'+') = b.get(i) {
            i += 1;
        }
        let exp_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp_digits == 0 {
            return None;
        }
        i += exp_digits;
    }
    if i != b.len() {
        return None;
    }
    let f: f64 = text.parse().ok()?;
    if !f.is_finite() {
        return None;
    }
    // Integral and exactly representable: an integer.
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        return Some(Value::from(f as i64));
    }
    Number::from_f64(f).map(Value::Number)
}

/// `.inf`, `-.inf`, `.nan` and out-of-range floats: JSON has no such numbers.
fn non_finite(text: &str, at: Pos) -> Option<YamlError> {
    let t = text.trim_start_matches(['-', '+']);
    let special = matches!(t, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN");
    let overflow = text.parse::<f64>().is_ok_and(|f| f.is_infinite())
        && text.bytes().any(|c| c.is_ascii_digit());
    (special || overflow).then(|| {
        err(
            at,
            format!("`{text}` is not a finite number; quote it if you mean a string"),
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value(text: &str) -> Value {
        parse(text).unwrap().unwrap().0
    }

    #[test]
    fn scalars_resolve_by_the_core_schema() {
        let v = value(concat!(
            "a: on\nb: yes\nc: true\nd: 100\ne: 0.9\nf: 4MB\ng: ~\nh: '100'\n",
            "i: 0x1F\nj: 0o17\nk: 1e3\nl: 2.0\nm: -5\nn: 18446744073709551615\n",
            "o: !!str 12\np: !!int '12'\nq: 1_000\nr: False\ns: \"true\"\nt: .5\n",
        ));
        assert_eq!(
            v,
            json!({"a": "on", "b": "yes", "c": true, "d": 100, "e": 0.9, "f": "4MB", "g": null,
                   "h": "100", "i": 31, "j": 15, "k": 1000, "l": 2, "m": -5,
                   "n": 18446744073709551615u64, "o": "12", "p": 12, "q": "1_000", "r": false,
                   "s": "true", "t": 0.5})
        );
    }

    #[test]
    fn positions_point_at_keys_and_values() {
        let (_, p) = parse("spec:\n  postgres:\n    parameters:\n      work_mem: 4MB\n")
            .unwrap()
            .unwrap();
        let ptr = "/spec/postgres/parameters/work_mem";
        assert_eq!(p.key(ptr), Some(Pos { line: 4, column: 7 }));
        assert_eq!(
            p.value(ptr),
            Some(Pos {
                line: 4,
                column: 17
            })
        );
        // A block mapping's position is its first key.
        assert_eq!(p.value("/spec/postgres"), Some(Pos { line: 3, column: 5 }));
        assert_eq!(
            p.key_or_value("/spec/postgres/missing"),
            Pos { line: 2, column: 3 }
        );
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let (_, p) = parse("é: 'ü'\nx: [1, 2]\n").unwrap().unwrap();
        assert_eq!(p.value("/é"), Some(Pos { line: 1, column: 4 }));
        assert_eq!(p.value("/x/1"), Some(Pos { line: 2, column: 8 }));
    }

    #[test]
    fn anchors_and_aliases_resolve() {
        let v = value("a: &x {b: 1}\nc: *x\n");
        assert_eq!(v, json!({"a": {"b": 1}, "c": {"b": 1}}));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("100000"), "{e:?}");
    }

    #[test]
    fn errors_carry_positions() {
        let cases: &[(&str, Pos, &str)] = &[
            (
                "a: 1\na: 2\n",
                Pos { line: 2, column: 1 },
                "duplicate key `a` (first set at line 1, column 1)",
            ),
            (
                "a: 1\n---\nb: 2\n",
                Pos { line: 2, column: 1 },
                "second YAML document",
            ),
            (
                "a: b: c\n",
                Pos { line: 1, column: 5 },
                "invalid YAML: mapping values are not allowed",
            ),
            (
                "? [a]\n: 1\n",
                Pos { line: 1, column: 3 },
                "mapping key must be a plain string",
            ),
            (
                "a: .inf\n",
                Pos { line: 1, column: 4 },
                "not a finite number",
            ),
            (
                "a: 1e999\n",
                Pos { line: 1, column: 4 },
                "not a finite number",
            ),
            // A tagged scalar is marked at its text, after the tag.
            (
                "a: !!binary aGk=\n",
                Pos {
                    line: 1,
                    column: 13,
                },
                "unsupported YAML tag",
            ),
            (
                "a: !custom x\n",
                Pos {
                    line: 1,
                    column: 12,
                },
                "unsupported YAML tag",
            ),
            (
                "a: !!int x\n",
                Pos {
                    line: 1,
                    column: 10,
                },
                "`x` is not an integer",
            ),
        ];
        for (text, at, fragment) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.pos, *at, "{text:?}: {e:?}");
            assert!(e.message.contains(fragment), "{text:?}: {e:?}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // Flow nesting hits yaml-rust2's own recursion limit, block nesting ours.
        let flow = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let e = parse(&flow).unwrap_err();
        assert!(e.message.contains("recursion limit"), "{e:?}");
        let block: String = (0..100)
            .map(|i| format!("{}a:\n", "  ".repeat(i)))
            .collect();
        let e = parse(&block).unwrap_err();
        assert!(e.message.contains("nesting deeper than 64 levels"), "{e:?}");
    }

    #[test]
    fn empty_and_null_documents_are_none() {
        for text in ["", "# only a comment\n", "---\n", "~\n", "null"] {
            assert!(parse(text).unwrap().is_none(), "{text:?}");
        }
    }
}

//! The JSON Schema of a spec, and its validation errors turned into positioned, readable
//! messages.

use std::sync::LazyLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError, Validator};
use serde_json::Value;

use super::diagnostic::Pos;
use super::model;
use super::positions::{Positions, escape_segment};

/// The JSON Schema of [`model::ClusterSpec`] (draft 2020-12), as checked in at
/// `schemas/cluster.schema.json`.
pub fn json_schema() -> Value {
    let mut schema = schemars::schema_for!(model::ClusterSpec).to_value();
    add_integer_bounds(&mut schema);
    headline_first(schema)
}

/// `$schema`, `title` and `description` at the top of the file, where a reader looks.
fn headline_first(schema: Value) -> Value {
    let Value::Object(mut rest) = schema else {
        return schema;
    };
    let mut out = serde_json::Map::new();
    for key in ["$schema", "title", "description"] {
        if let Some(v) = rest.shift_remove(key) {
            out.insert(key.to_owned(), v);
        }
    }
    out.extend(rest);
    Value::Object(out)
}

/// schemars marks fixed-width integers with `format` (`uint32`) but bounds only the low end;
/// add the high end so that the schema alone rejects what the model cannot hold.
fn add_integer_bounds(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let bounds: Option<(Value, Value)> = match map.get("format").and_then(Value::as_str) {
                Some("uint8") => Some((0.into(), u8::MAX.into())),
                Some("uint16") => Some((0.into(), u16::MAX.into())),
                Some("uint32") => Some((0.into(), u32::MAX.into())),
                Some("uint64") => Some((0.into(), u64::MAX.into())),
                Some("int32") => Some((i32::MIN.into(), i32::MAX.into())),
                Some("int64") => Some((i64::MIN.into(), i64::MAX.into())),
                _ => None,
            };
            if let Some((min, max)) = bounds {
                map.entry("minimum").or_insert(min);
                map.entry("maximum").or_insert(max);
            }
            for v in map.values_mut() {
                add_integer_bounds(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(add_integer_bounds),
        _ => {}
    }
}

static SCHEMA: LazyLock<Value> = LazyLock::new(json_schema);
static VALIDATOR: LazyLock<Result<Validator, String>> =
    LazyLock::new(|| jsonschema::validator_for(&SCHEMA).map_err(|e| e.to_string()));

/// Validates a document against the schema; every problem, positioned.
pub(crate) fn check(instance: &Value, positions: &Positions) -> Vec<(Pos, String)> {
    let validator = match VALIDATOR.as_ref() {
        Ok(v) => v,
        Err(e) => {
            return vec![(
                Pos::START,
                format!("internal error: invalid spec schema: {e}"),
            )];
        }
    };
    let mut out = Vec::new();
    let explainer = Explainer {
        schema: &SCHEMA,
        positions,
    };
    for error in validator.iter_errors(instance) {
        explainer.explain(&error, &mut out);
    }
    out
}

struct Explainer<'a> {
    schema: &'a Value,
    positions: &'a Positions,
}

impl Explainer<'_> {
    fn explain(&self, error: &ValidationError<'_>, out: &mut Vec<(Pos, String)>) {
        let path = error.instance_path().as_str();
        let instance: &Value = error.instance();
        let at_value = self.positions.value_or_key(path);
        let name = display_path(path);
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let allowed = self.allowed_fields(error.schema_path().as_str());
                for key in unexpected {
                    let child = format!("{path}/{}", escape_segment(key));
                    let at = self.positions.key(&child).unwrap_or(at_value);
                    out.push((at, unknown_field(key, path, &allowed)));
                }
            }
            ValidationErrorKind::Required { property } => {
                let field = property.as_str().unwrap_or_default();
                let at = if path.is_empty() {
                    self.positions.value("").unwrap_or(Pos::START)
                } else {
                    self.positions.key_or_value(path)
                };
                out.push((at, format!("missing field `{field}` {}", in_where(path))));
            }
            ValidationErrorKind::Type { kind } => {
                let expected = match kind {
                    TypeKind::Single(t) => vec![*t],
                    TypeKind::Multiple(set) => set.iter().collect(),
                };
                out.push((at_value, type_message(path, &expected, instance)));
            }
            ValidationErrorKind::Minimum { limit } => out.push((
                at_value,
                format!("{name}: {instance} is less than the minimum {limit}"),
            )),
            ValidationErrorKind::ExclusiveMinimum { limit } => out.push((
                at_value,
                format!("{name}: {instance} must be more than {limit}"),
            )),
            ValidationErrorKind::Maximum { limit } => out.push((
                at_value,
                format!("{name}: {instance} is more than the maximum {limit}"),
            )),
            ValidationErrorKind::ExclusiveMaximum { limit } => out.push((
                at_value,
                format!("{name}: {instance} must be less than {limit}"),
            )),
            // One message for an unsupported major, whichever check finds it first; a version
            // that is not an integer has its type error already.
            ValidationErrorKind::Enum { .. } if path == "/spec/postgres/version" => {
                if instance.is_u64() {
                    out.push((
                        at_value,
                        super::semantic::unsupported_version(plain(instance)),
                    ));
                }
            }
            ValidationErrorKind::Enum { options } => {
                let allowed = options
                    .as_array()
                    .map(|a| a.iter().map(plain).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default();
                out.push((
                    at_value,
                    format!(
                        "{name}: `{}` is not supported; expected one of: {allowed}",
                        plain(instance)
                    ),
                ));
            }
            ValidationErrorKind::Constant { expected_value } => out.push((
                at_value,
                format!(
                    "{name}: expected `{}`, found `{}`",
                    plain(expected_value),
                    plain(instance)
                ),
            )),
            ValidationErrorKind::Pattern { pattern } => {
                let message = if path == "/metadata/name" {
                    format!(
                        "metadata.name `{}`: use lowercase letters, digits and '-', starting and \
                         ending with a letter or digit, at most 50 characters",
                        plain(instance)
                    )
                } else {
                    format!(
                        "{name}: `{}` does not match the pattern {pattern}",
                        plain(instance)
                    )
                };
                out.push((at_value, message));
            }
            ValidationErrorKind::OneOfNotValid { context }
            | ValidationErrorKind::AnyOf { context } => {
                self.explain_alternatives(error, context, out);
            }
            _ => out.push((at_value, format!("{name}: {}", error.masked()))),
        }
    }

    /// `oneOf`/`anyOf` with no matching alternative. For an externally tagged enum
    /// (`provider: {local: {...}}`) explain through the alternative the key names; for a union
    /// of types (a GUC value) list the types.
    fn explain_alternatives(
        &self,
        error: &ValidationError<'_>,
        context: &[Vec<ValidationError<'static>>],
        out: &mut Vec<(Pos, String)>,
    ) {
        let path = error.instance_path().as_str();
        let instance: &Value = error.instance();
        let at_value = self.positions.value_or_key(path);
        let name = display_path(path);
        let alternatives = self
            .resolve(error.schema_path().as_str())
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let tags: Vec<Option<&str>> = alternatives.iter().map(variant_tag).collect();
        if !tags.is_empty() && tags.iter().all(Option::is_some) {
            let tags: Vec<&str> = tags.into_iter().flatten().collect();
            let Some(object) = instance.as_object() else {
                out.push((
                    at_value,
                    format!(
                        "{name}: expected a mapping with one of: {}",
                        tags.join(", ")
                    ),
                ));
                return;
            };
            let chosen: Vec<&str> = object
                .keys()
                .map(String::as_str)
                .filter(|k| tags.contains(k))
                .collect();
            match chosen.as_slice() {
                [one] => {
                    let i = tags.iter().position(|t| t == one).unwrap_or(0);
                    for e in context.get(i).into_iter().flatten() {
                        self.explain(e, out);
                    }
                }
                [] if object.is_empty() => out.push((
                    self.positions.key_or_value(path),
                    format!("{name}: choose one of: {}", tags.join(", ")),
                )),
                [] => {
                    let allowed: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
                    for key in object.keys() {
                        let child = format!("{path}/{}", escape_segment(key));
                        let at = self.positions.key(&child).unwrap_or(at_value);
                        out.push((at, unknown_field(key, path, &allowed)));
                    }
                }
                many => out.push((
                    at_value,
                    format!(
                        "{name}: set exactly one of {}, found {}",
                        tags.join(", "),
                        many.join(", ")
                    ),
                )),
            }
            return;
        }
        let types: Option<Vec<JsonType>> = alternatives
            .iter()
            .map(|a| a.get("type").and_then(Value::as_str).and_then(json_type))
            .collect();
        match types {
            Some(types) if !types.is_empty() => {
                out.push((at_value, type_message(path, &types, instance)))
            }
            _ => {
                // Explain through the alternative that came closest (fewest errors); an
                // optional field's `null` alternative never is when a value is there (it would
                // win with its one type error over a mapping with several problems).
                let is_null = |i: usize| {
                    alternatives.get(i).and_then(|a| a.get("type")) == Some(&Value::from("null"))
                };
                if let Some(best) = context
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| instance.is_null() || !is_null(*i))
                    .map(|(_, errors)| errors)
                    .min_by_key(|errors| errors.len())
                {
                    for e in best {
                        self.explain(e, out);
                    }
                } else {
                    out.push((at_value, format!("{name}: {}", error.masked())));
                }
            }
        }
    }

    /// The fields a schema object allows, from the `additionalProperties` keyword's location.
    fn allowed_fields(&self, keyword_location: &str) -> Vec<String> {
        let parent = keyword_location
            .rsplit_once('/')
            .map_or("", |(parent, _)| parent);
        self.resolve(parent)
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The schema node at a JSON pointer into the schema.
    fn resolve(&self, pointer: &str) -> Option<&Value> {
        self.schema.pointer(pointer)
    }
}

/// The tag of an externally tagged enum variant: an object schema with one required property.
fn variant_tag(alternative: &Value) -> Option<&str> {
    let required = alternative.get("required")?.as_array()?;
    match required.as_slice() {
        [tag] if alternative.get("type").and_then(Value::as_str) == Some("object") => tag.as_str(),
        _ => None,
    }
}

fn json_type(s: &str) -> Option<JsonType> {
    Some(match s {
        "array" => JsonType::Array,
        "boolean" => JsonType::Boolean,
        "integer" => JsonType::Integer,
        "null" => JsonType::Null,
        "number" => JsonType::Number,
        "object" => JsonType::Object,
        "string" => JsonType::String,
        _ => return None,
    })
}

fn unknown_field(key: &str, parent: &str, allowed: &[String]) -> String {
    let mut message = format!("unknown field `{key}` {}", in_where(parent));
    if !allowed.is_empty() {
        message.push_str(&format!(", expected one of: {}", allowed.join(", ")));
    }
    let close = allowed
        .iter()
        .map(|a| (crate::pg::edit_distance(&key.to_ascii_lowercase(), a), a))
        .filter(|(d, a)| *d <= (a.len() / 3).clamp(1, 3))
        .min_by_key(|(d, _)| *d);
    if let Some((_, a)) = close {
        message.push_str(&format!(" (did you mean `{a}`?)"));
    }
    message
}

/// "expected an integer, found a string `two`", with a hint when quoting is the problem.
fn type_message(path: &str, expected: &[JsonType], found: &Value) -> String {
    // `null` in a type list means "may be left out"; an integer is also a number.
    let mut wanted: Vec<JsonType> = expected
        .iter()
        .copied()
        .filter(|t| *t != JsonType::Null || expected.len() == 1)
        .collect();
    if wanted.contains(&JsonType::Number) {
        wanted.retain(|t| *t != JsonType::Integer);
    }
    let names: Vec<&str> = wanted.iter().map(|t| type_name(*t)).collect();
    let expected_text = match names.as_slice() {
        [] => "something else".to_owned(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    };
    let mut message = if path.is_empty() {
        format!(
            "a spec must be a mapping with apiVersion, kind, metadata and spec; found {}",
            describe(found)
        )
    } else {
        format!(
            "{}: expected {expected_text}, found {}",
            display_path(path),
            describe(found)
        )
    };
    let wants = |t: JsonType| wanted.contains(&t);
    match found {
        Value::String(s)
            if (wants(JsonType::Integer) || wants(JsonType::Number))
                && s.trim().parse::<f64>().is_ok() =>
        {
            message.push_str(" (remove the quotes)");
        }
        Value::String(s) if wants(JsonType::Boolean) && matches!(s.as_str(), "true" | "false") => {
            message.push_str(" (remove the quotes)");
        }
        Value::String(s)
            if wants(JsonType::Boolean)
                && matches!(s.to_ascii_lowercase().as_str(), "yes" | "no" | "on" | "off") =>
        {
            message.push_str(" (write true or false)");
        }
        Value::Bool(_) | Value::Number(_) if wants(JsonType::String) => {
            message.push_str(" (quote it to make it a string)");
        }
        Value::Null if wants(JsonType::Object) => {
            message.push_str(" (write {} for an empty mapping)")
        }
        Value::Null => message.push_str(" (give it a value or remove the line)"),
        _ => {}
    }
    message
}

fn type_name(t: JsonType) -> &'static str {
    match t {
        JsonType::Array => "a list",
        JsonType::Boolean => "a boolean",
        JsonType::Integer => "an integer",
        JsonType::Null => "nothing (null)",
        JsonType::Number => "a number",
        JsonType::Object => "a mapping",
        JsonType::String => "a string",
    }
}

/// A value as a type and, for scalars, its text: "a string `two`", "a list".
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing".to_owned(),
        Value::Bool(b) => format!("a boolean `{b}`"),
        Value::Number(n) if n.is_f64() => format!("a number `{n}`"),
        Value::Number(n) => format!("an integer `{n}`"),
        Value::String(s) => format!("a string `{s}`"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}

/// A scalar's text without JSON quotes.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A JSON pointer as a DBA reads it: `/spec/postgres/parameters/work_mem` →
/// `spec.postgres.parameters.work_mem`; list items as `[0]`; odd keys quoted.
pub(crate) fn display_path(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let key = segment.replace("~1", "/").replace("~0", "~");
        if !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{key}]"));
            continue;
        }
        if !out.is_empty() {
            out.push('.');
        }
        let plain_key = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if plain_key {
            out.push_str(&key);
        } else {
            out.push_str(&format!("{key:?}"));
        }
    }
    if out.is_empty() {
        "the top level".to_owned()
    } else {
        out
    }
}

/// "in spec.postgres" or "at the top level".
fn in_where(pointer: &str) -> String {
    if pointer.is_empty() {
        "at the top level".to_owned()
    } else {
        format!("in {}", display_path(pointer))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn display_path_reads_like_yaml() {
        assert_eq!(display_path(""), "the top level");
        assert_eq!(display_path("/spec/replicas"), "spec.replicas");
        assert_eq!(display_path("/a/0/b"), "a[0].b");
        assert_eq!(
            display_path("/spec/postgres/parameters/pg_stat_statements.max"),
            "spec.postgres.parameters.\"pg_stat_statements.max\""
        );
        assert_eq!(display_path("/x~1y"), "\"x/y\"");
    }

    #[test]
    fn the_schema_compiles_and_bounds_fixed_width_integers() {
        assert!(VALIDATOR.is_ok(), "{:?}", VALIDATOR.as_ref().err());
        let s = json_schema();
        let ttl = &s["$defs"]["PatroniSettings"]["properties"]["ttl"];
        assert_eq!(ttl["minimum"], 20);
        assert_eq!(ttl["maximum"], 3600);
        let port = &s["$defs"]["LocalProvider"]["properties"]["pg_port"];
        assert_eq!(port["maximum"], u16::MAX);
        let replicas = &s["$defs"]["Spec"]["properties"]["replicas"];
        assert_eq!(replicas["maximum"], 16);
    }
}

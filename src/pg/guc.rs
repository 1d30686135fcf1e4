//! One GUC's definition and PostgreSQL's value rules: parsing, units, rounding, range checks.
//!
//! The parsing follows PostgreSQL 15's `guc.c` (`parse_int`, `parse_real`, `parse_bool`,
//! `convert_to_base_unit`, `config_enum_lookup_by_name`) so that a value pgdba accepts is a value
//! PostgreSQL accepts, and two spellings compare equal exactly when PostgreSQL would hold the same
//! value. Formatting follows `_ShowOption` (`SHOW`'s spelling: the largest unit that divides).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::cnum;

/// `pg_settings.vartype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VarType {
    Bool,
    Integer,
    Real,
    String,
    Enum,
}

impl VarType {
    /// The spelling of `pg_settings.vartype`.
    pub fn as_str(self) -> &'static str {
        match self {
            VarType::Bool => "bool",
            VarType::Integer => "integer",
            VarType::Real => "real",
            VarType::String => "string",
            VarType::Enum => "enum",
        }
    }

    /// Parses a `pg_settings.vartype` value.
    pub fn from_pg(s: &str) -> Option<VarType> {
        Some(match s {
            "bool" => VarType::Bool,
            "integer" => VarType::Integer,
            "real" => VarType::Real,
            "string" => VarType::String,
            "enum" => VarType::Enum,
            _ => return None,
        })
    }
}

impl fmt::Display for VarType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `pg_settings.context`: when a change takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GucContext {
    /// Read-only: fixed at compile time or initdb (`server_version`, `block_size`).
    Internal,
    /// Needs a server restart.
    Postmaster,
    /// Takes effect on reload (SIGHUP).
    Sighup,
    /// Reload, but only for sessions that start afterwards; settable by superusers at connect.
    SuperuserBackend,
    /// Reload, but only for sessions that start afterwards.
    Backend,
    /// Reload, or `SET` by a superuser.
    Superuser,
    /// Reload, or `SET` by any user.
    User,
}

impl GucContext {
    /// The spelling of `pg_settings.context`.
    pub fn as_str(self) -> &'static str {
        match self {
            GucContext::Internal => "internal",
            GucContext::Postmaster => "postmaster",
            GucContext::Sighup => "sighup",
            GucContext::SuperuserBackend => "superuser-backend",
            GucContext::Backend => "backend",
            GucContext::Superuser => "superuser",
            GucContext::User => "user",
        }
    }

    /// Parses a `pg_settings.context` value.
    pub fn from_pg(s: &str) -> Option<GucContext> {
        Some(match s {
            "internal" => GucContext::Internal,
            "postmaster" => GucContext::Postmaster,
            "sighup" => GucContext::Sighup,
            "superuser-backend" => GucContext::SuperuserBackend,
            "backend" => GucContext::Backend,
            "superuser" => GucContext::Superuser,
            "user" => GucContext::User,
            _ => return None,
        })
    }

    /// Whether a new value needs a server restart to take effect.
    pub fn needs_restart(self) -> bool {
        self == GucContext::Postmaster
    }
}

impl fmt::Display for GucContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The base unit of a numeric GUC (`pg_settings.unit`): the unit its `setting` is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Memory, counted in units of this many bytes (`B` 1, `kB` 1024, `8kB` 8192, `MB` 1048576).
    Memory { bytes: u64 },
    /// Time, counted in units of this many microseconds (`ms` 1000, `s` 10⁶, `min` 6·10⁷).
    Time { micros: u64 },
}

/// Memory units a value may carry, largest first, in bytes (PostgreSQL's `memory_units_hint`).
const MEMORY_UNITS: [(&str, u64); 5] = [
    ("TB", 1 << 40),
    ("GB", 1 << 30),
    ("MB", 1 << 20),
    ("kB", 1 << 10),
    ("B", 1),
];

/// Time units a value may carry, largest first, in microseconds (`time_units_hint`).
const TIME_UNITS: [(&str, u64); 6] = [
    ("d", 86_400_000_000),
    ("h", 3_600_000_000),
    ("min", 60_000_000),
    ("s", 1_000_000),
    ("ms", 1_000),
    ("us", 1),
];

impl Unit {
    /// Parses a `pg_settings.unit` value: `B`, `kB`, `8kB`, `MB`, `16MB`, `ms`, `s`, `min`, ...
    pub fn from_pg(s: &str) -> Option<Unit> {
        let digits_end = s.bytes().take_while(u8::is_ascii_digit).count();
        let (count, name) = s.split_at(digits_end);
        let count: u64 = if count.is_empty() {
            1
        } else {
            count.parse().ok().filter(|&n| n > 0)?
        };
        if let Some(&(_, bytes)) = MEMORY_UNITS.iter().find(|(n, _)| *n == name) {
            return Some(Unit::Memory {
                bytes: count.checked_mul(bytes)?,
            });
        }
        if let Some(&(_, micros)) = TIME_UNITS.iter().find(|(n, _)| *n == name) {
            return Some(Unit::Time {
                micros: count.checked_mul(micros)?,
            });
        }
        None
    }

    /// The unit names a value of this unit may carry, with their size in this unit's scale,
    /// largest first.
    fn table(self) -> (&'static [(&'static str, u64)], u64) {
        match self {
            Unit::Memory { bytes } => (&MEMORY_UNITS, bytes),
            Unit::Time { micros } => (&TIME_UNITS, micros),
        }
    }

    /// The unit names a value may carry, as a DBA reads them: `B, kB, MB, GB, TB`.
    pub fn accepted_units(self) -> String {
        let (table, _) = self.table();
        let names: Vec<&str> = table.iter().rev().map(|(n, _)| *n).collect();
        names.join(", ")
    }

    /// PostgreSQL's conversion table for this base unit: (unit name, multiplier to the base
    /// unit), largest first. Multipliers are computed as PostgreSQL's constants are, so the
    /// floating-point results match bit for bit.
    fn conversions(self) -> impl Iterator<Item = (&'static str, f64)> {
        let (table, base) = self.table();
        table
            .iter()
            .map(move |&(name, size)| (name, multiplier(size, base)))
    }
}

fn multiplier(size: u64, base: u64) -> f64 {
    if size >= base && size.is_multiple_of(base) {
        (size / base) as f64
    } else {
        size as f64 / base as f64
    }
}

impl fmt::Display for Unit {
    /// `pg_settings.unit`'s spelling: `8kB`, `MB`, `ms`, `min`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (table, size) = self.table();
        // The largest named unit that divides the size; its count is the prefix (8kB, 16MB).
        for &(name, unit) in table {
            if size % unit == 0 {
                let count = size / unit;
                return if count == 1 {
                    f.write_str(name)
                } else {
                    write!(f, "{count}{name}")
                };
            }
        }
        write!(f, "{size}?")
    }
}

/// One GUC as PostgreSQL describes it in `pg_settings`.
#[derive(Debug, Clone, PartialEq)]
pub struct GucDef {
    /// The name as PostgreSQL spells it (`work_mem`, `DateStyle`).
    pub name: String,
    pub vartype: VarType,
    /// The base unit of an integer or real GUC that has one.
    pub unit: Option<Unit>,
    pub context: GucContext,
    /// Lower bound of an integer or real GUC, in the base unit.
    pub min: Option<f64>,
    /// Upper bound of an integer or real GUC, in the base unit.
    pub max: Option<f64>,
    /// The values an enum GUC accepts, as PostgreSQL spells them (hidden aliases excluded).
    pub enumvals: Vec<String>,
    /// The compiled-in default (`pg_settings.boot_val`), if any.
    pub boot_val: Option<String>,
}

/// A GUC value after PostgreSQL's parsing: what the server would hold.
///
/// Two `Normalized` of one GUC are equal exactly when PostgreSQL holds the same value:
/// `128MB`, `131072kB` and `16384` are one `shared_buffers`; `on`, `true` and `yes` one bool.
#[derive(Debug, Clone, PartialEq)]
pub enum Normalized {
    Bool(bool),
    /// An integer in the GUC's base unit (`shared_buffers = 128MB` is 16384 8kB pages).
    Integer {
        value: i64,
        unit: Option<Unit>,
    },
    /// A real in the GUC's base unit.
    Real {
        value: f64,
        unit: Option<Unit>,
    },
    /// An enum value, spelled as `pg_settings` spells it (hidden aliases resolved: `true` → `on`).
    Enum(String),
    String(String),
}

impl Normalized {
    /// The value as `pg_settings.setting` shows it: base unit, no unit suffix, `on`/`off`.
    pub fn setting(&self) -> String {
        match self {
            Normalized::Bool(b) => on_off(*b).to_owned(),
            Normalized::Integer { value, .. } => value.to_string(),
            Normalized::Real { value, .. } => cnum::format_g(*value),
            Normalized::Enum(s) | Normalized::String(s) => s.clone(),
        }
    }
}

impl fmt::Display for Normalized {
    /// The value as `SHOW` spells it: `128MB`, `5min`, `on`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Normalized::Bool(b) => f.write_str(on_off(*b)),
            Normalized::Integer { value, unit } => f.write_str(&show_int(*value, *unit)),
            Normalized::Real { value, unit } => f.write_str(&show_real(*value, *unit)),
            Normalized::Enum(s) | Normalized::String(s) => f.write_str(s),
        }
    }
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// Why a value is not valid for a GUC. Messages name the value and the GUC and say what is
/// expected, so they read well after "spec.postgres.parameters.work_mem: ".
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GucValueError {
    #[error("`{value}` is not a boolean; {name} takes on or off")]
    NotABool { name: String, value: String },
    #[error("`{value}` is not {article} {kind} for {name}{}", unit_hint(.unit))]
    NotANumber {
        name: String,
        value: String,
        kind: &'static str,
        article: &'static str,
        unit: Option<Unit>,
    },
    #[error("`{value}`: {name} takes no unit, only a number")]
    UnitNotAllowed { name: String, value: String },
    #[error("`{value}`: unknown unit `{found}` for {name}; use one of {}", .unit.accepted_units())]
    BadUnit {
        name: String,
        value: String,
        found: String,
        unit: Unit,
    },
    #[error("`{value}` is out of the integer range of {name}")]
    IntegerOverflow { name: String, value: String },
    #[error("`{value}`{} is below the minimum {min} of {name}", base_note(.base))]
    BelowMin {
        name: String,
        value: String,
        /// The value in the base unit, when it is spelled differently (`1kB` → `0 (8kB pages)`).
        base: Option<String>,
        min: String,
    },
    #[error("`{value}`{} is above the maximum {max} of {name}", base_note(.base))]
    AboveMax {
        name: String,
        value: String,
        base: Option<String>,
        max: String,
    },
    #[error("`{value}` is not a valid value for {name}; expected one of: {}", .allowed.join(", "))]
    NotInEnum {
        name: String,
        value: String,
        allowed: Vec<String>,
    },
}

fn unit_hint(unit: &Option<Unit>) -> String {
    match unit {
        Some(u) => format!(" (a number with an optional unit: {})", u.accepted_units()),
        None => String::new(),
    }
}

fn base_note(base: &Option<String>) -> String {
    match base {
        Some(b) => format!(" (= {b})"),
        None => String::new(),
    }
}

/// Hidden enum values PostgreSQL 15 accepts but does not list in `pg_settings.enumvals`, with
/// the visible value each stands for. Enums that list `on` and `off` also take the bool spellings.
fn hidden_enum_alias(guc: &str, value: &str) -> Option<&'static str> {
    match (guc, value) {
        ("wal_level", "archive" | "hot_standby") => Some("replica"),
        (
            "client_min_messages"
            | "log_min_messages"
            | "log_min_error_statement"
            | "trace_recovery_messages",
            "debug",
        ) => Some("debug2"),
        ("client_min_messages" | "trace_recovery_messages", "info") => Some("info"),
        _ => None,
    }
}

impl GucDef {
    /// Parses `value` as PostgreSQL would and checks it against the GUC's range or enum values.
    pub fn normalize(&self, value: &str) -> Result<Normalized, GucValueError> {
        let parsed = self.parse(value)?;
        self.check_range(value, &parsed)?;
        Ok(check_hook(&self.name, parsed))
    }

    /// Whether a spec value and a raw `pg_settings.setting` (always in the base unit) are the
    /// same value for PostgreSQL. A spec value that does not parse is never equivalent.
    pub fn equivalent(&self, spec_value: &str, pg_settings_setting: &str) -> bool {
        let (Ok(spec), Ok(live)) = (self.normalize(spec_value), self.parse(pg_settings_setting))
        else {
            return false;
        };
        match (&spec, &live) {
            // pg_settings shows reals with printf's %g (6 significant digits).
            (Normalized::Real { value: a, .. }, Normalized::Real { value: b, .. }) => {
                cnum::format_g(*a) == cnum::format_g(*b)
            }
            _ => spec == live,
        }
    }

    /// A `pg_settings.setting` value as a DBA writes it: `16384` (8kB) → `128MB`, `300` (s) →
    /// `5min`; the largest unit that divides exactly, as `SHOW` does. Anything that does not
    /// parse comes back unchanged.
    pub fn format_human(&self, setting: &str) -> String {
        match self.parse(setting) {
            Ok(n @ (Normalized::Integer { .. } | Normalized::Real { .. })) => n.to_string(),
            _ => setting.to_owned(),
        }
    }

    /// The spelling of a bound in messages: `2147483647kB`, `128kB`, `100`.
    fn show_bound(&self, bound: f64) -> String {
        match self.vartype {
            VarType::Integer => show_int(bound as i64, self.unit),
            _ => show_real(bound, self.unit),
        }
    }

    /// Parses without the range check (a `pg_settings.setting` is in range by construction).
    fn parse(&self, value: &str) -> Result<Normalized, GucValueError> {
        match self.vartype {
            VarType::Bool => {
                parse_bool(value)
                    .map(Normalized::Bool)
                    .ok_or_else(|| GucValueError::NotABool {
                        name: self.name.clone(),
                        value: value.to_owned(),
                    })
            }
            VarType::Integer => self.parse_int(value),
            VarType::Real => self.parse_real(value),
            VarType::Enum => self.parse_enum(value),
            VarType::String => Ok(Normalized::String(value.to_owned())),
        }
    }

    fn parse_int(&self, value: &str) -> Result<Normalized, GucValueError> {
        let not_a_number = || GucValueError::NotANumber {
            name: self.name.clone(),
            value: value.to_owned(),
            kind: "integer",
            article: "an",
            unit: self.unit,
        };
        let bytes = value.as_bytes();
        // parse_int: strtol(base 0); on '.', 'e', 'E' or overflow, strtod instead.
        let (mut val, mut end, overflow) = match cnum::strtol(bytes) {
            cnum::StrtolResult::Value(v, end) => (v as f64, end, false),
            cnum::StrtolResult::Overflow(end) => (0.0, end, true),
            cnum::StrtolResult::Empty => (0.0, 0, false),
        };
        if overflow || matches!(bytes.get(end), Some(b'.' | b'e' | b'E')) {
            let r = cnum::strtod(bytes);
            if r.erange {
                return Err(not_a_number());
            }
            val = r.value;
            end = r.end;
        }
        if end == 0 || val.is_nan() {
            return Err(not_a_number());
        }
        let val = self.apply_unit(value, val, &bytes[end..])?;
        let val = val.round_ties_even();
        if val > f64::from(i32::MAX) || val < f64::from(i32::MIN) {
            return Err(GucValueError::IntegerOverflow {
                name: self.name.clone(),
                value: value.to_owned(),
            });
        }
        Ok(Normalized::Integer {
            value: val as i64,
            unit: self.unit,
        })
    }

    fn parse_real(&self, value: &str) -> Result<Normalized, GucValueError> {
        let bytes = value.as_bytes();
        let r = cnum::strtod(bytes);
        if r.end == 0 || r.erange || r.value.is_nan() {
            return Err(GucValueError::NotANumber {
                name: self.name.clone(),
                value: value.to_owned(),
                kind: "number",
                article: "a",
                unit: self.unit,
            });
        }
        let val = self.apply_unit(value, r.value, &bytes[r.end..])?;
        Ok(Normalized::Real {
            value: val,
            unit: self.unit,
        })
    }

    /// The part after the number: whitespace, then an optional unit, then whitespace
    /// (PostgreSQL's `convert_to_base_unit`, including its rounding of fractional values to
    /// the next smaller unit).
    fn apply_unit(&self, value: &str, number: f64, rest: &[u8]) -> Result<f64, GucValueError> {
        let rest = trim_c_space(rest);
        if rest.is_empty() {
            return Ok(number);
        }
        let Some(unit) = self.unit else {
            return Err(GucValueError::UnitNotAllowed {
                name: self.name.clone(),
                value: value.to_owned(),
            });
        };
        let bad_unit = || GucValueError::BadUnit {
            name: self.name.clone(),
            value: value.to_owned(),
            found: String::from_utf8_lossy(rest).into_owned(),
            unit,
        };
        let conversions: Vec<(&str, f64)> = unit.conversions().collect();
        let i = conversions
            .iter()
            .position(|(name, _)| name.as_bytes() == rest)
            .ok_or_else(bad_unit)?;
        let mut cvalue = number * conversions[i].1;
        if let Some(&(_, smaller)) = conversions.get(i + 1) {
            cvalue = (cvalue / smaller).round_ties_even() * smaller;
        }
        Ok(cvalue)
    }

    fn parse_enum(&self, value: &str) -> Result<Normalized, GucValueError> {
        if let Some(v) = self.enumvals.iter().find(|v| v.eq_ignore_ascii_case(value)) {
            return Ok(Normalized::Enum(v.clone()));
        }
        let lower = value.to_ascii_lowercase();
        if let Some(alias) = hidden_enum_alias(&self.name, &lower) {
            return Ok(Normalized::Enum(alias.to_owned()));
        }
        let has = |v: &str| self.enumvals.iter().any(|e| e == v);
        if has("on") && has("off") {
            match lower.as_str() {
                "true" | "yes" | "1" => return Ok(Normalized::Enum("on".to_owned())),
                "false" | "no" | "0" => return Ok(Normalized::Enum("off".to_owned())),
                _ => {}
            }
        }
        Err(GucValueError::NotInEnum {
            name: self.name.clone(),
            value: value.to_owned(),
            allowed: self.enumvals.clone(),
        })
    }

    fn check_range(&self, input: &str, parsed: &Normalized) -> Result<(), GucValueError> {
        let (value, base) = match parsed {
            Normalized::Integer { value, unit } => {
                let v = *value as f64;
                let base = unit.map(|u| format!("{value}{}", base_unit_suffix(u)));
                (v, base)
            }
            Normalized::Real { value, unit } => {
                let base =
                    unit.map(|u| format!("{}{}", cnum::format_g(*value), base_unit_suffix(u)));
                (*value, base)
            }
            _ => return Ok(()),
        };
        // Only mention the base-unit value when it is not what the DBA wrote.
        let base = base.filter(|b| !same_spelling(b, input));
        if let Some(min) = self.min.filter(|&m| value < m) {
            return Err(GucValueError::BelowMin {
                name: self.name.clone(),
                value: input.to_owned(),
                base,
                min: self.show_bound(min),
            });
        }
        // pg_settings prints real bounds with %g: 1.79769e+308 stands for DBL_MAX.
        if let Some(max) = self.max.filter(|&m| value > m && m < 1.7976e308) {
            return Err(GucValueError::AboveMax {
                name: self.name.clone(),
                value: input.to_owned(),
                base,
                max: self.show_bound(max),
            });
        }
        Ok(())
    }
}

fn same_spelling(a: &str, b: &str) -> bool {
    let strip = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    strip(a) == strip(b)
}

/// The base unit after a base-unit count in messages: `4096kB`, `0 × 8kB` (pages read badly
/// as `08kB`).
fn base_unit_suffix(unit: Unit) -> String {
    match unit {
        Unit::Memory { bytes: 8192 } => " × 8kB".to_owned(),
        u => format!("{u}"),
    }
}

/// The value-changing check hooks of PostgreSQL 15, applied after the range check as the
/// server does: `autovacuum_work_mem` below 1MB (other than -1) becomes 1MB.
fn check_hook(name: &str, value: Normalized) -> Normalized {
    match (name, value) {
        ("autovacuum_work_mem", Normalized::Integer { value, unit })
            if (0..1024).contains(&value) =>
        {
            Normalized::Integer { value: 1024, unit }
        }
        (_, value) => value,
    }
}

/// PostgreSQL's `parse_bool_with_len`: on/off, true/false, yes/no, 1/0 and unique prefixes,
/// case-insensitive; no surrounding whitespace.
pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    let v = value.to_ascii_lowercase();
    let prefix_of = |word: &str| !v.is_empty() && word.starts_with(v.as_str());
    match v.as_bytes().first()? {
        b't' if prefix_of("true") => Some(true),
        b'f' if prefix_of("false") => Some(false),
        b'y' if prefix_of("yes") => Some(true),
        b'n' if prefix_of("no") => Some(false),
        // 'o' alone is ambiguous: at least two letters.
        b'o' if v.len() >= 2 && prefix_of("on") => Some(true),
        b'o' if v.len() >= 2 && prefix_of("off") => Some(false),
        b'1' if v.len() == 1 => Some(true),
        b'0' if v.len() == 1 => Some(false),
        _ => None,
    }
}

fn trim_c_space(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !cnum::is_c_space(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !cnum::is_c_space(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// `_ShowOption` for integers: the largest unit that divides the value exactly; values <= 0
/// and unit-less GUCs are shown as plain numbers.
fn show_int(value: i64, unit: Option<Unit>) -> String {
    let Some(unit) = unit.filter(|_| value > 0) else {
        return value.to_string();
    };
    for (name, mult) in unit.conversions() {
        // convert_int_from_base_unit: accept the first unit that divides evenly; units
        // smaller than the base (multiplier <= 1) always do.
        if mult <= 1.0 || value % (mult as i64) == 0 {
            return format!("{}{name}", (value as f64 / mult).round_ties_even() as i64);
        }
    }
    value.to_string()
}

/// `_ShowOption` for reals: the largest unit giving (within 1e-8) an integer, else the
/// smallest unit; printed with %g.
fn show_real(value: f64, unit: Option<Unit>) -> String {
    let Some(unit) = unit.filter(|_| value > 0.0) else {
        return cnum::format_g(value);
    };
    let mut shown = (value, "");
    for (name, mult) in unit.conversions() {
        let v = value / mult;
        shown = (v, name);
        if v > 0.0 && ((v.round_ties_even() / v) - 1.0).abs() <= 1e-8 {
            break;
        }
    }
    format!("{}{}", cnum::format_g(shown.0), shown.1)
}

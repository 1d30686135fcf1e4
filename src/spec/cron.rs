//! The spec's cron expressions (`spec.backup.schedule`): standard 5-field crontab syntax,
//! parsed into the set of values each field matches, and translated to systemd's
//! `OnCalendar=` expressions.
//!
//! Accepted, as Vixie cron and cronie read them: `minute hour day-of-month month day-of-week`,
//! each field `*`, a value, a range `a-b`, a step `*/n` or `a-b/n`, or a comma list of those;
//! month names `jan`..`dec` and day names `sun`..`sat` (any case); day of week 0-7, both 0 and
//! 7 Sunday; the macros `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly`, `@yearly`
//! (`@annually`). Refused, each with its reason: `@reboot` (not a time), `a/n` without a range
//! (cron implementations disagree on it), seconds or year fields, `?`, `L`, `W`, `#`, and a
//! day that no chosen month has (`30 2`), which would never run.
//!
//! Cron runs a job when the day of month **or** the day of week matches if both are
//! restricted (neither field starts with `*`), and when both match otherwise. A systemd
//! calendar event always needs both, so the first case becomes two `OnCalendar=` lines (a timer
//! runs at the union of its lines): the translation is exact for every expression accepted.
//!
//! Pure: no IO, no clock.

use std::collections::BTreeSet;
use std::fmt::Write as _;

/// A cron expression that parsed; [`Cron::on_calendar`] translates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    /// As written, its fields separated by one space (a macro as written).
    text: String,
    minute: Field,
    hour: Field,
    day_of_month: Field,
    month: Field,
    /// 0-6, Sunday 0.
    day_of_week: Field,
}

/// What one field matches.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    values: BTreeSet<u8>,
    /// The field's text starts with `*` (cron's rule for day of month and day of week).
    star: bool,
}

/// Why an expression is refused: the message names the field and the part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(String);

struct Spec {
    name: &'static str,
    min: u8,
    max: u8,
    names: &'static [&'static str],
}

const MINUTE: Spec = Spec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Spec = Spec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: Spec = Spec {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Spec = Spec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DAY_OF_WEEK: Spec = Spec {
    name: "day of week",
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// systemd's names of the days of the week, Sunday 0.
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// The most days each month can have (February 29).
const MONTH_DAYS: [u8; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

impl Cron {
    pub fn parse(text: &str) -> Result<Cron, CronError> {
        let trimmed = text.trim();
        let expanded = match trimmed.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => Some("0 0 1 1 *"),
            "@monthly" => Some("0 0 1 * *"),
            "@weekly" => Some("0 0 * * 0"),
            "@daily" | "@midnight" => Some("0 0 * * *"),
            "@hourly" => Some("0 * * * *"),
            "@reboot" => {
                return Err(CronError(
                    "@reboot is not a time of day: a backup schedule needs times".to_owned(),
                ));
            }
            m if m.starts_with('@') => {
                return Err(CronError(format!(
                    "unknown macro `{trimmed}`: use 5 fields, or @hourly, @daily, @weekly, @monthly, @yearly"
                )));
            }
            _ => None,
        };
        let fields: Vec<&str> = expanded.unwrap_or(trimmed).split_whitespace().collect();
        if fields.len() != 5 {
            return Err(CronError(format!(
                "`{trimmed}` has {} fields; a cron expression has 5: minute hour day-of-month month day-of-week",
                fields.len()
            )));
        }
        let minute = field(fields[0], &MINUTE)?;
        let hour = field(fields[1], &HOUR)?;
        let day_of_month = field(fields[2], &DAY_OF_MONTH)?;
        let month = field(fields[3], &MONTH)?;
        let mut day_of_week = field(fields[4], &DAY_OF_WEEK)?;
        if day_of_week.values.remove(&7) {
            day_of_week.values.insert(0);
        }
        let cron = Cron {
            text: expanded.map_or_else(|| fields.join(" "), |_| trimmed.to_owned()),
            minute,
            hour,
            day_of_month,
            month,
            day_of_week,
        };
        // A day no chosen month has never comes (unless the day of week may also fire it).
        let by_day_of_month_only = cron.day_of_week.star || cron.day_of_month.star;
        let last_day = cron
            .month
            .values
            .iter()
            .map(|m| MONTH_DAYS[usize::from(*m - 1)])
            .max()
            .unwrap_or(31);
        let first_day = cron.day_of_month.values.first().copied().unwrap_or(1);
        if by_day_of_month_only && first_day > last_day {
            return Err(CronError(format!(
                "`{}` never runs: no chosen month has day {first_day}",
                cron.text
            )));
        }
        Ok(cron)
    }

    /// The expression, fields separated by one space.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The `OnCalendar=` expressions whose union is this schedule (two when cron's
    /// day-of-month-or-day-of-week rule applies, one otherwise).
    pub fn on_calendar(&self) -> Vec<String> {
        let time = format!(
            "{}:{}:00",
            render(&self.hour.values, &HOUR),
            render(&self.minute.values, &MINUTE)
        );
        let month = render(&self.month.values, &MONTH);
        let event = |dow: Option<&BTreeSet<u8>>, dom: &BTreeSet<u8>| {
            let mut s = String::new();
            if let Some(d) = dow.filter(|d| d.len() < 7) {
                s.push_str(&weekdays(d));
                s.push(' ');
            }
            let _ = write!(s, "*-{month}-{} {time}", render(dom, &DAY_OF_MONTH));
            s
        };
        if self.day_of_month.star || self.day_of_week.star {
            vec![event(
                Some(&self.day_of_week.values),
                &self.day_of_month.values,
            )]
        } else {
            let every_day: BTreeSet<u8> = (1..=31).collect();
            vec![
                event(None, &self.day_of_month.values),
                event(Some(&self.day_of_week.values), &every_day),
            ]
        }
    }
}

impl std::fmt::Display for Cron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn field(text: &str, spec: &Spec) -> Result<Field, CronError> {
    let err = |part: &str, why: String| {
        CronError(if part == text {
            format!("{} `{text}`: {why}", spec.name)
        } else {
            format!("{} `{text}`, at `{part}`: {why}", spec.name)
        })
    };
    let mut values = BTreeSet::new();
    for part in text.split(',') {
        if part.is_empty() {
            return Err(err(text, "an empty item in the list".to_owned()));
        }
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u8 =
                    s.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        err(part, format!("the step `{s}` is not a number above 0"))
                    })?;
                (r, Some(step))
            }
            None => (part, None),
        };
        let (lo, hi) = if range == "*" {
            (spec.min, spec.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = value(a, spec).map_err(|w| err(part, w))?;
            let b = value(b, spec).map_err(|w| err(part, w))?;
            if a > b {
                return Err(err(
                    part,
                    format!("the range runs backwards ({a} > {b}); write two ranges"),
                ));
            }
            (a, b)
        } else {
            let v = value(range, spec).map_err(|w| err(part, w))?;
            if step.is_some() {
                return Err(err(
                    part,
                    format!(
                        "a step needs a range: write `{v}-{}/{}` or `*/{}`",
                        spec.max,
                        step.unwrap_or(1),
                        step.unwrap_or(1)
                    ),
                ));
            }
            (v, v)
        };
        let step = usize::from(step.unwrap_or(1));
        values.extend((lo..=hi).step_by(step));
    }
    Ok(Field {
        values,
        star: text.starts_with('*'),
    })
}

/// One value: a number in the field's range, or a name.
fn value(s: &str, spec: &Spec) -> Result<u8, String> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = spec.names.iter().position(|n| *n == lower) {
        // Months count from 1, days of the week from 0.
        let i = u8::try_from(i).unwrap_or(0);
        return Ok(if spec.min == 1 { i + 1 } else { i });
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        let names = if spec.names.is_empty() {
            String::new()
        } else {
            format!(
                " or a name ({}..{})",
                spec.names[0],
                spec.names[spec.names.len() - 1]
            )
        };
        return Err(format!(
            "`{s}` is not a number from {} to {}{names}",
            spec.min, spec.max
        ));
    }
    match s.parse::<u8>() {
        Ok(v) if (spec.min..=spec.max).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s} is out of range: {} takes {} to {}",
            spec.name, spec.min, spec.max
        )),
    }
}

/// A field's values (not the day of week's: [`weekdays`]) as systemd writes them: `*` for all of them, `start/step` for three values or
/// more a step apart that run to the field's end, else a list of values and `a..b` ranges.
fn render(values: &BTreeSet<u8>, spec: &Spec) -> String {
    let max = spec.max;
    if values.len() == usize::from(max - spec.min + 1) {
        return "*".to_owned();
    }
    let v: Vec<u8> = values.iter().copied().collect();
    if v.len() >= 3 {
        let step = v[1] - v[0];
        let regular = v.windows(2).all(|w| w[1] - w[0] == step);
        let to_the_end = v[v.len() - 1] + step > max;
        if step > 1 && regular && to_the_end {
            return format!("{:02}/{step}", v[0]);
        }
    }
    runs(&v)
        .into_iter()
        .map(|(a, b)| match b - a {
            0 => format!("{a:02}"),
            1 => format!("{a:02},{b:02}"),
            _ => format!("{a:02}..{b:02}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn weekdays(values: &BTreeSet<u8>) -> String {
    let v: Vec<u8> = values.iter().copied().collect();
    runs(&v)
        .into_iter()
        .map(|(a, b)| {
            let (x, y) = (WEEKDAYS[usize::from(a)], WEEKDAYS[usize::from(b)]);
            match b - a {
                0 => x.to_owned(),
                1 => format!("{x},{y}"),
                _ => format!("{x}..{y}"),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Consecutive runs of sorted values, as (first, last).
fn runs(v: &[u8]) -> Vec<(u8, u8)> {
    let mut out: Vec<(u8, u8)> = Vec::new();
    for &x in v {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == x => *last = x,
            _ => out.push((x, x)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::Cron;

    fn cal(expr: &str) -> Vec<String> {
        match Cron::parse(expr) {
            Ok(c) => c.on_calendar(),
            Err(e) => vec![format!("error: {e}")],
        }
    }

    fn err(expr: &str) -> String {
        match Cron::parse(expr) {
            Ok(c) => format!("parsed as {c}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn common_forms_translate_to_on_calendar() {
        assert_eq!(cal("0 1 * * *"), ["*-*-* 01:00:00"]);
        assert_eq!(cal("30 2 * * 0"), ["Sun *-*-* 02:30:00"]);
        assert_eq!(cal("30 2 * * 7"), ["Sun *-*-* 02:30:00"]);
        assert_eq!(cal("15 3 * * 1-6"), ["Mon..Sat *-*-* 03:15:00"]);
        assert_eq!(cal("15 3 * * MON-fri"), ["Mon..Fri *-*-* 03:15:00"]);
        assert_eq!(cal("0 4 * * sat,sun"), ["Sun,Sat *-*-* 04:00:00"]);
        assert_eq!(cal("0 4 * * 0,1,3"), ["Sun,Mon,Wed *-*-* 04:00:00"]);
        assert_eq!(cal("*/15 * * * *"), ["*-*-* *:00/15:00"]);
        assert_eq!(cal("5 */6 * * *"), ["*-*-* 00/6:05:00"]);
        assert_eq!(cal("0 8-18/2 * * *"), ["*-*-* 08,10,12,14,16,18:00:00"]);
        assert_eq!(cal("0 1-23/2 * * *"), ["*-*-* 01/2:00:00"]);
        assert_eq!(cal("0 0 1,15 * *"), ["*-*-01,15 00:00:00"]);
        assert_eq!(cal("0 0 1-5 * *"), ["*-*-01..05 00:00:00"]);
        assert_eq!(cal("0 0 1 jan,jul *"), ["*-01,07-01 00:00:00"]);
        assert_eq!(cal("0 0 1 4-6 *"), ["*-04..06-01 00:00:00"]);
        assert_eq!(cal("0,30 9-17 * * 1-5"), ["Mon..Fri *-*-* 09..17:00,30:00"]);
        assert_eq!(cal("0 0 */2 * *"), ["*-*-01/2 00:00:00"]);
    }

    #[test]
    fn day_of_month_or_day_of_week_becomes_two_events() {
        // Cron runs on the 1st and 15th AND on every Monday: systemd needs two lines.
        assert_eq!(
            cal("0 2 1,15 * 1"),
            ["*-*-01,15 02:00:00", "Mon *-*-* 02:00:00"]
        );
        // A `*` start on either field means both must match, as one line.
        assert_eq!(cal("0 2 */2 * 1"), ["Mon *-*-01/2 02:00:00"]);
        assert_eq!(cal("0 2 1 * */2"), ["Sun,Tue,Thu,Sat *-*-01 02:00:00"]);
    }

    #[test]
    fn macros_expand() {
        assert_eq!(cal("@daily"), ["*-*-* 00:00:00"]);
        assert_eq!(cal("@weekly"), ["Sun *-*-* 00:00:00"]);
        assert_eq!(cal("@monthly"), ["*-*-01 00:00:00"]);
        assert_eq!(cal("@yearly"), ["*-01-01 00:00:00"]);
        assert_eq!(cal("@hourly"), ["*-*-* *:00:00"]);
        assert_eq!(
            Cron::parse(" 0  1 * *  * ").map(|c| c.to_string()),
            Ok("0 1 * * *".to_owned())
        );
    }

    #[test]
    fn bad_expressions_are_refused_naming_the_field() {
        assert_eq!(
            err("0 24 * * *"),
            "hour `24`: 24 is out of range: hour takes 0 to 23"
        );
        assert_eq!(
            err("0 1 * *"),
            "`0 1 * *` has 4 fields; a cron expression has 5: minute hour day-of-month month day-of-week"
        );
        assert_eq!(
            err("0 0 0 1 1 *").split(';').next(),
            Some("`0 0 0 1 1 *` has 6 fields")
        );
        assert_eq!(
            err("0 1 * * 1,2-8"),
            "day of week `1,2-8`, at `2-8`: 8 is out of range: day of week takes 0 to 7"
        );
        assert_eq!(
            err("5/10 * * * *"),
            "minute `5/10`: a step needs a range: write `5-59/10` or `*/10`"
        );
        assert_eq!(
            err("*/0 * * * *"),
            "minute `*/0`: the step `0` is not a number above 0"
        );
        assert_eq!(
            err("0 5-1 * * *"),
            "hour `5-1`: the range runs backwards (5 > 1); write two ranges"
        );
        assert_eq!(
            err("0 1 * * mon,"),
            "day of week `mon,`: an empty item in the list"
        );
        assert_eq!(
            err("0 1 ? * *"),
            "day of month `?`: `?` is not a number from 1 to 31"
        );
        assert_eq!(
            err("0 1 * foo *"),
            "month `foo`: `foo` is not a number from 1 to 12 or a name (jan..dec)"
        );
        assert_eq!(
            err("0 1 30 2 *"),
            "`0 1 30 2 *` never runs: no chosen month has day 30"
        );
        assert!(err("@reboot").starts_with("@reboot is not a time of day"));
        assert!(err("@often").starts_with("unknown macro `@often`"));
        // February 29 comes, in leap years.
        assert!(Cron::parse("0 1 29 2 *").is_ok());
        // With a restricted day of week, day 30 of February never matches but Mondays do.
        assert!(Cron::parse("0 1 30 2 1").is_ok());
    }
}

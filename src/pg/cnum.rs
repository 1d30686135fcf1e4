//! The C library's number routines as PostgreSQL uses them (glibc on 64-bit Linux):
//! `strtol(s, &end, 0)`, `strtod`, `isspace` and `printf("%g")`. Pure, byte based.

/// C `isspace` in the C locale: space, \t, \n, \v, \f, \r.
pub(crate) fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The outcome of `strtol(s, &end, 0)`, with `end`, the number of bytes consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrtolResult {
    Value(i64, usize),
    /// The digits do not fit a `long` (`errno == ERANGE`).
    Overflow(usize),
    /// No digits (`end == 0`).
    Empty,
}

/// `strtol(s, &end, 0)`: whitespace, a sign, then `0x` hex, `0` octal or decimal digits.
pub(crate) fn strtol(s: &[u8]) -> StrtolResult {
    let (negative, i) = leading_sign(s);
    let (radix, start) = match (s.get(i), s.get(i + 1), s.get(i + 2)) {
        (Some(b'0'), Some(b'x' | b'X'), Some(c)) if c.is_ascii_hexdigit() => (16, i + 2),
        (Some(b'0'), _, _) => (8, i),
        _ => (10, i),
    };
    let digits = s[start..]
        .iter()
        .take_while(|&&c| (c as char).is_digit(radix))
        .count();
    if digits == 0 {
        return StrtolResult::Empty;
    }
    let end = start + digits;
    let mut acc: i128 = 0;
    for &c in &s[start..end] {
        let d = (c as char).to_digit(radix).unwrap_or(0);
        acc = acc * i128::from(radix) + i128::from(d);
        if acc > i128::from(i64::MAX) + 1 {
            return StrtolResult::Overflow(end);
        }
    }
    let acc = if negative { -acc } else { acc };
    match i64::try_from(acc) {
        Ok(v) => StrtolResult::Value(v, end),
        Err(_) => StrtolResult::Overflow(end),
    }
}

/// The outcome of `strtod`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Strtod {
    pub value: f64,
    /// Bytes consumed; 0 when no number was found.
    pub end: usize,
    /// Overflow or underflow (`errno == ERANGE`).
    pub erange: bool,
}

/// `strtod`: whitespace, a sign, then `inf`/`infinity`/`nan`, a hex float or a decimal float.
pub(crate) fn strtod(s: &[u8]) -> Strtod {
    const NONE: Strtod = Strtod {
        value: 0.0,
        end: 0,
        erange: false,
    };
    let (negative, i) = leading_sign(s);
    let sign = if negative { -1.0 } else { 1.0 };
    let rest = &s[i..];
    if starts_with_ci(rest, b"infinity") {
        return Strtod {
            value: sign * f64::INFINITY,
            end: i + 8,
            erange: false,
        };
    }
    if starts_with_ci(rest, b"inf") {
        return Strtod {
            value: sign * f64::INFINITY,
            end: i + 3,
            erange: false,
        };
    }
    if starts_with_ci(rest, b"nan") {
        let mut end = i + 3;
        // nan(n-char-sequence)
        if s.get(end) == Some(&b'(') {
            let inner = s[end + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            if s.get(end + 1 + inner) == Some(&b')') {
                end += inner + 2;
            }
        }
        return Strtod {
            value: f64::NAN,
            end,
            erange: false,
        };
    }
    if let (Some(b'0'), Some(b'x' | b'X')) = (rest.first(), rest.get(1))
        && let Some((value, used)) = hex_float(&rest[2..])
    {
        return finish(sign * value, i + 2 + used, value != 0.0);
    }
    // Decimal: digits [. digits] [e [sign] digits], at least one mantissa digit.
    let int_digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut j = int_digits;
    let mut frac_digits = 0;
    if rest.get(j) == Some(&b'.') {
        frac_digits = rest[j + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if int_digits + frac_digits > 0 {
            j += 1 + frac_digits;
        }
    }
    if int_digits + frac_digits == 0 {
        return NONE;
    }
    let mantissa_end = j;
    if let Some(b'e' | b'E') = rest.get(j) {
        let mut k = j + 1;
        if let Some(b'+' | b'-') = rest.get(k) {
            k += 1;
        }
        let exp_digits = rest[k..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp_digits > 0 {
            j = k + exp_digits;
        }
    }
    let nonzero = rest[..mantissa_end]
        .iter()
        .any(|c| c.is_ascii_digit() && *c != b'0');
    let text = String::from_utf8_lossy(&rest[..j]);
    // Rust's parser wants a digit before an exponent: "5.e3" → "5.0e3", ".5" is fine.
    let text = text.replacen(".e", ".0e", 1).replacen(".E", ".0E", 1);
    match text.parse::<f64>() {
        Ok(v) => finish(sign * v, i + j, nonzero),
        Err(_) => NONE,
    }
}

fn finish(value: f64, end: usize, nonzero_digits: bool) -> Strtod {
    let erange = value.is_infinite()
        || (nonzero_digits && (value == 0.0 || value.abs() < f64::MIN_POSITIVE));
    Strtod { value, end, erange }
}

/// A hex float after `0x`: hexdigits [. hexdigits] [p [sign] digits]; (value, bytes used).
fn hex_float(s: &[u8]) -> Option<(f64, usize)> {
    let mut value = 0.0f64;
    let mut i = 0;
    let mut digits = 0;
    while let Some(d) = s.get(i).and_then(|c| (*c as char).to_digit(16)) {
        value = value * 16.0 + f64::from(d);
        i += 1;
        digits += 1;
    }
    let mut scale = 0i32;
    if s.get(i) == Some(&b'.') {
        let mut k = i + 1;
        let mut frac = 0;
        while let Some(d) = s.get(k).and_then(|c| (*c as char).to_digit(16)) {
            value = value * 16.0 + f64::from(d);
            k += 1;
            frac += 1;
        }
        if digits + frac > 0 {
            i = k;
            digits += frac;
            scale = scale.saturating_sub(4 * frac);
        }
    }
    if digits == 0 {
        return None;
    }
    if let Some(b'p' | b'P') = s.get(i) {
        let mut k = i + 1;
        let neg = match s.get(k) {
            Some(b'-') => {
                k += 1;
                true
            }
            Some(b'+') => {
                k += 1;
                false
            }
            _ => false,
        };
        let exp_digits = s[k..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp_digits > 0 {
            let mut e: i32 = 0;
            for c in &s[k..k + exp_digits] {
                e = e.saturating_mul(10).saturating_add(i32::from(c - b'0'));
            }
            scale = scale.saturating_add(if neg { -e } else { e });
            i = k + exp_digits;
        }
    }
    Some((value * 2f64.powi(scale), i))
}

/// Leading whitespace and an optional sign, as C's number parsers take them: whether it is
/// negative, and where the number starts.
fn leading_sign(s: &[u8]) -> (bool, usize) {
    let i = skip_space(s, 0);
    match s.get(i) {
        Some(b'-') => (true, i + 1),
        Some(b'+') => (false, i + 1),
        _ => (false, i),
    }
}

fn skip_space(s: &[u8], mut i: usize) -> usize {
    while s.get(i).is_some_and(|&c| is_c_space(c)) {
        i += 1;
    }
    i
}

fn starts_with_ci(s: &[u8], word: &[u8]) -> bool {
    s.len() >= word.len() && s[..word.len()].eq_ignore_ascii_case(word)
}

/// `printf("%g", x)`: 6 significant digits, fixed or scientific notation, no trailing zeros.
/// PostgreSQL shows real GUCs (`pg_settings.setting`) this way.
pub(crate) fn format_g(x: f64) -> String {
    const P: i32 = 6;
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.to_owned();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    let sci = format!("{:.*e}", (P - 1) as usize, x);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..P).contains(&exp) {
        let fixed = format!("{:.*}", (P - 1 - exp) as usize, x);
        strip_zeros(&fixed).to_owned()
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip_zeros(mantissa), exp.abs())
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn strtol_follows_c() {
        let cases: &[(&str, StrtolResult)] = &[
            ("42", StrtolResult::Value(42, 2)),
            ("  -7kB", StrtolResult::Value(-7, 4)),
            ("+5", StrtolResult::Value(5, 2)),
            ("0x1F", StrtolResult::Value(31, 4)),
            ("0x", StrtolResult::Value(0, 1)),
            ("010", StrtolResult::Value(8, 3)),
            ("08", StrtolResult::Value(0, 1)),
            ("1.5", StrtolResult::Value(1, 1)),
            ("", StrtolResult::Empty),
            ("-", StrtolResult::Empty),
            ("MB", StrtolResult::Empty),
            ("9223372036854775807", StrtolResult::Value(i64::MAX, 19)),
            ("-9223372036854775808", StrtolResult::Value(i64::MIN, 20)),
            ("9223372036854775808", StrtolResult::Overflow(19)),
            ("99999999999999999999999999", StrtolResult::Overflow(26)),
        ];
        for (input, want) in cases {
            assert_eq!(strtol(input.as_bytes()), *want, "strtol({input:?})");
        }
    }

    #[test]
    fn strtod_follows_c() {
        let cases: &[(&str, f64, usize, bool)] = &[
            ("1.5", 1.5, 3, false),
            (" .5MB", 0.5, 3, false),
            ("5.", 5.0, 2, false),
            ("5.e3", 5000.0, 4, false),
            ("1e3", 1000.0, 3, false),
            ("1e", 1.0, 1, false),
            ("1e+", 1.0, 1, false),
            ("-2.5E-1x", -0.25, 7, false),
            ("inf", f64::INFINITY, 3, false),
            ("-Infinity", f64::NEG_INFINITY, 9, false),
            ("0x1p3", 8.0, 5, false),
            ("0x1.8", 1.5, 5, false),
            ("1e400", f64::INFINITY, 5, true),
            ("1e-400", 0.0, 6, true),
            ("0e-400", 0.0, 6, false),
            (".", 0.0, 0, false),
            ("abc", 0.0, 0, false),
        ];
        for (input, value, end, erange) in cases {
            let r = strtod(input.as_bytes());
            assert_eq!(
                (r.value, r.end, r.erange),
                (*value, *end, *erange),
                "strtod({input:?})"
            );
        }
        assert!(strtod(b"nan(123)").value.is_nan());
        assert_eq!(strtod(b"nan(123)").end, 8);
    }

    #[test]
    fn format_g_matches_printf() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (1.0, "1"),
            (0.1, "0.1"),
            (0.005, "0.005"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (100000.0, "100000"),
            (1000000.0, "1e+06"),
            (f64::MAX, "1.79769e+308"),
            (123456789.0, "1.23457e+08"),
            (0.123456789, "0.123457"),
            (-2.5, "-2.5"),
            (2.0, "2"),
        ];
        for (x, want) in cases {
            assert_eq!(format_g(*x), *want, "format_g({x})");
        }
    }
}

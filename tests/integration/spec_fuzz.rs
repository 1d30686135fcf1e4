//! "A panic is never an acceptable answer to bad input": garbage bytes and mutated specs, YAML
//! and KDL, must come back as `Ok` or as positioned diagnostics (and never overflow a stack:
//! tests run on 2 MiB threads, as tokio's workers do). Deterministic (seeded); raise the count with
//! `PGDBA_FUZZ_ITERS=100000 PGDBA_FUZZ_SEED=7 cargo test --test integration spec_fuzz` for a longer run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

/// xorshift64*: small, deterministic, no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Bytes that mean something to YAML, and some that should not be there at all.
const YAML_BYTES: &[u8] = b" :-[]{}&*!|>'\"%@`#,?\n\t\r~.0123456789eE+x\\";
const SNIPPETS: &[&str] = &[
    ": ",
    "- ",
    "&a ",
    "*a",
    "!!str ",
    "!!int ",
    "!bogus ",
    "---\n",
    "...\n",
    "? ",
    "|\n  ",
    ">-\n",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "'",
    "#",
    "\t",
    "\u{feff}",
    "\u{0}",
    "é",
    "\u{85}",
    "\u{2028}",
    "0x",
    ".inf",
    ".nan",
    "1e999",
    "-1",
    "99999999999999999999999",
    "~",
    "null",
    "true",
    "on",
    "work_mem: 4 parsecs\n",
    "  bogus: 1\n",
    "\n  - x\n",
    "<<: *a\n",
    "%YAML 1.2\n",
    "%TAG ! !x\n",
];

/// Bytes that mean something to KDL.
const KDL_BYTES: &[u8] = b" {}();=#\"/-*\\\n\t\r.0123456789eExab_+,";
const KDL_SNIPPETS: &[&str] = &[
    "/-",
    "/- ",
    "/*",
    "*/",
    "// ",
    "#true",
    "#false",
    "#null",
    "#inf",
    "#-inf",
    "#nan",
    "true",
    "null",
    "#\"",
    "\"#",
    "##\"",
    "\"\"\"\n",
    "\n\"\"\"",
    "r\"x\"",
    "(u8)",
    "()",
    "- ",
    "\n- 1\n",
    " - a=1",
    "=",
    " k=",
    "{",
    "}",
    " { }",
    ";",
    "\\\n",
    "\\",
    "\"",
    "\u{feff}",
    "\u{0}",
    "é",
    "\u{85}",
    "\u{2028}",
    "\u{200e}",
    "0x",
    "0b2",
    "1e999",
    "1.",
    "-1",
    "99999999999999999999999999999999999999999",
    "work_mem 4MB\n",
    "bogus 1\n",
    "replicas 2\n",
    "apiVersion pgdba/v1\n",
];

/// The two spellings, by the file label that selects each.
#[derive(Clone, Copy, Debug)]
enum Syntax {
    Yaml,
    Kdl,
}

impl Syntax {
    fn label(self) -> &'static str {
        match self {
            Syntax::Yaml => "fuzz.yaml",
            Syntax::Kdl => "fuzz.kdl",
        }
    }
    fn bytes(self) -> &'static [u8] {
        match self {
            Syntax::Yaml => YAML_BYTES,
            Syntax::Kdl => KDL_BYTES,
        }
    }
    fn snippets(self) -> &'static [&'static str] {
        match self {
            Syntax::Yaml => SNIPPETS,
            Syntax::Kdl => KDL_SNIPPETS,
        }
    }
}

/// `PGDBA_FUZZ_SEED` varies the inputs of a longer run.
fn seed(default: u64) -> u64 {
    let extra = std::env::var("PGDBA_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    (default ^ extra.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1
}

fn iterations(default: usize) -> usize {
    std::env::var("PGDBA_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[track_caller]
fn check(syntax: Syntax, input: &[u8]) {
    if let Err(diags) = pgdba::spec::load_str(syntax.label(), input) {
        assert!(!diags.is_empty(), "Err with no diagnostics for {input:?}");
        // Diagnostics end a line at \r\n, \n or a lone \r, as YAML does.
        let lines = input.split(|&b| b == b'\n' || b == b'\r').count();
        for d in &diags {
            assert!(d.line >= 1 && d.column >= 1, "{d} for {input:?}");
            assert!(d.line <= lines + 1, "{d} past the end of {input:?}");
            assert!(!d.message.is_empty(), "empty message for {input:?}");
            let _ = d.to_string();
        }
    }
}

/// The good fixtures, each with its spelling.
fn good_specs() -> Vec<(Syntax, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/specs/good");
    pgdba::spec::discover(&dir)
        .unwrap()
        .iter()
        .map(|p| {
            let kdl = p.extension().is_some_and(|e| e.eq_ignore_ascii_case("kdl"));
            let syntax = if kdl { Syntax::Kdl } else { Syntax::Yaml };
            (syntax, std::fs::read(p).unwrap())
        })
        .collect()
}

#[test]
fn random_bytes_never_panic() {
    for (syntax, base) in [
        (Syntax::Yaml, 0x9e37_79b9_7f4a_7c15),
        (Syntax::Kdl, 0x51ed_270b_27a9_5c1d),
    ] {
        let mut rng = Rng(seed(base));
        for i in 0..iterations(300) {
            let len = rng.below(200);
            let bytes: Vec<u8> = (0..len)
                .map(|_| match i % 3 {
                    0 => rng.next() as u8,
                    1 => *rng.pick(syntax.bytes()),
                    _ => {
                        if rng.below(4) == 0 {
                            *rng.pick(syntax.bytes())
                        } else {
                            b'a' + rng.below(26) as u8
                        }
                    }
                })
                .collect();
            check(syntax, &bytes);
        }
    }
}

#[test]
fn mutated_specs_never_panic() {
    let specs = good_specs();
    assert!(specs.iter().any(|(s, _)| matches!(s, Syntax::Kdl)));
    let mut rng = Rng(seed(0xdead_beef_cafe_f00d));
    for _ in 0..iterations(400) {
        let (syntax, s) = rng.pick(&specs);
        let (syntax, mut s) = (*syntax, s.clone());
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(s.len() + 1);
            match rng.below(7) {
                0 => {
                    let end = (at + rng.below(20)).min(s.len());
                    s.drain(at..end);
                }
                1 => {
                    let snippet = rng.pick(syntax.snippets()).as_bytes();
                    s.splice(at..at, snippet.iter().copied());
                }
                2 => s.insert(at, *rng.pick(syntax.bytes())),
                3 => s.truncate(at),
                4 if !s.is_empty() => {
                    let (a, b) = (at.min(s.len() - 1), rng.below(s.len()));
                    s.swap(a, b);
                }
                5 => s.insert(at, rng.next() as u8),
                _ => {
                    // Duplicate a line somewhere else (duplicate keys, broken indentation).
                    let text = s.clone();
                    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
                    let line = rng.pick(&lines).to_vec();
                    s.splice(at..at, line.into_iter().chain([b'\n']));
                }
            }
        }
        check(syntax, &s);
    }
}

#[test]
fn pathological_shapes_never_panic() {
    let cases: Vec<Vec<u8>> = vec![
        "[".repeat(100_000).into_bytes(),
        "{a: ".repeat(10_000).into_bytes(),
        "- ".repeat(10_000).into_bytes(),
        format!("a: {}", "x".repeat(1_000_000)).into_bytes(),
        "a:\n".repeat(1000).into_bytes(),
        b"&a a: *a".to_vec(),
        b"*a".to_vec(),
        b"a: *unknown".to_vec(),
        b"\xef\xbb\xbf".to_vec(),
        b"\xef\xbb".to_vec(),
        b"---\n---\n".to_vec(),
        b"...".to_vec(),
        b"%YAML 1.2\n%YAML 1.2\n---\n".to_vec(),
        vec![0u8; 64],
        vec![b'\n'; 10_000],
    ];
    for c in cases {
        check(Syntax::Yaml, &c);
    }
}

/// Shapes that overflow the `kdl` parser's recursive descent on a small stack, or make it
/// backtrack for minutes, unless they are refused first or parsed on a stack of their own.
#[test]
fn pathological_kdl_shapes_never_panic_nor_overflow() {
    let cases: Vec<Vec<u8>> = vec![
        "{".repeat(100_000).into_bytes(),
        "a {".repeat(4000).into_bytes(),
        format!("{}{}", "a {".repeat(3000), "}".repeat(3000)).into_bytes(),
        "}".repeat(200_000).into_bytes(),
        "a=".repeat(100_000).into_bytes(),
        "=".repeat(200_000).into_bytes(),
        format!("a {}", "/*".repeat(10_000)).into_bytes(),
        format!("a 1 {}", "/- ".repeat(10_000)).into_bytes(),
        "/- ".repeat(10_000).into_bytes(),
        "\"".repeat(100_000).into_bytes(),
        format!("a \"{}", "x".repeat(200_000)).into_bytes(),
        "- ".repeat(100_000).into_bytes(),
        "a 1\n".repeat(60_000).into_bytes(),
        "a\n".repeat(100_000).into_bytes(),
        "x".repeat(300_000).into_bytes(),
        b"\xef\xbb\xbf".to_vec(),
        vec![b'\n'; 10_000],
    ];
    for c in cases {
        let started = std::time::Instant::now();
        check(Syntax::Kdl, &c);
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_secs(30),
            "{took:?} for {:?}…",
            String::from_utf8_lossy(&c[..c.len().min(20)])
        );
    }
}

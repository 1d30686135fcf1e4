//! "A panic is never an acceptable answer to bad input": garbage bytes and mutated specs must
//! come back as `Ok` or as positioned diagnostics. Deterministic (seeded); raise the count with
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
fn check(input: &[u8]) {
    if let Err(diags) = pgdba::spec::load_str("fuzz.yaml", input) {
        assert!(!diags.is_empty(), "Err with no diagnostics for {input:?}");
        // YAML ends a line at \r\n, \n or a lone \r.
        let lines = input.split(|&b| b == b'\n' || b == b'\r').count();
        for d in &diags {
            assert!(d.line >= 1 && d.column >= 1, "{d} for {input:?}");
            assert!(d.line <= lines + 1, "{d} past the end of {input:?}");
            assert!(!d.message.is_empty(), "empty message for {input:?}");
            let _ = d.to_string();
        }
    }
}

fn good_specs() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/specs/good");
    pgdba::spec::discover(&dir)
        .unwrap()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(seed(0x9e37_79b9_7f4a_7c15));
    for i in 0..iterations(300) {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len)
            .map(|_| match i % 3 {
                0 => rng.next() as u8,
                1 => *rng.pick(YAML_BYTES),
                _ => {
                    if rng.below(4) == 0 {
                        *rng.pick(YAML_BYTES)
                    } else {
                        b'a' + rng.below(26) as u8
                    }
                }
            })
            .collect();
        check(&bytes);
    }
}

#[test]
fn mutated_specs_never_panic() {
    let specs = good_specs();
    let mut rng = Rng(seed(0xdead_beef_cafe_f00d));
    for _ in 0..iterations(400) {
        let mut s = rng.pick(&specs).clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(s.len() + 1);
            match rng.below(7) {
                0 => {
                    let end = (at + rng.below(20)).min(s.len());
                    s.drain(at..end);
                }
                1 => {
                    let snippet = rng.pick(SNIPPETS).as_bytes();
                    s.splice(at..at, snippet.iter().copied());
                }
                2 => s.insert(at, *rng.pick(YAML_BYTES)),
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
        check(&s);
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
        check(&c);
    }
}

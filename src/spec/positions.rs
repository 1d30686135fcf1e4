//! Where each key and value of a parsed spec stands in its source, by JSON pointer, whichever
//! spelling (YAML or KDL) it was written in.

use std::collections::HashMap;

use super::diagnostic::Pos;

/// Where each node of a document stands, by JSON pointer (`/spec/postgres/parameters/work_mem`).
#[derive(Debug, Default)]
pub(crate) struct Positions {
    pub(super) values: HashMap<String, Pos>,
    pub(super) keys: HashMap<String, Pos>,
}

impl Positions {
    /// The position of the value at `pointer`.
    pub fn value(&self, pointer: &str) -> Option<Pos> {
        self.values.get(pointer).copied()
    }

    /// The position of the key whose value is at `pointer` (none for the root or list items).
    pub fn key(&self, pointer: &str) -> Option<Pos> {
        self.keys.get(pointer).copied()
    }

    /// The key of `pointer` if it has one, else its value; walking up to the nearest ancestor
    /// the document has, and to 1:1 at worst.
    pub fn key_or_value(&self, pointer: &str) -> Pos {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.key(p).or_else(|| self.value(p)) {
                return pos;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Pos::START,
            }
        }
    }

    /// The value at `pointer` if the document has it, else as `key_or_value`.
    pub fn value_or_key(&self, pointer: &str) -> Pos {
        self.value(pointer)
            .unwrap_or_else(|| self.key_or_value(pointer))
    }
}

/// Escapes one JSON pointer segment (`~` → `~0`, `/` → `~1`).
pub(crate) fn escape_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

//! Diagnostics: one problem in a spec file, with its position and the source line.

use std::fmt;

use serde::Serialize;

/// One problem in a spec file. Line and column are 1-based; the column counts characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The source line with a caret under the column, with a line-number gutter:
    /// ```text
    ///  12 |     wrok_mem: 4MB
    ///     |     ^
    /// ```
    pub snippet: Option<String>,
}

impl fmt::Display for Diagnostic {
    /// `FILE:LINE:COL: error: MESSAGE`, then the snippet lines, if any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.file, self.line, self.column, self.message
        )?;
        if let Some(snippet) = &self.snippet {
            write!(f, "\n{snippet}")?;
        }
        Ok(())
    }
}

/// A 1-based position in the source (column in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, column: 1 };
}

/// The text of a spec file, to turn positions into diagnostics with snippets.
pub(crate) struct Source<'a> {
    label: &'a str,
    text: &'a str,
}

/// Longest source line shown whole in a snippet; longer lines are cut around the column.
const SNIPPET_WIDTH: usize = 100;

impl<'a> Source<'a> {
    pub fn new(label: &'a str, text: &'a str) -> Self {
        Source { label, text }
    }

    /// A diagnostic at `pos`, with the source line as snippet.
    pub fn diag(&self, pos: Pos, message: impl Into<String>) -> Diagnostic {
        self.diag_marked(pos, &Mark::CARET, message)
    }

    /// A diagnostic at `pos` whose snippet underlines `mark.width` characters and ends the
    /// underline with `mark.label`.
    pub fn diag_marked(&self, pos: Pos, mark: &Mark<'_>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: self.label.to_owned(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
            snippet: snippet_marked(self.text, pos, mark),
        }
    }
}

/// What a snippet draws under its line: `^^^^ label`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark<'a> {
    /// Characters underlined from the column; at least one, cut at the end of the line.
    pub width: usize,
    pub label: Option<&'a str>,
}

impl Mark<'_> {
    /// One caret, no label.
    pub const CARET: Mark<'static> = Mark {
        width: 1,
        label: None,
    };
}

/// Turns byte offsets into positions, counting lines as [`lines`] does, in time logarithmic in
/// the size of the text: a parser's spans arrive by the thousand on a large bad file, maybe all
/// on one long line.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset where each line starts.
    starts: Vec<usize>,
    /// Characters in `text[..k * CHUNK]`, for each k.
    chars_before_chunk: Vec<usize>,
}

/// Bytes between two checkpoints of [`LineIndex::chars_before_chunk`].
const CHUNK: usize = 64;

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                    starts.push(i + 2);
                    i += 2;
                }
                b'\r' | b'\n' => {
                    starts.push(i + 1);
                    i += 1;
                }
                _ => i += 1,
            }
        }
        let mut chars_before_chunk = vec![0];
        let mut total = 0;
        for chunk in bytes.chunks(CHUNK) {
            total += chunk.iter().filter(|&&b| !is_continuation(b)).count();
            chars_before_chunk.push(total);
        }
        LineIndex {
            text,
            starts,
            chars_before_chunk,
        }
    }

    /// `offset` within the text, moved back to the start of a character it falls inside.
    fn clamp(&self, offset: usize) -> usize {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }

    /// The number of characters before byte `offset`, a character boundary.
    fn chars_before(&self, offset: usize) -> usize {
        let chunk = offset / CHUNK;
        let counted = self.chars_before_chunk.get(chunk).copied().unwrap_or(0);
        let rest = self
            .text
            .as_bytes()
            .get(chunk * CHUNK..offset)
            .unwrap_or_default();
        counted + rest.iter().filter(|&&b| !is_continuation(b)).count()
    }

    /// The position of the character at byte `offset` (clamped to the text, and moved back to
    /// the start of a character it falls inside).
    pub fn pos(&self, offset: usize) -> Pos {
        let offset = self.clamp(offset);
        // The last line starting at or before `offset`; `starts[0]` is 0, so there is one.
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0).min(offset);
        Pos {
            line,
            column: 1 + self.chars_before(offset) - self.chars_before(start),
        }
    }

    /// The number of characters of `text[from..to]`, byte offsets clamped as by `pos`.
    pub fn chars_between(&self, from: usize, to: usize) -> usize {
        let (from, to) = (self.clamp(from), self.clamp(to));
        self.chars_before(to)
            .saturating_sub(self.chars_before(from))
    }
}

/// A UTF-8 continuation byte (`0b10xx_xxxx`): not the start of a character.
fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// A diagnostic with no source line (unreadable file, empty spec).
pub(crate) fn bare(file: &str, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        file: file.to_owned(),
        line: 1,
        column: 1,
        message: message.into(),
        snippet: None,
    }
}

/// The lines of a text as YAML counts them: a line ends at `\r\n`, `\n` or a lone `\r`.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.find(['\r', '\n']) {
            None => {
                rest = None;
                Some(s)
            }
            Some(i) => {
                let skip = if s[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[i + skip..]);
                Some(&s[..i])
            }
        }
    })
}

/// The position just past a text, as YAML counts lines and columns.
pub(crate) fn end_pos(text: &str) -> Pos {
    let mut line = 0;
    let mut last = "";
    for l in lines(text) {
        line += 1;
        last = l;
    }
    Pos {
        line: line.max(1),
        column: 1 + last.chars().count(),
    }
}

/// The line at `pos` and a caret under its column, or `None` when the line is blank or
/// does not exist.
#[cfg(test)]
pub(crate) fn snippet(text: &str, pos: Pos) -> Option<String> {
    snippet_marked(text, pos, &Mark::CARET)
}

/// The line at `pos` and `mark` under its column, or `None` when the line is blank or does
/// not exist.
pub(crate) fn snippet_marked(text: &str, pos: Pos, mark: &Mark<'_>) -> Option<String> {
    let line = lines(text).nth(pos.line.checked_sub(1)?)?;
    if line.trim().is_empty() {
        return None;
    }
    // Control characters would garble a terminal: show them as U+FFFD, keep tabs.
    let chars: Vec<char> = line
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect();
    let col = pos.column.saturating_sub(1).min(chars.len());
    let (start, end) = if chars.len() <= SNIPPET_WIDTH {
        (0, chars.len())
    } else {
        let start = col.saturating_sub(SNIPPET_WIDTH / 2);
        (start, (start + SNIPPET_WIDTH).min(chars.len()))
    };
    let mut shown: String = chars[start..end].iter().collect();
    let mut pad: String = chars[start..col]
        .iter()
        .map(|&c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    if start > 0 {
        shown.insert(0, '…');
        pad.insert(0, ' ');
    }
    if end < chars.len() {
        shown.push('…');
    }
    let carets = mark.width.clamp(1, (end - col).max(1));
    let mut under = format!("{pad}{}", "^".repeat(carets));
    if let Some(label) = mark.label.filter(|l| !l.trim().is_empty()) {
        under.push(' ');
        under.push_str(label.trim());
    }
    let number = pos.line.to_string();
    let gutter = " ".repeat(number.len());
    Some(format!(" {number} | {shown}\n {gutter} | {under}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn display_is_file_line_col_then_snippet() {
        let src = Source::new("demo.yaml", "a: 1\n  wrok_mem: 4MB\n");
        let d = src.diag(Pos { line: 2, column: 3 }, "unknown parameter");
        assert_eq!(
            d.to_string(),
            "demo.yaml:2:3: error: unknown parameter\n 2 |   wrok_mem: 4MB\n   |   ^"
        );
    }

    #[test]
    fn snippet_keeps_tabs_aligned_and_cuts_long_lines() {
        let s = snippet("\tx: 1", Pos { line: 1, column: 2 }).unwrap();
        assert_eq!(s, " 1 | \tx: 1\n   | \t^");
        let long = format!("{}X{}", "a".repeat(300), "b".repeat(300));
        let s = snippet(
            &long,
            Pos {
                line: 1,
                column: 301,
            },
        )
        .unwrap();
        let lines: Vec<&str> = s.lines().collect();
        let caret = lines[1].chars().position(|c| c == '^').unwrap();
        assert_eq!(lines[0].chars().nth(caret), Some('X'));
        assert!(lines[0].chars().count() < 120);
    }

    #[test]
    fn lines_end_at_crlf_lf_or_a_lone_cr() {
        let got: Vec<&str> = lines("a\r\nb\rc\nd").collect();
        assert_eq!(got, ["a", "b", "c", "d"]);
        assert_eq!(lines("").count(), 1);
        assert_eq!(end_pos("ab\ncd"), Pos { line: 2, column: 3 });
        assert_eq!(end_pos("ab\r\n"), Pos { line: 2, column: 1 });
        assert_eq!(
            snippet("a\rbc", Pos { line: 2, column: 2 }).unwrap(),
            " 2 | bc\n   |  ^"
        );
    }

    #[test]
    fn a_mark_underlines_a_span_and_labels_it() {
        let mark = Mark {
            width: 3,
            label: Some("not integer"),
        };
        let s = snippet_marked("x 4MB\n", Pos { line: 1, column: 3 }, &mark).unwrap();
        assert_eq!(s, " 1 | x 4MB\n   |   ^^^ not integer");
        // Cut at the end of the line; never less than one caret.
        let wide = Mark {
            width: 99,
            label: None,
        };
        let s = snippet_marked("ab", Pos { line: 1, column: 2 }, &wide).unwrap();
        assert_eq!(s, " 1 | ab\n   |  ^");
        let s = snippet_marked("ab", Pos { line: 1, column: 3 }, &wide).unwrap();
        assert_eq!(s, " 1 | ab\n   |   ^");
    }

    #[test]
    fn line_index_counts_lines_as_lines_does_and_columns_in_characters() {
        let text = "é1\r\nb\rc\nd";
        let index = LineIndex::new(text);
        assert_eq!(index.pos(0), Pos { line: 1, column: 1 });
        assert_eq!(index.pos(2), Pos { line: 1, column: 2 });
        // Inside a character: its start.
        assert_eq!(index.pos(1), Pos { line: 1, column: 1 });
        assert_eq!(index.pos(5), Pos { line: 2, column: 1 });
        assert_eq!(index.pos(7), Pos { line: 3, column: 1 });
        assert_eq!(index.pos(9), Pos { line: 4, column: 1 });
        // Past the end: the end.
        assert_eq!(index.pos(99), end_pos(text));
        assert_eq!(index.chars_between(0, 3), 2);
        assert_eq!(index.chars_between(3, 0), 0);
    }

    #[test]
    fn snippet_of_missing_or_blank_line_is_none() {
        assert_eq!(snippet("a\n", Pos { line: 5, column: 1 }), None);
        assert_eq!(snippet("a\n   \n", Pos { line: 2, column: 1 }), None);
        assert_eq!(snippet("", Pos { line: 0, column: 0 }), None);
    }
}

//! Splitting a batch of JSON Lines into lines: `\n` ends a line, a `\r` before
//! it is dropped, a last line without `\n` still counts, and lines holding only
//! JSON whitespace (space, tab, CR) are skipped but keep their line number.

use super::scanner::find_newline;

/// One non-blank line: its index in the batch (0-based, blank lines counted)
/// and its bytes without the line ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    pub index: usize,
    pub start: usize,
    pub end: usize,
}

pub struct Lines<'a> {
    data: &'a [u8],
    pos: usize,
    index: usize,
}

impl<'a> Lines<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Lines {
            data,
            pos: 0,
            index: 0,
        }
    }
}

pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|&b| matches!(b, b' ' | b'\t' | b'\r'))
}

impl Iterator for Lines<'_> {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        while self.pos < self.data.len() {
            let start = self.pos;
            let (mut end, next) = match find_newline(self.data, start) {
                Some(nl) => (nl, nl + 1),
                None => (self.data.len(), self.data.len()),
            };
            self.pos = next;
            let index = self.index;
            self.index += 1;
            if end > start && self.data[end - 1] == b'\r' {
                end -= 1;
            }
            if !is_blank(&self.data[start..end]) {
                return Some(Line { index, start, end });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(data: &[u8]) -> Vec<(usize, &[u8])> {
        Lines::new(data)
            .map(|l| (l.index, &data[l.start..l.end]))
            .collect()
    }

    #[test]
    fn splits_on_newlines() {
        assert_eq!(split(b""), vec![]);
        assert_eq!(split(b"\n\n \t\r\n"), vec![]);
        assert_eq!(split(b"a"), vec![(0, &b"a"[..])]);
        assert_eq!(split(b"a\n"), vec![(0, &b"a"[..])]);
        assert_eq!(split(b"a\r\nb\r\n"), vec![(0, &b"a"[..]), (1, &b"b"[..])]);
        assert_eq!(split(b"\na\n\n  \nb"), vec![(1, &b"a"[..]), (4, &b"b"[..])]);
        assert_eq!(split(b"a\rb\n"), vec![(0, &b"a\rb"[..])]);
        assert_eq!(split(b"x\r"), vec![(0, &b"x"[..])]);
    }

    #[test]
    fn form_feed_is_not_blank() {
        assert_eq!(split(b"\x0c\n"), vec![(0, &b"\x0c"[..])]);
    }
}

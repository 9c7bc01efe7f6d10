//! Splitting a batch of JSON Lines into lines: `\n` ends a line, a `\r` before
//! it is dropped, a last line without `\n` still counts, and lines holding only
//! JSON whitespace (space, tab, CR) are skipped but keep their line number.
//!
//! When the whole batch is valid UTF-8 (the usual case) the parsers scan it in
//! place and the end of each line is where the parser stopped, so good lines
//! are read once; otherwise the batch is split first and each line checked.

use super::scanner::find_newline;

const BOM: &str = "\u{feff}";

/// A non-blank line handed to a parser.
#[derive(Debug, Clone, Copy)]
pub struct LineStart<'a> {
    /// Index of the line in the batch (blank lines counted).
    pub index: usize,
    /// What the parser scans: the whole batch, or only this line.
    pub text: &'a str,
    /// Where the line starts in `text`.
    pub line_start: usize,
    /// Where its JSON starts in `text` (past a byte order mark).
    pub start: usize,
}

pub enum NextLine<'a> {
    Line(LineStart<'a>),
    /// A line that is not UTF-8: its index, byte range and message.
    NotUtf8(usize, usize, usize, String),
    Done,
}

/// Hands out the non-blank lines of a batch, one at a time; after parsing a
/// line, `end_line` with the parser's stop position gives its raw bytes.
pub struct LineCursor<'a> {
    data: &'a [u8],
    /// The batch as text, when it is all valid UTF-8.
    all: Option<&'a str>,
    pos: usize,
    index: usize,
    split: Lines<'a>,
    /// The current line's range in `data` (split mode).
    current: Line,
}

impl<'a> LineCursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        LineCursor {
            data,
            all: std::str::from_utf8(data).ok(),
            pos: 0,
            index: 0,
            split: Lines::new(data),
            current: Line {
                index: 0,
                start: 0,
                end: 0,
            },
        }
    }

    /// A cursor whose next line is the one whose raw bytes start at `at`
    /// (a `raw_start` of an earlier cursor over the same `data`), line
    /// `index` of the batch: reading goes on where another reader stopped.
    pub fn resume(data: &'a [u8], at: usize, index: usize) -> Self {
        let mut cursor = LineCursor::new(data);
        cursor.pos = at;
        cursor.index = index;
        cursor.split.pos = at;
        cursor.split.index = index;
        cursor
    }

    /// How many lines (blank ones counted) the cursor has gone past: all
    /// of a batch that ends with a newline once `next_line` said `Done`.
    pub fn lines_passed(&self) -> usize {
        if self.all.is_some() {
            self.index
        } else {
            self.split.index
        }
    }

    /// Where `line` (the line this cursor handed out last) starts in `data`.
    pub fn raw_start(&self, line: &LineStart<'a>) -> usize {
        if self.all.is_some() {
            line.line_start
        } else {
            self.current.start
        }
    }

    pub fn next_line(&mut self) -> NextLine<'a> {
        let Some(all) = self.all else {
            return self.next_split();
        };
        let data = self.data;
        loop {
            let line_start = self.pos;
            let mut p = line_start;
            while p < data.len() && matches!(data[p], b' ' | b'\t' | b'\r') {
                p += 1;
            }
            if p >= data.len() {
                self.pos = data.len();
                return NextLine::Done;
            }
            if data[p] == b'\n' {
                self.pos = p + 1;
                self.index += 1;
                continue;
            }
            let start = if all[line_start..].starts_with(BOM) {
                line_start + BOM.len()
            } else {
                line_start
            };
            return NextLine::Line(LineStart {
                index: self.index,
                text: all,
                line_start,
                start,
            });
        }
    }

    fn next_split(&mut self) -> NextLine<'a> {
        let Some(line) = self.split.next() else {
            return NextLine::Done;
        };
        self.current = line;
        match std::str::from_utf8(&self.data[line.start..line.end]) {
            Ok(text) => NextLine::Line(LineStart {
                index: line.index,
                text,
                line_start: 0,
                start: if text.starts_with(BOM) { BOM.len() } else { 0 },
            }),
            Err(e) => NextLine::NotUtf8(
                line.index,
                line.start,
                line.end,
                format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1),
            ),
        }
    }

    /// Ends the current line, whose parser stopped at `stop` in its text (on
    /// the line's `\n` or end, or before them on an error): the raw line's
    /// range in `data`, without its line ending.
    pub fn end_line(&mut self, stop: usize) -> (usize, usize) {
        if self.all.is_none() {
            return (self.current.start, self.current.end);
        }
        let line_start = self.pos;
        let end = find_newline(self.data, stop.max(line_start)).unwrap_or(self.data.len());
        self.pos = end + 1;
        self.index += 1;
        let raw_end = if end > line_start && self.data[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        (line_start, raw_end)
    }
}

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

    /// Every line through the cursor, with a parser that stops at once (as on
    /// an error at the line start) or at the line end.
    fn cursor_lines(data: &[u8], stop_at_end: bool) -> Vec<(usize, Vec<u8>, usize)> {
        let mut c = LineCursor::new(data);
        let mut out = Vec::new();
        loop {
            match c.next_line() {
                NextLine::Done => return out,
                NextLine::NotUtf8(index, start, end, _) => {
                    out.push((index, data[start..end].to_vec(), 0))
                }
                NextLine::Line(l) => {
                    let stop = if stop_at_end {
                        find_newline(l.text.as_bytes(), l.start).unwrap_or(l.text.len())
                    } else {
                        l.start
                    };
                    let (a, b) = c.end_line(stop);
                    out.push((l.index, data[a..b].to_vec(), l.start - l.line_start));
                }
            }
        }
    }

    #[test]
    fn cursor_agrees_with_splitting() {
        for data in [
            &b""[..],
            b"\n\n \t\r\n",
            b"a",
            b"a\r\nb\r\n",
            b"\na\n\n  \nb",
            b"a\rb\n",
            b"x\r",
            b"\xef\xbb\xbf{}\n \xef\xbb\xbf{}",
            b"ok\n\xff\n\nok",
        ] {
            let want: Vec<_> = split(data)
                .into_iter()
                .map(|(i, l)| (i, l.to_vec()))
                .collect();
            for stop_at_end in [false, true] {
                let got: Vec<_> = cursor_lines(data, stop_at_end)
                    .into_iter()
                    .map(|(i, l, _)| (i, l))
                    .collect();
                assert_eq!(got, want, "{data:?}");
            }
        }
        let boms: Vec<_> = cursor_lines(b"\xef\xbb\xbf{}\n \xef\xbb\xbf{}", true)
            .into_iter()
            .map(|(_, _, b)| b)
            .collect();
        assert_eq!(boms, vec![3, 0]);
    }

    /// Resuming at any line a cursor handed out gives that line and the
    /// rest, as the cursor itself went on to give them.
    #[test]
    fn resumed_cursor_goes_on_from_the_line() {
        for data in [
            &b"a\n\n  \nb\r\nc"[..],
            b"\xef\xbb\xbf{}\n \xef\xbb\xbf{}\n",
            b"ok\n\xff\n\nok\nlast",
        ] {
            let all = cursor_lines(data, true);
            let mut c = LineCursor::new(data);
            let mut k = 0;
            loop {
                let line = match c.next_line() {
                    NextLine::Done => break,
                    NextLine::NotUtf8(..) => {
                        k += 1;
                        continue;
                    }
                    NextLine::Line(line) => line,
                };
                let at = c.raw_start(&line);
                let mut resumed = LineCursor::resume(data, at, line.index);
                let mut rest = Vec::new();
                loop {
                    match resumed.next_line() {
                        NextLine::Done => break,
                        NextLine::NotUtf8(index, start, end, _) => {
                            rest.push((index, data[start..end].to_vec(), 0))
                        }
                        NextLine::Line(l) => {
                            let stop =
                                find_newline(l.text.as_bytes(), l.start).unwrap_or(l.text.len());
                            let (a, b) = resumed.end_line(stop);
                            rest.push((l.index, data[a..b].to_vec(), l.start - l.line_start));
                        }
                    }
                }
                assert_eq!(rest, all[k..], "{data:?} from line {}", line.index);
                let stop =
                    find_newline(line.text.as_bytes(), line.start).unwrap_or(line.text.len());
                c.end_line(stop);
                k += 1;
            }
            assert_eq!(k, all.len());
        }
    }

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

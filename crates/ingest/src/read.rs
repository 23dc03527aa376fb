//! Row readers for CSV and JSON Lines that never give up on a file because of one bad row: each row
//! comes back either usable or as a problem naming its line (ragged rows, invalid UTF-8, fields over
//! 1 MiB, rows over 16 MiB, malformed JSON, unmatched quotes).
//!
//! A row's line is the physical line it starts on, the header being line 1, whatever the line endings
//! (LF, CRLF or CR alone, mixed freely), with empty lines counted and a byte-order mark ignored. The CSV
//! reader is written here rather than taken from the `csv` crate because reading truthfully needs three
//! things that crate does not give: physical line numbers (it counts LF only, and reports a CRLF file's
//! first row on the header's line), a quote left open named with its line instead of swallowing the rest
//! of the file into one field, and a cap on a field while reading rather than after a 512 MiB line has
//! been held in memory.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use memchr::{memchr, memchr2, memchr3};

use crate::error::{read_err, IngestError, Result};

/// The largest field accepted.
pub const MAX_FIELD_BYTES: usize = 1 << 20;
/// The largest row (a CSV record or a JSON line) accepted; longer ones are quarantined unread.
pub const MAX_ROW_BYTES: usize = 16 << 20;

/// How much of one field and one row a reader holds in memory; what is over is refused, not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_field_bytes: usize,
    pub max_row_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_field_bytes: MAX_FIELD_BYTES,
            max_row_bytes: MAX_ROW_BYTES,
        }
    }
}

/// A size in words, for messages.
fn size_text(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// Opens a regular file for reading. Anything else (a FIFO, a socket, a device) is refused: a load
/// reads its file twice (to fingerprint it, then to read its rows), and opening a FIFO waits for a
/// writer that may never come.
pub fn open_regular(path: &Path) -> Result<File> {
    let meta = std::fs::metadata(path).map_err(read_err(path))?;
    if !meta.is_file() {
        return Err(not_regular(path));
    }
    File::open(path).map_err(read_err(path))
}

pub(crate) fn not_regular(path: &Path) -> IngestError {
    IngestError::BadInput {
        path: path.into(),
        message:
            "not a regular file (a FIFO, socket or device): winsignal reads its input more than \
                  once, so save the data to a file and ingest that"
                .into(),
    }
}

/// A row that could not be used at all, before any field was interpreted.
#[derive(Debug, Clone)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
    pub raw: String,
}

/// Line breaks in `bytes` (LF, CR, or CRLF counted once) given whether the byte before them was a CR,
/// and whether the last byte is a CR.
fn count_breaks(bytes: &[u8], mut after_cr: bool) -> (u64, bool) {
    let mut n = 0;
    for &b in bytes {
        match b {
            b'\r' => {
                n += 1;
                after_cr = true;
            }
            b'\n' => {
                n += u64::from(!after_cr);
                after_cr = false;
            }
            _ => after_cr = false,
        }
    }
    (n, after_cr)
}

/// Buffered input that knows the physical line and the file offset of the next byte.
struct Input<R> {
    src: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// The offset in the file of `buf[0]`.
    base: u64,
    eof: bool,
    /// The physical line of the next byte, 1-based.
    line: u64,
    /// The last byte consumed was a CR: a LF right after it ends the same line.
    after_cr: bool,
}

const BUFFER_BYTES: usize = 1 << 20;
const BOM: &[u8] = b"\xEF\xBB\xBF";

impl<R: Read> Input<R> {
    fn new(src: R) -> Self {
        Input {
            src,
            buf: vec![0; BUFFER_BYTES],
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            line: 1,
            after_cr: false,
        }
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Makes sure a byte is buffered; false at the end of the input.
    fn fill(&mut self) -> std::io::Result<bool> {
        if self.pos < self.end {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        self.base += self.end as u64;
        self.pos = 0;
        self.end = 0;
        self.read_more()?;
        Ok(self.end > 0)
    }

    /// Moves the unread bytes to the front of the buffer and reads after them until `want` bytes are
    /// buffered or the input ends.
    fn fill_at_least(&mut self, want: usize) -> std::io::Result<()> {
        let want = want.min(self.buf.len());
        if self.end - self.pos >= want || self.eof {
            return Ok(());
        }
        self.buf.copy_within(self.pos..self.end, 0);
        self.base += self.pos as u64;
        self.end -= self.pos;
        self.pos = 0;
        while self.end < want && !self.eof {
            self.read_more()?;
        }
        Ok(())
    }

    fn read_more(&mut self) -> std::io::Result<()> {
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Skips a UTF-8 byte-order mark at the very start of the input.
    fn skip_bom(&mut self) -> std::io::Result<()> {
        self.fill_at_least(BOM.len())?;
        if self.buf[self.pos..self.end].starts_with(BOM) {
            self.pos += BOM.len();
        }
        Ok(())
    }

    /// Consumes line breaks, counting the lines they end; false when the input ends.
    fn skip_breaks(&mut self) -> std::io::Result<bool> {
        loop {
            if !self.fill()? {
                return Ok(false);
            }
            let window = &self.buf[self.pos..self.end];
            let n = window
                .iter()
                .position(|b| *b != b'\n' && *b != b'\r')
                .unwrap_or(window.len());
            let (lines, after_cr) = count_breaks(&window[..n], self.after_cr);
            self.line += lines;
            if n > 0 {
                self.after_cr = after_cr;
            }
            self.pos += n;
            if self.pos < self.end {
                return Ok(true);
            }
        }
    }
}

impl<R: Read + Seek> Input<R> {
    /// Continues reading at `offset`, which is on `line`.
    fn seek(&mut self, offset: u64, line: u64, after_cr: bool) -> std::io::Result<()> {
        if offset >= self.base && offset <= self.base + self.end as u64 {
            self.pos = (offset - self.base) as usize;
        } else {
            self.src.seek(SeekFrom::Start(offset))?;
            self.base = offset;
            self.pos = 0;
            self.end = 0;
            self.eof = false;
        }
        self.line = line;
        self.after_cr = after_cr;
        Ok(())
    }
}

/// Where a quoted field opened.
#[derive(Debug, Clone, Copy)]
struct QuoteAt {
    line: u64,
    /// 0-based field index.
    field: usize,
}

/// One CSV record as read, before it is judged against the header. Its buffers are reused.
#[derive(Debug, Default)]
struct RawRecord {
    data: Vec<u8>,
    /// Start and end of each field in `data`.
    bounds: Vec<(usize, usize)>,
    line: u64,
    /// The physical line it ends on.
    end_line: u64,
    /// The file offset of its first byte.
    start: u64,
    /// Where the first line break inside it ends, and whether that break was a CR.
    first_break: Option<(u64, bool)>,
    /// The first quoted field that holds a line break.
    multiline: Option<QuoteAt>,
    /// A multi-line quoted field closed by a quote that text follows (`"abc"def`), and the line.
    bad_close: Option<(QuoteAt, u64)>,
    /// A quote still open when the input ended.
    unterminated: Option<QuoteAt>,
    /// A multi-line quoted field grew over the field or row cap: reading it stopped there.
    gave_up: Option<QuoteAt>,
    /// Fields over the field cap (left empty), with their length.
    long_fields: Vec<(usize, u64)>,
    /// Bytes in the whole record, including what was not kept.
    row_len: u64,
    quoted: bool,
}

impl RawRecord {
    fn clear(&mut self) {
        self.data.clear();
        self.bounds.clear();
        self.first_break = None;
        self.multiline = None;
        self.bad_close = None;
        self.unterminated = None;
        self.gave_up = None;
        self.long_fields.clear();
        self.row_len = 0;
        self.quoted = false;
    }

    fn field(&self, i: usize) -> &[u8] {
        let (a, b) = self.bounds[i];
        &self.data[a..b]
    }

    fn is_blank(&self) -> bool {
        self.bounds.len() == 1 && !self.quoted && self.field(0).iter().all(u8::is_ascii_whitespace)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: either the first of `""` or the closing one.
    QuoteInQuoted,
}

/// Splits one line (no line break in it) that has quotes into fields, as the slow path would; false
/// when a quote is still open at the end of the line (the record goes on, or the quote is unmatched).
fn split_quoted_line(line: &[u8], delimiter: u8, rec: &mut RawRecord) -> bool {
    let mut i = 0;
    let mut start = rec.data.len();
    loop {
        if line.get(i) == Some(&b'"') {
            rec.quoted = true;
            i += 1;
            loop {
                let Some(j) = memchr(b'"', &line[i..]) else {
                    return false;
                };
                rec.data.extend_from_slice(&line[i..i + j]);
                i += j + 1;
                if line.get(i) == Some(&b'"') {
                    rec.data.push(b'"');
                    i += 1;
                } else {
                    break;
                }
            }
        }
        // Unquoted text, or text after a closing quote, up to the delimiter.
        let k = memchr(delimiter, &line[i..]).unwrap_or(line.len() - i);
        rec.data.extend_from_slice(&line[i..i + k]);
        i += k;
        rec.bounds.push((start, rec.data.len()));
        start = rec.data.len();
        if i >= line.len() {
            return true;
        }
        i += 1;
    }
}

/// A CSV reader over any seekable input: RFC 4180 with any one-byte delimiter, `"` quotes doubled
/// inside quoted fields, LF, CRLF or CR line endings. Like common spreadsheets, a quote inside an
/// unquoted field is kept as text, and text after a closing quote is kept with the field.
struct CsvParser<R> {
    input: Input<R>,
    delimiter: u8,
    limits: Limits,
    rec: RawRecord,
    /// Whether one-line records are split in place (off only in tests, to check the general path).
    fast: bool,
}

impl<R: Read + Seek> CsvParser<R> {
    /// Reads the next record that is not an empty line; false at the end of the input.
    fn read_record(&mut self) -> std::io::Result<bool> {
        loop {
            if !self.input.skip_breaks()? {
                return Ok(false);
            }
            self.rec.clear();
            self.rec.line = self.input.line;
            self.rec.start = self.input.offset();
            // A record starts with a byte that is not a line break, so no LF in it can end a CRLF.
            self.input.after_cr = false;
            if !(self.fast && self.read_line_fast()?) {
                self.read_slow()?;
            }
            self.rec.end_line = self.input.line;
            if !self.rec.is_blank() {
                return Ok(true);
            }
        }
    }

    /// The common case: a record on one line with no quote, split at the delimiter. False (nothing
    /// consumed) when the line has a quote or is too long for the buffer.
    fn read_line_fast(&mut self) -> std::io::Result<bool> {
        let limit = self.limits.max_field_bytes.min(self.limits.max_row_bytes);
        self.input.fill_at_least(BUFFER_BYTES / 4)?;
        let window = &self.input.buf[self.input.pos..self.input.end];
        let len = match memchr2(b'\n', b'\r', window) {
            Some(i) => i,
            None if self.input.eof => window.len(),
            None => return Ok(false),
        };
        let line = &window[..len];
        if len > limit {
            return Ok(false);
        }
        let rec = &mut self.rec;
        if memchr(b'"', line).is_some() {
            if !split_quoted_line(line, self.delimiter, rec) {
                rec.clear();
                return Ok(false);
            }
        } else {
            rec.data.extend_from_slice(line);
            let mut start = 0;
            for i in memchr::memchr_iter(self.delimiter, line) {
                rec.bounds.push((start, i));
                start = i + 1;
            }
            rec.bounds.push((start, len));
        }
        rec.row_len = len as u64;
        self.input.pos += len;
        if len > 0 {
            self.input.after_cr = false;
        }
        Ok(true)
    }

    /// Any record, byte by byte through the states of a field, across buffer refills.
    fn read_slow(&mut self) -> std::io::Result<()> {
        let limits = self.limits;
        let delimiter = self.delimiter;
        let input = &mut self.input;
        let rec = &mut self.rec;
        let mut state = State::FieldStart;
        let mut field_start = 0usize;
        let mut field_len = 0u64;
        let mut quote = QuoteAt { line: 0, field: 0 };
        let mut field_multiline = false;
        let end_field = |rec: &mut RawRecord, field_start: &mut usize, field_len: &mut u64| {
            let idx = rec.bounds.len();
            if *field_len > limits.max_field_bytes as u64 {
                rec.data.truncate(*field_start);
                rec.long_fields.push((idx, *field_len));
            }
            rec.bounds.push((*field_start, rec.data.len()));
            *field_start = rec.data.len();
            *field_len = 0;
        };
        // Keeps bytes of a field while the field and the row are under their caps.
        let keep = |rec: &mut RawRecord, field_len: &mut u64, bytes: &[u8]| {
            *field_len += bytes.len() as u64;
            rec.row_len += bytes.len() as u64;
            if *field_len <= limits.max_field_bytes as u64
                && rec.row_len <= limits.max_row_bytes as u64
            {
                rec.data.extend_from_slice(bytes);
            }
        };
        loop {
            if !input.fill()? {
                if state == State::Quoted {
                    rec.unterminated = Some(quote);
                }
                end_field(rec, &mut field_start, &mut field_len);
                return Ok(());
            }
            let window = &input.buf[input.pos..input.end];
            match state {
                State::FieldStart => {
                    if window[0] == b'"' {
                        state = State::Quoted;
                        quote = QuoteAt {
                            line: input.line,
                            field: rec.bounds.len(),
                        };
                        field_multiline = false;
                        rec.quoted = true;
                        rec.row_len += 1;
                        input.pos += 1;
                        input.after_cr = false;
                    } else {
                        state = State::Unquoted;
                    }
                }
                State::Unquoted => {
                    let stop = memchr3(delimiter, b'\n', b'\r', window);
                    let n = stop.unwrap_or(window.len());
                    keep(rec, &mut field_len, &window[..n]);
                    input.pos += n;
                    if n > 0 {
                        input.after_cr = false;
                    }
                    if let Some(i) = stop {
                        end_field(rec, &mut field_start, &mut field_len);
                        if window[i] != delimiter {
                            return Ok(());
                        }
                        rec.row_len += 1;
                        input.pos += 1;
                        state = State::FieldStart;
                    }
                }
                State::Quoted => {
                    let stop = memchr(b'"', window);
                    let span = &window[..stop.unwrap_or(window.len())];
                    if let Some(b) = memchr2(b'\n', b'\r', span) {
                        if rec.first_break.is_none() {
                            rec.first_break =
                                Some((input.offset() + b as u64 + 1, span[b] == b'\r'));
                        }
                        if rec.multiline.is_none() {
                            rec.multiline = Some(quote);
                        }
                        field_multiline = true;
                        let (lines, after_cr) = count_breaks(span, input.after_cr);
                        input.line += lines;
                        input.after_cr = after_cr;
                    } else if !span.is_empty() {
                        input.after_cr = false;
                    }
                    keep(rec, &mut field_len, span);
                    input.pos += span.len();
                    if stop.is_some() {
                        rec.row_len += 1;
                        input.pos += 1;
                        input.after_cr = false;
                        state = State::QuoteInQuoted;
                    }
                    let over = field_len > limits.max_field_bytes as u64
                        || rec.row_len > limits.max_row_bytes as u64;
                    if over && rec.first_break.is_some() {
                        rec.gave_up = Some(quote);
                        end_field(rec, &mut field_start, &mut field_len);
                        return Ok(());
                    }
                }
                State::QuoteInQuoted => {
                    let b = window[0];
                    if b == b'"' {
                        keep(rec, &mut field_len, b"\"");
                        input.pos += 1;
                        input.after_cr = false;
                        state = State::Quoted;
                    } else {
                        if field_multiline
                            && b != delimiter
                            && b != b'\n'
                            && b != b'\r'
                            && rec.bad_close.is_none()
                        {
                            rec.bad_close = Some((quote, input.line));
                        }
                        state = State::Unquoted;
                    }
                }
            }
        }
    }

    /// Why the record is better read as an unmatched quote than as a row: a quoted field holds a line
    /// break and the quote never closes, runs over the caps or closes with text after it, or the lines
    /// it holds read as rows of their own. (A row that is only ragged is quarantined whole, naming its
    /// lines: splitting a real note at its line breaks could read its lines as rows.)
    fn unmatched_quote(&self, header: &[String]) -> Option<String> {
        let rec = &self.rec;
        let first = rec.multiline?;
        let (at, why) = if let Some(q) = rec.unterminated {
            (
                q,
                "is never closed (it runs to the end of the file)".to_string(),
            )
        } else if let Some(q) = rec.gave_up {
            let cap = self.limits.max_field_bytes.min(self.limits.max_row_bytes);
            (
                q,
                format!(
                    "runs over {} by line {} without closing",
                    size_text(cap),
                    rec.end_line
                ),
            )
        } else if let Some((q, line)) = rec.bad_close {
            (
                q,
                format!("is closed on line {line} by a quote with more text after it"),
            )
        } else if self.holds_rows(
            first.field,
            header.len(),
            self.rec.bounds.len() != header.len(),
        ) {
            let why = format!(
                "runs to line {} over lines that read as rows of their own",
                rec.end_line
            );
            (first, why)
        } else {
            return None;
        };
        let column = match header.get(at.field) {
            Some(name) => format!("field `{name}` (column {})", at.field + 1),
            None => format!("column {}", at.field + 1),
        };
        Some(format!(
            "unmatched quote: the quote opening {column} on line {} {why}; read as a stray quote, so \
             line {} alone is quarantined and reading resumes at line {}",
            at.line,
            rec.line,
            rec.line + 1
        ))
    }

    /// Whether the multi-line field `field` holds whole rows: a line inside it (neither its first nor
    /// its last) that reads as a row (as many fields as the header), or — only when the record is
    /// ragged — a last line that reads as the start of one (with the fields after the quoted one, as
    /// many). A well-formed record's last line is not enough: a real note ending "budget 1,500" in a
    /// three-column file would read so. Prose puts a space after a comma and exports do not, so a line
    /// with a field (other than its first) starting with a space reads as text, not as a row: a note
    /// listing "Bob, Alice, Carol" stays one field.
    fn holds_rows(&self, field: usize, n_header: usize, ragged: bool) -> bool {
        let delimiter = self.delimiter;
        let fields_if_row = |s: &[u8]| -> Option<usize> {
            let mut n = 1;
            for i in memchr::memchr_iter(delimiter, s) {
                if delimiter != b' ' && s.get(i + 1) == Some(&b' ') {
                    return None;
                }
                n += 1;
            }
            Some(n)
        };
        let text = self.rec.field(field);
        let segments: Vec<&[u8]> = text.split(|b| *b == b'\n' || *b == b'\r').collect();
        let inner = segments.len().saturating_sub(1);
        if segments[1.min(inner)..inner]
            .iter()
            .any(|s| fields_if_row(s) == Some(n_header))
        {
            return true;
        }
        let last = segments[segments.len() - 1];
        let after = self.rec.bounds.len() - field - 1;
        ragged && fields_if_row(last).is_some_and(|n| n > 1 && n + after == n_header)
    }

    /// The record's first physical line as written, cut at 64 KiB.
    fn first_line_raw(&mut self) -> std::io::Result<String> {
        let Some((end, _)) = self.rec.first_break else {
            return Ok(String::new());
        };
        let len = (end - 1 - self.rec.start).min(64 << 10);
        let resume = self.input.offset();
        let (line, after_cr) = (self.input.line, self.input.after_cr);
        self.input.seek(self.rec.start, 0, false)?;
        let mut raw = Vec::with_capacity(len as usize);
        while (raw.len() as u64) < len && self.input.fill()? {
            let window = &self.input.buf[self.input.pos..self.input.end];
            let n = window.len().min((len - raw.len() as u64) as usize);
            raw.extend_from_slice(&window[..n]);
            self.input.pos += n;
        }
        self.input.seek(resume, line, after_cr)?;
        Ok(String::from_utf8_lossy(&raw).into_owned())
    }

    /// Continues at the line after the record's first.
    fn resync(&mut self) -> std::io::Result<()> {
        match self.rec.first_break {
            Some((offset, after_cr)) => self.input.seek(offset, self.rec.line + 1, after_cr),
            None => Ok(()),
        }
    }
}

/// A CSV file's rows as UTF-8 strings.
pub struct CsvRows<R = File> {
    path: PathBuf,
    parser: CsvParser<R>,
    pub header: Vec<String>,
    /// The line of the header (1 unless empty lines come first).
    pub header_line: u64,
    /// The current row's fields; the strings are reused from row to row to spare allocations.
    values: Vec<String>,
    pub bytes_total: u64,
    multiline_rows: u64,
    longest_row: Option<(u64, u64)>,
}

/// One row's fields, borrowed from the reader until the next row is read.
pub struct CsvRow<'a> {
    pub line: u64,
    pub values: &'a [String],
}

/// A row kept after the reader has moved on.
pub struct OwnedCsvRow {
    pub line: u64,
    pub values: Vec<String>,
}

impl CsvRow<'_> {
    pub fn to_owned_row(&self) -> OwnedCsvRow {
        OwnedCsvRow {
            line: self.line,
            values: self.values.to_vec(),
        }
    }
}

impl CsvRows<File> {
    pub fn open(path: &Path, delimiter: u8) -> Result<Self> {
        Self::open_with(path, delimiter, Limits::default())
    }

    pub fn open_with(path: &Path, delimiter: u8, limits: Limits) -> Result<Self> {
        let file = open_regular(path)?;
        let bytes_total = file.metadata().map_err(read_err(path))?.len();
        CsvRows::from_reader(path, file, bytes_total, delimiter, limits)
    }
}

impl<R: Read + Seek> CsvRows<R> {
    /// Reads the header from `src`; `path` names the input in messages.
    pub fn from_reader(
        path: &Path,
        src: R,
        bytes_total: u64,
        delimiter: u8,
        limits: Limits,
    ) -> Result<Self> {
        if matches!(delimiter, b'"' | b'\n' | b'\r') || !delimiter.is_ascii() {
            return Err(IngestError::BadInput {
                path: path.into(),
                message: format!(
                    "cannot read CSV with the delimiter {:?}: a quote or line break cannot separate fields",
                    delimiter as char
                ),
            });
        }
        let mut input = Input::new(src);
        input.skip_bom().map_err(read_err(path))?;
        let mut parser = CsvParser {
            input,
            delimiter,
            limits,
            rec: RawRecord::default(),
            fast: true,
        };
        let bad = |message: String| IngestError::BadInput {
            path: path.into(),
            message,
        };
        if !parser.read_record().map_err(read_err(path))? {
            return Err(bad("the file is empty (no header row)".into()));
        }
        let rec = &parser.rec;
        let line = rec.line;
        if let Some(q) = rec.unterminated.or(rec.gave_up) {
            return Err(bad(format!(
                "line {}: the quote opening header column {} is never closed",
                q.line,
                q.field + 1
            )));
        }
        if let Some((i, len)) = rec.long_fields.first() {
            return Err(bad(format!(
                "line {line}: header column {} is over {} ({len} bytes)",
                i + 1,
                size_text(limits.max_field_bytes)
            )));
        }
        if rec.row_len > limits.max_row_bytes as u64 {
            return Err(bad(format!(
                "line {line}: the header is over {}",
                size_text(limits.max_row_bytes)
            )));
        }
        let mut header: Vec<String> = Vec::with_capacity(rec.bounds.len());
        for i in 0..rec.bounds.len() {
            let name = std::str::from_utf8(rec.field(i)).map_err(|_| {
                bad(format!(
                    "line {line}: header column {} is not valid UTF-8",
                    i + 1
                ))
            })?;
            let name = name.trim();
            // A column named twice would leave one of the two unread: refuse the file instead.
            if let Some(j) = header.iter().position(|earlier| earlier == name) {
                return Err(bad(format!(
                    "line {line}: column `{name}` appears twice in the header (columns {} and {}); rename or remove one",
                    j + 1,
                    i + 1
                )));
            }
            header.push(name.to_string());
        }
        Ok(CsvRows {
            path: path.into(),
            parser,
            header,
            header_line: line,
            values: Vec::new(),
            bytes_total,
            multiline_rows: 0,
            longest_row: None,
        })
    }

    pub fn bytes_read(&self) -> u64 {
        self.parser.input.offset()
    }

    /// Rows read so far that span more than one line (a quoted field holds a line break), and the
    /// first and last line of the longest.
    pub fn multiline_rows(&self) -> (u64, Option<(u64, u64)>) {
        (self.multiline_rows, self.longest_row)
    }

    fn raw(&self) -> String {
        let rec = &self.parser.rec;
        let parts: Vec<String> = (0..rec.bounds.len())
            .map(|i| String::from_utf8_lossy(rec.field(i)).into_owned())
            .collect();
        parts.join(&(self.parser.delimiter as char).to_string())
    }

    /// The next row: `Ok(Ok(row))`, `Ok(Err(bad))`, or `Err` only when the file itself cannot be read.
    #[allow(clippy::type_complexity)]
    pub fn next_row(&mut self) -> Result<Option<std::result::Result<CsvRow<'_>, BadRow>>> {
        let io = read_err(&self.path);
        let got = match self.parser.read_record() {
            Ok(got) => got,
            Err(e) => return Err(io(e)),
        };
        if !got {
            return Ok(None);
        }
        let line = self.parser.rec.line;
        if let Some(reason) = self.parser.unmatched_quote(&self.header) {
            let raw = self.parser.first_line_raw().map_err(read_err(&self.path))?;
            self.parser.resync().map_err(read_err(&self.path))?;
            return Ok(Some(Err(BadRow { line, reason, raw })));
        }
        let rec = &self.parser.rec;
        if rec.end_line > line {
            self.multiline_rows += 1;
            if self
                .longest_row
                .is_none_or(|(a, b)| b - a < rec.end_line - line)
            {
                self.longest_row = Some((line, rec.end_line));
            }
        }
        if let Some(q) = rec.unterminated {
            let column = self
                .header
                .get(q.field)
                .map_or(format!("column {}", q.field + 1), |h| {
                    format!("field `{h}`")
                });
            return Ok(Some(Err(BadRow {
                line,
                reason: format!(
                    "unmatched quote: the quote opening {column} on line {} is never closed",
                    q.line
                ),
                raw: self.raw(),
            })));
        }
        if rec.row_len > self.parser.limits.max_row_bytes as u64 {
            return Ok(Some(Err(BadRow {
                line,
                reason: format!(
                    "row over {} ({} bytes): not read",
                    size_text(self.parser.limits.max_row_bytes),
                    rec.row_len
                ),
                raw: String::new(),
            })));
        }
        if rec.bounds.len() != self.header.len() {
            let span = match rec.multiline {
                Some(q) if rec.end_line > line => {
                    let column = self
                        .header
                        .get(q.field)
                        .map_or(format!("column {}", q.field + 1), |h| {
                            format!("field `{h}`")
                        });
                    format!(
                        " (lines {line}–{}: the quoted {column} opened on line {} holds line breaks)",
                        rec.end_line, q.line
                    )
                }
                _ => String::new(),
            };
            return Ok(Some(Err(BadRow {
                line,
                reason: format!(
                    "ragged row: {} fields where the header has {}{span}",
                    rec.bounds.len(),
                    self.header.len()
                ),
                raw: self.raw(),
            })));
        }
        let mut problems = Vec::new();
        self.values.resize_with(rec.bounds.len(), String::new);
        let mut long = rec.long_fields.iter().peekable();
        for i in 0..rec.bounds.len() {
            let value = &mut self.values[i];
            value.clear();
            if let Some((_, len)) = long.next_if(|&&(j, _)| j == i) {
                problems.push(format!(
                    "field `{}` is over {} ({len} bytes)",
                    self.header[i],
                    size_text(self.parser.limits.max_field_bytes)
                ));
                continue;
            }
            match std::str::from_utf8(rec.field(i)) {
                Ok(s) => value.push_str(s),
                Err(e) => {
                    problems.push(format!(
                        "field `{}` is not valid UTF-8 (bad byte at offset {})",
                        self.header[i],
                        e.valid_up_to()
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Ok(Some(Err(BadRow {
                line,
                reason: problems.join("; "),
                raw: self.raw(),
            })));
        }
        Ok(Some(Ok(CsvRow {
            line,
            values: &self.values,
        })))
    }
}

/// A JSON Lines file's objects. Lines end with LF, CRLF or CR (JSON text cannot hold a raw line break,
/// so a CR alone can only be a line ending).
pub struct JsonLines<R = File> {
    input: Input<R>,
    path: PathBuf,
    buf: Vec<u8>,
    limits: Limits,
    pub bytes_total: u64,
}

impl JsonLines<File> {
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, Limits::default())
    }

    pub fn open_with(path: &Path, limits: Limits) -> Result<Self> {
        let file = open_regular(path)?;
        let bytes_total = file.metadata().map_err(read_err(path))?.len();
        JsonLines::from_reader(path, file, bytes_total, limits)
    }
}

impl<R: Read> JsonLines<R> {
    pub fn from_reader(path: &Path, src: R, bytes_total: u64, limits: Limits) -> Result<Self> {
        let mut input = Input::new(src);
        input.skip_bom().map_err(read_err(path))?;
        Ok(JsonLines {
            input,
            path: path.into(),
            buf: Vec::new(),
            limits,
            bytes_total,
        })
    }

    pub fn bytes_read(&self) -> u64 {
        self.input.offset()
    }

    /// The next physical line into `buf` (empty when over the cap): its line number and length.
    fn next_line(&mut self) -> std::io::Result<Option<(u64, u64)>> {
        self.buf.clear();
        let input = &mut self.input;
        if !input.fill()? {
            return Ok(None);
        }
        if input.after_cr && input.buf[input.pos] == b'\n' {
            input.pos += 1;
            input.after_cr = false;
            if !input.fill()? {
                return Ok(None);
            }
        }
        let line = input.line;
        let mut len = 0u64;
        loop {
            if !input.fill()? {
                return Ok(Some((line, len)));
            }
            let window = &input.buf[input.pos..input.end];
            let stop = memchr2(b'\n', b'\r', window);
            let part = &window[..stop.unwrap_or(window.len())];
            len += part.len() as u64;
            if len <= self.limits.max_row_bytes as u64 {
                self.buf.extend_from_slice(part);
            } else {
                self.buf.clear();
            }
            input.pos += part.len();
            input.after_cr = false;
            if let Some(i) = stop {
                input.pos += 1;
                input.line += 1;
                input.after_cr = window[i] == b'\r';
                return Ok(Some((line, len)));
            }
        }
    }

    /// The next non-blank line as a JSON object, with its line number and raw text (borrowed until the
    /// next line is read).
    #[allow(clippy::type_complexity)]
    pub fn next_object(
        &mut self,
    ) -> Result<
        Option<
            std::result::Result<(u64, serde_json::Map<String, serde_json::Value>, &str), BadRow>,
        >,
    > {
        let (line, len) = loop {
            let Some((line, len)) = self.next_line().map_err(read_err(&self.path))? else {
                return Ok(None);
            };
            if len > self.limits.max_row_bytes as u64 {
                return Ok(Some(Err(BadRow {
                    line,
                    reason: format!(
                        "line over {} ({len} bytes): not read",
                        size_text(self.limits.max_row_bytes)
                    ),
                    raw: String::new(),
                })));
            }
            if !trim_ascii(&self.buf).is_empty() {
                break (line, len);
            }
        };
        let bytes = trim_ascii(&self.buf);
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                return Ok(Some(Err(BadRow {
                    line,
                    reason: format!("not valid UTF-8 (bad byte at offset {})", e.valid_up_to()),
                    raw: String::from_utf8_lossy(bytes).into_owned(),
                })))
            }
        };
        let value: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                return Ok(Some(Err(BadRow {
                    line,
                    reason: format!("malformed JSON: {e}"),
                    raw: text.to_string(),
                })))
            }
        };
        let serde_json::Value::Object(map) = value else {
            return Ok(Some(Err(BadRow {
                line,
                reason: "expected a JSON object on each line".into(),
                raw: text.to_string(),
            })));
        };
        // A value's compact JSON is at most a few times its text on the line (`1e9` is written
        // `1000000000.0`), so a line under an eighth of the cap cannot hold a field over it and is not
        // serialised again to be measured.
        let may_be_over = len.saturating_mul(8) > self.limits.max_field_bytes as u64;
        if let Some(field) = may_be_over
            .then(|| oversized_field(&map, self.limits.max_field_bytes))
            .flatten()
        {
            return Ok(Some(Err(BadRow {
                line,
                reason: format!(
                    "field `{field}` is over {}",
                    size_text(self.limits.max_field_bytes)
                ),
                raw: text.to_string(),
            })));
        }
        Ok(Some(Ok((line, map, text))))
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

fn oversized_field(
    map: &serde_json::Map<String, serde_json::Value>,
    max_field_bytes: usize,
) -> Option<String> {
    for (k, v) in map {
        let big = match v {
            serde_json::Value::String(s) => s.len() > max_field_bytes,
            serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                v.to_string().len() > max_field_bytes
            }
            _ => false,
        };
        if big {
            return Some(k.clone());
        }
    }
    None
}

/// A JSON value as the text a canonical field expects: strings as is, numbers and booleans as written,
/// arrays of scalars joined with `;`, objects as compact JSON.
pub fn json_field_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Array(items) => Some(
            items
                .iter()
                .filter_map(json_field_text)
                .collect::<Vec<_>>()
                .join(";"),
        ),
        serde_json::Value::Object(_) => Some(v.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Cursor;

    fn csv(text: &str, limits: Limits) -> CsvRows<Cursor<Vec<u8>>> {
        let bytes = text.as_bytes().to_vec();
        let n = bytes.len() as u64;
        CsvRows::from_reader(Path::new("t.csv"), Cursor::new(bytes), n, b',', limits).unwrap()
    }

    /// Every row as (line, fields) or (line, reason).
    fn read_all(
        rows: &mut CsvRows<Cursor<Vec<u8>>>,
    ) -> Vec<(u64, std::result::Result<Vec<String>, String>)> {
        let mut out = Vec::new();
        while let Some(row) = rows.next_row().unwrap() {
            out.push(match row {
                Ok(r) => (r.line, Ok(r.values.to_vec())),
                Err(b) => (b.line, Err(b.reason)),
            });
        }
        out
    }

    fn quote(field: &str) -> String {
        if field.contains([',', '"', '\n']) || field.is_empty() {
            format!("\"{}\"", field.replace('"', "\"\""))
        } else {
            field.to_string()
        }
    }

    proptest! {
        /// The naive oracle: rows written one after the other, counting the line breaks written before
        /// each; any mix of LF, CRLF and CR endings, empty lines, quoted line breaks and quotes, with or
        /// without a byte-order mark, reads back as the same fields on the same lines.
        #[test]
        fn rows_come_back_with_their_fields_and_physical_lines(
            rows in proptest::collection::vec(
                (
                    proptest::collection::vec("[ab,\"\n]{0,6}", 3),
                    0usize..3,
                    0usize..3,
                ),
                0..25,
            ),
            bom in any::<bool>(),
        ) {
            const ENDINGS: [&str; 3] = ["\n", "\r\n", "\r"];
            let mut text = String::from(if bom { "\u{feff}a,b,c\n" } else { "a,b,c\n" });
            // A row's line: one more than the line breaks before it, CRLF counting once (so a CR
            // ending followed by an empty LF line is one break, as it is in the file).
            let line_at = |text: &str| {
                text.replace("\r\n", "\n").replace('\r', "\n").matches('\n').count() as u64 + 1
            };
            let mut expected = Vec::new();
            for (fields, eol, blank_lines) in &rows {
                // A field holding both a line break and commas could hold a line that reads as a row
                // of its own, which the reader takes as a stray quote; that is tested on its own.
                let fields: Vec<String> = fields
                    .iter()
                    .map(|f| if f.contains('\n') { f.replace(',', "") } else { f.clone() })
                    .collect();
                for _ in 0..*blank_lines {
                    text.push_str(ENDINGS[*eol]);
                }
                expected.push((line_at(&text), Ok(fields.clone())));
                let written: Vec<String> = fields.iter().map(|f| quote(f)).collect();
                text.push_str(&written.join(","));
                text.push_str(ENDINGS[*eol]);
            }
            let mut reader = csv(&text, Limits::default());
            prop_assert_eq!(read_all(&mut reader), expected.clone());
            // The same through the general path alone (one-line records are otherwise split in place).
            let mut reader = csv(&text, Limits::default());
            reader.parser.fast = false;
            prop_assert_eq!(read_all(&mut reader), expected);
        }
    }

    proptest! {
        /// Any bytes: no panic, rows on strictly increasing lines that exist in the file, and the
        /// in-place split of one-line records agrees with the general path.
        #[test]
        fn any_bytes_read_without_panic_on_increasing_lines(
            body in proptest::collection::vec(
                prop_oneof![
                    Just(b'"'), Just(b','), Just(b'\r'), Just(b'\n'), Just(b'a'), Just(b' '),
                    Just(0xFFu8), Just(0xEF), Just(0xBB), Just(0xBF),
                ],
                0..300,
            ),
            max_field_bytes in 2usize..40,
            max_row_bytes in 8usize..80,
        ) {
            let limits = Limits { max_field_bytes, max_row_bytes };
            let mut bytes = b"h1,h2,h3\n".to_vec();
            bytes.extend_from_slice(&body);
            let text = String::from_utf8_lossy(&bytes).replace('\r', "\n");
            let n_lines = text.matches('\n').count() as u64 + 1;
            let mut results = Vec::new();
            for fast in [true, false] {
                let n = bytes.len() as u64;
                let mut rows = CsvRows::from_reader(
                    Path::new("t.csv"), Cursor::new(bytes.clone()), n, b',', limits,
                ).unwrap();
                rows.parser.fast = fast;
                let got = read_all(&mut rows);
                let lines: Vec<u64> = got.iter().map(|(l, _)| *l).collect();
                prop_assert!(lines.windows(2).all(|w| w[0] < w[1]), "{lines:?}");
                prop_assert!(lines.iter().all(|l| (2..=n_lines).contains(l)), "{lines:?}");
                results.push(got);
            }
            prop_assert_eq!(&results[0], &results[1]);
        }
    }

    proptest! {
        /// JSON Lines: one row per non-blank physical line (LF, CRLF or CR), on that line, whatever
        /// the bytes, with or without a byte-order mark.
        #[test]
        fn json_lines_come_back_one_per_non_blank_physical_line(
            body in proptest::collection::vec(
                prop_oneof![
                    Just(b'{'), Just(b'}'), Just(b'\r'), Just(b'\n'), Just(b' '), Just(b'1'),
                    Just(b'"'), Just(0xFFu8),
                ],
                0..200,
            ),
            bom in any::<bool>(),
        ) {
            let text = String::from_utf8_lossy(&body).replace("\r\n", "\n").replace('\r', "\n");
            let expected: Vec<u64> = text
                .split('\n')
                .enumerate()
                .filter(|(_, l)| !l.trim_matches(|c: char| c.is_ascii_whitespace()).is_empty())
                .map(|(i, _)| i as u64 + 1)
                .collect();
            let mut bytes = if bom { BOM.to_vec() } else { Vec::new() };
            bytes.extend_from_slice(&body);
            let n = bytes.len() as u64;
            let mut lines =
                JsonLines::from_reader(Path::new("t.jsonl"), Cursor::new(bytes), n, Limits::default())
                    .unwrap();
            let mut got = Vec::new();
            while let Some(next) = lines.next_object().unwrap() {
                got.push(match next {
                    Ok((line, _, _)) => line,
                    Err(b) => b.line,
                });
            }
            prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn a_field_over_the_cap_is_refused_with_its_line_and_not_held() {
        let limits = Limits {
            max_field_bytes: 1 << 10,
            max_row_bytes: 4 << 10,
        };
        let big = "x".repeat(100 << 10);
        let text = format!("a,b\n1,{big}\n2,\"{big}\"\n3,ok\n");
        let mut rows = csv(&text, limits);
        let got = read_all(&mut rows);
        assert_eq!(got.len(), 3);
        for (i, (line, row)) in got[..2].iter().enumerate() {
            assert_eq!(*line, i as u64 + 2);
            let reason = row.as_ref().unwrap_err();
            assert!(reason.contains("row over 4 KiB"), "{reason}");
        }
        assert_eq!(got[2], (4, Ok(vec!["3".to_string(), "ok".to_string()])));
        assert!(rows.parser.rec.data.capacity() < 16 << 10);
        // A field over its own cap in a row under the row cap.
        let field = "y".repeat(2 << 10);
        let mut rows = csv(&format!("a,b\n1,{field}\n"), limits);
        let got = read_all(&mut rows);
        assert_eq!(got[0].0, 2);
        assert!(got[0]
            .1
            .as_ref()
            .unwrap_err()
            .contains("field `b` is over 1 KiB"));
    }

    #[test]
    fn a_json_line_over_the_cap_is_refused_with_its_line_and_not_held() {
        let limits = Limits {
            max_field_bytes: 1 << 10,
            max_row_bytes: 4 << 10,
        };
        let big = "x".repeat(100 << 10);
        let text = format!("{{\"a\":1}}\r\n{{\"a\":\"{big}\"}}\r\n{{\"a\":3}}\r\n");
        let n = text.len() as u64;
        let mut lines = JsonLines::from_reader(
            Path::new("t.jsonl"),
            Cursor::new(text.into_bytes()),
            n,
            limits,
        )
        .unwrap();
        let mut got = Vec::new();
        while let Some(next) = lines.next_object().unwrap() {
            got.push(match next {
                Ok((line, _, _)) => (line, String::new()),
                Err(b) => (b.line, b.reason),
            });
        }
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!((got[0].0, got[2].0), (1, 3));
        assert_eq!(got[1].0, 2);
        assert!(got[1].1.contains("line over 4 KiB"), "{}", got[1].1);
        assert!(lines.buf.capacity() < 16 << 10);
        // A field over its cap on a line under the line cap.
        let text = format!("{{\"a\":\"{}\",\"b\":[1e9]}}\n", "y".repeat(2 << 10));
        let n = text.len() as u64;
        let mut lines = JsonLines::from_reader(
            Path::new("t.jsonl"),
            Cursor::new(text.into_bytes()),
            n,
            limits,
        )
        .unwrap();
        let Some(Err(bad)) = lines.next_object().unwrap() else {
            panic!("a field over 1 KiB must be refused");
        };
        assert_eq!(
            (bad.line, bad.reason.as_str()),
            (1, "field `a` is over 1 KiB")
        );
    }

    #[test]
    fn quotes_inside_and_after_fields_read_as_spreadsheets_read_them() {
        let text = "a,b\r\n\"Big\" Deal,x\r\n5\"2,y\r\n\"\",z\r\nq,\"b\"\"c\"\r\n\"p,q\",\r\n";
        let expected: Vec<(u64, std::result::Result<Vec<String>, String>)> = [
            (2, ["Big Deal", "x"]),
            (3, ["5\"2", "y"]),
            (4, ["", "z"]),
            (5, ["q", "b\"c"]),
            (6, ["p,q", ""]),
        ]
        .into_iter()
        .map(|(line, fields)| (line, Ok(fields.map(str::to_string).to_vec())))
        .collect();
        for fast in [true, false] {
            let mut rows = csv(text, Limits::default());
            rows.parser.fast = fast;
            assert_eq!(read_all(&mut rows), expected, "fast path {fast}");
        }
    }

    #[test]
    fn a_note_with_lines_and_commas_stays_one_field() {
        // Lines inside the note have as many commas as a row has delimiters, but read as prose.
        let text = "id,name,notes\n1,Acme,\"Call summary:\nMet Bob, Alice, Carol\nNext: demo, pricing, legal\"\n2,Beta,x\n";
        let mut rows = csv(text, Limits::default());
        let got = read_all(&mut rows);
        let note = "Call summary:\nMet Bob, Alice, Carol\nNext: demo, pricing, legal";
        assert_eq!(
            got,
            [
                (
                    2,
                    Ok(vec!["1".to_string(), "Acme".to_string(), note.to_string()])
                ),
                (
                    5,
                    Ok(vec!["2".to_string(), "Beta".to_string(), "x".to_string()])
                ),
            ]
        );
        assert_eq!(rows.multiline_rows(), (1, Some((2, 4))));
    }

    #[test]
    fn a_ragged_row_with_a_multi_line_note_is_quarantined_whole() {
        let text = "id,name,notes\n1,Acme,\"first line\nsecond line\",extra\n2,Beta,x\n";
        let mut rows = csv(text, Limits::default());
        let got = read_all(&mut rows);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].0, 2);
        let reason = got[0].1.as_ref().unwrap_err();
        assert!(
            reason.starts_with("ragged row: 4 fields where the header has 3 (lines 2–3: the quoted field `notes` opened on line 2"),
            "{reason}"
        );
        assert_eq!(
            got[1],
            (
                4,
                Ok(vec!["2".to_string(), "Beta".to_string(), "x".to_string()])
            )
        );
    }

    #[test]
    fn a_stray_quote_in_a_file_larger_than_the_buffer_costs_one_row() {
        // The quote runs over 1 MiB, past what the buffer holds: reading goes back to line 3.
        let mut text = String::from("id,name,city\n0,\"Stray,Paris\n");
        for i in 1..100_000 {
            text.push_str(&format!("{i},Company number {i},City {i}\n"));
        }
        assert!(text.len() > 2 * BUFFER_BYTES);
        let mut rows = csv(&text, Limits::default());
        let got = read_all(&mut rows);
        assert_eq!(got.len(), 100_000);
        assert_eq!(got[0].0, 2);
        let reason = got[0].1.as_ref().unwrap_err();
        assert!(reason.contains("runs over 1 MiB"), "{reason}");
        assert!(got[1..]
            .iter()
            .enumerate()
            .all(|(i, (line, row))| *line == i as u64 + 3 && row.is_ok()));
        assert_eq!(got[99_999].1.as_ref().unwrap()[0], "99999");
    }

    #[test]
    fn a_quote_open_at_the_end_of_the_file_is_named() {
        let mut rows = csv("a,b\n1,x\n2,\"y", Limits::default());
        let got = read_all(&mut rows);
        assert_eq!(got[0], (2, Ok(vec!["1".to_string(), "x".to_string()])));
        assert_eq!(got[1].0, 3);
        let reason = got[1].1.as_ref().unwrap_err();
        assert!(
            reason.contains("quote opening field `b` on line 3 is never closed"),
            "{reason}"
        );
    }

    #[test]
    fn a_quote_open_in_the_header_refuses_the_file() {
        let bytes = b"a,\"b\n1,2\n".to_vec();
        let err = CsvRows::from_reader(
            Path::new("t.csv"),
            Cursor::new(bytes),
            9,
            b',',
            Limits::default(),
        )
        .err()
        .unwrap();
        assert!(
            err.to_string()
                .contains("line 1: the quote opening header column 2 is never closed"),
            "{err}"
        );
    }
}

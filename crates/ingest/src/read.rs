//! Row readers for CSV and JSON Lines that never give up on a file because of one bad row: each row
//! comes back either usable or as a problem naming the line (ragged rows, invalid UTF-8, fields over
//! 1 MiB, malformed JSON).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::error::{read_err, IngestError, Result};

/// The largest field accepted.
pub const MAX_FIELD_BYTES: usize = 1 << 20;

/// A row that could not be used at all, before any field was interpreted.
#[derive(Debug, Clone)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
    pub raw: String,
}

/// A CSV file's rows as UTF-8 strings.
pub struct CsvRows {
    path: PathBuf,
    reader: csv::Reader<File>,
    pub header: Vec<String>,
    record: csv::ByteRecord,
    /// The current row's fields; the strings are reused from row to row to spare allocations.
    values: Vec<String>,
    delimiter: u8,
    pub bytes_total: u64,
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

impl CsvRows {
    pub fn open(path: &Path, delimiter: u8) -> Result<Self> {
        let file = File::open(path).map_err(read_err(path))?;
        let bytes_total = file.metadata().map_err(read_err(path))?.len();
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(file);
        let mut record = csv::ByteRecord::new();
        let got = reader
            .read_byte_record(&mut record)
            .map_err(|e| csv_err(path, &e))?;
        if !got {
            return Err(IngestError::BadInput {
                path: path.into(),
                message: "the file is empty (no header row)".into(),
            });
        }
        let mut header = Vec::with_capacity(record.len());
        for (i, f) in record.iter().enumerate() {
            let f = if i == 0 {
                f.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(f)
            } else {
                f
            };
            let name = std::str::from_utf8(f).map_err(|_| IngestError::BadInput {
                path: path.into(),
                message: format!("header column {} is not valid UTF-8", i + 1),
            })?;
            let name = name.trim();
            // A column named twice would leave one of the two unread: refuse the file instead.
            if let Some(j) = header.iter().position(|earlier| earlier == name) {
                return Err(IngestError::BadInput {
                    path: path.into(),
                    message: format!(
                        "line 1: column `{name}` appears twice in the header (columns {} and {}); rename or remove one",
                        j + 1,
                        i + 1
                    ),
                });
            }
            header.push(name.to_string());
        }
        Ok(CsvRows {
            path: path.into(),
            reader,
            header,
            record,
            values: Vec::new(),
            delimiter,
            bytes_total,
        })
    }

    pub fn bytes_read(&self) -> u64 {
        self.reader.position().byte()
    }

    fn raw(&self) -> String {
        let parts: Vec<String> = self
            .record
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        parts.join(&(self.delimiter as char).to_string())
    }

    /// The next row: `Ok(Ok(row))`, `Ok(Err(bad))`, or `Err` only when the file itself cannot be read.
    #[allow(clippy::type_complexity)]
    pub fn next_row(&mut self) -> Result<Option<std::result::Result<CsvRow<'_>, BadRow>>> {
        let got = self
            .reader
            .read_byte_record(&mut self.record)
            .map_err(|e| csv_err(&self.path, &e))?;
        if !got {
            return Ok(None);
        }
        let line = self.record.position().map_or(0, |p| p.line());
        if self.record.len() == 1
            && self
                .record
                .get(0)
                .is_some_and(|f| f.iter().all(u8::is_ascii_whitespace))
        {
            return self.next_row();
        }
        if self.record.len() != self.header.len() {
            return Ok(Some(Err(BadRow {
                line,
                reason: format!(
                    "ragged row: {} fields where the header has {}",
                    self.record.len(),
                    self.header.len()
                ),
                raw: self.raw(),
            })));
        }
        let mut problems = Vec::new();
        self.values.resize_with(self.record.len(), String::new);
        for (i, f) in self.record.iter().enumerate() {
            let value = &mut self.values[i];
            value.clear();
            if f.len() > MAX_FIELD_BYTES {
                problems.push(format!(
                    "field `{}` is over 1 MiB ({} bytes)",
                    self.header[i],
                    f.len()
                ));
                continue;
            }
            match std::str::from_utf8(f) {
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

fn csv_err(path: &Path, e: &csv::Error) -> IngestError {
    let line = e.position().map_or(0, csv::Position::line);
    IngestError::BadInput {
        path: path.into(),
        message: format!("line {line}: cannot read CSV: {e}"),
    }
}

/// A JSON Lines file's objects.
pub struct JsonLines {
    reader: BufReader<File>,
    path: PathBuf,
    line: u64,
    buf: Vec<u8>,
    pub bytes_read: u64,
    pub bytes_total: u64,
}

impl JsonLines {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(read_err(path))?;
        let bytes_total = file.metadata().map_err(read_err(path))?.len();
        Ok(JsonLines {
            reader: BufReader::with_capacity(1 << 20, file),
            path: path.into(),
            line: 0,
            buf: Vec::new(),
            bytes_read: 0,
            bytes_total,
        })
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
        let line = loop {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(read_err(&self.path))?;
            if n == 0 {
                return Ok(None);
            }
            self.bytes_read += n as u64;
            self.line += 1;
            if !trim_ascii(&self.buf).is_empty() {
                break self.line;
            }
        };
        let bytes = trim_ascii(&self.buf);
        let bytes = if line == 1 {
            bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
        } else {
            bytes
        };
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
        if let Some(field) = oversized_field(&map) {
            return Ok(Some(Err(BadRow {
                line,
                reason: format!("field `{field}` is over 1 MiB"),
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

fn oversized_field(map: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    for (k, v) in map {
        let big = match v {
            serde_json::Value::String(s) => s.len() > MAX_FIELD_BYTES,
            serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                v.to_string().len() > MAX_FIELD_BYTES
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

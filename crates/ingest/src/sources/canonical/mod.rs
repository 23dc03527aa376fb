//! The canonical connector: CSV (header row) or JSON Lines with winsignal's own field names, one kind
//! per file, the kind given by `--kind` or the file name (`activities.csv`, `transcripts.jsonl`, …).

use std::collections::HashMap;
use std::path::Path;

use winsignal_core::{
    AttrValue, Attrs, Kind, Record, SpeakerRole, Transcript, Ts, Turn, ValueType,
};

use crate::build::{build, fields_of, ColumnTypes, FieldReader, Fields};
use crate::error::{IngestError, Result};
use crate::load::LoadContext;
use crate::read::{json_field_text, CsvRows, JsonLines};
use winsignal_store::Column;

/// The kind named by a file name such as `product_events.jsonl` or `Activities.CSV`.
pub fn kind_from_file_name(path: &Path) -> Option<Kind> {
    let stem = path.file_stem()?.to_str()?;
    stem.parse::<Kind>()
        .ok()
        .filter(|k| *k != Kind::ProductUsers)
}

/// Whether the kind keeps unknown columns as typed custom attributes.
fn keeps_attrs(kind: Kind) -> bool {
    kind.keeps_custom_attributes()
}

/// Column positions by header name. A file has a dozen columns and every row looks each field up, so
/// a scan comparing a word of each name beats hashing the name.
pub struct ColumnIndex {
    columns: Vec<(u64, String)>,
}

/// The length and first 7 bytes of a name, as one word.
fn name_word(name: &str) -> u64 {
    let mut b = [0u8; 8];
    let n = name.len().min(7);
    b[..n].copy_from_slice(&name.as_bytes()[..n]);
    b[7] = name.len().min(255) as u8;
    u64::from_le_bytes(b)
}

impl ColumnIndex {
    pub fn new(header: &[String]) -> Self {
        ColumnIndex {
            columns: header.iter().map(|h| (name_word(h), h.clone())).collect(),
        }
    }

    /// The position of the first column with this name.
    pub fn get(&self, name: &str) -> Option<usize> {
        let word = name_word(name);
        self.columns
            .iter()
            .position(|(w, h)| *w == word && h == name)
    }
}

/// Field values of a CSV row, by header position.
pub struct CsvFields<'a> {
    pub index: &'a ColumnIndex,
    pub values: &'a [String],
}

impl Fields for CsvFields<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        let v = self.values.get(self.index.get(name)?)?.trim();
        (!v.is_empty()).then_some(v)
    }
}

/// Checks that every required column of `kind` is present, before anything is written.
pub fn require_columns(path: &Path, kind: Kind, header: &[String]) -> Result<()> {
    let (required, _) = fields_of(kind);
    for col in required {
        if !header.iter().any(|h| h == col) {
            return Err(IngestError::MissingColumn {
                path: path.into(),
                kind: kind.to_string(),
                column: (*col).to_string(),
                found: header.join(", "),
            });
        }
    }
    Ok(())
}

/// Loads a canonical CSV file; returns the columns seen, with inferred types.
pub fn load_csv(ctx: &mut LoadContext<'_, '_>, path: &Path, kind: Kind) -> Result<Vec<Column>> {
    let mut rows = CsvRows::open(path, b',')?;
    if kind == Kind::Transcripts {
        return Err(IngestError::BadInput {
            path: path.into(),
            message: "transcripts are read from JSON Lines only (turns are nested)".into(),
        });
    }
    require_columns(path, kind, &rows.header)?;
    let header = rows.header.clone();
    let index = ColumnIndex::new(&header);
    let (_, known) = fields_of(kind);
    let extra: Vec<usize> = (0..header.len())
        .filter(|i| !known.contains(&header[*i].as_str()))
        .collect();
    let mut types = ColumnTypes::new(header.clone());
    let attrs_wanted = keeps_attrs(kind);
    if !attrs_wanted {
        let (types, multiline) = stream_events(ctx, rows, kind, &index, types)?;
        report_multiline_rows(ctx, kind, multiline)?;
        report_unused_columns(ctx, kind, extra.iter().map(|&i| header[i].as_str()))?;
        return Ok(types.columns());
    }

    // Entities are small: read them all first so custom attribute types are inferred per column.
    let mut buffered = Vec::new();
    let mut bad = Vec::new();
    loop {
        let bytes = rows.bytes_read();
        ctx.progress(bytes, rows.bytes_total);
        match rows.next_row()? {
            None => break,
            Some(Err(b)) => bad.push(b),
            Some(Ok(row)) => {
                for (i, v) in row.values.iter().enumerate() {
                    types.observe(i, v);
                }
                buffered.push(row.to_owned_row());
            }
        }
    }
    for b in bad {
        ctx.reject(b.line, Some(kind), None, vec![b.reason], b.raw)?;
    }
    report_multiline_rows(ctx, kind, rows.multiline_rows())?;
    for row in buffered {
        let mut attrs = Attrs::new();
        for &i in &extra {
            if let Some(v) = types.types[i].read(&row.values[i]) {
                attrs.insert(header[i].clone(), v);
            }
        }
        let fields = CsvFields {
            index: &index,
            values: &row.values,
        };
        accept_or_reject(ctx, kind, row.line, &fields, attrs, &row.values.join(","))?;
    }
    Ok(types.columns())
}

/// Builds one record and writes it, or quarantines the row with every problem found.
pub fn accept_or_reject(
    ctx: &mut LoadContext<'_, '_>,
    kind: Kind,
    line: u64,
    fields: &dyn Fields,
    attrs: Attrs,
    raw: &str,
) -> Result<()> {
    let mut reader = FieldReader::new(fields, ctx.now, None);
    match build(kind, &mut reader, attrs) {
        Some(record) => {
            let source_id = record.natural_key();
            ctx.accept(line, source_id.as_deref(), &[record], &reader.notes)
        }
        None => {
            let id_field = fields_of(kind).1[0];
            if kind == Kind::Opportunities {
                // For the load's warnings: which outcome lost this deal.
                ctx.tally
                    .row_outcome(fields.get("outcome").and_then(|o| o.parse().ok()));
            }
            ctx.reject(
                line,
                Some(kind),
                fields.get(id_field).map(str::to_string),
                reader.problems,
                raw.to_string(),
            )
        }
    }
}

/// Columns a kind has no field for are recorded as a flag on the header line, so nothing the user gave
/// disappears without a word.
pub fn report_unused_columns<'a>(
    ctx: &mut LoadContext<'_, '_>,
    kind: Kind,
    columns: impl Iterator<Item = &'a str>,
) -> Result<()> {
    let unused: Vec<&str> = columns.collect();
    if unused.is_empty() || ctx.identical_to.is_some() {
        return Ok(());
    }
    ctx.batch.flag(&winsignal_store::Flag {
        load_id: ctx.load_id,
        line: 1,
        kind,
        record_id: None,
        code: "unused_columns".into(),
        message: format!(
            "columns not loaded ({} has no such fields): {}",
            kind,
            unused.join(", ")
        ),
    })?;
    Ok(())
}

/// Rows that span several lines (a quoted field holds a line break) are counted in a note on the
/// load's first such row, so rows read can be checked against the file's lines: a stray quote that
/// slipped past the reader's checks shows here as a row spanning lines it should not.
pub fn report_multiline_rows(
    ctx: &mut LoadContext<'_, '_>,
    kind: Kind,
    (n_rows, longest): (u64, Option<(u64, u64)>),
) -> Result<()> {
    let Some((first, last)) = longest else {
        return Ok(());
    };
    if ctx.identical_to.is_some() {
        return Ok(());
    }
    let rows = if n_rows == 1 {
        "1 row holds".to_string()
    } else {
        format!("{n_rows} rows hold")
    };
    ctx.batch.flag(&winsignal_store::Flag {
        load_id: ctx.load_id,
        line: first,
        kind,
        record_id: None,
        code: "multiline_rows".into(),
        message: format!(
            "{rows} line breaks inside quoted fields; the longest spans lines {first}–{last} (if a \
             field should not hold line breaks, look for an unmatched quote there)"
        ),
    })?;
    Ok(())
}

/// Loads a canonical JSON Lines file (any kind, and the only format for transcripts).
pub fn load_jsonl(ctx: &mut LoadContext<'_, '_>, path: &Path, kind: Kind) -> Result<Vec<Column>> {
    let mut lines = JsonLines::open(path)?;
    let (_, known) = fields_of(kind);
    let mut types: Vec<(String, ValueType)> = Vec::new();
    let mut unused: Vec<String> = Vec::new();
    while let Some(next) = {
        ctx.progress(lines.bytes_read(), lines.bytes_total);
        lines.next_object()?
    } {
        let (line, map, raw) = match next {
            Ok(v) => v,
            Err(b) => {
                ctx.reject(b.line, Some(kind), None, vec![b.reason], b.raw)?;
                continue;
            }
        };
        for (k, v) in &map {
            let t = json_type(v);
            match types.iter_mut().find(|(n, _)| n == k) {
                Some((_, old)) => *old = old.unify(t),
                None => types.push((k.clone(), t)),
            }
        }
        if kind == Kind::Transcripts {
            for k in map.keys() {
                if !known.contains(&k.as_str()) && !unused.contains(k) {
                    unused.push(k.clone());
                }
            }
            match transcript_from_json(&map, ctx.now) {
                Ok(t) => {
                    let id = t.call_id.clone();
                    ctx.accept(line, Some(&id), &[Record::Transcripts(t)], &[])?;
                }
                Err(problems) => {
                    let id = map.get("call_id").and_then(json_field_text);
                    ctx.reject(line, Some(kind), id, problems, raw.to_string())?;
                }
            }
            continue;
        }
        let mut fields: HashMap<String, String> = HashMap::new();
        let mut attrs = Attrs::new();
        for (k, v) in &map {
            if known.contains(&k.as_str()) {
                if let Some(text) = json_field_text(v) {
                    fields.insert(k.clone(), text);
                }
            } else if keeps_attrs(kind) {
                if let Some(a) = json_attr(v) {
                    attrs.insert(k.clone(), a);
                }
            } else if !unused.contains(k) {
                unused.push(k.clone());
            }
        }
        accept_or_reject(ctx, kind, line, &fields, attrs, raw)?;
    }
    report_unused_columns(ctx, kind, unused.iter().map(String::as_str))?;
    Ok(types
        .into_iter()
        .map(|(name, value_type)| Column { name, value_type })
        .collect())
}

fn json_type(v: &serde_json::Value) -> ValueType {
    match v {
        serde_json::Value::Null => ValueType::Empty,
        serde_json::Value::Bool(_) => ValueType::Boolean,
        serde_json::Value::Number(_) => ValueType::Number,
        serde_json::Value::String(s) => ValueType::of_value(s),
        _ => ValueType::Text,
    }
}

fn json_attr(v: &serde_json::Value) -> Option<AttrValue> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::Bool(b) => Some(AttrValue::Boolean(*b)),
        serde_json::Value::Number(n) => n.as_f64().map(AttrValue::Number),
        serde_json::Value::String(s) => ValueType::of_value(s).read(s),
        other => Some(AttrValue::Text(other.to_string())),
    }
}

/// A transcript from its JSON object, or every problem with it.
pub fn transcript_from_json(
    map: &serde_json::Map<String, serde_json::Value>,
    now: Ts,
) -> std::result::Result<Transcript, Vec<String>> {
    let mut fields: HashMap<String, String> = HashMap::new();
    for k in [
        "call_id",
        "started_at",
        "activity_id",
        "opportunity_id",
        "account_id",
    ] {
        if let Some(t) = map.get(k).and_then(json_field_text) {
            fields.insert(k.into(), t);
        }
    }
    let mut r = FieldReader::new(&fields, now, None);
    let call_id = r.required_text("call_id");
    let started_at = r.required_ts("started_at");
    let mut problems = std::mem::take(&mut r.problems);
    let mut turns = Vec::new();
    match map.get("turns") {
        Some(serde_json::Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match turn_from_json(item) {
                    Ok(t) => turns.push(t),
                    Err(e) => problems.push(format!("turns[{i}]: {e}")),
                }
            }
            if items.is_empty() {
                problems.push("field `turns`: a transcript needs at least one turn".into());
            }
        }
        Some(_) => problems.push("field `turns`: expected an array of turns".into()),
        None => problems.push("missing required field `turns`".into()),
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Transcript {
        call_id,
        started_at,
        activity_id: fields.get("activity_id").cloned(),
        opportunity_id: fields.get("opportunity_id").cloned(),
        account_id: fields.get("account_id").cloned(),
        turns,
    })
}

fn turn_from_json(v: &serde_json::Value) -> std::result::Result<Turn, String> {
    let obj = v.as_object().ok_or("expected an object")?;
    let role: SpeakerRole = obj
        .get("role")
        .and_then(|r| r.as_str())
        .ok_or("missing `role`")?
        .parse()
        .map_err(|e: winsignal_core::CoreError| format!("field `role`: {e}"))?;
    let num = |k: &str| {
        obj.get(k)
            .and_then(serde_json::Value::as_f64)
            .ok_or(format!("field `{k}`: expected seconds as a number"))
    };
    let (start_s, end_s) = (num("start_s")?, num("end_s")?);
    if end_s < start_s || start_s < 0.0 {
        return Err(format!(
            "end_s ({end_s}) must not be before start_s ({start_s})"
        ));
    }
    let text = obj
        .get("text")
        .and_then(|t| t.as_str())
        .ok_or("missing `text`")?
        .to_string();
    let speaker = obj
        .get("speaker")
        .and_then(|s| s.as_str())
        .map(str::to_string);
    Ok(Turn {
        speaker,
        role,
        start_s,
        end_s,
        text,
    })
}

/// What the parsing thread hands to the writing thread for one row.
#[allow(clippy::large_enum_variant)] // moved once per row through a channel; boxing would add an allocation per row
enum Parsed {
    Bad(crate::read::BadRow),
    Accepted {
        line: u64,
        record: Record,
        notes: Vec<(String, String)>,
    },
    Refused {
        line: u64,
        id: Option<String>,
        problems: Vec<String>,
        raw: String,
    },
}

/// Rows of high-volume kinds are parsed and validated on one thread while the other writes them, and
/// column types are inferred from the first 50,000 rows and one row in 64 after that. Returns the
/// types and the rows that span several lines (`CsvRows::multiline_rows`).
fn stream_events(
    ctx: &mut LoadContext<'_, '_>,
    mut rows: CsvRows,
    kind: Kind,
    index: &ColumnIndex,
    mut types: ColumnTypes,
) -> Result<(ColumnTypes, (u64, Option<(u64, u64)>))> {
    const CHUNK: usize = 4096;
    let now = ctx.now;
    let bytes_total = rows.bytes_total;
    let id_field = fields_of(kind).1[0];
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Vec<Parsed>, u64)>(8);
        let parser = scope.spawn(
            move || -> Result<(ColumnTypes, (u64, Option<(u64, u64)>))> {
                let mut chunk = Vec::with_capacity(CHUNK);
                let mut n = 0u64;
                while let Some(next) = rows.next_row()? {
                    match next {
                        Err(b) => chunk.push(Parsed::Bad(b)),
                        Ok(row) => {
                            n += 1;
                            if n <= 50_000 || n.is_multiple_of(64) {
                                for (i, v) in row.values.iter().enumerate() {
                                    types.observe(i, v);
                                }
                            }
                            let fields = CsvFields {
                                index,
                                values: row.values,
                            };
                            let mut reader = FieldReader::new(&fields, now, None);
                            chunk.push(match build(kind, &mut reader, Attrs::new()) {
                                Some(record) => Parsed::Accepted {
                                    line: row.line,
                                    record,
                                    notes: reader.notes,
                                },
                                None => Parsed::Refused {
                                    line: row.line,
                                    id: fields.get(id_field).map(str::to_string),
                                    problems: reader.problems,
                                    raw: row.values.join(","),
                                },
                            });
                        }
                    }
                    if chunk.len() == CHUNK {
                        let done = rows.bytes_read();
                        if tx
                            .send((
                                std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)),
                                done,
                            ))
                            .is_err()
                        {
                            return Ok((types, rows.multiline_rows()));
                        }
                    }
                }
                let _ = tx.send((chunk, rows.bytes_read()));
                Ok((types, rows.multiline_rows()))
            },
        );
        let write = || -> Result<()> {
            let mut estimated = false;
            for (chunk, done) in rx {
                if !estimated && done > 0 {
                    // Rows to come, from the bytes per row so far.
                    let rows = chunk.len() as u64;
                    ctx.expect_event_rows(rows.saturating_mul(bytes_total) / done)?;
                    estimated = true;
                }
                ctx.progress(done, bytes_total);
                for p in chunk {
                    match p {
                        Parsed::Bad(b) => {
                            ctx.reject(b.line, Some(kind), None, vec![b.reason], b.raw)?
                        }
                        Parsed::Accepted {
                            line,
                            record,
                            notes,
                        } => {
                            let id = record.natural_key_ref();
                            ctx.accept(line, id.as_deref(), std::slice::from_ref(&record), &notes)?;
                        }
                        Parsed::Refused {
                            line,
                            id,
                            problems,
                            raw,
                        } => ctx.reject(line, Some(kind), id, problems, raw)?,
                    }
                }
            }
            Ok(())
        };
        let written = write();
        let parsed = parser.join().map_err(|_| IngestError::BadInput {
            path: std::path::PathBuf::new(),
            message: "internal error: the parsing thread panicked".into(),
        })?;
        written?;
        parsed
    })
}

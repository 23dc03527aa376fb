//! The mapping connector: any CSV, described by a TOML mapping file that says which kind(s) each row
//! becomes, which column feeds which canonical field, value maps, date formats, constants, and how to
//! derive ids when the file has none. See docs/formats.md ("Mapping files") and examples/mappings/.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use winsignal_core::hash::{hash_bytes, hex};
use winsignal_core::{AttrValue, Attrs, Kind, Record, ValueType};
use winsignal_store::Column;

use crate::build::{
    build, fields_of, parse_timezone, record_fields, ColumnTypes, FieldReader, NumberFormat,
};
use crate::error::{read_err, toml_err, IngestError, Result};
use crate::load::LoadContext;
use crate::read::CsvRows;
use crate::sources::canonical::{report_multiline_rows, report_unused_columns};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Source name for provenance and drift; defaults to `mapping:<mapping file stem>`.
    pub source: Option<String>,
    /// Field delimiter, one character (default `,`).
    pub delimiter: Option<String>,
    /// Default strftime format for every date field without its own `format`.
    pub date_format: Option<String>,
    /// Decimal separator of every number field without its own: `.` (default) or `,`.
    pub decimal: Option<String>,
    /// Thousands separator (groups of three digits only): default `,` with a decimal point, `.` with a
    /// decimal comma; `" "`, `"'"`, or `""` for none.
    pub thousands: Option<String>,
    /// `UTC` or a fixed offset (`+02:00`): times written without an offset are read in it.
    pub timezone: Option<String>,
    /// Placeholder values that mean "no value" (`Select`, `N/A`, `-`), by column name, `"*"` for every
    /// column: such a cell is read as empty (matched trimmed, ignoring case), before any field or
    /// attribute reads it.
    pub missing: Option<BTreeMap<String, Vec<String>>>,
    #[serde(rename = "output")]
    pub outputs: Vec<Output>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    pub kind: String,
    /// Skip this output (not the row) when the column is empty.
    pub skip_if_empty: Option<String>,
    /// Update chosen fields of records already held (found by the kind's id) instead of making new
    /// ones: the fields this output maps, and non-empty values only, replace those of the current version.
    #[serde(default)]
    pub update: bool,
    pub fields: BTreeMap<String, FieldSpec>,
}

/// A field's source: a column name, or a rule table. Deserialized by hand so that a typo inside a rule
/// is reported as the unknown key with the keys expected (an untagged enum only says "did not match").
#[derive(Debug, Clone)]
pub enum FieldSpec {
    Column(String),
    Rule(Box<FieldRule>),
}

impl<'de> Deserialize<'de> for FieldSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct SpecVisitor;
        impl<'de> serde::de::Visitor<'de> for SpecVisitor {
            type Value = FieldSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a column name (\"Column\") or a table of rule keys ({ column = \"Column\", … })")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<FieldSpec, E> {
                Ok(FieldSpec::Column(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<FieldSpec, A::Error> {
                FieldRule::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|r| FieldSpec::Rule(Box::new(r)))
            }
        }
        d.deserialize_any(SpecVisitor)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    /// The column to read.
    pub column: Option<String>,
    /// Several columns: the first non-empty one is used.
    pub columns: Option<Vec<String>>,
    /// Value map applied to the column's value (exact match first, then case-insensitive).
    pub values: Option<BTreeMap<String, String>>,
    /// strftime format of a date column.
    pub format: Option<String>,
    /// Used when the column is empty.
    pub default: Option<String>,
    /// The same value on every row (no column).
    pub constant: Option<String>,
    /// `slug` (an id from a name), `hash` (an id from any text) or `line` (the row's line number).
    pub derive: Option<String>,
    /// Put before a derived value.
    pub prefix: Option<String>,
    /// Decimal separator of this number field (overrides the mapping's `decimal`).
    pub decimal: Option<String>,
    /// Thousands separator of this number field (overrides the mapping's `thousands`).
    pub thousands: Option<String>,
}

impl FieldSpec {
    fn rule(&self) -> FieldRule {
        match self {
            FieldSpec::Column(c) => FieldRule {
                column: Some(c.clone()),
                ..Default::default()
            },
            FieldSpec::Rule(r) => (**r).clone(),
        }
    }
}

/// A mapping checked against itself (not yet against a file).
pub struct LoadedMapping {
    pub path: PathBuf,
    pub mapping: Mapping,
    pub kinds: Vec<Kind>,
    pub delimiter: u8,
    /// The declared `timezone` as seconds east of UTC.
    pub timezone_s: Option<i32>,
}

impl LoadedMapping {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(read_err(path))?;
        let mapping: Mapping = toml::from_str(&text).map_err(|e| toml_err(path, &text, &e))?;
        let bad = |needle: &str, message: String| IngestError::BadConfig {
            path: path.into(),
            line: text
                .lines()
                .position(|l| l.contains(needle))
                .map_or(0, |i| i + 1),
            message,
        };
        if mapping.outputs.is_empty() {
            return Err(bad("", "a mapping needs at least one [[output]]".into()));
        }
        let mut kinds = Vec::new();
        for out in &mapping.outputs {
            let kind: Kind = out
                .kind
                .parse()
                .map_err(|e| bad(&out.kind, format!("[[output]] kind: {e}")))?;
            if matches!(kind, Kind::Transcripts | Kind::ProductUsers) {
                return Err(bad(
                    &out.kind,
                    format!("[[output]] kind: {kind} cannot come from a flat CSV row"),
                ));
            }
            let (required, known) = fields_of(kind);
            let required: &[&str] = if out.update {
                let Some(id) = update_key(kind) else {
                    return Err(bad(
                        "update",
                        format!("[[output]] {kind}: `update = true` needs a kind with one id field (accounts, contacts, reps, opportunities, support_tickets)"),
                    ));
                };
                &[id][..]
            } else {
                required
            };
            for (field, spec) in &out.fields {
                if !known.contains(&field.as_str()) {
                    return Err(bad(
                        field,
                        format!(
                            "{kind} has no field `{field}`; expected one of {}",
                            known.join(", ")
                        ),
                    ));
                }
                let r = spec.rule();
                let sources = usize::from(r.column.is_some())
                    + usize::from(r.columns.is_some())
                    + usize::from(r.constant.is_some());
                if sources == 0 && r.derive.as_deref() != Some("line") {
                    return Err(bad(field, format!("field `{field}`: give `column`, `columns`, `constant` or `derive = \"line\"`")));
                }
                if sources > 1 {
                    return Err(bad(
                        field,
                        format!(
                            "field `{field}`: give only one of `column`, `columns`, `constant`"
                        ),
                    ));
                }
                NumberFormat::declared(
                    r.decimal.as_deref().or(mapping.decimal.as_deref()),
                    r.thousands.as_deref().or(mapping.thousands.as_deref()),
                )
                .map_err(|e| bad(field, format!("field `{field}`: {e}")))?;
                if let Some(d) = &r.derive {
                    if !["slug", "hash", "line"].contains(&d.as_str()) {
                        return Err(bad(
                            d,
                            format!(
                                "field `{field}`: derive must be slug, hash or line, found {d:?}"
                            ),
                        ));
                    }
                }
            }
            for req in required {
                if !out.fields.contains_key(*req) {
                    return Err(bad(
                        &out.kind,
                        format!("[[output]] {kind}: required field `{req}` is not mapped (give a column, a constant or a derivation)"),
                    ));
                }
            }
            kinds.push(kind);
        }
        NumberFormat::declared(mapping.decimal.as_deref(), mapping.thousands.as_deref()).map_err(
            |e| {
                let key = if e.starts_with("`decimal`") {
                    "decimal"
                } else {
                    "thousands"
                };
                bad(&format!("{key} ="), e)
            },
        )?;
        let timezone_s = mapping
            .timezone
            .as_deref()
            .map(parse_timezone)
            .transpose()
            .map_err(|e| bad("timezone", e))?;
        let delimiter = match mapping.delimiter.as_deref() {
            None => b',',
            Some("\\t") | Some("\t") => b'\t',
            Some(d) if d.len() == 1 => d.as_bytes()[0],
            Some(d) => {
                return Err(bad(
                    "delimiter",
                    format!("delimiter must be one character, found {d:?}"),
                ))
            }
        };
        Ok(LoadedMapping {
            path: path.into(),
            mapping,
            kinds,
            delimiter,
            timezone_s,
        })
    }

    /// Every field read from a column, as `kind.field=Column` joined by `; ` (several columns of one
    /// field joined by `|`), in mapping order.
    pub fn field_columns(&self) -> String {
        let mut parts = Vec::new();
        for out in &self.mapping.outputs {
            for (field, spec) in &out.fields {
                let r = spec.rule();
                let columns: Vec<String> = r
                    .column
                    .iter()
                    .chain(r.columns.iter().flatten())
                    .cloned()
                    .collect();
                if !columns.is_empty() {
                    parts.push(format!("{}.{field}={}", out.kind, columns.join("|")));
                }
            }
        }
        parts.join("; ")
    }

    pub fn source_name(&self) -> String {
        self.mapping.source.clone().unwrap_or_else(|| {
            format!(
                "mapping:{}",
                self.path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("unnamed")
            )
        })
    }
}

/// The id field an update output finds its records by; `None` for kinds keyed by several fields or
/// kept as events (an update needs one current version to change).
pub fn update_key(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Accounts => Some("account_id"),
        Kind::Contacts => Some("contact_id"),
        Kind::Reps => Some("rep_id"),
        Kind::Opportunities => Some("opportunity_id"),
        Kind::SupportTickets => Some("ticket_id"),
        _ => None,
    }
}

pub fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut dash = false;
    for c in text.trim().chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
            dash = false;
        } else if !dash && !out.is_empty() {
            out.push('-');
            dash = true;
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

struct CompiledField {
    field: String,
    rule: FieldRule,
    columns: Vec<usize>,
}

struct CompiledOutput {
    kind: Kind,
    skip_if_empty: Option<usize>,
    fields: Vec<CompiledField>,
    date_formats: HashMap<String, String>,
    /// Declared number formats of the fields that have one (the others are read the default way).
    number_formats: HashMap<String, NumberFormat>,
    update: bool,
}

pub fn load(ctx: &mut LoadContext<'_, '_>, path: &Path, m: &LoadedMapping) -> Result<Vec<Column>> {
    let mut rows = CsvRows::open(path, m.delimiter)?;
    let header = rows.header.clone();
    let index: HashMap<&str, usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    let col_idx = |c: &str, kind: Kind| -> Result<usize> {
        index
            .get(c)
            .copied()
            .ok_or_else(|| IngestError::MissingColumn {
                path: path.into(),
                kind: format!("{kind} (mapping {})", m.path.display()),
                column: c.to_string(),
                found: header.join(", "),
            })
    };
    let mut outputs = Vec::new();
    let mut used = vec![false; header.len()];
    for (out, kind) in m.mapping.outputs.iter().zip(&m.kinds) {
        let mut fields = Vec::new();
        let mut date_formats = HashMap::new();
        let mut number_formats = HashMap::new();
        for (field, spec) in &out.fields {
            let rule = spec.rule();
            let declared = rule
                .decimal
                .as_deref()
                .or(m.mapping.decimal.as_deref())
                .is_some()
                || rule
                    .thousands
                    .as_deref()
                    .or(m.mapping.thousands.as_deref())
                    .is_some();
            if declared {
                // Checked when the mapping was read.
                if let Ok(nf) = NumberFormat::declared(
                    rule.decimal.as_deref().or(m.mapping.decimal.as_deref()),
                    rule.thousands.as_deref().or(m.mapping.thousands.as_deref()),
                ) {
                    number_formats.insert(field.clone(), nf);
                }
            }
            let mut columns = Vec::new();
            for c in rule.column.iter().chain(rule.columns.iter().flatten()) {
                let i = col_idx(c, *kind)?;
                used[i] = true;
                columns.push(i);
            }
            if let Some(f) = rule
                .format
                .clone()
                .or_else(|| m.mapping.date_format.clone())
            {
                date_formats.insert(field.clone(), f);
            }
            fields.push(CompiledField {
                field: field.clone(),
                rule,
                columns,
            });
        }
        let skip_if_empty = out
            .skip_if_empty
            .as_deref()
            .map(|c| col_idx(c, *kind))
            .transpose()?;
        outputs.push(CompiledOutput {
            kind: *kind,
            skip_if_empty,
            fields,
            date_formats,
            number_formats,
            update: out.update,
        });
    }

    let attrs_kind = m.kinds.iter().position(|k| k.keeps_custom_attributes());
    // Each column's missing markers (its own and those for every column), lower-cased and trimmed.
    let mut markers: Vec<Vec<String>> = vec![Vec::new(); header.len()];
    for (column, values) in m.mapping.missing.iter().flatten() {
        let lower = || values.iter().map(|v| v.trim().to_lowercase());
        if column == "*" {
            markers.iter_mut().for_each(|m| m.extend(lower()));
        } else {
            let i = col_idx(
                column,
                m.kinds.first().copied().unwrap_or(Kind::Opportunities),
            )?;
            markers[i].extend(lower());
        }
    }
    let mut types = ColumnTypes::new(header.clone());
    let mut buffered = Vec::new();
    loop {
        ctx.progress(rows.bytes_read(), rows.bytes_total);
        let Some(next) = rows.next_row()? else { break };
        match next {
            Err(b) => ctx.reject(
                b.line,
                m.kinds.first().copied(),
                None,
                vec![b.reason],
                b.raw,
            )?,
            Ok(row) => {
                let mut row = row.to_owned_row();
                for (v, marks) in row.values.iter_mut().zip(&markers) {
                    if !marks.is_empty() && marks.contains(&v.trim().to_lowercase()) {
                        v.clear();
                    }
                }
                for (i, v) in row.values.iter().enumerate() {
                    types.observe(i, v);
                }
                buffered.push(row);
            }
        }
    }
    let attr_numbers = attribute_numbers(m, &used, &buffered, &mut types);
    for row in buffered {
        let mut records: Vec<Record> = Vec::new();
        let mut problems = Vec::new();
        let mut notes = Vec::new();
        let mut first_id = None;
        let mut row_outcome = None;
        let mut overlays = Vec::new();
        for (oi, out) in outputs.iter().enumerate() {
            if out
                .skip_if_empty
                .is_some_and(|i| row.values[i].trim().is_empty())
            {
                continue;
            }
            let mut f: HashMap<String, String> = HashMap::new();
            for cf in &out.fields {
                match field_value(cf, &row.values, row.line) {
                    Ok(Some(v)) => {
                        f.insert(cf.field.clone(), v);
                    }
                    Ok(None) => {}
                    Err(p) => problems.push(p),
                }
            }
            let mut attrs = Attrs::new();
            if Some(oi) == attrs_kind {
                for (i, u) in used.iter().enumerate() {
                    if !u {
                        let value = match &attr_numbers[i] {
                            Some(nf) => nf.parse(&row.values[i]).ok().map(AttrValue::Number),
                            None => types.types[i].read(&row.values[i]),
                        };
                        if let Some(v) = value {
                            attrs.insert(header[i].clone(), v);
                        }
                    }
                }
            }
            let prefix = if outputs.len() > 1 {
                format!("{}: ", out.kind)
            } else {
                String::new()
            };
            if out.kind == Kind::Opportunities {
                row_outcome = f.get("outcome").and_then(|o| o.trim().parse().ok());
            }
            let mut update = None;
            if out.update {
                match merge_with_held(ctx, out, &f, std::mem::take(&mut attrs), &records)? {
                    Ok(u) => {
                        if out.kind == Kind::Opportunities {
                            row_outcome = u.fields.get("outcome").and_then(|o| o.parse().ok());
                        }
                        update = Some(u);
                    }
                    Err(problem) => {
                        problems.push(format!("{prefix}{problem}"));
                        continue;
                    }
                }
            }
            let (built, reader_problems, reader_notes) = match update {
                Some(u) => {
                    let mut reader = FieldReader::new(&u.fields, ctx.now, Some(&u.date_formats))
                        .with_number_formats(&u.number_formats)
                        .with_timezone(m.timezone_s);
                    let built = build(out.kind, &mut reader, u.attrs);
                    // Notes the held version already had were recorded when it was loaded.
                    reader
                        .notes
                        .retain(|(code, _)| !u.held_notes.contains(code));
                    if let Some(r) = &built {
                        let overlay = crate::overlay::fields_json(r, &u.row_fields, &u.row_attrs);
                        if let (Some(id), Some(fields)) = (r.natural_key(), overlay) {
                            overlays.push((out.kind, id, fields));
                        }
                    }
                    (built, reader.problems, reader.notes)
                }
                None => {
                    let mut reader = FieldReader::new(&f, ctx.now, Some(&out.date_formats))
                        .with_number_formats(&out.number_formats)
                        .with_timezone(m.timezone_s);
                    let built = build(out.kind, &mut reader, attrs);
                    (built, reader.problems, reader.notes)
                }
            };
            problems.extend(reader_problems.into_iter().map(|p| format!("{prefix}{p}")));
            notes.extend(reader_notes);
            if let Some(r) = built {
                if first_id.is_none() {
                    first_id = r.natural_key();
                }
                records.push(r);
            }
        }
        let raw = row.values.join(&(m.delimiter as char).to_string());
        if problems.is_empty() && !records.is_empty() {
            ctx.next_overlays = overlays;
            ctx.accept(row.line, first_id.as_deref(), &records, &notes)?;
        } else {
            if problems.is_empty() {
                problems.push("every output of the mapping was skipped for this row".into());
            }
            ctx.tally.row_outcome(row_outcome);
            ctx.reject(row.line, m.kinds.first().copied(), first_id, problems, raw)?;
        }
    }
    if let Some(k) = m.kinds.first() {
        report_multiline_rows(ctx, *k, rows.multiline_rows())?;
    }
    if attrs_kind.is_none() {
        let unused: Vec<&str> = header
            .iter()
            .zip(&used)
            .filter(|(_, u)| !**u)
            .map(|(h, _)| h.as_str())
            .collect();
        if let Some(k) = m.kinds.first() {
            report_unused_columns(ctx, *k, unused.into_iter())?;
        }
    }
    Ok(types.columns())
}

/// Under a mapping's declared `decimal`/`thousands`, the columns read as custom attributes whose every
/// value is a number written that way are numbers read that way; a column the default reading would
/// take for numbers but the declared one does not (`1.5` under a decimal comma) is text, never a
/// reinterpreted number. Returns the format per column (`None`: the column's inferred type reads it).
fn attribute_numbers(
    m: &LoadedMapping,
    used: &[bool],
    rows: &[crate::read::OwnedCsvRow],
    types: &mut ColumnTypes,
) -> Vec<Option<NumberFormat>> {
    let mut out = vec![None; used.len()];
    if m.mapping.decimal.is_none() && m.mapping.thousands.is_none() {
        return out;
    }
    let Ok(nf) =
        NumberFormat::declared(m.mapping.decimal.as_deref(), m.mapping.thousands.as_deref())
    else {
        return out;
    };
    for (i, u) in used.iter().enumerate() {
        if *u {
            continue;
        }
        let mut values = rows
            .iter()
            .filter_map(|r| r.values.get(i))
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .peekable();
        let any = values.peek().is_some();
        if any && values.all(|v| nf.parse(v).is_ok()) {
            out[i] = Some(nf);
            types.types[i] = ValueType::Number;
        } else if types.types[i] == ValueType::Number {
            types.types[i] = ValueType::Text;
        }
    }
    out
}

/// An update output's row merged onto the record it updates.
struct Merged {
    fields: HashMap<String, String>,
    attrs: Attrs,
    /// The date and number formats of the fields this row gave (the held values are canonical text).
    date_formats: HashMap<String, String>,
    number_formats: HashMap<String, NumberFormat>,
    /// Codes of the notes the held version already carries.
    held_notes: Vec<String>,
    /// The fields and attributes the row gave (its overlay, see [`crate::overlay`]); not the id.
    row_fields: Vec<String>,
    row_attrs: Vec<String>,
}

/// The fields of the record an update row changes (the current version in the store and this batch,
/// or a record an earlier output of the same row made), with the row's non-empty values on top.
/// `Ok(Err(problem))` when no such record is held.
fn merge_with_held(
    ctx: &mut LoadContext<'_, '_>,
    out: &CompiledOutput,
    row: &HashMap<String, String>,
    attrs: Attrs,
    this_row: &[Record],
) -> Result<std::result::Result<Merged, String>> {
    let Some(key_field) = update_key(out.kind) else {
        return Ok(Err(format!("{} cannot be updated", out.kind)));
    };
    let Some(key) = row
        .get(key_field)
        .map(|k| k.trim())
        .filter(|k| !k.is_empty())
    else {
        return Ok(Err(format!("missing required field `{key_field}`")));
    };
    let from_row = this_row
        .iter()
        .rev()
        .find(|r| r.kind() == out.kind && r.natural_key_ref().as_deref() == Some(key))
        .cloned();
    let held = match from_row {
        Some(r) => Some(r),
        None => match ctx.batch.current(out.kind, key)? {
            Some(r) => Some(r),
            None => {
                let long = winsignal_core::sfdc::to_18(key);
                if long != key {
                    ctx.batch.current(out.kind, &long)?
                } else {
                    None
                }
            }
        },
    };
    let Some(held) = held else {
        return Ok(Err(format!(
            "{} {key} is not held: an update output (`update = true`) only changes records already loaded; load the file that creates it first",
            out.kind.singular()
        )));
    };
    let (mut fields, mut merged_attrs) = record_fields(&held);
    let held_notes = {
        let mut reader = FieldReader::new(&fields, ctx.now, None);
        build(out.kind, &mut reader, Attrs::new());
        reader.notes.into_iter().map(|(code, _)| code).collect()
    };
    let held_id = fields.get(key_field).cloned();
    let mut date_formats = HashMap::new();
    let mut number_formats = HashMap::new();
    let mut row_fields = Vec::new();
    for (name, value) in row {
        if value.trim().is_empty() {
            continue;
        }
        if name != key_field {
            row_fields.push(name.clone());
        }
        fields.insert(name.clone(), value.clone());
        if let Some(f) = out.date_formats.get(name) {
            date_formats.insert(name.clone(), f.clone());
        }
        if let Some(f) = out.number_formats.get(name) {
            number_formats.insert(name.clone(), *f);
        }
    }
    // The id as held (a 15-character Salesforce id in the row finds its 18-character record).
    if let Some(id) = held_id {
        fields.insert(key_field.to_string(), id);
    }
    row_fields.sort();
    let row_attrs: Vec<String> = attrs.keys().cloned().collect();
    merged_attrs.extend(attrs);
    Ok(Ok(Merged {
        fields,
        attrs: merged_attrs,
        date_formats,
        number_formats,
        held_notes,
        row_fields,
        row_attrs,
    }))
}

fn field_value(
    cf: &CompiledField,
    values: &[String],
    line: u64,
) -> std::result::Result<Option<String>, String> {
    let r = &cf.rule;
    let raw: Option<String> = if let Some(c) = &r.constant {
        Some(c.clone())
    } else if cf.columns.is_empty() {
        None
    } else {
        cf.columns
            .iter()
            .map(|i| values[*i].trim())
            .find(|v| !v.is_empty())
            .map(str::to_string)
    };
    let raw = match (raw, r.derive.as_deref()) {
        (_, Some("line")) => Some(line.to_string()),
        (Some(v), _) => Some(v),
        (None, _) => r.default.clone(),
    };
    let Some(mut v) = raw else { return Ok(None) };
    if let Some(map) = &r.values {
        let mapped = map.get(&v).or_else(|| {
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&v))
                .map(|(_, x)| x)
        });
        match mapped {
            Some(x) => v = x.clone(),
            None => {
                let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                return Err(format!(
                    "field `{}`: value {v:?} is not in the mapping's values ({})",
                    cf.field,
                    keys.join(", ")
                ));
            }
        }
    }
    v = match r.derive.as_deref() {
        Some("slug") => slug(&v),
        Some("hash") => hex(hash_bytes(v.as_bytes())),
        _ => v,
    };
    if let Some(p) = &r.prefix {
        v = format!("{p}{v}");
    }
    Ok(Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("  Darcel Schlecht "), "darcel-schlecht");
        assert_eq!(slug("Acme, Inc."), "acme-inc");
        assert_eq!(slug("Ünïcode Ltd"), "ünïcode-ltd");
    }
}

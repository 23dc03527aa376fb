//! The Salesforce connector: a folder of export CSVs (Data Loader or the weekly Data Export) with
//! standard API field names. Ids are unified to their 18-character form; unknown columns of accounts,
//! contacts, users and opportunities are kept as custom attributes; a small config can map a custom
//! field onto a canonical one (`[fields.Account] Segment__c = "segment"`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use winsignal_core::sfdc::{key_prefix, to_18};
use winsignal_core::{Attrs, Kind, Ts};
use winsignal_store::Column;

use crate::build::ColumnTypes;
use crate::error::{toml_err, IngestError, Result};
use crate::load::LoadContext;
use crate::read::CsvRows;
use crate::sources::canonical::{accept_or_reject, report_unused_columns};

/// The Salesforce objects read, in the order they are loaded.
pub const OBJECTS: [&str; 8] = [
    "Account",
    "Contact",
    "User",
    "Opportunity",
    "OpportunityHistory",
    "OpportunityContactRole",
    "Task",
    "Event",
];

/// Maps custom (or non-standard) fields onto canonical ones, per object.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceConfig {
    #[serde(default)]
    pub fields: BTreeMap<String, BTreeMap<String, String>>,
}

impl SalesforceConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(crate::error::read_err(path))?;
        let cfg: SalesforceConfig = toml::from_str(&text).map_err(|e| toml_err(path, &text, &e))?;
        for (object, map) in &cfg.fields {
            let Some(kind) = kind_of_object(object) else {
                return Err(IngestError::BadConfig {
                    path: path.into(),
                    line: line_of(&text, object),
                    message: format!(
                        "[fields.{object}]: unknown object; expected one of {}",
                        OBJECTS.join(", ")
                    ),
                });
            };
            let (_, known) = crate::build::fields_of(kind);
            for (column, field) in map {
                if !known.contains(&field.as_str()) {
                    return Err(IngestError::BadConfig {
                        path: path.into(),
                        line: line_of(&text, column),
                        message: format!("[fields.{object}] {column} = {field:?}: {kind} has no field {field:?}; expected one of {}", known.join(", ")),
                    });
                }
            }
        }
        Ok(cfg)
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map_or(0, |i| i + 1)
}

pub fn kind_of_object(object: &str) -> Option<Kind> {
    Some(match object {
        "Account" => Kind::Accounts,
        "Contact" => Kind::Contacts,
        "User" => Kind::Reps,
        "Opportunity" => Kind::Opportunities,
        "OpportunityHistory" => Kind::StageHistory,
        "OpportunityContactRole" => Kind::OpportunityContacts,
        "Task" | "Event" => Kind::Activities,
        _ => return None,
    })
}

/// The export files of a folder, in load order, and the CSV files that are not Salesforce objects
/// winsignal reads (reported, never silently skipped).
pub fn plan(dir: &Path) -> Result<(Vec<(String, PathBuf)>, Vec<PathBuf>)> {
    let mut found: HashMap<String, PathBuf> = HashMap::new();
    let mut other = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(crate::error::read_err(dir))?;
    for e in entries {
        let path = e.map_err(crate::error::read_err(dir))?.path();
        let is_csv = path
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| x.eq_ignore_ascii_case("csv"));
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden || path.is_dir() {
            continue;
        }
        if !is_csv {
            // Listed as not loaded, like any file no connector reads.
            other.push(path);
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        match OBJECTS.iter().find(|o| o.eq_ignore_ascii_case(&stem)) {
            Some(o) => {
                found.insert((*o).to_string(), path);
            }
            None => other.push(path),
        }
    }
    other.sort();
    let files = OBJECTS
        .iter()
        .filter_map(|o| found.remove(*o).map(|p| (o.to_string(), p)))
        .collect();
    Ok((files, other))
}

/// Standard columns → canonical fields, per object. Values are further transformed in `row_fields`.
fn standard_columns(object: &str) -> &'static [(&'static str, &'static str)] {
    match object {
        "Account" => &[
            ("Id", "account_id"),
            ("Name", "name"),
            ("Website", "domain"),
            ("Industry", "industry"),
            ("NumberOfEmployees", "employees"),
            ("AnnualRevenue", "annual_revenue"),
            ("BillingCountry", "country"),
            ("ParentId", "parent_account_id"),
            ("CreatedDate", "created_at"),
        ],
        "Contact" => &[
            ("Id", "contact_id"),
            ("AccountId", "account_id"),
            ("Email", "email"),
            ("Name", "name"),
            ("Title", "title"),
            ("Department", "department"),
            ("CreatedDate", "created_at"),
        ],
        "User" => &[
            ("Id", "rep_id"),
            ("Name", "name"),
            ("Email", "email"),
            ("Department", "team"),
            ("ManagerId", "manager_id"),
            ("CreatedDate", "hired_at"),
        ],
        "Opportunity" => &[
            ("Id", "opportunity_id"),
            ("AccountId", "account_id"),
            ("OwnerId", "rep_id"),
            ("Name", "name"),
            ("Type", "type"),
            ("LeadSource", "lead_source"),
            ("Amount", "amount"),
            ("CurrencyIsoCode", "currency"),
            ("CreatedDate", "created_at"),
            ("StageName", "stage"),
        ],
        "OpportunityHistory" => &[
            ("OpportunityId", "opportunity_id"),
            ("StageName", "stage"),
            ("CreatedDate", "entered_at"),
        ],
        "OpportunityContactRole" => &[
            ("OpportunityId", "opportunity_id"),
            ("ContactId", "contact_id"),
            ("Role", "role"),
            ("IsPrimary", "is_primary"),
        ],
        "Task" => &[
            ("Id", "activity_id"),
            ("OwnerId", "rep_id"),
            ("AccountId", "account_id"),
            ("CreatedDate", "created_at"),
            ("CallDurationInSeconds", "duration_s"),
            ("Subject", "subject"),
        ],
        "Event" => &[
            ("Id", "activity_id"),
            ("OwnerId", "rep_id"),
            ("AccountId", "account_id"),
            ("CreatedDate", "created_at"),
            ("Subject", "subject"),
        ],
        _ => &[],
    }
}

/// Columns read by the transforms below besides the standard one-to-one columns.
fn derived_columns(object: &str) -> &'static [&'static str] {
    match object {
        "Contact" | "User" => &["FirstName", "LastName"],
        "Opportunity" => &["IsClosed", "IsWon", "CloseDate"],
        "Task" => &[
            "TaskSubtype",
            "Type",
            "CallType",
            "Status",
            "WhoId",
            "WhatId",
            "CompletedDateTime",
            "ActivityDate",
        ],
        "Event" => &[
            "WhoId",
            "WhatId",
            "StartDateTime",
            "EndDateTime",
            "DurationInMinutes",
            "ActivityDateTime",
            "ActivityDate",
        ],
        _ => &[],
    }
}

/// Columns without which nothing of the object can be read.
fn required_columns(object: &str) -> &'static [&'static str] {
    match object {
        "Account" | "Contact" | "User" => &["Id"],
        "Opportunity" => &["Id", "CreatedDate", "StageName"],
        "OpportunityHistory" => &["OpportunityId", "StageName", "CreatedDate"],
        "OpportunityContactRole" => &["OpportunityId", "ContactId"],
        "Task" => &["Id"],
        "Event" => &["Id", "StartDateTime"],
        _ => &[],
    }
}

const ID_FIELDS: &[&str] = &[
    "account_id",
    "contact_id",
    "rep_id",
    "opportunity_id",
    "activity_id",
    "parent_account_id",
    "manager_id",
];

/// Loads one export file of `object`.
pub fn load_file(
    ctx: &mut LoadContext<'_, '_>,
    path: &Path,
    object: &str,
    cfg: &SalesforceConfig,
) -> Result<Vec<Column>> {
    let kind = kind_of_object(object).ok_or_else(|| IngestError::BadInput {
        path: path.into(),
        message: format!(
            "{object} is not a Salesforce object winsignal reads ({})",
            OBJECTS.join(", ")
        ),
    })?;
    let mut rows = CsvRows::open(path, b',')?;
    let header = rows.header.clone();
    for col in required_columns(object) {
        if !header.iter().any(|h| h == col) {
            return Err(IngestError::MissingColumn {
                path: path.into(),
                kind: format!("Salesforce {object}"),
                column: (*col).into(),
                found: header.join(", "),
            });
        }
    }
    let index: HashMap<String, usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| (h.clone(), i))
        .collect();
    let custom = cfg.fields.get(object).cloned().unwrap_or_default();
    let mut mapping: Vec<(usize, String)> = Vec::new();
    for (col, field) in standard_columns(object) {
        if custom.values().any(|f| f == field) {
            continue;
        }
        if let Some(&i) = index.get(*col) {
            mapping.push((i, (*field).to_string()));
        }
    }
    for (col, field) in &custom {
        if let Some(&i) = index.get(col) {
            mapping.push((i, field.clone()));
        }
    }
    let used: Vec<bool> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            mapping.iter().any(|(m, _)| *m == i) || derived_columns(object).contains(&h.as_str())
        })
        .collect();
    let keeps_attrs = kind.keeps_custom_attributes();
    let mut types = ColumnTypes::new(header.clone());
    let mut buffered = Vec::new();
    loop {
        ctx.progress(rows.bytes_read(), rows.bytes_total);
        let Some(next) = rows.next_row()? else { break };
        let row = match next {
            Ok(row) => row,
            Err(b) => {
                ctx.reject(b.line, Some(kind), None, vec![b.reason], b.raw)?;
                continue;
            }
        };
        for (i, v) in row.values.iter().enumerate() {
            types.observe(i, v);
        }
        if keeps_attrs {
            buffered.push(row.to_owned_row());
        } else {
            let (fields, notes) = row_fields(object, row.values, &index, &mapping);
            accept_row(
                ctx,
                kind,
                row.line,
                &fields,
                Attrs::new(),
                row.values,
                notes,
            )?;
        }
    }
    for row in buffered {
        let (fields, notes) = row_fields(object, &row.values, &index, &mapping);
        let mut attrs = Attrs::new();
        for (i, u) in used.iter().enumerate() {
            if !u {
                if let Some(v) = types.types[i].read(&row.values[i]) {
                    attrs.insert(header[i].clone(), v);
                }
            }
        }
        accept_row(ctx, kind, row.line, &fields, attrs, &row.values, notes)?;
    }
    if !keeps_attrs {
        report_unused_columns(
            ctx,
            kind,
            header
                .iter()
                .zip(&used)
                .filter(|(_, u)| !**u)
                .map(|(h, _)| h.as_str()),
        )?;
    }
    Ok(types.columns())
}

fn accept_row(
    ctx: &mut LoadContext<'_, '_>,
    kind: Kind,
    line: u64,
    fields: &HashMap<String, String>,
    attrs: Attrs,
    values: &[String],
    notes: Vec<(String, String)>,
) -> Result<()> {
    if notes.is_empty() {
        return accept_or_reject(ctx, kind, line, fields, attrs, &values.join(","));
    }
    // Transform notes (e.g. an unknown task status) travel with the row's own notes.
    let mut reader = crate::build::FieldReader::new(fields, ctx.now, None);
    match crate::build::build(kind, &mut reader, attrs) {
        Some(record) => {
            let id = record.natural_key();
            let mut all = notes;
            all.extend(reader.notes);
            ctx.accept(line, id.as_deref(), &[record], &all)
        }
        None => ctx.reject(
            line,
            Some(kind),
            fields.get("activity_id").cloned(),
            reader.problems,
            values.join(","),
        ),
    }
}

/// The canonical field values of one export row, plus notes about values that could not be mapped.
fn row_fields(
    object: &str,
    values: &[String],
    index: &HashMap<String, usize>,
    mapping: &[(usize, String)],
) -> (HashMap<String, String>, Vec<(String, String)>) {
    let col = |name: &str| -> Option<&str> {
        let v = values.get(*index.get(name)?)?.trim();
        (!v.is_empty()).then_some(v)
    };
    let mut f: HashMap<String, String> = HashMap::new();
    let mut notes = Vec::new();
    for (i, field) in mapping {
        if let Some(v) = values.get(*i).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            f.insert(field.clone(), v.to_string());
        }
    }
    match object {
        "Contact" | "User" if !f.contains_key("name") => {
            let name = [col("FirstName"), col("LastName")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            if !name.is_empty() {
                f.insert("name".into(), name);
            }
        }
        "Opportunity" => {
            let stage = col("StageName").unwrap_or_default().to_ascii_lowercase();
            let closed = col("IsClosed")
                .and_then(winsignal_core::parse_bool)
                .unwrap_or(stage.starts_with("closed"));
            let won = col("IsWon")
                .and_then(winsignal_core::parse_bool)
                .unwrap_or(stage.contains("won"));
            let outcome = match (closed, won) {
                (false, _) => "open",
                (true, true) => "won",
                (true, false) => "lost",
            };
            f.entry("outcome".into()).or_insert_with(|| outcome.into());
            if closed {
                if let Some(d) = col("CloseDate") {
                    f.entry("closed_at".into()).or_insert_with(|| d.to_string());
                }
            }
        }
        "Task" | "Event" => {
            if object == "Event" {
                f.entry("type".into()).or_insert_with(|| "meeting".into());
                if let Some(start) = col("StartDateTime")
                    .or(col("ActivityDateTime"))
                    .or(col("ActivityDate"))
                {
                    f.entry("occurred_at".into())
                        .or_insert_with(|| start.to_string());
                }
                let minutes = col("DurationInMinutes").and_then(|m| m.parse::<f64>().ok());
                let span = match (
                    col("StartDateTime").map(Ts::parse),
                    col("EndDateTime").map(Ts::parse),
                ) {
                    (Some(Ok(s)), Some(Ok(e))) if e >= s => Some((e.0 - s.0) as f64 / 1000.0),
                    _ => None,
                };
                if let Some(seconds) = minutes.map(|m| m * 60.0).or(span) {
                    f.entry("duration_s".into())
                        .or_insert_with(|| seconds.to_string());
                }
            } else {
                let subtype = col("TaskSubtype")
                    .or(col("Type"))
                    .unwrap_or("Task")
                    .to_ascii_lowercase();
                let t = match subtype.as_str() {
                    "call" => "call",
                    "email" | "listemail" => "email",
                    "meeting" => "meeting",
                    _ => "task",
                };
                f.entry("type".into()).or_insert_with(|| t.into());
                if let Some(dir) = col("CallType") {
                    match dir.to_ascii_lowercase().as_str() {
                        "inbound" => {
                            f.entry("direction".into())
                                .or_insert_with(|| "inbound".into());
                        }
                        "outbound" => {
                            f.entry("direction".into())
                                .or_insert_with(|| "outbound".into());
                        }
                        _ => {}
                    }
                }
                if let Some(status) = col("Status") {
                    let mapped = match status.to_ascii_lowercase().as_str() {
                        "completed" => Some("completed"),
                        "not started" | "in progress" | "waiting on someone else" | "open" => {
                            Some("scheduled")
                        }
                        "deferred" | "canceled" | "cancelled" => Some("canceled"),
                        _ => None,
                    };
                    match mapped {
                        Some(m) => {
                            f.entry("status".into()).or_insert_with(|| m.into());
                        }
                        None if !f.contains_key("status") => notes.push((
                            "unknown_status".into(),
                            format!("task Status {status:?} is not a known status; left empty"),
                        )),
                        None => {}
                    }
                }
                let when = col("CompletedDateTime")
                    .or(col("ActivityDate"))
                    .or(col("CreatedDate"));
                if let Some(w) = when {
                    f.entry("occurred_at".into())
                        .or_insert_with(|| w.to_string());
                }
            }
            if let Some(who) = col("WhoId") {
                match key_prefix(who) {
                    Some("003") => {
                        f.entry("contact_ids".into()).or_insert_with(|| to_18(who));
                    }
                    _ => notes.push((
                        "who_not_a_contact".into(),
                        format!("WhoId {who} is not a contact (003…); not linked"),
                    )),
                }
            }
            if let Some(what) = col("WhatId") {
                match key_prefix(what) {
                    Some("006") => {
                        f.entry("opportunity_id".into()).or_insert_with(|| what.to_string());
                    }
                    Some("001") => {
                        f.entry("account_id".into()).or_insert_with(|| what.to_string());
                    }
                    _ => notes.push((
                        "what_not_linked".into(),
                        format!("WhatId {what} is neither an opportunity (006…) nor an account (001…); not linked"),
                    )),
                }
            }
        }
        _ => {}
    }
    for field in ID_FIELDS {
        if let Some(v) = f.get_mut(*field) {
            *v = to_18(v);
        }
    }
    if let Some(v) = f.get_mut("contact_ids") {
        *v = v.split(';').map(to_18).collect::<Vec<_>>().join(";");
    }
    (f, notes)
}

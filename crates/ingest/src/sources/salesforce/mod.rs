//! The Salesforce connector: a folder of export CSVs (Data Loader or the weekly Data Export) with
//! standard API field names, read case-insensitively as Salesforce reads them. Ids are unified to
//! their canonical 18-character form (a long id with a wrong checksum quarantines its row); rows in
//! the recycle bin (`IsDeleted`) are not live records; an Event is a meeting held once its end has
//! passed. Unknown columns of accounts, contacts, users and opportunities are kept as custom
//! attributes; a small config can map a custom field onto a canonical one
//! (`[fields.Account] Segment__c = "segment"`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use winsignal_core::sfdc::{canonical_18, key_prefix};
use winsignal_core::{Attrs, Kind, Ts};
use winsignal_store::Column;

use crate::build::ColumnTypes;
use crate::error::{toml_err, IngestError, Result};
use crate::load::LoadContext;
use crate::read::CsvRows;
use crate::sources::canonical::{accept_or_reject, report_multiline_rows, report_unused_columns};

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
    /// When the export was taken (an Event ending after it had not been held yet). Without it, the
    /// latest `SystemModstamp`, `LastModifiedDate` or `CreatedDate` in the Event file stands in.
    #[serde(default)]
    pub exported_at: Option<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, BTreeMap<String, String>>,
}

impl SalesforceConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(crate::error::read_err(path))?;
        let cfg: SalesforceConfig = toml::from_str(&text).map_err(|e| toml_err(path, &text, &e))?;
        if let Some(raw) = &cfg.exported_at {
            if let Err(e) = Ts::parse(raw) {
                return Err(IngestError::BadConfig {
                    path: path.into(),
                    line: line_of(&text, "exported_at"),
                    message: format!("exported_at = {raw:?}: {e}"),
                });
            }
        }
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

    fn exported_at(&self) -> Option<Ts> {
        self.exported_at.as_deref().and_then(|t| Ts::parse(t).ok())
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
        if !is_csv || !path.is_file() {
            // Listed as not loaded, like any file no connector reads (a FIFO or device is never
            // opened: that would wait for a writer).
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
    // Companion files are read with their object's file, not listed as left unread.
    other.retain(|p| {
        !found
            .keys()
            .any(|o| companions(o).iter().any(|c| is_object_file(p, c)))
    });
    other.sort();
    let files = OBJECTS
        .iter()
        .filter_map(|o| found.remove(*o).map(|p| (o.to_string(), p)))
        .collect();
    Ok((files, other))
}

/// Objects read with another object's file, because they only complete its rows: `EmailMessage`
/// (Enhanced Email: one row per e-mail, with `Incoming` and the `ActivityId` of the Task that logs it;
/// no Task field says which way an e-mail went) and `TaskRelation` / `EventRelation` (Shared
/// Activities: every contact of a task or meeting, where `WhoId` holds only one).
fn companions(object: &str) -> &'static [&'static str] {
    match object {
        "Task" => &["EmailMessage", "TaskRelation"],
        "Event" => &["EventRelation"],
        _ => &[],
    }
}

fn is_object_file(path: &Path, object: &str) -> bool {
    path.file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|s| s.eq_ignore_ascii_case(object))
        && path
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| x.eq_ignore_ascii_case("csv"))
}

/// The companion files beside an object's file (e.g. `EmailMessage.csv` beside `Task.csv`), by
/// companion name. They shape what the object's load makes of its rows, so they are part of its
/// identity.
pub fn companion_files(object_file: &Path, object: &str) -> Vec<(&'static str, PathBuf)> {
    let Some(dir) = object_file.parent() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    companions(object)
        .iter()
        .filter_map(|c| {
            let p = paths.iter().find(|p| is_object_file(p, c))?;
            Some((*c, p.clone()))
        })
        .collect()
}

/// The columns a companion file must have, by position.
fn companion_columns(
    path: &Path,
    header: &[String],
    object: &str,
    columns: &[&str],
) -> Result<Vec<usize>> {
    columns
        .iter()
        .map(|col| {
            position(header, col).ok_or_else(|| IngestError::MissingColumn {
                path: path.into(),
                kind: format!("Salesforce {object} (read with the file it completes)"),
                column: (*col).into(),
                found: header.join(", "),
            })
        })
        .collect()
}

/// Activity id → the contacts related to it, from `TaskRelation.csv` (`TaskId`) or
/// `EventRelation.csv` (`EventId`): relations to a contact (`003…`) that are not the record's "what",
/// not deleted and (for invitees) not declined.
fn related_contacts(path: &Path, parent_column: &str) -> Result<HashMap<String, Vec<String>>> {
    let mut rows = CsvRows::open(path, b',')?;
    let header = rows.header.clone();
    let object = if parent_column == "TaskId" {
        "TaskRelation"
    } else {
        "EventRelation"
    };
    let at = companion_columns(path, &header, object, &["RelationId", parent_column])?;
    let is_what = position(&header, "IsWhat");
    let deleted = position(&header, "IsDeleted");
    let status = position(&header, "Status");
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    while let Some(next) = rows.next_row()? {
        // A row that cannot be read links nothing; its activity is still loaded.
        let Ok(row) = next else { continue };
        let get = |i: Option<usize>| i.and_then(|i| row.values.get(i)).map(|v| v.trim());
        let flag = |i: Option<usize>| get(i).and_then(checkbox) == Some(true);
        let (Some(contact), Some(activity)) = (get(Some(at[0])), get(Some(at[1]))) else {
            continue;
        };
        let declined = get(status).is_some_and(|s| s.eq_ignore_ascii_case("declined"));
        if key_prefix(contact) != Some("003") || flag(is_what) || flag(deleted) || declined {
            continue;
        }
        out.entry(winsignal_core::sfdc::to_18(activity))
            .or_default()
            .push(winsignal_core::sfdc::to_18(contact));
    }
    Ok(out)
}

/// Task id → the direction of the e-mail it logs, from `EmailMessage.csv` (`Incoming` true: inbound).
fn email_directions(path: &Path) -> Result<HashMap<String, &'static str>> {
    let mut rows = CsvRows::open(path, b',')?;
    let header = rows.header.clone();
    let at = companion_columns(path, &header, "EmailMessage", &["ActivityId", "Incoming"])?;
    let mut out = HashMap::new();
    while let Some(next) = rows.next_row()? {
        // A row that cannot be read gives no direction; its Task is still loaded.
        let Ok(row) = next else { continue };
        let (Some(task), Some(incoming)) = (
            row.values
                .get(at[0])
                .map(|v| v.trim())
                .filter(|v| !v.is_empty()),
            row.values.get(at[1]).and_then(|v| checkbox(v)),
        ) else {
            continue;
        };
        let task = winsignal_core::sfdc::to_18(task);
        out.insert(task, if incoming { "inbound" } else { "outbound" });
    }
    Ok(out)
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
            ("Probability", "probability"),
            ("ForecastCategoryName", "forecast_category"),
        ],
        "OpportunityHistory" => &[
            ("OpportunityId", "opportunity_id"),
            ("StageName", "stage"),
            ("CreatedDate", "entered_at"),
            ("Probability", "probability"),
            ("ForecastCategory", "forecast_category"),
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
        "Contact" | "User" => &["FirstName", "LastName", "IsDeleted"],
        "Opportunity" => &[
            "IsClosed",
            "IsWon",
            "CloseDate",
            "ForecastCategory",
            "IsDeleted",
        ],
        "OpportunityHistory" => &["CloseDate", "IsDeleted"],
        "Task" => &[
            "TaskSubtype",
            "Type",
            "CallType",
            "Status",
            "IsClosed",
            "WhoId",
            "WhatId",
            "CompletedDateTime",
            "ActivityDate",
            "IsDeleted",
            "IsArchived",
        ],
        "Event" => &[
            "WhoId",
            "WhatId",
            "IsAllDayEvent",
            "StartDateTime",
            "EndDateTime",
            "DurationInMinutes",
            "ActivityDateTime",
            "ActivityDate",
            "EndDate",
            "IsDeleted",
            "IsArchived",
            "IsChild",
            "IsRecurrence",
            "GroupEventType",
            "LastModifiedDate",
            "SystemModstamp",
        ],
        _ => &["IsDeleted"],
    }
}

/// Columns without which nothing of the object can be read; a list of names means any one of them.
fn required_columns(object: &str) -> &'static [&'static [&'static str]] {
    match object {
        "Account" | "Contact" | "User" => &[&["Id"]],
        "Opportunity" => &[&["Id"], &["CreatedDate"], &["StageName"]],
        "OpportunityHistory" => &[&["OpportunityId"], &["StageName"], &["CreatedDate"]],
        "OpportunityContactRole" => &[&["OpportunityId"], &["ContactId"]],
        "Task" => &[&["Id"]],
        "Event" => &[
            &["Id"],
            &["StartDateTime", "ActivityDateTime", "ActivityDate"],
        ],
        _ => &[],
    }
}

/// Where the columns the connector reads are. Salesforce field API names are case-insensitive, so
/// a Data Loader export with `ID,NAME,…` names the same fields as one with `Id,Name,…`.
struct Located {
    at: HashMap<&'static str, usize>,
}

impl Located {
    fn new(header: &[String], object: &str) -> Located {
        let names = standard_columns(object)
            .iter()
            .map(|(c, _)| *c)
            .chain(derived_columns(object).iter().copied())
            .chain(TIME_COLUMNS);
        let at = names
            .filter_map(|n| position(header, n).map(|i| (n, i)))
            .collect();
        Located { at }
    }

    fn get(&self, name: &str) -> Option<usize> {
        self.at.get(name).copied()
    }
}

/// The system time stamps every exported row has, read to date an export.
const TIME_COLUMNS: [&str; 3] = ["SystemModstamp", "LastModifiedDate", "CreatedDate"];

fn position(header: &[String], name: &str) -> Option<usize> {
    header
        .iter()
        .position(|h| h.trim().eq_ignore_ascii_case(name))
}

/// A Salesforce date-time as RFC 3339: the API (and exports made through it) writes the offset
/// without a colon (`2024-05-02T15:00:00.000+0000`), which is given one; anything else is unchanged.
fn sf_time(v: &str) -> std::borrow::Cow<'_, str> {
    let v = v.trim();
    let b = v.as_bytes();
    let n = b.len();
    let offset_without_colon = n > 16
        && b[10] == b'T'
        && matches!(b[n - 5], b'+' | b'-')
        && b[n - 4..].iter().all(u8::is_ascii_digit);
    if offset_without_colon {
        std::borrow::Cow::Owned(format!("{}:{}", &v[..n - 2], &v[n - 2..]))
    } else {
        std::borrow::Cow::Borrowed(v)
    }
}

/// Canonical fields that hold date-times.
const TIME_FIELDS: &[&str] = &[
    "created_at",
    "closed_at",
    "entered_at",
    "hired_at",
    "occurred_at",
];

/// A Salesforce checkbox as exported: `true`/`false` (Data Loader) or `1`/`0` (some exports).
fn checkbox(v: &str) -> Option<bool> {
    winsignal_core::parse_bool(v).or(match v.trim() {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    })
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
    for (i, a) in header.iter().enumerate() {
        if let Some(b) = header[i + 1..]
            .iter()
            .find(|b| b.trim().eq_ignore_ascii_case(a.trim()))
        {
            return Err(IngestError::BadInput {
                path: path.into(),
                message: format!(
                    "the header names the field {a:?} twice (as {a:?} and {b:?}; Salesforce field names are case-insensitive)"
                ),
            });
        }
    }
    for any_of in required_columns(object) {
        if !any_of.iter().any(|c| position(&header, c).is_some()) {
            return Err(IngestError::MissingColumn {
                path: path.into(),
                kind: format!("Salesforce {object}"),
                column: match any_of {
                    [one] => (*one).to_string(),
                    [first, rest @ ..] => format!("{first} (or {})", rest.join(", ")),
                    [] => String::new(),
                },
                found: header.join(", "),
            });
        }
    }
    let located = Located::new(&header, object);
    let custom = cfg.fields.get(object).cloned().unwrap_or_default();
    let mut mapping: Vec<(usize, String)> = Vec::new();
    for (col, field) in standard_columns(object) {
        if custom.values().any(|f| f == field) {
            continue;
        }
        if let Some(i) = located.get(col) {
            mapping.push((i, (*field).to_string()));
        }
    }
    for (col, field) in &custom {
        if let Some(i) = position(&header, col) {
            mapping.push((i, field.clone()));
        }
    }
    let used: Vec<bool> = (0..header.len())
        .map(|i| {
            mapping.iter().any(|(m, _)| *m == i)
                || derived_columns(object)
                    .iter()
                    .any(|c| located.get(c) == Some(i))
        })
        .collect();
    let mut email_directions = HashMap::new();
    let mut related = HashMap::new();
    for (companion, file) in companion_files(path, object) {
        match companion {
            "EmailMessage" => email_directions = self::email_directions(&file)?,
            "TaskRelation" => related = related_contacts(&file, "TaskId")?,
            "EventRelation" => related = related_contacts(&file, "EventId")?,
            _ => {}
        }
    }
    let reader = RowReader {
        object,
        header: &header,
        located: &located,
        mapping: &mapping,
        exported_at: ctx.now,
        email_directions: &email_directions,
        related: &related,
    };
    let keeps_attrs = kind.keeps_custom_attributes();
    // Events are read after the whole file has been seen: when the export was taken decides which
    // meetings had been held. So is stage history: which rows change the stage depends on the rows
    // before them.
    let buffers = keeps_attrs || matches!(object, "Event" | "OpportunityHistory");
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
        if buffers {
            buffered.push(row.to_owned_row());
        } else {
            reader.load_row(ctx, kind, row.line, row.values, Attrs::new())?;
        }
    }
    report_multiline_rows(ctx, kind, rows.multiline_rows())?;
    let exported_at = match cfg.exported_at() {
        Some(t) => t,
        None if object == "Event" => export_time(&buffered, &located, ctx.now).unwrap_or(ctx.now),
        None => ctx.now,
    };
    let reader = RowReader {
        exported_at,
        ..reader
    };
    let not_stage_changes = if object == "OpportunityHistory" {
        stage_repeats(&buffered, &located, ctx.now)
    } else {
        HashMap::new()
    };
    for row in buffered {
        if let Some(reason) = not_stage_changes.get(&row.line) {
            let id = located
                .get("OpportunityId")
                .and_then(|i| row.values.get(i))
                .map(|v| winsignal_core::sfdc::to_18(v));
            ctx.reject(
                row.line,
                Some(kind),
                id,
                vec![reason.clone()],
                row.values.join(","),
            )?;
            continue;
        }
        let mut attrs = Attrs::new();
        if keeps_attrs {
            for (i, u) in used.iter().enumerate() {
                if !u {
                    if let Some(v) = types.types[i].read(&row.values[i]) {
                        attrs.insert(header[i].clone(), v);
                    }
                }
            }
        }
        reader.load_row(ctx, kind, row.line, &row.values, attrs)?;
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

/// When the export was taken, as far as its rows tell: the latest system time stamp of any row
/// (every row was last modified before the export). Stamps after `now` are errors the rows are
/// refused for, not evidence. `None` when no row has one.
fn export_time(rows: &[crate::read::OwnedCsvRow], located: &Located, now: Ts) -> Option<Ts> {
    let columns: Vec<usize> = TIME_COLUMNS.iter().filter_map(|c| located.get(c)).collect();
    rows.iter()
        .flat_map(|r| columns.iter().filter_map(|&i| r.values.get(i)))
        .filter_map(|v| Ts::parse(&sf_time(v)).ok())
        .filter(|t| *t <= now)
        .max()
}

/// OpportunityHistory rows that change nothing winsignal reads, with the reason they are left out.
/// Salesforce writes a history row whenever `Amount`, `CloseDate`, `Probability`, `ForecastCategory`
/// or `StageName` changes. A row that keeps the stage of the deal's previous row (by `CreatedDate`)
/// is the same stay in that stage, not a new entry into it; it is kept when it changes the CRM's
/// forecast fields (a pushed close date, say), and left out otherwise.
fn stage_repeats(
    rows: &[crate::read::OwnedCsvRow],
    located: &Located,
    now: Ts,
) -> HashMap<u64, String> {
    let (Some(opp), Some(stage), Some(created)) = (
        located.get("OpportunityId"),
        located.get("StageName"),
        located.get("CreatedDate"),
    ) else {
        return HashMap::new();
    };
    fn value(r: &crate::read::OwnedCsvRow, i: usize) -> &str {
        r.values.get(i).map_or("", |v| v.trim())
    }
    let forecast_fields: Vec<usize> = ["CloseDate", "Probability", "ForecastCategory"]
        .iter()
        .filter_map(|c| located.get(c))
        .collect();
    let same = |a: &crate::read::OwnedCsvRow, b: &crate::read::OwnedCsvRow| {
        value(a, stage) == value(b, stage)
            && forecast_fields.iter().all(|&i| value(a, i) == value(b, i))
    };
    let mut by_deal: HashMap<String, Vec<(Ts, u64, usize)>> = HashMap::new();
    for (k, r) in rows.iter().enumerate() {
        let deal = value(r, opp);
        let (Ok(at), false) = (Ts::parse(&sf_time(value(r, created))), deal.is_empty()) else {
            continue;
        };
        // Rows refused for their own reasons (deleted, dated implausibly) do not make a stage entry.
        let deleted = located.get("IsDeleted").and_then(|i| checkbox(value(r, i))) == Some(true);
        let plausible = at >= crate::build::earliest_plausible() && at <= now.plus_days(1.0);
        if value(r, stage).is_empty() || deleted || !plausible {
            continue;
        }
        by_deal
            .entry(winsignal_core::sfdc::to_18(deal))
            .or_default()
            .push((at, r.line, k));
    }
    let mut out = HashMap::new();
    for rows_of_deal in by_deal.values_mut() {
        rows_of_deal.sort();
        let mut kept: Option<(usize, Ts, u64)> = None;
        for &(at, line, k) in rows_of_deal.iter() {
            match kept {
                Some((first, since, first_line)) if same(&rows[first], &rows[k]) => {
                    out.insert(
                        line,
                        format!(
                            "not a change winsignal reads: the deal was already in stage {:?} with the same close date, \
                             probability and forecast category since {since} (line {first_line}); OpportunityHistory \
                             also records changes of Amount, which winsignal does not read from the history",
                            value(&rows[k], stage)
                        ),
                    );
                }
                _ => kept = Some((k, at, line)),
            }
        }
    }
    out
}

/// Reads the rows of one export file into canonical records.
#[derive(Clone, Copy)]
struct RowReader<'a> {
    object: &'a str,
    header: &'a [String],
    located: &'a Located,
    mapping: &'a [(usize, String)],
    /// An Event ending at or before this was held; one ending after it was still ahead.
    exported_at: Ts,
    /// Task id → direction of the e-mail it logs (from `EmailMessage.csv`).
    email_directions: &'a HashMap<String, &'static str>,
    /// Activity id → its contacts from `TaskRelation.csv` / `EventRelation.csv`.
    related: &'a HashMap<String, Vec<String>>,
}

/// One row as read: its canonical fields, notes about values that could not be used, and problems
/// that refuse the row.
#[derive(Default)]
struct RowFields {
    fields: HashMap<String, String>,
    notes: Vec<(String, String)>,
    problems: Vec<String>,
}

impl RowReader<'_> {
    fn load_row(
        &self,
        ctx: &mut LoadContext<'_, '_>,
        kind: Kind,
        line: u64,
        values: &[String],
        attrs: Attrs,
    ) -> Result<()> {
        let row = self.read(values);
        if !row.problems.is_empty() {
            let id = row.fields.get(crate::build::fields_of(kind).1[0]).cloned();
            return ctx.reject(line, Some(kind), id, row.problems, values.join(","));
        }
        accept_row(ctx, kind, line, &row.fields, attrs, values, row.notes)
    }

    fn col<'v>(&self, values: &'v [String], name: &str) -> Option<&'v str> {
        let v = values.get(self.located.get(name)?)?.trim();
        (!v.is_empty()).then_some(v)
    }

    /// A time column: `None` when empty, a problem naming the column when unreadable.
    fn time(&self, values: &[String], name: &str, problems: &mut Vec<String>) -> Option<Ts> {
        let raw = self.col(values, name)?;
        match Ts::parse(&sf_time(raw)) {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(format!("field `{}`: {e}", self.name_of(name)));
                None
            }
        }
    }

    /// The column as the file spells it.
    fn name_of(&self, name: &str) -> String {
        self.located
            .get(name)
            .and_then(|i| self.header.get(i))
            .map_or_else(|| name.to_string(), |h| h.trim().to_string())
    }

    /// The canonical 18-character form of an id read from `column`, or a problem naming it.
    fn id(&self, column: &str, raw: &str, problems: &mut Vec<String>) -> String {
        match canonical_18(raw) {
            Ok(Some(long)) => long,
            Ok(None) => raw.to_string(),
            Err(e) => {
                problems.push(format!(
                    "field `{column}`: {raw:?} is not a valid Salesforce id: {e}"
                ));
                raw.to_string()
            }
        }
    }

    fn read(&self, values: &[String]) -> RowFields {
        let mut row = RowFields::default();
        let col = |name: &str| self.col(values, name);
        if col("IsDeleted").and_then(checkbox) == Some(true) {
            row.problems.push(format!(
                "`{}` is true: the record is in Salesforce's recycle bin (deleted), not a live record; not loaded",
                self.name_of("IsDeleted")
            ));
            return row;
        }
        if self.object == "Event" && col("IsChild").and_then(checkbox) == Some(true) {
            row.problems.push(format!(
                "`{}` is true: an invitee's copy of a group event; the meeting is its organiser's event; not loaded",
                self.name_of("IsChild")
            ));
            return row;
        }
        if self.object == "Event"
            && (col("IsRecurrence").and_then(checkbox) == Some(true)
                || col("GroupEventType") == Some("3"))
        {
            row.problems.push(format!(
                "`{}` is true (or `GroupEventType` is 3): the series record of a recurring event, which holds its pattern; each occurrence is its own row and meeting; not loaded",
                self.name_of("IsRecurrence")
            ));
            return row;
        }
        let f = &mut row.fields;
        for (i, field) in self.mapping {
            if let Some(v) = values.get(*i).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                let v = if ID_FIELDS.contains(&field.as_str()) {
                    self.id(self.header[*i].trim(), v, &mut row.problems)
                } else if field == "contact_ids" {
                    v.split(';')
                        .map(|c| self.id(self.header[*i].trim(), c.trim(), &mut row.problems))
                        .collect::<Vec<_>>()
                        .join(";")
                } else if TIME_FIELDS.contains(&field.as_str()) {
                    sf_time(v).into_owned()
                } else {
                    v.to_string()
                };
                f.insert(field.clone(), v);
            }
        }
        match self.object {
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
                    .and_then(checkbox)
                    .unwrap_or(stage.starts_with("closed"));
                let won = col("IsWon")
                    .and_then(checkbox)
                    .unwrap_or(stage.contains("won"));
                let outcome = match (closed, won) {
                    (false, _) => "open",
                    (true, true) => "won",
                    (true, false) => "lost",
                };
                f.entry("outcome".into()).or_insert_with(|| outcome.into());
                if let Some(d) = col("CloseDate") {
                    // The close date of an open deal is the rep's expectation; of a closed one, when.
                    let field = if closed {
                        "closed_at"
                    } else {
                        "expected_close_at"
                    };
                    f.entry(field.into())
                        .or_insert_with(|| sf_time(d).into_owned());
                }
                if let Some(c) = col("ForecastCategory") {
                    // The API value where the export has no label (`Forecast` is the label `Commit`).
                    f.entry("forecast_category".into())
                        .or_insert_with(|| c.to_string());
                }
            }
            "OpportunityHistory" => {
                if let Some(d) = col("CloseDate") {
                    f.entry("expected_close_at".into())
                        .or_insert_with(|| sf_time(d).into_owned());
                }
            }
            "Event" => self.event(values, &mut row),
            "Task" => self.task(values, &mut row),
            _ => {}
        }
        if matches!(self.object, "Task" | "Event") {
            self.links(values, &mut row);
        }
        row
    }

    /// An Event is a meeting: booked when it was created, held once its end has passed (Salesforce
    /// lists it under Activity History from then on). It is dated by its end, so that a landmark
    /// before the end sees it booked and one after sees it held.
    fn event(&self, values: &[String], row: &mut RowFields) {
        let col = |name: &str| self.col(values, name);
        let problems = &mut row.problems;
        let f = &mut row.fields;
        f.entry("type".into()).or_insert_with(|| "meeting".into());
        let start = self
            .time(values, "StartDateTime", problems)
            .or_else(|| self.time(values, "ActivityDateTime", problems));
        let minutes = match col("DurationInMinutes") {
            Some(m) => match m.parse::<f64>() {
                Ok(m) if m.is_finite() && m >= 0.0 => Some(m),
                _ => {
                    problems.push(format!(
                        "field `{}`: expected a number of minutes, found {m:?}",
                        self.name_of("DurationInMinutes")
                    ));
                    None
                }
            },
            None => None,
        };
        let end_at = self.time(values, "EndDateTime", problems);
        let all_day = col("IsAllDayEvent").and_then(checkbox) == Some(true) || start.is_none();
        let end = if all_day {
            // Held once its last day is over (all-day events are dated in UTC midnights).
            let last_day = self
                .time(values, "EndDate", problems)
                .or(end_at)
                .or_else(|| self.time(values, "ActivityDate", problems))
                .or(start);
            last_day.map(|d| Ts(d.0 - d.0.rem_euclid(MS_PER_DAY) + MS_PER_DAY))
        } else {
            end_at
                .or_else(|| Some(start?.plus_millis((minutes? * 60_000.0) as i64)))
                .or(start)
        };
        if !problems.is_empty() {
            return;
        }
        let seconds = minutes.map(|m| m * 60.0).or(match (start, end_at) {
            (Some(s), Some(e)) if e >= s => Some((e.0 - s.0) as f64 / 1000.0),
            _ => None,
        });
        if let Some(seconds) = seconds {
            f.entry("duration_s".into())
                .or_insert_with(|| seconds.to_string());
        }
        if let Some(end) = end {
            f.entry("occurred_at".into())
                .or_insert_with(|| end.to_rfc3339());
            // A configured status column wins; without one, the end decides.
            let held = end <= self.exported_at;
            f.entry("status".into())
                .or_insert_with(|| if held { "completed" } else { "scheduled" }.into());
        }
    }

    fn task(&self, values: &[String], row: &mut RowFields) {
        let col = |name: &str| self.col(values, name);
        let f = &mut row.fields;
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
        if t == "email" && !f.contains_key("direction") {
            // The EmailMessage behind a logged e-mail says which way it went; a list e-mail is
            // always sent.
            let logged = f
                .get("activity_id")
                .and_then(|id| self.email_directions.get(id));
            let direction = logged
                .copied()
                .or((subtype == "listemail").then_some("outbound"));
            if let Some(d) = direction {
                f.insert("direction".into(), d.into());
            }
        }
        if let Some(status) = col("Status") {
            let mapped = match status.to_ascii_lowercase().as_str() {
                "completed" => Some("completed"),
                "not started" | "in progress" | "waiting on someone else" | "open" => {
                    Some("scheduled")
                }
                "deferred" | "canceled" | "cancelled" => Some("canceled"),
                // A value the org added to the Status picklist: IsClosed says whether it closes
                // the task.
                _ => match col("IsClosed").and_then(checkbox) {
                    Some(true) => Some("completed"),
                    Some(false) => Some("scheduled"),
                    None => None,
                },
            };
            match mapped {
                Some(m) => {
                    f.entry("status".into()).or_insert_with(|| m.into());
                }
                None if !f.contains_key("status") => row.notes.push((
                    "unknown_status".into(),
                    format!("task Status {status:?} is not a known status and there is no IsClosed; left empty"),
                )),
                None => {}
            }
        }
        let when = col("CompletedDateTime")
            .or(col("ActivityDate"))
            .or(col("CreatedDate"));
        if let Some(w) = when {
            f.entry("occurred_at".into())
                .or_insert_with(|| sf_time(w).into_owned());
        }
    }

    /// `WhoId` (a contact, or a lead) and `WhatId` (an opportunity, an account, or another object).
    fn links(&self, values: &[String], row: &mut RowFields) {
        if let Some(who) = self.col(values, "WhoId") {
            let who = self.id(&self.name_of("WhoId"), who, &mut row.problems);
            match key_prefix(&who) {
                Some("003") => {
                    row.fields.entry("contact_ids".into()).or_insert(who);
                }
                _ => row.notes.push((
                    "who_not_a_contact".into(),
                    format!("WhoId {who} is not a contact (003…); not linked"),
                )),
            }
        }
        if let Some(what) = self.col(values, "WhatId") {
            let what = self.id(&self.name_of("WhatId"), what, &mut row.problems);
            match key_prefix(&what) {
                Some("006") => {
                    row.fields.entry("opportunity_id".into()).or_insert(what);
                }
                Some("001") => {
                    row.fields.entry("account_id".into()).or_insert(what);
                }
                _ => row.notes.push((
                    "what_not_linked".into(),
                    format!("WhatId {what} is neither an opportunity (006…) nor an account (001…); not linked"),
                )),
            }
        }
        // Shared Activities: the other contacts of the task or meeting, after the WhoId.
        let others = row
            .fields
            .get("activity_id")
            .and_then(|id| self.related.get(id));
        if let Some(others) = others {
            let mut contacts: Vec<String> = row
                .fields
                .get("contact_ids")
                .map(|c| c.split(';').map(str::to_string).collect())
                .unwrap_or_default();
            for c in others {
                if !contacts.contains(c) {
                    contacts.push(c.clone());
                }
            }
            row.fields.insert("contact_ids".into(), contacts.join(";"));
        }
    }
}

const MS_PER_DAY: i64 = 86_400_000;

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

//! The Segment connector: spec messages, one JSON object per line. `track`, `page` and `screen` become
//! product events; `identify` gives a user's e-mail and `group` the workspace (and its web domain) a
//! user belongs to, kept as product-user links that identity resolution uses to reach CRM accounts.

use std::path::Path;

use serde_json::{Map, Value};
use winsignal_core::{Kind, ProductUser, Record, Ts, ValueType};
use winsignal_store::Column;

use crate::build::{build, FieldList, FieldReader};
use crate::error::{IngestError, Result};
use crate::load::LoadContext;
use crate::read::{json_field_text, JsonLines};

fn str_at<'a>(m: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    let mut cur = m.get(path[0])?;
    for p in &path[1..] {
        cur = cur.as_object()?.get(*p)?;
    }
    cur.as_str().map(str::trim).filter(|s| !s.is_empty())
}

fn text_at(m: &Map<String, Value>, path: &[&str]) -> Option<String> {
    let mut cur = m.get(path[0])?;
    for p in &path[1..] {
        cur = cur.as_object()?.get(*p)?;
    }
    json_field_text(cur).filter(|s| !s.trim().is_empty())
}

/// What reading one line gave, handed from the parsing thread to the writing one.
#[allow(clippy::large_enum_variant)] // moved once per line through a channel; boxing would add an allocation per line
enum Parsed {
    Accepted {
        line: u64,
        message_id: Option<String>,
        record: Record,
        notes: Vec<(String, String)>,
    },
    Refused {
        line: u64,
        kind: Option<Kind>,
        message_id: Option<String>,
        problems: Vec<String>,
        raw: String,
    },
}

/// Reads one message into a record, or the reasons it cannot be one.
fn parse_message(line: u64, m: &Map<String, Value>, raw: &str, now: Ts) -> Parsed {
    let refuse = |kind, message_id, problems| Parsed::Refused {
        line,
        kind,
        message_id,
        problems,
        raw: raw.to_string(),
    };
    let msg_type = str_at(m, &["type"]).map(str::to_ascii_lowercase);
    let message_id = text_at(m, &["messageId"]);
    let timestamp = text_at(m, &["timestamp"])
        .or_else(|| text_at(m, &["originalTimestamp"]))
        .or_else(|| text_at(m, &["sentAt"]))
        .or_else(|| text_at(m, &["receivedAt"]));
    let user_id = text_at(m, &["userId"]).or_else(|| text_at(m, &["anonymousId"]));
    let mut f = FieldList::default();
    match msg_type.as_deref() {
        Some(t @ ("track" | "page" | "screen")) => {
            let event = if t == "track" {
                text_at(m, &["event"])
            } else {
                let name = text_at(m, &["name"]).or_else(|| text_at(m, &["properties", "path"]));
                Some(format!("{t}: {}", name.unwrap_or_else(|| "(unnamed)".into())))
            };
            f.put("event_id", message_id.clone());
            f.put("occurred_at", timestamp);
            f.put("event", event);
            f.put("user_id", user_id);
            f.put(
                "user_email",
                text_at(m, &["context", "traits", "email"])
                    .or_else(|| text_at(m, &["properties", "email"])),
            );
            f.put(
                "account_id",
                text_at(m, &["context", "groupId"]).or_else(|| text_at(m, &["properties", "groupId"])),
            );
            // Anything but an object (or null) is handed on as written, so the row is quarantined
            // with the same reason the canonical connector gives.
            f.put(
                "properties",
                m.get("properties").filter(|p| !p.is_null()).map(Value::to_string),
            );
            let mut reader = FieldReader::new(&f, now, None);
            if t == "track" && !f.has("event") {
                reader.problems.push("a track message needs `event`".into());
            }
            match build(Kind::ProductEvents, &mut reader, Default::default()) {
                Some(record) if reader.problems.is_empty() => Parsed::Accepted {
                    line,
                    message_id,
                    record,
                    notes: reader.notes,
                },
                _ => refuse(
                    Some(Kind::ProductEvents),
                    message_id,
                    missing_renamed(reader.problems),
                ),
            }
        }
        Some(t @ ("identify" | "group")) => {
            let mut problems = Vec::new();
            let Some(user) = user_id else {
                return refuse(
                    Some(Kind::ProductUsers),
                    message_id,
                    vec![format!("{t} message has neither `userId` nor `anonymousId`")],
                );
            };
            f.put("seen_at", Some(timestamp.clone().unwrap_or_default()));
            let mut reader = FieldReader::new(&f, now, None);
            let seen_at = if timestamp.is_none() {
                problems.push("missing `timestamp`".to_string());
                None
            } else {
                reader.ts("seen_at")
            };
            problems.append(&mut reader.problems);
            let email_raw =
                text_at(m, &["traits", "email"]).or_else(|| text_at(m, &["context", "traits", "email"]));
            let email = email_raw.as_deref().and_then(winsignal_core::identity::normalize_email);
            let mut notes = Vec::new();
            if let (Some(raw_email), None) = (&email_raw, &email) {
                notes.push((
                    "invalid_email".to_string(),
                    format!("traits.email {raw_email:?} is not an e-mail address; left empty"),
                ));
            }
            let (group_id, group_domain, group_name) = if t == "group" {
                let gid = text_at(m, &["groupId"]);
                if gid.is_none() {
                    problems.push("a group message needs `groupId`".into());
                }
                let dom_raw =
                    text_at(m, &["traits", "website"]).or_else(|| text_at(m, &["traits", "domain"]));
                let dom = dom_raw.as_deref().and_then(winsignal_core::identity::normalize_domain);
                if let (Some(r), None) = (&dom_raw, &dom) {
                    notes.push((
                        "invalid_domain".to_string(),
                        format!("group website {r:?} is not a web domain; left empty"),
                    ));
                }
                (gid, dom, text_at(m, &["traits", "name"]))
            } else {
                (None, None, None)
            };
            let link_id = message_id.clone().unwrap_or_else(|| {
                format!("{t}:{user}:{}", group_id.clone().or(email.clone()).unwrap_or_default())
            });
            match (seen_at, problems.is_empty()) {
                (Some(seen_at), true) => Parsed::Accepted {
                    line,
                    message_id,
                    record: Record::ProductUsers(ProductUser {
                        link_id,
                        user_id: user,
                        email,
                        group_id,
                        group_domain,
                        group_name,
                        seen_at,
                    }),
                    notes,
                },
                _ => refuse(Some(Kind::ProductUsers), message_id, problems),
            }
        }
        Some(other) => refuse(
            None,
            message_id,
            vec![format!(
                "Segment message type {other:?} is not read (expected track, page, screen, identify or group)"
            )],
        ),
        None => refuse(None, message_id, vec!["missing required field `type`".into()]),
    }
}

/// Loads a file of Segment messages. Lines are read and parsed on one thread while the other writes
/// what they gave, in line order.
pub fn load(ctx: &mut LoadContext<'_, '_>, path: &Path) -> Result<Vec<Column>> {
    const CHUNK: usize = 2048;
    let mut lines = JsonLines::open(path)?;
    let now = ctx.now;
    let bytes_total = lines.bytes_total;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Vec<Parsed>, u64)>(8);
        let parser = scope.spawn(move || -> Result<Vec<String>> {
            // Top-level fields in the order first seen, for the load's columns.
            let mut seen_fields: Vec<String> = Vec::new();
            let mut seen: std::collections::HashSet<String, winsignal_core::hash::FastBuild> =
                Default::default();
            let mut chunk = Vec::with_capacity(CHUNK);
            while let Some(next) = lines.next_object()? {
                chunk.push(match next {
                    Err(b) => Parsed::Refused {
                        line: b.line,
                        kind: None,
                        message_id: None,
                        problems: vec![b.reason],
                        raw: b.raw,
                    },
                    Ok((line, m, raw)) => {
                        for k in m.keys() {
                            if !seen.contains(k.as_str()) {
                                seen.insert(k.clone());
                                seen_fields.push(k.clone());
                            }
                        }
                        parse_message(line, &m, raw, now)
                    }
                });
                if chunk.len() == CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    if tx.send((full, lines.bytes_read())).is_err() {
                        return Ok(seen_fields);
                    }
                }
            }
            let _ = tx.send((chunk, lines.bytes_read()));
            Ok(seen_fields)
        });
        let write = || -> Result<()> {
            for (chunk, done) in rx {
                ctx.progress(done, bytes_total);
                for parsed in chunk {
                    match parsed {
                        Parsed::Accepted {
                            line,
                            message_id,
                            record,
                            notes,
                        } => ctx.accept(
                            line,
                            message_id.as_deref(),
                            std::slice::from_ref(&record),
                            &notes,
                        )?,
                        Parsed::Refused {
                            line,
                            kind,
                            message_id,
                            problems,
                            raw,
                        } => ctx.reject(line, kind, message_id, problems, raw)?,
                    }
                }
            }
            Ok(())
        };
        // The writer stops at its first error; dropping the receiver then stops the parser.
        let written = write();
        let parsed = parser.join().map_err(|_| IngestError::BadInput {
            path: path.to_path_buf(),
            message: "internal error: the parsing thread panicked".into(),
        })?;
        written?;
        Ok(parsed?
            .into_iter()
            .map(|name| Column {
                name,
                value_type: ValueType::Text,
            })
            .collect())
    })
}

/// Problems name Segment's fields, not the canonical ones they were mapped to.
fn missing_renamed(problems: Vec<String>) -> Vec<String> {
    problems
        .into_iter()
        .map(|p| {
            p.replace("`occurred_at`", "`timestamp`")
                .replace("`event_id`", "`messageId`")
        })
        .collect()
}

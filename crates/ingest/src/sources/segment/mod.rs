//! The Segment connector: spec messages, one JSON object per line. `track`, `page` and `screen` become
//! product events; `identify` gives a user's e-mail and `group` the workspace (and its web domain) a
//! user belongs to, kept as product-user links that identity resolution uses to reach CRM accounts.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};
use winsignal_core::{Kind, ProductUser, Record, ValueType};
use winsignal_store::Column;

use crate::build::{build, FieldReader};
use crate::error::Result;
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

pub fn load(ctx: &mut LoadContext<'_, '_>, path: &Path) -> Result<Vec<Column>> {
    let mut lines = JsonLines::open(path)?;
    let mut seen_types: Vec<(String, ValueType)> = Vec::new();
    loop {
        ctx.progress(lines.bytes_read, lines.bytes_total);
        let Some(next) = lines.next_object()? else {
            break;
        };
        let (line, m, raw) = match next {
            Ok(v) => v,
            Err(b) => {
                ctx.reject(b.line, None, None, vec![b.reason], b.raw)?;
                continue;
            }
        };
        for k in m.keys() {
            if !seen_types.iter().any(|(n, _)| n == k) {
                seen_types.push((k.clone(), ValueType::Text));
            }
        }
        let msg_type = str_at(&m, &["type"]).map(str::to_ascii_lowercase);
        let message_id = text_at(&m, &["messageId"]);
        let timestamp = text_at(&m, &["timestamp"])
            .or_else(|| text_at(&m, &["originalTimestamp"]))
            .or_else(|| text_at(&m, &["sentAt"]))
            .or_else(|| text_at(&m, &["receivedAt"]));
        let user_id = text_at(&m, &["userId"]).or_else(|| text_at(&m, &["anonymousId"]));
        let mut f: HashMap<String, String> = HashMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                f.insert(k.to_string(), v);
            }
        };
        match msg_type.as_deref() {
            Some("track" | "page" | "screen") => {
                let t = msg_type.as_deref().unwrap_or_default();
                let event = if t == "track" {
                    text_at(&m, &["event"])
                } else {
                    let name = text_at(&m, &["name"]).or_else(|| text_at(&m, &["properties", "path"]));
                    Some(format!("{t}: {}", name.unwrap_or_else(|| "(unnamed)".into())))
                };
                put("event_id", message_id.clone());
                put("occurred_at", timestamp);
                put("event", event);
                put("user_id", user_id);
                put("user_email", text_at(&m, &["context", "traits", "email"]).or_else(|| text_at(&m, &["properties", "email"])));
                put("account_id", text_at(&m, &["context", "groupId"]).or_else(|| text_at(&m, &["properties", "groupId"])));
                put("properties", m.get("properties").filter(|p| p.is_object()).map(Value::to_string));
                let mut reader = FieldReader::new(&f, ctx.now, None);
                if t == "track" && !f.contains_key("event") {
                    reader.problems.push("a track message needs `event`".into());
                }
                match build(Kind::ProductEvents, &mut reader, Default::default()) {
                    Some(rec) if reader.problems.is_empty() => {
                        ctx.accept(line, message_id.as_deref(), &[rec], &reader.notes)?
                    }
                    _ => ctx.reject(line, Some(Kind::ProductEvents), message_id, missing_renamed(reader.problems), raw)?,
                }
            }
            Some(t @ ("identify" | "group")) => {
                let mut problems = Vec::new();
                let Some(user) = user_id else {
                    ctx.reject(line, Some(Kind::ProductUsers), message_id, vec![format!("{t} message has neither `userId` nor `anonymousId`")], raw)?;
                    continue;
                };
                f.insert("seen_at".into(), timestamp.clone().unwrap_or_default());
                let mut reader = FieldReader::new(&f, ctx.now, None);
                let seen_at = if timestamp.is_none() {
                    problems.push("missing `timestamp`".to_string());
                    None
                } else {
                    reader.ts("seen_at")
                };
                problems.append(&mut reader.problems);
                let email_raw = text_at(&m, &["traits", "email"]).or_else(|| text_at(&m, &["context", "traits", "email"]));
                let email = email_raw.as_deref().and_then(winsignal_core::identity::normalize_email);
                let mut notes = Vec::new();
                if let (Some(raw_email), None) = (&email_raw, &email) {
                    notes.push(("invalid_email".to_string(), format!("traits.email {raw_email:?} is not an e-mail address; left empty")));
                }
                let (group_id, group_domain, group_name) = if t == "group" {
                    let gid = text_at(&m, &["groupId"]);
                    if gid.is_none() {
                        problems.push("a group message needs `groupId`".into());
                    }
                    let dom_raw = text_at(&m, &["traits", "website"]).or_else(|| text_at(&m, &["traits", "domain"]));
                    let dom = dom_raw.as_deref().and_then(winsignal_core::identity::normalize_domain);
                    if let (Some(r), None) = (&dom_raw, &dom) {
                        notes.push(("invalid_domain".to_string(), format!("group website {r:?} is not a web domain; left empty")));
                    }
                    (gid, dom, text_at(&m, &["traits", "name"]))
                } else {
                    (None, None, None)
                };
                let link_id = message_id.clone().unwrap_or_else(|| {
                    format!("{t}:{user}:{}", group_id.clone().or(email.clone()).unwrap_or_default())
                });
                match (seen_at, problems.is_empty()) {
                    (Some(seen_at), true) => {
                        let rec = Record::ProductUsers(ProductUser {
                            link_id,
                            user_id: user,
                            email,
                            group_id,
                            group_domain,
                            group_name,
                            seen_at,
                        });
                        ctx.accept(line, message_id.as_deref(), &[rec], &notes)?;
                    }
                    _ => ctx.reject(line, Some(Kind::ProductUsers), message_id, problems, raw)?,
                }
            }
            Some(other) => ctx.reject(
                line,
                None,
                message_id,
                vec![format!("Segment message type {other:?} is not read (expected track, page, screen, identify or group)")],
                raw,
            )?,
            None => ctx.reject(line, None, message_id, vec!["missing required field `type`".into()], raw)?,
        }
    }
    Ok(seen_types
        .into_iter()
        .map(|(name, value_type)| Column { name, value_type })
        .collect())
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

//! Field-level provenance: which version of a record (and so which load, file and line) set each of its
//! fields. A record built from two files (a deals file, then a "closed deals" file updating it through a
//! mapping's `update = true` output) says field by field which file each value came from.

use serde_json::Value;
use winsignal_store::StoredRecord;

/// The fields of a record as named in its JSON form (`attrs.<name>` for custom attributes), with values;
/// absent and null fields are left out.
fn flat_fields(record: &winsignal_core::Record) -> Vec<(String, Value)> {
    let Ok(Value::Object(outer)) = serde_json::to_value(record) else {
        return Vec::new();
    };
    let Some(Value::Object(body)) = outer.get("record") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, value) in body {
        match (name.as_str(), value) {
            (_, Value::Null) => {}
            ("attrs", Value::Object(attrs)) => {
                for (a, v) in attrs {
                    out.push((format!("attrs.{a}"), v.clone()));
                }
            }
            _ => out.push((name.clone(), value.clone())),
        }
    }
    out
}

/// For each version (oldest first, as [`winsignal_store::Store::versions`] gives them), the fields it
/// set: those whose value differs from the version before (every field present, for the first). A field
/// a version cleared is listed as set by it too. The current value of a field comes from the latest
/// version listing it.
pub fn fields_set(versions: &[StoredRecord]) -> Vec<Vec<String>> {
    let mut out = Vec::with_capacity(versions.len());
    let mut previous: Vec<(String, Value)> = Vec::new();
    for v in versions {
        let now = flat_fields(&v.record);
        let mut set: Vec<String> = now
            .iter()
            .filter(|(name, value)| !previous.iter().any(|(n, p)| n == name && p == value))
            .map(|(name, _)| name.clone())
            .collect();
        set.extend(
            previous
                .iter()
                .filter(|(name, _)| !now.iter().any(|(n, _)| n == name))
                .map(|(name, _)| name.clone()),
        );
        set.sort();
        out.push(set);
        previous = now;
    }
    out
}

//! Overlays: the fields an update source (a mapping output with `update = true`) set on a record, kept in
//! the store so that a later load from the record's other sources (reloading the deals file a "closed
//! deals" file updated) keeps them. Every entity record a load writes gets the other sources' overlays
//! on top, oldest first, then the load's own: so reloading either file, changed or not, gives the same
//! record as loading both once, and an unchanged reload writes nothing.

use serde_json::{Map, Value};
use winsignal_core::Record;

/// The overlay of one update row: the named canonical fields of `record` (as in its JSON form; `null`
/// when empty) and the named custom attributes, as a JSON object.
pub fn fields_json(record: &Record, fields: &[String], attrs: &[String]) -> Option<String> {
    let Ok(Value::Object(outer)) = serde_json::to_value(record) else {
        return None;
    };
    let Some(Value::Object(body)) = outer.get("record") else {
        return None;
    };
    let mut out = Map::new();
    for f in fields {
        out.insert(f.clone(), body.get(f).cloned().unwrap_or(Value::Null));
    }
    if !attrs.is_empty() {
        let held = body.get("attrs").and_then(Value::as_object);
        let mut a = Map::new();
        for name in attrs {
            if let Some(v) = held.and_then(|h| h.get(name)) {
                a.insert(name.clone(), v.clone());
            }
        }
        out.insert("attrs".into(), Value::Object(a));
    }
    serde_json::to_string(&Value::Object(out)).ok()
}

fn merge(body: &mut Map<String, Value>, overlay: &str) -> Result<(), String> {
    let Value::Object(fields) =
        serde_json::from_str::<Value>(overlay).map_err(|e| format!("stored overlay: {e}"))?
    else {
        return Err("stored overlay is not a JSON object".into());
    };
    for (name, value) in fields {
        match (name.as_str(), value) {
            ("attrs", Value::Object(attrs)) => {
                let held = body
                    .entry("attrs")
                    .or_insert_with(|| Value::Object(Map::new()));
                if !held.is_object() {
                    *held = Value::Object(Map::new());
                }
                if let Some(h) = held.as_object_mut() {
                    h.extend(attrs);
                }
            }
            (_, value) => {
                body.insert(name, value);
            }
        }
    }
    Ok(())
}

/// `record` with the overlays of every source but `own_source` on top (in their order), then
/// `own` (the overlay the row being written sets, if any). `None` when nothing changes.
pub fn apply(
    record: &Record,
    overlays: &[(String, String)],
    own_source: &str,
    own: Option<&str>,
) -> Result<Option<Record>, String> {
    let others: Vec<&str> = overlays
        .iter()
        .filter(|(source, _)| source != own_source)
        .map(|(_, fields)| fields.as_str())
        .collect();
    if others.is_empty() && own.is_none() {
        return Ok(None);
    }
    let mut outer = serde_json::to_value(record).map_err(|e| e.to_string())?;
    let Some(Value::Object(body)) = outer.get_mut("record") else {
        return Err("a record without a body".into());
    };
    for fields in others.into_iter().chain(own) {
        merge(body, fields)?;
    }
    let merged: Record =
        serde_json::from_value(outer).map_err(|e| format!("overlaid record: {e}"))?;
    Ok((merged != *record).then_some(merged))
}

#[cfg(test)]
mod tests {
    use super::*;
    use winsignal_core::{Opportunity, Outcome, Ts};

    fn opp(outcome: Outcome, amount: Option<f64>) -> Record {
        Record::Opportunities(Opportunity {
            opportunity_id: "O1".into(),
            account_id: None,
            rep_id: None,
            name: None,
            opp_type: None,
            lead_source: None,
            amount,
            currency: None,
            created_at: Ts(0),
            closed_at: None,
            outcome,
            stage: None,
            crm: Default::default(),
            attrs: Default::default(),
        })
    }

    #[test]
    fn other_sources_then_the_own_overlay_win_in_order() {
        let base = opp(Outcome::Open, Some(10.0));
        let won = fields_json(&opp(Outcome::Won, Some(99.0)), &["outcome".into()], &[]).unwrap();
        let lost = fields_json(&opp(Outcome::Lost, None), &["outcome".into()], &[]).unwrap();
        let overlays = vec![
            ("a".to_string(), won.clone()),
            ("b".to_string(), lost.clone()),
        ];
        assert_eq!(
            apply(&base, &overlays, "base", None).unwrap(),
            Some(opp(Outcome::Lost, Some(10.0)))
        );
        // The load of source a writing its own (new) overlay wins over b's.
        assert_eq!(
            apply(&base, &overlays, "a", Some(&won)).unwrap(),
            Some(opp(Outcome::Won, Some(10.0)))
        );
        assert_eq!(apply(&base, &[], "base", None).unwrap(), None);
    }
}

//! The catalog made concrete for a workspace: categorical definitions split into levels, an attribute
//! no record has refused with where its column went, and the note for a catalog that reads nothing.

use anyhow::Result;
use winsignal_core::Kind;
use winsignal_features::catalog::{Catalog, Entity};
use winsignal_features::levels::{self, AbsentAttribute};
use winsignal_features::Context;
use winsignal_store::StoreRead;

use crate::pipeline::Computed;
use crate::text::n;

/// The catalog for this workspace ([`levels::resolve`]); an attribute no opportunity has is an error
/// that also says when a loaded file had a column of that name that a mapping read into a canonical
/// field instead of keeping it as an attribute.
pub fn resolve(store: &dyn StoreRead, catalog: &Catalog, ctx: &Context) -> Result<Catalog> {
    resolve_for(store, catalog, ctx, &[])
}

/// [`resolve`] with the levels of the categorical definitions a model was trained on (`versions`: the
/// `id@version` names it records), so that a level new data made common does not change its columns.
pub fn resolve_for(
    store: &dyn StoreRead,
    catalog: &Catalog,
    ctx: &Context,
    versions: &[String],
) -> Result<Catalog> {
    levels::resolve_pinned(catalog, ctx, &levels::pinned_levels(versions)).map_err(|e| {
        match consumed_column(store, &e) {
            Some(hint) if e.message.ends_with('?') => anyhow::anyhow!("{e} {hint}"),
            Some(hint) => anyhow::anyhow!("{e}. {hint}"),
            None => anyhow::anyhow!("{e}"),
        }
    })
}

/// "The column … of FILE was read by the mapping into opportunities.outcome …" when a load of the
/// attribute's entity had a column of that name (ignoring case, `_` and spaces) that it did not keep as
/// an attribute; the field comes from the load's recipe (`fields`, written by mapping loads).
fn consumed_column(store: &dyn StoreRead, e: &AbsentAttribute) -> Option<String> {
    let kind = match e.attribute.entity {
        Entity::Opportunity => Kind::Opportunities,
        Entity::Account => Kind::Accounts,
    };
    let key = |s: &str| {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let wanted = key(&e.attribute.name);
    let loads = store.loads().ok()?;
    let (load, column) = loads.iter().rev().find_map(|l| {
        if !l.kinds.contains(&kind) {
            return None;
        }
        let c = l.columns.iter().find(|c| key(&c.name) == wanted)?;
        Some((l, c.name.clone()))
    })?;
    // `kind.field=Column|Other; …`: the fields this column fed.
    let fields: Vec<&str> = load
        .recipe
        .get("fields")
        .map(|f| {
            f.split("; ")
                .filter_map(|part| {
                    let (field, columns) = part.split_once('=')?;
                    columns.split('|').any(|c| c == column).then_some(field)
                })
                .collect()
        })
        .unwrap_or_default();
    let into = if fields.is_empty() {
        format!("a canonical field of the {}", e.attribute.entity.as_str())
    } else {
        fields.join(" and ")
    };
    // Canonical fields a catalog can read as attributes.
    let readable: Vec<String> = fields
        .iter()
        .filter_map(|f| match *f {
            "opportunities.amount" => Some("opportunity.amount"),
            "opportunities.opp_type" | "opportunities.type" => Some("opportunity.type"),
            "opportunities.lead_source" => Some("opportunity.lead_source"),
            "opportunities.rep_id" => Some("opportunity.rep_id"),
            "accounts.industry" => Some("account.industry"),
            "accounts.segment" => Some("account.segment"),
            "accounts.employees" => Some("account.employees"),
            "accounts.annual_revenue" => Some("account.annual_revenue"),
            "accounts.country" => Some("account.country"),
            _ => None,
        })
        .map(String::from)
        .collect();
    let instead = if readable.is_empty() {
        "the catalog cannot read it as an attribute (the outcome, ids and dates are the deal's own); map the column a second time under another name to keep it as one too".to_string()
    } else {
        format!(
            "read {} instead, or map the column a second time under another name",
            readable.join(" or ")
        )
    };
    Some(format!(
        "The column {column:?} of {} (source {}) was read by the {} into {into}, not kept as an attribute: {instead}",
        load.path,
        load.source,
        if load.format == "mapping" { "mapping" } else { "connector" },
    ))
}

/// A sentence for `discover` when no definition of the catalog has a value that varies across the
/// workspace's snapshots: the catalog reads nothing here (typically the default catalog on a flat file
/// with no activities, product events or stage history).
pub fn reads_nothing(c: &Computed) -> Option<String> {
    if c.snapshots.is_empty() {
        return None;
    }
    let varies = |i: usize| {
        let mut defined = c
            .snapshots
            .iter()
            .map(|s| s.values[i])
            .filter(|v| v.is_finite());
        match defined.next() {
            Some(first) => defined.any(|v| v != first),
            None => false,
        }
    };
    if (0..c.catalog.behaviours.len()).any(varies) {
        return None;
    }
    Some(format!(
        "note: the catalog {} reads nothing in this workspace: none of its {} definitions has a value that varies across the {} snapshots (they read activities, product events, touches, tickets, transcripts or attributes this data does not have), so every finding is \"not enough data\". For a catalog written from the workspace's own attributes, run `winsignal behaviours suggest --out catalog.toml`, review it, then `winsignal discover --catalog catalog.toml`.",
        c.catalog.name,
        c.catalog.behaviours.len(),
        n(c.snapshots.len() as u64)
    ))
}

/// Whether a value is a placeholder for "no value": no letter or digit at all (`-`, `--`, `?`, `.`),
/// a "Select…" prompt, or one of the usual words.
pub fn is_placeholder(value: &str) -> bool {
    const WORDS: &[&str] = &[
        "n/a",
        "na",
        "#n/a",
        "unknown",
        "none",
        "null",
        "nil",
        "(blank)",
        "blank",
        "(none)",
        "not specified",
        "not available",
        "unspecified",
        "undefined",
    ];
    let v = value.trim().to_lowercase();
    let letters: String = v.chars().filter(|c| c.is_alphanumeric()).collect();
    letters.is_empty() || letters.starts_with("select") || WORDS.contains(&v.as_str())
}

//! A catalog made concrete for one workspace: each categorical definition (`aggregate = "levels"`)
//! becomes one yes/no definition per level of its attribute, the levels found from the data (rare ones
//! pooled); and an attribute that no opportunity has is refused by name instead of reading as
//! "not enough data: 0 with and 0 without" everywhere.
//!
//! The rules are documented in docs/behaviours.md ("Categorical attributes").

use crate::catalog::{
    Aggregate, AttributeRef, Catalog, Control, Definition, LevelOf, Reads, Threshold,
};
use crate::context::Context;
use crate::eval::is_missing;
use std::collections::BTreeMap;
use winsignal_core::AttrValue;

/// A level held by fewer opportunities than this is pooled into [`OTHER_LEVEL`]: discovery needs at
/// least 30 deals with and without a behaviour (`discover`'s `min_group`), so a rarer level could
/// never have a finding of its own.
pub const MIN_LEVEL_DEALS: usize = 30;
/// At most this many levels are kept on their own (the most common); the rest are pooled.
pub const MAX_LEVELS: usize = 40;
/// The name of the pooled level.
pub const OTHER_LEVEL: &str = "(other)";

/// An attribute of a definition or control that no opportunity has: misspelt, absent from the data, or
/// read by a mapping into a canonical field instead of being kept as an attribute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct AbsentAttribute {
    pub file: String,
    pub line: usize,
    /// `behaviour[<id>].reads.attribute` or `controls`.
    pub field: String,
    pub attribute: AttributeRef,
    pub message: String,
}

/// One value of an attribute and how many opportunities hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelCount {
    /// The value as most opportunities spell it (levels are told apart trimmed and ignoring case).
    pub label: String,
    pub deals: usize,
}

/// What an attribute holds over every opportunity of the workspace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Profile {
    /// Opportunities with a value that is not a missing marker.
    pub present: usize,
    pub numbers: usize,
    pub booleans: usize,
    pub dates: usize,
    pub texts: usize,
    /// Distinct values (text, numbers, booleans and dates as text), most common first.
    pub levels: Vec<LevelCount>,
    /// Opportunities whose value is one of the missing markers (or blank).
    pub marked_missing: usize,
}

impl Profile {
    /// Whether every present value is a number.
    pub fn is_numeric(&self) -> bool {
        self.present > 0 && self.numbers == self.present
    }
}

/// Counts the values of `attribute` over every opportunity; `missing` values (markers) are counted
/// apart.
pub fn profile(ctx: &Context, attribute: &AttributeRef, missing: &[String]) -> Profile {
    let mut p = Profile::default();
    // Lower-cased trimmed key → (spelling → count).
    let mut groups: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for opp in 0..ctx.opps.len() as u32 {
        let Some(value) = ctx.attribute(opp, attribute.entity, &attribute.name) else {
            continue;
        };
        if is_missing(&value, missing) {
            p.marked_missing += 1;
            continue;
        }
        p.present += 1;
        let label = match &value {
            AttrValue::Number(x) => {
                p.numbers += 1;
                format!("{x}")
            }
            AttrValue::Boolean(b) => {
                p.booleans += 1;
                b.to_string()
            }
            AttrValue::Date(d) => {
                p.dates += 1;
                d.to_date_string()
            }
            AttrValue::Text(t) => {
                p.texts += 1;
                t.trim().to_string()
            }
        };
        *groups
            .entry(label.to_lowercase())
            .or_default()
            .entry(label)
            .or_default() += 1;
    }
    p.levels = groups
        .into_values()
        .map(|spellings| {
            let deals = spellings.values().sum();
            let label = spellings
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(l, _)| l.clone())
                .unwrap_or_default();
            LevelCount { label, deals }
        })
        .collect();
    p.levels
        .sort_by(|a, b| b.deals.cmp(&a.deals).then(a.label.cmp(&b.label)));
    p
}

/// The levels a categorical definition is split into: those held by at least [`MIN_LEVEL_DEALS`]
/// opportunities (at most [`MAX_LEVELS`], the most common), most common first, and whether any
/// opportunity is left for [`OTHER_LEVEL`] (with the levels pooled there).
pub fn split(profile: &Profile) -> (Vec<LevelCount>, Vec<LevelCount>) {
    let (kept, pooled): (Vec<_>, Vec<_>) = profile
        .levels
        .iter()
        .cloned()
        .enumerate()
        .partition(|(i, l)| l.deals >= MIN_LEVEL_DEALS && *i < MAX_LEVELS);
    (
        kept.into_iter().map(|(_, l)| l).collect(),
        pooled.into_iter().map(|(_, l)| l).collect(),
    )
}

/// Every attribute name opportunities (and their accounts) have in this workspace, as
/// `opportunity.<name>` / `account.<name>`, sorted.
pub fn attribute_names(ctx: &Context) -> Vec<String> {
    let mut names: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for o in &ctx.opps {
        for k in o.attrs.keys() {
            names.insert(format!("opportunity.{k}"));
        }
        let canonical = [
            ("amount", o.amount.is_some()),
            ("type", o.opp_type.is_some()),
            ("lead_source", o.lead_source.is_some()),
            ("rep_id", o.rep.is_some()),
        ];
        for (k, present) in canonical {
            if present {
                names.insert(format!("opportunity.{k}"));
            }
        }
    }
    for a in &ctx.accounts {
        for k in a.attrs.keys() {
            names.insert(format!("account.{k}"));
        }
        let canonical = [
            ("employees", a.employees.is_some()),
            ("annual_revenue", a.annual_revenue.is_some()),
            ("industry", a.industry.is_some()),
            ("country", a.country.is_some()),
            ("segment", a.segment.is_some()),
        ];
        for (k, present) in canonical {
            if present {
                names.insert(format!("account.{k}"));
            }
        }
    }
    names.into_iter().collect()
}

/// The catalog for this workspace: every categorical definition replaced, in place, by one yes/no
/// definition per level (`<id>=<level>`, version and wording of the categorical one, `== 1`), the
/// pooled level last as `<id>=(other)`; every other definition unchanged. An attribute that no
/// opportunity has (in a definition or a control) is an error naming it, with the attributes of the
/// same entity that are closest to it. A workspace without opportunities refuses nothing.
pub fn resolve(catalog: &Catalog, ctx: &Context) -> Result<Catalog, AbsentAttribute> {
    resolve_pinned(catalog, ctx, &BTreeMap::new())
}

/// The levels of each categorical definition in a list of `id@version` names (`industry=Retail@1`, as a
/// win model records the definitions it was trained on): categorical id → its levels, in order.
pub fn pinned_levels(versions: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for v in versions {
        let name = v.rsplit_once('@').map_or(v.as_str(), |(n, _)| n);
        if let Some((id, level)) = name.split_once('=') {
            out.entry(id.to_string())
                .or_default()
                .push(level.to_string());
        }
    }
    out
}

/// [`resolve`], with the levels of the categorical definitions named in `pinned` taken from it instead
/// of the data (a win model scores with the levels it was trained on: a level that new data made
/// common enough, or a new value, counts as [`OTHER_LEVEL`] when the model had one).
pub fn resolve_pinned(
    catalog: &Catalog,
    ctx: &Context,
    pinned: &BTreeMap<String, Vec<String>>,
) -> Result<Catalog, AbsentAttribute> {
    let known = attribute_names(ctx);
    let absent = |attribute: &AttributeRef, line: usize, field: String| -> AbsentAttribute {
        let wanted = format!("{}.{}", attribute.entity.as_str(), attribute.name);
        let similar = closest(&wanted, &known);
        let mut message = format!(
            "no opportunity in this workspace has the attribute {wanted:?} (it is missing from all {} of them)",
            ctx.opps.len()
        );
        if !similar.is_empty() {
            message.push_str(&format!("; did you mean {}?", similar.join(" or ")));
        } else if known.is_empty() {
            message.push_str("; the opportunities have no attributes at all");
        }
        AbsentAttribute {
            file: catalog.file.clone(),
            line,
            field,
            attribute: attribute.clone(),
            message,
        }
    };
    let has_any = |a: &AttributeRef| {
        ctx.opps.is_empty()
            || (0..ctx.opps.len() as u32).any(|o| ctx.attribute(o, a.entity, &a.name).is_some())
    };
    for c in &catalog.controls {
        if let Control::Attribute(a) = c {
            if !has_any(a) {
                return Err(absent(a, 1, "controls".into()));
            }
        }
    }
    let mut behaviours = Vec::with_capacity(catalog.behaviours.len());
    for d in &catalog.behaviours {
        let Reads::Attribute {
            attribute, missing, ..
        } = &d.reads
        else {
            behaviours.push(d.clone());
            continue;
        };
        if !has_any(attribute) {
            return Err(absent(
                attribute,
                d.line,
                format!("behaviour[{}].reads.attribute", d.id),
            ));
        }
        if !d.is_categorical() {
            behaviours.push(d.clone());
            continue;
        }
        let p = profile(ctx, attribute, missing);
        let (kept, pooled) = match pinned.get(&d.id) {
            None => split(&p),
            Some(levels) => {
                let deals = |label: &str| {
                    p.levels
                        .iter()
                        .find(|l| l.label.eq_ignore_ascii_case(label))
                        .map_or(0, |l| l.deals)
                };
                let kept: Vec<LevelCount> = levels
                    .iter()
                    .filter(|l| *l != OTHER_LEVEL)
                    .map(|l| LevelCount {
                        label: l.clone(),
                        deals: deals(l),
                    })
                    .collect();
                let pooled: Vec<LevelCount> = if levels.iter().any(|l| l == OTHER_LEVEL) {
                    p.levels
                        .iter()
                        .filter(|l| !kept.iter().any(|k| k.label.eq_ignore_ascii_case(&l.label)))
                        .cloned()
                        .collect()
                } else {
                    Vec::new()
                };
                (kept, pooled)
            }
        };
        let level = |label: &str,
                     equals: Option<String>,
                     other_than: Option<Vec<String>>,
                     about: String| {
            Definition {
                id: format!("{}={label}", d.id),
                title: format!("{} = {label}", d.title),
                description: format!("{} {about}", d.description),
                reads: Reads::Attribute {
                    attribute: attribute.clone(),
                    equals,
                    missing: missing.clone(),
                    other_than,
                },
                aggregate: Aggregate::Value,
                threshold: Some(Threshold::Equals { value: 1.0 }),
                level: Some(LevelOf {
                    definition: d.id.clone(),
                    level: label.to_string(),
                }),
                ..d.clone()
            }
        };
        for l in &kept {
            behaviours.push(level(
                &l.label,
                Some(l.label.clone()),
                None,
                format!("Level {:?}: {} deals.", l.label, l.deals),
            ));
        }
        let pinned_other = pinned
            .get(&d.id)
            .is_some_and(|l| l.iter().any(|l| l == OTHER_LEVEL));
        if !pooled.is_empty() || pinned_other {
            let deals: usize = pooled.iter().map(|l| l.deals).sum();
            let mut names: Vec<String> = pooled
                .iter()
                .take(8)
                .map(|l| format!("{:?}", l.label))
                .collect();
            if pooled.len() > 8 {
                names.push(format!("and {} more", pooled.len() - 8));
            }
            behaviours.push(level(
                OTHER_LEVEL,
                None,
                Some(kept.iter().map(|l| l.label.clone()).collect()),
                format!(
                    "Level {OTHER_LEVEL:?}: the {} rarer levels pooled, {deals} deals: {}.",
                    pooled.len(),
                    names.join(", ")
                ),
            ));
        }
    }
    Ok(Catalog {
        behaviours,
        ..catalog.clone()
    })
}

/// Up to three names of `known` closest to `wanted` (same entity first; edit distance at most a third
/// of the name, or one containing the other ignoring case).
fn closest(wanted: &str, known: &[String]) -> Vec<String> {
    let w = wanted.to_lowercase();
    let (w_entity, w_name) = w.split_once('.').unwrap_or(("", w.as_str()));
    let mut scored: Vec<(usize, &String)> = known
        .iter()
        .filter_map(|k| {
            let lk = k.to_lowercase();
            let (k_entity, k_name) = lk.split_once('.').unwrap_or(("", lk.as_str()));
            let d = edit_distance(w_name, k_name);
            let near = d <= (w_name.len().max(3) / 3).max(1)
                || (k_name.len() >= 3 && (k_name.contains(w_name) || w_name.contains(k_name)));
            near.then_some((d + usize::from(k_entity != w_entity) * 10, k))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, k)| k.clone()).collect()
}

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`: the optimal string
/// alignment distance, so that a transposed pair ("jbo") is one typo.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * w + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut best = (d[(i - 1) * w + j] + 1)
                    .min(d[i * w + j - 1] + 1)
                    .min(d[(i - 1) * w + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    best = best.min(d[(i - 2) * w + j - 2] + 1);
                }
                best
            };
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspellings_find_their_attribute() {
        let known: Vec<String> = ["opportunity.job", "opportunity.marital", "account.industry"]
            .map(String::from)
            .to_vec();
        assert_eq!(closest("opportunity.jbo", &known), ["opportunity.job"]);
        assert_eq!(
            closest("opportunity.Marital", &known),
            ["opportunity.marital"]
        );
        assert_eq!(
            closest("opportunity.industry", &known),
            ["account.industry"]
        );
        assert!(closest("opportunity.zzzzzz", &known).is_empty());
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}

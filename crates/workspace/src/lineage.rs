//! What a behaviour's value at a landmark was computed from: `explain-feature`.

use anyhow::{bail, Result};
use serde::Serialize;
use winsignal_core::Ts;
use winsignal_features::catalog::{Catalog, Definition};
use winsignal_features::snapshot;
use winsignal_store::Store;

use crate::pipeline::Reading;
use crate::Progress;

/// A definition's value for a deal at a landmark, with every event it was computed from and its
/// source row.
#[derive(Serialize)]
pub struct FeatureExplained {
    pub opportunity_id: String,
    pub feature: String,
    pub version: u32,
    /// The landmark's name (`created`, `stage:Discovery`, `age:30d`, or `at <time>`).
    pub landmark: String,
    pub as_of: String,
    pub value: Option<f64>,
    pub behaviour: Option<bool>,
    pub contributions: Vec<winsignal_features::lineage::Contribution>,
    /// The definition, for the text rendering.
    #[serde(skip)]
    pub definition: Definition,
}

/// Explains `feature` (an id of `catalog`, made concrete for the workspace) for `opportunity` at
/// `landmark` (a landmark name of the deal or an RFC 3339 time; the deal's latest landmark when
/// `None`). `data` names the workspace in errors.
pub fn explain_feature(
    store: &dyn Store,
    catalog: &Catalog,
    opportunity: &str,
    feature: &str,
    landmark: Option<&str>,
    data: &std::path::Path,
    progress: &mut dyn Progress,
) -> Result<FeatureExplained> {
    let reading = Reading::open(store)?;
    let ctx = &reading.ctx;
    let catalog = crate::catalogs::resolve(reading.read(), catalog, ctx)?;
    let Some(def) = catalog.behaviours.iter().find(|d| d.id == feature) else {
        let ids: Vec<&str> = catalog.behaviours.iter().map(|d| d.id.as_str()).collect();
        bail!(
            "no feature {feature:?} in {}; the catalog has: {}",
            catalog.name,
            ids.join(", ")
        );
    };
    let Some(opp) = ctx.opportunity(opportunity) else {
        bail!(
            "no opportunity with id {opportunity:?} in {}",
            data.display()
        );
    };
    let engine = reading.engine(progress)?;
    let horizon = snapshot::horizon(&engine);
    let lms = snapshot::landmarks(ctx, &catalog, horizon);
    let mine: Vec<_> = lms.items.iter().filter(|l| l.opp == opp).collect();
    let (name, as_of) = match landmark {
        None => match mine.last() {
            Some(l) => (lms.names[l.name as usize].clone(), l.as_of),
            None => bail!(
                "opportunity {} has no landmarks (it closed at creation or after the data ends)",
                opportunity
            ),
        },
        Some(l) => match mine.iter().find(|x| lms.names[x.name as usize] == l) {
            Some(x) => (l.to_string(), x.as_of),
            None => match Ts::parse(l) {
                Ok(t) => (format!("at {}", t.to_rfc3339()), t),
                Err(_) => {
                    let names: Vec<&str> = mine
                        .iter()
                        .map(|x| lms.names[x.name as usize].as_str())
                        .collect();
                    bail!(
                        "--landmark {l:?}: expected one of this opportunity's landmarks ({}) or an RFC 3339 time",
                        names.join(", ")
                    )
                }
            },
        },
    };
    let mut ex = winsignal_features::lineage::explain(&engine, def, opp, as_of);
    winsignal_features::lineage::attach_origins(reading.read(), &mut ex.contributions)?;
    Ok(FeatureExplained {
        opportunity_id: ctx.opps[opp as usize].id.clone(),
        feature: def.id.clone(),
        version: def.version,
        landmark: name,
        as_of: as_of.to_rfc3339(),
        value: ex.value.is_finite().then_some(ex.value),
        behaviour: ex.behaviour,
        contributions: ex.contributions,
        definition: def.clone(),
    })
}

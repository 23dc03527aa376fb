//! Scores of open deals with their explanations, the evidence behind next-best actions, and the order
//! of risk.

use std::path::Path;

use anyhow::{bail, Result};
use serde::Serialize;
use winsignal_core::Ts;
use winsignal_features::snapshot;
use winsignal_features::{Catalog, Context};
use winsignal_score::explain::{self, DealScore};
use winsignal_score::model::WinModel;
use winsignal_store::Store;

use crate::pipeline::Computed;
use crate::Progress;

/// Scores every deal open at `as_of` (the end of the data when not given).
pub fn scores(
    engine: &winsignal_features::Engine,
    catalog: &Catalog,
    model: &WinModel,
    as_of: Option<Ts>,
    only: Option<&str>,
) -> Result<(Ts, Vec<DealScore>, f64)> {
    let as_of = as_of.unwrap_or_else(|| snapshot::horizon(engine).plus_millis(1));
    let started = std::time::Instant::now();
    let mut snaps = winsignal_score::dataset::open_snapshots(engine, catalog, as_of);
    if let Some(id) = only {
        snaps.retain(|s| s.opportunity_id == id);
    }
    let scored = explain::score(model, catalog, engine, &snaps)?;
    Ok((as_of, scored, started.elapsed().as_secs_f64()))
}

/// The discovery whose significant win effects `train` saves in the model as the evidence of next-best
/// actions: winning only, without rules.
pub fn evidence_discovery(c: &Computed) -> Result<winsignal_discover::Discovery> {
    Ok(winsignal_discover::discover(
        &c.catalog,
        &c.snapshots,
        &winsignal_discover::Options {
            outcomes: vec![winsignal_discover::Outcome::Win],
            rules: false,
            timing: c.timing.clone(),
            history_flags: c.history_flags.clone(),
            ..Default::default()
        },
    )?)
}

/// Accounts without an open deal ranked for outreach as of the end of the data (`winsignal accounts
/// --prioritise`, `GET /v1/accounts`).
pub fn account_priorities(
    engine: &winsignal_features::Engine,
) -> winsignal_score::accounts::Prioritisation {
    use winsignal_score::accounts;
    let as_of = snapshot::horizon(engine);
    let inputs = accounts::inputs_from_engine(engine, as_of);
    accounts::prioritise(&inputs, as_of, &accounts::Options::default())
}

/// The open deals most at risk first, as `print_at_risk` lists them (the rule:
/// `explain::rank_by_risk`).
pub fn by_risk(scored: &[DealScore]) -> Vec<&DealScore> {
    explain::rank_by_risk(scored)
        .deals
        .iter()
        .map(|r| &scored[r.index])
        .collect()
}

/// The factor pulling a deal's P(win) down the most, as `print_at_risk` names it.
pub fn biggest_drag(d: &DealScore) -> Option<&explain::Factor> {
    d.factors
        .iter()
        // A factor that rounds to 0 points is not shown as a drag ("-0").
        .filter(|f| f.logit < 0.0 && f.points <= -0.5)
        .max_by(|a, b| b.logit.total_cmp(&a.logit))
}

/// A saved win model with what applying it reads: one snapshot of the store, its entities, and the
/// model's catalog made concrete with the levels the model was trained on.
pub(crate) struct ModelReading<'s> {
    pub(crate) snapshot: Box<dyn winsignal_store::Snapshot + 's>,
    pub(crate) id: String,
    pub(crate) model: WinModel,
    pub(crate) ctx: Context,
    /// The store's checkpoint, read while the entities were.
    pub(crate) checkpoint: crate::pipeline::Fetched,
    pub(crate) catalog: Catalog,
}

impl<'s> ModelReading<'s> {
    /// The model `model_id` (the active win model when `None`), applied with `catalog` (the one it was
    /// trained with when `None`).
    pub(crate) fn open(
        store: &'s dyn Store,
        catalog: Option<&Path>,
        model_id: Option<&str>,
    ) -> Result<ModelReading<'s>> {
        let snapshot = store.snapshot()?;
        let (id, model) = crate::models::load_model(&*snapshot, model_id)?;
        let declared = crate::pipeline::catalog_for_model(catalog, &id, &model)?;
        let (ctx, checkpoint) = crate::pipeline::entities(store, &*snapshot)?;
        let catalog =
            crate::catalogs::resolve_for(&*snapshot, &declared, &ctx, &model.trained_on.versions)?;
        Ok(ModelReading {
            snapshot,
            id,
            model,
            ctx,
            checkpoint,
            catalog,
        })
    }
}

/// The open deals scored with a saved win model.
pub struct Scored {
    pub model_id: String,
    pub model: WinModel,
    /// The catalog the model was applied with, its categorical definitions split into the levels the
    /// model was trained on.
    pub catalog: Catalog,
    pub as_of: Ts,
    pub deals: Vec<DealScore>,
    /// Seconds spent scoring (after the engine state was ready).
    pub seconds: f64,
}

/// Scores the deals open at `as_of` (the end of the data when `None`) with the model `model_id` (the
/// active win model when `None`), applied with `catalog` (the one the model was trained with when
/// `None`); `only` keeps one opportunity.
pub fn score_open_deals(
    store: &dyn Store,
    data: &Path,
    catalog: Option<&Path>,
    model_id: Option<&str>,
    as_of: Option<Ts>,
    only: Option<&str>,
    progress: &mut dyn Progress,
) -> Result<Scored> {
    let mut m = ModelReading::open(store, catalog, model_id)?;
    // The engine takes the entities; it hands them back through `engine.context()`.
    let entities = std::mem::take(&mut m.ctx);
    let checkpoint = std::mem::take(&mut m.checkpoint);
    let (read, catalog, model) = (&*m.snapshot, &m.catalog, &m.model);
    let ctx = &entities;
    let only = match only {
        Some(wanted) => Some(opportunity_id(ctx, wanted, data)?),
        None => None,
    };
    let engine = crate::pipeline::replay_with(store, read, entities, checkpoint, progress)?;
    progress.finish();
    let (as_of, mut deals, seconds) = scores(&engine, catalog, model, as_of, only.as_deref())?;
    drop(engine);
    let dismissed = crate::feedback::Dismissed::read(read)?;
    for d in &mut deals {
        dismissed.apply(d);
    }
    Ok(Scored {
        model_id: m.id,
        model: m.model,
        catalog: m.catalog,
        as_of,
        deals,
        seconds,
    })
}

/// The stored id of an opportunity given in either Salesforce form.
fn opportunity_id(ctx: &Context, wanted: &str, data: &Path) -> Result<String> {
    let long = winsignal_core::sfdc::to_18(wanted);
    match ctx.opportunity(wanted).or_else(|| ctx.opportunity(&long)) {
        Some(o) => Ok(ctx.opps[o as usize].id.clone()),
        None => bail!("no opportunity with id {wanted:?} in {}", data.display()),
    }
}

/// The events behind one factor's definition, traced to their source rows.
#[derive(Serialize)]
pub struct FactorLineage {
    pub term: String,
    pub definition: Option<String>,
    pub contributions: Vec<winsignal_features::lineage::Contribution>,
}

/// One deal scored and explained: its factors and actions, and the events behind each factor.
#[derive(Serialize)]
pub struct Explained {
    pub model_id: String,
    pub deal: DealScore,
    pub lineage: Vec<FactorLineage>,
}

/// Explains one deal as it stood at `as_of` (the end of the data when `None`; it must have been open
/// then): its score, factors and actions, and every factor's events with their source rows.
pub fn explain_deal(
    store: &dyn Store,
    data: &Path,
    catalog: Option<&Path>,
    model_id: Option<&str>,
    opportunity: &str,
    as_of: Option<Ts>,
    progress: &mut dyn Progress,
) -> Result<Explained> {
    let mut m = ModelReading::open(store, catalog, model_id)?;
    // The engine takes the entities; it hands them back through `engine.context()`.
    let entities = std::mem::take(&mut m.ctx);
    let checkpoint = std::mem::take(&mut m.checkpoint);
    let (read, catalog, model) = (&*m.snapshot, &m.catalog, &m.model);
    let ctx = &entities;
    let opp_id = opportunity_id(ctx, opportunity, data)?;
    let Some(opp) = ctx.opportunity(&opp_id) else {
        bail!(
            "no opportunity with id {opportunity:?} in {}",
            data.display()
        );
    };
    let engine = crate::pipeline::replay_with(store, read, entities, checkpoint, progress)?;
    let ctx = engine.context();
    progress.finish();
    let (as_of, mut scored, _) = scores(&engine, catalog, model, as_of, Some(&opp_id))?;
    if scored.is_empty() {
        let o = &ctx.opps[opp as usize];
        bail!(
            "{opp_id} was not open at {} (created {}, {}): explain it with --as-of a date when it was open",
            as_of.to_rfc3339(),
            o.created.to_date_string(),
            o.closed
                .map_or("never closed".to_string(), |c| format!("closed {}", c.to_date_string()))
        );
    }
    let mut deal = scored.swap_remove(0);
    crate::feedback::Dismissed::read(read)?.apply(&mut deal);
    let lineage = factor_lineage(&engine, catalog, read, &deal, opp, as_of)?;
    Ok(Explained {
        model_id: m.id.clone(),
        deal,
        lineage,
    })
}

/// The events behind every definition among a scored deal's factors, traced to their source rows; each
/// definition once, even when it is in a main term and in pairs. `opp` is the deal's slot, `as_of` the
/// time it was scored at.
pub fn factor_lineage(
    engine: &winsignal_features::Engine,
    catalog: &Catalog,
    read: &dyn winsignal_store::StoreRead,
    deal: &DealScore,
    opp: u32,
    as_of: Ts,
) -> Result<Vec<FactorLineage>> {
    let mut lineage = Vec::new();
    let mut traced: Vec<&str> = Vec::new();
    for f in &deal.factors {
        for name in f.term.split(" × ") {
            if traced.contains(&name) {
                continue;
            }
            traced.push(name);
            let Some(def) = catalog.behaviours.iter().find(|d| d.id == name) else {
                continue;
            };
            let mut ex = winsignal_features::lineage::explain(engine, def, opp, as_of);
            winsignal_features::lineage::attach_origins(read, &mut ex.contributions)?;
            lineage.push(FactorLineage {
                term: name.to_string(),
                definition: Some(format!("{}@{}: {}", def.id, def.version, def.description)),
                contributions: ex.contributions,
            });
        }
    }
    Ok(lineage)
}

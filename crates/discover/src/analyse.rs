//! Runs every analysis of a discovery: behaviour × landmark × outcome, rules, and the false-discovery
//! control across all of them.

use crate::design::{self, ControlColumn, ControlValues, Design, DesignError, Separation};
use crate::inference;
use crate::quantile::{auc, quantile, sorted};
use crate::{
    Adoption, BehaviourDetail, Discovery, Finding, Interval, LandmarkSummary, Options, Outcome,
    Raw, Rule, Status, CAVEAT,
};
use std::collections::BTreeMap;
use winsignal_core::time::MS_PER_DAY;
use winsignal_features::catalog::{Catalog, Control, Definition, Recorded};
use winsignal_features::snapshot::{ControlValue, Snapshot};
use winsignal_stats::{cluster_ids, dist, km, multiple};

/// A single-feature AUC beyond this (or below 1 − this) is flagged as possible leakage.
const LEAKAGE_AUC: f64 = 0.95;
/// A behaviour that more than this share of the deals showing it after the close did not show at the
/// close is flagged as leakage ("happens mostly at or after close")...
const LEAKAGE_SHARE_AFTER: f64 = 0.5;
/// ...when at least this many closed deals show it after the close.
const LEAKAGE_MIN_DEALS: u64 = 30;
/// Fewest reps whose deals have (and lack) the behaviour for cluster-robust errors to be trusted.
pub(crate) const MIN_REPS: usize = 5;
/// A 2 × 2 table (behaviour × won) with a cell below this many deals gets Fisher's exact test as a floor
/// under the adjusted p-value.
const TINY_CELL: usize = 5;

/// Why a discovery could not run at all.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoverError(pub String);

impl std::fmt::Display for DiscoverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DiscoverError {}

struct Def<'a> {
    def: &'a Definition,
    /// Index into `Snapshot::values`.
    value: usize,
    /// Index into `Snapshot::flags` for behaviours.
    flag: Option<usize>,
}

impl Def<'_> {
    fn focal(&self, s: &Snapshot) -> Option<f64> {
        match self.flag {
            Some(f) => s.flags[f].map(|b| b as u8 as f64),
            None => Some(s.values[self.value]).filter(|v| v.is_finite()),
        }
    }
}

/// Runs discovery over the snapshots of one catalog.
pub fn discover(
    catalog: &Catalog,
    snaps: &[Snapshot],
    opts: &Options,
) -> Result<Discovery, DiscoverError> {
    let landmarks = landmark_order(snaps);
    for l in &opts.landmarks {
        if !landmarks.iter().any(|s| s.name == *l) {
            let names: Vec<&str> = landmarks.iter().map(|s| s.name.as_str()).collect();
            return Err(DiscoverError(format!(
                "no snapshots at landmark {l:?}; the landmarks are: {}",
                names.join(", ")
            )));
        }
    }
    // Columns that may be recorded because of the outcome; flagged controls leave the models.
    let mut column_flags = crate::leakage::suspect_columns(catalog, snaps);
    for f in &opts.history_flags {
        if !column_flags.iter().any(|c| c.column == f.column) {
            column_flags.push(f.clone());
        }
    }
    let opts = &crate::leakage::without_suspects(opts, &column_flags);
    let landmarks: Vec<LandmarkSummary> = landmarks
        .into_iter()
        .filter(|l| opts.landmarks.is_empty() || opts.landmarks.contains(&l.name))
        .collect();
    let mut flag = 0;
    let defs: Vec<Def<'_>> = catalog
        .behaviours
        .iter()
        .enumerate()
        .map(|(value, def)| {
            let f = def.is_behaviour().then(|| {
                flag += 1;
                flag - 1
            });
            Def {
                def,
                value,
                flag: f,
            }
        })
        .collect();
    let mut by_landmark: BTreeMap<&str, Vec<&Snapshot>> = BTreeMap::new();
    for s in snaps {
        by_landmark.entry(s.landmark.as_str()).or_default().push(s);
    }
    let mut outcomes = opts.outcomes.clone();
    outcomes.sort();
    outcomes.dedup();
    // One job per outcome × landmark × definition, run on every core; results keep the job order.
    let mut jobs = Vec::new();
    for &outcome in &outcomes {
        for (li, l) in landmarks.iter().enumerate() {
            for d in 0..defs.len() {
                jobs.push((outcome, li, d, l.name.as_str()));
            }
        }
    }
    let rule_jobs: Vec<(usize, usize)> = if opts.rules && outcomes.contains(&Outcome::Win) {
        (0..landmarks.len())
            .flat_map(|li| {
                defs.iter()
                    .enumerate()
                    .filter(|(_, d)| d.flag.is_none())
                    .map(move |(d, _)| (li, d))
            })
            .collect()
    } else {
        Vec::new()
    };
    let coded: BTreeMap<&str, LandmarkRows<'_>> = landmarks
        .iter()
        .map(|l| {
            let rows = by_landmark
                .get(l.name.as_str())
                .cloned()
                .unwrap_or_default();
            (l.name.as_str(), LandmarkRows::new(catalog, rows))
        })
        .collect();
    let empty = LandmarkRows::new(catalog, Vec::new());
    let rows = |name: &str| coded.get(name).unwrap_or(&empty);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let mut findings: Vec<Option<Finding>> = vec![None; jobs.len()];
    let mut rules: Vec<Option<Rule>> = vec![None; rule_jobs.len()];
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for w in 0..workers {
            let (jobs, rule_jobs, defs, landmarks, rows) =
                (&jobs, &rule_jobs, &defs, &landmarks, &rows);
            handles.push(scope.spawn(move || {
                let mut out = Vec::new();
                for (i, (outcome, _, d, name)) in jobs.iter().enumerate().skip(w).step_by(workers) {
                    out.push((
                        i,
                        None,
                        Some(analyse(
                            catalog,
                            &defs[*d],
                            *outcome,
                            name,
                            rows(name),
                            opts,
                        )),
                    ));
                }
                for (i, (li, d)) in rule_jobs.iter().enumerate().skip(w).step_by(workers) {
                    let name = landmarks[*li].name.as_str();
                    out.push((i, rule(catalog, &defs[*d], name, rows(name), opts), None));
                }
                out
            }));
        }
        for h in handles {
            #[allow(clippy::expect_used)]
            for (i, rule, finding) in h.join().expect("a discovery worker panicked") {
                match finding {
                    Some(f) => findings[i] = Some(f),
                    None => rules[i] = rule,
                }
            }
        }
    });
    let mut findings: Vec<Finding> = findings.into_iter().flatten().collect();
    let mut rules: Vec<Rule> = rules.into_iter().flatten().collect();
    // Each categorical column as a whole: few models (one per column × outcome × landmark), run here.
    let categorical = crate::joint::columns(catalog);
    let mut column_tests: Vec<crate::ColumnTest> = Vec::new();
    for &outcome in &outcomes {
        for l in &landmarks {
            for col in &categorical {
                column_tests.push(crate::joint::test(
                    catalog,
                    col,
                    outcome,
                    &l.name,
                    rows(&l.name),
                    opts,
                ));
            }
        }
    }
    // Benjamini–Hochberg over every test of the run.
    let mut p: Vec<f64> = Vec::new();
    // Values declared as recorded at the outcome are reported but are not tests of a behaviour: their
    // near-zero p-values would loosen everyone else's threshold.
    let declared = |id: &str| {
        catalog
            .behaviours
            .iter()
            .any(|d| d.id == id && d.recorded == Recorded::AtOutcome)
    };
    for f in &findings {
        p.push(if declared(&f.behaviour) {
            f64::NAN
        } else {
            f.effect.as_ref().map_or(f64::NAN, |e| e.p)
        });
    }
    for r in &rules {
        p.push(r.effect.as_ref().map_or(f64::NAN, |e| e.p));
    }
    for c in &column_tests {
        let declared = catalog.behaviours.iter().any(|d| {
            d.level
                .as_ref()
                .is_some_and(|l| l.definition == c.behaviour)
                && d.recorded == Recorded::AtOutcome
        });
        p.push(if declared {
            f64::NAN
        } else {
            c.p.unwrap_or(f64::NAN)
        });
    }
    let q = multiple::benjamini_hochberg(&p);
    let tests = p.iter().filter(|x| !x.is_nan()).count();
    for (f, q) in findings.iter_mut().zip(&q) {
        if let Some(e) = f.effect.as_mut() {
            e.q = *q;
            f.significant = *q < opts.fdr;
        }
    }
    // (NaN q for declared-at-outcome findings: never "significant".)
    for (r, q) in rules.iter_mut().zip(&q[findings.len()..]) {
        if let Some(e) = r.effect.as_mut() {
            e.q = *q;
            r.significant = *q < opts.fdr;
        }
    }
    for (c, q) in column_tests
        .iter_mut()
        .zip(&q[findings.len() + rules.len()..])
    {
        if c.p.is_some() && !q.is_nan() {
            c.q = Some(*q);
            c.significant = *q < opts.fdr;
        }
    }
    crate::leakage::mark(&column_flags, opts, &mut findings, &mut rules);
    // A column test carries the leakage of its levels (the column's flag, or a declared value).
    for c in column_tests.iter_mut() {
        c.leakage = findings
            .iter()
            .filter(|f| f.column.as_deref() == Some(c.behaviour.as_str()))
            .find_map(|f| f.leakage.clone());
    }
    let details = defs
        .iter()
        .filter(|d| d.flag.is_some())
        .filter_map(|d| detail(d, &findings, &landmarks, &by_landmark))
        .collect();
    let mut opportunities: Vec<(&str, usize)> = snaps
        .iter()
        .map(|s| {
            let o = match s.outcome {
                winsignal_core::Outcome::Won => 0,
                winsignal_core::Outcome::Lost => 1,
                winsignal_core::Outcome::Open => 2,
            };
            (s.opportunity_id.as_str(), o)
        })
        .collect();
    opportunities.sort_unstable();
    opportunities.dedup();
    let mut outcomes = [0usize; 3];
    opportunities.iter().for_each(|(_, o)| outcomes[*o] += 1);
    Ok(Discovery {
        schema: 1,
        catalog: catalog.name.clone(),
        versions: catalog
            .behaviours
            .iter()
            .map(|d| format!("{}@{}", d.id, d.version))
            .collect(),
        controls: catalog
            .controls
            .iter()
            .map(Control::column)
            .filter(|c| !opts.leave_out_controls.contains(c))
            .chain(std::iter::once(AGE_CONTROL.to_string()))
            .collect(),
        cluster: cluster_unit(snaps),
        fdr: opts.fdr,
        snapshots: snaps.len(),
        opportunities: opportunities.len(),
        outcomes,
        unobserved: opts.unobserved.clone(),
        landmarks,
        findings,
        rules,
        column_tests,
        tests,
        details,
        leakage: column_flags,
        caveat: CAVEAT,
    })
}

/// Landmarks in the order deals reach them (median age), with their counts.
fn landmark_order(snaps: &[Snapshot]) -> Vec<LandmarkSummary> {
    let mut ages: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut counts: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for s in snaps {
        ages.entry(s.landmark.as_str())
            .or_default()
            .push(s.age_days);
        let c = counts.entry(s.landmark.as_str()).or_default();
        c[match s.outcome {
            winsignal_core::Outcome::Won => 0,
            winsignal_core::Outcome::Lost => 1,
            winsignal_core::Outcome::Open => 2,
        }] += 1;
    }
    let mut out: Vec<LandmarkSummary> = ages
        .into_iter()
        .map(|(name, a)| {
            let c = counts[name];
            LandmarkSummary {
                name: name.to_string(),
                median_age_days: quantile(&sorted(a.into_iter()), 0.5),
                snapshots: c.iter().sum(),
                won: c[0],
                lost: c[1],
                open: c[2],
            }
        })
        .collect();
    out.sort_by(|a, b| {
        a.median_age_days
            .total_cmp(&b.median_age_days)
            .then(a.name.cmp(&b.name))
    });
    out
}

/// The catalog's controls for these rows, plus the deal's age at the landmark (log days since creation:
/// at a stage landmark, deals that took longer to get there have had more time to accumulate activity;
/// at an age landmark it is constant and drops out).
pub(crate) fn controls_for<'a>(
    catalog: &Catalog,
    lm: &'a LandmarkRows<'_>,
    idx: &[usize],
    outcome: Outcome,
    opts: &Options,
) -> Vec<ControlColumn<'a>> {
    let mut out: Vec<ControlColumn<'a>> = catalog
        .controls
        .iter()
        .zip(&lm.controls)
        // Log amount is the deal-size outcome itself.
        .filter(|(c, _)| !(outcome == Outcome::DealSize && **c == Control::LogAmount))
        // Controls flagged as possible leakage (crate::leakage), or left out by the caller.
        .filter(|(c, _)| !opts.leave_out_controls.contains(&c.column()))
        .map(|(c, coded)| {
            // Named numeric controls, and attributes whose every present value is a number.
            let numeric = c.is_numeric() || {
                let kinds = || idx.iter().map(|r| coded.kinds[*r]);
                kinds().any(|k| k == ValueKind::Number) && kinds().all(|k| k != ValueKind::Text)
            };
            ControlColumn {
                name: c.column(),
                values: if numeric {
                    ControlValues::Numeric(idx.iter().map(|r| coded.numbers[*r]).collect())
                } else {
                    ControlValues::Categorical {
                        codes: idx.iter().map(|r| coded.codes[*r]).collect(),
                        labels: &coded.labels,
                    }
                },
            }
        })
        .collect();
    out.push(ControlColumn {
        name: AGE_CONTROL.into(),
        values: ControlValues::Numeric(
            idx.iter()
                .map(|r| Some(lm.rows[*r].age_days.ln_1p()))
                .collect(),
        ),
    });
    out
}

/// The snapshots at one landmark with every catalog control coded once — labels sorted, a code per
/// row — so that each analysis subsets integers instead of comparing strings.
pub(crate) struct LandmarkRows<'a> {
    pub(crate) rows: Vec<&'a Snapshot>,
    controls: Vec<CodedControl>,
    /// Each row's cluster (rep), and how many there are.
    cluster: Vec<u32>,
    n_clusters: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    Missing,
    Number,
    Text,
}

struct CodedControl {
    /// Distinct labels in order: text as given, numbers as printed, `(missing)`.
    labels: Vec<String>,
    codes: Vec<u32>,
    kinds: Vec<ValueKind>,
    /// Finite numbers; `None` for missing, text and non-finite values.
    numbers: Vec<Option<f64>>,
}

impl<'a> LandmarkRows<'a> {
    fn new(catalog: &Catalog, rows: Vec<&'a Snapshot>) -> LandmarkRows<'a> {
        let controls = (0..catalog.controls.len())
            .map(|i| {
                let value =
                    |s: &Snapshot| s.controls.get(i).cloned().unwrap_or(ControlValue::Missing);
                let label = |v: &ControlValue| match v {
                    ControlValue::Text(t) => t.clone(),
                    ControlValue::Number(x) => format!("{x}"),
                    ControlValue::Missing => "(missing)".to_string(),
                };
                let mut index: BTreeMap<String, u32> = BTreeMap::new();
                for s in &rows {
                    index.entry(label(&value(s))).or_insert(0);
                }
                for (code, slot) in index.values_mut().enumerate() {
                    *slot = code as u32;
                }
                let mut coded = CodedControl {
                    labels: index.keys().cloned().collect(),
                    codes: Vec::with_capacity(rows.len()),
                    kinds: Vec::with_capacity(rows.len()),
                    numbers: Vec::with_capacity(rows.len()),
                };
                for s in &rows {
                    let v = value(s);
                    coded.codes.push(index[&label(&v)]);
                    coded.kinds.push(match v {
                        ControlValue::Missing => ValueKind::Missing,
                        ControlValue::Number(_) => ValueKind::Number,
                        ControlValue::Text(_) => ValueKind::Text,
                    });
                    coded.numbers.push(match v {
                        ControlValue::Number(x) if x.is_finite() => Some(x),
                        _ => None,
                    });
                }
                coded
            })
            .collect();
        let keys: Vec<(bool, &str)> = rows.iter().map(|s| cluster_key(s)).collect();
        let cluster = cluster_ids(&keys);
        let n_clusters = cluster.iter().max().map_or(0, |m| *m as usize + 1);
        LandmarkRows {
            rows,
            controls,
            cluster,
            n_clusters,
        }
    }
}

/// The name of the age-at-landmark control.
pub const AGE_CONTROL: &str = "log_age_at_landmark";

/// The cluster of a snapshot: its rep; a deal without a rep is a cluster of its own (data without reps,
/// such as a list of marketing calls, get ordinary robust errors by deal).
fn cluster_key(s: &Snapshot) -> (bool, &str) {
    match s.rep_id.as_deref() {
        Some(rep) => (true, rep),
        None => (false, s.opportunity_id.as_str()),
    }
}

/// What the standard errors are clustered by over all snapshots ([`Discovery::cluster`]): `rep`,
/// `deal` (data without reps: ordinary robust errors by deal) or `rep_or_deal` (some deals have no rep).
fn cluster_unit(snaps: &[Snapshot]) -> &'static str {
    let with_rep = snaps.iter().filter(|s| s.rep_id.is_some()).count();
    match with_rep {
        0 => "deal",
        n if n == snaps.len() => "rep",
        _ => "rep_or_deal",
    }
}

/// The clusters of the rows `idx` of a landmark, numbered by first appearance among them (as
/// [`cluster_ids`] numbers them), from the landmark's precomputed cluster of every row.
pub(crate) fn clusters(lm: &LandmarkRows<'_>, idx: &[usize]) -> Vec<u32> {
    let mut renumber = vec![u32::MAX; lm.n_clusters];
    let mut next = 0;
    idx.iter()
        .map(|r| {
            let id = &mut renumber[lm.cluster[*r] as usize];
            if *id == u32::MAX {
                *id = next;
                next += 1;
            }
            *id
        })
        .collect()
}

fn landmark_words(name: &str) -> String {
    if let Some(stage) = name.strip_prefix("stage:") {
        format!("by {stage}")
    } else if let Some(age) = name.strip_prefix("age:").and_then(|a| a.strip_suffix('d')) {
        format!("by day {age}")
    } else if name == "created" {
        "at creation".into()
    } else {
        format!("at {name}")
    }
}

fn analyse(
    catalog: &Catalog,
    d: &Def<'_>,
    outcome: Outcome,
    landmark: &str,
    lm: &LandmarkRows<'_>,
    opts: &Options,
) -> Finding {
    use winsignal_core::Outcome as O;
    let keep = |s: &Snapshot| match outcome {
        Outcome::Win => s.outcome != O::Open,
        Outcome::CycleTime => true,
        Outcome::DealSize => s.outcome == O::Won && s.amount.is_some_and(|a| a > 0.0),
    };
    let all = &lm.rows;
    let idx: Vec<usize> = (0..all.len())
        .filter(|i| keep(all[*i]) && d.focal(all[*i]).is_some())
        .collect();
    let rows: Vec<&Snapshot> = idx.iter().map(|i| all[*i]).collect();
    let focal: Vec<f64> = rows.iter().filter_map(|s| d.focal(s)).collect();
    let won: Vec<bool> = rows.iter().map(|s| s.outcome == O::Won).collect();
    let continuous = d.flag.is_none();
    let values = sorted(focal.iter().copied());
    let median = quantile(&values, 0.5);
    let is_with = |v: f64| {
        if continuous {
            v > median
        } else {
            v == 1.0
        }
    };
    let n_with = focal.iter().filter(|v| is_with(**v)).count();
    let n_without = focal.len() - n_with;
    let events = won.iter().filter(|w| **w).count();
    let mut finding = Finding {
        outcome,
        landmark: landmark.to_string(),
        behaviour: d.def.id.clone(),
        column: d.def.level.as_ref().map(|l| l.definition.clone()),
        level: d.def.level.as_ref().map(|l| l.level.clone()),
        version: d.def.version,
        title: d.def.title.clone(),
        kind: if continuous { "continuous" } else { "yes_no" },
        status: Status::NotEnoughData,
        note: None,
        n: rows.len(),
        n_with,
        n_without,
        events,
        raw: Raw::default(),
        effect: None,
        step: None,
        step_kind: None,
        significant: false,
        adjusted_for: Vec::new(),
        dropped: Vec::new(),
        leakage: leakage(d, all, opts),
    };
    // Raw figures first: they are shown even when there is not enough data to adjust.
    let split = |f: &dyn Fn(usize) -> f64| -> (Option<f64>, Option<f64>) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (i, v) in focal.iter().enumerate() {
            if is_with(*v) {
                a.push(f(i));
            } else {
                b.push(f(i));
            }
        }
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        (mean(&a), mean(&b))
    };
    match outcome {
        Outcome::Win => {
            let (a, b) = split(&|i| won[i] as u8 as f64);
            finding.raw.with = a;
            finding.raw.without = b;
            if !continuous {
                let [with_won, with_lost, without_won, without_lost] = table(&focal, &won);
                finding.raw.exact_p = Some(dist::fisher_exact(
                    with_won as u64,
                    with_lost as u64,
                    without_won as u64,
                    without_lost as u64,
                ));
            }
        }
        Outcome::DealSize => {
            let (a, b) = split(&|i| rows[i].amount.unwrap_or(f64::NAN).ln());
            finding.raw.with = a.map(f64::exp);
            finding.raw.without = b.map(f64::exp);
        }
        Outcome::CycleTime => {
            let median_of = |want: bool| {
                let (t, e): (Vec<f64>, Vec<bool>) = (0..rows.len())
                    .filter(|i| is_with(focal[*i]) == want)
                    .map(|i| (rows[i].days_observed, won[i]))
                    .unzip();
                km::kaplan_meier(&t, &e).ok().and_then(|c| c.median())
            };
            finding.raw.with = median_of(true);
            finding.raw.without = median_of(false);
        }
    }
    let losses = rows.len() - events;
    // Errors clustered by rep need the behaviour to vary across reps: present (and absent) at several.
    let cl = clusters(lm, &idx);
    let groups = cl.iter().max().map_or(0, |m| *m as usize + 1);
    let reps_of = |with: bool| {
        let mut seen = vec![false; groups];
        for (g, v) in cl.iter().zip(&focal) {
            if is_with(*v) == with {
                seen[*g as usize] = true;
            }
        }
        seen.iter().filter(|s| **s).count()
    };
    let (reps_with, reps_without) = (reps_of(true), reps_of(false));
    let short = if n_with < opts.min_group || n_without < opts.min_group {
        Some(format!(
            "{n_with} with and {n_without} without; at least {} of each are needed",
            opts.min_group
        ))
    } else if outcome == Outcome::Win && events.min(losses) < opts.min_events {
        Some(format!(
            "{events} won and {losses} lost; at least {} of each are needed",
            opts.min_events
        ))
    } else if reps_with.min(reps_without) < MIN_REPS {
        let (k, side) = if reps_with < reps_without {
            (reps_with, "with")
        } else {
            (reps_without, "without")
        };
        Some(format!(
            "the deals {side} it belong to {k} rep{}; errors clustered by rep need at least {MIN_REPS}",
            if k == 1 { "" } else { "s" }
        ))
    } else if outcome == Outcome::CycleTime
        && (0..rows.len())
            .filter(|i| won[*i] && is_with(focal[*i]))
            .count()
            == 0
    {
        Some(format!(
            "no deal {} it closed won, so there is no time to close won to compare (a hazard ratio of 0)",
            if continuous { "above the median" } else { "with" }
        ))
    } else if outcome == Outcome::CycleTime
        && (0..rows.len())
            .filter(|i| won[*i] && !is_with(focal[*i]))
            .count()
            == 0
    {
        Some(format!(
            "no deal {} it closed won, so there is no time to close won to compare with",
            if continuous {
                "at or below the median"
            } else {
                "without"
            }
        ))
    } else if outcome == Outcome::CycleTime && events < opts.min_events {
        Some(format!(
            "{events} closed won; at least {} are needed",
            opts.min_events
        ))
    } else if outcome == Outcome::CycleTime
        && rows
            .iter()
            .all(|s| s.days_observed == rows[0].days_observed)
    {
        Some("every deal has the same time to close (the data have no close dates)".into())
    } else {
        None
    };
    if let Some(why) = short {
        finding.note = Some(format!("not enough data: {why}"));
        return finding;
    }
    let step = if continuous {
        let iqr = quantile(&values, 0.75) - quantile(&values, 0.25);
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let sd = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>()
            / (values.len() - 1).max(1) as f64)
            .sqrt();
        if iqr > 0.0 {
            (iqr, true)
        } else {
            (sd, false)
        }
    } else {
        (1.0, true)
    };
    let (step, step_is_iqr) = step;
    if continuous {
        finding.step = Some(step);
        finding.step_kind = Some(if step_is_iqr { "iqr" } else { "sd" });
    }
    let controls = controls_for(catalog, lm, &idx, outcome, opts);
    let refuse = |mut f: Finding, why: String| {
        f.status = Status::Refused;
        f.note = Some(why);
        f
    };
    let y01: Vec<f64> = won.iter().map(|w| *w as u8 as f64).collect();
    let separation = match outcome {
        Outcome::Win => Separation::Outcome(&y01),
        Outcome::CycleTime => Separation::NoEvents(&y01),
        Outcome::DealSize => Separation::None,
    };
    let design = match design::build(
        &d.def.id,
        &focal,
        &controls,
        outcome != Outcome::CycleTime,
        separation,
    ) {
        Ok(design) => design,
        Err(DesignError::FocalCollinear) => {
            return refuse(
                finding,
                "refused: the behaviour is constant here or fully explained by the controls".into(),
            )
        }
    };
    finding.adjusted_for = design.adjusted_for.clone();
    finding.dropped = design.dropped.clone();
    let estimated = match outcome {
        Outcome::Win => {
            // Unadjusted odds ratio, for the raw-versus-adjusted comparison, computed the same way.
            let raw_design = Design {
                names: vec!["(intercept)".into(), d.def.id.clone()],
                x: winsignal_stats::Matrix::from_rows(
                    rows.len(),
                    2,
                    focal.iter().flat_map(|v| [1.0, *v]).collect(),
                ),
                adjusted_for: Vec::new(),
                dropped: Vec::new(),
            };
            if let Ok(raw) = inference::logit_effect(&y01, &raw_design, &cl, 1, step, continuous) {
                finding.raw.odds_ratio = Some(Interval {
                    estimate: raw.estimate,
                    low: raw.low,
                    high: raw.high,
                });
                finding.raw.p = Some(raw.p);
            }
            inference::logit_effect(&y01, &design, &cl, 1, step, continuous).map(|mut e| {
                if e.penalised {
                    finding.note = Some(
                        "penalised (Firth) fit: the plain fit separated won from lost; the interval and p-value are from the profile penalised likelihood".into(),
                    );
                }
                // Tiny cells: the p-value is never below Fisher's exact test of the raw table.
                if let (false, Some(exact)) = (continuous, finding.raw.exact_p) {
                    if tiny_cells(&focal, &won) && exact > e.p {
                        e.p = exact;
                        let note = "fewer than 5 deals in a cell of the with/without × won/lost table: the p-value is Fisher's exact test's";
                        finding.note = Some(match finding.note.take() {
                            Some(n) => format!("{n}; {note}"),
                            None => note.into(),
                        });
                    }
                }
                e
            })
        }
        Outcome::CycleTime => {
            let time: Vec<f64> = rows.iter().map(|s| s.days_observed.max(1e-6)).collect();
            inference::cox_effect(&time, &won, &design, &cl, 0, step)
        }
        Outcome::DealSize => {
            let y: Vec<f64> = rows
                .iter()
                .map(|s| s.amount.unwrap_or(f64::NAN).ln())
                .collect();
            inference::ols_effect(&y, &design, &cl, 1, step)
        }
    };
    match estimated {
        Ok(e) => finding.effect = Some(e),
        Err(why) => return refuse(finding, why),
    }
    if finding.effect.is_some() {
        finding.status = Status::Estimated;
    } else {
        return refuse(finding, "refused: the standard error is not finite".into());
    }
    finding
}

/// Possible leakage of a definition at a landmark: the catalog says it is recorded at the outcome, or it
/// separates won from lost almost perfectly on its own.
fn leakage(d: &Def<'_>, all: &[&Snapshot], opts: &Options) -> Option<String> {
    if d.def.recorded == Recorded::AtOutcome {
        return Some(
            "leakage: the catalog declares this value is recorded only once the outcome is known; its effect is not a behaviour to copy"
                .into(),
        );
    }
    let timing = opts
        .timing
        .iter()
        .find(|t| t.id == d.def.id && t.version == d.def.version);
    if let Some(t) = timing.filter(|t| t.after >= LEAKAGE_MIN_DEALS) {
        let share = t.share_only_after().unwrap_or(0.0);
        if share > LEAKAGE_SHARE_AFTER {
            return Some(format!(
                "leakage: it happens mostly at or after the close — of the {} closed deals showing it {} days after their close, {:.0} % did not show it at the close; its presence says the deal closed, not what won it",
                t.after,
                winsignal_features::snapshot::AFTER_CLOSE_DAYS,
                100.0 * share
            ));
        }
    }
    let (score, won): (Vec<f64>, Vec<bool>) = all
        .iter()
        .filter(|s| s.outcome != winsignal_core::Outcome::Open)
        .filter_map(|s| Some((d.focal(s)?, s.outcome == winsignal_core::Outcome::Won)))
        .unzip();
    let a = auc(&score, &won);
    (a >= LEAKAGE_AUC || a <= 1.0 - LEAKAGE_AUC).then(|| {
        format!(
            "possible leakage: on its own it separates won from lost almost perfectly (AUC {:.2}); check that it is known before the outcome",
            a.max(1.0 - a)
        )
    })
}

/// Which half of the deals an opportunity is in (the threshold of a rule is chosen on one, its effect
/// estimated on the other).
fn half(s: &Snapshot) -> bool {
    xxhash_rust::xxh3::xxh3_64(s.opportunity_id.as_bytes()) & 1 == 0
}

fn rule(
    catalog: &Catalog,
    d: &Def<'_>,
    landmark: &str,
    lm: &LandmarkRows<'_>,
    opts: &Options,
) -> Option<Rule> {
    use winsignal_core::Outcome as O;
    let all = &lm.rows;
    if d.def.recorded == Recorded::AtOutcome {
        // A threshold on a value recorded at the outcome is not advice anyone can follow.
        return None;
    }
    let rows: Vec<&Snapshot> = all
        .iter()
        .copied()
        .filter(|s| s.outcome != O::Open && d.focal(s).is_some())
        .collect();
    let (choose, estimate_idx): (Vec<usize>, Vec<usize>) = (0..all.len())
        .filter(|i| all[*i].outcome != O::Open && d.focal(all[*i]).is_some())
        .partition(|i| half(all[*i]));
    let choose: Vec<&Snapshot> = choose.iter().map(|i| all[*i]).collect();
    let estimate: Vec<&Snapshot> = estimate_idx.iter().map(|i| all[*i]).collect();
    let rate = |rows: &[&Snapshot], t: f64, above: bool| {
        let sel: Vec<&&Snapshot> = rows
            .iter()
            .filter(|s| d.focal(s).is_some_and(|v| (v >= t) == above))
            .collect();
        let won = sel.iter().filter(|s| s.outcome == O::Won).count();
        (won as f64 / sel.len().max(1) as f64, sel.len())
    };
    let values = sorted(choose.iter().filter_map(|s| d.focal(s)));
    let mut candidates: Vec<f64> = (1..10)
        .map(|i| quantile(&values, i as f64 / 10.0))
        .collect();
    if values.iter().all(|v| v.fract() == 0.0) {
        candidates.iter_mut().for_each(|c| *c = c.ceil());
    }
    candidates.dedup();
    let mut best: Option<(f64, f64)> = None;
    for t in candidates {
        let (a, na) = rate(&choose, t, true);
        let (b, nb) = rate(&choose, t, false);
        if na < opts.min_group / 2 || nb < opts.min_group / 2 {
            continue;
        }
        let gap = (a - b).abs();
        if best.is_none_or(|(_, g)| gap > g) {
            best = Some((t, gap));
        }
    }
    let (t, _) = best?;
    let (rate_with, n_with) = rate(&rows, t, true);
    let (rate_without, n_without) = rate(&rows, t, false);
    if n_with < opts.min_group || n_without < opts.min_group {
        return None;
    }
    let shown = if t.fract() == 0.0 {
        format!("{t}+")
    } else {
        let s = format!("{t:.3}");
        format!("≥ {}", s.trim_end_matches('0').trim_end_matches('.'))
    };
    let text = format!(
        "{shown} {} {}: win rate {:.0} % vs {:.0} %, n = {} / {}",
        d.def.title,
        landmark_words(landmark),
        100.0 * rate_with,
        100.0 * rate_without,
        thousands(n_with),
        thousands(n_without)
    );
    let mut rule = Rule {
        landmark: landmark.to_string(),
        feature: d.def.id.clone(),
        version: d.def.version,
        title: d.def.title.clone(),
        threshold: t,
        text,
        win_rate_with: rate_with,
        win_rate_without: rate_without,
        n_with,
        n_without,
        effect: None,
        significant: false,
        note: None,
        leakage: leakage(d, all, opts),
    };
    let focal: Vec<f64> = estimate
        .iter()
        .map(|s| d.focal(s).map_or(0.0, |v| (v >= t) as u8 as f64))
        .collect();
    let y: Vec<f64> = estimate
        .iter()
        .map(|s| (s.outcome == O::Won) as u8 as f64)
        .collect();
    let with = focal.iter().filter(|v| **v == 1.0).count();
    let events = y.iter().filter(|v| **v == 1.0).count();
    let reps = |side: f64| {
        let mut r: Vec<(bool, &str)> = estimate
            .iter()
            .zip(&focal)
            .filter(|(_, v)| **v == side)
            .map(|(s, _)| cluster_key(s))
            .collect();
        r.sort_unstable();
        r.dedup();
        r.len()
    };
    if with < opts.min_group / 2
        || focal.len() - with < opts.min_group / 2
        || events.min(y.len() - events) < opts.min_events
        || reps(1.0).min(reps(0.0)) < MIN_REPS
    {
        rule.note = Some("not enough data in the estimation half".into());
        return Some(rule);
    }
    let controls = controls_for(catalog, lm, &estimate_idx, Outcome::Win, opts);
    let Ok(design) = design::build(&d.def.id, &focal, &controls, true, Separation::Outcome(&y))
    else {
        rule.note = Some("refused: the rule is fully explained by the controls".into());
        return Some(rule);
    };
    match inference::logit_effect(&y, &design, &clusters(lm, &estimate_idx), 1, 1.0, false) {
        Ok(e) => rule.effect = Some(e),
        Err(why) => rule.note = Some(why),
    }
    Some(rule)
}

/// The 2 × 2 table of a yes/no column against winning: `[with won, with lost, without won, without
/// lost]`.
fn table(focal: &[f64], won: &[bool]) -> [usize; 4] {
    let mut t = [0usize; 4];
    for (v, w) in focal.iter().zip(won) {
        let cell = match (*v == 1.0, *w) {
            (true, true) => 0,
            (true, false) => 1,
            (false, true) => 2,
            (false, false) => 3,
        };
        t[cell] += 1;
    }
    t
}

/// Whether a cell of the yes/no × won/lost table has fewer than [`TINY_CELL`] deals.
fn tiny_cells(focal: &[f64], won: &[bool]) -> bool {
    table(focal, won).iter().any(|c| *c < TINY_CELL)
}

// `is_multiple_of` is newer than the workspace's minimum Rust version.
#[allow(clippy::manual_is_multiple_of)]
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The report's figures for one yes/no behaviour.
fn detail(
    d: &Def<'_>,
    findings: &[Finding],
    landmarks: &[LandmarkSummary],
    by_landmark: &BTreeMap<&str, Vec<&Snapshot>>,
) -> Option<BehaviourDetail> {
    let defined = |name: &str| {
        by_landmark.get(name).map_or(0, |rows| {
            rows.iter().filter(|s| d.focal(s).is_some()).count()
        })
    };
    let p = |f: &&Finding| f.effect.as_ref().map_or(f64::INFINITY, |e| e.p);
    let landmark = findings
        .iter()
        .filter(|f| f.outcome == Outcome::Win && f.behaviour == d.def.id && f.effect.is_some())
        .min_by(|a, b| p(a).total_cmp(&p(b)))
        .map(|f| f.landmark.clone())
        .or_else(|| {
            landmarks
                .iter()
                .max_by_key(|l| defined(&l.name))
                .filter(|l| defined(&l.name) > 0)
                .map(|l| l.name.clone())
        })?;
    let rows: Vec<&Snapshot> = by_landmark
        .get(landmark.as_str())?
        .iter()
        .copied()
        .filter(|s| d.focal(s).is_some())
        .collect();
    let curve = |with: bool| -> Vec<[f64; 2]> {
        let (t, e): (Vec<f64>, Vec<bool>) = rows
            .iter()
            .filter(|s| (d.focal(s) == Some(1.0)) == with)
            .map(|s| (s.days_observed, s.outcome == winsignal_core::Outcome::Won))
            .unzip();
        let Ok(c) = km::kaplan_meier(&t, &e) else {
            return Vec::new();
        };
        let mut points: Vec<[f64; 2]> = std::iter::once([0.0, 1.0])
            .chain(c.points.iter().map(|p| [p.time, p.survival]))
            .collect();
        if points.len() > 200 {
            let stride = points.len().div_ceil(200);
            let last = points[points.len() - 1];
            points = points.into_iter().step_by(stride).collect();
            if points.last() != Some(&last) {
                points.push(last);
            }
        }
        points
    };
    let group = |key: &dyn Fn(&Snapshot) -> String| -> Vec<Adoption> {
        let mut m: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for s in &rows {
            let e = m.entry(key(s)).or_default();
            e.0 += 1;
            e.1 += usize::from(d.focal(s) == Some(1.0));
        }
        m.into_iter()
            .map(|(group, (n, with))| Adoption {
                group,
                n,
                with,
                rate: with as f64 / n as f64,
            })
            .collect()
    };
    let quarter = |s: &Snapshot| {
        let created = winsignal_core::Ts(s.as_of.0 - (s.age_days * MS_PER_DAY as f64) as i64);
        let date = created.to_date_string();
        let (year, month) = (&date[..4], date[5..7].parse::<u32>().unwrap_or(1));
        format!("{year}Q{}", (month - 1) / 3 + 1)
    };
    let mut reps = group(&|s| s.rep_id.clone().unwrap_or_else(|| "(no rep)".into()));
    reps.sort_by(|a, b| b.rate.total_cmp(&a.rate).then(a.group.cmp(&b.group)));
    Some(BehaviourDetail {
        behaviour: d.def.id.clone(),
        version: d.def.version,
        title: d.def.title.clone(),
        description: d.def.description.clone(),
        landmark,
        km_with: curve(true),
        km_without: curve(false),
        adoption: group(&quarter),
        reps,
    })
}

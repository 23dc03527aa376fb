//! A categorical column tested as a whole: do its levels go with the outcome at all, adjusted for the
//! controls? One model holds an indicator for every level but a reference; a Wald test of all of them
//! together, on the same small-sample cluster-robust covariance the single findings use, against an F
//! reference with `G − 1` denominator degrees of freedom (G: reps, or deals without a rep). The levels'
//! own findings say which level differs; this says whether the column matters, with one test instead of
//! one per level. docs/methodology.md ("Categorical attributes") says the same in plain words.

use crate::analyse::{clusters, controls_for, LandmarkRows, MIN_REPS};
use crate::design::{self, DesignError, Separation};
use crate::inference::fit_logit;
use crate::{ColumnTest, Options, Outcome, Status};
use winsignal_features::catalog::{Catalog, Definition};
use winsignal_features::snapshot::Snapshot;
use winsignal_stats::cox::{self, CoxOptions};
use winsignal_stats::linalg::spd_inverse;
use winsignal_stats::{dist, ols, Matrix};

pub const LOGIT_JOINT: &str = "logistic regression with an indicator per level; Wald test of all levels together on CR2 cluster-robust errors (by rep; by deal for deals without a rep), F with G − 1 denominator degrees of freedom";
pub const OLS_JOINT: &str = "linear regression of log amount among won deals with an indicator per level; Wald test of all levels together on CR2 cluster-robust errors, F with G − 1 denominator degrees of freedom";
pub const COX_JOINT: &str = "Cox proportional hazards of time to close-won with an indicator per level; Wald test of all levels together on cluster-robust errors (leave-one-rep-out jackknife up to 20 reps, else robust with the factor G/(G − 1)), F with G − 1 denominator degrees of freedom";

/// Up to this many clusters the Cox covariance of the levels is the leave-one-cluster-out jackknife's.
const JACKKNIFE_MAX_REPS: usize = 20;

/// One categorical definition of the resolved catalog: its levels' yes/no definitions.
pub struct Column<'a> {
    pub id: &'a str,
    pub version: u32,
    pub title: &'a str,
    /// `(flag index into Snapshot::flags, level)`, in catalog order.
    pub levels: Vec<(usize, &'a str)>,
}

/// The categorical columns of a catalog whose categorical definitions were split into levels
/// (`winsignal_features::levels::resolve`), in catalog order.
pub fn columns(catalog: &Catalog) -> Vec<Column<'_>> {
    let mut out: Vec<Column<'_>> = Vec::new();
    let behaviours = catalog.behaviours.iter().filter(|d| d.is_behaviour());
    for (flag, d) in behaviours.enumerate() {
        let Some(l) = &d.level else { continue };
        match out.iter_mut().find(|c| c.id == l.definition) {
            Some(c) => c.levels.push((flag, l.level.as_str())),
            None => out.push(Column {
                id: &l.definition,
                version: d.version,
                title: parent_title(d),
                levels: vec![(flag, l.level.as_str())],
            }),
        }
    }
    out
}

/// The categorical definition's own title: the level's title without ` = <level>`.
fn parent_title(d: &Definition) -> &str {
    match &d.level {
        Some(l) => d
            .title
            .strip_suffix(&format!(" = {}", l.level))
            .unwrap_or(&d.title),
        None => &d.title,
    }
}

/// The joint test of one column at one landmark for one outcome.
pub fn test(
    catalog: &Catalog,
    col: &Column<'_>,
    outcome: Outcome,
    landmark: &str,
    lm: &LandmarkRows<'_>,
    opts: &Options,
) -> ColumnTest {
    use winsignal_core::Outcome as O;
    let keep = |s: &Snapshot| match outcome {
        Outcome::Win => s.outcome != O::Open,
        Outcome::CycleTime => true,
        Outcome::DealSize => s.outcome == O::Won && s.amount.is_some_and(|a| a > 0.0),
    };
    // Each analysed row's level: the one level whose flag is yes (a row whose value is missing has none).
    let level_of = |s: &Snapshot| {
        col.levels
            .iter()
            .position(|(f, _)| s.flags[*f] == Some(true))
    };
    let (idx, level): (Vec<usize>, Vec<usize>) = (0..lm.rows.len())
        .filter(|i| keep(lm.rows[*i]))
        .filter_map(|i| Some((i, level_of(lm.rows[i])?)))
        .unzip();
    let rows: Vec<&Snapshot> = idx.iter().map(|i| lm.rows[*i]).collect();
    let won: Vec<bool> = rows.iter().map(|s| s.outcome == O::Won).collect();
    let events = won.iter().filter(|w| **w).count();
    let mut t = ColumnTest {
        outcome,
        landmark: landmark.to_string(),
        behaviour: col.id.to_string(),
        version: col.version,
        title: col.title.to_string(),
        levels: Vec::new(),
        reference: None,
        status: Status::NotEnoughData,
        note: None,
        n: rows.len(),
        events,
        f: None,
        df1: 0,
        df2: None,
        p: None,
        q: None,
        significant: false,
        method: match outcome {
            Outcome::Win => LOGIT_JOINT,
            Outcome::CycleTime => COX_JOINT,
            Outcome::DealSize => OLS_JOINT,
        },
        adjusted_for: Vec::new(),
        leakage: None,
    };
    // Levels with fewer than min_group deals here are pooled; a pool still that small joins the
    // reference (the most common level), as the design pools a categorical control.
    let mut counts = vec![0usize; col.levels.len()];
    level.iter().for_each(|l| counts[*l] += 1);
    let Some(reference) =
        (0..counts.len()).max_by(|a, b| counts[*a].cmp(&counts[*b]).then(b.cmp(a)))
    else {
        t.note = Some("not enough data: the column has no levels".into());
        return t;
    };
    let small = |l: usize| counts[l] < opts.min_group;
    let pooled: usize = (0..counts.len())
        .filter(|l| small(*l))
        .map(|l| counts[l])
        .sum();
    let pool_alone = pooled >= opts.min_group;
    let group = |l: usize| -> Option<usize> {
        // None: the reference group.
        if l == reference || (small(l) && !pool_alone) {
            None
        } else if small(l) {
            Some(usize::MAX)
        } else {
            Some(l)
        }
    };
    let mut groups: Vec<usize> = (0..counts.len())
        .filter_map(group)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    groups.sort();
    let label = |g: usize| -> String {
        if g == usize::MAX {
            let names: Vec<&str> = (0..counts.len())
                .filter(|l| small(*l) && counts[*l] > 0)
                .map(|l| col.levels[l].1)
                .collect();
            format!(
                "(fewer than {} deals here: {})",
                opts.min_group,
                names.join(", ")
            )
        } else {
            col.levels[g].1.to_string()
        }
    };
    t.reference = Some(col.levels[reference].1.to_string());
    t.levels = groups.iter().map(|g| label(*g)).collect();
    let losses = rows.len() - events;
    let cl = clusters(lm, &idx);
    let g_count = cl.iter().max().map_or(0, |m| *m as usize + 1);
    let short = if groups.is_empty() {
        Some(format!(
            "only one level has at least {} deals here, so there is nothing to compare",
            opts.min_group
        ))
    } else if outcome == Outcome::Win && events.min(losses) < opts.min_events {
        Some(format!(
            "{events} won and {losses} lost; at least {} of each are needed",
            opts.min_events
        ))
    } else if outcome == Outcome::CycleTime && events < opts.min_events {
        Some(format!(
            "{events} closed won; at least {} are needed",
            opts.min_events
        ))
    } else if g_count < MIN_REPS {
        Some(format!(
            "the deals belong to {g_count} reps; errors clustered by rep need at least {MIN_REPS}"
        ))
    } else if g_count - 1 < groups.len() {
        Some(format!(
            "{} levels to test together but {g_count} reps: the test needs more reps than levels",
            groups.len() + 1
        ))
    } else {
        None
    };
    if let Some(why) = short {
        t.note = Some(format!("not enough data: {why}"));
        return t;
    }
    let focals: Vec<(String, Vec<f64>)> = groups
        .iter()
        .map(|g| {
            let column = level
                .iter()
                .map(|l| (group(*l) == Some(*g)) as u8 as f64)
                .collect();
            (format!("{}={}", col.id, label(*g)), column)
        })
        .collect();
    let controls = controls_for(catalog, lm, &idx, outcome, opts);
    let y01: Vec<f64> = won.iter().map(|w| *w as u8 as f64).collect();
    let separation = match outcome {
        Outcome::Win => Separation::Outcome(&y01),
        Outcome::CycleTime => Separation::NoEvents(&y01),
        Outcome::DealSize => Separation::None,
    };
    let intercept = outcome != Outcome::CycleTime;
    let design = match design::build_joint(&focals, &controls, intercept, separation) {
        Ok(d) => d,
        Err(DesignError::FocalCollinear) => {
            t.status = Status::Refused;
            t.note = Some("refused: the levels are fully explained by the controls".into());
            return t;
        }
    };
    t.adjusted_for = design.adjusted_for.clone();
    let first = usize::from(intercept);
    let at: Vec<usize> = (first..first + focals.len()).collect();
    let estimated: Result<(Vec<f64>, Matrix), String> = match outcome {
        Outcome::Win => fit_logit(&y01, &design)
            .map_err(|e| format!("refused: the model could not be fitted ({e})"))
            .and_then(|fit| {
                if fit.firth {
                    return Err("refused: a level separates won from lost (every deal at it has the same outcome), so the plain fit has no finite estimate to test; the level's own finding carries the penalised estimate".into());
                }
                let robust = fit
                    .cr2(&design.x, &y01, &cl)
                    .map_err(|e| format!("refused: the standard errors could not be computed ({e})"))?;
                Ok((fit.est.beta.clone(), robust.cov))
            }),
        Outcome::DealSize => {
            let y: Vec<f64> = rows
                .iter()
                .map(|s| s.amount.unwrap_or(f64::NAN).ln())
                .collect();
            ols::fit(&y, &design.x, None)
                .map_err(|e| format!("refused: the model could not be fitted ({e})"))
                .and_then(|fit| {
                    let robust = fit
                        .cr2(&design.x, &cl)
                        .map_err(|e| format!("refused: the standard errors could not be computed ({e})"))?;
                    Ok((fit.est.beta.clone(), robust.cov))
                })
        }
        Outcome::CycleTime => {
            let time: Vec<f64> = rows.iter().map(|s| s.days_observed.max(1e-6)).collect();
            cox_joint(&time, &won, &design.x, &cl, g_count, &at)
        }
    };
    let (beta, cov) = match estimated {
        Ok(x) => x,
        Err(why) => {
            t.status = Status::Refused;
            t.note = Some(why);
            return t;
        }
    };
    match wald_f(&beta, &cov, &at, (g_count - 1) as f64) {
        Some((f, p)) => {
            t.status = Status::Estimated;
            t.f = Some(f);
            t.df1 = at.len();
            t.df2 = Some((g_count - 1) as f64);
            t.p = Some(p);
        }
        None => {
            t.status = Status::Refused;
            t.note = Some(
                "refused: the covariance of the levels is singular (the clusters do not vary the levels enough)"
                    .into(),
            );
        }
    }
    t
}

/// Cox coefficients and the covariance of the columns `at`: the leave-one-cluster-out jackknife's up
/// to [`JACKKNIFE_MAX_REPS`] clusters (the robust sandwich is too small with few), else the robust
/// sandwich times `G/(G − 1)`.
fn cox_joint(
    time: &[f64],
    won: &[bool],
    x: &Matrix,
    cl: &[u32],
    g_count: usize,
    at: &[usize],
) -> Result<(Vec<f64>, Matrix), String> {
    let opts = CoxOptions::default();
    let fit = cox::fit(time, won, x, Some(cl), &opts)
        .map_err(|e| format!("refused: the model could not be fitted ({e})"))?;
    let g = g_count as f64;
    if g_count > JACKKNIFE_MAX_REPS {
        let mut cov = fit.cov.clone();
        cov.scale(g / (g - 1.0));
        return Ok((fit.beta, cov));
    }
    let k = x.cols();
    let mut leave_out: Vec<Vec<f64>> = Vec::with_capacity(g_count);
    for c in 0..g_count as u32 {
        let keep: Vec<usize> = (0..time.len()).filter(|i| cl[*i] != c).collect();
        let sub = Matrix::from_rows(
            keep.len(),
            k,
            keep.iter().flat_map(|i| x.row(*i).to_vec()).collect(),
        );
        let t: Vec<f64> = keep.iter().map(|i| time[*i]).collect();
        let e: Vec<bool> = keep.iter().map(|i| won[*i]).collect();
        let refit = cox::fit(&t, &e, &sub, None, &opts).map_err(|e| {
            format!(
                "refused: the levels' effect rests on one rep's deals — leaving a rep out, the model could not be fitted ({e})"
            )
        })?;
        leave_out.push(refit.beta);
    }
    let mean: Vec<f64> = (0..k)
        .map(|j| leave_out.iter().map(|b| b[j]).sum::<f64>() / g)
        .collect();
    let mut cov = Matrix::zeros(k, k);
    for b in &leave_out {
        for &ja in at {
            for &jb in at {
                *cov.get_mut(ja, jb) += (b[ja] - mean[ja]) * (b[jb] - mean[jb]) * (g - 1.0) / g;
            }
        }
    }
    Ok((fit.beta, cov))
}

/// The Wald statistic of the coefficients `at` being all zero, divided by their number (an F
/// statistic), and its p-value against F(q, df2). `None` when their covariance is not positive
/// definite.
pub fn wald_f(beta: &[f64], cov: &Matrix, at: &[usize], df2: f64) -> Option<(f64, f64)> {
    let q = at.len();
    let mut v = Matrix::zeros(q, q);
    for (a, &ja) in at.iter().enumerate() {
        for (b, &jb) in at.iter().enumerate() {
            *v.get_mut(a, b) = cov.get(ja, jb);
        }
    }
    let inv = spd_inverse(&v).ok()?;
    let b: Vec<f64> = at.iter().map(|j| beta[*j]).collect();
    let w: f64 = (0..q)
        .map(|a| (0..q).map(|c| b[a] * inv.get(a, c) * b[c]).sum::<f64>())
        .sum();
    if !w.is_finite() || w < 0.0 {
        return None;
    }
    let f = w / q as f64;
    Some((f, f_upper_tail(f, q as f64, df2)))
}

/// P(F > f) for F with `(d1, d2)` degrees of freedom: `I_{d2/(d2 + d1 f)}(d2/2, d1/2)`.
pub fn f_upper_tail(f: f64, d1: f64, d2: f64) -> f64 {
    if f <= 0.0 {
        return 1.0;
    }
    dist::incomplete_beta(d2 / (d2 + d1 * f), d2 / 2.0, d1 / 2.0).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_f_tail_matches_reference_values() {
        // With d1 = 2 the tail has the closed form (1 + 2 f / d2)^(−d2/2) (scipy.stats.f.sf(3, 2, 10)
        // = 1.6^−5 = 0.0953674...), and F(1, d2) is t² with d2 degrees of freedom.
        assert!((f_upper_tail(3.0, 2.0, 10.0) - 1.6f64.powi(-5)).abs() < 1e-9);
        assert!((f_upper_tail(4.0, 1.0, 12.0) - dist::t_two_sided_p(2.0, 12.0)).abs() < 1e-9);
        assert_eq!(f_upper_tail(0.0, 2.0, 10.0), 1.0);
    }
}

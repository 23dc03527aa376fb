//! The design matrix of one analysis: intercept, the behaviour (or feature) under study, and the controls
//! — categorical controls as treatment-coded dummies with rare levels pooled, numeric controls with a
//! missing-value indicator — with constant and collinear control columns dropped.

use winsignal_stats::linalg::cholesky;
use winsignal_stats::{FitError, Matrix};

/// Levels with fewer rows than this are pooled into "(other)"; an "(other)" that is still smaller joins
/// the reference level.
pub const MIN_LEVEL: usize = 30;

/// One control as given: its name and its value in every row of the analysis.
pub struct ControlColumn<'a> {
    pub name: String,
    pub values: ControlValues<'a>,
}

/// A control's values: numbers (`None` when missing), or categories as codes into sorted labels.
pub enum ControlValues<'a> {
    Numeric(Vec<Option<f64>>),
    /// `labels` are sorted and distinct; `codes[i]` indexes the label of row `i`.
    Categorical {
        codes: Vec<u32>,
        labels: &'a [String],
    },
}

#[derive(Debug, Clone)]
pub struct Design {
    /// Column names: `"(intercept)"`, the focal column, then control columns such as `segment=SMB`.
    pub names: Vec<String>,
    pub x: Matrix,
    /// Controls actually in the model (names as given), for "adjusted for".
    pub adjusted_for: Vec<String>,
    /// Control columns left out because they were constant or a linear combination of the others.
    pub dropped: Vec<String>,
}

/// Why no design could be made.
#[derive(Debug, Clone, PartialEq)]
pub enum DesignError {
    /// The focal column is constant or fully explained by the controls.
    FocalCollinear,
}

fn encode_categorical(name: &str, row_codes: &[u32], labels: &[String]) -> Vec<(String, Vec<f64>)> {
    // The labels present in these rows, in label order, and each row's index among them.
    let mut present = vec![usize::MAX; labels.len()];
    row_codes.iter().for_each(|c| present[*c as usize] = 0);
    let mut names: Vec<String> = Vec::new();
    for (label, slot) in labels.iter().zip(present.iter_mut()) {
        if *slot == 0 {
            *slot = names.len();
            names.push(label.clone());
        }
    }
    let mut codes: Vec<usize> = row_codes.iter().map(|c| present[*c as usize]).collect();
    let count = |codes: &[usize], k: usize| {
        let mut c = vec![0usize; k];
        codes.iter().for_each(|x| c[*x] += 1);
        c
    };
    // Level names with "(other)" appended as the last code.
    let other = names.len();
    names.push("(other)".into());
    let c = count(&codes, names.len());
    for x in codes.iter_mut() {
        if c[*x] < MIN_LEVEL {
            *x = other;
        }
    }
    let c = count(&codes, names.len());
    // The reference: the most common level, ties to the first name in order.
    let mut order: Vec<usize> = (0..names.len()).filter(|i| c[*i] > 0).collect();
    order.sort_by(|a, b| names[*a].cmp(&names[*b]));
    let reference = order
        .iter()
        .copied()
        .max_by(|a, b| c[*a].cmp(&c[*b]).then(names[*b].cmp(&names[*a])))
        .unwrap_or(0);
    if c[other] > 0 && c[other] < MIN_LEVEL {
        for x in codes.iter_mut() {
            if *x == other {
                *x = reference;
            }
        }
    }
    let c = count(&codes, names.len());
    order
        .into_iter()
        .filter(|l| *l != reference && c[*l] > 0)
        .map(|level| {
            let column = codes
                .iter()
                .map(|x| if *x == level { 1.0 } else { 0.0 })
                .collect();
            (format!("{name}={}", names[level]), column)
        })
        .collect()
}

fn encode_numeric(name: &str, values: &[Option<f64>]) -> Vec<(String, Vec<f64>)> {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    if present.is_empty() {
        return Vec::new();
    }
    let mean = present.iter().sum::<f64>() / present.len() as f64;
    let mut out = vec![(
        name.to_string(),
        values
            .iter()
            .map(|v| v.unwrap_or(mean))
            .collect::<Vec<f64>>(),
    )];
    if present.len() < values.len() {
        out.push((
            format!("{name} (missing)"),
            values
                .iter()
                .map(|v| if v.is_some() { 0.0 } else { 1.0 })
                .collect(),
        ));
    }
    out
}

/// Which control levels would make a coefficient infinite, and are left out (their rows counted with the
/// reference level).
#[derive(Clone, Copy)]
pub enum Separation<'a> {
    /// No check (linear regression).
    None,
    /// A binary outcome (0/1 per row): a level whose rows all have the same outcome.
    Outcome(&'a [f64]),
    /// Events of a survival model (1 = the event happened): a level without any event — its hazard
    /// ratio would be 0, and the fit would not converge.
    NoEvents(&'a [f64]),
}

/// Builds the design for `focal` (one value per row) and the controls. With `intercept` false (Cox
/// models have none) the first column is the focal one. A control level (or missing-value indicator)
/// that separates the outcome as `separation` says is left out, its rows counted with the reference
/// level.
pub fn build(
    focal_name: &str,
    focal: &[f64],
    controls: &[ControlColumn<'_>],
    intercept: bool,
    separation: Separation<'_>,
) -> Result<Design, DesignError> {
    build_joint(
        &[(focal_name.to_string(), focal.to_vec())],
        controls,
        intercept,
        separation,
    )
}

/// [`build`] with several focal columns (the level indicators of one categorical column, tested
/// together): they follow the intercept in the order given; the design is refused when any of them is
/// constant or explained by the controls and the other focal columns.
pub fn build_joint(
    focals: &[(String, Vec<f64>)],
    controls: &[ControlColumn<'_>],
    intercept: bool,
    separation: Separation<'_>,
) -> Result<Design, DesignError> {
    let n = focals.first().map_or(0, |f| f.1.len());
    let mut cols: Vec<(String, Option<String>, Vec<f64>)> = Vec::new();
    if intercept {
        cols.push(("(intercept)".into(), None, vec![1.0; n]));
    }
    for (name, focal) in focals {
        cols.push((name.clone(), None, focal.clone()));
    }
    let mut dropped = Vec::new();
    for c in controls {
        let encoded = match &c.values {
            ControlValues::Numeric(values) => encode_numeric(&c.name, values),
            ControlValues::Categorical { codes, labels } => {
                encode_categorical(&c.name, codes, labels)
            }
        };
        for (name, v) in encoded {
            let first = v.first().copied().unwrap_or(0.0);
            let indicator = v.iter().all(|x| *x == 0.0 || *x == 1.0);
            let level = || (0..n).filter(|i| v[*i] == 1.0);
            let separates = indicator
                && match separation {
                    Separation::None => false,
                    Separation::Outcome(y) => {
                        let mut outcomes = level().map(|i| y[i]);
                        outcomes
                            .next()
                            .is_some_and(|first| outcomes.all(|x| x == first))
                    }
                    Separation::NoEvents(events) => level().all(|i| events[i] == 0.0),
                };
            if v.iter().all(|x| *x == first) {
                dropped.push(name);
            } else if separates {
                dropped.push(match separation {
                    Separation::NoEvents(_) => format!("{name} (no deal at this level closed won)"),
                    _ => format!("{name} (every deal has the same outcome)"),
                });
            } else {
                cols.push((name, Some(c.name.clone()), v));
            }
        }
    }
    let focal_at = usize::from(intercept);
    let is_focal = |j: usize| j >= focal_at && j < focal_at + focals.len();
    for (_, focal) in focals {
        let focal_first = focal.first().copied().unwrap_or(0.0);
        if focal.iter().all(|x| *x == focal_first) {
            return Err(DesignError::FocalCollinear);
        }
    }
    // Drop control columns that are linear combinations of earlier ones, one at a time. The check puts
    // the focal column last, so a control that merely duplicates other controls is found (and dropped)
    // first, and a focal column that the controls explain fails on itself: it is refused, not kept while
    // a control is dropped in its place (which would silently change what it is compared with).
    // The Gram matrix of every column once; each check below takes the rows and columns still in.
    let everything: Vec<&(String, Option<String>, Vec<f64>)> = cols.iter().collect();
    let x = to_matrix(&everything, n);
    let mut gram = x.weighted_gram(None);
    if !intercept {
        // Centre (Cox models have no intercept; collinearity is among centred columns).
        let means: Vec<f64> = (0..x.cols())
            .map(|j| x.column(j).iter().sum::<f64>() / n as f64)
            .collect();
        for a in 0..x.cols() {
            for b in 0..x.cols() {
                *gram.get_mut(a, b) -= n as f64 * means[a] * means[b];
            }
        }
    }
    let mut alive: Vec<usize> = (0..cols.len()).collect();
    loop {
        let mut order: Vec<usize> = alive.iter().copied().filter(|j| !is_focal(*j)).collect();
        order.extend(focal_at..focal_at + focals.len());
        let k = order.len();
        let mut sub = Matrix::zeros(k, k);
        for (a, &ja) in order.iter().enumerate() {
            for (b, &jb) in order.iter().enumerate() {
                *sub.get_mut(a, b) = gram.get(ja, jb);
            }
        }
        match cholesky(&sub) {
            Ok(_) => {
                let kept: Vec<&(String, Option<String>, Vec<f64>)> =
                    alive.iter().map(|j| &cols[*j]).collect();
                let mut adjusted_for: Vec<String> = Vec::new();
                for (_, control, _) in &kept {
                    if let Some(c) = control {
                        if !adjusted_for.contains(c) {
                            adjusted_for.push(c.clone());
                        }
                    }
                }
                let x = if kept.len() == cols.len() {
                    x
                } else {
                    to_matrix(&kept, n)
                };
                return Ok(Design {
                    names: kept.iter().map(|c| c.0.clone()).collect(),
                    x,
                    adjusted_for,
                    dropped,
                });
            }
            Err(FitError::Singular { column })
                if !(is_focal(order[column]) || intercept && order[column] == 0) =>
            {
                dropped.push(cols[order[column]].0.clone());
                alive.retain(|j| *j != order[column]);
            }
            Err(_) => return Err(DesignError::FocalCollinear),
        }
    }
}

fn to_matrix(cols: &[&(String, Option<String>, Vec<f64>)], n: usize) -> Matrix {
    let k = cols.len();
    let mut data = Vec::with_capacity(n * k);
    for i in 0..n {
        for c in cols {
            data.push(c.2[i]);
        }
    }
    Matrix::from_rows(n, k, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_levels_are_pooled_and_a_small_pool_joins_the_reference() {
        // Labels sorted: Enterprise = 0, Gov = 1, SMB = 2.
        let labels: Vec<String> = ["Enterprise", "Gov", "SMB"].map(String::from).to_vec();
        let codes: Vec<u32> = std::iter::repeat_n(2, 100)
            .chain(std::iter::repeat_n(0, 40))
            .chain(std::iter::repeat_n(1, 5))
            .collect();
        let enc = encode_categorical("segment", &codes, &labels);
        // SMB is the reference; Gov (5 rows) would be "(other)", too small, so it joins SMB.
        assert_eq!(enc.len(), 1);
        assert_eq!(enc[0].0, "segment=Enterprise");
        assert_eq!(enc[0].1.iter().sum::<f64>(), 40.0);
    }

    #[test]
    fn a_duplicate_control_is_dropped_and_a_focal_the_controls_explain_is_refused() {
        let focal: Vec<f64> = (0..60).map(|i| (i % 2) as f64).collect();
        let labels: Vec<String> = vec!["a".into(), "b".into()];
        let numeric = |name: &str, scale: f64| ControlColumn {
            name: name.into(),
            values: ControlValues::Numeric((0..60).map(|i| Some(scale * i as f64)).collect()),
        };
        let same = ControlColumn {
            name: "copy".into(),
            values: ControlValues::Categorical {
                codes: focal
                    .iter()
                    .map(|v| if *v == 1.0 { 0 } else { 1 })
                    .collect(),
                labels: &labels,
            },
        };
        // A control that duplicates another control is dropped; the focal column stays.
        let d = build(
            "focal",
            &focal,
            &[numeric("n", 1.0), numeric("twice", 2.0)],
            true,
            Separation::None,
        )
        .unwrap_or_else(|_| panic!("design"));
        assert_eq!(d.names, ["(intercept)", "focal", "n"]);
        assert_eq!(d.dropped, ["twice"]);
        // A focal column the controls explain is refused, not kept in place of the control.
        let explained = build(
            "focal",
            &focal,
            &[numeric("n", 1.0), same],
            true,
            Separation::None,
        );
        assert_eq!(explained.err(), Some(DesignError::FocalCollinear));
        let constant = vec![1.0; 60];
        assert!(build(
            "focal",
            &constant,
            &[numeric("n", 1.0)],
            true,
            Separation::None
        )
        .is_err());
    }
}

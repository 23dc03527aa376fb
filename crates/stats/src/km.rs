//! Kaplan–Meier survival curves: the step function, survival at any time, and the median time with its
//! confidence interval, defined as lifelines' `KaplanMeierFitter` defines them.

use crate::dist::normal_quantile;
use crate::FitError;

/// One distinct observed time of a Kaplan–Meier curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepPoint {
    pub time: f64,
    /// Estimated probability of surviving past `time` (the curve's value from `time` on).
    pub survival: f64,
    /// Rows still under observation just before `time`.
    pub at_risk: usize,
    /// Events observed at `time`.
    pub events: usize,
    /// Rows censored at `time` (counted at risk at `time`).
    pub censored: usize,
    /// Greenwood's sum `Σ d / (n (n − d))` up to `time`: the variance of `log S(time)`.
    pub greenwood: f64,
}

/// A Kaplan–Meier survival curve: a step function that starts at 1 and drops at each event time.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// One point per distinct time (event or censoring), in increasing time.
    pub points: Vec<StepPoint>,
    /// Rows the curve was estimated from.
    pub n: usize,
}

/// The median's tolerance: a survival of `0.5 + 1e-12` counts as having reached one half, so that a
/// curve that reaches exactly 0.5 in exact arithmetic is not pushed past it by rounding.
const HALF_TOLERANCE: f64 = 1e-12;

/// Estimates the survival curve from follow-up times and event flags (`false`: censored at that time).
/// At a time with both events and censorings the censored rows count as at risk, as usual.
///
/// Errors: [`FitError::Invalid`] when the lengths differ or a time is not a finite number (naming the
/// row). No rows give an empty curve that stays at 1.
pub fn kaplan_meier(time: &[f64], event: &[bool]) -> Result<Curve, FitError> {
    if time.len() != event.len() {
        return Err(FitError::Invalid(format!(
            "{} times but {} event flags",
            time.len(),
            event.len()
        )));
    }
    if let Some(i) = time.iter().position(|t| !t.is_finite()) {
        return Err(FitError::Invalid(format!(
            "row {i} has a time that is not a finite number ({})",
            time[i]
        )));
    }
    let n = time.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| time[*a].total_cmp(&time[*b]));
    let mut points = Vec::new();
    let mut at_risk = n;
    let mut survival = 1.0;
    let mut greenwood = 0.0;
    let mut start = 0;
    while start < n {
        let t = time[order[start]];
        let mut end = start + 1;
        while end < n && time[order[end]] == t {
            end += 1;
        }
        let events = order[start..end].iter().filter(|i| event[**i]).count();
        if events > 0 {
            let (r, d) = (at_risk as f64, events as f64);
            survival *= (r - d) / r;
            // lifelines drops the term where everyone left dies (it is infinite; the curve is 0 there).
            if events < at_risk {
                greenwood += d / (r * (r - d));
            }
        }
        points.push(StepPoint {
            time: t,
            survival,
            at_risk,
            events,
            censored: end - start - events,
            greenwood,
        });
        at_risk -= end - start;
        start = end;
    }
    Ok(Curve { points, n })
}

impl Curve {
    /// The estimated probability of surviving past `t`: 1 before the first observed time, then the
    /// value at the last observed time not after `t` (lifelines' `survival_function_at_times`).
    pub fn survival_at(&self, t: f64) -> f64 {
        let after = self.points.partition_point(|p| p.time <= t);
        match after {
            0 => 1.0,
            i => self.points[i - 1].survival,
        }
    }

    /// The median survival time: the smallest time at which the curve is at or below one half
    /// (lifelines' `median_survival_time_`), or `None` when it never gets there (lifelines: infinity).
    ///
    /// Where the curve lands on exactly 0.5, this is the time it does so; lifelines computes the curve
    /// as `exp(Σ log(1 − d/n))`, whose rounding can leave it a hair above 0.5 and move its median to the
    /// next event time.
    pub fn median(&self) -> Option<f64> {
        first_at_or_below_half(&self.points, |p| p.survival)
    }

    /// The `level` (e.g. 0.95) confidence interval of the median, from the pointwise exponential
    /// Greenwood ("log-log") band of the curve: the times at which the band's lower and upper edges
    /// first reach one half (`lifelines.utils.median_survival_times(kmf.confidence_interval_)`). An
    /// edge that never reaches one half gives `None` (unbounded).
    pub fn median_ci(&self, level: f64) -> (Option<f64>, Option<f64>) {
        let z = normal_quantile(0.5 + level / 2.0);
        let lower = first_at_or_below_half(&self.points, |p| log_log_band(p, -z));
        let upper = first_at_or_below_half(&self.points, |p| log_log_band(p, z));
        (lower, upper)
    }
}

/// `exp(−exp(log(−log S) + z √V / log S))` with `V` Greenwood's sum: the band's lower edge for `z < 0`
/// and its upper edge for `z > 0` (`log S < 0`); 1 where `S = 1` and 0 where `S = 0`, as in lifelines.
fn log_log_band(p: &StepPoint, z: f64) -> f64 {
    if p.survival >= 1.0 {
        return 1.0;
    }
    if p.survival <= 0.0 {
        return 0.0;
    }
    let v = p.survival.ln();
    (-((-v).ln() + z * p.greenwood.sqrt() / v).exp()).exp()
}

fn first_at_or_below_half(points: &[StepPoint], value: impl Fn(&StepPoint) -> f64) -> Option<f64> {
    points
        .iter()
        .find(|p| value(p) <= 0.5 + HALF_TOLERANCE)
        .map(|p| p.time)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(time: &[f64], event: &[bool]) -> Curve {
        kaplan_meier(time, event).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn textbook_example() {
        // Times 1, 2+, 3, 3, 4+, 5: S = 5/6, then 5/6 · (2/4) at 3 = 5/12, then 0 at 5.
        let c = curve(
            &[3.0, 1.0, 2.0, 3.0, 4.0, 5.0],
            &[true, true, false, true, false, true],
        );
        let times: Vec<f64> = c.points.iter().map(|p| p.time).collect();
        assert_eq!(times, [1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(c.points[2].at_risk, 4);
        assert_eq!(c.points[2].events, 2);
        assert_eq!(c.points[1].censored, 1);
        assert!((c.survival_at(3.5) - 5.0 / 12.0).abs() < 1e-15);
        assert_eq!(c.survival_at(0.5), 1.0);
        assert_eq!(c.survival_at(5.0), 0.0);
        assert_eq!(c.median(), Some(3.0));
    }

    #[test]
    fn no_median_when_the_curve_stays_above_half() {
        let c = curve(&[1.0, 2.0, 3.0, 4.0], &[true, false, false, false]);
        assert_eq!(c.median(), None);
        assert_eq!(c.median_ci(0.95).1, None);
        let empty = curve(&[], &[]);
        assert_eq!(empty.median(), None);
        assert_eq!(empty.survival_at(10.0), 1.0);
    }

    /// Six events at 1..6: S(3) = 0.5 exactly, so the median is 3. lifelines 0.30.3 reports 4 here
    /// because its exp-of-summed-logs gives S(3) = 0.5000000000000001; see [`Curve::median`].
    #[test]
    fn a_curve_landing_on_exactly_half() {
        let c = curve(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[true; 6]);
        assert_eq!(c.median(), Some(3.0));
    }

    #[test]
    fn all_times_tied() {
        let c = curve(&[2.0; 5], &[true, true, false, true, false]);
        assert_eq!(c.points.len(), 1);
        assert!((c.survival_at(2.0) - 0.4).abs() < 1e-15);
        assert_eq!(c.median(), Some(2.0));
    }

    #[test]
    fn bad_input_is_refused() {
        let e = kaplan_meier(&[1.0, f64::NAN], &[true, true]);
        assert!(matches!(e, Err(FitError::Invalid(m)) if m.contains("row 1")));
        assert!(kaplan_meier(&[1.0], &[true, false]).is_err());
    }
}

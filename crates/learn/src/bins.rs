//! Binning learned on training data and stored in a model: quantile cut points for numbers, frequent
//! levels for categories, and a bin of its own for the missing value. New rows map into the same bins
//! deterministically (an unseen level goes to "(other)", a number beyond the training range to the
//! first or last bin).

use serde::{Deserialize, Serialize};

use crate::data::{FeatureValues, Value};
use crate::error::{input, Result};

/// The bin every missing value goes to, whatever the feature.
pub const MISSING_BIN: usize = 0;

/// Bin indexes are stored as `u16` while training, so a feature can have at most this many bins.
pub const MAX_BINS_PER_FEATURE: usize = u16::MAX as usize;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Binning {
    /// Bin 0 is missing; a value with `k` cut points at or below it goes to bin `1 + k`, so bin
    /// `b ≥ 1` holds `cuts[b − 2] ≤ x < cuts[b − 1]`.
    Numeric { cuts: Vec<f64> },
    /// Bin 0 is missing; bins `1..=levels.len()` are the levels (sorted by name); the last bin is
    /// "(other)": levels too rare in training and levels never seen.
    Categorical { levels: Vec<String> },
}

impl Binning {
    /// Learns the binning of one feature from the training rows `rows` (all rows when `None`).
    /// `max_bins` bounds the number of bins of non-missing numbers; `min_category_count` is how often
    /// a level must appear to get a bin of its own.
    pub fn learn(
        name: &str,
        values: &FeatureValues,
        rows: Option<&[usize]>,
        max_bins: usize,
        min_category_count: usize,
    ) -> Result<Binning> {
        let mut one = Binning::learn_each(name, values, rows, &[max_bins], min_category_count)?;
        one.pop()
            .ok_or_else(|| input(format!("feature `{name}`: no binning learned")))
    }

    /// [`Binning::learn`] for each of `max_bins`, sorting (or counting) the values once: an EBM bins
    /// every feature twice, for its main effect and for pairs.
    pub fn learn_each(
        name: &str,
        values: &FeatureValues,
        rows: Option<&[usize]>,
        max_bins: &[usize],
        min_category_count: usize,
    ) -> Result<Vec<Binning>> {
        match values {
            FeatureValues::Numeric(v) => {
                let mut xs: Vec<f64> = match rows {
                    Some(rows) => rows
                        .iter()
                        .filter_map(|&r| v.get(r).copied().flatten())
                        .collect(),
                    None => v.iter().filter_map(|x| *x).collect(),
                };
                // Values equal under `total_cmp` are equal bit for bit, so an unstable sort gives
                // the same order as a stable one.
                xs.sort_unstable_by(f64::total_cmp);
                Ok(max_bins
                    .iter()
                    .map(|&m| Binning::Numeric {
                        cuts: quantile_cuts(&xs, m),
                    })
                    .collect())
            }
            FeatureValues::Categorical(v) => {
                // Counted in a hash map (linear in the rows), then the frequent levels sorted by name.
                let mut counts: std::collections::HashMap<&str, usize> =
                    std::collections::HashMap::new();
                let cells: Box<dyn Iterator<Item = &Option<String>>> = match rows {
                    Some(rows) => Box::new(rows.iter().filter_map(|&r| v.get(r))),
                    None => Box::new(v.iter()),
                };
                for s in cells.filter_map(|s| s.as_deref()) {
                    *counts.entry(s).or_insert(0) += 1;
                }
                let mut levels: Vec<String> = counts
                    .into_iter()
                    .filter(|&(_, n)| n >= min_category_count.max(1))
                    .map(|(s, _)| s.to_string())
                    .collect();
                levels.sort_unstable();
                if levels.len() + 2 > MAX_BINS_PER_FEATURE {
                    return Err(input(format!(
                        "feature `{name}` has {} levels seen at least {min_category_count} times; at most {} are supported (raise min_category_count)",
                        levels.len(),
                        MAX_BINS_PER_FEATURE - 2
                    )));
                }
                Ok(max_bins
                    .iter()
                    .map(|_| Binning::Categorical {
                        levels: levels.clone(),
                    })
                    .collect())
            }
        }
    }

    /// Number of bins, the missing bin and (for categories) "(other)" included.
    pub fn n_bins(&self) -> usize {
        match self {
            Binning::Numeric { cuts } => cuts.len() + 2,
            Binning::Categorical { levels } => levels.len() + 2,
        }
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self, Binning::Numeric { .. })
    }

    /// The bin of one value, or an error when its kind does not match the feature's.
    pub fn bin(&self, value: Value<'_>) -> Result<usize> {
        match (self, value) {
            (_, Value::Missing) => Ok(MISSING_BIN),
            (Binning::Numeric { cuts }, Value::Number(x)) => {
                if !x.is_finite() {
                    return Err(input(format!("{x} is not a finite number")));
                }
                Ok(1 + cuts.partition_point(|c| *c <= x))
            }
            (Binning::Categorical { levels }, Value::Category(s)) => {
                Ok(match levels.binary_search_by(|l| l.as_str().cmp(s)) {
                    Ok(i) => 1 + i,
                    Err(_) => levels.len() + 1,
                })
            }
            (Binning::Numeric { .. }, Value::Category(s)) => {
                Err(input(format!("`{s}` given for a numeric feature")))
            }
            (Binning::Categorical { .. }, Value::Number(x)) => Err(input(format!(
                "the number {x} given for a categorical feature"
            ))),
        }
    }

    /// The bins of a whole column (checked to be of the feature's kind).
    pub fn bin_column(&self, name: &str, values: &FeatureValues) -> Result<Vec<u16>> {
        let mismatch = |found: &str| {
            input(format!(
                "feature `{name}` is {found} in the data but the model has it {}",
                if self.is_numeric() {
                    "numeric"
                } else {
                    "categorical"
                }
            ))
        };
        match (self, values) {
            (Binning::Numeric { cuts }, FeatureValues::Numeric(v)) => Ok(v
                .iter()
                .map(|x| match x {
                    None => MISSING_BIN as u16,
                    Some(x) => (1 + cuts.partition_point(|c| c <= x)) as u16,
                })
                .collect()),
            (Binning::Categorical { levels }, FeatureValues::Categorical(v)) => Ok(v
                .iter()
                .map(|s| match s {
                    None => MISSING_BIN as u16,
                    Some(s) => match levels.binary_search_by(|l| l.as_str().cmp(s)) {
                        Ok(i) => (1 + i) as u16,
                        Err(_) => (levels.len() + 1) as u16,
                    },
                })
                .collect()),
            (_, FeatureValues::Numeric(_)) => Err(mismatch("numeric")),
            (_, FeatureValues::Categorical(_)) => Err(mismatch("categorical")),
        }
    }

    /// A readable label per bin: `(missing)`, `< 3.5`, `[3.5, 7)`, `≥ 7`, a level, `(other)`.
    pub fn labels(&self) -> Vec<String> {
        let mut out = vec!["(missing)".to_string()];
        match self {
            Binning::Numeric { cuts } => {
                if cuts.is_empty() {
                    out.push("(any)".to_string());
                }
                for (k, c) in cuts.iter().enumerate() {
                    if k == 0 {
                        out.push(format!("< {c}"));
                    } else {
                        out.push(format!("[{}, {c})", cuts[k - 1]));
                    }
                }
                if let Some(last) = cuts.last() {
                    out.push(format!("≥ {last}"));
                }
            }
            Binning::Categorical { levels } => {
                out.extend(levels.iter().cloned());
                out.push("(other)".to_string());
            }
        }
        out
    }
}

/// Cut points splitting sorted values into at most `max_bins` bins of about equal counts. A run of
/// equal values is never split, and a heavy value (say 80 % of the rows) takes one bin while the bins
/// left are shared among the rest: the target size is recomputed after every bin. Each cut sits halfway
/// between the two distinct values it separates.
fn quantile_cuts(sorted: &[f64], max_bins: usize) -> Vec<f64> {
    let mut distinct: Vec<(f64, usize)> = Vec::new();
    for &x in sorted {
        match distinct.last_mut() {
            Some((v, n)) if *v == x => *n += 1,
            _ => distinct.push((x, 1)),
        }
    }
    let mut cuts = Vec::new();
    if distinct.len() < 2 || max_bins < 2 {
        return cuts;
    }
    if distinct.len() <= max_bins {
        for w in distinct.windows(2) {
            cuts.push(midpoint(w[0].0, w[1].0));
        }
        return cuts;
    }
    let mut remaining = sorted.len();
    let mut bins_left = max_bins;
    let mut in_bin = 0usize;
    for (idx, &(x, n)) in distinct.iter().enumerate() {
        let target = remaining as f64 / bins_left as f64;
        // Close the bin before this value when that lands nearer the target than taking it in.
        if in_bin > 0
            && bins_left > 1
            && (in_bin + n) as f64 > target
            && target - (in_bin as f64) < (in_bin + n) as f64 - target
        {
            cuts.push(midpoint(distinct[idx - 1].0, x));
            remaining -= in_bin;
            bins_left -= 1;
            in_bin = 0;
        }
        in_bin += n;
        let target = remaining as f64 / bins_left as f64;
        if in_bin as f64 >= target && bins_left > 1 && idx + 1 < distinct.len() {
            cuts.push(midpoint(x, distinct[idx + 1].0));
            remaining -= in_bin;
            bins_left -= 1;
            in_bin = 0;
        }
    }
    cuts
}

/// A cut `c` with `lo < c ≤ hi`, so `lo` falls below it and `hi` at or above it.
fn midpoint(lo: f64, hi: f64) -> f64 {
    let m = lo + (hi - lo) / 2.0;
    if m > lo && m <= hi {
        m
    } else {
        hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(xs: &[Option<f64>], max_bins: usize) -> Binning {
        Binning::learn(
            "x",
            &FeatureValues::Numeric(xs.to_vec()),
            None,
            max_bins,
            10,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn few_distinct_values_get_one_bin_each() {
        let b = numeric(&[Some(3.0), Some(1.0), None, Some(2.0), Some(3.0)], 256);
        assert_eq!(
            b,
            Binning::Numeric {
                cuts: vec![1.5, 2.5]
            }
        );
        assert_eq!(b.bin(Value::Missing).ok(), Some(0));
        assert_eq!(b.bin(Value::Number(1.0)).ok(), Some(1));
        assert_eq!(b.bin(Value::Number(2.5)).ok(), Some(3));
        assert_eq!(b.bin(Value::Number(100.0)).ok(), Some(3));
        assert_eq!(b.bin(Value::Number(-100.0)).ok(), Some(1));
        assert_eq!(b.n_bins(), 4);
    }

    #[test]
    fn quantile_bins_are_balanced_and_respect_heavy_values() {
        // 800 zeros and 1..=200: the zeros take one bin, the rest share the other nine.
        let mut xs: Vec<Option<f64>> = vec![Some(0.0); 800];
        xs.extend((1..=200).map(|i| Some(i as f64)));
        let Binning::Numeric { cuts } = numeric(&xs, 10) else {
            panic!("numeric")
        };
        assert!(cuts.len() <= 9, "{cuts:?}");
        assert_eq!(cuts[0], 0.5);
        assert!(cuts.windows(2).all(|w| w[0] < w[1]));
        let sizes: Vec<usize> = {
            let mut s = vec![0; cuts.len() + 1];
            for x in xs.iter().flatten() {
                s[cuts.partition_point(|c| c <= x)] += 1;
            }
            s
        };
        assert!(
            sizes[1..].iter().all(|&n| (20..=25).contains(&n)),
            "{sizes:?}"
        );
    }

    #[test]
    fn rare_and_unseen_levels_go_to_other() {
        let mut v: Vec<Option<String>> = vec![Some("b".into()); 10];
        v.extend(vec![Some("a".to_string()); 12]);
        v.extend(vec![Some("rare".to_string()); 3]);
        v.push(None);
        let b = Binning::learn("c", &FeatureValues::Categorical(v), None, 256, 10)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.labels(), ["(missing)", "a", "b", "(other)"]);
        assert_eq!(b.bin(Value::Category("a")).ok(), Some(1));
        assert_eq!(b.bin(Value::Category("rare")).ok(), Some(3));
        assert_eq!(b.bin(Value::Category("never")).ok(), Some(3));
        assert!(b.bin(Value::Number(1.0)).is_err());
    }
}

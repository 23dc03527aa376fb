//! The column-oriented data set the learners take: named numeric or categorical features with missing
//! values, checked once on construction so the learners can trust it.

use crate::error::{input, Result};

/// The values of one feature, one per row; `None` is a missing value.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureValues {
    Numeric(Vec<Option<f64>>),
    Categorical(Vec<Option<String>>),
}

impl FeatureValues {
    pub fn len(&self) -> usize {
        match self {
            FeatureValues::Numeric(v) => v.len(),
            FeatureValues::Categorical(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self, FeatureValues::Numeric(_))
    }

    /// The value of one row as a [`Value`] (`Missing` past the end).
    pub fn value(&self, row: usize) -> Value<'_> {
        match self {
            FeatureValues::Numeric(v) => match v.get(row).copied().flatten() {
                Some(x) => Value::Number(x),
                None => Value::Missing,
            },
            FeatureValues::Categorical(v) => match v.get(row).and_then(|s| s.as_deref()) {
                Some(s) => Value::Category(s),
                None => Value::Missing,
            },
        }
    }

    fn subset(&self, rows: &[usize]) -> FeatureValues {
        match self {
            FeatureValues::Numeric(v) => {
                FeatureValues::Numeric(rows.iter().map(|&r| v[r]).collect())
            }
            FeatureValues::Categorical(v) => {
                FeatureValues::Categorical(rows.iter().map(|&r| v[r].clone()).collect())
            }
        }
    }
}

/// One value of one feature, borrowed: how a single row (one deal to score) is given to a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Number(f64),
    Category(&'a str),
    Missing,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub name: String,
    pub values: FeatureValues,
}

impl Feature {
    pub fn numeric(name: impl Into<String>, values: Vec<Option<f64>>) -> Feature {
        Feature {
            name: name.into(),
            values: FeatureValues::Numeric(values),
        }
    }

    pub fn categorical(name: impl Into<String>, values: Vec<Option<String>>) -> Feature {
        Feature {
            name: name.into(),
            values: FeatureValues::Categorical(values),
        }
    }
}

/// Features of equal length with unique names and finite numbers. The fields are private so that a
/// `Dataset` is always valid.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    features: Vec<Feature>,
    n_rows: usize,
}

impl Dataset {
    /// Checks that every feature has the same number of rows, that names are unique and not empty, and
    /// that every number is finite (a missing value is `None`, never NaN).
    pub fn new(features: Vec<Feature>) -> Result<Dataset> {
        let n_rows = features.first().map_or(0, |f| f.values.len());
        for (idx, f) in features.iter().enumerate() {
            if f.name.is_empty() {
                return Err(input(format!("feature {idx} has an empty name")));
            }
            if features[..idx].iter().any(|g| g.name == f.name) {
                return Err(input(format!("feature `{}` appears twice", f.name)));
            }
            if f.values.len() != n_rows {
                return Err(input(format!(
                    "feature `{}` has {} rows but `{}` has {n_rows}",
                    f.name,
                    f.values.len(),
                    features[0].name
                )));
            }
            if let FeatureValues::Numeric(v) = &f.values {
                if let Some(row) = v.iter().position(|x| x.is_some_and(|x| !x.is_finite())) {
                    return Err(input(format!(
                        "feature `{}` row {row} is {:?}, expected a finite number or a missing value",
                        f.name,
                        v[row].unwrap_or_default()
                    )));
                }
            }
        }
        Ok(Dataset { features, n_rows })
    }

    pub fn features(&self) -> &[Feature] {
        &self.features
    }

    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    pub fn n_features(&self) -> usize {
        self.features.len()
    }

    pub fn feature(&self, name: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.name == name)
    }

    pub fn into_features(self) -> Vec<Feature> {
        self.features
    }

    /// The given rows, in the given order (repeats allowed).
    pub fn subset(&self, rows: &[usize]) -> Result<Dataset> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.n_rows) {
            return Err(input(format!(
                "row {bad} asked for, but the data set has {} rows",
                self.n_rows
            )));
        }
        Ok(Dataset {
            features: self
                .features
                .iter()
                .map(|f| Feature {
                    name: f.name.clone(),
                    values: f.values.subset(rows),
                })
                .collect(),
            n_rows: rows.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unequal_lengths_name_the_feature() {
        let e = Dataset::new(vec![
            Feature::numeric("a", vec![Some(1.0), None]),
            Feature::categorical("b", vec![Some("x".into())]),
        ]);
        assert!(matches!(e, Err(crate::Error::Input(m)) if m.contains("`b` has 1 rows")));
    }

    #[test]
    fn a_nan_names_feature_and_row() {
        let e = Dataset::new(vec![Feature::numeric(
            "amount",
            vec![Some(1.0), None, Some(f64::NAN)],
        )]);
        assert!(matches!(e, Err(crate::Error::Input(m)) if m.contains("`amount` row 2")));
    }

    #[test]
    fn subset_keeps_order_and_refuses_bad_rows() {
        let d = Dataset::new(vec![Feature::numeric(
            "a",
            vec![Some(0.0), Some(1.0), Some(2.0)],
        )])
        .unwrap_or_else(|e| panic!("{e}"));
        let s = d.subset(&[2, 0]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.n_rows(), 2);
        assert_eq!(s.features()[0].values.value(0), Value::Number(2.0));
        assert!(d.subset(&[3]).is_err());
    }
}

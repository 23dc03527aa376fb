//! The explainable boosting machine on synthetic data with known structure: exact additivity,
//! determinism, recovery of planted shapes and of a planted interaction, calibration, and refusal of
//! bad input.
#![allow(clippy::unwrap_used)]

use winsignal_learn::calibration::Calibration;
use winsignal_learn::ebm::{self, EbmParams};
use winsignal_learn::{logreg, metrics, Dataset, Ebm, Error, Feature, LogRegParams, Value};

/// SplitMix64, so the data do not depend on any crate's generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Planted additive truth: `logit = −0.5 + 1.5·[step ≥ 5] + 0.4·(linear − 5) + region effect`, plus a
/// pure-noise feature; `step` has 5 % missing values.
fn additive(n: usize, seed: u64) -> (Dataset, Vec<bool>) {
    let mut rng = Rng(seed);
    let regions = ["north", "south", "east", "west"];
    let region_effect = [0.8, -0.8, 0.0, 0.0];
    let (mut step, mut linear, mut noise, mut region, mut y) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let s = rng.uniform() * 10.0;
        let l = rng.uniform() * 10.0;
        let r = (rng.next() % 4) as usize;
        let missing = rng.uniform() < 0.05;
        let mut eta = -0.5 + 0.4 * (l - 5.0) + region_effect[r];
        if !missing && s >= 5.0 {
            eta += 1.5;
        }
        step.push((!missing).then_some(s));
        linear.push(Some(l));
        noise.push(Some(rng.normal()));
        region.push(Some(regions[r].to_string()));
        y.push(rng.uniform() < sigmoid(eta));
    }
    let data = Dataset::new(vec![
        Feature::numeric("step", step),
        Feature::numeric("linear", linear),
        Feature::numeric("noise", noise),
        Feature::categorical("region", region),
    ])
    .unwrap();
    (data, y)
}

fn quick() -> EbmParams {
    EbmParams {
        outer_bags: 4,
        learning_rate: 0.05,
        interactions: 2,
        ..EbmParams::default()
    }
}

#[test]
fn the_logit_is_exactly_the_intercept_plus_the_contributions() {
    let (data, y) = additive(3000, 1);
    let model = ebm::fit(&data, &y, &quick()).unwrap();
    assert_eq!(model.terms().len(), 4 + 2);
    let all = model.predict_logit(&data).unwrap();
    let proba = model.predict_proba(&data).unwrap();
    for row in 0..data.n_rows() {
        let c = model.contributions(&data, row).unwrap();
        assert_eq!(c.len(), model.terms().len());
        // Summed left to right from the intercept, as the model documents: bit for bit.
        let sum = c.iter().fold(model.intercept(), |s, x| s + x);
        let logit = model.logit(&data, row).unwrap();
        assert_eq!(logit.to_bits(), sum.to_bits(), "row {row}");
        assert_eq!(all[row].to_bits(), logit.to_bits(), "row {row}");
        assert_eq!(proba[row], sigmoid_exact(logit));
        let values: Vec<Value<'_>> = data
            .features()
            .iter()
            .map(|f| f.values.value(row))
            .collect();
        let one = model.score_values(&values).unwrap();
        assert_eq!(one.logit.to_bits(), logit.to_bits());
        assert_eq!(one.contributions, c);
    }
    // Every term is centred on the training rows.
    for t in model.terms() {
        let n: u64 = t.bin_counts.iter().sum();
        let mean: f64 = t
            .scores
            .iter()
            .zip(&t.bin_counts)
            .map(|(s, &c)| s * c as f64)
            .sum::<f64>()
            / n as f64;
        assert!(mean.abs() < 1e-9, "{}: mean {mean}", t.name);
    }
}

/// The crate's own sigmoid, restated: probabilities are the logistic function of the same logit.
fn sigmoid_exact(eta: f64) -> f64 {
    if eta >= 0.0 {
        1.0 / (1.0 + (-eta).exp())
    } else {
        let e = eta.exp();
        e / (1.0 + e)
    }
}

#[test]
fn fitting_twice_gives_the_same_bytes_whatever_the_threads() {
    let (data, y) = additive(2000, 2);
    let one = serde_json::to_string(&ebm::fit(&data, &y, &quick()).unwrap()).unwrap();
    let two = serde_json::to_string(&ebm::fit(&data, &y, &quick()).unwrap()).unwrap();
    let single = EbmParams {
        threads: 1,
        ..quick()
    };
    let three = serde_json::to_string(&ebm::fit(&data, &y, &single).unwrap()).unwrap();
    assert_eq!(one, two);
    assert_eq!(one, three);
    // Another seed gives another model.
    let other = EbmParams { seed: 1, ..quick() };
    assert_ne!(
        one,
        serde_json::to_string(&ebm::fit(&data, &y, &other).unwrap()).unwrap()
    );
}

#[test]
fn a_model_survives_serialisation_and_tampering_is_refused() {
    let (data, y) = additive(1500, 3);
    let model = ebm::fit(&data, &y, &quick()).unwrap();
    let json = serde_json::to_string(&model).unwrap();
    let back: Ebm = serde_json::from_str(&json).unwrap();
    assert_eq!(back, model);
    assert_eq!(
        back.predict_logit(&data).unwrap(),
        model.predict_logit(&data).unwrap()
    );
    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["terms"][0]["scores"].as_array_mut().unwrap().pop();
    assert!(serde_json::from_value::<Ebm>(value).is_err());
}

#[test]
fn planted_shapes_are_recovered() {
    let (data, y) = additive(8000, 4);
    let model = ebm::fit(
        &data,
        &y,
        &EbmParams {
            interactions: 0,
            ..EbmParams::default()
        },
    )
    .unwrap();
    let term = |name: &str| model.terms().iter().find(|t| t.name == name).unwrap();
    let cuts = |name: &str| match &model
        .features()
        .iter()
        .find(|f| f.name == name)
        .unwrap()
        .bins
    {
        winsignal_learn::bins::Binning::Numeric { cuts } => cuts.clone(),
        other => panic!("{other:?}"),
    };

    // The step: flat on each side of 5, a jump of about 1.5 at 5.
    let step = term("step");
    let step_cuts = cuts("step");
    let (mut low, mut high) = (Vec::new(), Vec::new());
    for (bin, score) in step.scores.iter().enumerate().skip(1) {
        // Bin b ≥ 1 holds [cuts[b − 2], cuts[b − 1]).
        let lo = if bin >= 2 {
            step_cuts[bin - 2]
        } else {
            f64::NEG_INFINITY
        };
        let hi = step_cuts.get(bin - 1).copied().unwrap_or(f64::INFINITY);
        if hi <= 4.5 {
            low.push(*score);
        } else if lo >= 5.5 {
            high.push(*score);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let jump = mean(&high) - mean(&low);
    assert!((jump - 1.5).abs() < 0.35, "jump {jump}");
    let spread = |v: &[f64]| {
        let m = mean(v);
        v.iter().map(|x| (x - m).abs()).fold(0.0, f64::max)
    };
    assert!(
        spread(&low) < 0.4 && spread(&high) < 0.4,
        "{low:?} {high:?}"
    );

    // The linear term rises: its scores increase with the bin (rank correlation near 1), by about
    // 0.4 per unit.
    let linear = term("linear");
    let lin_cuts = cuts("linear");
    let scores = &linear.scores[1..];
    let n = scores.len();
    let increasing = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .filter(|&(i, j)| scores[j] > scores[i])
        .count() as f64
        / (n * (n - 1) / 2) as f64;
    assert!(increasing > 0.9, "share of increasing pairs {increasing}");
    let first = lin_cuts[0];
    let last = lin_cuts[lin_cuts.len() - 1];
    let slope = (scores[n - 1] - scores[0]) / (last - first);
    assert!((slope - 0.4).abs() < 0.12, "slope {slope}");

    // Regions: north above south by about 1.6; the noise feature matters far less than the others.
    let region = term("region");
    let labels = model.term_labels(3);
    let at = |level: &str| region.scores[labels[0].iter().position(|l| l == level).unwrap()];
    let gap = at("north") - at("south");
    assert!((gap - 1.6).abs() < 0.4, "north − south {gap}");
    let noise = term("noise").importance;
    assert!(noise < step.importance / 4.0, "noise importance {noise}");
    // Error bars exist and are small next to the effects.
    assert!(step.errors.iter().all(|e| e.is_finite() && *e < 0.5));
}

#[test]
fn a_planted_interaction_is_the_top_pair() {
    let mut rng = Rng(5);
    let n = 6000;
    let columns: Vec<Vec<Option<f64>>> = (0..5)
        .map(|_| (0..n).map(|_| Some(rng.uniform())).collect())
        .collect();
    // Only features 1 and 3 matter, and only together (a checkerboard): no main effect at all.
    let y: Vec<bool> = (0..n)
        .map(|i| {
            let a = columns[1][i].unwrap() > 0.5;
            let b = columns[3][i].unwrap() > 0.5;
            let eta = if a == b { 1.2 } else { -1.2 };
            rng.uniform() < sigmoid(eta)
        })
        .collect();
    let data = Dataset::new(
        columns
            .into_iter()
            .enumerate()
            .map(|(j, v)| Feature::numeric(format!("x{j}"), v))
            .collect(),
    )
    .unwrap();
    let model = ebm::fit(&data, &y, &quick()).unwrap();
    assert_eq!(model.summary().pair_ranking[0].features, (1, 3));
    let first_pair = model
        .terms()
        .iter()
        .find(|t| t.features.len() == 2)
        .unwrap();
    assert_eq!(first_pair.name, "x1 × x3");
    let top = model
        .terms()
        .iter()
        .max_by(|a, b| a.importance.total_cmp(&b.importance))
        .unwrap();
    assert_eq!(top.name, "x1 × x3");
    // The model ranks well: the planted effect is strong.
    let p = model.predict_proba(&data).unwrap();
    assert!(metrics::auc(&p, &y).unwrap() > 0.7);

    // Without its pairs the model keeps exactly its main effects and intercept, and loses what only
    // the pair knew.
    let mains = model.without_pairs();
    assert_eq!(model.n_pairs(), 2);
    assert_eq!(mains.n_pairs(), 0);
    assert_eq!(mains.intercept(), model.intercept());
    let kept: Vec<&str> = mains.terms().iter().map(|t| t.name.as_str()).collect();
    let expected: Vec<&str> = model
        .terms()
        .iter()
        .filter(|t| t.features.len() == 1)
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(kept, expected);
    for row in (0..n).step_by(97) {
        let full = model.contributions(&data, row).unwrap();
        let main_sum = model
            .terms()
            .iter()
            .zip(&full)
            .filter(|(t, _)| t.features.len() == 1)
            .fold(model.intercept(), |s, (_, c)| s + c);
        assert_eq!(
            mains.logit(&data, row).unwrap().to_bits(),
            main_sum.to_bits()
        );
    }
    let p = mains.predict_proba(&data).unwrap();
    assert!(metrics::auc(&p, &y).unwrap() < 0.6);
}

#[test]
fn calibration_recovers_a_known_miscalibration_and_keeps_additivity() {
    // Logits whose truth is 0.5 + 0.6 · logit.
    let mut rng = Rng(6);
    let logits: Vec<f64> = (0..20000).map(|_| 2.0 * rng.normal()).collect();
    let y: Vec<bool> = logits
        .iter()
        .map(|l| rng.uniform() < sigmoid(0.5 + 0.6 * l))
        .collect();
    let cal = Calibration::fit(&logits, &y).unwrap();
    assert!((cal.slope - 0.6).abs() < 0.05, "{cal:?}");
    assert!((cal.intercept - 0.5).abs() < 0.06, "{cal:?}");

    let (data, y) = additive(2000, 7);
    let model = ebm::fit(&data, &y, &quick()).unwrap();
    let cal = Calibration {
        slope: 0.8,
        intercept: -0.3,
    };
    let calibrated = model.calibrated(&cal);
    let before = model.predict_logit(&data).unwrap();
    for (row, b) in before.iter().enumerate() {
        let c = calibrated.contributions(&data, row).unwrap();
        let logit = calibrated.logit(&data, row).unwrap();
        assert_eq!(
            logit.to_bits(),
            c.iter()
                .fold(calibrated.intercept(), |s, x| s + x)
                .to_bits()
        );
        assert!((logit - cal.apply(*b)).abs() < 1e-9);
    }
}

#[test]
fn the_logistic_baseline_ranks_the_planted_data() {
    let (data, y) = additive(4000, 8);
    let model = logreg::fit(&data, &y, &LogRegParams::default()).unwrap();
    let p = model.predict_proba(&data).unwrap();
    assert!(metrics::auc(&p, &y).unwrap() > 0.75);
    let linear = model
        .coefficients()
        .into_iter()
        .find(|(n, _)| n == "linear")
        .unwrap()
        .1;
    // 0.4 per unit on a feature with standard deviation 10/√12.
    assert!(
        (linear - 0.4 * 10.0 / 12f64.sqrt()).abs() < 0.25,
        "{linear}"
    );
}

#[test]
fn bad_input_gives_errors_not_panics() {
    let (data, y) = additive(300, 9);
    let params = quick();
    // Mismatched lengths.
    assert!(matches!(
        ebm::fit(&data, &y[..299], &params),
        Err(Error::Input(_))
    ));
    assert!(logreg::fit(&data, &y[..10], &LogRegParams::default()).is_err());
    // A single class.
    let all_true = vec![true; 300];
    assert!(
        matches!(ebm::fit(&data, &all_true, &params), Err(Error::Input(m)) if m.contains("both outcomes"))
    );
    assert!(logreg::fit(&data, &all_true, &LogRegParams::default()).is_err());
    // NaN never makes it into a data set.
    assert!(Dataset::new(vec![Feature::numeric("x", vec![Some(1.0), Some(f64::NAN)])]).is_err());
    // Unequal lengths neither.
    assert!(Dataset::new(vec![
        Feature::numeric("x", vec![Some(1.0)]),
        Feature::numeric("z", vec![Some(1.0), None]),
    ])
    .is_err());
    // No features.
    assert!(ebm::fit(&Dataset::new(vec![]).unwrap(), &[], &params).is_err());
    // Bad parameters.
    let bad = EbmParams {
        learning_rate: f64::NAN,
        ..params.clone()
    };
    assert!(matches!(
        ebm::fit(&data, &y, &bad),
        Err(Error::Param {
            name: "learning_rate",
            ..
        })
    ));
    // Scoring data that lack a feature, or have it of the other kind, or a wrong row.
    let model = ebm::fit(&data, &y, &params).unwrap();
    let fewer = Dataset::new(data.features()[..2].to_vec()).unwrap();
    assert!(model.predict_proba(&fewer).is_err());
    let mut swapped = data.features().to_vec();
    swapped[0] = Feature::categorical("step", vec![Some("a".into()); 300]);
    let swapped = Dataset::new(swapped).unwrap();
    assert!(model.predict_proba(&swapped).is_err());
    assert!(model.contributions(&data, 300).is_err());
    assert!(model.score_values(&[Value::Missing]).is_err());
    assert!(model
        .score_values(&[
            Value::Category("x"),
            Value::Missing,
            Value::Missing,
            Value::Missing
        ])
        .is_err());
    assert!(model
        .score_values(&[
            Value::Number(f64::INFINITY),
            Value::Missing,
            Value::Missing,
            Value::Missing
        ])
        .is_err());
    assert!(model.score_named(&[("nope", Value::Missing)]).is_err());
    // Missing and unseen values score fine.
    let s = model
        .score_named(&[("region", Value::Category("atlantis"))])
        .unwrap();
    assert!(s.probability > 0.0 && s.probability < 1.0);
    // Calibration needs both outcomes and finite logits.
    assert!(Calibration::fit(&[0.1, 0.2], &[true, true]).is_err());
    assert!(Calibration::fit(&[0.1, f64::NAN], &[true, false]).is_err());
}

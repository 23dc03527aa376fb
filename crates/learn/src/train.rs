//! The stages of an EBM fit over its outer bags: main effects, the ranking of candidate pairs, the
//! chosen pairs, and the average of the bags. Every stage runs its bags on up to `threads` threads and
//! collects them in bag order, so the model does not depend on thread timing.

use crate::boost::{
    self, BagColumns, BinIndex, Boosted, LoopParams, Scores, TermShape, TreeParams,
};
use crate::data::Dataset;
use crate::ebm::{BagSummary, EbmParams, ModelFeature, PairStrength};
use crate::error::{Error, Result};
use crate::rng::SplitMix64;

/// One bag's main effects: the starting logit (the bag's base rate) and the boosted tables.
pub(crate) struct BagMains {
    init: f64,
    boosted: Boosted,
}

/// A term of the averaged model, before it is named.
pub(crate) struct AveragedTerm {
    pub features: Vec<usize>,
    pub scores: Vec<f64>,
    pub errors: Vec<f64>,
    pub bin_counts: Vec<u64>,
    pub importance: f64,
}

pub(crate) struct Averaged {
    pub intercept: f64,
    pub terms: Vec<AveragedTerm>,
    pub bags: Vec<BagSummary>,
}

/// Everything the stages share: the binned columns, the outcomes and each bag's split.
pub(crate) struct Training<'p> {
    params: &'p EbmParams,
    tree: TreeParams,
    stopping: LoopParams,
    /// Per feature, the main-effect bin of every row.
    main_bins: Vec<Vec<u16>>,
    main_n: Vec<usize>,
    /// Per feature, the interaction bin of every row.
    inter_bins: Vec<Vec<u16>>,
    inter_n: Vec<usize>,
    nominal: Vec<bool>,
    y01: Vec<f64>,
    splits: Vec<Split>,
}

/// The progress margin of early stopping for `rows` training rows: `early_stopping_progress` from
/// `early_stopping_progress_rows` rows on, in proportion to the rows below that.
fn progress_margin(params: &EbmParams, rows: usize) -> f64 {
    let full = params.early_stopping_progress_rows;
    if rows >= full {
        params.early_stopping_progress
    } else {
        params.early_stopping_progress * rows as f64 / full as f64
    }
}

impl<'p> Training<'p> {
    pub(crate) fn new(
        data: &Dataset,
        y: &[bool],
        features: &[ModelFeature],
        params: &'p EbmParams,
    ) -> Result<Training<'p>> {
        let main_bins = features
            .iter()
            .zip(data.features())
            .map(|(m, f)| m.bins.bin_column(&f.name, &f.values))
            .collect::<Result<_>>()?;
        let inter_bins = features
            .iter()
            .zip(data.features())
            .map(|(m, f)| m.interaction_bins.bin_column(&f.name, &f.values))
            .collect::<Result<_>>()?;
        Ok(Training {
            params,
            tree: TreeParams {
                learning_rate: params.learning_rate,
                max_leaves: params.max_leaves,
                min_samples_leaf: u32::try_from(params.min_samples_leaf).unwrap_or(u32::MAX),
                min_hessian: params.min_hessian,
                cat_smooth: params.cat_smooth,
            },
            stopping: LoopParams {
                max_rounds: params.max_rounds,
                early_stopping_rounds: params.early_stopping_rounds,
                early_stopping_tolerance: params.early_stopping_tolerance,
                early_stopping_progress: progress_margin(params, y.len()),
            },
            main_bins,
            main_n: features.iter().map(|f| f.bins.n_bins()).collect(),
            inter_bins,
            inter_n: features
                .iter()
                .map(|f| f.interaction_bins.n_bins())
                .collect(),
            nominal: features.iter().map(|f| !f.bins.is_numeric()).collect(),
            y01: y.iter().map(|&v| f64::from(u8::from(v))).collect(),
            splits: (0..params.outer_bags)
                .map(|b| {
                    stratified_split(
                        y,
                        params.validation_size,
                        SplitMix64::stream(params.seed, b as u64),
                    )
                })
                .collect(),
        })
    }

    fn each_bag<T: Send>(&self, job: impl Fn(usize) -> T + Sync) -> Result<Vec<T>> {
        parallel_map(self.params.outer_bags, self.params.threads, job)
    }

    /// Stage 1: every feature's main effect, bag by bag, from the bag's base rate.
    pub(crate) fn boost_mains(&self) -> Result<Vec<BagMains>> {
        self.each_bag(|b| {
            let split = &self.splits[b];
            let cols = BagColumns::new(
                gather_all(&self.main_bins, &split.train),
                gather_all(&self.main_bins, &split.val),
                self.main_n.clone(),
            );
            let val_y = gather(&self.y01, &split.val);
            let positives = (split.train.len() - split.n_negative) as f64;
            let init = (positives / split.n_negative as f64).ln();
            let mut scores = Scores {
                train_odds: vec![init.exp() as f32; split.train.len()],
                val: vec![init; val_y.len()],
            };
            let boosted = boost::boost(
                &cols,
                split.n_negative,
                &val_y,
                &mut scores,
                TermShape::Main {
                    nominal: &self.nominal,
                },
                &self.tree,
                &self.stopping,
            );
            BagMains { init, boosted }
        })
    }

    /// Stage 2: every candidate pair ranked by FAST on each bag's mains-only model; the pairs are
    /// ordered by their mean rank across bags (InterpretML's rule), then mean gain, then position. The
    /// first `interactions` pairs with a positive mean gain are chosen.
    pub(crate) fn rank_pairs(
        &self,
        mains: &[BagMains],
    ) -> Result<(Vec<PairStrength>, Vec<(usize, usize)>)> {
        let n_features = self.main_bins.len();
        let candidates: Vec<(usize, usize)> = (0..n_features)
            .flat_map(|a| (a + 1..n_features).map(move |b| (a, b)))
            .collect();
        if self.params.interactions == 0 || candidates.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let strengths = self.each_bag(|b| {
            let train = &self.splits[b].train;
            let odds = mains_odds(&mains[b], &self.main_bins, train);
            boost::pair_strengths(
                &gather_all(&self.inter_bins, train),
                &self.inter_n,
                &gather(&self.y01, train),
                &odds,
                &candidates,
                &self.tree,
            )
        })?;
        let n_bags = strengths.len() as f64;
        let mut mean_rank = vec![0.0; candidates.len()];
        let mut mean_gain = vec![0.0; candidates.len()];
        for gains in &strengths {
            let mut order: Vec<usize> = (0..candidates.len()).collect();
            order.sort_by(|&i, &j| gains[j].total_cmp(&gains[i]).then(i.cmp(&j)));
            for (rank, &c) in order.iter().enumerate() {
                mean_rank[c] += rank as f64 / n_bags;
            }
            for (m, g) in mean_gain.iter_mut().zip(gains) {
                *m += g / n_bags;
            }
        }
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        order.sort_by(|&i, &j| {
            mean_rank[i]
                .total_cmp(&mean_rank[j])
                .then(mean_gain[j].total_cmp(&mean_gain[i]))
                .then(i.cmp(&j))
        });
        let ranking = order
            .iter()
            .map(|&c| PairStrength {
                features: candidates[c],
                mean_rank: mean_rank[c],
                mean_gain: mean_gain[c],
            })
            .collect();
        let chosen = order
            .iter()
            .filter(|&&c| mean_gain[c] > 0.0)
            .take(self.params.interactions)
            .map(|&c| candidates[c])
            .collect();
        Ok((ranking, chosen))
    }

    /// Stage 3: the chosen pairs boosted on top of each bag's frozen main effects.
    pub(crate) fn boost_pairs(
        &self,
        mains: &[BagMains],
        chosen: &[(usize, usize)],
    ) -> Result<Vec<Boosted>> {
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let dims = self.pair_dims(chosen);
        let cells = self.pair_cells(chosen);
        // Two-byte cell indexes when every table allows it (the usual case): less to read per row.
        let narrow: Option<Vec<Vec<u16>>> = dims
            .iter()
            .all(|(a, b)| a * b <= usize::from(u16::MAX))
            .then(|| {
                cells
                    .iter()
                    .map(|c| c.iter().map(|&x| x as u16).collect())
                    .collect()
            });
        self.each_bag(|b| match &narrow {
            Some(narrow) => self.boost_pairs_of_bag(b, &mains[b], narrow, &dims),
            None => self.boost_pairs_of_bag(b, &mains[b], &cells, &dims),
        })
    }

    fn boost_pairs_of_bag<B: BinIndex>(
        &self,
        bag: usize,
        mains: &BagMains,
        cells: &[Vec<B>],
        dims: &[(usize, usize)],
    ) -> Boosted {
        let split = &self.splits[bag];
        let cols = BagColumns::new(
            gather_all(cells, &split.train),
            gather_all(cells, &split.val),
            dims.iter().map(|(a, b)| a * b).collect(),
        );
        let val_y = gather(&self.y01, &split.val);
        let mut scores = Scores {
            train_odds: mains_odds(mains, &self.main_bins, &split.train),
            val: mains_scores(mains, &self.main_bins, &split.val),
        };
        boost::boost(
            &cols,
            split.n_negative,
            &val_y,
            &mut scores,
            TermShape::Pair { dims },
            &self.tree,
            &self.stopping,
        )
    }

    fn pair_dims(&self, chosen: &[(usize, usize)]) -> Vec<(usize, usize)> {
        chosen
            .iter()
            .map(|&(a, b)| (self.inter_n[a], self.inter_n[b]))
            .collect()
    }

    /// Per chosen pair, the cell (`a_bin × n_b + b_bin`) of every row.
    fn pair_cells(&self, chosen: &[(usize, usize)]) -> Vec<Vec<u32>> {
        chosen
            .iter()
            .map(|&(a, b)| {
                self.inter_bins[a]
                    .iter()
                    .zip(&self.inter_bins[b])
                    .map(|(&ia, &ib)| (ia as usize * self.inter_n[b] + ib as usize) as u32)
                    .collect()
            })
            .collect()
    }

    /// Stage 4: each bag's tables centred on all training rows (the means moved into the bag's
    /// intercept), then averaged over the bags, with the spread across bags as the error bar.
    pub(crate) fn average(
        &self,
        mains: &[BagMains],
        pairs: &[Boosted],
        chosen: &[(usize, usize)],
    ) -> Averaged {
        let n_rows = self.y01.len();
        let n_bags = mains.len();
        let term_features: Vec<Vec<usize>> = (0..self.main_bins.len())
            .map(|f| vec![f])
            .chain(chosen.iter().map(|&(a, b)| vec![a, b]))
            .collect();
        let term_counts: Vec<Vec<u64>> = self
            .main_bins
            .iter()
            .zip(&self.main_n)
            .map(|(bins, &nb)| bin_counts(bins, nb))
            .chain(
                self.pair_cells(chosen)
                    .iter()
                    .zip(self.pair_dims(chosen))
                    .map(|(cells, (a, b))| bin_counts(cells, a * b)),
            )
            .collect();
        let mut intercept = 0.0;
        let mut bag_tables: Vec<Vec<Vec<f64>>> = Vec::with_capacity(n_bags);
        for (b, bag) in mains.iter().enumerate() {
            let mut bag_intercept = bag.init;
            let mut tables = bag.boosted.tables.clone();
            if let Some(p) = pairs.get(b) {
                tables.extend(p.tables.iter().cloned());
            }
            for (table, counts) in tables.iter_mut().zip(&term_counts) {
                let mean = weighted_mean(table, counts);
                table.iter_mut().for_each(|s| *s -= mean);
                bag_intercept += mean;
            }
            intercept += bag_intercept / n_bags as f64;
            bag_tables.push(tables);
        }
        let terms = term_features
            .into_iter()
            .zip(term_counts)
            .enumerate()
            .map(|(t, (features, bin_counts))| {
                let size = bin_counts.len();
                let mut scores = vec![0.0; size];
                for tables in &bag_tables {
                    for (s, v) in scores.iter_mut().zip(&tables[t]) {
                        *s += v / n_bags as f64;
                    }
                }
                let mut errors = vec![0.0; size];
                for tables in &bag_tables {
                    for ((e, v), m) in errors.iter_mut().zip(&tables[t]).zip(&scores) {
                        *e += (v - m) * (v - m) / n_bags as f64;
                    }
                }
                errors.iter_mut().for_each(|e| *e = e.sqrt());
                let importance = bin_counts
                    .iter()
                    .zip(&scores)
                    .map(|(&c, s)| c as f64 * s.abs())
                    .sum::<f64>()
                    / n_rows as f64;
                AveragedTerm {
                    features,
                    scores,
                    errors,
                    bin_counts,
                    importance,
                }
            })
            .collect();
        let bags = self
            .splits
            .iter()
            .zip(mains)
            .enumerate()
            .map(|(b, (split, bag))| BagSummary {
                n_train: split.train.len(),
                n_validation: split.val.len(),
                main_best_round: bag.boosted.best_round,
                main_rounds: bag.boosted.rounds,
                pair_best_round: pairs.get(b).map_or(0, |p| p.best_round),
                pair_rounds: pairs.get(b).map_or(0, |p| p.rounds),
            })
            .collect();
        Averaged {
            intercept,
            terms,
            bags,
        }
    }
}

/// One bag's rows: the training rows negatives first (as the boosting kernels want them), each outcome
/// ascending; the validation rows ascending.
struct Split {
    train: Vec<u32>,
    val: Vec<u32>,
    n_negative: usize,
}

/// A validation share of each outcome's rows, drawn at random; at least one row of each outcome stays
/// for training.
fn stratified_split(y: &[bool], validation_size: f64, mut rng: SplitMix64) -> Split {
    let mut train = Vec::with_capacity(y.len());
    let mut val = Vec::new();
    let mut n_negative = 0;
    for class in [false, true] {
        let mut rows: Vec<u32> = (0..y.len() as u32)
            .filter(|&i| y[i as usize] == class)
            .collect();
        rng.shuffle(&mut rows);
        let n_val = ((validation_size * rows.len() as f64).round() as usize)
            .min(rows.len().saturating_sub(1));
        val.extend_from_slice(&rows[..n_val]);
        let mut kept = rows[n_val..].to_vec();
        kept.sort_unstable();
        if !class {
            n_negative = kept.len();
        }
        train.extend(kept);
    }
    val.sort_unstable();
    Split {
        train,
        val,
        n_negative,
    }
}

fn gather<T: Copy>(values: &[T], rows: &[u32]) -> Vec<T> {
    rows.iter().map(|&r| values[r as usize]).collect()
}

fn gather_all<T: Copy>(columns: &[Vec<T>], rows: &[u32]) -> Vec<Vec<T>> {
    columns.iter().map(|c| gather(c, rows)).collect()
}

/// The logit of the given rows under a bag's main effects.
fn mains_scores(mains: &BagMains, bins: &[Vec<u16>], rows: &[u32]) -> Vec<f64> {
    rows.iter()
        .map(|&r| {
            mains
                .boosted
                .tables
                .iter()
                .zip(bins)
                .fold(mains.init, |s, (t, b)| s + t[b[r as usize] as usize])
        })
        .collect()
}

fn mains_odds(mains: &BagMains, bins: &[Vec<u16>], rows: &[u32]) -> Vec<f32> {
    mains_scores(mains, bins, rows)
        .into_iter()
        .map(|s| (s.exp() as f32).clamp(1e-30, 1e30))
        .collect()
}

fn bin_counts<B: BinIndex>(bins: &[B], n_bins: usize) -> Vec<u64> {
    let mut c = vec![0u64; n_bins];
    for b in bins {
        if let Some(c) = c.get_mut(b.idx()) {
            *c += 1;
        }
    }
    c
}

fn weighted_mean(values: &[f64], counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    values
        .iter()
        .zip(counts)
        .map(|(v, &c)| v * c as f64)
        .sum::<f64>()
        / total as f64
}

/// Runs `job(0..n)` on up to `threads` threads and returns the results in index order, so the outcome
/// does not depend on which thread ran what when.
fn parallel_map<T, F>(n: usize, threads: usize, job: F) -> Result<Vec<T>>
where
    T: Send,
    F: Fn(usize) -> T + Sync,
{
    let threads = threads.min(n).max(1);
    if threads == 1 {
        return Ok((0..n).map(&job).collect());
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<T>> = (0..n).map(|_| None).collect();
    let outcome: std::result::Result<(), String> = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(threads);
        for _ in 0..threads {
            let next = &next;
            let job = &job;
            let handle = std::thread::Builder::new()
                .spawn_scoped(scope, move || {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= n {
                            break done;
                        }
                        done.push((i, job(i)));
                    }
                })
                .map_err(|e| format!("could not start a thread: {e}"))?;
            handles.push(handle);
        }
        for h in handles {
            let done = h
                .join()
                .map_err(|_| "a worker thread panicked (a bug in winsignal-learn)".to_string())?;
            for (i, r) in done {
                results[i] = Some(r);
            }
        }
        Ok(())
    });
    outcome.map_err(Error::Fit)?;
    results
        .into_iter()
        .map(|r| r.ok_or_else(|| Error::Fit("a bag produced no result".to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_margin_is_full_from_its_rows_and_proportional_below() {
        let p = EbmParams::default();
        assert_eq!(progress_margin(&p, 20_000), 0.02);
        assert_eq!(progress_margin(&p, 3_390_800), 0.02);
        assert!((progress_margin(&p, 8_000) - 0.008).abs() < 1e-15);
        let off = EbmParams {
            early_stopping_progress: 0.0,
            ..EbmParams::default()
        };
        assert_eq!(progress_margin(&off, 8_000), 0.0);
        // A model saved before the ramp existed reads 0 rows: its margin (0 then) applies as it was.
        let old = EbmParams {
            early_stopping_progress_rows: 0,
            ..EbmParams::default()
        };
        assert_eq!(progress_margin(&old, 10), 0.02);
    }

    #[test]
    fn the_split_is_stratified_and_reproducible() {
        let y: Vec<bool> = (0..1000).map(|i| i % 10 == 0).collect();
        let split = stratified_split(&y, 0.2, SplitMix64::stream(3, 0));
        assert_eq!(split.val.len(), 200);
        assert_eq!(split.val.iter().filter(|&&r| y[r as usize]).count(), 20);
        assert_eq!(split.train.len() + split.val.len(), 1000);
        assert_eq!(split.n_negative, 720);
        assert!(split.train[..720].iter().all(|&r| !y[r as usize]));
        let again = stratified_split(&y, 0.2, SplitMix64::stream(3, 0));
        assert_eq!(again.val, split.val);
    }

    #[test]
    fn parallel_map_keeps_index_order() {
        let out = parallel_map(17, 2, |i| i * i).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, (0..17).map(|i| i * i).collect::<Vec<_>>());
    }
}

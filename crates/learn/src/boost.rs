//! The boosting kernels of one outer bag: gradient/hessian histograms, the tiny trees fitted to them,
//! the cyclic loops over main effects and over pairs with early stopping on the bag's validation rows,
//! and the FAST ranking of candidate pairs.
//!
//! Speed comes from a few habits. Each training row keeps its odds `exp(score)` rather than its score,
//! so applying a term update is one multiplication by `exp(update[bin])` (computed once per bin, not
//! once per row), and the probability is `odds / (1 + odds)`: no exponential per row. The training
//! odds are single precision: they only steer the gradients (the tables, the histograms and the
//! validation odds are double precision); a rounding error of about 6e-8 per update adds up to the
//! order of 1e-5 in the logit over 100,000 updates, and half the bytes keep a bag's working set in
//! cache. The training rows are ordered negatives first, so the outcome is known from the position and
//! never read. The update of one term is applied in the same pass over the rows that builds the next
//! term's histogram. Multipliers are gathered into a small buffer before the arithmetic, which the
//! compiler then vectorises.
// The tree searches read best with explicit indexes.
#![allow(clippy::needless_range_loop)]

/// Odds are kept inside these bounds (logits of ±69) so that a degenerate run cannot reach infinity or
/// zero.
const MAX_ODDS: f32 = 1e30;
const MIN_ODDS: f32 = 1e-30;
/// Histograms are accumulated in this many interleaved copies: consecutive rows in the same bin would
/// otherwise wait on each other's store.
const LANES: usize = 4;

/// The tree settings the kernels need (checked by `EbmParams::check`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TreeParams {
    pub learning_rate: f64,
    pub max_leaves: usize,
    pub min_samples_leaf: u32,
    pub min_hessian: f64,
    pub cat_smooth: f64,
}

/// The stopping settings of a boosting loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoopParams {
    pub max_rounds: usize,
    pub early_stopping_rounds: usize,
    pub early_stopping_tolerance: f64,
    pub early_stopping_progress: f64,
}

/// The rows of one bag in one binning, gathered so the hot loops read contiguous memory.
pub(crate) struct BagColumns<B> {
    /// Per term, the bin (or cell) of each training row.
    pub train: Vec<Vec<B>>,
    /// Per term, the bin (or cell) of each validation row.
    pub val: Vec<Vec<B>>,
    /// Per term, the number of training rows in each bin (or cell).
    pub counts: Vec<Vec<u32>>,
    /// Per term, the number of bins (or cells).
    pub n_bins: Vec<usize>,
}

/// A bin or cell index.
pub(crate) trait BinIndex: Copy + Send + Sync {
    fn idx(self) -> usize;

    /// `out[i] = table[bins[i]]` (`fill` where the table is too short).
    #[inline(always)]
    fn gather<T: Copy>(bins: &[Self], table: &[T], fill: T, out: &mut [T]) {
        for (o, b) in out.iter_mut().zip(bins) {
            *o = table.get(b.idx()).copied().unwrap_or(fill);
        }
    }
}

impl BinIndex for u16 {
    #[inline(always)]
    fn idx(self) -> usize {
        self as usize
    }

    /// With a table of all 65,536 entries, a two-byte index needs no bounds check.
    #[inline(always)]
    fn gather<T: Copy>(bins: &[Self], table: &[T], fill: T, out: &mut [T]) {
        match table
            .get(..FULL_TABLE)
            .and_then(|t| <&[T; FULL_TABLE]>::try_from(t).ok())
        {
            Some(full) => {
                for (o, &b) in out.iter_mut().zip(bins) {
                    *o = full[b as usize];
                }
            }
            None => {
                for (o, b) in out.iter_mut().zip(bins) {
                    *o = table.get(b.idx()).copied().unwrap_or(fill);
                }
            }
        }
    }
}

impl BinIndex for u32 {
    #[inline(always)]
    fn idx(self) -> usize {
        self as usize
    }
}

/// The size of a multiplier table indexable by any `u16`.
const FULL_TABLE: usize = 1 << 16;

impl<B: BinIndex> BagColumns<B> {
    pub(crate) fn new(train: Vec<Vec<B>>, val: Vec<Vec<B>>, n_bins: Vec<usize>) -> Self {
        let counts = train
            .iter()
            .zip(&n_bins)
            .map(|(bins, &nb)| {
                let mut c = vec![0u32; nb];
                for b in bins {
                    if let Some(c) = c.get_mut(b.idx()) {
                        *c += 1;
                    }
                }
                c
            })
            .collect();
        BagColumns {
            train,
            val,
            counts,
            n_bins,
        }
    }
}

/// The current state of one bag's model on its rows.
pub(crate) struct Scores {
    /// `exp(score)` of each training row (negatives first, see [`boost`]).
    pub train_odds: Vec<f32>,
    /// The score (logit) of each validation row when boosting starts (the loop then follows the
    /// validation rows through their odds).
    pub val: Vec<f64>,
}

/// What a boosting loop returns: the term tables of the best round.
pub(crate) struct Boosted {
    pub tables: Vec<Vec<f64>>,
    pub best_round: usize,
    pub rounds: usize,
}

/// The kind of tree a loop fits per term.
#[derive(Clone, Copy)]
pub(crate) enum TermShape<'a> {
    /// Main effects; `nominal[t]` says term `t` is categorical (its bins are ordered by gradient
    /// ratio before splitting, as LightGBM and InterpretML do).
    Main { nominal: &'a [bool] },
    /// Pairs: term `t` is a table of `dims[t].0 × dims[t].1` cells, row-major.
    Pair { dims: &'a [(usize, usize)] },
}

/// Cyclic boosting: each round fits one tree per term, in term order, to the current gradients and
/// adds `learning_rate ×` its Newton leaf values to the term's table; after each round the validation
/// log loss decides whether to go on. Returns the tables of the round with the lowest validation loss
/// (of the last round when there are no validation rows). The training rows must be ordered with the
/// `n_negative` negative ones first.
pub(crate) fn boost<B: BinIndex>(
    cols: &BagColumns<B>,
    n_negative: usize,
    val_y: &[f64],
    scores: &mut Scores,
    shape: TermShape<'_>,
    tree: &TreeParams,
    stop: &LoopParams,
) -> Boosted {
    let n_terms = cols.n_bins.len();
    let mut tables: Vec<Vec<f64>> = cols.n_bins.iter().map(|&n| vec![0.0; n]).collect();
    let mut best = tables.clone();
    let mut best_round = 0;
    let max_bins = cols.n_bins.iter().copied().max().unwrap_or(0);
    let mut lanes = vec![0.0; LANES * 2 * max_bins];
    let mut grad = vec![0.0; max_bins];
    let mut hess = vec![0.0; max_bins];
    let mut update = vec![0.0; max_bins];
    let mut mult = vec![1.0f32; max_bins.max(FULL_TABLE)];
    let mut scratch = TreeScratch::default();
    let mut pending: Option<usize> = None;
    let mut val_loss = ValidationLoss::new(&scores.val, val_y, cols);
    let mut mult64 = vec![1.0f64; max_bins.max(FULL_TABLE)];
    let mut stopper = EarlyStopping::new(stop, val_loss.value());
    let mut rounds = 0;
    if n_terms == 0 {
        return Boosted {
            tables,
            best_round,
            rounds,
        };
    }
    for round in 1..=stop.max_rounds {
        rounds = round;
        for t in 0..n_terms {
            let nb = cols.n_bins[t];
            let previous = pending.map(|p| (&cols.train[p][..], &mult[..]));
            accumulate(
                &cols.train[t],
                n_negative,
                &mut scores.train_odds,
                previous,
                nb,
                &mut lanes,
                &mut grad[..nb],
                &mut hess[..nb],
            );
            let out = &mut update[..nb];
            match shape {
                TermShape::Main { nominal } => main_tree(
                    &grad[..nb],
                    &hess[..nb],
                    &cols.counts[t],
                    nominal.get(t).copied().unwrap_or(false),
                    tree,
                    &mut scratch,
                    out,
                ),
                TermShape::Pair { dims } => {
                    let (na, nb2) = dims.get(t).copied().unwrap_or((1, nb));
                    pair_tree(
                        &grad[..nb],
                        &hess[..nb],
                        &cols.counts[t],
                        na,
                        nb2,
                        tree,
                        &mut scratch,
                        out,
                    )
                }
            }
            for (s, u) in tables[t].iter_mut().zip(out.iter()) {
                *s += u;
            }
            for ((m, m64), u) in mult.iter_mut().zip(mult64.iter_mut()).zip(out.iter()) {
                *m64 = u.exp();
                *m = *m64 as f32;
            }
            val_loss.update(t, &cols.val[t], &out[..], &mult64);
            pending = Some(t);
        }
        match stopper.observe(val_loss.value()) {
            Verdict::Best => {
                best.clone_from(&tables);
                best_round = round;
            }
            Verdict::Continue => {}
            Verdict::Stop => break,
        }
    }
    // Bring the training odds up to date (the last update is still pending) for whoever comes next.
    if let Some(p) = pending {
        let bins = &cols.train[p];
        for (e, b) in scores.train_odds.iter_mut().zip(bins) {
            *e = (*e * mult[b.idx()]).clamp(MIN_ODDS, MAX_ODDS);
        }
    }
    if val_y.is_empty() {
        best = tables;
        best_round = rounds;
    }
    Boosted {
        tables: best,
        best_round,
        rounds,
    }
}

/// Applies the pending update of the previous term (`odds *= mult[bin]`) and builds the gradient and
/// hessian histogram of the current term, in one pass over the training rows (the first `n_negative`
/// negative, the rest positive). Rows go in blocks: first the odds update and the gradients of the
/// whole block (a loop the compiler vectorises), then the block's scatter into the histogram, four rows
/// at a time into four copies of it so that no row waits on the previous row's store.
#[allow(clippy::too_many_arguments)]
fn accumulate<B: BinIndex>(
    bins: &[B],
    n_negative: usize,
    odds: &mut [f32],
    previous: Option<(&[B], &[f32])>,
    n_bins: usize,
    lanes: &mut [f64],
    grad: &mut [f64],
    hess: &mut [f64],
) {
    const BLOCK: usize = 256;
    let stride = 2 * n_bins;
    lanes[..LANES * stride].fill(0.0);
    let n = bins.len().min(odds.len());
    let n_negative = n_negative.min(n);
    let (bins, odds) = (&bins[..n], &mut odds[..n]);
    let (l0, rest) = lanes.split_at_mut(stride);
    let (l1, rest) = rest.split_at_mut(stride);
    let (l2, l3) = rest.split_at_mut(stride);
    let mut g_block = [0.0f32; BLOCK];
    let mut h_block = [0.0f32; BLOCK];
    let mut m_block = [1.0f32; BLOCK];
    for (start, end, y) in [(0, n_negative, 0.0f32), (n_negative, n, 1.0f32)] {
        let mut at = start;
        while at < end {
            let len = BLOCK.min(end - at);
            let e = &mut odds[at..at + len];
            if let Some((prev_bins, mult)) = previous {
                // Gather the multipliers first: the loop below then has no indirect loads.
                B::gather(&prev_bins[at..at + len], mult, 1.0, &mut m_block[..len]);
                for (((e, m), g), h) in e
                    .iter_mut()
                    .zip(&m_block[..len])
                    .zip(&mut g_block[..len])
                    .zip(&mut h_block[..len])
                {
                    let odds = (*e * m).clamp(MIN_ODDS, MAX_ODDS);
                    *e = odds;
                    let q = 1.0 / (1.0 + odds);
                    let p = odds * q;
                    *g = p - y;
                    *h = p * q;
                }
            } else {
                for ((e, g), h) in e.iter().zip(&mut g_block[..len]).zip(&mut h_block[..len]) {
                    let q = 1.0 / (1.0 + e);
                    let p = e * q;
                    *g = p - y;
                    *h = p * q;
                }
            }
            let b = &bins[at..at + len];
            let whole = len / LANES * LANES;
            for ((b, g), h) in b[..whole]
                .chunks_exact(LANES)
                .zip(g_block[..whole].chunks_exact(LANES))
                .zip(h_block[..whole].chunks_exact(LANES))
            {
                add_pair(l0, b[0].idx(), g[0], h[0]);
                add_pair(l1, b[1].idx(), g[1], h[1]);
                add_pair(l2, b[2].idx(), g[2], h[2]);
                add_pair(l3, b[3].idx(), g[3], h[3]);
            }
            for k in whole..len {
                add_pair(l0, b[k].idx(), g_block[k], h_block[k]);
            }
            at += len;
        }
    }
    for b in 0..n_bins {
        let (mut g, mut h) = (0.0, 0.0);
        for lane in 0..LANES {
            g += lanes[lane * stride + 2 * b];
            h += lanes[lane * stride + 2 * b + 1];
        }
        grad[b] = g;
        hess[b] = h;
    }
}

#[inline(always)]
fn add_pair(lane: &mut [f64], bin: usize, g: f32, h: f32) {
    if let Some(cell) = lane.get_mut(2 * bin..2 * bin + 2) {
        cell[0] += f64::from(g);
        cell[1] += f64::from(h);
    }
}

/// The mean log loss of the validation rows, `mean(ln(1 + odds) − y · score)`, kept up to date term
/// update by term update: the odds are multiplied by `exp(update)` like the training rows' (in double
/// precision here), the positives' score sum grows by each bin's update times the number of positive
/// validation rows in the bin, and the logarithm is taken of products of four `1 + odds` (one
/// logarithm per four rows rather than an exponential and a logarithm per row).
struct ValidationLoss {
    odds: Vec<f64>,
    /// Per term, the number of positive validation rows in each bin.
    positive_counts: Vec<Vec<u32>>,
    positive_score_sum: f64,
    block: Vec<f64>,
}

impl ValidationLoss {
    fn new<B: BinIndex>(scores: &[f64], y: &[f64], cols: &BagColumns<B>) -> ValidationLoss {
        let positive_counts = cols
            .val
            .iter()
            .zip(&cols.n_bins)
            .map(|(bins, &nb)| {
                let mut c = vec![0u32; nb];
                for (b, &y) in bins.iter().zip(y) {
                    if y > 0.5 {
                        if let Some(c) = c.get_mut(b.idx()) {
                            *c += 1;
                        }
                    }
                }
                c
            })
            .collect();
        ValidationLoss {
            odds: scores.iter().map(|s| s.exp().clamp(1e-30, 1e30)).collect(),
            positive_score_sum: scores
                .iter()
                .zip(y)
                .filter(|(_, &y)| y > 0.5)
                .map(|(s, _)| s)
                .sum(),
            positive_counts,
            block: vec![1.0; 256],
        }
    }

    fn update<B: BinIndex>(&mut self, term: usize, bins: &[B], update: &[f64], mult: &[f64]) {
        if let Some(counts) = self.positive_counts.get(term) {
            self.positive_score_sum += counts
                .iter()
                .zip(update)
                .map(|(&c, u)| f64::from(c) * u)
                .sum::<f64>();
        }
        let block = &mut self.block;
        for (odds, bins) in self
            .odds
            .chunks_mut(block.len())
            .zip(bins.chunks(block.len()))
        {
            let m = &mut block[..odds.len()];
            B::gather(bins, mult, 1.0, m);
            for (o, m) in odds.iter_mut().zip(m.iter()) {
                *o = (*o * m).clamp(1e-30, 1e30);
            }
        }
    }

    fn value(&self) -> f64 {
        if self.odds.is_empty() {
            return 0.0;
        }
        // Odds within 1e±30 keep a product of four below 1e121: no overflow.
        let log_sum: f64 = self
            .odds
            .chunks(4)
            .map(|c| c.iter().map(|o| 1.0 + o).product::<f64>().ln())
            .sum();
        (log_sum - self.positive_score_sum) / self.odds.len() as f64
    }
}

enum Verdict {
    Best,
    Continue,
    Stop,
}

/// InterpretML's rule, counted in rounds: stop when the best loss of the last `early_stopping_rounds`
/// rounds is not below the best loss before them by more than a margin: `tolerance` times that loss, or
/// `progress` times what the loop has gained since its start, whichever is larger. The second part
/// makes the rule scale-free: the loss of a bag with many rows keeps falling by tiny amounts long after
/// the model has stopped changing in any way that matters, so without it the rounds (and the fit time)
/// grow with the rows.
struct EarlyStopping {
    window: Vec<f64>,
    next: usize,
    initial: f64,
    best: f64,
    best_before_window: f64,
    tolerance: f64,
    progress: f64,
}

impl EarlyStopping {
    fn new(p: &LoopParams, initial_loss: f64) -> EarlyStopping {
        EarlyStopping {
            window: vec![f64::INFINITY; p.early_stopping_rounds],
            next: 0,
            initial: initial_loss,
            best: initial_loss,
            best_before_window: initial_loss,
            tolerance: p.early_stopping_tolerance,
            progress: p.early_stopping_progress,
        }
    }

    fn observe(&mut self, loss: f64) -> Verdict {
        let is_best = loss < self.best;
        if is_best {
            self.best = loss;
        }
        if self.window.is_empty() {
            return if is_best {
                Verdict::Best
            } else {
                Verdict::Continue
            };
        }
        let leaving = std::mem::replace(&mut self.window[self.next], loss);
        self.next = (self.next + 1) % self.window.len();
        self.best_before_window = self.best_before_window.min(leaving);
        let recent = self.window.iter().copied().fold(f64::INFINITY, f64::min);
        let margin = self.best_before_window.abs() * self.tolerance;
        let margin = if margin.is_finite() { margin } else { 0.0 };
        let gained = (self.initial - self.best_before_window) * self.progress;
        let margin = if gained.is_finite() && gained > margin {
            gained
        } else {
            margin
        };
        if recent.is_finite()
            && self.best_before_window - margin <= recent
            && self.window.iter().all(|l| l.is_finite())
        {
            return Verdict::Stop;
        }
        if is_best {
            Verdict::Best
        } else {
            Verdict::Continue
        }
    }
}

#[derive(Default)]
struct TreeScratch {
    order: Vec<usize>,
    cum_g: Vec<f64>,
    cum_h: Vec<f64>,
    cum_n: Vec<u64>,
    inner_g: Vec<f64>,
    inner_h: Vec<f64>,
    inner_n: Vec<u64>,
    left_g: Vec<f64>,
    left_h: Vec<f64>,
    left_n: Vec<u64>,
    right_g: Vec<f64>,
    right_h: Vec<f64>,
    right_n: Vec<u64>,
}

/// `G² / H` of a leaf, or `None` when the leaf is too small to stand alone.
#[inline]
fn leaf_score(g: f64, h: f64, n: u64, tree: &TreeParams) -> Option<f64> {
    if n < tree.min_samples_leaf as u64 || h < tree.min_hessian || h <= 0.0 {
        None
    } else {
        Some(g * g / h)
    }
}

/// The Newton step of a leaf, scaled by the learning rate (0 for an empty or weightless leaf).
#[inline]
fn leaf_value(g: f64, h: f64, tree: &TreeParams) -> f64 {
    if h > 0.0 && h >= tree.min_hessian {
        -tree.learning_rate * g / h
    } else {
        0.0
    }
}

/// The best single cut of a sequence of bins given by cumulative sums (index `k` holds the sums of
/// bins `< k`), between positions `start` and `end`: `(score of the two parts, cut)`, where the left
/// part is `start..cut`.
fn best_cut(
    cum_g: &[f64],
    cum_h: &[f64],
    cum_n: &[u64],
    start: usize,
    end: usize,
    tree: &TreeParams,
) -> Option<(f64, usize)> {
    let mut best: Option<(f64, usize)> = None;
    for cut in start + 1..end {
        // Past an empty bin the parts are those of the cut before: same score, and ties keep the
        // first cut.
        if cum_n[cut] == cum_n[cut - 1] {
            continue;
        }
        let left = leaf_score(
            cum_g[cut] - cum_g[start],
            cum_h[cut] - cum_h[start],
            cum_n[cut] - cum_n[start],
            tree,
        );
        let right = leaf_score(
            cum_g[end] - cum_g[cut],
            cum_h[end] - cum_h[cut],
            cum_n[end] - cum_n[cut],
            tree,
        );
        if let (Some(l), Some(r)) = (left, right) {
            if best.is_none_or(|(s, _)| l + r > s) {
                best = Some((l + r, cut));
            }
        }
    }
    best
}

/// A tree of at most `max_leaves` leaves over the ordered bins of one feature, grown best-first; the
/// missing bin is always a leaf of its own. Writes the update of each bin into `out`.
fn main_tree(
    grad: &[f64],
    hess: &[f64],
    counts: &[u32],
    nominal: bool,
    tree: &TreeParams,
    scratch: &mut TreeScratch,
    out: &mut [f64],
) {
    let nb = grad.len();
    out.fill(0.0);
    if nb == 0 {
        return;
    }
    out[0] = leaf_value(grad[0], hess[0], tree);
    let order = &mut scratch.order;
    order.clear();
    order.extend(1..nb);
    if nominal {
        let key = |b: usize| grad[b] / (hess[b] + tree.cat_smooth);
        order.sort_by(|&a, &b| key(a).total_cmp(&key(b)).then(a.cmp(&b)));
    }
    let m = order.len();
    let (cum_g, cum_h, cum_n) = (&mut scratch.cum_g, &mut scratch.cum_h, &mut scratch.cum_n);
    cum_g.clear();
    cum_h.clear();
    cum_n.clear();
    cum_g.push(0.0);
    cum_h.push(0.0);
    cum_n.push(0);
    for &b in order.iter() {
        cum_g.push(cum_g[cum_g.len() - 1] + grad[b]);
        cum_h.push(cum_h[cum_h.len() - 1] + hess[b]);
        cum_n.push(cum_n[cum_n.len() - 1] + counts.get(b).copied().unwrap_or(0) as u64);
    }
    // Leaves as position ranges, each with the best cut it offers (gain over not cutting).
    let mut leaves: Vec<(usize, usize)> = vec![(0, m)];
    let split_gain = |(s, e): (usize, usize)| -> Option<(f64, usize)> {
        let whole = (cum_g[e] - cum_g[s]).powi(2) / (cum_h[e] - cum_h[s]);
        best_cut(cum_g, cum_h, cum_n, s, e, tree).map(|(score, cut)| (score - whole, cut))
    };
    while leaves.len() < tree.max_leaves {
        let mut choice: Option<(f64, usize, usize)> = None;
        for (li, &leaf) in leaves.iter().enumerate() {
            if let Some((gain, cut)) = split_gain(leaf) {
                if gain > 0.0 && choice.is_none_or(|(g, _, _)| gain > g) {
                    choice = Some((gain, li, cut));
                }
            }
        }
        let Some((_, li, cut)) = choice else { break };
        let (s, e) = leaves[li];
        leaves[li] = (s, cut);
        leaves.insert(li + 1, (cut, e));
    }
    for (s, e) in leaves {
        let v = leaf_value(cum_g[e] - cum_g[s], cum_h[e] - cum_h[s], tree);
        for &b in &order[s..e] {
            out[b] = v;
        }
    }
}

/// A tree over a pair's table of `na × nb` cells: one cut along one axis, then one cut along the other
/// axis on each side (up to four leaves), both orders tried, as InterpretML grows pair trees.
#[allow(clippy::too_many_arguments)]
fn pair_tree(
    grad: &[f64],
    hess: &[f64],
    counts: &[u32],
    na: usize,
    nb: usize,
    tree: &TreeParams,
    s: &mut TreeScratch,
    out: &mut [f64],
) {
    out.fill(0.0);
    if na * nb != grad.len() || grad.is_empty() {
        return;
    }
    let total_g: f64 = grad.iter().sum();
    let total_h: f64 = hess.iter().sum();
    // (gain, orientation, outer cut, inner cut left, inner cut right)
    let mut best: Option<(f64, bool, usize, Option<usize>, Option<usize>)> = None;
    let parent = total_g * total_g / total_h;
    for transposed in [false, true] {
        let (n_outer, n_inner) = if transposed { (nb, na) } else { (na, nb) };
        let cell = |o: usize, i: usize| if transposed { i * nb + o } else { o * nb + i };
        for v in [&mut s.inner_g, &mut s.inner_h, &mut s.left_g, &mut s.left_h] {
            v.clear();
            v.resize(n_inner, 0.0);
        }
        for v in [&mut s.inner_n, &mut s.left_n] {
            v.clear();
            v.resize(n_inner, 0);
        }
        for o in 0..n_outer {
            for i in 0..n_inner {
                let c = cell(o, i);
                s.inner_g[i] += grad[c];
                s.inner_h[i] += hess[c];
                s.inner_n[i] += counts[c] as u64;
            }
        }
        let total_n: u64 = s.inner_n.iter().sum();
        let mut left_n = 0u64;
        for cut in 1..n_outer {
            let mut added = 0u64;
            for i in 0..n_inner {
                let c = cell(cut - 1, i);
                s.left_g[i] += grad[c];
                s.left_h[i] += hess[c];
                s.left_n[i] += counts[c] as u64;
                added += counts[c] as u64;
            }
            left_n += added;
            // An empty slice leaves the parts as they were (ties keep the first cut); a side with
            // fewer rows than a leaf needs cannot be split off.
            let min_leaf = u64::from(tree.min_samples_leaf);
            if added == 0 || left_n < min_leaf || total_n - left_n < min_leaf {
                continue;
            }
            let left = side_best(
                &s.left_g,
                &s.left_h,
                &s.left_n,
                tree,
                &mut s.cum_g,
                &mut s.cum_h,
                &mut s.cum_n,
            );
            s.right_g.clear();
            s.right_h.clear();
            s.right_n.clear();
            for i in 0..n_inner {
                s.right_g.push(s.inner_g[i] - s.left_g[i]);
                s.right_h.push(s.inner_h[i] - s.left_h[i]);
                s.right_n.push(s.inner_n[i] - s.left_n[i]);
            }
            let right = side_best(
                &s.right_g,
                &s.right_h,
                &s.right_n,
                tree,
                &mut s.cum_g,
                &mut s.cum_h,
                &mut s.cum_n,
            );
            if let (Some((ls, lc)), Some((rs, rc))) = (left, right) {
                let gain = ls + rs - parent;
                if gain > 0.0 && best.is_none_or(|b| gain > b.0) {
                    best = Some((gain, transposed, cut, lc, rc));
                }
            }
        }
    }
    let Some((_, transposed, cut, left_cut, right_cut)) = best else {
        let v = leaf_value(total_g, total_h, tree);
        out.fill(v);
        return;
    };
    // Leaf of each cell: 0/1 on the left of the outer cut, 2/3 on the right.
    let (n_outer, n_inner) = if transposed { (nb, na) } else { (na, nb) };
    let mut leaf_g = [0.0; 4];
    let mut leaf_h = [0.0; 4];
    let leaf_of = |o: usize, i: usize| -> usize {
        if o < cut {
            usize::from(left_cut.is_some_and(|c| i >= c))
        } else {
            2 + usize::from(right_cut.is_some_and(|c| i >= c))
        }
    };
    for o in 0..n_outer {
        for i in 0..n_inner {
            let c = if transposed { i * nb + o } else { o * nb + i };
            let l = leaf_of(o, i);
            leaf_g[l] += grad[c];
            leaf_h[l] += hess[c];
        }
    }
    let values: Vec<f64> = (0..4)
        .map(|l| leaf_value(leaf_g[l], leaf_h[l], tree))
        .collect();
    for o in 0..n_outer {
        for i in 0..n_inner {
            let c = if transposed { i * nb + o } else { o * nb + i };
            out[c] = values[leaf_of(o, i)];
        }
    }
}

/// The best way to treat one side of a pair tree: its best cut along the inner axis, or no cut (one
/// leaf) when that is better or the only option. `(score, cut)`; `None` when the side cannot even be
/// one leaf.
#[allow(clippy::too_many_arguments)]
fn side_best(
    g: &[f64],
    h: &[f64],
    n: &[u64],
    tree: &TreeParams,
    cum_g: &mut Vec<f64>,
    cum_h: &mut Vec<f64>,
    cum_n: &mut Vec<u64>,
) -> Option<(f64, Option<usize>)> {
    cum_g.clear();
    cum_h.clear();
    cum_n.clear();
    cum_g.push(0.0);
    cum_h.push(0.0);
    cum_n.push(0);
    for i in 0..g.len() {
        cum_g.push(cum_g[i] + g[i]);
        cum_h.push(cum_h[i] + h[i]);
        cum_n.push(cum_n[i] + n[i]);
    }
    let m = g.len();
    let whole = leaf_score(cum_g[m], cum_h[m], cum_n[m], tree)?;
    match best_cut(cum_g, cum_h, cum_n, 0, m, tree) {
        Some((score, cut)) if score > whole => Some((score, Some(cut))),
        _ => Some((whole, None)),
    }
}

/// FAST (Lou et al. 2013): the strength of each candidate pair is the best gain of a 2 × 2 split of its
/// table (one cut per axis, four quadrants) on the gradients of the current model.
pub(crate) fn pair_strengths(
    bins: &[Vec<u16>],
    n_bins: &[usize],
    y: &[f64],
    odds: &[f32],
    pairs: &[(usize, usize)],
    tree: &TreeParams,
) -> Vec<f64> {
    let gh: Vec<(f64, f64)> = odds
        .iter()
        .zip(y)
        .map(|(&e, &y)| {
            let e = f64::from(e);
            let q = 1.0 / (1.0 + e);
            let p = e * q;
            (p - y, p * q)
        })
        .collect();
    // One cell holds all three sums, so each row touches one place in memory rather than three.
    #[derive(Clone, Copy, Default)]
    struct Sums {
        g: f64,
        h: f64,
        n: u64,
    }
    let mut table: Vec<Sums> = Vec::new();
    pairs
        .iter()
        .map(|&(a, b)| {
            let (na, nb) = (n_bins[a], n_bins[b]);
            // Cumulative tables with a zero row and column in front: entry (i, j) sums cells < i, < j.
            let w = nb + 1;
            table.clear();
            table.resize((na + 1) * w, Sums::default());
            for ((&ba, &bb), &(g, h)) in bins[a].iter().zip(&bins[b]).zip(&gh) {
                let c = (ba as usize + 1) * w + bb as usize + 1;
                if let Some(cell) = table.get_mut(c) {
                    cell.g += g;
                    cell.h += h;
                    cell.n += 1;
                }
            }
            for i in 1..=na {
                for j in 1..=nb {
                    let c = i * w + j;
                    let (up, left, corner) = (table[c - w], table[c - 1], table[c - w - 1]);
                    let cell = &mut table[c];
                    cell.g += up.g + left.g - corner.g;
                    cell.h += up.h + left.h - corner.h;
                    cell.n += up.n + left.n - corner.n;
                }
            }
            let table_g: Vec<f64> = table.iter().map(|c| c.g).collect();
            let table_h: Vec<f64> = table.iter().map(|c| c.h).collect();
            let table_n: Vec<u64> = table.iter().map(|c| c.n).collect();
            let rect = |t: &[f64], i0: usize, i1: usize, j0: usize, j1: usize| {
                t[i1 * w + j1] - t[i0 * w + j1] - t[i1 * w + j0] + t[i0 * w + j0]
            };
            let rect_n = |i0: usize, i1: usize, j0: usize, j1: usize| {
                table_n[i1 * w + j1] + table_n[i0 * w + j0]
                    - table_n[i0 * w + j1]
                    - table_n[i1 * w + j0]
            };
            let total_g = table_g[na * w + nb];
            let total_h = table_h[na * w + nb];
            let parent = if total_h > 0.0 {
                total_g * total_g / total_h
            } else {
                0.0
            };
            let mut best = 0.0_f64;
            for i in 1..na {
                for j in 1..nb {
                    let mut score = 0.0;
                    let mut ok = true;
                    for (i0, i1) in [(0, i), (i, na)] {
                        for (j0, j1) in [(0, j), (j, nb)] {
                            match leaf_score(
                                rect(&table_g, i0, i1, j0, j1),
                                rect(&table_h, i0, i1, j0, j1),
                                rect_n(i0, i1, j0, j1),
                                tree,
                            ) {
                                Some(s) => score += s,
                                None => ok = false,
                            }
                        }
                    }
                    if ok {
                        best = best.max(score - parent);
                    }
                }
            }
            best
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> TreeParams {
        TreeParams {
            learning_rate: 1.0,
            max_leaves: 3,
            min_samples_leaf: 1,
            min_hessian: 1e-9,
            cat_smooth: 0.0,
        }
    }

    #[test]
    fn a_main_tree_finds_a_step() {
        // Bins 1..=4 of gradients −1, −1, +1, +1 (unit hessians): one cut between bins 2 and 3.
        let g = [0.0, -1.0, -1.0, 1.0, 1.0];
        let h = [0.0, 1.0, 1.0, 1.0, 1.0];
        let n = [0, 5, 5, 5, 5];
        let mut out = [0.0; 5];
        main_tree(
            &g,
            &h,
            &n,
            false,
            &params(),
            &mut TreeScratch::default(),
            &mut out,
        );
        assert_eq!(out, [0.0, 1.0, 1.0, -1.0, -1.0]);
    }

    #[test]
    fn min_samples_leaf_is_respected() {
        let g = [0.0, -1.0, 1.0, 1.0];
        let h = [0.0, 1.0, 1.0, 1.0];
        let n = [0, 1, 5, 5];
        let mut out = [0.0; 4];
        let tree = TreeParams {
            min_samples_leaf: 2,
            max_leaves: 2,
            ..params()
        };
        main_tree(
            &g,
            &h,
            &n,
            false,
            &tree,
            &mut TreeScratch::default(),
            &mut out,
        );
        // Bin 1 alone has one row: it cannot be a leaf, so the cut falls after bin 2.
        assert_eq!(out[1], out[2]);
    }

    #[test]
    fn a_pair_tree_finds_a_checkerboard_quadrant() {
        // 2 × 2 table: only cell (1, 1) has a negative gradient.
        let g = [1.0, 1.0, 1.0, -3.0];
        let h = [1.0; 4];
        let n = [10; 4];
        let mut out = [0.0; 4];
        pair_tree(
            &g,
            &h,
            &n,
            2,
            2,
            &params(),
            &mut TreeScratch::default(),
            &mut out,
        );
        assert_eq!(out, [-1.0, -1.0, -1.0, 3.0]);
    }

    #[test]
    fn early_stopping_waits_for_the_window() {
        let p = LoopParams {
            max_rounds: 100,
            early_stopping_rounds: 3,
            early_stopping_tolerance: 0.0,
            early_stopping_progress: 0.0,
        };
        let mut s = EarlyStopping::new(&p, 1.0);
        assert!(matches!(s.observe(0.9), Verdict::Best));
        assert!(matches!(s.observe(0.95), Verdict::Continue));
        assert!(matches!(s.observe(0.95), Verdict::Continue));
        // 0.9 leaves the window: the last three rounds (0.95 each) do not beat it.
        assert!(matches!(s.observe(0.95), Verdict::Stop));
    }

    #[test]
    fn the_progress_margin_stops_a_loss_that_only_creeps_down() {
        // From 1.0 the loss halves, then falls by 1e-4 a round: 0.02 % of the 0.5 gained per round,
        // 0.06 % per window of three; tolerance alone never stops it, 1 % of the progress does.
        let losses: Vec<f64> = (0..20).map(|r| 0.5 - 1e-4 * f64::from(r)).collect();
        let run = |progress: f64| {
            let p = LoopParams {
                max_rounds: 100,
                early_stopping_rounds: 3,
                early_stopping_tolerance: 1e-6,
                early_stopping_progress: progress,
            };
            let mut s = EarlyStopping::new(&p, 1.0);
            losses
                .iter()
                .position(|&l| matches!(s.observe(l), Verdict::Stop))
        };
        assert_eq!(run(0.0), None);
        assert_eq!(run(0.01), Some(3));
    }
}

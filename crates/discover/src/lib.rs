//! Discovery: for every behaviour and continuous feature at every landmark, how it goes with winning
//! (logistic regression), closing faster (Cox proportional hazards) and closing bigger (linear regression
//! of log amount among won deals) — adjusted for deal mix, with cluster-robust (by rep) confidence
//! intervals, Benjamini–Hochberg q-values across the run, and guard rails that refuse rather than guess.
//!
//! Input is the snapshot table of the features crate; output is a [`Discovery`] that serialises to the
//! documented `discover --json` schema (docs/discover.md) and feeds the report.

mod analyse;
pub mod design;
mod inference;
mod joint;
pub mod leakage;
mod quantile;

pub use analyse::discover;
pub use leakage::{changed_at_close, suspect_columns, ColumnFlag, DealHistory};

use serde::Serialize;
pub use winsignal_features::snapshot::{Timing, Unobserved};

/// The outcomes discovery can study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Win,
    CycleTime,
    DealSize,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Win, Outcome::CycleTime, Outcome::DealSize];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Win => "win",
            Outcome::CycleTime => "cycle_time",
            Outcome::DealSize => "deal_size",
        }
    }
}

/// What to analyse.
#[derive(Debug, Clone)]
pub struct Options {
    pub outcomes: Vec<Outcome>,
    /// Only these landmarks (names as in the snapshots, e.g. `stage:Proposal`, `age:30d`); all if empty.
    pub landmarks: Vec<String>,
    /// Fewest snapshots with and without a behaviour (default 30).
    pub min_group: usize,
    /// Fewest events (wins, and losses, for win; wins for cycle time) (default 10).
    pub min_events: usize,
    /// The false-discovery rate under which a finding is significant (default 0.05).
    pub fdr: f64,
    /// Look for readable thresholds of continuous features.
    pub rules: bool,
    /// When each behaviour shows up relative to the close ([`winsignal_features::snapshot::timing`]);
    /// a behaviour most deals only show at or after the close is flagged as leakage. Empty: not checked.
    pub timing: Vec<Timing>,
    /// Columns the store's version history shows being written at the close
    /// ([`leakage::changed_at_close`]); treated like the column flags discovery computes itself.
    pub history_flags: Vec<ColumnFlag>,
    /// Control columns (names as in [`Discovery::controls`]) to leave out of every model.
    pub leave_out_controls: Vec<String>,
    /// Keep the columns the leakage checks flag ([`suspect_columns`]): flagged controls stay in the
    /// models and the findings of definitions reading a flagged column are not marked. Off by default:
    /// flagged controls are left out and those findings carry the evidence in `leakage`.
    pub keep_suspect: bool,
    /// Closed deals the snapshots do not include ([`winsignal_features::snapshot::unobserved`]),
    /// reported in [`Discovery::unobserved`].
    pub unobserved: Unobserved,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            outcomes: Outcome::ALL.to_vec(),
            landmarks: Vec::new(),
            min_group: 30,
            min_events: 10,
            fdr: 0.05,
            rules: true,
            timing: Vec::new(),
            history_flags: Vec::new(),
            leave_out_controls: Vec::new(),
            keep_suspect: false,
            unobserved: Unobserved::default(),
        }
    }
}

/// The whole result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Discovery {
    /// Schema version of this JSON (bumped on incompatible change).
    pub schema: u32,
    pub catalog: String,
    /// `id@version` of every definition analysed.
    pub versions: Vec<String>,
    pub controls: Vec<String>,
    /// What the standard errors are clustered by: `rep`, `deal` (no deal has a rep: ordinary robust
    /// errors by deal) or `rep_or_deal` (by rep, and a deal without a rep is a cluster of its own).
    pub cluster: &'static str,
    pub fdr: f64,
    pub snapshots: usize,
    pub opportunities: usize,
    /// Opportunities by outcome: `[won, lost, open]`.
    pub outcomes: [usize; 3],
    /// Closed deals left out because they have no landmark before their close (closed at creation).
    pub unobserved: Unobserved,
    pub landmarks: Vec<LandmarkSummary>,
    /// Every test, sorted by outcome, landmark order, then definition order.
    pub findings: Vec<Finding>,
    /// Readable thresholds for continuous features (win outcome).
    pub rules: Vec<Rule>,
    /// Each categorical definition tested as a whole (all its levels together), per outcome and
    /// landmark; its levels' own findings are in `findings`.
    pub column_tests: Vec<ColumnTest>,
    /// Number of tests in the Benjamini–Hochberg family (findings, rules and column tests with a
    /// p-value).
    pub tests: usize,
    /// For each yes/no behaviour, at one landmark: survival curves, adoption over time and by rep.
    pub details: Vec<BehaviourDetail>,
    /// Columns (attributes the definitions read, controls, the account) that may be recorded because of
    /// the outcome, each with its evidence ([`suspect_columns`]).
    pub leakage: Vec<ColumnFlag>,
    pub caveat: &'static str,
}

pub const CAVEAT: &str =
    "Effects are associations in historical deals, adjusted for the listed controls; \
they are not proof that a behaviour causes the outcome.";

#[derive(Debug, Clone, Serialize)]
pub struct LandmarkSummary {
    pub name: String,
    /// Median days from the deal's first landmark (its creation) to this one.
    pub median_age_days: f64,
    pub snapshots: usize,
    pub won: usize,
    pub lost: usize,
    pub open: usize,
}

/// How a finding's estimate came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Estimated,
    NotEnoughData,
    Refused,
}

/// One behaviour (or feature) × landmark × outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub outcome: Outcome,
    pub landmark: String,
    pub behaviour: String,
    /// For a level of a categorical definition: the categorical definition's id (`industry`); the
    /// level is `level` and `behaviour` is `industry=Retail`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The level (`Retail`, or `(other)` for the pooled rare levels).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    pub version: u32,
    pub title: String,
    /// `yes_no` for behaviours, `continuous` for features.
    pub kind: &'static str,
    pub status: Status,
    /// Why there is no estimate, or what was done unusually (penalised fit).
    pub note: Option<String>,
    /// Snapshots analysed (for win: closed; for deal size: won with an amount).
    pub n: usize,
    /// With / without the behaviour (continuous: above / at or below the median).
    pub n_with: usize,
    pub n_without: usize,
    /// Wins among the analysed snapshots (for cycle time: the closes-won that are events).
    pub events: usize,
    /// Raw comparison, before adjustment.
    pub raw: Raw,
    /// The adjusted effect, when estimated.
    pub effect: Option<Effect>,
    /// For continuous features: the step the effect is per (the interquartile range, or the standard
    /// deviation when the IQR is 0), in the feature's units.
    pub step: Option<f64>,
    /// `iqr` or `sd`: which of the two `step` is.
    pub step_kind: Option<&'static str>,
    pub significant: bool,
    /// Controls actually in the model.
    pub adjusted_for: Vec<String>,
    /// Control columns left out of the model, with why when it is not that they were constant or a
    /// combination of the others (for example a level in which every deal has the same outcome).
    pub dropped: Vec<String>,
    /// Possible leakage: why the behaviour may be measured from the outcome itself.
    pub leakage: Option<String>,
}

/// A categorical definition tested as a whole at one landmark for one outcome: whether its levels
/// differ at all, adjusted for the controls (one Wald test of every level against the reference).
#[derive(Debug, Clone, Serialize)]
pub struct ColumnTest {
    pub outcome: Outcome,
    pub landmark: String,
    /// The categorical definition's id.
    pub behaviour: String,
    pub version: u32,
    pub title: String,
    /// The levels compared with `reference`, each with its own indicator; levels with fewer than
    /// `min_group` deals here are pooled (or join the reference when the pool is that small too).
    pub levels: Vec<String>,
    /// The most common level here.
    pub reference: Option<String>,
    pub status: Status,
    pub note: Option<String>,
    /// Snapshots analysed (with a level), and the wins among them.
    pub n: usize,
    pub events: usize,
    /// The Wald statistic divided by `df1` (an F statistic), on `df1` and `df2` degrees of freedom.
    pub f: Option<f64>,
    pub df1: usize,
    pub df2: Option<f64>,
    pub p: Option<f64>,
    /// Benjamini–Hochberg q-value across every test of the run.
    pub q: Option<f64>,
    pub significant: bool,
    pub method: &'static str,
    pub adjusted_for: Vec<String>,
    /// Possible leakage of the column, as its levels' findings carry it; `null` otherwise.
    pub leakage: Option<String>,
}

/// Raw (unadjusted) figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Raw {
    /// Win: win rate with / without. Cycle time: Kaplan–Meier median days to close-won with / without.
    /// Deal size: geometric-mean amount of won deals with / without.
    pub with: Option<f64>,
    pub without: Option<f64>,
    /// Win: the unadjusted odds ratio (per step for features) with its CI and p-value (computed as the
    /// adjusted effect is, without controls).
    pub odds_ratio: Option<Interval>,
    pub p: Option<f64>,
    /// Win, yes/no behaviours: Fisher's exact test of the 2 × 2 table (with/without × won/lost). When a
    /// cell has fewer than 5 deals, the adjusted effect's `p` is never smaller than this.
    pub exact_p: Option<f64>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// An adjusted effect.
#[derive(Debug, Clone, Serialize)]
pub struct Effect {
    /// `odds_ratio` (win), `hazard_ratio` (cycle time: above 1 closes won sooner), `percent_change`
    /// (deal size).
    pub scale: &'static str,
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    /// Win only: average marginal effect on the win probability, in percentage points, with its CI.
    pub ame_pp: Option<Interval>,
    /// The coefficient (per unit, on the model's scale), its cluster-robust standard error, the test
    /// statistic (`z`: a t statistic when `df` is given) and its two-sided p-value.
    pub coef: f64,
    pub se: f64,
    pub z: f64,
    pub p: f64,
    /// Degrees of freedom of the t reference of `z`, the interval and `p` (small-sample cluster
    /// correction); `null` for a normal reference.
    pub df: Option<f64>,
    /// Benjamini–Hochberg q-value across every test of the run.
    pub q: f64,
    pub method: &'static str,
    /// How the interval and p-value were computed: `cr2_satterthwaite` (CR2 cluster-robust errors,
    /// t with Satterthwaite degrees of freedom), `profile_penalised_likelihood` (separated data: the
    /// Firth fit's profile interval and likelihood-ratio test, scaled for clustering), `jackknife_t`
    /// (Cox with up to 20 reps: leave-one-rep-out jackknife errors, t with G − 1 degrees of freedom)
    /// or `cluster_robust_t` (Cox with more reps: robust errors with the factor G/(G − 1), t with G − 1
    /// degrees of freedom). Every interval reported is valid for its method; a finding whose interval would not be
    /// is refused instead.
    pub inference: &'static str,
    /// Firth-penalised because the plain fit separated.
    pub penalised: bool,
}

/// What the report shows about one behaviour beyond its findings.
#[derive(Debug, Clone, Serialize)]
pub struct BehaviourDetail {
    pub behaviour: String,
    pub version: u32,
    pub title: String,
    pub description: String,
    /// The landmark these figures are at: where its win finding has the strongest evidence (else where
    /// it is defined for the most deals).
    pub landmark: String,
    /// Kaplan–Meier curves of time from the landmark to close-won, with and without the behaviour:
    /// `[days, share not yet closed won]` at each step (at most 200 points each).
    pub km_with: Vec<[f64; 2]>,
    pub km_without: Vec<[f64; 2]>,
    /// Share of deals with the behaviour at the landmark, by the quarter the deal was created in.
    pub adoption: Vec<Adoption>,
    /// Share of each rep's deals with the behaviour at the landmark, highest first.
    pub reps: Vec<Adoption>,
}

/// How often a behaviour is present in a group of snapshots.
#[derive(Debug, Clone, Serialize)]
pub struct Adoption {
    /// The quarter (`2025Q3`) or the rep id.
    pub group: String,
    pub n: usize,
    pub with: usize,
    pub rate: f64,
}

/// "3+ stakeholders by Proposal: win rate 48 % vs 27 %, n = 612 / 1,907".
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub landmark: String,
    pub feature: String,
    pub version: u32,
    pub title: String,
    /// The rule holds when the feature is at least this.
    pub threshold: f64,
    pub text: String,
    /// Win rates and counts over every closed deal at the landmark (the threshold was chosen on half of
    /// them, so these rates flatter it a little; the effect does not: it is estimated on the other half).
    pub win_rate_with: f64,
    pub win_rate_without: f64,
    pub n_with: usize,
    pub n_without: usize,
    /// Adjusted effect of meeting the threshold, estimated on the half of the deals the threshold was not
    /// chosen on.
    pub effect: Option<Effect>,
    pub significant: bool,
    pub note: Option<String>,
    /// Possible leakage of the feature (as for findings).
    pub leakage: Option<String>,
}

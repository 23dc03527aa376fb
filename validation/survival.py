"""Reference values for winsignal's survival statistics (crates/stats: cox.rs, km.rs), from lifelines.

Run from the repository root:

    python3 validation/survival.py

Needs numpy, pandas and lifelines (written against lifelines 0.30.3). Deterministic (fixed seeds), no
network. It writes, under validation/fixtures/:

- survival_data.csv   3,000 synthetic sales deals: time (days to close or to censoring; ~10 % rounded to
                      0.5 days so there are exact ties), event (1 = closed, 52 %), exec_engaged (a binary
                      behaviour), log_amount (continuous), segment_mid and segment_ent (dummies of a
                      3-level segment), rep (the owning rep, ~40 clusters).
- survival_ties.csv   60 rows with heavy ties (times are integers 1..10), same columns except segment.
- survival_reference.json
                      lifelines results on both files: CoxPHFitter (Efron ties, no penalizer) with
                      cluster_col="rep" (robust and naive standard errors, p-values, log-likelihood),
                      without clusters, and with penalizer=0.05 (L2, l1_ratio=0); KaplanMeierFitter on all
                      rows and on each level of exec_engaged (median, 95 % CI of the median, survival at
                      fixed times). Floats are written with full precision (json.dumps of Python floats).

The Cox fits pass fit_options with tighter convergence tolerances than lifelines' defaults (see
FIT_OPTIONS below): lifelines' default stopping rule leaves the coefficients ~1e-5 (relative) short of
the maximum, more than the 1e-4 the Rust tests allow once it reaches the p-values of large z statistics.

The fits read the CSV back, so the reference values are computed from exactly the numbers a reader of
the CSV sees.
"""

import json
import math
import pathlib

import lifelines
import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.utils import median_survival_times

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"

DEALS_COVARIATES = ["exec_engaged", "log_amount", "segment_mid", "segment_ent"]
TIES_COVARIATES = ["exec_engaged", "log_amount"]
KM_TIMES = [0.5, 7.0, 30.0, 45.5, 90.0, 180.0, 365.0, 1000.0]
TIES_KM_TIMES = [0.5, 1.0, 2.5, 5.0, 10.0, 11.0]
# lifelines' default Newton-Raphson stops early (relative log-likelihood change below 1e-9), leaving the
# coefficients about 1.4e-5 (relative) short of the maximum on the deals data; that moves the p-value of a
# z of 9 by ~1e-3 (relative). Tighter tolerances make it report the maximum itself, which is what
# winsignal computes; nothing else about the fit changes.
FIT_OPTIONS = {"precision": 1e-14, "r_precision": 1e-16, "max_steps": 100}


def make_deals(seed=20240611, n=3000, n_reps=40):
    rng = np.random.default_rng(seed)
    rep = rng.integers(1, n_reps + 1, size=n)
    # Rep-level frailty and propensity, so clustering matters for the standard errors.
    frailty = rng.normal(0.0, 0.35, size=n_reps + 1)
    propensity = rng.uniform(0.2, 0.6, size=n_reps + 1)
    exec_engaged = (rng.uniform(size=n) < propensity[rep]).astype(int)
    log_amount = np.round(rng.normal(10.0, 1.2, size=n), 4)
    segment = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    segment_mid = (segment == 1).astype(int)
    segment_ent = (segment == 2).astype(int)
    eta = 0.45 * exec_engaged - 0.15 * (log_amount - 10.0) - 0.2 * segment_mid - 0.5 * segment_ent + frailty[rep]
    # Weibull close times (shape 1.3, median about 60 days at eta = 0), uniform censoring.
    scale = 60.0 / math.log(2.0) ** (1 / 1.3)
    close = scale * (rng.exponential(size=n) / np.exp(eta)) ** (1 / 1.3)
    censor = rng.uniform(10.0, 130.0, size=n)
    time = np.minimum(close, censor)
    event = (close <= censor).astype(int)
    time = np.round(time, 4)
    tied = rng.uniform(size=n) < 0.10
    time[tied] = np.round(time[tied] * 2.0) / 2.0
    time = np.maximum(time, 0.5)
    return pd.DataFrame(
        {
            "time": time,
            "event": event,
            "exec_engaged": exec_engaged,
            "log_amount": log_amount,
            "segment_mid": segment_mid,
            "segment_ent": segment_ent,
            "rep": rep,
        }
    )


def make_ties(seed=7, n=60, n_reps=8):
    rng = np.random.default_rng(seed)
    rep = rng.integers(1, n_reps + 1, size=n)
    exec_engaged = (rng.uniform(size=n) < 0.5).astype(int)
    log_amount = np.round(rng.normal(10.0, 1.0, size=n), 3)
    eta = 0.6 * exec_engaged - 0.3 * (log_amount - 10.0)
    time = np.clip(np.ceil(rng.exponential(size=n) / np.exp(eta) * 4.0), 1, 10).astype(int)
    event = (rng.uniform(size=n) < 0.7).astype(int)
    return pd.DataFrame(
        {"time": time, "event": event, "exec_engaged": exec_engaged, "log_amount": log_amount, "rep": rep}
    )


def floats(values):
    return [float(v) for v in values]


def cox(df, covariates, cluster_col=None, penalizer=0.0):
    cph = CoxPHFitter(penalizer=penalizer)
    columns = covariates + ["time", "event"] + ([cluster_col] if cluster_col else [])
    cph.fit(df[columns], "time", "event", cluster_col=cluster_col, fit_options=FIT_OPTIONS)
    summary = cph.summary.loc[covariates]
    return {
        "coef": floats(summary["coef"]),
        "se": floats(summary["se(coef)"]),
        "se_naive": floats(np.sqrt(np.diag(cph.variance_matrix_.loc[covariates, covariates].values))),
        "p": floats(summary["p"]),
        "loglik": float(cph.log_likelihood_),
        "null_loglik": float(cph._ll_null_),
    }


def number_or_none(x):
    x = float(x)
    return x if math.isfinite(x) else None


def km(time, event, times):
    kmf = KaplanMeierFitter().fit(time, event)
    ci = median_survival_times(kmf.confidence_interval_)
    return {
        "n": int(len(time)),
        "median": number_or_none(kmf.median_survival_time_),
        "median_ci": [number_or_none(ci.iloc[0, 0]), number_or_none(ci.iloc[0, 1])],
        "survival_at": [[float(t), float(kmf.survival_function_at_times(t).iloc[0])] for t in times],
    }


def reference(df, covariates, km_times):
    out = {
        "covariates": covariates,
        "n": int(len(df)),
        "n_events": int(df["event"].sum()),
        "cox_clustered": cox(df, covariates, cluster_col="rep"),
        "cox": cox(df, covariates),
        "cox_ridge": dict(cox(df, covariates, penalizer=0.05), penalizer=0.05),
        "km": {"all": km(df["time"], df["event"], km_times)},
    }
    for level in (0, 1):
        rows = df["exec_engaged"] == level
        out["km"][f"exec_engaged={level}"] = km(df.loc[rows, "time"], df.loc[rows, "event"], km_times)
    return out


def main():
    FIXTURES.mkdir(parents=True, exist_ok=True)
    deals_csv = FIXTURES / "survival_data.csv"
    ties_csv = FIXTURES / "survival_ties.csv"
    make_deals().to_csv(deals_csv, index=False)
    make_ties().to_csv(ties_csv, index=False)
    deals = pd.read_csv(deals_csv)
    ties = pd.read_csv(ties_csv)
    ties["time"] = ties["time"].astype(float)

    result = {
        "generated_by": "python3 validation/survival.py",
        "fit_options": FIT_OPTIONS,
        "versions": {"lifelines": lifelines.__version__, "numpy": np.__version__, "pandas": pd.__version__},
        "deals": dict(reference(deals, DEALS_COVARIATES, KM_TIMES), csv="survival_data.csv"),
        "ties": dict(reference(ties, TIES_COVARIATES, TIES_KM_TIMES), csv="survival_ties.csv"),
    }
    (FIXTURES / "survival_reference.json").write_text(json.dumps(result, indent=1) + "\n")
    d = result["deals"]
    print(f"deals: n={d['n']} events={d['n_events']} ties={len(deals) - deals['time'].nunique()} "
          f"clusters={deals['rep'].nunique()} median={d['km']['all']['median']}")
    print(f"ties: n={result['ties']['n']} events={result['ties']['n_events']}")
    print(f"wrote {deals_csv}, {ties_csv} and {FIXTURES / 'survival_reference.json'}")


if __name__ == "__main__":
    main()

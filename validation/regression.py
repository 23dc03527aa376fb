"""Reference numbers for winsignal's logistic and linear regressions (crates/stats/tests/regression.rs).

How the fixtures were made (2026-11-24; statsmodels 0.15.0, numpy 2.4.6, pandas):

    winsignal demo --data /tmp/wsQ --scale 0.25          # seed 42
    winsignal snapshots --data /tmp/wsQ --out /tmp/wsQ/snaps.csv
    python3 validation/regression.py /tmp/wsQ/snaps.csv

It takes the closed deals at the `age:30d` landmark, builds the design discovery uses (intercept, the
behaviour, the controls as treatment-coded dummies with rare levels pooled, log amount), writes the numeric
design to validation/fixtures/regression_design.csv and the statsmodels results to
validation/fixtures/regression_reference.json:

- logit of won on exec_engaged + controls, cluster-robust by rep (cov_type="cluster"), with the average
  marginal effect of the behaviour (get_margeff(at="overall", dummy=True));
- the same with a continuous feature (stakeholders) instead, with its average derivative
  (get_margeff(dummy=False));
- the non-robust fit (inverse information);
- OLS of log amount on multithreaded + controls (without log amount) among won deals, cluster-robust;
- lifelines (0.30.3) CoxPHFitter of days to close-won (lost deals censored at their close) on
  fast_follow_up + controls with cluster_col="rep_id", and Kaplan-Meier medians with and without it.
"""

import json
import sys

import numpy as np
import pandas as pd
import statsmodels.api as sm

LANDMARK = "age:30d"
CATEGORIES = ["segment", "industry", "opportunity_type", "lead_source", "creation_quarter"]
MIN_LEVEL = 30  # levels with fewer rows are pooled into "(other)"


def dummies(df, col):
    s = df[col].fillna("(missing)").astype(str)
    counts = s.value_counts()
    rare = counts[counts < MIN_LEVEL].index
    s = s.where(~s.isin(rare), "(other)")
    # Reference level: the most common (ties by name), so the intercept is a typical deal. A pooled
    # "(other)" that is itself rare joins the reference level.
    ref = sorted(s.unique(), key=lambda v: (-int((s == v).sum()), v))[0]
    if 0 < (s == "(other)").sum() < MIN_LEVEL:
        s = s.where(s != "(other)", ref)
    levels = sorted(s.unique())
    out = {}
    for v in levels:
        if v != ref:
            out[f"{col}={v}"] = (s == v).astype(float)
    return pd.DataFrame(out, index=df.index)


def main(path):
    snaps = pd.read_csv(path, dtype={"rep_id": str})
    d = snaps[(snaps.landmark == LANDMARK) & snaps.won.notna()].copy()
    d = d[d.log_amount.notna() & d.exec_engaged.notna() & d.multithreaded.notna()]
    d = d.sort_values("opportunity_id").reset_index(drop=True)
    ctrl = pd.concat([dummies(d, c) for c in CATEGORIES], axis=1)
    design = pd.concat(
        [
            pd.DataFrame({"const": 1.0}, index=d.index),
            d[["exec_engaged", "multithreaded", "stakeholders"]].astype(float),
            ctrl,
            d[["log_amount"]].astype(float),
        ],
        axis=1,
    )
    design.insert(0, "days_observed", d.days_observed.astype(float))
    design.insert(0, "fast_follow_up", d.fast_follow_up.fillna(0).astype(float))
    design.insert(0, "rep_id", d.rep_id)
    design.insert(0, "won", d.won.astype(float))
    design.to_csv("validation/fixtures/regression_design.csv", index=False, float_format="%.17g")

    groups = pd.factorize(d.rep_id)[0]
    controls = list(ctrl.columns) + ["log_amount"]
    fits = []

    def logit(name, cols, column, dummy):
        X = design[cols]
        m = sm.Logit(design.won, X)
        r = m.fit(method="newton", tol=1e-10, maxiter=100, disp=0, cov_type="cluster",
                  cov_kwds={"groups": groups})
        naive = m.fit(method="newton", tol=1e-10, maxiter=100, disp=0)
        me = r.get_margeff(at="overall", dummy=dummy)
        j = cols.index(column) - 1  # margeff excludes the constant
        fits.append({
            "name": name, "kind": "logit", "y": "won", "x": cols, "clusters": "rep_id",
            "params": r.params.tolist(), "bse": r.bse.tolist(), "pvalues": r.pvalues.tolist(),
            "bse_naive": naive.bse.tolist(), "llf": float(r.llf),
            "margeff": {"column": column, "dummy": dummy, "effect": float(me.margeff[j]),
                        "se": float(me.margeff_se[j])},
        })

    logit("logit_exec_engaged", ["const", "exec_engaged"] + controls, "exec_engaged", True)
    logit("logit_stakeholders", ["const", "stakeholders"] + controls, "stakeholders", False)

    won = design[design.won == 1.0]
    cols = ["const", "multithreaded"] + list(ctrl.columns)
    X = won[cols]
    keep = X.columns[(X != 0).any()]  # a dummy with no won deal cannot be estimated
    cols = [c for c in cols if c in keep]
    r = sm.OLS(won.log_amount, won[cols]).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(won.rep_id)[0]})
    fits.append({
        "name": "ols_multithreaded_log_amount", "kind": "ols", "y": "log_amount", "subset": "won == 1",
        "x": cols, "clusters": "rep_id",
        "params": r.params.tolist(), "bse": r.bse.tolist(), "pvalues": r.pvalues.tolist(),
    })

    from lifelines import CoxPHFitter, KaplanMeierFitter

    cols = ["fast_follow_up"] + controls
    df = design[cols + ["days_observed", "won", "rep_id"]].copy()
    cph = CoxPHFitter()
    cph.fit(df, duration_col="days_observed", event_col="won", cluster_col="rep_id",
            fit_options={"precision": 1e-12, "max_steps": 200})
    km = {}
    for v in (0.0, 1.0):
        sub = df[df.fast_follow_up == v]
        km[str(int(v))] = float(KaplanMeierFitter().fit(sub.days_observed, sub.won).median_survival_time_)
    fits.append({
        "name": "cox_fast_follow_up", "kind": "cox", "time": "days_observed", "event": "won",
        "x": cols, "clusters": "rep_id",
        "params": cph.params_[cols].tolist(), "bse": cph.standard_errors_[cols].tolist(),
        "pvalues": cph.summary.p[cols].tolist(), "llf": float(cph.log_likelihood_),
        "km_median_by_fast_follow_up": km,
    })

    with open("validation/fixtures/regression_reference.json", "w") as f:
        json.dump({"source": "validation/regression.py", "rows": len(design), "fits": fits}, f, indent=1)
    print(f"{len(design)} rows, {len(fits)} fits")


if __name__ == "__main__":
    main(sys.argv[1])

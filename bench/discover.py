#!/usr/bin/env python3
"""Discovery: winsignal vs statsmodels + lifelines, same snapshots, same models, checked to agree.

`winsignal discover` fits, for every behaviour and continuous feature at every landmark, a logistic
regression of won vs lost (plus an unadjusted one), a Cox model of time to close-won and a linear
regression of log amount among won deals, all cluster-robust by rep, plus a logistic regression per
"rule" (a threshold of a continuous feature, estimated on the half of the deals it was not chosen on).
This script times that, then performs the same fits with statsmodels (`Logit`, `OLS`, cov_type="cluster")
and lifelines (`CoxPHFitter` with `cluster_col`, default fit options) on the snapshots winsignal exports,
built with the same design rules (crates/discover/src/design.rs and analyse.rs):

- rows: for win the closed deals, for cycle time every deal (lost censored at close, open at the end of
  data), for deal size the won deals with an amount above 0; rows whose behaviour or feature is empty are
  left out;
- guard rails: at least 30 rows with and without (features: above the median or not), at least 10 wins
  and 10 losses (win) or 10 wins (cycle time);
- controls in catalog order plus log(1 + age at the landmark); categorical ones treatment-coded with
  missing as a level, levels under 30 rows pooled into "(other)", an "(other)" under 30 rows joined to
  the reference (the most common level, ties by name); numeric ones mean-imputed with a missing
  indicator; constant columns dropped, and for win any 0/1 column whose rows all have the same outcome;
  columns that are linear combinations of earlier ones dropped one at a time (the same Cholesky test);
- rules (features only): the deals are split in halves by the low bit of XXH3-64 of the opportunity id
  (reimplemented below for ids of 9 to 128 bytes), the threshold picked on one half from the deciles,
  the adjusted logit fitted on the other.

Where winsignal falls back to a Firth-penalised logit (the plain fit did not converge, was singular, or a
coefficient other than the intercept went beyond 10), statsmodels has no equivalent: such fits are
counted as failed. Not reproduced (winsignal does them in its timed part, the Python loop does not):
average marginal effects, Kaplan-Meier medians, the leakage AUC and the Benjamini-Hochberg q-values.

Usage (build the release binary first: `cargo build --release`; the script builds nothing):

    pip install statsmodels lifelines pandas numpy
    DATA=<demo workspace> python3 bench/discover.py      # e.g. one made by `winsignal demo`

Environment: DATA (workspace, default /tmp/wsN), BIN (default target/release/winsignal in this
repository), REPEAT (winsignal runs, best of; default 3), OUT (scratch folder, default
/tmp/winsignal-bench-discover). The statsmodels/lifelines loop runs once (it takes minutes).

What is timed:
- winsignal discover --data DATA --json, end to end (replay of the store into snapshots, then every fit),
  and the model-fitting part as winsignal reports it on stderr ("fitted N models in X s", N counting every
  finding and rule, estimated or not);
- winsignal snapshots --out (the data preparation on its own), best of REPEAT;
- the Python loop over every analysis (row selection, design, fits), without reading the CSV.
"""
import ctypes
import glob
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("DATA", "/tmp/wsN")
BIN = os.environ.get("BIN", os.path.join(ROOT, "target/release/winsignal"))
REPEAT = int(os.environ.get("REPEAT", "3"))
OUT = os.environ.get("OUT", "/tmp/winsignal-bench-discover")

OUTCOMES = ["win", "cycle_time", "deal_size"]
MIN_GROUP = 30  # rows with and without
MIN_EVENTS = 10  # wins (and losses, for win)
MIN_LEVEL = 30  # rarer levels are pooled into "(other)"
SEPARATION_COEF = 10.0  # a plain logit coefficient beyond this is separation (winsignal goes Firth)
NUMERIC_CONTROLS = {"log_employees", "log_amount"}
AGE_CONTROL = "log_age_at_landmark"
CHECK_LANDMARK = "age:30d"
# Tight tolerances for a second, untimed Cox fit of the cross-checked findings: lifelines' default stopping
# rule leaves coefficients ~1e-5 (relative) short of the maximum (validation/survival.py says the same).
TIGHT_COX = {"precision": 1e-14, "r_precision": 1e-16, "max_steps": 100}


# ---------------------------------------------------------------------------------------------------
# winsignal


def run_discover():
    """Runs `winsignal discover --json` REPEAT times; returns the best wall time, the fitting time and
    model count winsignal printed in that run, and the parsed JSON."""
    best = None
    for _ in range(REPEAT):
        t = time.perf_counter()
        p = subprocess.run([BIN, "--data", DATA, "discover", "--json"], capture_output=True, text=True,
                           check=True)
        wall = time.perf_counter() - t
        m = re.search(r"fitted (\d+) models in ([0-9.]+) s", p.stderr)
        if not m:
            sys.exit(f"no 'fitted N models in X s' line on stderr:\n{p.stderr}")
        if best is None or wall < best[0]:
            best = (wall, float(m.group(2)), int(m.group(1)), p.stdout)
    return best[0], best[1], best[2], json.loads(best[3])


def export_snapshots(path):
    """Writes the snapshot table with `winsignal snapshots --out`, REPEAT times; returns the best time."""
    times = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        subprocess.run([BIN, "--data", DATA, "-q", "snapshots", "--out", path], check=True,
                       stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return min(times)


def load(path):
    """The snapshot table and its catalog (from FILE.meta.json): definitions as (id, is_behaviour)."""
    with open(path[: -len(".csv")] + ".meta.json") as f:
        meta = json.load(f)["catalog"]
    controls = meta["controls"]
    text = ["opportunity_id", "landmark", "rep_id", "outcome"] + [c for c in controls if c not in NUMERIC_CONTROLS]
    # Only empty cells are missing ("NA" or "None" could be a level), and numbers read back exactly.
    df = pd.read_csv(path, dtype={c: str for c in text}, keep_default_na=False, na_values=[""],
                     float_precision="round_trip")
    defs = [(d["id"], d["behaviour"]) for d in meta["definitions"]]
    return df, controls, defs


# ---------------------------------------------------------------------------------------------------
# The design, as crates/discover/src/design.rs builds it


def quantile(sorted_values, q):
    """Linear interpolation between order statistics, computed as winsignal does (bit for bit)."""
    if len(sorted_values) == 0:
        return math.nan
    pos = q * (len(sorted_values) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def encode_categorical(name, labels):
    """Treatment-coded dummies: rare levels pooled, a small pool joined to the reference."""
    names, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    names = [str(x) for x in names] + ["(other)"]
    other = len(names) - 1
    counts = np.append(counts, 0)
    codes = np.where(counts[codes] < MIN_LEVEL, other, codes)
    c = np.bincount(codes, minlength=len(names))
    order = sorted((i for i in range(len(names)) if c[i] > 0), key=lambda i: names[i])
    reference = min(order, key=lambda i: (-c[i], names[i]))
    if 0 < c[other] < MIN_LEVEL:
        codes = np.where(codes == other, reference, codes)
    c = np.bincount(codes, minlength=len(names))
    return [(f"{name}={names[lv]}", (codes == lv).astype(float)) for lv in order if lv != reference and c[lv] > 0]


def encode_numeric(name, values):
    """The values with missing ones at the mean, plus a missing indicator if any is missing."""
    present = np.isfinite(values)
    if not present.any():
        return []
    mean = values[present].sum() / present.sum()
    out = [(name, np.where(present, values, mean))]
    if not present.all():
        out.append((f"{name} (missing)", (~present).astype(float)))
    return out


def first_singular(gram):
    """The first column whose Cholesky pivot is not clearly positive (winsignal's test), or None."""
    k = gram.shape[0]
    lower = np.zeros_like(gram)
    for j in range(k):
        d = gram[j, j] - lower[j, :j] @ lower[j, :j]
        scale = max(abs(gram[j, j]), sys.float_info.min)
        if not np.isfinite(d) or d <= 1e-10 * scale:
            return j
        d = math.sqrt(d)
        lower[j, j] = d
        lower[j + 1:, j] = (gram[j + 1:, j] - lower[j + 1:, :j] @ lower[j, :j]) / d
    return None


def build(focal, controls, intercept, outcome):
    """The design matrix (columns: intercept if wanted, focal, controls) or None when the focal column is
    constant or explained by the controls. `outcome` (0/1, for win) drops 0/1 columns that separate it."""
    n = len(focal)
    cols = ([("(intercept)", np.ones(n))] if intercept else []) + [("focal", focal)]
    for name, numeric, values in controls:
        for cname, v in (encode_numeric if numeric else encode_categorical)(name, values):
            if (v == v[0]).all():
                continue
            if outcome is not None and np.isin(v, (0.0, 1.0)).all():
                level = outcome[v == 1.0]
                if len(level) and (level == level[0]).all():
                    continue
            cols.append((cname, v))
    if (focal == focal[0]).all():
        return None
    focal_at = int(intercept)
    while True:
        x = np.column_stack([c[1] for c in cols])
        gram = x.T @ x
        if not intercept:
            m = x.mean(axis=0)
            gram -= n * np.outer(m, m)
        j = first_singular(gram)
        if j is None:
            return x
        if j <= focal_at:
            return None
        del cols[j]


# ---------------------------------------------------------------------------------------------------
# The reference fits


class Counter:
    """Fits attempted, failed (by reason) and the time spent inside the library calls."""

    def __init__(self):
        self.fits = 0
        self.failed = {}
        self.seconds = 0.0

    def fail(self, why):
        self.failed[why] = self.failed.get(why, 0) + 1


def logit(y, x, groups, counter, adjusted):
    """statsmodels Logit with winsignal's Newton settings; (coef, se) of column 1, or None."""
    import statsmodels.api as sm

    counter.fits += 1
    t = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = sm.Logit(y, x).fit(method="newton", tol=1e-10, maxiter=100, disp=0, cov_type="cluster",
                                   cov_kwds={"groups": groups})
    except Exception as e:  # separation or a singular Hessian
        counter.seconds += time.perf_counter() - t
        counter.fail(f"logit: {type(e).__name__}")
        return None
    counter.seconds += time.perf_counter() - t
    if not r.mle_retvals.get("converged", True):
        counter.fail("logit: not converged (winsignal: Firth)" if adjusted else "raw logit: not converged")
        return None
    if adjusted and np.any(np.abs(r.params[1:]) > SEPARATION_COEF):
        counter.fail("logit: |coefficient| > 10 (winsignal: Firth)")
        return None
    return float(r.params[1]), float(r.bse[1])


def cox(days, event, x, groups, counter, fit_options=None):
    """lifelines CoxPHFitter (Efron ties), robust by cluster; (coef, se) of column 0, or None."""
    from lifelines import CoxPHFitter

    counter.fits += 1
    t = time.perf_counter()
    df = pd.DataFrame(x, columns=[f"x{j}" for j in range(x.shape[1])])
    df["T"], df["E"], df["G"] = days, event.astype(int), groups
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cph = CoxPHFitter().fit(df, duration_col="T", event_col="E", cluster_col="G",
                                    fit_options=fit_options)
    except Exception as e:
        counter.seconds += time.perf_counter() - t
        counter.fail(f"cox: {type(e).__name__}")
        return None
    counter.seconds += time.perf_counter() - t
    return float(cph.params_.iloc[0]), float(cph.standard_errors_.iloc[0])


def ols(y, x, groups, counter):
    """statsmodels OLS, cluster-robust; (coef, se) of column 1, or None."""
    import statsmodels.api as sm

    counter.fits += 1
    t = time.perf_counter()
    try:
        r = sm.OLS(y, x).fit(cov_type="cluster", cov_kwds={"groups": groups})
    except Exception as e:
        counter.seconds += time.perf_counter() - t
        counter.fail(f"ols: {type(e).__name__}")
        return None
    counter.seconds += time.perf_counter() - t
    return float(r.params[1]), float(r.bse[1])


# ---------------------------------------------------------------------------------------------------
# One analysis, as crates/discover/src/analyse.rs runs it


class Rows:
    """The snapshots at one landmark as arrays, in the table's order (which is winsignal's)."""

    def __init__(self, df, controls, defs):
        self.ids = df.opportunity_id.to_numpy()
        outcome = df.outcome.to_numpy()
        self.won = outcome == "won"
        self.closed = outcome != "open"
        self.amount = df.amount.to_numpy(float)
        self.days = np.maximum(df.days_observed.to_numpy(float), 1e-6)
        self.rep = df.rep_id.fillna("(no rep)").to_numpy()
        self.controls = []
        for c in controls:
            if c in NUMERIC_CONTROLS:
                self.controls.append((c, True, df[c].to_numpy(float)))
            else:
                self.controls.append((c, False, df[c].fillna("(missing)").to_numpy()))
        self.controls.append((AGE_CONTROL, True, np.log1p(df.age_days.to_numpy(float))))
        self.focal = {d: df[d].to_numpy(float) for d, _ in defs}

    def controls_for(self, mask, outcome):
        return [(name, numeric, v[mask]) for name, numeric, v in self.controls
                if not (outcome == "deal_size" and name == "log_amount")]

    def groups(self, mask):
        return pd.factorize(self.rep[mask])[0]


def analyse(rows, outcome, defn, behaviour, counter, keep_design=False):
    """One behaviour x landmark x outcome: status and (coef, se, estimate) of the adjusted effect, and
    the raw odds ratio's (coef, se, estimate) for win. With `keep_design` a Cox design is kept for a refit."""
    focal_all = rows.focal[defn]
    keep = {"win": rows.closed, "cycle_time": np.ones(len(rows.won), bool),
            "deal_size": rows.won & (rows.amount > 0)}[outcome]
    mask = keep & np.isfinite(focal_all)
    focal = focal_all[mask]
    won = rows.won[mask]
    values = np.sort(focal)
    median = quantile(values, 0.5)
    n_with = int((focal == 1.0).sum() if behaviour else (focal > median).sum())
    n_without = len(focal) - n_with
    events = int(won.sum())
    result = {"status": "not_enough_data", "n": len(focal), "n_with": n_with, "n_without": n_without}
    if (n_with < MIN_GROUP or n_without < MIN_GROUP
            or (outcome == "win" and min(events, len(focal) - events) < MIN_EVENTS)
            or (outcome == "cycle_time" and events < MIN_EVENTS)):
        return result
    step = 1.0
    if not behaviour:
        iqr = quantile(values, 0.75) - quantile(values, 0.25)
        step = iqr if iqr > 0 else float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    y01 = won.astype(float)
    x = build(focal, rows.controls_for(mask, outcome), outcome != "cycle_time",
              y01 if outcome == "win" else None)
    if x is None:
        result["status"] = "refused"
        return result
    groups = rows.groups(mask)
    if outcome == "win":
        raw = logit(y01, np.column_stack([np.ones(len(focal)), focal]), groups, counter, adjusted=False)
        result["raw"] = raw and (raw[0], raw[1], math.exp(raw[0] * step))
        fit = logit(y01, x, groups, counter, adjusted=True)
        transform = math.exp
    elif outcome == "cycle_time":
        fit = cox(rows.days[mask], won, x, groups, counter)
        if keep_design:
            result["design"] = (rows.days[mask], won, x, groups)
        transform = math.exp
    else:
        fit = ols(np.log(rows.amount[mask]), x, groups, counter)
        transform = lambda b: 100.0 * math.expm1(b)  # noqa: E731
    if fit is None or not math.isfinite(fit[1]) or fit[1] <= 0:
        result["status"] = "refused"
        return result
    result.update(status="estimated", coef=fit[0], se=fit[1], estimate=transform(fit[0] * step))
    return result


# ---------------------------------------------------------------------------------------------------
# Rules, as analyse.rs's `rule`: the half-split needs winsignal's hash

M64 = (1 << 64) - 1
XXH_PRIME64_1 = 0x9E3779B185EBCA87
XXH3_SECRET = bytes.fromhex(
    "b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671f"
    "cb79e64eccc0e578825ad07dccff7221b8084674f743248ee03590e6813a264c"
    "3c2852bb91c300cb88d0658b1b532ea371644897a20df94e3819ef46a9deacd8"
    "a8fa763fe39c343ff9dcbbc7c70b4f1d8a51e04bcdb45931c89f7ec9d9787364"
    "eac5ac8334d3ebc3c581a0fffa1363eb170ddd51b7f0da49d316552629d4689e"
    "2b16be587d47a1fc8ff8b8d17ad031ce45cb3a8f95160428afd7fbcabb4b407e")


def _u64(b, at):
    return int.from_bytes(b[at:at + 8], "little")


def _fold(a, b):
    p = a * b
    return (p & M64) ^ (p >> 64)


def _avalanche(h):
    h ^= h >> 37
    h = (h * 0x165667919E3779F9) & M64
    return h ^ (h >> 32)


def _mix16(data, at, secret_at):
    return _fold(_u64(data, at) ^ _u64(XXH3_SECRET, secret_at), _u64(data, at + 8) ^ _u64(XXH3_SECRET, secret_at + 8))


def xxh3_64(data):
    """XXH3-64 with seed 0 and the default secret, for inputs of 9 to 128 bytes (xxhash-rust's
    xxh3_64_9to16 and xxh3_64_7to128)."""
    n = len(data)
    if 9 <= n <= 16:
        lo = _u64(data, 0) ^ (_u64(XXH3_SECRET, 24) ^ _u64(XXH3_SECRET, 32))
        hi = _u64(data, n - 8) ^ (_u64(XXH3_SECRET, 40) ^ _u64(XXH3_SECRET, 48))
        swapped = int.from_bytes(lo.to_bytes(8, "little"), "big")
        return _avalanche((n + swapped + hi + _fold(lo, hi)) & M64)
    if not 17 <= n <= 128:
        raise ValueError(f"xxh3_64 here handles 9 to 128 bytes, not {n}")
    acc = (n * XXH_PRIME64_1) & M64
    if n > 32:
        if n > 64:
            if n > 96:
                acc += _mix16(data, 48, 96) + _mix16(data, n - 64, 112)
            acc += _mix16(data, 32, 64) + _mix16(data, n - 48, 80)
        acc += _mix16(data, 16, 32) + _mix16(data, n - 32, 48)
    acc += _mix16(data, 0, 0) + _mix16(data, n - 16, 16)
    return _avalanche(acc & M64)


def rule(rows, defn, counter, halves):
    """The readable threshold of one feature at one landmark and its adjusted effect, or None."""
    focal_all = rows.focal[defn]
    mask = rows.closed & np.isfinite(focal_all)
    choose = mask & halves
    estimate = mask & ~halves

    def rate(sel, t, above):
        v = focal_all[sel]
        pick = (v >= t) == above
        return rows.won[sel][pick].sum() / max(pick.sum(), 1), int(pick.sum())

    values = np.sort(focal_all[choose])
    if len(values) == 0:
        return None
    candidates = [quantile(values, i / 10) for i in range(1, 10)]
    if (np.mod(values, 1.0) == 0).all():
        candidates = [math.ceil(c) for c in candidates]
    candidates = [c for i, c in enumerate(candidates) if i == 0 or c != candidates[i - 1]]
    best = None
    for t in candidates:
        (a, na), (b, nb) = rate(choose, t, True), rate(choose, t, False)
        if na < MIN_GROUP // 2 or nb < MIN_GROUP // 2:
            continue
        if best is None or abs(a - b) > best[1]:
            best = (t, abs(a - b))
    if best is None:
        return None
    t = best[0]
    (_, n_with), (_, n_without) = rate(mask, t, True), rate(mask, t, False)
    if n_with < MIN_GROUP or n_without < MIN_GROUP:
        return None
    out = {"threshold": float(t), "n_with": n_with, "n_without": n_without, "status": "not_enough_data"}
    focal = (focal_all[estimate] >= t).astype(float)
    y = rows.won[estimate].astype(float)
    with_, events = int(focal.sum()), int(y.sum())
    if (with_ < MIN_GROUP // 2 or len(focal) - with_ < MIN_GROUP // 2
            or min(events, len(y) - events) < MIN_EVENTS):
        return out
    x = build(focal, rows.controls_for(estimate, "win"), True, y)
    if x is None:
        out["status"] = "refused"
        return out
    fit = logit(y, x, rows.groups(estimate), counter, adjusted=True)
    if fit is None:
        out["status"] = "refused"
        return out
    out.update(status="estimated", coef=fit[0], se=fit[1])
    return out


# ---------------------------------------------------------------------------------------------------
# Report


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def blas_threads():
    """OpenBLAS threads numpy uses, if its bundled OpenBLAS can be asked."""
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs", "*openblas*"))
    for lib in libs:
        try:
            so = ctypes.CDLL(lib)
        except OSError:
            continue
        for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                     "openblas_get_num_threads"):
            f = getattr(so, name, None)
            if f:
                return str(f())
    return "unknown"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def agreement(pairs):
    """Max relative difference of estimate, coef and se over (ours, winsignal's effect) pairs."""
    if not pairs:
        return "none compared"
    worst = [max(rel(o[k], w[k]) for o, w in pairs) for k in ("estimate", "coef", "se")]
    return f"{len(pairs)} compared, max rel. diff estimate {worst[0]:.1e}, coef {worst[1]:.1e}, se {worst[2]:.1e}"


def main():
    import lifelines
    import statsmodels

    if not os.path.exists(BIN):
        sys.exit(f"no binary at {BIN}: build it (cargo build --release) or set BIN")
    os.makedirs(OUT, exist_ok=True)
    csv = os.path.join(OUT, "snaps.csv")

    print(f"winsignal discover --json, best of {REPEAT}…", file=sys.stderr)
    ws_total, ws_fit, ws_models, ws = run_discover()
    print(f"winsignal snapshots --out, best of {REPEAT}…", file=sys.stderr)
    prep = export_snapshots(csv)
    df, controls, defs = load(csv)
    behaviour = dict(defs)
    landmarks = [lm["name"] for lm in ws["landmarks"]]
    by_landmark = {name: Rows(g, controls, defs) for name, g in df.groupby("landmark", sort=False)}
    try:
        halves = {name: np.array([xxh3_64(i.encode()) & 1 == 0 for i in r.ids]) for name, r in by_landmark.items()}
    except ValueError as e:
        halves = None
        print(f"rules skipped: {e}", file=sys.stderr)

    print("statsmodels + lifelines…", file=sys.stderr)
    counter = Counter()
    ours, our_rules = {}, {}
    started = time.perf_counter()
    for outcome in OUTCOMES:
        for lm in landmarks:
            for d, _ in defs:
                ours[(outcome, lm, d)] = analyse(by_landmark[lm], outcome, d, behaviour[d], counter,
                                                 keep_design=lm == CHECK_LANDMARK and behaviour[d])
    if halves is not None:
        for lm in landmarks:
            for d, b in defs:
                if not b:
                    r = rule(by_landmark[lm], d, counter, halves[lm])
                    if r is not None:
                        our_rules[(lm, d)] = r
    py = time.perf_counter() - started

    # Cross-checks against winsignal's JSON.
    theirs = {(f["outcome"], f["landmark"], f["behaviour"]): f for f in ws["findings"]}
    status_diff = [k for k, f in theirs.items() if ours.get(k, {}).get("status") != f["status"]]
    checked = {o: [] for o in OUTCOMES}
    everything = {o: [] for o in OUTCOMES}
    raw_pairs = []
    for k, f in theirs.items():
        o = ours.get(k, {})
        if f["effect"] and o.get("status") == "estimated":
            everything[k[0]].append((o, f["effect"]))
            if k[1] == CHECK_LANDMARK and behaviour[k[2]]:
                checked[k[0]].append((o, f["effect"]))
        if f["raw"]["odds_ratio"] and o.get("raw"):
            raw_pairs.append((o["raw"][2], f["raw"]["odds_ratio"]["estimate"]))
    # The cross-checked Cox fits again with tight tolerances (untimed), to separate lifelines' default
    # stopping rule from any difference of design.
    tight = []
    scratch = Counter()
    for (outcome, lm, d), o in ours.items():
        if outcome == "cycle_time" and lm == CHECK_LANDMARK and behaviour[d] and o.get("status") == "estimated":
            f = theirs[(outcome, lm, d)]["effect"]
            fit = cox(*o["design"], scratch, fit_options=TIGHT_COX)
            if fit:
                tight.append(({"coef": fit[0], "se": fit[1], "estimate": math.exp(fit[0])}, f))
    ws_rules = {(r["landmark"], r["feature"]): r for r in ws["rules"]}
    rule_same = sum(1 for k, r in ws_rules.items() if k in our_rules and
                    (our_rules[k]["threshold"], our_rules[k]["n_with"], our_rules[k]["n_without"])
                    == (r["threshold"], r["n_with"], r["n_without"]))
    rule_pairs = [(our_rules[k], r["effect"]) for k, r in ws_rules.items()
                  if r["effect"] and our_rules.get(k, {}).get("status") == "estimated"]

    ws_estimated = sum(1 for f in ws["findings"] if f["effect"])
    ws_fits = (ws_estimated + sum(1 for f in ws["findings"] if f["raw"]["odds_ratio"])
               + sum(1 for r in ws["rules"] if r["effect"]))
    ok = counter.fits - sum(counter.failed.values())
    print()
    print(f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores ({cpu_model()}), python "
          f"{platform.python_version()}, numpy {np.__version__} (OpenBLAS threads: {blas_threads()}), "
          f"statsmodels {statsmodels.__version__}, lifelines {lifelines.__version__}")
    print(f"{len(df):,} snapshots at {len(landmarks)} landmarks, {len(defs)} definitions; "
          f"winsignal best of {REPEAT}, Python loop once")
    print("| what | models | seconds |")
    print("|---|---:|---:|")
    print(f"| winsignal snapshots --out (data preparation: replay, snapshots, CSV) | | {prep:.2f} |")
    print(f"| winsignal discover --json, end to end | | {ws_total:.2f} |")
    print(f"| winsignal discover, model fitting (its stderr) | {ws_models} analyses, {ws_fits} fits | {ws_fit:.1f} |")
    print(f"| statsmodels + lifelines loop (design + fits) | {counter.fits} fits ({ok} ok) | {py:.1f} |")
    print(f"| of which inside statsmodels/lifelines calls | | {counter.seconds:.1f} |")
    print(f"ratio Python loop / winsignal model fitting: {py / ws_fit:.1f}")
    firth = (sum(1 for f in ws["findings"] if f["effect"] and f["effect"]["penalised"])
             + sum(1 for r in ws["rules"] if r["effect"] and r["effect"]["penalised"]))
    print(f"failed reference fits: {counter.failed or 'none'}; winsignal Firth-penalised fits: {firth}")
    print(f"findings whose status differs (estimated / not enough data / refused): {len(status_diff)} of {len(theirs)}"
          + (f" e.g. {status_diff[:5]}" if status_diff else ""))
    print(f"agreement at {CHECK_LANDMARK}, yes/no behaviours:")
    for o in OUTCOMES:
        print(f"  {o}: {agreement(checked[o])}")
    print(f"  cycle_time refitted with tight lifelines tolerances (untimed): {agreement(tight)}")
    print("agreement over every estimated finding (all landmarks, behaviours and features):")
    for o in OUTCOMES:
        print(f"  {o}: {agreement(everything[o])}")
    if raw_pairs:
        print(f"  raw odds ratios: {len(raw_pairs)} compared, max rel. diff "
              f"{max(rel(a, b) for a, b in raw_pairs):.1e}")
    if halves is not None:
        print(f"rules: {len(our_rules)} here vs {len(ws_rules)} in winsignal, {rule_same} with the same threshold "
              f"and counts; effects: {agreement([({**o, 'estimate': math.exp(o['coef'])}, w) for o, w in rule_pairs])}")


if __name__ == "__main__":
    main()

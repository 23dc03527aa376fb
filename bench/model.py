#!/usr/bin/env python3
"""Win-probability models: winsignal's EBM and logistic baseline against InterpretML, LightGBM and
scikit-learn on the same split of the same data.

Fits, on the `train` rows of a benchmark CSV, and scores on its `test` rows:
- InterpretML `ExplainableBoostingClassifier()` with its default settings (categorical columns passed as
  strings, so it treats them as nominal);
- LightGBM `LGBMClassifier()` defaults (categorical columns as pandas `category`, LightGBM's native
  categorical handling; verbose=-1 only silences it);
- scikit-learn `LogisticRegression(max_iter=1000)` behind a pipeline: numeric columns mean-imputed with a
  missing indicator and standard-scaled, categorical columns one-hot encoded (missing as a level, levels
  under 10 training rows pooled, unseen levels ignored);
- with --winsignal PATH, winsignal's example binary `fit_csv` (its own timing of the EBM and of the
  logistic baseline, fitted in the same way: crates/learn/examples/fit_csv.rs); each --variant
  "PARAM=VALUE[,PARAM=VALUE]" adds a run of winsignal's EBM with those parameters changed.

Each fit is timed on its own (wall clock, fit only, data already in memory). Prints a JSON list, one
object per model: AUC, Brier score, log loss, calibration slope and intercept (logistic regression of y
on logit(p)), fit seconds; then the same as a Markdown table on stderr.

The CSV format: a header row; a column `split` (train|test), a column `y` (0|1), all other columns
features; an empty cell is missing. --meta (default: DATA.meta.json beside the CSV) is
{"categorical": [...]}, the other columns being numeric. bench/bank_model_csv.py makes one from the UCI
Bank Marketing data.

Usage:
    pip install interpret lightgbm scikit-learn pandas numpy
    python3 bench/bank_model_csv.py                    # writes /tmp/bank_model.csv
    cargo build --release -p winsignal-learn --example fit_csv
    python3 bench/model.py /tmp/bank_model.csv --winsignal target/release/examples/fit_csv
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import pandas as pd


def metrics(y, p):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    p = np.asarray(p, dtype=float)
    clipped = np.clip(p, 1e-15, 1 - 1e-15)
    logit = np.log(clipped / (1 - clipped)).reshape(-1, 1)
    cal = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(logit, y)
    return {
        "auc": roc_auc_score(y, p),
        "brier": brier_score_loss(y, p),
        "log_loss": log_loss(y, clipped),
        "calibration_slope": float(cal.coef_[0][0]),
        "calibration_intercept": float(cal.intercept_[0]),
    }


def timed(fit):
    start = time.perf_counter()
    model = fit()
    return model, time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--meta")
    ap.add_argument("--winsignal", help="path to the fit_csv example binary")
    ap.add_argument("--variant", action="append", default=[],
                    help="extra winsignal EBM run with PARAM=VALUE[,PARAM=VALUE] (repeatable)")
    ap.add_argument("--skip", default="", help="comma-separated models to skip: ebm,lightgbm,logreg")
    args = ap.parse_args()
    meta_path = args.meta or os.path.splitext(args.data)[0] + ".meta.json"
    categorical = []
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            categorical = json.load(f).get("categorical", [])
    skip = set(filter(None, args.skip.split(",")))

    # Only an empty cell is missing (a level such as "NA" or "unknown" stays a level).
    df = pd.read_csv(args.data, dtype={c: str for c in categorical}, keep_default_na=False, na_values=[""])
    features = [c for c in df.columns if c not in ("split", "y")]
    numeric = [c for c in features if c not in categorical]
    train, test = df[df.split == "train"], df[df.split == "test"]
    x_train, y_train = train[features], train.y.to_numpy()
    x_test, y_test = test[features], test.y.to_numpy()
    rows = []

    def add(name, seconds, p):
        row = {"model": name, "rows_train": len(train), "rows_test": len(test), "fit_seconds": seconds}
        row.update(metrics(y_test, p))
        rows.append(row)
        print(f"{name}: {row}", file=sys.stderr, flush=True)

    if "ebm" not in skip:
        from interpret.glassbox import ExplainableBoostingClassifier

        model, seconds = timed(lambda: ExplainableBoostingClassifier().fit(x_train, y_train))
        add("interpret_ebm", seconds, model.predict_proba(x_test)[:, 1])

    if "lightgbm" not in skip:
        from lightgbm import LGBMClassifier

        def lgb_frame(x):
            x = x.copy()
            for c in categorical:
                x[c] = pd.Categorical(x[c], categories=sorted(train[c].dropna().unique()))
            return x

        lx_train, lx_test = lgb_frame(x_train), lgb_frame(x_test)
        model, seconds = timed(lambda: LGBMClassifier(verbose=-1).fit(lx_train, y_train))
        add("lightgbm", seconds, model.predict_proba(lx_test)[:, 1])

    if "logreg" not in skip:
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline, make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        pre = ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(strategy="mean", add_indicator=True), StandardScaler()), numeric),
            ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="(missing)"),
                                  OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=10)), categorical),
        ])
        pipe = Pipeline([("pre", pre), ("lr", LogisticRegression(max_iter=1000))])
        model, seconds = timed(lambda: pipe.fit(x_train, y_train))
        add("sklearn_logreg", seconds, model.predict_proba(x_test)[:, 1])

    if args.winsignal:
        runs = [[]] + [["--no-baseline"] + [a for kv in v.split(",") for a in ("--set", kv)] for v in args.variant]
        for extra in runs:
            cmd = [args.winsignal, args.data, "--meta", meta_path] + extra
            out = subprocess.run(cmd, check=True, capture_output=True, text=True)
            sys.stderr.write(out.stderr)
            for line in out.stdout.splitlines():
                if line.strip().startswith("{"):
                    r = json.loads(line)
                    rows.append({k: r[k] for k in ("model", "rows_train", "rows_test", "fit_seconds", "auc",
                                                   "brier", "log_loss", "calibration_slope",
                                                   "calibration_intercept")})

    print(json.dumps(rows, indent=1))
    print(f"\n{platform.node()} {platform.machine()}, {os.cpu_count()} cores", file=sys.stderr)
    print("| model | AUC | Brier | log loss | cal. slope | cal. intercept | fit s |", file=sys.stderr)
    print("|---|---:|---:|---:|---:|---:|---:|", file=sys.stderr)
    for r in rows:
        print(f"| {r['model']} | {r['auc']:.4f} | {r['brier']:.4f} | {r['log_loss']:.4f} | "
              f"{r['calibration_slope']:.3f} | {r['calibration_intercept']:.3f} | {r['fit_seconds']:.2f} |",
              file=sys.stderr)


if __name__ == "__main__":
    main()

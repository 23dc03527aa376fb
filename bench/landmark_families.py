#!/usr/bin/env python3
"""One win model for every landmark, or one per landmark family? Measured on the model's own rows.

`winsignal train --export X.csv` writes the rows the win model is fitted (`train`) and tested (`test`)
on, and X.rows.csv says which landmark each row is at (`stage:…` or `age:…`). This script fits
winsignal's EBM (the `fit_csv` example, exactly as `train` fits it) three times on the same split:
on every row (the landmark family known to the model through the `stage` and `age_days` features —
what `train` does), and on the stage-landmark rows and the age-landmark rows alone; then scores every
test row with the one model and with its family's model, and compares AUC, Brier score and log loss on
all test rows and per family.

Usage:
    cargo build --release -p winsignal-learn --example fit_csv
    winsignal --data DIR train --export /tmp/X.csv
    python3 bench/landmark_families.py /tmp/X.csv --winsignal target/release/examples/fit_csv
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score


def fit(binary, csv, meta, out):
    cmd = [binary, csv, "--meta", meta, "--no-baseline", "--predictions", out]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return np.loadtxt(out, ndmin=1)


def scores(y, p):
    return {"rows": int(len(y)), "auc": roc_auc_score(y, p), "brier": brier_score_loss(y, p),
            "log_loss": log_loss(y, np.clip(p, 1e-15, 1 - 1e-15))}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--winsignal", required=True, help="path to the fit_csv example binary")
    args = ap.parse_args()
    stem = os.path.splitext(args.data)[0]
    meta = stem + ".meta.json"
    df = pd.read_csv(args.data, dtype=str, keep_default_na=False)
    rows = pd.read_csv(stem + ".rows.csv", dtype=str, keep_default_na=False)
    if len(rows) != len(df) or not (rows.split.values == df.split.values).all():
        sys.exit(f"{stem}.rows.csv does not describe {args.data} row for row")
    family = rows.landmark.str.split(":").str[0].values
    keep = df.split.isin(["train", "test"]).values
    df, family = df[keep].reset_index(drop=True), family[keep]
    test = (df.split == "test").values
    y = df.y.astype(int).values[test]
    fam_test = family[test]

    with tempfile.TemporaryDirectory() as tmp:
        whole = os.path.join(tmp, "all.csv")
        df.to_csv(whole, index=False)
        p_one = fit(args.winsignal, whole, meta, os.path.join(tmp, "all.p"))
        p_fam = np.empty_like(p_one)
        for f in sorted(set(family)):
            part = os.path.join(tmp, f"{f}.csv")
            df[family == f].to_csv(part, index=False)
            p_fam[fam_test == f] = fit(args.winsignal, part, meta, os.path.join(tmp, f"{f}.p"))

    out = {"one_model": {"all": scores(y, p_one)}, "per_family": {"all": scores(y, p_fam)}}
    for f in sorted(set(family)):
        m = fam_test == f
        out["one_model"][f] = scores(y[m], p_one[m])
        out["per_family"][f] = scores(y[m], p_fam[m])
    print(json.dumps(out, indent=1))
    print("| test rows | model | rows | AUC | Brier | log loss |", file=sys.stderr)
    print("|---|---|---:|---:|---:|---:|", file=sys.stderr)
    for part in out["one_model"]:
        for name, key in [("one model", "one_model"), ("one per family", "per_family")]:
            r = out[key][part]
            print(f"| {part} | {name} | {r['rows']} | {r['auc']:.4f} | {r['brier']:.4f} | {r['log_loss']:.4f} |",
                  file=sys.stderr)


if __name__ == "__main__":
    main()

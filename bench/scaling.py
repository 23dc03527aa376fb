#!/usr/bin/env python3
"""Synthetic, larger versions of a model-benchmark CSV (bench/bank_model_csv.py's format, read by
bench/model.py and crates/learn/examples/fit_csv.rs), to measure how training time grows with rows and
with features.

- `--rows K`: every training row is kept once as it is and copied K − 1 times with noise (fixed seed):
  an integer column gets `round(x + N(0, (0.05 x)²))` (so -1 and 0 stay as they are and small counts
  mostly do), a categorical cell is replaced with probability 0.02 by a level drawn from the column's
  training frequencies. A copy's label is not copied but drawn afresh from P(y | its features) of a
  reference model fitted on the real training rows (scikit-learn's `HistGradientBoostingClassifier`:
  100 trees of 15 leaves, learning rate 0.1, native categories, no early stopping, seed 0; neither
  winsignal nor one of the libraries benchmarked against it). Copying the label would leak: every bag's
  validation rows would hold near copies of its training rows, so early stopping would see memorising
  noise as improvement (at 3× winsignal's pair stage then ran to its 5,000-round limit and the holdout
  AUC fell from 0.724 to 0.707). The test rows are kept once, unchanged: every scale is scored on the
  same real holdout.
- `--features F`: columns are added until there are F features, in turn a noisier copy of an original
  column (numbers `x + N(0, (0.5 sd)²)`, categories replaced with probability 0.2) and a pure-noise column
  (uniform numbers, or one of five levels); named `extra{k}_{source}` / `extra{k}_noise`.

The copies are near duplicates, so this measures time, not what more real data would do to accuracy.

Usage:
    python3 bench/bank_model_csv.py                                  # /tmp/bank_model.csv
    python3 bench/scaling.py --rows 10 /tmp/bank_model.csv /tmp/bank_x10.csv
    python3 bench/scaling.py --rows 4 --features 90 /tmp/bank_model.csv /tmp/bank_x4_f90.csv
writes OUT and OUT's .meta.json beside it.
"""
import argparse
import json
import os

import numpy as np
import pandas as pd


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1, help="copies of each training row (1: unchanged)")
    ap.add_argument("--features", type=int, default=0, help="total features wanted (0: as in SRC)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("src")
    ap.add_argument("out")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    with open(os.path.splitext(args.src)[0] + ".meta.json") as f:
        categorical = json.load(f)["categorical"]
    df = pd.read_csv(args.src, dtype={c: str for c in categorical}, keep_default_na=False, na_values=[""])
    features = [c for c in df.columns if c not in ("split", "y")]
    train, test = df[df.split == "train"].reset_index(drop=True), df[df.split == "test"]

    levels = {c: train[c].dropna().value_counts(normalize=True).sort_index() for c in categorical}

    def noisy(col, values, scale_num, p_cat):
        if col in categorical:
            lv = levels[col]
            swap = rng.random(len(values)) < p_cat
            out = values.to_numpy(dtype=object).copy()
            out[swap] = rng.choice(lv.index.to_numpy(dtype=object), size=int(swap.sum()), p=lv.to_numpy())
            return out
        x = values.to_numpy(dtype=float)
        noise = rng.normal(0.0, 1.0, len(x)) * scale_num(x)
        return np.round(x + noise)

    copies = [train]
    if args.rows > 1:
        from sklearn.ensemble import HistGradientBoostingClassifier

        def frame(x):
            x = x[features].copy()
            for c in categorical:
                x[c] = pd.Categorical(x[c], categories=levels[c].index)
            return x

        reference = HistGradientBoostingClassifier(
            max_iter=100, learning_rate=0.1, max_leaf_nodes=15, categorical_features="from_dtype",
            early_stopping=False, random_state=0).fit(frame(train), train.y.to_numpy())
    for _ in range(args.rows - 1):
        c = train.copy()
        for col in features:
            c[col] = noisy(col, train[col], lambda x: 0.05 * np.abs(x), 0.02)
        p = reference.predict_proba(frame(c))[:, 1]
        c["y"] = (rng.random(len(c)) < p).astype(np.int64)
        copies.append(c)
    out = pd.concat(copies + [test], ignore_index=True)

    new_categorical = list(categorical)
    k = 0
    while len(features) + k < args.features:
        source = features[k // 2 % len(features)]
        if k % 2 == 0:
            name = f"extra{k}_{source}"
            sd = float(np.nanstd(out[source].to_numpy(dtype=float))) if source not in categorical else 0.0
            out[name] = noisy(source, out[source], lambda x: 0.5 * sd, 0.2)
            if source in categorical:
                new_categorical.append(name)
        else:
            name = f"extra{k}_noise"
            if source in categorical:
                out[name] = rng.choice(np.array(["a", "b", "c", "d", "e"], dtype=object), size=len(out))
                new_categorical.append(name)
            else:
                out[name] = np.round(rng.uniform(0.0, 1000.0, len(out)))
        k += 1

    for col in out.columns:
        if col not in new_categorical and col not in ("split", "y") and out[col].notna().all():
            out[col] = out[col].astype(np.int64)
    out.to_csv(args.out, index=False)
    meta = os.path.splitext(args.out)[0] + ".meta.json"
    with open(meta, "w") as f:
        json.dump({"categorical": new_categorical}, f)
        f.write("\n")
    n_train = int((out.split == "train").sum())
    print(f"{args.out}: {n_train} train rows, {len(out) - n_train} test rows, "
          f"{len(out.columns) - 2} features; {meta}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Turns the UCI Bank Marketing data into the model-benchmark CSV format read by bench/model.py and by
`cargo run --release -p winsignal-learn --example fit_csv`.

Input: bank/bank-full.csv of the UCI "Bank Marketing" data set (Moro, Cortez & Rita 2014; 45,211
telemarketing contacts of a Portuguese bank, May 2008 – Nov 2010, in time order; see
shared/datasets/uci-bank-marketing/PROVENANCE.md). Output, the benchmark format:

- a header row; a column `split` (`train` or `test`), a column `y` (0 or 1), every other column a
  feature; an empty cell is a missing value;
- beside it, DATA.meta.json: {"categorical": [names of the categorical columns]} (the rest numeric).

Choices, so the benchmark stays honest and reproducible:
- `duration` is dropped: the length of the call is known only after it and leaks the outcome (the data
  set's own notes say to use it only for benchmarking);
- the split is by time (the default, `--split time`): the first 75 % of rows train, the last 25 % test
  (rows are in date order, and the later months have a much higher success rate, so this is a test of
  generalising to a later period); `--split interleaved` takes every fourth row as test instead (the
  same period on both sides); no randomness either way;
- values are copied as they are (`pdays` = -1 means "not contacted before", "unknown" is a level).

Usage:
    python3 bench/bank_model_csv.py [--split time|interleaved] [BANK_FULL_CSV] [OUT_CSV]
defaults: $SHARED/datasets/uci-bank-marketing/raw/bank/bank-full.csv (SHARED defaults to /work/shared)
and /tmp/bank_model.csv (with /tmp/bank_model.meta.json).
"""
import argparse
import csv
import json
import os

CATEGORICAL = ["job", "marital", "education", "default", "housing", "loan", "contact", "month", "poutcome"]
DROP = ["duration"]
TEST_SHARE = 0.25


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=["time", "interleaved"], default="time")
    ap.add_argument("src", nargs="?", default=os.path.join(
        os.environ.get("SHARED", "/work/shared"), "datasets/uci-bank-marketing/raw/bank/bank-full.csv"))
    ap.add_argument("out", nargs="?", default="/tmp/bank_model.csv")
    args = ap.parse_args()
    src, out = args.src, args.out
    with open(src, newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    header, body = rows[0], rows[1:]
    y_col = header.index("y")
    keep = [i for i, h in enumerate(header) if h not in DROP and i != y_col]
    if args.split == "time":
        n_test = round(len(body) * TEST_SHARE)
        is_test = [k >= len(body) - n_test for k in range(len(body))]
    else:
        is_test = [k % 4 == 3 for k in range(len(body))]
    n_test = sum(is_test)
    n_train = len(body) - n_test
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["split", "y"] + [header[i] for i in keep])
        for k, r in enumerate(body):
            w.writerow(["test" if is_test[k] else "train", 1 if r[y_col] == "yes" else 0] + [r[i] for i in keep])
    meta = os.path.splitext(out)[0] + ".meta.json"
    with open(meta, "w") as f:
        json.dump({"categorical": [header[i] for i in keep if header[i] in CATEGORICAL]}, f)
        f.write("\n")
    print(f"{out}: {n_train} train rows, {n_test} test rows, {len(keep)} features; {meta}")


if __name__ == "__main__":
    main()

"""Reference numbers for the drift test (crates/stats/src/drift.rs, checked by
crates/stats/tests/drift.rs): the chi-square upper tail from scipy on a grid, and the population
stability index test on fixed samples (a reference, a window without drift, one shifted by half a
standard deviation, a yes/no feature with missing values), computed here independently with numpy and
scipy.stats.chi2; and the clustered test (the same PSI; the statistic divides by Kish's effective sample
sizes (sum m)^2 / sum m^2 instead of the counts) on the same samples, the reference in clusters of 4
consecutive values and the window in clusters of 3 (the last cluster shorter where the size does not
divide).

    pip install numpy scipy
    python3 validation/drift.py     # writes validation/fixtures/drift_samples.csv, drift_reference.json

Made 2026-12-06 with numpy 2.4.6 and scipy 1.17.1 (fixed seed).
"""

import csv
import json

import numpy as np
from scipy.stats import chi2

OUT = "validation/fixtures/"


def edges(reference, max_bins=10):
    """The reference's deciles without repeats; an edge at the maximum dropped unless it is the only one."""
    s = np.sort(reference[~np.isnan(reference)])
    n = len(s)
    e = []
    for k in range(1, max_bins):
        v = s[min((k * n) // max_bins, n - 1)]
        if not e or e[-1] != v:
            e.append(v)
    if len(e) > 1 and e[-1] == s[-1]:
        e.pop()
    return e or [s[-1]]


def psi_test(reference, window, max_bins=10, reference_clusters=None, window_clusters=None):
    e = np.array(edges(reference, max_bins))
    missing = bool(np.isnan(reference).any() or np.isnan(window).any())
    n_bins = len(e) + 1 + int(missing)

    def counts(x):
        c = np.zeros(n_bins)
        for v in x:
            k = n_bins - 1 if np.isnan(v) else int(np.searchsorted(e, v, side="left"))
            c[k] += 1
        return c

    def size(x, clusters):
        if clusters is None:
            return float(len(x))
        _, m = np.unique(clusters, return_counts=True)
        return float(m.sum()) ** 2 / float((m.astype(float) ** 2).sum())

    r, w = counts(reference), counts(window)
    rs = (r + 0.5) / (len(reference) + 0.5 * n_bins)
    ws = (w + 0.5) / (len(window) + 0.5 * n_bins)
    psi = float(np.sum((ws - rs) * np.log(ws / rs)))
    big_n, n = size(reference, reference_clusters), size(window, window_clusters)
    stat = psi / (1 / n + 1 / big_n)
    df = n_bins - 1
    return dict(psi=psi, statistic=stat, df=df, p_value=float(chi2.sf(stat, df)), reference_n=big_n, window_n=n)


def main():
    rng = np.random.default_rng(2026)
    reference = rng.normal(0.0, 1.0, 2000)
    same = rng.normal(0.0, 1.0, 300)
    shifted = rng.normal(0.5, 1.0, 300)
    yes_no_ref = (rng.random(1000) < 0.4).astype(float)
    yes_no_ref[rng.random(1000) < 0.05] = np.nan
    yes_no_win = (rng.random(200) < 0.6).astype(float)
    yes_no_win[rng.random(200) < 0.15] = np.nan
    samples = dict(reference=reference, same=same, shifted=shifted, yes_no_ref=yes_no_ref, yes_no_win=yes_no_win)
    with open(OUT + "drift_samples.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sample", "value"])
        for name, values in samples.items():
            for v in values:
                w.writerow([name, "" if np.isnan(v) else repr(float(v))])
    grid = [
        dict(x=x, df=df, sf=float(chi2.sf(x, df)))
        for df in [1, 2, 3, 9, 10, 29]
        for x in [0.001, 0.5, 1.0, 3.0, 9.0, 15.0, 40.0, 120.0]
    ]
    reference_out = dict(
        chi2_sf=grid,
        tests=dict(
            same=psi_test(reference, same),
            shifted=psi_test(reference, shifted),
            yes_no=psi_test(yes_no_ref, yes_no_win),
        ),
        clustered=dict(
            same=psi_test(reference, same, 10, np.arange(len(reference)) // 4, np.arange(len(same)) // 3),
            shifted=psi_test(reference, shifted, 10, np.arange(len(reference)) // 4, np.arange(len(shifted)) // 3),
            yes_no=psi_test(yes_no_ref, yes_no_win, 10, np.arange(len(yes_no_ref)) // 4, np.arange(len(yes_no_win)) // 3),
        ),
    )
    with open(OUT + "drift_reference.json", "w") as f:
        json.dump(reference_out, f, indent=1)


if __name__ == "__main__":
    main()

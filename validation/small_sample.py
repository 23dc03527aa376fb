"""Data for the small-sample checks (crates/stats/tests/small_sample.rs): clustered designs with few
clusters, and separated 2 × 2 designs, written as CSV fixtures. The reference numbers come from
`small_sample.R` (clubSandwich: CR2 covariance, Satterthwaite degrees of freedom) and from
`firth.py` (firthmodels: penalised likelihood-ratio tests and profile intervals; scipy: Fisher's exact
test), which read these files.

    python3 validation/small_sample.py      # writes validation/fixtures/small_sample_*.csv
    Rscript validation/small_sample.R       # writes validation/fixtures/small_sample_cr2.json
    python3 validation/firth.py             # writes validation/fixtures/firth_reference.json

Made 2026-12-05 with numpy 2.4.6 (fixed seeds; the CSV files are committed, so the R and Python
references and the Rust tests all read the very same numbers).
"""

import numpy as np
import pandas as pd

OUT = "validation/fixtures/"


def clustered(seed, reps, sizes):
    """Deals of `reps` reps (cluster sizes drawn from `sizes`), a rep-level behaviour propensity, a rep
    effect on winning, a numeric control and a 3-level categorical control."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(reps):
        n = int(rng.integers(sizes[0], sizes[1] + 1))
        propensity = rng.uniform(0.15, 0.85)
        skill = rng.normal(0.0, 0.6)
        for _ in range(n):
            behaviour = float(rng.random() < propensity)
            size = rng.normal(0.0, 1.0)
            segment = int(rng.integers(0, 3))
            eta = -0.3 + skill + 0.4 * behaviour + 0.5 * size + (0.3 if segment == 1 else 0.0)
            won = float(rng.random() < 1.0 / (1.0 + np.exp(-eta)))
            amount = 9.0 + 0.2 * behaviour + 0.3 * size + skill * 0.5 + rng.normal(0.0, 0.8)
            rows.append(
                dict(
                    cluster=g,
                    behaviour=behaviour,
                    size=size,
                    seg1=float(segment == 1),
                    seg2=float(segment == 2),
                    won=won,
                    log_amount=amount,
                )
            )
    return pd.DataFrame(rows)


clustered(11, 6, (15, 70)).to_csv(OUT + "small_sample_few.csv", index=False)
clustered(12, 12, (3, 40)).to_csv(OUT + "small_sample_twelve.csv", index=False)
# Every row its own cluster (CR2 is then HC2), including clusters smaller than the number of columns.
single = clustered(13, 60, (1, 1))
single.to_csv(OUT + "small_sample_single.csv", index=False)

# Separated designs: the shapes (0 of 40 won against 807 of 7,960 elsewhere; 40 of 40 won against
# 30 %), and a small one with a control.
rng = np.random.default_rng(14)


def two_by_two(with_won, with_lost, without_won, without_lost, control=False):
    rows = []
    for behaviour, won, count in [
        (1.0, 1.0, with_won),
        (1.0, 0.0, with_lost),
        (0.0, 1.0, without_won),
        (0.0, 0.0, without_lost),
    ]:
        for _ in range(count):
            rows.append(dict(behaviour=behaviour, won=won))
    df = pd.DataFrame(rows)
    if control:
        df["size"] = rng.normal(0.0, 1.0, len(df)) + 0.5 * df["won"]
    return df


two_by_two(0, 40, 807, 7960 - 807).to_csv(OUT + "firth_zero_wins.csv", index=False)
two_by_two(40, 0, 2388, 7960 - 2388).to_csv(OUT + "firth_all_won.csv", index=False)
two_by_two(0, 12, 60, 90, control=True).to_csv(OUT + "firth_control.csv", index=False)

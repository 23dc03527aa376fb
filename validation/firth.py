"""Reference numbers for Firth's penalised logistic regression under separation
(crates/stats/tests/small_sample.rs): the penalised likelihood-ratio test and the profile penalised-
likelihood interval of the behaviour's coefficient, as R's logistf reports them, from firthmodels 0.8.2
(`FirthLogisticRegression(...).lrt()`, `conf_int(method="pl")`), and Fisher's exact test of the 2 x 2
table from scipy 1.17.1 (`stats.fisher_exact`).

    python3 validation/small_sample.py     # the designs (committed as CSV)
    python3 validation/firth.py            # writes validation/fixtures/firth_reference.json

Made 2026-12-05 (firthmodels 0.8.2, scipy 1.17.1, numpy 2.4.6) with tight tolerances (gradient 1e-9, step 1e-8, interval 1e-9).
"""

import json

import numpy as np
import pandas as pd
from firthmodels import FirthLogisticRegression
from scipy import stats

FIX = "validation/fixtures/"
out = {}
for name in ["firth_zero_wins", "firth_all_won", "firth_control"]:
    d = pd.read_csv(FIX + name + ".csv")
    columns = ["behaviour"] + (["size"] if "size" in d else [])
    X = d[columns].to_numpy(float)
    y = d["won"].to_numpy(float)
    m = FirthLogisticRegression(max_iter=200, gtol=1e-9, xtol=1e-8).fit(X, y)
    m.lrt(0)
    ci = m.conf_int(alpha=0.05, method="pl", features=0, max_iter=200, tol=1e-9)
    b = d["behaviour"] == 1
    table = [
        [int(((d.won == 1) & b).sum()), int(((d.won == 0) & b).sum())],
        [int(((d.won == 1) & ~b).sum()), int(((d.won == 0) & ~b).sum())],
    ]
    out[name] = {
        # intercept first, then the columns in order
        "coef": [float(m.intercept_)] + [float(c) for c in m.coef_],
        "lrt_p": float(m.lrt_pvalues_[0]),
        "ci": [float(ci[0][0]), float(ci[0][1])],
        "table": table,
        "fisher_p": float(stats.fisher_exact(table)[1]),
    }
with open(FIX + "firth_reference.json", "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print(json.dumps(out, indent=1))

"""Reference numbers for winsignal's model metrics (crates/learn/tests/metrics.rs).

How the fixture was made (scikit-learn 1.9.1, statsmodels 0.15.0, numpy 2.4.6):

    python3 validation/metrics.py

It draws two small sets of predictions with a fixed seed and writes them, with the reference values,
to validation/fixtures/metrics_reference.json:

- "smooth": 600 predictions in (0.002, 0.998), outcomes drawn from a deliberately miscalibrated truth
  (true logit = 0.4 + 0.7 · predicted logit), some predictions rounded to two decimals so there are ties;
- "ties": 300 predictions rounded to one decimal (heavy ties), outcomes drawn from the predictions.

Reference values per set:
- auc: sklearn.metrics.roc_auc_score;
- brier: sklearn.metrics.brier_score_loss;
- log_loss: sklearn.metrics.log_loss (no prediction is near 0 or 1, so the clipping convention, 1e-15 in
  winsignal and older scikit-learn, machine epsilon in newer, does not matter);
- calibration_slope, calibration_intercept: statsmodels Logit of y on [1, logit(p)];
- calibration_in_the_large: statsmodels GLM (Binomial) of y on an intercept with offset logit(p);
- reliability: the predictions sorted (stable, ties by position), cut into 10 groups at k·n/10
  (integer division), each with its size, mean prediction and observed rate — computed with numpy, the
  definition winsignal documents (sklearn's calibration_curve puts ties together and so has unequal bins).
"""

import json
import os

import numpy as np
import statsmodels.api as sm
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score


def logit(p):
    return np.log(p / (1 - p))


def reference(p, y):
    x = sm.add_constant(logit(p))
    joint = sm.Logit(y, x).fit(disp=0, tol=1e-12, maxiter=200)
    large = sm.GLM(y, np.ones((len(y), 1)), family=sm.families.Binomial(), offset=logit(p)).fit(tol=1e-12)
    order = np.argsort(p, kind="stable")
    n = len(p)
    reliability = []
    for k in range(10):
        rows = order[k * n // 10:(k + 1) * n // 10]
        reliability.append({
            "n": int(len(rows)),
            "mean_predicted": float(p[rows].mean()),
            "observed_rate": float(y[rows].mean()),
        })
    return {
        "auc": float(roc_auc_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p)),
        "calibration_slope": float(joint.params[1]),
        "calibration_intercept": float(joint.params[0]),
        "calibration_in_the_large": float(large.params[0]),
        "reliability": reliability,
    }


def main():
    rng = np.random.default_rng(20261124)
    n = 600
    p = 1 / (1 + np.exp(-rng.normal(-0.8, 1.4, n)))
    p = np.clip(p, 0.002, 0.998)
    p[:150] = np.round(p[:150], 2)
    p = np.clip(p, 0.002, 0.998)
    truth = 1 / (1 + np.exp(-(0.4 + 0.7 * logit(p))))
    y = (rng.random(n) < truth).astype(int)

    m = 300
    q = np.round(rng.uniform(0.05, 0.95, m), 1)
    z = (rng.random(m) < q).astype(int)

    out = {
        "generated_by": "validation/metrics.py",
        "cases": {
            "smooth": {"p": p.tolist(), "y": y.tolist(), "reference": reference(p, y)},
            "ties": {"p": q.tolist(), "y": z.tolist(), "reference": reference(q, z)},
        },
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "metrics_reference.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    for name, case in out["cases"].items():
        r = case["reference"]
        print(name, {k: v for k, v in r.items() if k != "reliability"})


if __name__ == "__main__":
    main()

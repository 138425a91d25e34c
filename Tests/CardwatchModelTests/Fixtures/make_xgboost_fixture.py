#!/usr/bin/env python3
"""Regenerates the XGBoost interop fixture used by XGBoostTests.swift.

Trains a small binary:logistic model with XGBoost (tree_method=hist) on seeded random
data with NaNs and a nonlinear label rule, saves it with `save_model` in XGBoost's JSON
format, and records the predictions XGBoost itself gives for 200 rows, including rows
with NaNs, rows whose values are exactly the model's split thresholds (and the float32
neighbours of them), and rows of doubles that only become a threshold once rounded to
float32 (XGBoost compares in single precision).

Writes, next to this script (or into the directory given as the first argument):
  xgboost_model.json        the model, exactly as Booster.save_model wrote it
  xgboost_predictions.csv   f0..f7 (NaN as an empty cell), margin, probability
  xgboost_meta.json         xgboost/numpy/python versions, parameters, seed

It runs itself inside its own virtual environment (default /tmp/xgb-venv, override with
XGB_VENV), created on first use with `pip install` of XGBOOST_SPEC (default the version
the committed fixture was made with) and numpy.

    python3 Tests/CardwatchModelTests/Fixtures/make_xgboost_fixture.py
"""

import os
import subprocess
import sys

VENV = os.environ.get("XGB_VENV", "/tmp/xgb-venv")
XGBOOST_SPEC = os.environ.get("XGBOOST_SPEC", "xgboost==3.2.0")
NUMPY_SPEC = os.environ.get("NUMPY_SPEC", "numpy")

SEED = 20240611
N_TRAIN = 600
N_FEATURES = 8
N_PREDICT = 200
PARAMS = {
    "objective": "binary:logistic",
    "tree_method": "hist",
    "max_depth": 5,
    "eta": 0.3,
    "min_child_weight": 1.0,
    "seed": 7,
    "nthread": 1,
    # base_score is left to XGBoost (>= 2 estimates it from the labels).
}
ROUNDS = 40


def ensure_venv():
    """Re-executes this script with the virtual environment's interpreter."""
    venv_python = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(venv_python):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([venv_python, "-m", "pip", "install", "--quiet", XGBOOST_SPEC, NUMPY_SPEC])
    os.execv(venv_python, [venv_python, os.path.abspath(__file__)] + sys.argv[1:])


def main():
    import csv
    import json
    import platform

    import numpy as np
    import xgboost as xgb

    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    rng = np.random.default_rng(SEED)

    # Training data: mixed scales, some NaNs, a nonlinear rule with noise.
    X = rng.normal(size=(N_TRAIN, N_FEATURES))
    X[:, 1] = rng.exponential(scale=50.0, size=N_TRAIN)  # amount-like
    X[:, 4] = rng.integers(0, 5, size=N_TRAIN).astype(float)  # a small count
    X[:, 7] = rng.uniform(-1000.0, 1000.0, size=N_TRAIN)
    logit = (
        1.5 * X[:, 0] * X[:, 2]
        + np.where(X[:, 1] > 60.0, 1.2, -0.6)
        + np.sin(X[:, 3] * 2.0)
        + 0.4 * (X[:, 4] >= 3)
        - 0.002 * np.abs(X[:, 7])
        + 0.8 * (X[:, 5] > 0.5) * (X[:, 6] < 0)
    )
    y = (logit + rng.normal(scale=0.7, size=N_TRAIN) > 0).astype(np.float64)
    nan_mask = rng.random(size=X.shape) < 0.08
    X[nan_mask] = np.nan
    # Missingness that carries signal, so learned default directions matter.
    X[(y == 1) & (rng.random(N_TRAIN) < 0.15), 3] = np.nan

    dtrain = xgb.DMatrix(X, label=y, missing=np.nan)
    booster = xgb.train(PARAMS, dtrain, num_boost_round=ROUNDS)
    model_path = os.path.join(out_dir, "xgboost_model.json")
    booster.save_model(model_path)

    # The split thresholds actually used, per feature (exact float32 values).
    with open(model_path) as f:
        model = json.load(f)
    trees = model["learner"]["gradient_booster"]["model"]["trees"]
    thresholds = {j: set() for j in range(N_FEATURES)}
    for t in trees:
        for i, left in enumerate(t["left_children"]):
            if left != -1:
                thresholds[t["split_indices"][i]].add(float(np.float32(t["split_conditions"][i])))
    used = [j for j in range(N_FEATURES) if thresholds[j]]
    thresholds = {j: sorted(v) for j, v in thresholds.items()}

    rows = []
    # 1. Training rows, NaNs included.
    for i in rng.choice(N_TRAIN, size=70, replace=False):
        rows.append(X[i].copy())
    # 2. Fresh rows with random NaN masks, from none to all missing.
    for k in range(40):
        r = rng.normal(size=N_FEATURES)
        r[1] = rng.exponential(50.0)
        r[4] = float(rng.integers(0, 5))
        r[7] = rng.uniform(-1000.0, 1000.0)
        r[rng.random(N_FEATURES) < k / 39.0] = np.nan
        rows.append(r)
    # 3. Values exactly at split thresholds, and at their float32 neighbours.
    for k in range(60):
        r = X[rng.integers(N_TRAIN)].copy()
        for j in rng.choice(used, size=min(4, len(used)), replace=False):
            t = np.float32(rng.choice(thresholds[j]))
            kind = k % 3
            if kind == 1:
                t = np.nextafter(t, np.float32(-np.inf), dtype=np.float32)
            elif kind == 2:
                t = np.nextafter(t, np.float32(np.inf), dtype=np.float32)
            r[j] = float(t)
        rows.append(r)
    # 4. Doubles just below a threshold that round up to it in float32 (so go right),
    #    and extreme values.
    for k in range(30):
        r = X[rng.integers(N_TRAIN)].copy()
        j = int(rng.choice(used))
        t = np.float32(rng.choice(thresholds[j]))
        below = float(np.nextafter(t, np.float32(-np.inf), dtype=np.float32))
        r[j] = float(t) - (float(t) - below) / 4.0  # rounds to t in float32
        assert np.float32(r[j]) == t and r[j] < float(t)
        if k % 3 == 0:
            r[int(rng.integers(N_FEATURES))] = float(rng.choice([1e30, -1e30, 0.0, -0.0, 3.4e38, -3.4e38]))
        rows.append(r)
    P = np.array(rows[:N_PREDICT], dtype=np.float64)
    assert P.shape == (N_PREDICT, N_FEATURES)

    dpred = xgb.DMatrix(P, missing=np.nan)
    margin = booster.predict(dpred, output_margin=True)
    prob = booster.predict(dpred)
    assert margin.dtype == np.float32 and prob.dtype == np.float32
    assert np.max(np.abs(1.0 / (1.0 + np.exp(-margin.astype(np.float64))) - prob)) < 1e-6

    # Loading the saved file back must give the same predictions.
    reloaded = xgb.Booster()
    reloaded.load_model(model_path)
    assert np.array_equal(reloaded.predict(dpred, output_margin=True), margin)

    with open(os.path.join(out_dir, "xgboost_predictions.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([f"f{j}" for j in range(N_FEATURES)] + ["margin", "probability"])
        for r, m, p in zip(P, margin, prob):
            cells = ["" if np.isnan(v) else repr(float(v)) for v in r]
            w.writerow(cells + [repr(float(m)), repr(float(p))])

    meta = {
        "xgboost_version": xgb.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "params": PARAMS,
        "num_boost_round": ROUNDS,
        "seed": SEED,
        "train_rows": N_TRAIN,
        "num_feature": N_FEATURES,
        "num_trees": len(trees),
        "prediction_rows": N_PREDICT,
        "base_score": model["learner"]["learner_model_param"]["base_score"],
        "note": "margin and probability are XGBoost's float32 outputs, written as exact decimals; "
        "NaN inputs are empty cells. Regenerate with make_xgboost_fixture.py.",
    }
    with open(os.path.join(out_dir, "xgboost_meta.json"), "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"xgboost {xgb.__version__}: {len(trees)} trees, base_score {meta['base_score']}, wrote {out_dir}")


if __name__ == "__main__":
    ensure_venv()
    main()

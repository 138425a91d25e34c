"""Trains the HTTP peer's model: `python train.py HISTORY.jsonl MODEL.ubj [TABLE.csv]`. HISTORY is
labelled generated history (`cardwatch generate`), in time order; the eight features are computed
with features.py, the code app.py serves with, so training and serving agree. TABLE, if given, is
`cardwatch features` of the same history: the peer's eight features must equal its columns, so the
peer computes what Cardwatch computes for them (checked, then printed). A modest model, as a
seed system has: XGBoost hist, 100 trees of depth 6, fitted on the first 80 % of the history; the
average precision on the latest 20 % is printed as a sanity check (it is not a result here).
"""

import csv
import json
import sys
import time

import numpy as np
import xgboost as xgb

from features import NAMES, Cards, epoch_seconds


def average_precision(y, score):
    order = np.argsort(-score, kind="stable")
    hits = y[order]
    if hits.sum() == 0:
        return float("nan")
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def check(table, ids, rows):
    """The rows against cardwatch's table, by transaction id; exits on a difference."""
    mine = dict(zip(ids, rows))
    n = 0
    with open(table, newline="") as f:
        for r in csv.DictReader(f):
            row = mine.get(r["transaction_id"])
            if row is None:
                sys.exit(f"train.py: {r['transaction_id']} is in {table}, not in the history")
            for name, v in zip(NAMES, row):
                w = float(r[name])
                if abs(v - w) > 1e-6 + 1e-5 * abs(w):
                    sys.exit(f"train.py: {name} of {r['transaction_id']}: the peer computes {v}, cardwatch {w}")
            n += 1
    if n != len(ids):
        sys.exit(f"train.py: {table} has {n:,} rows, the history {len(ids):,}")
    print(f"peer features: the eight equal cardwatch features' on all {n:,} rows")


def main(history, out, table=None):
    cards = Cards()
    rows, labels, ids = [], [], []
    with open(history) as f:
        for line in f:
            tx = json.loads(line)
            rows.append(cards.features(tx["card_id"], epoch_seconds(tx["timestamp"]), float(tx["amount"]),
                                       tx.get("merchant_category"), tx.get("latitude"), tx.get("longitude")))
            labels.append(int(tx["is_fraud"]))
            ids.append(tx["transaction_id"])
    if table:
        check(table, ids, rows)
    X, y = np.array(rows, dtype=np.float32), np.array(labels, dtype=np.float32)
    if len(y) < 1000 or y.sum() == 0:
        sys.exit(f"train.py: {history} has {len(y)} rows and {int(y.sum())} frauds: too few to train on")
    cut = int(len(y) * 0.8)
    params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6, "eta": 0.1, "seed": 1,
              "nthread": 1}  # one thread: OpenMP spin-waits badly when the cores are shared
    started = time.perf_counter()
    booster = xgb.train(params, xgb.DMatrix(X[:cut], label=y[:cut], feature_names=NAMES), num_boost_round=100)
    seconds = time.perf_counter() - started
    ap = average_precision(y[cut:], booster.inplace_predict(X[cut:]))
    booster.save_model(out)
    print(f"peer model: {len(y):,} rows ({int(y.sum()):,} fraud), 100 trees of depth 6 in {seconds:.1f} s, "
          f"average precision on the latest 20 %: {ap:.3f} (xgboost {xgb.__version__})")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: train.py HISTORY.jsonl MODEL.ubj [TABLE.csv]")
    main(*sys.argv[1:])

"""Trains the HTTP peer's model: `python train.py HISTORY.jsonl MODEL.ubj`. HISTORY is labelled
generated history (`cardwatch generate`), in time order; the eight features are computed with
features.py, the code app.py serves with, so training and serving agree. A modest model, as a
seed system has: XGBoost hist, 100 trees of depth 6, fitted on the first 80 % of the history; the
average precision on the latest 20 % is printed as a sanity check (it is not a result here).
"""

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


def main(history, out):
    cards = Cards()
    rows, labels = [], []
    with open(history) as f:
        for line in f:
            tx = json.loads(line)
            rows.append(cards.features(tx["card_id"], epoch_seconds(tx["timestamp"]), float(tx["amount"]),
                                       tx.get("merchant_category"), tx.get("latitude"), tx.get("longitude")))
            labels.append(int(tx["is_fraud"]))
    X, y = np.array(rows, dtype=np.float32), np.array(labels, dtype=np.float32)
    if len(y) < 1000 or y.sum() == 0:
        sys.exit(f"train.py: {history} has {len(y)} rows and {int(y.sum())} frauds: too few to train on")
    cut = int(len(y) * 0.8)
    params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6, "eta": 0.1, "seed": 1,
              "nthread": 2}
    started = time.perf_counter()
    booster = xgb.train(params, xgb.DMatrix(X[:cut], label=y[:cut], feature_names=NAMES), num_boost_round=100)
    seconds = time.perf_counter() - started
    ap = average_precision(y[cut:], booster.inplace_predict(X[cut:]))
    booster.save_model(out)
    print(f"peer model: {len(y):,} rows ({int(y.sum()):,} fraud), 100 trees of depth 6 in {seconds:.1f} s, "
          f"average precision on the latest 20 %: {ap:.3f} (xgboost {xgb.__version__})")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: train.py HISTORY.jsonl MODEL.ubj")
    main(sys.argv[1], sys.argv[2])

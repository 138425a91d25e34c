"""Trains the online peer's model: `python train.py TABLE.csv MODEL.ubj`, TABLE being `cardwatch
features` of labelled generated history (the 29 features Cardwatch writes to Redis, and is_fraud).
XGBoost hist, 100 trees of depth 6, as a seed system has."""
import csv
import sys

import numpy as np
import xgboost as xgb

from names import NAMES

rows, labels = [], []
with open(sys.argv[1], newline="") as f:
    for r in csv.DictReader(f):
        rows.append([float(r[n]) for n in NAMES])
        labels.append(int(r["is_fraud"] == "1" or r["is_fraud"] == "true"))
x, y = np.array(rows, dtype=np.float32), np.array(labels)
booster = xgb.train({"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6, "eta": 0.1, "nthread": 2},
                    xgb.DMatrix(x, label=y), num_boost_round=100)
booster.save_model(sys.argv[2])
print(f"online peer model: {len(y)} rows, {int(y.sum())} frauds, 100 trees → {sys.argv[2]}")

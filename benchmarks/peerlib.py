"""Shared by the issue-15 peer benchmarks (worlds.py, handbook.py): reading a table written by
`cardwatch features` (or any numeric table `cardwatch train --table` takes), the time split that
`cardwatch train` makes, running `cardwatch train` and aligning its test predictions with the
Python rows, the peers (XGBoost, scikit-learn random forests), the metrics, and the report.

The split mirrors Sources/CardwatchPipeline/Training (TimeSplit, TrainingRequest):
- rows ordered by (event time, file order); train = [train-from, train-to), test = [test-from, test-to);
- the latest 15 % of the training rows (int(n * 0.15)) validate: cardwatch and XGBoost fit on the
  other 85 % and stop early on them; if they hold no fraud, both fit and validate on all rows;
- the random forests, which need no validation rows, fit on the whole training window.
Every model is scored on exactly the same test rows with scikit-learn's average_precision_score
and roc_auc_score; cardwatch's own --json figures are cross-checked against them.
"""

import csv
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import sklearn
import xgboost as xgb
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import average_precision_score, roc_auc_score

IDENTIFYING = ("transaction_id", "card_id", "fraud_pattern")
VALIDATION_SHARE = 0.15  # TrainingRequest.validationShare
DAY_US = 86_400_000_000
SEED = 1


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def die(msg):
    print(f"error: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def micros(text):
    """A date (2026-01-22) or RFC 3339 instant to integer microseconds since the epoch."""
    if len(text) == 10:
        text += "T00:00:00Z"
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        die(f"instant without a zone: {text!r}")
    return (t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(microseconds=1)


def run(cmd, ok=(0,)):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode not in ok:
        die(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr.strip()[-3000:]}")
    return p


class Table:
    """A training table: features X (float64, NaN = empty cell), labels y, times (µs), ids, cards."""

    def __init__(self, path, label="is_fraud", time_column=None):
        log(f"reading {path}")
        df = pd.read_csv(path, dtype={c: str for c in IDENTIFYING}, keep_default_na=False, na_values=[""], low_memory=False)
        if label not in df.columns:
            die(f"{path}: no column {label!r}; columns are {', '.join(df.columns)}")
        time_column = time_column or ("timestamp" if "timestamp" in df.columns else None)
        lab = df[label].astype(str).str.lower().map({"1": 1, "true": 1, "0": 0, "false": 0, "1.0": 1, "0.0": 0})
        keep = lab.notna().to_numpy()  # unlabelled rows are skipped by cardwatch too
        df, lab = df[keep].reset_index(drop=True), lab[keep]
        self.y = lab.to_numpy(dtype=np.int8)
        if time_column is None:
            self.times = np.zeros(len(df), dtype=np.int64)
        elif df[time_column].dtype.kind in "if":
            self.times = (df[time_column].to_numpy(dtype=np.float64) * 1e6).astype(np.int64)
        else:
            ts = pd.to_datetime(df[time_column], utc=True, format="ISO8601")
            self.times = ts.to_numpy(dtype="datetime64[us]").astype(np.int64)
        self.names = [c for c in df.columns if c not in (label, time_column) and c not in IDENTIFYING]
        self.X = df[self.names].to_numpy(dtype=np.float64)
        self.ids = df["transaction_id"].to_numpy() if "transaction_id" in df.columns else None
        self.cards = df["card_id"].to_numpy() if "card_id" in df.columns else None
        self.patterns = df["fraud_pattern"].to_numpy() if "fraud_pattern" in df.columns else None
        self.path = path


class Split:
    """cardwatch train's time split over a Table."""

    def __init__(self, table, train_from, train_to, test_from, test_to):
        t = table.times
        order = np.argsort(t, kind="stable")  # (time, file order), as TimeSplit.indices
        ot = t[order]
        self.bounds = (train_from, train_to, test_from, test_to)
        self.tr = order[(ot >= micros(train_from)) & (ot < micros(train_to))]
        self.te = order[(ot >= micros(test_from)) & (ot < micros(test_to))]
        held = max(1, int(len(self.tr) * VALIDATION_SHARE))
        self.fit, self.val = self.tr[:-held], self.tr[-held:]
        y = table.y
        if y[self.val].sum() == 0 or len(self.fit) == 0:
            self.fit = self.val = self.tr  # cardwatch's fallback: fit on all, validate on all
        self.delay_days = (micros(test_from) - micros(train_to)) / DAY_US

    def describe(self, y):
        a, b, c, d = self.bounds
        return [
            f"train [{a}, {b}): {len(self.tr):,} rows ({int(y[self.tr].sum()):,} fraud); fit on the first "
            f"{len(self.fit):,}, validation (latest 15 %, early stopping) {len(self.val):,} ({int(y[self.val].sum())} fraud)",
            f"label delay: {self.delay_days:g} days between the end of training and the test window",
            f"test [{c}, {d}): {len(self.te):,} rows ({int(y[self.te].sum()):,} fraud, "
            f"{y[self.te].mean() * 100:.3f} %)",
        ]


def cardwatch_train(binary, source_args, split, workdir, extra=()):
    """Runs `cardwatch train` (default options unless `extra`) on the split's dates; returns its
    --json object, the wall seconds and the predictions file."""
    a, b, c, d = split.bounds
    preds = os.path.join(workdir, f"cw-preds-{time.monotonic_ns()}.csv")
    cmd = [binary, "train", *source_args, "--train-from", a, "--train-to", b, "--test-from", c, "--test-to", d,
           "--no-register", "--json", "--predictions-out", preds, *extra]
    log(" ".join(cmd))
    s = time.perf_counter()
    p = run(cmd)
    wall = time.perf_counter() - s
    try:
        out = json.loads(p.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        die(f"cardwatch train --json printed no JSON object:\n{p.stdout}")
    for k in ("average_precision", "roc_auc", "train_rows", "test_rows"):
        if k not in out:
            die(f"cardwatch train --json has no {k!r}: {sorted(out)}")
    # fit_seconds and trees are reported for today's GBDT; another model kind or a search may
    # report them differently, which must not stop the comparison.
    out.setdefault("fit_seconds", out.get("training_seconds", float("nan")))
    if out.get("trees") in (None, 0):
        out["trees"] = "—"
    out["_stderr"] = p.stderr.strip()
    return out, wall, preds, cmd


TODAYS_JSON = {"roc_auc", "average_precision", "recall_at_1pct_fpr", "per_pattern_recall", "precision", "recall", "f1",
               "threshold", "rows", "positives", "confusion", "card_precision_at_100", "model_version", "train_rows",
               "test_rows", "trees", "training_seconds", "fit_seconds", "promoted", "label_delay_days", "brier_score",
               "_stderr"}


def new_json_fields(out, limit=600):
    """The --json members today's `cardwatch train` does not print (e.g. what a model search
    chose), compactly, so a report shows them without knowing their names."""
    extra = {k: v for k, v in out.items() if k not in TODAYS_JSON}
    if not extra:
        return None
    text = json.dumps(extra, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def aligned_scores(preds, table, split):
    """cardwatch's test scores in the order of split.te: by transaction id when the table has
    unique ids, else by position (both sides order the test rows by (time, file order))."""
    with open(preds, newline="") as f:
        rows = list(csv.DictReader(f))
    te = split.te
    if len(rows) != len(te):
        die(f"cardwatch predicted {len(rows):,} test rows, the Python split has {len(te):,}")
    y = table.y[te]
    if table.ids is not None and len(set(table.ids[te])) == len(te):
        score = {r["transaction_id"]: float(r["score"]) for r in rows}
        label = {r["transaction_id"]: int(r["label"]) for r in rows}
        ids = table.ids[te]
        if set(score) != set(ids):
            die("cardwatch's predicted transaction ids are not the Python test rows")
        s = np.array([score[i] for i in ids])
        lab = np.array([label[i] for i in ids])
    else:
        s = np.array([float(r["score"]) for r in rows])
        lab = np.array([int(r["label"]) for r in rows])
    if (lab != y).any():
        die("cardwatch's prediction labels differ from the table's (the rows are not aligned)")
    return s


# ---- peers ------------------------------------------------------------------------------------------

XGB_BASE = dict(tree_method="hist", n_jobs=2, max_depth=6, learning_rate=0.1, subsample=0.8, colsample_bytree=0.8,
                min_child_weight=1, reg_lambda=1.0, max_bin=256, objective="binary:logistic", random_state=SEED)


def xgb_early(table, split, scale_pos_weight=1.0, eval_metric="logloss", trees=300, patience=30):
    """XGBoost hist fitted on the fit rows, early stopping on the validation rows (as peers.py)."""
    X, y = table.X, table.y
    m = xgb.XGBClassifier(n_estimators=trees, early_stopping_rounds=patience, eval_metric=eval_metric,
                          scale_pos_weight=scale_pos_weight, **XGB_BASE)
    s = time.perf_counter()
    m.fit(X[split.fit], y[split.fit], eval_set=[(X[split.val], y[split.val])], verbose=False)
    secs = time.perf_counter() - s
    p = m.get_booster().inplace_predict(X[split.te], iteration_range=(0, m.best_iteration + 1))
    return p, secs, m.best_iteration + 1


def xgb_plain(table, split, **params):
    """XGBClassifier(**params) fitted on the whole training window (the handbook's way)."""
    X, y = table.X, table.y
    m = xgb.XGBClassifier(n_jobs=2, random_state=SEED, **params)
    s = time.perf_counter()
    m.fit(X[split.tr], y[split.tr], verbose=False)
    secs = time.perf_counter() - s
    return m.predict_proba(X[split.te])[:, 1], secs, m.get_booster().num_boosted_rounds()


def random_forest(table, split, depth=None, trees=100):
    """scikit-learn RandomForestClassifier on the whole training window (NaN cells become 0)."""
    X = np.nan_to_num(table.X, nan=0.0)
    m = RandomForestClassifier(n_estimators=trees, max_depth=depth, n_jobs=2, random_state=SEED)
    s = time.perf_counter()
    m.fit(X[split.tr], table.y[split.tr])
    secs = time.perf_counter() - s
    return m.predict_proba(X[split.te])[:, 1], secs, trees


# ---- metrics ------------------------------------------------------------------------------------------


def ap_auc(y, s):
    if y.sum() == 0 or y.sum() == len(y):
        return float("nan"), float("nan")
    return average_precision_score(y, s), roc_auc_score(y, s)


def card_precision_at_k(days, cards, scores, labels, k=100):
    """The handbook's card precision top-k (shared_functions.card_precision_top_k): per day in
    increasing order, drop the rows of cards detected on an earlier day, group by card (highest
    score, highest label), take the k cards with the highest scores, precision = frauds / k;
    those frauds join the detected cards; the mean over the days."""
    df = pd.DataFrame({"day": days, "card": cards, "s": scores, "y": labels})
    detected, per_day = set(), []
    for _, d in df.groupby("day", sort=True):
        d = d[~d.card.isin(detected)]
        g = d.groupby("card").agg(s=("s", "max"), y=("y", "max")).reset_index()
        g = g.sort_values(["s", "card"], ascending=[False, True]).head(k)
        found = g.card[g.y == 1].tolist()
        per_day.append(len(found) / k)
        detected.update(found)
    return float(np.mean(per_day)) if per_day else float("nan")


# ---- report -------------------------------------------------------------------------------------------


class Report:
    def __init__(self, title, out_path):
        self.lines, self.out_path, self.began = [], out_path, time.time()
        self.say(f"# {title}")
        self.say()

    def say(self, line=""):
        print(line, flush=True)
        self.lines.append(line)

    def machine(self, binary):
        cpu = "?"
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
            with open("/proc/meminfo") as f:
                mem = f"{next(int(l.split()[1]) for l in f if l.startswith('MemTotal')) / 1048576:.0f} GiB"
        except (OSError, StopIteration):
            mem = "?"
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
        load = os.getloadavg()
        self.say(f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
        self.say(f"- machine: {os.cpu_count()} cores, {mem}, {cpu}")
        self.say(f"- cardwatch: {binary} (scripts from repository {commit or '?'})")
        self.say(f"- Python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
                 f"scikit-learn {sklearn.__version__}, xgboost {xgb.__version__}")
        self.say(f"- load average at start: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min; "
                 f"fit times are noisy when it exceeds the 2 cores)")

    def results_table(self, rows, extra_cols=()):
        """rows: dicts with name, ap, auc, secs, trees and the keys of extra_cols [(key, header, fmt)]."""
        head = "| model | AP | ROC AUC | " + "".join(f"{h} | " for _, h, _ in extra_cols) + "fit s | trees |"
        self.say(head)
        self.say("|" + "---|" * (head.count("|") - 1))
        for r in rows:
            cells = [r["name"], f"{r['ap']:.4f}", f"{r['auc']:.4f}"]
            cells += [fmt.format(r[k]) if r.get(k) is not None else "—" for k, _, fmt in extra_cols]
            cells += [f"{r['secs']:.2f}", str(r.get("trees", "—"))]
            self.say("| " + " | ".join(cells) + " |")

    def goal(self, ok, text):
        self.say(f"- {'PASS' if ok else 'FAIL'}: {text}")

    def finish(self):
        load = os.getloadavg()
        self.say()
        self.say(f"Load average at the end: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}. "
                 f"Python part took {time.time() - self.began:.0f} s.")
        with open(self.out_path, "w") as f:
            f.write("\n".join(self.lines) + "\n")
        log(f"wrote {self.out_path}")


def median(xs):
    return statistics.median(xs)

#!/usr/bin/env python3
"""Issue 15 goal (c): cardwatch's native Isolation Forest against scikit-learn's
IsolationForest (300 trees, max_samples 256, its defaults otherwise) on the same
replayed feature table, the same time split and the same 29 feature columns. Run
through benchmarks/isolation.sh (which builds the CLI, prepares the virtual environment
and the table); this script trains, scores and times both, prints a markdown report
and writes it to --out.

Protocol:
- rows ordered by (event time, file order), as TimeSplit.indices; train = every row of
  [train-from, train-to), test = [test-from, test-to); both models fit on the training
  rows without their labels;
- each model's anomaly score on the test rows (cardwatch: the served score s =
  2^(-E[h]/c(256)); scikit-learn: -score_samples, the same s) is judged by scikit-learn's
  roc_auc_score and average_precision_score against the labels, on exactly the same rows;
- both are randomised: quality is the median over --seeds seeds (seed k for both), the fit
  time the median over every fit (cardwatch: `fit_seconds` of `cardwatch train --json`,
  the fit alone; scikit-learn: wall time of IsolationForest.fit).
"""

import argparse
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
import sklearn
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score

IDENTIFYING = {"transaction_id", "card_id", "fraud_pattern"}
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def log(msg):
    print(f"[isolation] {msg}", file=sys.stderr, flush=True)


def die(msg):
    print(f"isolation.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def micros(text):
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (t - EPOCH) // dt.timedelta(microseconds=1)


def read_table(path):
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        ti, li, ii = header.index("timestamp"), header.index("is_fraud"), header.index("transaction_id")
        feats = [j for j, name in enumerate(header) if j not in (ti, li) and name not in IDENTIFYING]
        rows, times, labels, ids = [], [], [], []
        for cells in reader:
            if cells[li] == "":
                continue
            labels.append(1 if cells[li] in ("1", "true") else 0)
            times.append(micros(cells[ti]))
            ids.append(cells[ii])
            rows.append([float(cells[j]) if cells[j] != "" else np.nan for j in feats])
    return [header[j] for j in feats], np.array(rows), np.array(labels), np.array(times, dtype=np.int64), ids


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        die(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr.strip()}")
    return p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cardwatch", required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--train-from", default="2026-01-01")
    ap.add_argument("--train-to", default="2026-01-22")
    ap.add_argument("--test-from", default="2026-01-22")
    ap.add_argument("--test-to", default="2026-01-31")
    ap.add_argument("--trees", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=5, help="seeds (median quality; every fit timed)")
    ap.add_argument("--repeats", type=int, default=3, help="fits per seed for the timing")
    ap.add_argument("--world", default="")
    ap.add_argument("--feature-check", action="store_true",
                    help="also: does the isolation score as a 30th feature help cardwatch's GBDT?")
    a = ap.parse_args()
    out = []

    def say(line=""):
        print(line, flush=True)
        out.append(line)

    mem = "?"
    with open("/proc/meminfo") as f:
        mem = f"{next(int(l.split()[1]) for l in f if l.startswith('MemTotal')) / 1048576:.0f} GiB"
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
    say("# Isolation Forest: cardwatch vs scikit-learn")
    say()
    say(f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    say(f"- machine: {os.cpu_count()} cores, {mem}, {cpu}")
    say(f"- cardwatch: {a.cardwatch} (repository {commit or '?'}), release build")
    say(f"- Python {platform.python_version()}, numpy {np.__version__}, scikit-learn {sklearn.__version__}")
    load0 = os.getloadavg()
    say(f"- load average at start: {load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f} (timings are noisy above 2)")
    say(f"- data: {a.world}")

    names, X, y, times, ids = read_table(a.table)
    lo, hi = micros(a.train_from + "T00:00:00Z"), micros(a.train_to + "T00:00:00Z")
    tlo, thi = micros(a.test_from + "T00:00:00Z"), micros(a.test_to + "T00:00:00Z")
    order = np.lexsort((np.arange(len(times)), times))
    tr = order[(times[order] >= lo) & (times[order] < hi)]
    te = order[(times[order] >= tlo) & (times[order] < thi)]
    Xtr, Xte, yte = X[tr], X[te], y[te]
    missing = int(np.isnan(X).sum())
    say(f"- split: train [{a.train_from}, {a.train_to}) {len(tr):,} rows, test [{a.test_from}, {a.test_to}) "
        f"{len(te):,} rows ({int(yte.sum()):,} fraud); {len(names)} features; {missing} missing cells")
    say(f"- fits: {a.trees} trees, 256 rows each, seeds 1..{a.seeds}, {a.repeats} fits per seed timed")
    say()

    cw = {"auc": [], "ap": [], "fit": []}
    sk = {"auc": [], "ap": [], "fit": []}
    test_ids = [ids[i] for i in te]
    for seed in range(1, a.seeds + 1):
        log(f"seed {seed}: cardwatch")
        preds = os.path.join(a.workdir, f"preds-{seed}.csv")
        for r in range(a.repeats):
            text = run([a.cardwatch, "train", "--table", a.table, "--model", "isolation-forest", "--trees", str(a.trees),
                        "--seed", str(seed), "--train-from", a.train_from, "--train-to", a.train_to,
                        "--test-from", a.test_from, "--test-to", a.test_to, "--no-register", "--json",
                        "--predictions-out", preds])
            m = json.loads(text)
            cw["fit"].append(m["fit_seconds"])
            if m["train_rows"] != len(tr) or m["test_rows"] != len(te):
                die(f"cardwatch split {m['train_rows']}/{m['test_rows']} rows, this script {len(tr)}/{len(te)}")
        with open(preds, newline="") as f:
            got = {row["transaction_id"]: float(row["score"]) for row in csv.DictReader(f)}
        s = np.array([got[i] for i in test_ids])
        cw["auc"].append(roc_auc_score(yte, s))
        cw["ap"].append(average_precision_score(yte, s))

        log(f"seed {seed}: scikit-learn")
        for r in range(a.repeats):
            model = IsolationForest(n_estimators=a.trees, max_samples=256, random_state=seed)
            began = time.perf_counter()
            model.fit(Xtr)
            sk["fit"].append(time.perf_counter() - began)
        s = -model.score_samples(Xte)
        sk["auc"].append(roc_auc_score(yte, s))
        sk["ap"].append(average_precision_score(yte, s))

    med = statistics.median
    say("| model | ROC AUC (median of seeds) | AP (median of seeds) | fit seconds (median of fits) | AUC range | AP range |")
    say("|---|---|---|---|---|---|")
    for name, r in (("cardwatch `train --model isolation-forest`", cw), (f"scikit-learn IsolationForest({a.trees})", sk)):
        say(f"| {name} | {med(r['auc']):.4f} | {med(r['ap']):.4f} | {med(r['fit']):.4f} | "
            f"{min(r['auc']):.4f}–{max(r['auc']):.4f} | {min(r['ap']):.4f}–{max(r['ap']):.4f} |")
    say()
    goals = [
        ("AUC ≥ scikit-learn's", med(cw["auc"]) >= med(sk["auc"])),
        ("AP ≥ scikit-learn's", med(cw["ap"]) >= med(sk["ap"])),
        ("fit time ≤ scikit-learn's", med(cw["fit"]) <= med(sk["fit"])),
    ]
    for goal, ok in goals:
        say(f"- {'PASS' if ok else 'FAIL'}: {goal}")
    if a.feature_check:
        feature_check(a, names, X, times, ids, say)
    load1 = os.getloadavg()
    say(f"- load average at the end: {load1[0]:.2f} / {load1[1]:.2f} / {load1[2]:.2f}")
    with open(a.out, "w") as f:
        f.write("\n".join(out) + "\n")


def forest_scores(artifact, X):
    """The served score of a cardwatch isolation-forest artifact for every row of X, by walking its
    trees as TreeEnsemble.margin does (float32 compare, x < threshold left, NaN by default_left)."""
    t = artifact["trees"]
    nodes = t["nodes"]
    thr = np.array([n["threshold"] for n in nodes], dtype=np.float32)
    feat = np.array([n["feature"] for n in nodes])
    dl = np.array([n["default_left"] for n in nodes])
    left = np.array([n["left"] for n in nodes])
    val = np.array([n["value"] for n in nodes], dtype=np.float64)
    Xf = X.astype(np.float32)
    margin = np.full(len(X), float(t["base_margin"]))
    rows = np.arange(len(X))
    for root in t["roots"]:
        i = np.full(len(X), root)
        while True:
            inner = feat[i] >= 0
            if not inner.any():
                break
            v = Xf[rows, np.where(inner, feat[i], 0)]
            go_left = np.where(np.isnan(v), dl[i], v < thr[i])
            i = np.where(inner, left[i] + np.where(go_left, 0, 1), i)
        margin += val[i]
    return np.exp2(margin / artifact["calibration"]["path_length_normaliser"])


def feature_check(a, names, X, times, ids, say):
    """Trains cardwatch's isolation forest on the training window, adds its score as a column of
    the table, and compares `cardwatch train --table` (GBDT, defaults) with and without it."""
    artifact_path = os.path.join(a.workdir, "if.json")
    run([a.cardwatch, "train", "--table", a.table, "--model", "isolation-forest", "--train-from", a.train_from,
         "--train-to", a.train_to, "--test-from", a.test_from, "--test-to", a.test_to, "--no-register", "--json",
         "--artifact-out", artifact_path, "--predictions-out", os.path.join(a.workdir, "if-preds.csv")])
    with open(artifact_path) as f:
        scores = forest_scores(json.load(f), X)
    by_id = dict(zip(ids, scores))
    with open(os.path.join(a.workdir, "if-preds.csv"), newline="") as f:
        served = {row["transaction_id"]: float(row["score"]) for row in csv.DictReader(f)}
    worst = max(abs(by_id[i] - s) for i, s in served.items())
    if worst > 1e-6:
        die(f"this script's walk of the forest differs from cardwatch's scores by {worst}")
    extended = os.path.join(a.workdir, "table-with-isolation.csv")
    with open(a.table, newline="") as src, open(extended, "w", newline="") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        header = next(reader)
        ii = header.index("transaction_id")
        writer.writerow(header + ["isolation_score"])
        for cells in reader:
            writer.writerow(cells + [repr(float(by_id[cells[ii]])) if cells[ii] in by_id else ""])
    say()
    say("Isolation score as a 30th feature of the GBDT (`cardwatch train --table`, defaults, same split; seeds 1–3):")
    say()
    say("| table | ROC AUC (median) | AP (median) |")
    say("|---|---|---|")
    for label, table in (("29 features", a.table), ("29 features + isolation_score", extended)):
        aucs, aps = [], []
        for seed in (1, 2, 3):
            m = json.loads(run([a.cardwatch, "train", "--table", table, "--seed", str(seed), "--train-from", a.train_from,
                                "--train-to", a.train_to, "--test-from", a.test_from, "--test-to", a.test_to,
                                "--no-register", "--json"]))
            aucs.append(m["roc_auc"])
            aps.append(m["average_precision"])
        say(f"| {label} | {statistics.median(aucs):.4f} | {statistics.median(aps):.4f} |")


if __name__ == "__main__":
    main()

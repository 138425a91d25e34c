#!/usr/bin/env python3
"""Issue 15, benchmark (a): default `cardwatch train` against XGBoost with scale_pos_weight and
scikit-learn random forests on generated worlds unlike the default one, each on exactly the same
rows and time split. Run through benchmarks/worlds.sh (which provides the CLI and the Python
environment); this script generates the worlds, runs every model, prints a markdown report and
writes it to --out. Goal misses are FAIL lines, not a non-zero exit.

Worlds (all 35 days from 2026-01-01; train days 1-21, a 7-day label delay, test days 29-35):
- sparse: 20,000 cards, 0.2 % fraud, 1.5 legitimate transactions per card per day, and no
  coordinates (latitude/longitude removed from the JSON Lines: the generator always writes them,
  schema v1 makes them optional); `cardwatch train --data`.
- shifted: 3,000 cards, 1 % fraud, other pattern shares (card testing and high amounts dominate,
  few geo jumps), 4 transactions per card per day; `cardwatch train --data`.
- table: the shifted world's `cardwatch features` table exported the way real data sets come
  (the ULB/Kaggle card data's shape): numeric columns only, no transaction or card ids, the time
  as seconds since the first midnight (`Time`, so the dates are in January 1970), the label
  `Class`; `cardwatch train --table --label Class --time-column Time`.
"""

import argparse
import hashlib
import json
import os
import re
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib as pl  # noqa: E402

SPLIT = ("2026-01-01", "2026-01-22", "2026-01-29", "2026-02-05")
TABLE_SPLIT = ("1970-01-01", "1970-01-22", "1970-01-29", "1970-02-05")
COORDINATES = re.compile(r',"(latitude|longitude)":-?[0-9.eE+-]+')


def generate(binary, path, args):
    pl.log(f"cardwatch generate {' '.join(args)}")
    s = time.perf_counter()
    pl.run([binary, "generate", *args, "--start", "2026-01-01T00:00:00Z", "--quiet", "--out", path])
    return time.perf_counter() - s


def strip_coordinates(src, dst):
    kept = dropped = 0
    with open(src) as f, open(dst, "w") as g:
        for line in f:
            out, n = COORDINATES.subn("", line)
            dropped += n
            kept += 1
            g.write(out)
    if dropped == 0:
        pl.die(f"no latitude/longitude found in {src}: the generator's JSON shape changed")
    with open(dst) as f:  # the first record still parses and has no coordinates
        first = json.loads(f.readline())
        if "latitude" in first or "longitude" in first:
            pl.die("coordinates left in the first record")
    return kept


def features(binary, src, dst):
    pl.log(f"cardwatch features --in {os.path.basename(src)}")
    s = time.perf_counter()
    pl.run([binary, "features", "--in", src, "--out", dst, "--quiet"])
    return time.perf_counter() - s


def numeric_export(table_csv, dst):
    """The features table as real data sets come: no ids, Time in seconds since the first
    midnight, label Class."""
    df = pd.read_csv(table_csv, dtype={c: str for c in pl.IDENTIFYING}, keep_default_na=False, na_values=[""])
    t = pd.to_datetime(df.pop("timestamp"), utc=True, format="ISO8601")
    origin = t.min().normalize()
    out = df.drop(columns=[c for c in pl.IDENTIFYING if c in df.columns])
    out.insert(0, "Time", ((t - origin).dt.total_seconds()).round(6))
    out["Class"] = out.pop("is_fraud").astype(int)
    out.to_csv(dst, index=False)
    return origin


FITTED = {}  # digest of the rows a peer sees -> (world, its peers' fits)


def rows_digest(table, split):
    """What the peers see: the fit, validation and test rows' features and labels."""
    h = hashlib.sha256()
    for idx in (split.fit, split.val, split.tr, split.te):
        h.update(np.ascontiguousarray(table.X[idx]).tobytes())
        h.update(np.ascontiguousarray(table.y[idx]).tobytes())
    return h.hexdigest()


def fit_peers(name, table, split, rf_trees, rf_depths):
    fit_y = table.y[split.fit]
    spw = float((fit_y == 0).sum()) / max(1, int(fit_y.sum()))
    peers = []
    pl.log(f"{name}: XGBoost scale_pos_weight {spw:.1f}, early stopping on aucpr")
    p, s, n = pl.xgb_early(table, split, scale_pos_weight=spw, eval_metric="aucpr")
    peers.append(dict(name=f"XGBoost hist, scale_pos_weight {spw:.0f} (neg/pos), early stopping on AP", p=p, secs=s, trees=n))
    pl.log(f"{name}: XGBoost unweighted, early stopping on logloss")
    p, s, n = pl.xgb_early(table, split, eval_metric="logloss")
    peers.append(dict(name="XGBoost hist, unweighted, early stopping on log-loss", p=p, secs=s, trees=n))
    for depth in rf_depths:
        pl.log(f"{name}: RandomForest {rf_trees} trees, depth {depth}")
        p, s, n = pl.random_forest(table, split, depth=depth, trees=rf_trees)
        peers.append(dict(name=f"scikit-learn RandomForest, {rf_trees} trees, depth {depth or 'unlimited'}", p=p, secs=s, trees=n))
    return peers


def compare(rep, binary, name, describe, source_args, table, split, workdir, rf_trees, rf_depths, with_cp):
    y = table.y
    rep.say(f"## World: {name}")
    rep.say()
    for line in describe:
        rep.say(f"- {line}")
    rep.say(f"- table: {len(y):,} rows × {len(table.names)} features, {int(y.sum()):,} fraud ({y.mean() * 100:.3f} %)")
    for line in split.describe(y):
        rep.say(f"- {line}")
    rep.say()
    cw, wall, preds, cmd = pl.cardwatch_train(binary, source_args, split, workdir)
    if cw["train_rows"] != len(split.tr) or cw["test_rows"] != len(split.te):
        pl.die(f"{name}: split mismatch: cardwatch train/test rows {cw['train_rows']}/{cw['test_rows']}, "
               f"Python {len(split.tr)}/{len(split.te)}")
    cw_scores = pl.aligned_scores(preds, table, split)
    yte = y[split.te]
    ap_py, auc_py = pl.ap_auc(yte, cw_scores)
    rows = [dict(name="cardwatch train (defaults)", ap=cw["average_precision"], auc=cw["roc_auc"], secs=cw["fit_seconds"],
                 trees=cw["trees"], wall=wall, cp=cw.get("card_precision_at_100"))]
    key = rows_digest(table, split)
    if key in FITTED:
        peers, fitted_in = [dict(r) for r in FITTED[key][1]], FITTED[key][0]
        pl.log(f"{name}: the peers' rows equal world {fitted_in}'s; their fits are reused")
    else:
        peers, fitted_in = fit_peers(name, table, split, rf_trees, rf_depths), None
        FITTED[key] = (name, peers)
    for r in peers:
        r["ap"], r["auc"] = pl.ap_auc(yte, r["p"])
    if with_cp:
        days = table.times[split.te] // pl.DAY_US
        cards = table.cards[split.te]
        rows[0]["cp_py"] = pl.card_precision_at_k(days, cards, cw_scores, yte)
        for r in peers:
            r["cp"] = r["cp_py"] = pl.card_precision_at_k(days, cards, r["p"], yte)
    rows += peers
    extra = [("cp", "card precision@100", "{:.3f}")] if with_cp else []
    rep.results_table(rows, extra)
    rep.say()
    rep.say(f"- cardwatch: `{' '.join(os.path.basename(c) if c.startswith(workdir) else c for c in cmd)}` "
            f"(fit_seconds from --json; the whole command, replay or table read included, took {wall:.1f} s wall). "
            f"Its AP / AUC recomputed by scikit-learn from --predictions-out: {ap_py:.6f} / {auc_py:.6f} "
            f"(|Δ| {abs(ap_py - cw['average_precision']):.1e} / {abs(auc_py - cw['roc_auc']):.1e}).")
    if pl.new_json_fields(cw):
        rep.say(f"- cardwatch --json members beyond today's: `{pl.new_json_fields(cw)}`")
    if with_cp:
        rep.say(f"- card precision@100 (the handbook's: per test day, top 100 cards by their highest score, frauds / 100, "
                f"cards found on an earlier day dropped, mean over days): cardwatch's --json {rows[0]['cp']:.4f}, "
                f"recomputed in Python from its predictions {rows[0]['cp_py']:.4f}.")
    if fitted_in:
        rep.say(f"- the peers' rows (features, labels, fit / validation / test split) are bit for bit those of world "
                f"{fitted_in}, so its peer fits are reused (fit seconds from there)")
    best_ap = max(peers, key=lambda r: r["ap"])
    best_auc = max(peers, key=lambda r: r["auc"])
    rep.say()
    rep.goal(cw["average_precision"] >= best_ap["ap"],
             f"{name}: cardwatch AP {cw['average_precision']:.4f} ≥ best peer AP {best_ap['ap']:.4f} ({best_ap['name']})")
    rep.goal(cw["roc_auc"] >= best_auc["auc"] - 0.005,
             f"{name}: cardwatch AUC {cw['roc_auc']:.4f} within 0.005 of the best peer AUC {best_auc['auc']:.4f} "
             f"({best_auc['name']})")
    rep.say()
    return dict(world=name, cardwatch=rows[0], peers=[{k: v for k, v in r.items() if k != "p"} for r in peers])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cardwatch", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--worlds", default="sparse,shifted,table")
    ap.add_argument("--sparse-cards", type=int, default=20000)
    ap.add_argument("--shifted-cards", type=int, default=3000)
    ap.add_argument("--rf-trees", type=int, default=100)
    ap.add_argument("--rf-depths", default="none,20",
                    help="random forests to fit, by maximum depth ('none': unlimited, the slowest peer by far)")
    ap.add_argument("--json-out", help="also write the figures as JSON here")
    a = ap.parse_args()
    worlds = [w.strip() for w in a.worlds.split(",") if w.strip()]
    unknown = set(worlds) - {"sparse", "shifted", "table"}
    if unknown:
        pl.die(f"unknown worlds {sorted(unknown)}; known: sparse, shifted, table")
    wd, binary = a.workdir, a.cardwatch
    try:
        depths = [None if d.strip().lower() == "none" else int(d) for d in a.rf_depths.split(",") if d.strip()]
    except ValueError:
        pl.die(f"--rf-depths takes depths or 'none', e.g. none,20; got {a.rf_depths!r}")
    rep = pl.Report("Issue 15 (a): default `cardwatch train` vs XGBoost and random forests on other worlds", a.out)
    rep.machine(binary)
    rep.say("- split for every world: train on days 1–21, a 7-day label delay (days 22–28 only feed the features), "
            "test on days 29–35; the same rows for every model (see the protocol in benchmarks/peerlib.py)")
    rep.say()
    results = []

    if "sparse" in worlds:
        raw, data, tab = (os.path.join(wd, f) for f in ("sparse-raw.jsonl", "sparse.jsonl", "sparse.csv"))
        gen = ["--cards", str(a.sparse_cards), "--days", "35", "--fraud-rate", "0.002", "--per-card-daily", "1.5", "--seed", "11"]
        g = generate(binary, raw, gen)
        n = strip_coordinates(raw, data)
        os.remove(raw)
        f = features(binary, data, tab)
        t = pl.Table(tab)
        results.append(compare(rep, binary, "sparse", [
            f"`cardwatch generate {' '.join(gen)}` ({n:,} transactions, {g:.0f} s), latitude/longitude removed from "
            f"every record; `cardwatch features` ({f:.0f} s) gives the peers' table"], ["--data", data], t,
            pl.Split(t, *SPLIT), wd, a.rf_trees, depths, with_cp=True))
        del t

    if "shifted" in worlds or "table" in worlds:
        data, tab, num = (os.path.join(wd, f) for f in ("shifted.jsonl", "shifted.csv", "shifted-numeric.csv"))
        shares = "card_testing=0.45,high_amount=0.35,velocity_burst=0.15,geo_jump=0.05"
        gen = ["--cards", str(a.shifted_cards), "--days", "35", "--fraud-rate", "0.01", "--pattern-shares", shares,
               "--per-card-daily", "4", "--seed", "23"]
        g = generate(binary, data, gen)
        f = features(binary, data, tab)
        t = pl.Table(tab)
        if "shifted" in worlds:
            results.append(compare(rep, binary, "shifted", [
                f"`cardwatch generate {' '.join(gen)}` ({len(t.y):,} transactions, {g:.0f} s); `cardwatch features` "
                f"({f:.0f} s) gives the peers' table"], ["--data", data], t, pl.Split(t, *SPLIT), wd, a.rf_trees,
                depths, with_cp=True))
        if "table" in worlds:
            origin = numeric_export(tab, num)
            tn = pl.Table(num, label="Class", time_column="Time")
            results.append(compare(rep, binary, "table", [
                f"the shifted world's features table as a numeric export: `Time` (seconds since {origin:%Y-%m-%d}, "
                f"so dates read as 1970), {len(tn.names)} feature columns, `Class`; no ids, so no card precision"],
                ["--table", num, "--label", "Class", "--time-column", "Time"], tn, pl.Split(tn, *TABLE_SPLIT), wd,
                a.rf_trees, depths, with_cp=False))

    rep.say("Notes: the peers run with 2 threads (n_jobs=2). XGBoost: XGBClassifier(tree_method=hist, max_depth=6, "
            "learning_rate=0.1, subsample=0.8, colsample_bytree=0.8, max_bin=256, at most 300 rounds, early stopping "
            "after 30 rounds without gain on the validation rows); scale_pos_weight = negatives / positives of its fit "
            "rows. Random forests: RandomForestClassifier(n_estimators=100, max_depth as shown, random_state=1) on the "
            "whole training window. AP is scikit-learn's average_precision_score, AUC its roc_auc_score, for every "
            "model on the same test rows.")
    rep.finish()
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(results, f, indent=1, default=float)


if __name__ == "__main__":
    main()

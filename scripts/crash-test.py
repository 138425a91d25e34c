#!/usr/bin/env python3
"""Exactly-once under SIGKILL (issue #5).

A clean `cardwatch import` of a generated history (with labels, some invalid records and
some duplicates) into one data directory; then, into another, the same import killed with
SIGKILL at random moments several times and restarted until it finishes. The alerts, the
silver rows, the gold aggregates, the labels, the dead letters and the duplicates must be
exactly those of the clean run: 0 missing, 0 duplicated, every value equal.

With --postgres ADMIN_URL, both imports decide into a PostgreSQL warehouse (a new database
each, created through ADMIN_URL) and the PostgreSQL tables are compared, with the log's own
dead letters and duplicates (found at ingest, before any decision).

usage: crash-test.py CARDWATCH WORKDIR [--kills N] [--seed S] [--partitions P] [--postgres ADMIN_URL]
"""
import argparse
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

FEATURE_COLUMNS = None  # read from the table


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def rows(db, sql):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def snapshot(db):
    """Everything the pipeline decided, without wall-clock columns (latency, times of writing)."""
    cols = [r[1] for r in rows(db, "PRAGMA table_info(silver_transactions)")]
    silver_cols = [c for c in cols if c not in ("latency_us", "arrival", "partition", "offset")]
    quoted = ", ".join(f'"{c}"' for c in silver_cols)
    return {
        "silver": rows(db, f"SELECT {quoted} FROM silver_transactions ORDER BY transaction_id"),
        "alerts": rows(db, "SELECT transaction_id, card_id, fraud_probability, risk_tier, action, model_version, reasons, "
                           "fraud_pattern FROM alerts ORDER BY transaction_id"),
        "gold_hourly": rows(db, "SELECT hour, transactions, amount_micros, alerts, reviews, declines, probability_nanos, "
                                "labelled, confirmed_frauds, fraud_amount_micros, alerts_labelled, alerts_confirmed "
                                "FROM gold_hourly ORDER BY hour"),
        "gold_cards": rows(db, "SELECT * FROM gold_card_profiles ORDER BY card_id"),
        "gold_card_labels": rows(db, "SELECT * FROM gold_card_labels ORDER BY card_id"),
        "labels": rows(db, "SELECT transaction_id, is_fraud, reported_at, matched FROM labels ORDER BY transaction_id"),
        "dead_letters": rows(db, "SELECT source, line, reasons, raw FROM dead_letters ORDER BY line"),
        "duplicates": rows(db, "SELECT transaction_id, line, record FROM duplicates ORDER BY line"),
        "log": rows(db, "SELECT topic, COUNT(*) FROM records GROUP BY topic ORDER BY topic"),
    }


def psql(url, sql):
    """Rows of `sql` as tuples of text (NULL as None), through psql. (Split on "\\n" alone:
    str.splitlines also breaks at the separator characters.)"""
    out = subprocess.run(["psql", url, "-X", "-q", "-A", "-t", "-F", "\x1f", "-P", "null=<NULL>", "-c", sql],
                         check=True, capture_output=True, text=True).stdout
    return [tuple(None if v == "<NULL>" else v for v in line.split("\x1f")) for line in out.split("\n") if line]


def with_database(admin, name):
    psql(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    psql(admin, f"CREATE DATABASE {name}")
    head, _, _ = admin.rpartition("/")
    return f"{head}/{name}"


def snapshot_pg(url, data_dir):
    """The PostgreSQL warehouse's decisions, and the log's ingest-time dead letters and duplicates."""
    cols = [r[0] for r in psql(url, "SELECT column_name FROM information_schema.columns "
                                    "WHERE table_name = 'silver_transactions' ORDER BY ordinal_position")]
    # stream names each data directory's log: the two runs' differ by construction.
    silver_cols = [c for c in cols if c not in ("latency_us", "arrival", "partition", "offset", "decided_at", "stream")]
    quoted = ", ".join(f'"{c}"' for c in silver_cols)
    db = os.path.join(data_dir, "log.sqlite")
    return {
        "silver": psql(url, f"SELECT {quoted} FROM silver_transactions ORDER BY transaction_id"),
        "alerts": psql(url, "SELECT transaction_id, card_id, fraud_probability, risk_tier, action, model_version, "
                            "reasons, fraud_pattern FROM alerts ORDER BY transaction_id"),
        "gold_hourly": psql(url, "SELECT hour, transactions, amount_micros, alerts, reviews, declines, probability_nanos, "
                                 "labelled, confirmed_frauds, fraud_amount_micros, alerts_labelled, alerts_confirmed "
                                 "FROM gold_hourly ORDER BY hour"),
        "gold_cards": psql(url, "SELECT * FROM gold_card_profiles ORDER BY card_id"),
        "gold_card_labels": psql(url, "SELECT * FROM gold_card_labels ORDER BY card_id"),
        "labels": psql(url, "SELECT transaction_id, is_fraud, reported_at, matched FROM labels ORDER BY transaction_id"),
        "sink_dead_letters": psql(url, "SELECT source, line, reasons, raw FROM dead_letters ORDER BY id"),
        "log_dead_letters": rows(db, "SELECT source, line, reasons, raw FROM dead_letters ORDER BY line"),
        "log_duplicates": rows(db, "SELECT transaction_id, line, record FROM duplicates ORDER BY line"),
        "log": rows(db, "SELECT topic, COUNT(*) FROM records GROUP BY topic ORDER BY topic"),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cardwatch")
    ap.add_argument("workdir")
    ap.add_argument("--kills", type=int, default=6)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--days", type=int, default=45)
    ap.add_argument("--cards", type=int, default=1500)
    ap.add_argument("--partitions", type=int, default=1, help="log partitions of both data directories")
    ap.add_argument("--postgres", help="an admin URL of a PostgreSQL server: decide into a warehouse there")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    work = a.workdir
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    history, labels = os.path.join(work, "history.jsonl"), os.path.join(work, "labels.jsonl")
    sh([a.cardwatch, "generate", "--days", str(a.days), "--cards", str(a.cards), "--seed", "11", "--quiet",
        "--out", history, "--labels-out", labels])
    # Bad records and duplicates among the good ones, at fixed places.
    lines = open(history).read().splitlines()
    mixed = []
    for i, line in enumerate(lines):
        mixed.append(line)
        if i % 9973 == 17:
            mixed.append('{"transaction_id": "broken", "amount": "lots"}')
            mixed.append("not json at all")
            mixed.append(lines[i // 2])  # a duplicate of an earlier record
    open(history, "w").write("\n".join(mixed) + "\n")
    print(f"[crash-test] {len(lines):,} transactions, {len(mixed) - len(lines)} bad or duplicate lines, seed {a.seed}, "
          f"{a.partitions} partition{'s' if a.partitions != 1 else ''}")

    clean, crashed = os.path.join(work, "clean"), os.path.join(work, "crashed")
    # Small appends and batches: many commits, so the kills land between and inside many of them.
    cmd = [a.cardwatch, "import", history, "--labels", labels, "--quiet", "--json", "--checkpoint-every", "3",
           "--batch", "2048", "--ingest-batch", "1000", "--max-event-age", "none",  # a history: no past bound
           "--partitions", str(a.partitions)]
    warehouses = {}
    if a.postgres:
        for name in ("clean", "crashed"):
            warehouses[name] = with_database(a.postgres, f"cw_crash_{name}_{os.getpid()}")
        print(f"[crash-test] PostgreSQL warehouses: {warehouses['clean']}, {warehouses['crashed']}")

    def warehouse(name):
        # The registry stays the data directory's file: the crashed run gets the clean run's model by copy.
        return ["--warehouse", warehouses[name], "--registry", "sqlite"] if a.postgres else []

    t0 = time.time()
    out = sh(cmd + ["--data-dir", clean] + warehouse("clean")).stdout
    clean_seconds = time.time() - t0
    print(f"[crash-test] clean run: {out.strip()}")
    os.makedirs(crashed)
    shutil.copy(os.path.join(clean, "registry.sqlite"), crashed)  # the same model, no second bootstrap

    # Kill points: one early (while ingest runs ahead of processing), then at random shares of the work,
    # watched through the silver row count (WAL lets us read while it writes).
    silver_db = os.path.join(crashed, "log.sqlite")

    def silver_count():
        if a.postgres:
            try:
                return int(psql(warehouses["crashed"], "SELECT COUNT(*) FROM silver_transactions")[0][0])
            except subprocess.CalledProcessError:  # not created yet
                return 0
        try:
            return rows(silver_db, "SELECT COUNT(*) FROM silver_transactions")[0][0]
        except sqlite3.OperationalError:  # not created yet
            return 0

    targets = sorted(rng.uniform(0.02, 0.98) * len(lines) for _ in range(a.kills - 1))
    kills = []
    for k, target in enumerate([None] + targets):
        p = subprocess.Popen(cmd + ["--data-dir", crashed] + warehouse("crashed"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started = time.time()
        if target is None:
            time.sleep(rng.uniform(0.05, 0.4))
        else:
            while p.poll() is None and silver_count() < target:
                time.sleep(0.01)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()
            kills.append((round(time.time() - started, 2), silver_count()))
        else:
            p.wait()
            kills.append((round(time.time() - started, 2), "finished before the kill"))
    out = sh(cmd + ["--data-dir", crashed] + warehouse("crashed")).stdout
    print(f"[crash-test] SIGKILLs (after s, silver rows at that moment): {kills}")
    print(f"[crash-test] final restart: {out.strip()}")

    if a.postgres:
        a_snap = snapshot_pg(warehouses["clean"], clean)
        b_snap = snapshot_pg(warehouses["crashed"], crashed)
        for url in warehouses.values():
            psql(a.postgres, f"DROP DATABASE IF EXISTS {url.rpartition('/')[2]} WITH (FORCE)")
    else:
        a_snap = snapshot(os.path.join(clean, "log.sqlite"))
        b_snap = snapshot(os.path.join(crashed, "log.sqlite"))
    failed = False
    for name in a_snap:
        x, y = a_snap[name], b_snap[name]
        missing = len(set(x) - set(y))
        extra = len(set(y) - set(x))
        same = x == y
        print(f"[crash-test] {name}: clean {len(x):,} rows, crashed {len(y):,}; missing {missing}, "
              f"duplicated or different {extra + (len(y) - len(set(y)))}: {'equal' if same else 'DIFFERENT'}")
        failed |= not same
    if sum(1 for k in kills if k[1] != "finished before the kill") == 0:
        print("[crash-test] no kill landed while the import ran")
        failed = True
    if failed:
        print("[crash-test] FAILED")
        sys.exit(1)
    print("[crash-test] passed: the killed and restarted import equals the clean one")


if __name__ == "__main__":
    main()

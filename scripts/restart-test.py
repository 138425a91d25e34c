#!/usr/bin/env python3
"""A restarted `cardwatch run` goes on where its stream left off (issue 14, item 14).

Runs the live pipeline on a fresh data directory for --seconds of live decisions, stops it
with SIGINT, starts it again for as long, and compares the share of decisions that were
alerts before and after the restart: they must be within one percentage point. The live
generator's simulated clock runs thousands of times faster than the wall clock; had the
second run started it from the wall clock again, every card's next transaction would be days
older than its last (the alert share went from ~2 % to ~36 %). The second run's event times
must also continue the first's, and the chargebacks the first run's frauds were still owed
must arrive in the second (at least 90 % of the frauds 15 simulated days before the end are
labelled: with the generator's delays, 97 % are due by then).

usage: restart-test.py CARDWATCH WORKDIR [--tps 1000] [--seconds 25]
"""
import argparse
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time

ALERT = "risk_tier IN ('high', 'critical')"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(db, sql):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql).fetchone()
    finally:
        con.close()


def live_run(cardwatch, data, tps, seconds, after_arrival, log):
    """One `cardwatch run`: waits until it decides its first live transaction, lets it run
    `seconds` more, stops it with SIGINT; returns (decisions, alerts, first and last event
    time) of what it decided (silver rows after `after_arrival`)."""
    db = os.path.join(data, "log.sqlite")
    proc = subprocess.Popen(
        [cardwatch, "run", "--data-dir", data, "--tps", str(tps), "--port", str(free_port()), "--health-interval", "5"],
        stderr=log, stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180  # the first run bootstraps a model first
        while time.time() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"cardwatch run exited early with status {proc.returncode}")
            if os.path.exists(db):
                try:
                    if query(db, f"SELECT COUNT(*) FROM silver_transactions WHERE arrival > {after_arrival}")[0] > 0:
                        break
                except sqlite3.OperationalError:
                    pass  # not created yet
            time.sleep(0.2)
        else:
            raise SystemExit("cardwatch run decided nothing within 180 s")
        time.sleep(seconds)
    finally:
        proc.send_signal(signal.SIGINT)
        status = proc.wait(timeout=60)
    if status != 0:
        raise SystemExit(f"cardwatch run stopped with status {status}")
    return query(
        db,
        f"SELECT COUNT(*), SUM({ALERT}), MIN(event_time), MAX(event_time), MAX(arrival) FROM silver_transactions "
        f"WHERE arrival > {after_arrival}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cardwatch")
    ap.add_argument("workdir")
    ap.add_argument("--tps", type=float, default=1000)
    ap.add_argument("--seconds", type=float, default=25)
    args = ap.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    data = os.path.join(args.workdir, "data")
    with open(os.path.join(args.workdir, "run.log"), "w") as log:
        n1, a1, first1, last1, arrival1 = live_run(args.cardwatch, data, args.tps, args.seconds, 0, log)
        n2, a2, first2, last2, _ = live_run(args.cardwatch, data, args.tps, args.seconds, arrival1, log)
    share1, share2 = a1 / n1, a2 / n2
    frauds, labelled = query(
        os.path.join(data, "log.sqlite"),
        f"SELECT COUNT(*), COUNT(label) FROM silver_transactions WHERE is_fraud = 1 AND arrival <= {arrival1} "
        f"AND event_time <= {last2 - 15 * 86_400_000_000}")
    day = 86_400e6
    print(f"[restart] before: {n1} decisions, {a1} alerts ({100 * share1:.2f} %), event days "
          f"{first1 / day:.2f}–{last1 / day:.2f}")
    print(f"[restart] after:  {n2} decisions, {a2} alerts ({100 * share2:.2f} %), event days "
          f"{first2 / day:.2f}–{last2 / day:.2f}")
    ok = True
    if min(n1, n2) < 2_000:
        print(f"[restart] FAIL: too few decisions to compare ({n1}, {n2})")
        ok = False
    if abs(share2 - share1) > 0.01:
        print(f"[restart] FAIL: the alert share moved by {100 * (share2 - share1):+.2f} points after the restart")
        ok = False
    if first2 <= last1:
        print("[restart] FAIL: the restarted stream's event times do not continue the stored stream's")
        ok = False
    print(f"[restart] the first run's frauds 15 days before the end: {labelled} of {frauds} confirmed by chargebacks")
    if frauds < 50 or labelled < 0.9 * frauds:
        print("[restart] FAIL: the chargebacks owed before the restart did not arrive after it")
        ok = False
    if not ok:
        sys.exit(1)
    print(f"[restart] the alert share moved {100 * (share2 - share1):+.2f} points; the simulated clock went on "
          f"{(first2 - last1) / 1e6:.0f} s after the stored stream's last event")


if __name__ == "__main__":
    main()

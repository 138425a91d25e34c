#!/usr/bin/env python3
"""The PostgreSQL warehouse going away under a running pipeline (issue #17).

`cardwatch run` (live generator, HTTP) decides into a PostgreSQL warehouse while this
script also posts transactions of its own, retrying each batch it is refused as a client
would. Meanwhile PostgreSQL is restarted (`pg_ctl restart -m fast`) and then stopped for
10 s (`pg_ctl stop -m immediate`). While it is away, HTTP must answer 503 with Retry-After
and `/pipeline/health` must say the warehouse is unavailable; afterwards the pipeline must
resume by itself. At the end (the remaining log drained by `cardwatch import`) every
transaction of the log, the posted ones among them, is in the warehouse exactly once.

usage: postgres-outage-test.py CARDWATCH WORKDIR PGDIR ADMIN_URL
"""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

cardwatch, work, pgdir, admin = sys.argv[1:5]
here = os.path.dirname(os.path.abspath(__file__))
port = 18000 + os.getpid() % 1000
base = f"http://127.0.0.1:{port}"


def psql(url, sql):
    out = subprocess.run(["psql", url, "-X", "-q", "-A", "-t", "-c", sql], check=True, capture_output=True, text=True)
    return [line.split("|") for line in out.stdout.splitlines() if line]


def pg(action):
    subprocess.run([os.path.join(here, "postgres.sh"), action, pgdir], check=True)


def request(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, dict(r.headers), json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"null")


shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
db = f"cw_outage_{os.getpid()}"
psql(admin, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
psql(admin, f"CREATE DATABASE {db}")
url = admin.rpartition("/")[0] + "/" + db
data = os.path.join(work, "data")
log = open(os.path.join(work, "run.log"), "w")
run = subprocess.Popen([cardwatch, "run", "--data-dir", data, "--warehouse", url, "--port", str(port), "--tps", "300",
                        "--health-interval", "2"], stdout=log, stderr=log)
failed = []
try:
    for _ in range(600):
        try:
            if request("GET", "/pipeline/health")[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.1)
    else:
        sys.exit("[outage-test] the pipeline did not start; see " + log.name)

    posted, refusals, stop = [], {"503": 0, "retry_after": 0, "other": []}, threading.Event()

    def client():
        n = 0
        while not stop.is_set():
            batch = [{"transaction_id": f"outage-{n + i}", "card_id": f"outage-card-{(n + i) % 37}", "amount": 10 + i,
                      "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "merchant_id": "m-1",
                      "currency": "USD"} for i in range(5)]
            while not stop.is_set():
                try:
                    status, headers, body = request("POST", "/v1/transactions", batch)
                except OSError as e:
                    refusals["other"].append(str(e))
                    time.sleep(0.5)
                    continue
                if status == 200:
                    posted.extend(t["transaction_id"] for t in batch)
                    break
                if status == 503:
                    refusals["503"] += 1
                    refusals["retry_after"] += 1 if "Retry-After" in headers or "retry-after" in headers else 0
                    time.sleep(0.2)
                else:
                    refusals["other"].append(f"{status} {body}")
                    time.sleep(0.2)
            n += 5
            time.sleep(0.02)

    t = threading.Thread(target=client)
    t.start()
    time.sleep(3)
    print("[outage-test] pg_ctl restart -m fast")
    pg("restart")
    time.sleep(3)
    print("[outage-test] PostgreSQL stopped (immediate) for 10 s")
    pg("halt")
    time.sleep(1.5)
    status, headers, health = request("GET", "/pipeline/health")
    said = health.get("warehouse_unavailable", "") if isinstance(health, dict) else ""
    print(f"[outage-test] health while away: {status}, {health.get('status')}: {said[:120]}")
    if not said:
        failed.append("/pipeline/health did not say the warehouse is unavailable")
    status, headers, body = request("GET", "/stats/summary")
    print(f"[outage-test] GET /stats/summary while away: {status}, Retry-After {headers.get('Retry-After')}")
    if status != 503 or "Retry-After" not in headers:
        failed.append(f"a read while the warehouse is away got {status}, not 503 with Retry-After")
    time.sleep(8.5)
    pg("resume")
    print("[outage-test] PostgreSQL back")
    resumed = None
    start = time.time()
    while time.time() - start < 30:
        status, _, health = request("GET", "/pipeline/health")
        if status == 200 and "warehouse_unavailable" not in health:
            before = int(psql(url, "SELECT COUNT(*) FROM silver_transactions")[0][0])
            time.sleep(1)
            if int(psql(url, "SELECT COUNT(*) FROM silver_transactions")[0][0]) > before:
                resumed = round(time.time() - start, 1)
                break
        time.sleep(0.5)
    print(f"[outage-test] deciding again {resumed} s after PostgreSQL came back")
    if resumed is None:
        failed.append("the pipeline did not resume within 30 s")
    time.sleep(2)
    stop.set()
    t.join()
finally:
    run.send_signal(signal.SIGTERM)
    try:
        run.wait(timeout=20)
    except subprocess.TimeoutExpired:
        run.kill()
        failed.append("run did not stop on SIGTERM")

print(f"[outage-test] client: {len(posted)} transactions acknowledged, {refusals['503']} batches refused with 503 "
      f"({refusals['retry_after']} with Retry-After), other errors: {refusals['other'][:3]}")
if refusals["503"] == 0:
    failed.append("no request was refused while the warehouse was away")
if refusals["503"] != refusals["retry_after"]:
    failed.append("a 503 came without Retry-After")
if refusals["other"]:
    failed.append(f"unexpected answers: {refusals['other'][:3]}")
# What the log holds that the stopped run had not committed yet: decided by an import of nothing new.
empty = os.path.join(work, "empty.jsonl")
open(empty, "w").close()
subprocess.run([cardwatch, "import", empty, "--data-dir", data, "--warehouse", url, "--quiet"], check=True,
               capture_output=True)
logged = sqlite3.connect(os.path.join(data, "log.sqlite")).execute(
    "SELECT COUNT(*) FROM records WHERE topic = 'transactions'").fetchone()[0]
total, distinct = map(int, psql(url, "SELECT COUNT(*), COUNT(DISTINCT transaction_id) FROM silver_transactions")[0])
ids = {r[0] for r in psql(url, "SELECT transaction_id FROM silver_transactions WHERE transaction_id LIKE 'outage-%'")}
missing = [i for i in posted if i not in ids]
print(f"[outage-test] log {logged:,} transactions; warehouse {total:,} rows, {distinct:,} distinct; "
      f"posted and acknowledged {len(posted)}, missing {len(missing)}")
if total != logged or distinct != total:
    failed.append(f"the warehouse holds {total} rows ({distinct} distinct) for {logged} transactions in the log")
if missing:
    failed.append(f"{len(missing)} acknowledged transactions are not in the warehouse")
psql(admin, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
if failed:
    print("[outage-test] FAILED: " + "; ".join(failed))
    sys.exit(1)
print("[outage-test] passed: the pipeline waited while PostgreSQL was away and lost or repeated nothing")

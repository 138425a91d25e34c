#!/usr/bin/env python3
"""Two processes on one PostgreSQL database (issue #17).

Two `cardwatch run` instances, each with a log (data directory) of its own, decide into one
PostgreSQL warehouse and share its model registry. From a third process, `cardwatch train`
registers a model and `cardwatch models promote` makes it production: both running
instances must decide with the new version within 2 s. Both instances' decisions are in
the warehouse, each under its own stream, none twice.

usage: postgres-instances-test.py CARDWATCH WORKDIR ADMIN_URL
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

cardwatch, work, admin = sys.argv[1:4]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)


def psql(url, sql):
    out = subprocess.run(["psql", url, "-X", "-q", "-A", "-t", "-c", sql], check=True, capture_output=True, text=True)
    return [line.split("|") for line in out.stdout.split("\n") if line]


def post(port, tx):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/transactions", data=json.dumps(tx).encode(),
                                 method="POST", headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def healthy(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/pipeline/health", timeout=5) as r:
            return r.status == 200
    except (OSError, urllib.error.HTTPError):
        return False


db = f"cw_instances_{os.getpid()}"
psql(admin, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
psql(admin, f"CREATE DATABASE {db}")
url = admin.rpartition("/")[0] + "/" + db
ports = [19100 + os.getpid() % 500, 19700 + os.getpid() % 500]
procs, failed = [], []
try:
    for i, port in enumerate(ports):
        log = open(os.path.join(work, f"run{i}.log"), "w")
        procs.append(subprocess.Popen([cardwatch, "run", "--data-dir", os.path.join(work, f"d{i}"), "--warehouse", url,
                                       "--port", str(port), "--tps", "100", "--seed", str(i + 1)],
                                      stdout=log, stderr=log))
        for _ in range(900):  # the first one bootstraps a model into the shared registry
            if healthy(port):
                break
            time.sleep(0.1)
        else:
            sys.exit(f"[instances-test] instance {i} did not start; see {log.name}")
    print(f"[instances-test] two instances running on ports {ports}, one warehouse and registry: {url}")
    history = os.path.join(work, "h.jsonl")
    subprocess.run([cardwatch, "generate", "--days", "20", "--cards", "300", "--seed", "9", "--quiet", "--out", history],
                   check=True)
    out = subprocess.run([cardwatch, "train", "--data", history, "--no-tuning", "--trees", "30", "--registry", url,
                          "--data-dir", os.path.join(work, "trainer"), "--json"],
                         check=True, capture_output=True, text=True).stdout
    version = json.loads(out)["model_version"]
    versions = {post(p, {"transaction_id": f"before-{p}", "card_id": "c-1", "amount": 5, "merchant_id": "m",
                         "currency": "USD", "timestamp": "2026-12-06T10:00:00Z"})["model_version"] for p in ports}
    print(f"[instances-test] registered v{version}; the instances decide with {sorted(versions)}")
    t0 = time.time()
    subprocess.run([cardwatch, "models", "promote", str(version), "--force", "--registry", url, "--data-dir",
                    os.path.join(work, "trainer")], check=True, capture_output=True)
    switched = {}
    n = 0
    while len(switched) < len(ports) and time.time() - t0 < 10:
        for p in ports:
            if p in switched:
                continue
            n += 1
            d = post(p, {"transaction_id": f"after-{p}-{n}", "card_id": "c-2", "amount": 5, "merchant_id": "m",
                         "currency": "USD", "timestamp": "2026-12-06T10:00:00Z"})
            if d["model_version"] == version:
                switched[p] = round(time.time() - t0, 3)
        time.sleep(0.02)
    print(f"[instances-test] seconds from `models promote` to the first decision with v{version}: {switched}")
    if len(switched) < len(ports) or max(switched.values()) > 2:
        failed.append("an instance did not decide with the promoted model within 2 s")
finally:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
streams = psql(url, "SELECT stream, COUNT(*), COUNT(DISTINCT transaction_id) FROM silver_transactions GROUP BY 1")
print(f"[instances-test] silver by stream (rows, distinct ids): {[(s[:22], int(a), int(b)) for s, a, b in streams]}")
if len(streams) != 2 or any(a != b for _, a, b in streams):
    failed.append(f"expected two streams without repeats, found {streams}")
psql(admin, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
if failed:
    print("[instances-test] FAILED: " + "; ".join(failed))
    sys.exit(1)
print("[instances-test] passed: both instances share the warehouse and follow a promotion made elsewhere")

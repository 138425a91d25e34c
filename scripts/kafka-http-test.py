#!/usr/bin/env python3
"""The HTTP API of instances on Kafka: two instances of one group on librdkafka's mock
cluster and one PostgreSQL warehouse.

- POST /v1/transactions on either instance answers with the decision, also for cards whose
  partition the other instance owns; a repeated id is answered as a duplicate of the first.
- /metrics has cardwatch_consumer_lag per partition.
- Every broker down: /pipeline/health says unhealthy and why (log_unavailable), a POST gets
  503 with Retry-After; brokers up: healthy again and POSTs decided, by themselves.

usage: kafka-http-test.py CARDWATCH_BIN WORKDIR POSTGRES_ADMIN_URL
"""
import datetime
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafkatest import assigned, murmur2_partition  # noqa: E402

BIN, WORK, ADMIN = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(WORK, exist_ok=True)
procs = []


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fail(msg, *logs):
    for path in logs:
        print(f"--- last lines of {path}")
        with open(path, errors="replace") as f:
            print("".join([l for l in f.readlines() if not l.startswith("%")][-30:]))
    print(f"FAIL: {msg}")
    sys.exit(1)


def psql(url, sql):
    return subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


def partition(key: str, partitions: int) -> int:
    return murmur2_partition(key, partitions)


def http(method, url, body=None, timeout=30):
    req = urllib.request.Request(url, data=body, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, {}, b""  # not listening (yet)


def transaction(card, tid):
    now = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    return {"transaction_id": tid, "card_id": card, "merchant_id": "mer_000042", "amount": 42.5,
            "currency": "USD", "timestamp": now, "merchant_category": "grocery", "latitude": 40.7,
            "longitude": -74.0, "country": "US", "channel": "pos"}


def until(what, check, timeout, *logs):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.3)
    fail(f"not within {timeout} s: {what}", *logs)


PARTITIONS = 4
db = f"khttp_{random.randrange(1 << 30)}"
base = ADMIN.rsplit("/", 1)[0]
warehouse = f"{base}/{db}"
cluster = None
try:
    psql(ADMIN, f"CREATE DATABASE {db}")
    cluster = subprocess.Popen([BIN, "kafka", "mock-cluster", "--partitions", str(PARTITIONS)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    bootstrap = cluster.stdout.readline().strip()
    log(f"mock cluster at {bootstrap}")

    def broker(command):
        cluster.stdin.write(command + "\n")
        cluster.stdin.flush()
        answer = cluster.stdout.readline().strip()
        if answer != "ok":
            fail(f"mock cluster: {command}: {answer}")

    ports = [random.randrange(20000, 40000) for _ in range(2)]
    logs = []
    for i, port in enumerate(ports):
        path = os.path.join(WORK, f"instance{i}.err")
        logs.append(path)
        procs.append(subprocess.Popen(
            [BIN, "run", "--log", f"kafka://{bootstrap}", "--warehouse", warehouse, "--data-dir",
             os.path.join(WORK, f"d{i}"), "--port", str(port), "--no-generator", "--session-timeout", "6"],
            stdout=subprocess.DEVNULL, stderr=open(path, "w")))
        if i == 0:  # the first bootstraps the model; the second joins once it is there
            until("the first instance answers", lambda: http("GET", f"http://127.0.0.1:{port}/pipeline/health")[0] == 200
                  if procs[0].poll() is None else fail("the first instance exited", path), 180, path)

    def split():
        a, b = assigned(logs[0]), assigned(logs[1])
        return a and b and sorted(a + b) == list(range(PARTITIONS))
    until("the two instances share the partitions", split, 60, *logs)
    owned = [assigned(p) for p in logs]
    log(f"partitions: instance 0 {owned[0]}, instance 1 {owned[1]}")

    # Synchronous decisions from either instance, whichever owns the card's partition.
    elsewhere = 0
    latencies = []
    for n in range(40):
        card = f"card_http_{n:03d}"
        i = n % 2
        t = transaction(card, f"http-{db}-{n}")
        began = time.time()
        status, _, body = http("POST", f"http://127.0.0.1:{ports[i]}/v1/transactions", json.dumps(t).encode())
        latencies.append((time.time() - began) * 1000)
        if status != 200:
            fail(f"POST to instance {i}: {status} {body[:300]!r}", *logs)
        answer = json.loads(body)
        if answer.get("transaction_id") != t["transaction_id"] or answer.get("risk_tier") not in (
                "low", "medium", "high", "critical"):
            fail(f"POST answered without a decision: {answer}")
        if partition(card, PARTITIONS) not in owned[i]:
            elsewhere += 1
    if elsewhere == 0:
        fail("no POST went to an instance that does not own the card's partition")
    latencies.sort()
    log(f"PASS: 40 POSTs decided, {elsewhere} by the instance that does not own the partition; "
        f"p50 {latencies[20]:.1f} ms, max {latencies[-1]:.1f} ms")
    status, _, body = http("POST", f"http://127.0.0.1:{ports[1]}/v1/transactions",
                           json.dumps(transaction("card_http_000", f"http-{db}-0")).encode())
    if status != 200 or not json.loads(body).get("duplicate"):
        fail(f"a repeated id must be answered as a duplicate of the first decision: {status} {body[:300]!r}")
    count = psql(warehouse, f"SELECT count(*) FROM silver_transactions WHERE transaction_id LIKE 'http-{db}-%'")
    if count != "40":
        fail(f"the warehouse holds {count} of the 40 posted transactions")
    log("PASS: a repeated id is a duplicate; the warehouse holds each posted transaction once")

    metrics = http("GET", f"http://127.0.0.1:{ports[0]}/metrics")[2].decode()
    lags = re.findall(r'^cardwatch_consumer_lag\{partition="(\d+)"\} ', metrics, re.M)
    if sorted(int(p) for p in lags) != list(range(PARTITIONS)):
        fail(f"/metrics must have cardwatch_consumer_lag per partition, found {lags}")
    log("PASS: /metrics has cardwatch_consumer_lag for each partition")

    # Every broker down: unhealthy with the reason, 503 with Retry-After; up: healthy, decided.
    broker("down all")

    def health(i):
        status, _, body = http("GET", f"http://127.0.0.1:{ports[i]}/pipeline/health")
        return json.loads(body) if status == 200 else {}
    until("health says the log is away", lambda: "log_unavailable" in health(0), 10, *logs)
    h = health(0)
    if h.get("healthy") is not False:
        fail(f"health must be unhealthy while the cluster is away: {h}")
    status, headers, body = http("POST", f"http://127.0.0.1:{ports[0]}/v1/transactions",
                                 json.dumps(transaction("card_http_down", f"http-{db}-down")).encode())
    if status != 503 or "Retry-After" not in headers:
        fail(f"a POST while the cluster is away must get 503 with Retry-After: {status} {headers} {body[:300]!r}")
    log(f"PASS: cluster away: health unhealthy ({h['log_unavailable'][:80]}…), POST 503 Retry-After {headers['Retry-After']}")
    time.sleep(5)
    broker("up all")
    until("health healthy again", lambda: health(0).get("healthy") is True and "log_unavailable" not in health(0), 30,
          *logs)
    # A client that honours Retry-After: its POST is decided within seconds of the cluster's return.
    back = time.time()
    while True:
        status, headers, body = http("POST", f"http://127.0.0.1:{ports[0]}/v1/transactions",
                                     json.dumps(transaction("card_http_up", f"http-{db}-up")).encode())
        if status == 200 or status != 503 or time.time() - back > 15:
            break
        time.sleep(float(headers.get("Retry-After", "1")))
    if status != 200:
        fail(f"a POST after the cluster came back (retried on 503 for 15 s): {status} {body[:300]!r}", *logs)
    log(f"POST decided {time.time() - back:.1f} s after health said healthy")
    if any(p.poll() is not None for p in procs):
        fail("an instance exited during the outage", *logs)
    log("PASS: cluster back: healthy again, POST decided, both instances up")

    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p, path in zip(procs, logs):
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            fail("an instance did not stop within 30 s of SIGTERM", path)
    log("PASS: both instances stopped on SIGTERM")
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
    if cluster:
        cluster.kill()
    try:
        psql(ADMIN, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    except subprocess.CalledProcessError:
        pass

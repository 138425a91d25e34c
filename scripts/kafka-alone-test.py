#!/usr/bin/env python3
"""One instance on Kafka with the embedded SQLite warehouse, and a second one refused.

One mock Kafka cluster (`cardwatch kafka mock-cluster`, 6 partitions) and `cardwatch run --log
kafka://…` without --warehouse: the instance decides into DATA_DIR/kafka/log.sqlite.

1. reference: `cardwatch import FILE` into an embedded data directory (6 partitions, the SQLite
   log): its features are the reference;
2. the first part of the file produced (`import --log kafka://`): every record decided once, with
   the reference's 29 features;
3. a second instance in the same group (its own data directory) exits with status 1 and a
   message that says why, having decided nothing; the first keeps deciding;
4. the rest of the file produced while the first instance is SIGKILLed and started again (it
   waits for the group to drop its previous self): exactly once over the whole file, the
   reference's features; the alerts are served from the file (GET /alerts/{id});
5. synchronous POST /v1/transactions: a new transaction decided, the same id again a duplicate
   (the file's index); SIGTERM stops the instance.

usage: kafka-alone-test.py CARDWATCH WORKDIR
"""
import json
import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafkatest import FEATURES, Failed, free_port, same, stop  # noqa: E402
from kafkatest import wait_until as wait_for  # noqa: E402

PARTITIONS = 6
SESSION_TIMEOUT_S = 4
DEADLINE_S = 120.0


def wait_until(what, predicate, timeout=DEADLINE_S, alive=None):
    return wait_for(what, predicate, timeout, alive)

if len(sys.argv) != 3:
    sys.exit(__doc__)
CARDWATCH, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
T0 = time.time()
results, children = [], []


def say(msg):
    print(f"[+{time.time() - T0:5.1f}s] {msg}", flush=True)


def check(name, ok, detail):
    results.append((name, bool(ok)))
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)


def cardwatch(*args, timeout=300):
    out = subprocess.run([CARDWATCH, *args], capture_output=True, text=True, cwd=WORK, timeout=timeout)
    if out.returncode != 0:
        raise Failed(f"cardwatch {' '.join(args[:3])}… failed with status {out.returncode}: {out.stderr.strip()[-400:]}")
    return out.stdout


def start_mock_cluster():
    proc = subprocess.Popen([CARDWATCH, "kafka", "mock-cluster", "--partitions", str(PARTITIONS)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=open(os.path.join(WORK, "mock.err"), "w"), text=True, cwd=WORK)
    children.append(proc)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l.rstrip("\n")) for l in proc.stdout], daemon=True).start()
    try:
        return proc, lines.get(timeout=30)
    except queue.Empty:
        raise Failed("the mock cluster printed no bootstrap servers in 30 s")


def instance(name, bootstrap, port):
    data = os.path.join(WORK, name)
    err = os.path.join(WORK, f"{name}.err")
    proc = subprocess.Popen(
        [CARDWATCH, "run", "--log", f"kafka://{bootstrap}", "--data-dir", data, "--no-generator", "--port", str(port),
         "--session-timeout", str(SESSION_TIMEOUT_S)],
        stdin=subprocess.DEVNULL, stdout=open(os.path.join(WORK, f"{name}.out"), "a"), stderr=open(err, "a"), cwd=WORK)
    children.append(proc)
    say(f"instance {name} started (pid {proc.pid}, port {port})")
    return proc, os.path.join(data, "kafka", "log.sqlite"), err


def silver(path, columns="transaction_id"):
    if not os.path.exists(path):
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(f"SELECT {columns} FROM silver_transactions").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def features(path):
    table, dups = {}, set()
    for row in silver(path, "transaction_id, " + ", ".join(FEATURES)):
        if row[0] in table:
            dups.add(row[0])
        table[row[0]] = row[1:]
    return table, dups


def http(method, url, body=None):
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read()[:300]


def compare(label, ids, path, reference):
    table, dups = features(path)
    missing = [t for t in ids if t not in table]
    extra = [t for t in table if t not in ids]
    check(f"{label}: exactly once", not missing and not dups and not extra,
          f"{len(ids)} produced, {len(table)} distinct in silver; {len(missing)} missing, {len(dups)} duplicated, "
          f"{len(extra)} unknown" + (f"; missing e.g. {missing[:3]}" if missing else ""))
    bad = [t for t in ids if t in table and not all(same(a, b) for a, b in zip(table[t], reference[t]))]
    check(f"{label}: the reference's 29 features", not bad and len(table) >= len(ids),
          f"{len(ids) - len(bad)} of {len(ids)} equal" + (f"; e.g. {bad[0]}" if bad else ""))


def main():
    say(f"kafka-alone-test: {CARDWATCH}; work {WORK}")
    if os.path.isdir(WORK):
        shutil.rmtree(WORK)
    os.makedirs(WORK)
    history = os.path.join(WORK, "history.jsonl")
    cardwatch("generate", "--days", "6", "--cards", "200", "--seed", "11", "--quiet", "--out", history)
    with open(history, "rb") as f:
        lines = [l for l in f if l.strip()]
    ids = [json.loads(l)["transaction_id"] for l in lines]
    cut = len(lines) * 3 // 5
    first, rest = os.path.join(WORK, "first.jsonl"), os.path.join(WORK, "rest.jsonl")
    with open(first, "wb") as f:
        f.writelines(lines[:cut])
    with open(rest, "wb") as f:
        f.writelines(lines[cut:])
    say(f"generated {len(lines)} records: {cut} first, {len(lines) - cut} after")

    # 1. the reference: the embedded import, SQLite log, same partition count.
    ref_dir = os.path.join(WORK, "reference")
    cardwatch("import", history, "--data-dir", ref_dir, "--partitions", str(PARTITIONS), "--max-event-age", "none",
              "--quiet")
    reference, _ = features(os.path.join(ref_dir, "log.sqlite"))
    check("reference: the embedded import decided the file", len(reference) == len(ids),
          f"{len(reference)} of {len(ids)}")

    mock, bootstrap = start_mock_cluster()
    say(f"mock Kafka cluster at {bootstrap}")
    port_a = free_port()
    a, a_db, a_err = instance("a", bootstrap, port_a)

    # 2. the first part
    cardwatch("import", first, "--log", f"kafka://{bootstrap}", "--max-event-age", "none", "--quiet")
    try:
        wait_until(f"{cut} decisions in a's warehouse", lambda: len(silver(a_db)) >= cut, alive=a)
    except Failed as e:
        say(str(e))
    compare("first part", ids[:cut], a_db, reference)

    # 3. a second instance in the same group
    b_started = time.time()
    b, b_db, b_err = instance("b", bootstrap, free_port())
    by_itself = True
    try:
        b.wait(timeout=SESSION_TIMEOUT_S + 10 + 60)
    except subprocess.TimeoutExpired:
        by_itself = False
        stop(b)
    with open(b_err, errors="replace") as f:
        said = [l.strip() for l in f if "cannot share a group" in l]
    check("a second instance in the group is refused, having decided nothing",
          by_itself and b.returncode == 1 and said and not silver(b_db),
          f"exit status {b.returncode} after {time.time() - b_started:.1f} s"
          f"{'' if by_itself else ' (stopped by the test: it did not exit by itself)'}; {len(silver(b_db))} decisions in its "
          f"warehouse; says: {said[-1][:300] if said else '(nothing)'}")
    check("the first instance runs on", a.poll() is None, "running" if a.poll() is None else f"exited {a.returncode}")

    # 4. the rest, with a SIGKILL and a restart in the middle
    importer = subprocess.Popen([CARDWATCH, "import", rest, "--log", f"kafka://{bootstrap}", "--max-event-age", "none",
                                 "--quiet"], cwd=WORK, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    children.append(importer)
    wait_until("some of the rest decided", lambda: len(silver(a_db)) > cut, alive=a)
    a.kill()
    a.wait()
    say(f"instance a SIGKILLed with {len(silver(a_db))} decided; started again on its data directory")
    a, a_db, a_err = instance("a", bootstrap, port_a)
    importer.wait(timeout=120)
    try:
        wait_until(f"{len(ids)} decisions", lambda: len(silver(a_db)) >= len(ids), alive=a)
    except Failed as e:
        say(str(e))
    compare("whole file, a SIGKILL and a restart", ids, a_db, reference)
    db = sqlite3.connect(f"file:{a_db}?mode=ro", uri=True)
    alerted = [r[0] for r in db.execute("SELECT transaction_id FROM alerts ORDER BY transaction_id LIMIT 3")]
    db.close()
    served = [http("GET", f"http://127.0.0.1:{port_a}/alerts/{t}")[0] for t in alerted]
    check("alerts are served from the file", alerted and all(s == 200 for s in served),
          f"GET /alerts/{{id}} for {alerted}: {served}")

    # 5. synchronous decisions
    tx = json.loads(lines[-1])
    tx["transaction_id"] = "alone-sync-1"
    tx["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status1, body1 = http("POST", f"http://127.0.0.1:{port_a}/v1/transactions", tx)
    status2, body2 = http("POST", f"http://127.0.0.1:{port_a}/v1/transactions", tx)
    duplicate = isinstance(body2, dict) and (body2.get("duplicate") is True or body2.get("status") == "duplicate")
    check("POST /v1/transactions is decided through Kafka, and the same id again is a duplicate",
          status1 == 200 and status2 == 200 and duplicate,
          f"first {status1} {str(body1)[:160]}; again {status2} {str(body2)[:160]}")
    alive = a.poll() is None
    clean = stop(a)
    check("the instance stops on SIGTERM", alive and clean and a.returncode == 0,
          f"{'running' if alive else 'had exited'}; exit status {a.returncode}")
    stop(mock)


def run():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    status = 1
    try:
        main()
        failed = [n for n, ok in results if not ok]
        print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed", flush=True)
        status = 1 if failed or not results else 0
    except Failed as e:
        print(f"FAIL setup: {e}", flush=True)
    finally:
        for p in children:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in children:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        say(f"done in {time.time() - T0:.0f} s")
    sys.exit(status)


if __name__ == "__main__":
    run()

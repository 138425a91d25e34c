#!/usr/bin/env python3
"""Issue 14's bad data, end to end on the release binary (items 8, 10, 11, 12, 13).

Card numbers (PANs) go through every path — `validate`, `import` of JSON Lines and CSV,
`features`, and a running server's /v1/transactions (the event-loop path, batches, JSON
Lines), /transaction (the gateway body), /predict — valid, invalid and dead-lettered, with
the secret from a file and from the variable, and without one. Then every file of the data
directory (SQLite databases, WAL, checkpoints, the registry) and every output (stdout,
stderr, HTTP answers, the files the commands wrote) is searched for each PAN, written plain,
in groups of four with spaces and with dashes: none may be found. Also: event times beyond
the wall-clock bounds (HTTP and import), blank ids, sub-cent amounts and equivalent Unicode
ids over HTTP, training on a label taxonomy of another source with invalid records
(--max-invalid), and a two-day table split by --test-fraction. Each case prints its outcome.

usage: data-test.py CARDWATCH WORKDIR
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

VALID = ["4111111111111111", "5500000000000004", "378282246310005", "6011000990139424", "4012888888881881"]
INVALID = ["4111111111111112", "5500000000000005"]
outputs = []  # (what, text): everything the commands and the server said
failures = []


def forms(pan):
    groups = [pan[i:i + 4] for i in range(0, len(pan), 4)]
    return [pan, " ".join(groups), "-".join(groups)]


def check(what, ok, detail=""):
    print(f"[data-test] {'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail and not ok else ""))
    if not ok:
        failures.append(what)


def run(args, env=None, expect=0):
    p = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **(env or {})})
    outputs.append((" ".join(args[1:3]), p.stdout + p.stderr))
    if expect is not None and p.returncode != expect:
        print(p.stdout[-2000:], p.stderr[-2000:])
        raise SystemExit(f"{' '.join(args)}: exit status {p.returncode}, expected {expect}")
    return p


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def record(tid, **members):
    r = {"transaction_id": tid, "amount": 12.5, "timestamp": iso(datetime.now(timezone.utc)), "merchant_id": "m1"}
    r.update(members)
    return json.dumps(r)


class Server:
    def __init__(self, cardwatch, data, env):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.err = os.path.join(data, f"run-{self.port}.err")
        self.proc = subprocess.Popen(
            [cardwatch, "run", "--no-generator", "--data-dir", data, "--port", str(self.port), "--health-interval", "2"],
            stdout=subprocess.DEVNULL, stderr=open(self.err, "w"), env={**os.environ, **env})
        for _ in range(240):
            try:
                if self.request("GET", "/models")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit("the server did not come up: " + open(self.err).read()[-2000:])

    def request(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        c.request(method, path, body=body.encode() if isinstance(body, str) else body, headers=headers)
        r = c.getresponse()
        text = r.read().decode("utf-8", "replace")
        c.close()
        outputs.append((f"HTTP {method} {path}", text))
        return r.status, text

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        outputs.append(("run stderr", open(self.err).read()))


def main():
    cardwatch, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    data = os.path.join(work, "data")
    secret = base64.b64encode(os.urandom(32))
    secret_file = os.path.join(work, "pan.secret")
    open(secret_file, "wb").write(secret + b"\n")

    def card_id(pan):
        return hmac.new(secret, pan.encode(), hashlib.sha256).hexdigest()

    # Item 8: files.
    jsonl = os.path.join(work, "pans.jsonl")
    open(jsonl, "w").write("\n".join([
        record("j1", card_number=VALID[0]),
        record("j2", card_number=forms(VALID[1])[1], note="backup card " + forms(VALID[3])[2]),
        record("j3", card_number=INVALID[0]),
        record("j4", card_id=VALID[2]),
        record("j5", card_number=VALID[0], amount=0),
        '{"transaction_id":"j6","card_number":"' + VALID[4] + '","amount":',
        record("j7", card_id="c7", pan=VALID[3]),
    ]) + "\n")
    csv = os.path.join(work, "pans.csv")
    now = iso(datetime.now(timezone.utc))
    open(csv, "w").write("\n".join([
        "transaction_id,card_number,amount,timestamp,merchant_id,memo",
        f"c1,{forms(VALID[0])[2]},10,{now},m1,",
        f"c2,{INVALID[1]},10,{now},m1,",
        f"c3,{VALID[2]},10,{now},m1,call {VALID[3]}",
        f"c4,{VALID[4]},10,never,m1,",
    ]) + "\n")

    dead = os.path.join(work, "dead.jsonl")
    p = run([cardwatch, "validate", jsonl, "--pan-secret-file", secret_file, "--dead-letters", dead], expect=1)
    check("validate: card numbers checked, the bad ones reported by field",
          ":3: card_number:" in p.stdout and "j4" not in p.stdout and ":4: card_id: looks like a card number" in p.stdout,
          p.stdout)
    check("validate: dead letters keep the first six and last four digits", "411111******1112" in open(dead).read())
    outputs.append(("validate dead letters", open(dead).read()))
    p = run([cardwatch, "validate", jsonl], expect=1)
    check("validate without a secret: the card number is refused saying why",
          ":1: card_number: cannot be accepted: no PAN secret" in p.stdout, p.stdout)

    p = run([cardwatch, "import", jsonl, "--pan-secret-file", secret_file, "--data-dir", data, "--json", "--quiet"])
    m = json.loads(p.stdout)
    check("import JSON Lines: 3 accepted, 4 dead-lettered", (m["accepted"], m["dead_lettered"]) == (3, 4), m)
    p = run([cardwatch, "import", csv, "--pan-secret-file", secret_file, "--data-dir", data, "--json", "--quiet"])
    m = json.loads(p.stdout)
    check("import CSV: 2 accepted, 2 dead-lettered", (m["accepted"], m["dead_lettered"]) == (2, 2), m)
    db = sqlite3.connect(os.path.join(data, "log.sqlite"))
    cards = dict(db.execute("SELECT transaction_id, card_id FROM silver_transactions WHERE transaction_id IN ('j1','j2','c1','c3')"))
    check("card_id = HMAC-SHA256(secret, PAN digits), lower-case hex",
          cards == {"j1": card_id(VALID[0]), "c1": card_id(VALID[0]), "j2": card_id(VALID[1]), "c3": card_id(VALID[2])}, cards)
    table = os.path.join(work, "table.csv")
    run([cardwatch, "features", "--in", jsonl, "--pan-secret-file", secret_file, "--out", table, "--quiet"], expect=1)
    outputs.append(("features table", open(table).read()))

    # Item 8 over HTTP, the secret from the variable; items 10 and 13 over HTTP.
    server = Server(cardwatch, data, {"CARDWATCH_PAN_SECRET": secret.decode()})
    cases = [
        ("/v1/transactions", record("h1", card_number=VALID[0]), 200, ""),
        ("/v1/transactions", record("h2", card_number=INVALID[0]), 422, "check digit"),
        ("/v1/transactions", "[" + record("h3", card_number=forms(VALID[1])[2]) + "," + record("h4", card_number=INVALID[1]) + "]", 200, "check digit"),
        ("/v1/transactions", record("h5", card_number=VALID[2]) + "\n" + record("h6", card_id=VALID[4]), 200, "looks like a card number"),
        ("/transaction", json.dumps({"transaction_id": "g1", "user_id": "u1", "card_number": VALID[3], "amount": 25.0,
                                     "merchant": "Shop", "merchant_category": "electronics", "location": "Online"}), 200, ""),
        ("/transaction", json.dumps({"transaction_id": "g2", "user_id": "u1", "card_number": INVALID[0], "amount": 25.0,
                                     "merchant": "Shop", "location": "Paris"}), 422, "check digit"),
        ("/predict", json.dumps({"transaction_id": "pr1", "user_id": "u2", "card_number": VALID[4], "amount": 9.5,
                                 "merchant_id": "m2"}), 200, ""),
        ("/predict", json.dumps({"transaction_amount": 120.0, "num_txns_last_hour": 4, "user_id": "u2"}), 422,
         "computes the features itself"),
        ("/v1/transactions", record("t1", card_id="c", timestamp="9999-12-31T00:00:00Z"), 422, "--max-event-lead"),
        ("/v1/transactions", record("t2", card_id="c", timestamp="0001-01-01T00:00:00Z"), 422, "--max-event-age"),
        ("/v1/transactions", record(" ", card_id="c"), 422, "blank"),
        ("/v1/transactions", record("t3", card_id="c", amount=5e-324), 422, "smallest unit of USD"),
        ("/v1/transactions", "[" + record("caf\u00e9", card_id="c") + "," + record("cafe\u0301", card_id="c") + "]", 200,
         '"duplicate":true'),
    ]
    for path, body, status, words in cases:
        got, text = server.request("POST", path, body)
        check(f"POST {path} {body[:60]}…: {status} {words}".strip(), got == status and words in text, f"{got} {text[:300]}")
    for path in [f"/alerts/card/{VALID[0]}", f"/alerts/{VALID[0]}"]:
        got, text = server.request("GET", path)
        check(f"GET {path.replace(VALID[0], 'PAN')}: the PAN is not echoed", VALID[0] not in text, text)
    got, text = server.request("GET", "/stats/summary")
    server.stop()
    silver = dict(db.execute("SELECT transaction_id, card_id FROM silver_transactions WHERE transaction_id IN ('h1','g1','pr1')"))
    check("HTTP and the gateway derive the same card ids",
          silver == {"h1": card_id(VALID[0]), "g1": card_id(VALID[3]), "pr1": card_id(VALID[4])}, silver)
    bronze = [r[0] for r in db.execute("SELECT record FROM bronze_transactions WHERE record LIKE '%\"g1\"%'")]
    stored = json.loads(bronze[0]) if bronze else {}
    check("the gateway's location is kept as given in the stored record; Online is the online channel",
          stored.get("location") == "Online" and stored.get("channel") == "online" and "card_number" not in stored, bronze)
    nfc = db.execute("SELECT COUNT(*) FROM silver_transactions WHERE transaction_id IN ('caf\u00e9', 'cafe\u0301')").fetchone()[0]
    check("equivalent Unicode ids in one batch: one transaction", nfc == 1, nfc)

    server = Server(cardwatch, data, {"CARDWATCH_PAN_SECRET": ""})
    got, text = server.request("POST", "/v1/transactions", record("n1", card_number=VALID[0]))
    server.stop()
    check("a server without a secret refuses a card number saying why", got == 422 and "no PAN secret" in text, text)

    # Item 10: the import bounds event times; a historical import lifts the past bound.
    old = os.path.join(work, "old.jsonl")
    open(old, "w").write(record("o1", card_id="c", timestamp="2018-04-01T10:00:00Z") + "\n"
                         + record("o2", card_id="c", timestamp="9999-12-31T00:00:00Z") + "\n")
    p = run([cardwatch, "import", old, "--data-dir", data, "--json", "--quiet"])
    m = json.loads(p.stdout)
    check("import: both event times outside the bounds are dead-lettered, with the option to lift the past bound",
          m["dead_lettered"] == 2 and m["outside_time_bounds"] == 2 and "--max-event-age none" in p.stderr, (m, p.stderr))
    old2 = os.path.join(work, "old2.jsonl")
    shutil.copy(old, old2)
    m = json.loads(run([cardwatch, "import", old2, "--data-dir", data, "--json", "--quiet", "--max-event-age", "none"]).stdout)
    check("import --max-event-age none: the 2018 record is accepted, 9999-12-31 still refused",
          (m["accepted"], m["dead_lettered"]) == (1, 1), m)
    reasons = [r[0] for r in db.execute("SELECT reasons FROM dead_letters WHERE raw LIKE '%9999-12-31%'")]
    check("the dead letter names the bound and the option", reasons and "at most 1 day ahead" in reasons[-1]
          and "--max-event-lead" in reasons[-1], reasons)

    # The search: no PAN anywhere in the data directory (read while this connection keeps the
    # WAL file) or in anything said.
    files = []
    for root, _, names in os.walk(data):
        files += [os.path.join(root, n) for n in names]
    blobs = [(f, open(f, "rb").read()) for f in files] + [(w, t.encode()) for w, t in outputs]
    db.close()
    found = [(where, form) for where, blob in blobs for pan in VALID + INVALID for form in forms(pan)
             if form.encode() in blob]
    kinds = sorted({os.path.basename(f).split(".")[0] for f in files})
    check(f"no PAN in {len(files)} files of the data directory ({', '.join(kinds)}; "
          f"{sum(len(b) for _, b in blobs[:len(files)]):,} bytes) nor in {len(outputs)} outputs", not found, found[:10])

    # Item 11: another source's label taxonomy, and invalid records.
    history = os.path.join(work, "h.jsonl")
    run([cardwatch, "generate", "--days", "30", "--seed", "3", "--quiet", "--out", history])
    names = {"geo_jump": "card_not_present", "velocity_burst": "account_takeover", "high_amount": "stolen_card",
             "card_testing": "bin_attack"}
    lines = []
    for i, line in enumerate(open(history)):
        r = json.loads(line)
        if "fraud_pattern" in r:
            r["fraud_pattern"] = names[r["fraud_pattern"]]
        lines.append(json.dumps(r))
        if i % 33 == 0:
            lines.append(json.dumps({**r, "transaction_id": f"bad{i}", "timestamp": "01/02/2026 10:00"}))
    taxonomy = os.path.join(work, "taxonomy.jsonl")
    open(taxonomy, "w").write("\n".join(lines) + "\n")
    p = run([cardwatch, "train", "--data", taxonomy, "--no-register", "--json"], expect=None)
    check("train refuses a file with 3 % invalid records, saying how many, why, and what to pass",
          p.returncode != 0 and "invalid and skipped" in p.stderr and "timestamp" in p.stderr and "--max-invalid" in p.stderr,
          p.stderr[-800:])
    p = run([cardwatch, "train", "--data", taxonomy, "--no-register", "--json", "--max-invalid", "0.05"])
    m = json.loads(p.stdout)
    check("train --max-invalid 0.05: per-pattern recall names the data's own patterns",
          set(m["per_pattern_recall"]) == set(names.values()), m["per_pattern_recall"])

    # Item 12: a two-day table (seconds in a Time column, as the Kaggle credit-card set) split by a fraction.
    short = os.path.join(work, "two-days.jsonl")
    run([cardwatch, "generate", "--days", "2", "--cards", "2000", "--seed", "4", "--fraud-rate", "0.03", "--quiet", "--out", short])
    features = os.path.join(work, "two-days-table.csv")
    run([cardwatch, "features", "--in", short, "--out", features, "--quiet"])
    kaggle = os.path.join(work, "kaggle.csv")
    with open(features) as src, open(kaggle, "w") as out:
        header = src.readline().rstrip("\n").split(",")
        keep = [i for i, c in enumerate(header) if c not in ("transaction_id", "timestamp", "card_id", "is_fraud", "fraud_pattern")]
        out.write(",".join(["Time"] + [header[i] for i in keep] + ["Class"]) + "\n")
        t0 = None
        for line in src:
            cells = line.rstrip("\n").split(",")
            t = datetime.fromisoformat(cells[1].replace("Z", "+00:00")).timestamp()
            t0 = t if t0 is None else t0
            out.write(",".join([str(int(t - t0))] + [cells[i] for i in keep] + [cells[header.index("is_fraud")]]) + "\n")
    base = [cardwatch, "train", "--table", kaggle, "--label", "Class", "--time-column", "Time", "--test-fraction", "0.2",
            "--no-register", "--json"]
    p = run(base)
    m = json.loads(p.stdout)
    check("train --test-fraction 0.2 on two days: trains, the label delay at most the test window",
          m["train_rows"] > 0 and 0 < m["label_delay_days"] < 0.6, {k: m[k] for k in ("train_rows", "test_rows", "label_delay_days")})
    p = run(base + ["--delay-days", "7"], expect=None)
    check("train --delay-days 7 on two days: the message names the span, the test window, the delay and what to pass",
          p.returncode != 0 and all(w in p.stderr for w in ("the data spans", "the test window is [", "label delay is 7.0 days",
                                                             "--delay-days below", "--test-fraction")), p.stderr[-600:])

    if failures:
        print(f"[data-test] FAILED: {len(failures)} cases; the files are in {work}")
        sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)
    print("[data-test] all cases passed")


if __name__ == "__main__":
    main()

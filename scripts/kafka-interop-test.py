#!/usr/bin/env python3
"""Kafka interop with a third-party client: confluent-kafka (librdkafka's Python binding).

One mock Kafka cluster (`cardwatch kafka mock-cluster`, 3 brokers, 6 partitions), one
`cardwatch run` instance on it deciding into a PostgreSQL database of its own (created
through ADMIN_URL, dropped at the end), and confluent-kafka as the only client of the topics:

1. murmur2: a Producer with partitioner=murmur2_random and idempotence produces ~2,000 schema
   v1 records (key card_id, value the JSON line); every one is decided exactly once, in the
   partition that Kafka's murmur2 (computed here in Python) gives its card;
2. default partitioner: ~100 new records from a Producer with librdkafka's default
   (consistent_random, CRC32); those that land outside their card's murmur2 partition are
   exactly the dead letters (table `dead_letters`, and `transactions.dlq` with `reason`
   headers `card_id: card … belongs to partition …`); the others are decided;
3. alerts: a Consumer of its own group reads the `alerts` topic to its end: its distinct keys
   are the `alerts` table's transaction ids, each payload's transaction_id its key;
4. poison: a record `b'\\xff\\xfe not json'` (key card_poison) is a dead letter, and records
   produced after it (some in its partition) are decided;
5. Avro: records in the Confluent wire format, written by confluent-kafka's AvroSerializer with
   the shipped schema (schemas/transaction-v1.avsc) and with another writer schema (fields in
   another order, one more field, milliseconds), and one produced by kcat from a file, are
   decided with their values; the instance fetched each writer schema once from the registry
   (`--schema-registry`); a record with a schema id the registry does not know is a dead
   letter that says so;
6. the decisions topic (`--decisions-topic`): its distinct keys are every decided transaction;
7. labels: `cardwatch import FILE --labels LABELS --log kafka://… --warehouse …` produces labels
   of the file's transactions and of transactions decided earlier (found in the warehouse) to
   their cards' partitions, and a label of an unknown transaction keyed by its id; an analyst's
   verdict (`POST /v1/transactions/{id}/feedback` on the instance) goes the same way; the
   warehouse's `labels` table shows each applied in its card's partition.

No schema registry server can be installed here (Confluent's is a Java service from Maven, which
this machine does not reach): the script serves the registry's REST subset that both sides use
(`POST /subjects/{subject}/versions`, `GET /schemas/ids/{id}`) from a thread, and counts the
lookups.

The script makes its own virtual environment in WORKDIR/venv with the pinned confluent-kafka
(from PyPI) and runs itself again with that interpreter.

usage: kafka-interop-test.py CARDWATCH WORKDIR ADMIN_URL
"""
import base64
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafkatest  # noqa: E402
from kafkatest import Failed, free_port, murmur2_selftest, stop  # noqa: E402
from kafkatest import wait_until as wait_for  # noqa: E402

CONFLUENT_KAFKA = "confluent-kafka==2.16.2"
CONFLUENT_KAFKA_EXTRA = "confluent-kafka[avro]==2.16.2"  # AvroSerializer: fastavro, the registry client
AVRO_RECORDS = 150        # phase 5, with the shipped schema
FOREIGN_RECORDS = 20      # phase 5, with another writer schema
UNKNOWN_SCHEMA_ID = 999
SHIPPED_AVSC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "schemas", "transaction-v1.avsc")
PARTITIONS = 6
MAIN_RECORDS = 2000       # phase 1
DEFAULT_RECORDS = 100     # phase 2
FOLLOWERS = 20            # phase 4: valid records after the poison record, at least
FOLLOWERS_SAME = 3        # … of which at least this many in the poison record's partition
POLL_S, DEADLINE_S = 0.3, 60.0
POISON_KEY, POISON_VALUE = "card_poison", b"\xff\xfe not json"

if len(sys.argv) != 4:
    sys.exit(__doc__)
CARDWATCH, WORK, ADMIN = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
VENV = os.path.join(WORK, "venv")
VENV_PY = os.path.join(VENV, "bin", "python")
T0 = float(os.environ.get("KINTEROP_T0", time.time()))


def say(msg):
    print(f"[+{time.time() - T0:5.1f}s] {msg}", flush=True)


# ---------------------------------------------------------------- the virtual environment

def in_venv():
    return os.path.realpath(sys.prefix) == os.path.realpath(VENV)


def ensure_venv():
    """Makes WORK/venv with the pinned confluent-kafka (kept when it already has it), then
    runs this script again with its interpreter."""
    os.makedirs(WORK, exist_ok=True)
    want = CONFLUENT_KAFKA.split("==")[1]
    probe = subprocess.run([VENV_PY, "-c", "import fastavro, importlib.metadata as m; print(m.version('confluent-kafka'))"],
                           capture_output=True, text=True) if os.path.exists(VENV_PY) else None
    if probe is None or probe.returncode != 0 or probe.stdout.strip() != want:
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        pip = subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "-q", "--disable-pip-version-check",
                              CONFLUENT_KAFKA_EXTRA], capture_output=True, text=True)
        if pip.returncode != 0:
            print(pip.stdout + pip.stderr)
            print(f"FAIL setup: pip could not install {CONFLUENT_KAFKA} into {VENV}", flush=True)
            sys.exit(1)
        say(f"virtual environment {VENV} made with {CONFLUENT_KAFKA}")
    else:
        say(f"virtual environment {VENV} has {CONFLUENT_KAFKA} already")
    env = dict(os.environ, KINTEROP_T0=str(T0))
    os.execve(VENV_PY, [VENV_PY, os.path.abspath(__file__), *sys.argv[1:]], env)


# ---------------------------------------------------------------- Kafka's murmur2 (kafkatest.py)

def murmur2_partition(key: str, partitions=PARTITIONS) -> int:
    return kafkatest.murmur2_partition(key, partitions)


# ---------------------------------------------------------------- checks, processes, PostgreSQL

results = []
children = []       # every Popen started here: only these are ever signalled
databases = []
instance_log = None


def tail_instance_log(n=30):
    if not instance_log:
        return
    try:
        with open(instance_log, errors="replace") as f:
            lines = [l.rstrip("\n") for l in f if not l.startswith("%")][-n:]
    except OSError as e:
        print(f"    (no instance log: {e})")
        return
    print(f"    --- last {len(lines)} lines of {instance_log} (without librdkafka's % lines) ---")
    for line in lines:
        print("    " + line)
    print("    ---", flush=True)


def check(name, ok, detail):
    results.append((name, bool(ok)))
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
    if not ok:
        tail_instance_log()


def psql(url, sql):
    out = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-F", "\t", url, "-c", sql],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise Failed(f"psql failed ({sql[:80]}…): {out.stderr.strip()}")
    return [line.split("\t") for line in out.stdout.split("\n") if line]


def scalar_or_none(url, sql):
    """The first value of a query, or None while its tables do not exist yet."""
    try:
        rows = psql(url, sql)
    except Failed:
        return None
    return rows[0][0] if rows and rows[0] else None


def wait_until(what, predicate, timeout=DEADLINE_S, alive=None):
    return wait_for(what, predicate, timeout, alive, poll=POLL_S)


def start_mock_cluster():
    err = open(os.path.join(WORK, "mock-cluster.err"), "w")
    proc = subprocess.Popen([CARDWATCH, "kafka", "mock-cluster", "--partitions", str(PARTITIONS)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True, cwd=WORK)
    children.append(proc)
    lines = queue.Queue()

    def read():
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)
    threading.Thread(target=read, daemon=True).start()
    try:
        first = lines.get(timeout=30)
    except queue.Empty:
        raise Failed("the mock cluster printed no bootstrap servers in 30 s")
    if not first:
        raise Failed(f"the mock cluster exited with status {proc.wait()} (see {err.name})")
    say(f"mock Kafka cluster (pid {proc.pid}, {PARTITIONS} partitions) at {first}")
    return proc, first


# ---------------------------------------------------------------- confluent-kafka

producers = []      # closed (destroyed) before the mock cluster stops


def producer(bootstrap, murmur=True):
    from confluent_kafka import Producer
    if murmur:
        conf = {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "enable.idempotence": True}
    else:
        conf = {"bootstrap.servers": bootstrap}  # librdkafka's default: consistent_random (CRC32)
    p = Producer(conf)
    producers.append(p)
    return p


def close_producers():
    """Destroys the producers (their references are dropped) while the cluster is still up."""
    import gc
    for p in producers:
        p.flush(5)
    producers.clear()
    gc.collect()


def produce(p, records):
    """Produces (key, value) pairs in order; returns [(key, partition, offset)] from the delivery reports."""
    delivered, errors = [None] * len(records), []

    def report(i):
        def cb(err, msg):
            if err is not None:
                errors.append(f"{msg.key()!r}: {err}")
            else:
                delivered[i] = (msg.key().decode(), msg.partition(), msg.offset())
        return cb
    for i, (key, value) in enumerate(records):
        while True:
            try:
                p.produce("transactions", key=key.encode(), value=value, on_delivery=report(i))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(30)
    if left or errors or any(d is None for d in delivered):
        raise Failed(f"produce: {left} undelivered after 30 s, {len(errors)} delivery errors "
                     f"{errors[:3]}, {sum(d is None for d in delivered)} without a report")
    return delivered


def read_topic(bootstrap, topic, group, timeout=30.0):
    """Every message of a topic, from its beginning to its end, with a Consumer of its own group."""
    from confluent_kafka import Consumer, KafkaError
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        partitions = len(c.list_topics(topic, timeout=10).topics[topic].partitions)
        c.subscribe([topic])
        messages, at_end = [], set()
        deadline = time.time() + timeout
        while len(at_end) < partitions:
            if time.time() > deadline:
                raise Failed(f"reading {topic}: at the end of {len(at_end)} of {partitions} partitions after {timeout:.0f} s")
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                    continue
                raise Failed(f"reading {topic}: {msg.error()}")
            at_end.discard(msg.partition())
            messages.append(msg)
        return messages
    finally:
        c.close()


# ---------------------------------------------------------------- a schema registry's REST subset

class Registry:
    """Confluent Schema Registry's REST subset: schemas registered under subjects get ids (the
    same text, the same id); `GET /schemas/ids/{id}` answers them, or 404 (error 40403).
    `lookups` counts the GETs per id, to show the instance caches what it fetched."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        self.schemas, self.lookups, self.lock = {}, {}, threading.Lock()
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send(self, code, obj):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                path = self.path.split("?")[0]
                if path.startswith("/schemas/ids/"):
                    try:
                        i = int(path.rsplit("/", 1)[1])
                    except ValueError:
                        return self.send(404, {"error_code": 40403, "message": "Schema not found"})
                    with registry.lock:
                        registry.lookups[i] = registry.lookups.get(i, 0) + 1
                        text = registry.schemas.get(i)
                    if text is None:
                        return self.send(404, {"error_code": 40403, "message": "Schema not found"})
                    return self.send(200, {"schema": text})
                self.send(404, {"error_code": 40401, "message": "Subject not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                if not self.path.startswith("/subjects/") or "/versions" not in self.path:
                    return self.send(404, {"error_code": 404, "message": "not served here"})
                with registry.lock:
                    found = next((i for i, t in registry.schemas.items() if t == body["schema"]), None)
                    if found is None:
                        found = len(registry.schemas) + 1
                        registry.schemas[found] = body["schema"]
                self.send(200, {"id": found})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"


def avro_value(r):
    """A generated JSON record as the Avro serializer takes it (instants as datetimes)."""
    import datetime
    v = {f: r.get(f) for f in ("transaction_id", "card_id", "amount", "merchant_id", "merchant_category", "currency",
                               "latitude", "longitude", "country", "channel", "customer_id", "fraud_pattern")}
    v["timestamp"] = datetime.datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00"))
    v["is_fraud"] = None if r.get("is_fraud") is None else bool(r["is_fraud"])
    return v


def event_micros(r):
    import datetime
    t = datetime.datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00"))
    return (t - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)) // datetime.timedelta(microseconds=1)


# A writer schema of another producer: another name, fields in another order, one schema v1
# does not have, milliseconds for the instant, no optional fields but the channel.
FOREIGN_AVSC = json.dumps({"type": "record", "name": "CardPayment", "namespace": "bank.payments", "fields": [
    {"name": "source_system", "type": "string"},
    {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "merchant_id", "type": "string"},
    {"name": "amount", "type": "double"},
    {"name": "card_id", "type": "string"},
    {"name": "transaction_id", "type": "string"},
    {"name": "channel", "type": ["null", {"type": "enum", "name": "Via", "symbols": ["atm", "pos", "online"]}]}]})


# ---------------------------------------------------------------- the test

def main():
    global instance_log
    import importlib.metadata
    import confluent_kafka
    say(f"kafka-interop-test: {CARDWATCH}; confluent-kafka {importlib.metadata.version('confluent-kafka')} "
        f"(librdkafka {confluent_kafka.libversion()[0]}); work {WORK}")
    for entry in os.listdir(WORK):
        if entry != "venv":
            path = os.path.join(WORK, entry)
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
    bad = murmur2_selftest()
    check("murmur2 in Python matches Kafka's test vectors", not bad, f"6 vectors, {len(bad)} wrong" + (f": {bad}" if bad else ""))

    history = os.path.join(WORK, "history.jsonl")
    gen = subprocess.run([CARDWATCH, "generate", "--days", "5", "--cards", "140", "--seed", "7", "--quiet",
                          "--out", history], capture_output=True, text=True, cwd=WORK)
    if gen.returncode != 0:
        raise Failed(f"cardwatch generate failed with exit status {gen.returncode}: {gen.stderr.strip()[-500:]}")
    with open(history, "rb") as f:
        lines = [l.rstrip(b"\n") for l in f if l.strip()]
    records = [(json.loads(l), l) for l in lines]
    if len(records) < MAIN_RECORDS + DEFAULT_RECORDS + 4 * FOLLOWERS:
        raise Failed(f"the generated history has only {len(records)} records")
    main_part = records[:MAIN_RECORDS]
    default_part = records[MAIN_RECORDS:MAIN_RECORDS + DEFAULT_RECORDS]
    pool = records[MAIN_RECORDS + DEFAULT_RECORDS:]
    all_ids = [r["transaction_id"] for r, _ in records]
    if len(set(all_ids)) != len(all_ids):
        raise Failed("the generated history repeats transaction ids")
    say(f"generated {len(records)} records: {len(main_part)} for murmur2_random, {len(default_part)} for the "
        f"default partitioner, followers of the poison record from the other {len(pool)}")

    mock, bootstrap = start_mock_cluster()
    db = f"kinterop_{os.getpid()}_{random.randrange(10**6)}"
    psql(ADMIN, f"CREATE DATABASE {db}")
    databases.append(db)
    url = ADMIN.rpartition("/")[0] + "/" + db
    say(f"database {db} created")

    registry = Registry()
    say(f"schema registry (the REST subset) at {registry.url}")
    port = free_port()
    instance_log = os.path.join(WORK, "instance.err")
    inst = subprocess.Popen(
        [CARDWATCH, "run", "--log", f"kafka://{bootstrap}", "--warehouse", url, "--data-dir",
         os.path.join(WORK, "data"), "--no-generator", "--port", str(port),
         "--schema-registry", registry.url, "--decisions-topic"],
        stdin=subprocess.DEVNULL, stdout=open(os.path.join(WORK, "instance.out"), "w"),
        stderr=open(instance_log, "w"), cwd=WORK)
    children.append(inst)
    say(f"instance started (pid {inst.pid})")

    def assigned():
        with open(instance_log, errors="replace") as f:
            return any("partitions assigned:" in l for l in f)
    wait_until("the instance's 'partitions assigned'", assigned, alive=inst)
    say("the instance holds its partitions")

    def silver_distinct():
        return int(scalar_or_none(url, "SELECT count(DISTINCT transaction_id) FROM silver_transactions") or 0)

    def dead_letter_count():
        return int(scalar_or_none(url, "SELECT count(*) FROM dead_letters") or 0)

    def silver_rows(ids=None):
        rows = psql(url, 'SELECT transaction_id, card_id, partition, "offset" FROM silver_transactions')
        table = {}
        for tid, card, part, off in rows:
            table.setdefault(tid, []).append((card, int(part), int(off)))
        return table

    # ---- 1. murmur2_random, idempotent
    say(f"== 1. {len(main_part)} records from confluent-kafka with partitioner=murmur2_random, idempotence on")
    p1 = producer(bootstrap, murmur=True)
    started = time.time()
    reports = produce(p1, [(r["card_id"], raw) for r, raw in main_part])
    say(f"produced {len(reports)} records in {time.time() - started:.1f} s")
    off_murmur = [(k, p) for k, p, _ in reports if p != murmur2_partition(k)]
    check("1. murmur2_random puts every card in its murmur2 partition (Python's murmur2)", not off_murmur,
          f"{len(reports) - len(off_murmur)} of {len(reports)} delivered to murmur2(card_id) % {PARTITIONS}"
          + (f"; e.g. {off_murmur[:3]}" if off_murmur else ""))
    main_ids = {r["transaction_id"] for r, _ in main_part}
    try:
        wait_until(f"{len(main_ids)} decisions", lambda: silver_distinct() >= len(main_ids), alive=inst)
    except Failed as e:
        say(str(e))
    took = time.time() - started
    table = silver_rows()
    rows = sum(len(v) for v in table.values())
    missing = main_ids - set(table)
    dups = [t for t, v in table.items() if len(v) > 1]
    check("1. every record decided exactly once", not missing and not dups and rows == len(main_ids) == len(table),
          f"{len(main_ids)} produced; silver_transactions: {rows} rows, {len(table)} distinct transaction ids; "
          f"{len(missing)} missing, {len(dups)} duplicated ({took:.1f} s after the first produce)"
          + (f"; missing e.g. {sorted(missing)[:3]}" if missing else "") + (f"; duplicated e.g. {dups[:3]}" if dups else ""))
    by_card = {r["transaction_id"]: r["card_id"] for r, _ in records}
    wrong = [(t, v[0][1]) for t, v in table.items() if t in main_ids and v[0][1] != murmur2_partition(by_card[t])]
    check("1. decided in the murmur2 partition of their card", not wrong and table,
          f"{len(table) - len(wrong)} of {len(table)} silver rows have partition = murmur2(card_id) % {PARTITIONS}"
          + (f"; e.g. {wrong[:3]}" if wrong else ""))

    # ---- 2. the default partitioner (consistent_random)
    say(f"== 2. {len(default_part)} new records from confluent-kafka with its default partitioner (consistent_random)")
    base_dl = dead_letter_count()
    p2 = producer(bootstrap, murmur=False)
    reports2 = produce(p2, [(r["card_id"], raw) for r, raw in default_part])
    p2.flush(10)
    placed, misplaced = {}, {}
    for (r, _), (key, part, off) in zip(default_part, reports2):
        home = murmur2_partition(key)
        (placed if part == home else misplaced)[r["transaction_id"]] = (key, part, off, home)
    say(f"delivered: {len(misplaced)} outside their card's murmur2 partition, {len(placed)} in it")
    if not misplaced or not placed:
        say("NOTE: the default partitioner placed all of them one way; the check below is weaker")

    def dead_letters():
        out = []
        for source, line, reasons, raw, raw64 in psql(url, "SELECT source, line, reasons::text, raw, raw_base64 FROM dead_letters"):
            out.append((source, int(line) if line else None, reasons, raw, raw64))
        return out
    try:
        wait_until("the default-partitioner records' decisions and dead letters",
                   lambda: silver_distinct() >= len(main_ids) + len(placed)
                   and dead_letter_count() >= base_dl + len(misplaced), alive=inst)
    except Failed as e:
        say(str(e))
    table = silver_rows()
    dl_ids, dl_sources = {}, {}
    for source, line, reasons, raw, _ in dead_letters():
        try:
            tid = json.loads(raw)["transaction_id"] if raw else None
        except (ValueError, KeyError, TypeError):
            tid = None
        if tid in placed or tid in misplaced:
            dl_ids[tid] = reasons
            dl_sources[tid] = (source, line)
    belongs = {t for t, reasons in dl_ids.items() if "belongs to partition" in reasons}
    other = set(dl_ids) - belongs
    check("2. exactly the misplaced records are dead letters ('belongs to partition')",
          belongs == set(misplaced) and not other,
          f"{len(misplaced)} misplaced by consistent_random; dead_letters: {len(belongs)} of this batch with "
          f"'belongs to partition', {len(set(misplaced) - belongs)} misplaced without one, "
          f"{len(belongs - set(misplaced))} correctly placed among them, {len(other)} with other reasons"
          + (f"; e.g. {sorted(set(misplaced) ^ belongs)[:3]}" if belongs != set(misplaced) else ""))
    where_ok = [t for t in belongs if dl_sources[t] == (f"log:transactions[{misplaced[t][1]}]", misplaced[t][2])]
    example = next(iter(sorted(belongs)), None)
    check("2. each dead letter names where the record was (source, line = offset)", len(where_ok) == len(belongs),
          f"{len(where_ok)} of {len(belongs)} match the delivery report"
          + (f"; e.g. {example}: {dl_sources[example]}, reasons {dl_ids[example][:160]}…" if example else ""))
    placed_rows = {t: table.get(t, []) for t in placed}
    placed_once = [t for t, v in placed_rows.items() if len(v) == 1 and v[0][1] == placed[t][1]]
    leaked = [t for t in misplaced if t in table]
    check("2. the correctly placed records are decided, the misplaced ones not",
          len(placed_once) == len(placed) and not leaked,
          f"{len(placed_once)} of {len(placed)} correctly placed decided once in their partition; "
          f"{len(leaked)} of {len(misplaced)} misplaced in silver" + (f"; e.g. {leaked[:3]}" if leaked else ""))
    dlq = read_topic(bootstrap, "transactions.dlq", f"kinterop-dlq-{os.getpid()}")
    seen = {}
    for msg in dlq:
        try:
            payload = json.loads(msg.value())
            tid = json.loads(payload["raw"])["transaction_id"] if payload.get("raw") else None
        except (ValueError, KeyError, TypeError):
            continue
        if tid in misplaced:
            headers = [(k, v.decode(errors="replace")) for k, v in (msg.headers() or [])]
            seen.setdefault(tid, []).append((msg.key().decode(errors="replace") if msg.key() else None, headers))
    good = set()
    for t, (card, part, _off, home) in misplaced.items():
        for key, headers in seen.get(t, []):
            reasons = [v for k, v in headers if k == "reason"]
            sources = [v for k, v in headers if k == "source"]
            if (key == f"log:transactions[{part}]" and sources == [key]
                    and any(v.startswith(f"card_id: card {card} belongs to partition {home}") for v in reasons)):
                good.add(t)
    extra = set(seen) - set(misplaced)
    sample = next((h for t in sorted(good) for _, h in seen[t]), None)
    check("2. transactions.dlq carries them with 'reason' headers 'card_id: card … belongs to partition'",
          good == set(misplaced) and not extra,
          f"{len(dlq)} messages in transactions.dlq; {len(good)} of {len(misplaced)} misplaced records with the key "
          f"and headers expected" + (f"; e.g. headers {sample}" if sample else ""))

    # ---- 4. a poison record, then valid ones after it
    say("== 4. a poison record from confluent-kafka, then valid records after it")
    poison_part = murmur2_partition(POISON_KEY)
    followers, same = [], 0
    for r, raw in pool:
        if len(followers) >= FOLLOWERS and same >= FOLLOWERS_SAME:
            break
        followers.append((r, raw))
        same += murmur2_partition(r["card_id"]) == poison_part
    (_, ppart, poff), = produce(p1, [(POISON_KEY, POISON_VALUE)])
    reports4 = produce(p1, [(r["card_id"], raw) for r, raw in followers])
    after = [(k, p, o) for k, p, o in reports4 if p == ppart and o > poff]
    say(f"poison record at partition {ppart} offset {poff}; {len(reports4)} records after it, {len(after)} of them "
        f"in its partition")
    follower_ids = {r["transaction_id"] for r, _ in followers}
    poison64 = base64.b64encode(POISON_VALUE).decode()
    poison_sql = f"SELECT source, line, reasons::text FROM dead_letters WHERE raw_base64 = '{poison64}'"
    try:
        wait_until("the poison record's dead letter and its followers' decisions",
                   lambda: scalar_or_none(url, poison_sql) is not None
                   and silver_distinct() >= len(main_ids) + len(placed) + len(follower_ids), alive=inst)
    except Failed as e:
        say(str(e))
    dead = psql(url, poison_sql)
    check("4. the poison record is a dead letter", len(dead) == 1 and dead[0][:2] == [f"log:transactions[{ppart}]", str(poff)],
          f"{len(dead)} dead letters with raw_base64 {poison64}"
          + (f": source {dead[0][0]}, line {dead[0][1]}, reasons {dead[0][2][:160]}" if dead else ""))
    table = silver_rows()
    decided_f = [t for t in follower_ids if len(table.get(t, [])) == 1]
    after_poison = psql(url, f'SELECT count(*) FROM silver_transactions WHERE partition = {ppart} AND "offset" > {poff}')
    n_after = int(after_poison[0][0])
    check("4. records produced after the poison record are decided", len(decided_f) == len(follower_ids)
          and n_after == len(after) and after,
          f"{len(decided_f)} of {len(follower_ids)} decided once; in the poison record's partition {ppart}: "
          f"{n_after} of {len(after)} decided after offset {poff}; instance "
          f"{'running' if inst.poll() is None else f'exited with status {inst.returncode}'}")

    # ---- 5. Avro in the Confluent wire format
    say("== 5. Avro records: confluent-kafka's AvroSerializer (the shipped schema and another writer's), kcat, "
        "an unknown schema id")
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    client = SchemaRegistryClient({"url": registry.url})
    with open(SHIPPED_AVSC) as f:
        shipped = AvroSerializer(client, f.read())
    foreign = AvroSerializer(client, FOREIGN_AVSC, conf={"subject.name.strategy": lambda ctx, name: "payments-value"})
    context = SerializationContext("transactions", MessageField.VALUE)
    used = {r["transaction_id"] for r, _ in followers}
    rest = [(r, raw) for r, raw in pool if r["transaction_id"] not in used]
    avro_part, rest = rest[:AVRO_RECORDS], rest[AVRO_RECORDS:]
    foreign_part, rest = rest[:FOREIGN_RECORDS], rest[FOREIGN_RECORDS:]
    (kcat_record, _), unknown_record = rest[0], rest[1][0]
    if len(foreign_part) < FOREIGN_RECORDS or len(rest) < 2:
        raise Failed(f"the generated history has too few records left for phase 5 ({len(rest)})")
    values = [(r["card_id"], shipped(avro_value(r), context)) for r, _ in avro_part]
    for r, _ in foreign_part:
        v = avro_value(r)
        v = {"source_system": "acquirer-7", "timestamp": v["timestamp"], "merchant_id": v["merchant_id"],
             "amount": v["amount"], "card_id": v["card_id"], "transaction_id": v["transaction_id"], "channel": v["channel"]}
        values.append((r["card_id"], foreign(v, context)))
    shipped_id = int.from_bytes(values[0][1][1:5], "big")
    foreign_id = int.from_bytes(values[-1][1][1:5], "big")
    unknown_value = shipped(avro_value(unknown_record), context)
    unknown_value = unknown_value[:1] + UNKNOWN_SCHEMA_ID.to_bytes(4, "big") + unknown_value[5:]
    values.append((unknown_record["card_id"], unknown_value))
    produce(p1, values)
    kcat_file = os.path.join(WORK, "kcat-avro.bin")
    with open(kcat_file, "wb") as f:
        f.write(shipped(avro_value(kcat_record), context))
    kcat = subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", "transactions", "-p",
                           str(murmur2_partition(kcat_record["card_id"])), "-k", kcat_record["card_id"], kcat_file],
                          capture_output=True, text=True, timeout=60)
    if kcat.returncode != 0:
        raise Failed(f"kcat -P failed with status {kcat.returncode}: {kcat.stderr.strip()[-300:]}")
    say(f"produced {len(avro_part)} records with schema id {shipped_id} (shipped), {len(foreign_part)} with schema id "
        f"{foreign_id} (another writer), 1 with the unknown schema id {UNKNOWN_SCHEMA_ID}; kcat produced 1 from a file")
    avro_records = {r["transaction_id"]: r for r, _ in avro_part + foreign_part + [(kcat_record, None)]}
    unknown_sql = (f"SELECT source, reasons::text FROM dead_letters WHERE reasons::text LIKE "
                   f"'%schema id {UNKNOWN_SCHEMA_ID} is not in the registry%'")
    try:
        wait_until("the Avro records' decisions and the unknown schema id's dead letter",
                   lambda: silver_distinct() >= len(main_ids) + len(placed) + len(follower_ids) + len(avro_records)
                   and scalar_or_none(url, unknown_sql) is not None, alive=inst)
    except Failed as e:
        say(str(e))
    rows = psql(url, 'SELECT transaction_id, card_id, merchant_id, event_time, channel, currency FROM silver_transactions')
    decided = {}
    for tid, card, merchant, event_time, channel, currency in rows:
        if tid in avro_records:
            decided.setdefault(tid, []).append((card, merchant, int(event_time), channel or None, currency))

    def expected(r, foreign_writer):
        micros = event_micros(r)
        return (r["card_id"], r["merchant_id"], micros // 1000 * 1000 if foreign_writer else micros,
                r.get("channel"), "USD" if foreign_writer else r.get("currency", "USD"))
    foreign_ids = {r["transaction_id"] for r, _ in foreign_part}
    wrong = [t for t, r in avro_records.items()
             if decided.get(t) != [expected(r, t in foreign_ids)]]
    check("5. Avro records (AvroSerializer with the shipped schema and another writer's, kcat) decided once with "
          "their values", not wrong,
          f"{len(avro_records) - len(wrong)} of {len(avro_records)} decided once with their card, merchant, instant, "
          f"channel and currency" + (f"; e.g. {wrong[0]}: {decided.get(wrong[0])} vs "
                                     f"{expected(avro_records[wrong[0]], wrong[0] in foreign_ids)}" if wrong else ""))
    kcat_ok = len(decided.get(kcat_record["transaction_id"], [])) == 1
    check("5. kcat's Avro record (from a file) is decided", kcat_ok,
          f"{kcat_record['transaction_id']}: {decided.get(kcat_record['transaction_id'])}")
    unknown = psql(url, unknown_sql)
    check(f"5. a record with the unknown schema id {UNKNOWN_SCHEMA_ID} is a dead letter that says so", len(unknown) == 1,
          f"{len(unknown)} dead letters" + (f": {unknown[0][0]}, {unknown[0][1][:200]}" if unknown else ""))
    with registry.lock:
        lookups = dict(registry.lookups)
    check("5. the instance fetched each writer schema once", lookups.get(shipped_id) == 1 and lookups.get(foreign_id) == 1
          and lookups.get(UNKNOWN_SCHEMA_ID) == 1, f"GET /schemas/ids/N per id: {lookups}")

    # ---- 3. the alerts topic against the alerts table (after everything above)
    say("== 3. a confluent-kafka Consumer of its own group reads the alerts topic to its end")
    expected_total = len(main_ids) + len(placed) + len(follower_ids) + len(avro_records)
    rows = psql(url, "SELECT count(*), count(DISTINCT transaction_id) FROM silver_transactions")[0]
    check("exactly once over the whole run", int(rows[0]) == int(rows[1]) == expected_total,
          f"silver_transactions: {rows[0]} rows, {rows[1]} distinct; expected {expected_total} "
          f"({len(main_ids)} + {len(placed)} + {len(follower_ids)} + {len(avro_records)})")
    deadline, attempt = time.time() + 30, 0
    while True:
        attempt += 1
        table_ids = {r[0] for r in psql(url, "SELECT transaction_id FROM alerts")}
        messages = read_topic(bootstrap, "alerts", f"kinterop-alerts-{os.getpid()}-{attempt}")
        keys = [m.key().decode(errors="replace") if m.key() is not None else None for m in messages]
        if set(keys) == table_ids or time.time() > deadline:
            break
        time.sleep(POLL_S)
    bad_payload = []
    for m, key in zip(messages, keys):
        try:
            if json.loads(m.value())["transaction_id"] != key:
                bad_payload.append(key)
        except (ValueError, KeyError, TypeError):
            bad_payload.append(key)
    distinct = set(keys)
    only_topic, only_table = sorted(distinct - table_ids, key=str), sorted(table_ids - distinct)
    check("3. the alerts topic's distinct keys equal the alerts table's transaction ids",
          distinct == table_ids and table_ids,
          f"{len(messages)} messages, {len(distinct)} distinct keys; {len(table_ids)} rows in alerts; "
          f"{len(only_topic)} only in the topic, {len(only_table)} only in the table"
          + (f"; e.g. {only_topic[:3]} / {only_table[:3]}" if only_topic or only_table else ""))
    check("3. every alert's JSON payload has transaction_id = its key", not bad_payload and messages,
          f"{len(messages) - len(bad_payload)} of {len(messages)}" + (f"; e.g. {bad_payload[:3]}" if bad_payload else ""))


    # ---- 6. the decisions topic
    silver_ids = {r[0] for r in psql(url, "SELECT transaction_id FROM silver_transactions")}
    decisions = read_topic(bootstrap, "decisions", f"kinterop-decisions-{os.getpid()}")
    keys = {m.key().decode(errors="replace") for m in decisions if m.key() is not None}
    check("6. the decisions topic's distinct keys are every decided transaction", keys == silver_ids and keys,
          f"{len(decisions)} messages, {len(keys)} distinct keys; {len(silver_ids)} decided; "
          f"{len(keys - silver_ids)} only in the topic, {len(silver_ids - keys)} only decided")

    # ---- 7. labels through an import and through an analyst's verdict
    say("== 7. labels: cardwatch import --labels to Kafka, and an analyst's verdict on the instance")
    import urllib.request
    labelled_new = rest[2:32]
    tx_file, labels_file = os.path.join(WORK, "labelled.jsonl"), os.path.join(WORK, "labels.jsonl")
    with open(tx_file, "wb") as f:
        for _, raw in labelled_new:
            f.write(raw + b"\n")
    earlier = [r for r, _ in main_part[:5]]
    unknown_id = "tx_never_seen"
    label_ids = [r["transaction_id"] for r, _ in labelled_new[:10]] + [r["transaction_id"] for r in earlier] + [unknown_id]
    with open(labels_file, "w") as f:
        for i, tid in enumerate(label_ids):
            f.write(json.dumps({"transaction_id": tid, "is_fraud": i % 2 == 0, "reported_at": "2026-12-01T00:00:00Z"}) + "\n")
    imp = subprocess.run([CARDWATCH, "import", tx_file, "--labels", labels_file, "--log", f"kafka://{bootstrap}",
                          "--warehouse", url, "--max-event-age", "none", "--json", "--quiet"], capture_output=True, text=True, cwd=WORK, timeout=120)
    summary = json.loads(imp.stdout or "{}") if imp.returncode == 0 else {}
    check("7. import --labels to Kafka produces the file and its labels", imp.returncode == 0
          and summary.get("produced") == len(labelled_new) and summary.get("labels") == len(label_ids),
          f"exit status {imp.returncode}; {summary or imp.stderr.strip()[-300:]}")
    verdict_on = next((r[0] for r in psql(url, "SELECT transaction_id FROM alerts ORDER BY transaction_id LIMIT 1")), None)
    status = None
    if verdict_on:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/transactions/{verdict_on}/feedback",
                                         data=json.dumps({"label": "fraud", "analyst": "kinterop"}).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status = answer.status
        except urllib.error.HTTPError as e:
            status = f"{e.code} {e.read()[:200]!r}"
    expect_ids = set(label_ids) | ({verdict_on} if verdict_on else set())
    cards = {r["transaction_id"]: r["card_id"] for r, _ in records}

    def label_rows():
        rows = psql(url, 'SELECT transaction_id, matched, "partition" FROM labels')
        return {t: (int(m), int(p) if p else None) for t, m, p in rows if t in expect_ids}
    try:
        wait_until("the labels in the warehouse", lambda: len(label_rows()) >= len(expect_ids), alive=inst)
    except Failed as e:
        say(str(e))
    got = label_rows()
    wrong = [t for t in expect_ids - {unknown_id}
             if got.get(t, (None, None)) != (1, murmur2_partition(cards[t]))]
    check("7. labels of the file's and of earlier transactions, and the verdict, applied in their card's partition",
          not wrong and status == 200,
          f"{len(expect_ids) - 1 - len(wrong)} of {len(expect_ids) - 1} matched in murmur2(card_id) % {PARTITIONS}; "
          f"verdict on {verdict_on}: {status}" + (f"; e.g. {wrong[:3]}: {[got.get(t) for t in wrong[:3]]}" if wrong else ""))
    check("7. a label of an unknown transaction is kept, unmatched, in its id's partition",
          got.get(unknown_id) == (0, murmur2_partition(unknown_id)), f"{unknown_id}: {got.get(unknown_id)}")

    alive = inst.poll() is None
    clean = stop(inst)
    check("the instance ran to the end and stops on SIGTERM", alive and clean and inst.returncode == 0,
          f"{'running' if alive else 'had exited'} at the end; "
          f"{'stopped' if clean else 'SIGKILLed 10 s after SIGTERM'}, exit status {inst.returncode}")
    del p1, p2
    close_producers()
    stop(mock)


def run():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the cleanup below runs on SIGTERM too
    status = 1
    try:
        main()
        failed = [n for n, ok in results if not ok]
        print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed", flush=True)
        status = 1 if failed or not results else 0
    except Failed as e:
        print(f"FAIL setup: {e}", flush=True)
        tail_instance_log()
    except Exception as e:  # noqa: BLE001 — a crash of the script is a failure too, with the log
        print(f"FAIL script: {type(e).__name__}: {e}", flush=True)
        tail_instance_log()
        raise
    finally:
        try:
            close_producers()
        except Exception as e:  # noqa: BLE001
            print(f"(could not close the producers: {e})", flush=True)
        for p in children:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        for p in children:
            try:
                p.wait(timeout=max(0.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for db in databases:
            try:
                psql(ADMIN, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
                say(f"database {db} dropped")
            except Failed as e:
                print(f"(could not drop {db}: {e})", flush=True)
        say(f"done in {time.time() - T0:.0f} s")
    sys.exit(status)


if __name__ == "__main__":
    if not in_venv():
        ensure_venv()
    run()

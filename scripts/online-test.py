#!/usr/bin/env python3
"""Issue 19's deployment on loopback: two processors (`cardwatch run --log kafka://…`) and one
API node (`cardwatch serve`) on librdkafka's mock cluster, one PostgreSQL warehouse and one
Redis online store.

1. The API node's dashboard (headless Chromium) shows live alerts of cards in both processors'
   partitions.
2. Each card's profile is in Redis as documented (a hash of the features, `_ts`, a TTL); a
   Redis consumer of `cw:alerts` (a plain RESP client here) sees every alert of the warehouse.
3. `/predict?mode=online` on the API node scores from a profile (`features: "online"`).
4. A model promoted through the API node (`POST /models/V/promote?force=true`) decides on both
   processors.
5. Redis shut down (`shutdown nosave`) mid-run: `/predict?mode=online` keeps answering with
   `features: "fallback"`, the breaker opens; the processors keep deciding; Redis back: the
   breaker closes, and the alerts decided meanwhile reach the stream too.

Runs under the python of .venv-http (selenium, installed by scripts/http-tests.sh).
usage: online-test.py CARDWATCH_BIN WORKDIR POSTGRES_ADMIN_URL
"""
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafkatest import Failed, assigned, free_port, murmur2_partition, stop, wait_until  # noqa: E402

BIN, WORK, ADMIN = sys.argv[1], sys.argv[2], sys.argv[3]
SCRIPTS = os.path.dirname(os.path.abspath(__file__))
os.makedirs(WORK, exist_ok=True)
PARTITIONS = 4
checks = []


def log(msg):
    print(f"[online-test {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def passed(msg):
    checks.append(msg)
    log(f"PASS: {msg}")


def psql(url, sql):
    return subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


def http(method, url, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""


class Redis:
    """Just enough RESP2 for the test: one connection, commands answered in order."""

    def __init__(self, port, timeout=3.0):
        self.port, self.timeout, self.sock, self.file = port, timeout, None, None

    def command(self, *args):
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
            self.file = self.sock.makefile("rb")
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        self.sock.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
        return self.reply()

    def reply(self):
        line = self.file.readline()
        if not line:
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.file.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RuntimeError(f"unknown reply {line!r}")

    def close(self):
        if self.sock:
            self.sock.close()
        self.sock = self.file = None


class AlertConsumer(threading.Thread):
    """A consumer of the `cw:alerts` stream that prefers Redis to Kafka: XREAD BLOCK from where it
    was; after a reconnect (Redis restarted empty) from the stream's start. Dedupes by id."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.redis, self.seen, self.done, self.reconnects = Redis(port), set(), threading.Event(), 0

    def run(self):
        last = b"0-0"
        while not self.done.is_set():
            try:
                reply = self.redis.command("XREAD", "BLOCK", 500, "COUNT", 1000, "STREAMS", "cw:alerts", last)
                for _, entries in reply or []:
                    for entry_id, fields in entries:
                        last = entry_id
                        pairs = dict(zip(fields[::2], fields[1::2]))
                        self.seen.add(pairs[b"transaction_id"].decode())
            except (OSError, ConnectionError):
                self.redis.close()
                self.reconnects += 1
                last = b"0-0"
                time.sleep(0.2)


def tail(path, n=30):
    with open(path, errors="replace") as f:
        return "".join([line for line in f.readlines() if not line.startswith("%")][-n:])


def metric(port, name):
    text = http("GET", f"http://127.0.0.1:{port}/metrics")[1].decode()
    m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else None


def predict(port, card, tid, amount=80.0):
    status, body = http("POST", f"http://127.0.0.1:{port}/predict?mode=online",
                        {"transaction_id": tid, "user_id": card, "amount": amount, "merchant_id": "mer_000001"})
    if status != 200:
        raise Failed(f"/predict?mode=online answered {status}: {body[:300]!r}")
    return json.loads(body)


def main():
    db = f"online_{random.randrange(1 << 30)}"
    warehouse = f"{ADMIN.rsplit('/', 1)[0]}/{db}"
    redis_port = free_port()
    redis_dir = subprocess.run([os.path.join(SCRIPTS, "redis.sh"), "start", str(redis_port)], check=True,
                               capture_output=True, text=True).stdout.strip()
    online = f"redis://127.0.0.1:{redis_port}"
    procs, logs, cluster, consumer, driver = [], [], None, None, None
    psql(ADMIN, f"CREATE DATABASE {db}")
    try:
        cluster = subprocess.Popen([BIN, "kafka", "mock-cluster", "--partitions", str(PARTITIONS)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        bootstrap = cluster.stdout.readline().strip()
        log(f"mock cluster {bootstrap}, warehouse {warehouse}, online store {online}")
        ports = [free_port() for _ in range(3)]
        for i in range(2):
            path = os.path.join(WORK, f"processor{i}.err")
            logs.append(path)
            procs.append(subprocess.Popen(
                [BIN, "run", "--log", f"kafka://{bootstrap}", "--warehouse", warehouse, "--data-dir",
                 os.path.join(WORK, f"d{i}"), "--port", str(ports[i]), "--no-generator", "--session-timeout", "6",
                 "--online-store", online], stdout=subprocess.DEVNULL, stderr=open(path, "w")))
            if i == 0:  # the first bootstraps the model into the shared registry
                wait_until("the first processor answers",
                           lambda: http("GET", f"http://127.0.0.1:{ports[0]}/pipeline/health")[0] == 200, 240, procs[0])
        api_log = os.path.join(WORK, "api.err")
        logs.append(api_log)
        api = ports[2]
        procs.append(subprocess.Popen(
            [BIN, "serve", "--log", f"kafka://{bootstrap}", "--warehouse", warehouse, "--data-dir",
             os.path.join(WORK, "api"), "--port", str(api), "--online-store", online],
            stdout=subprocess.DEVNULL, stderr=open(api_log, "w")))
        wait_until("the API node answers", lambda: http("GET", f"http://127.0.0.1:{api}/models")[0] == 200, 120,
                   procs[2])

        def split():
            a, b = assigned(logs[0]), assigned(logs[1])
            return a and b and sorted(a + b) == list(range(PARTITIONS))
        wait_until("the two processors share the partitions", split, 90)
        owned = [assigned(logs[0]), assigned(logs[1])]
        if assigned(api_log):
            raise Failed(f"the API node took partitions: {assigned(api_log)}")
        log(f"partitions: processor 0 {owned[0]}, processor 1 {owned[1]}; the API node none")

        consumer = AlertConsumer(redis_port)
        consumer.start()

        # The dashboard on the API node, open before the data comes: its rows arrive live.
        from selenium import webdriver
        from selenium.webdriver.common.by import By
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,900"):
            options.add_argument(arg)
        driver = webdriver.Chrome(options=options,
                                  service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"))
        driver.get(f"http://127.0.0.1:{api}/")
        wait_until("the dashboard's feed is live", lambda: driver.find_element(By.ID, "feed").text == "feed: live", 30)

        history = os.path.join(WORK, "history.jsonl")
        subprocess.run([BIN, "generate", "--days", "3", "--cards", "300", "--seed", "21", "--quiet", "--out", history],
                       check=True)
        lines = sum(1 for _ in open(history))
        subprocess.run([BIN, "import", history, "--log", f"kafka://{bootstrap}", "--max-event-age", "none", "--quiet"],
                       check=True)

        def decided():
            return int(psql(warehouse, "SELECT count(*) FROM silver_transactions"))
        wait_until(f"{lines} transactions decided", lambda: decided() >= lines, 180, procs[0])
        alerts = set(psql(warehouse, "SELECT transaction_id FROM alerts").split())
        log(f"{lines} transactions decided, {len(alerts)} alerts")

        def live_cards():
            rows = driver.find_elements(By.CSS_SELECTOR, "#alerts tr[data-live='1']")
            return [r.find_elements(By.TAG_NAME, "td")[3].text for r in rows]
        wait_until("live rows on the API node's dashboard", lambda: len(live_cards()) >= 10, 30)
        cards = live_cards()
        by = [sum(1 for c in cards if murmur2_partition(c, PARTITIONS) in owned[i]) for i in range(2)]
        driver.save_screenshot(os.path.join(WORK, "api-dashboard.png"))
        if min(by) == 0:
            raise Failed(f"the dashboard's live alerts must come from both processors: {by} ({cards[:10]}…)")
        passed(f"the API node's dashboard shows {len(cards)} live alerts: {by[0]} from processor 0's partitions, "
               f"{by[1]} from processor 1's")

        r = Redis(redis_port)
        card = psql(warehouse, "SELECT card_id FROM silver_transactions ORDER BY event_time DESC LIMIT 1")
        profile = r.command("HGETALL", f"cw:card:{card}")
        fields = dict(zip([k.decode() for k in profile[::2]], [v.decode() for v in profile[1::2]]))
        ttl = r.command("TTL", f"cw:card:{card}")
        if "tx_count_1hr" not in fields or "_ts" not in fields or not 86_000 < ttl <= 86_400:
            raise Failed(f"cw:card:{card} is not the documented profile: {fields} (TTL {ttl})")
        passed(f"cw:card:{card} holds the {len([k for k in fields if not k.startswith('_')])} features, _ts and "
               f"a TTL of {ttl} s")
        wait_until("the cw:alerts consumer has every alert", lambda: consumer.seen >= alerts, 20)
        if consumer.seen - alerts:
            raise Failed(f"cw:alerts has alerts the warehouse lacks: {sorted(consumer.seen - alerts)[:5]}")
        passed(f"a Redis consumer of cw:alerts saw each of the {len(alerts)} alerts")

        answer = predict(api, card, "online-1")
        if answer.get("features") != "online":
            raise Failed(f"/predict?mode=online for a decided card must use its profile: {answer}")
        passed(f"/predict?mode=online on the API node scored {card} from its profile "
               f"({answer['latency_ms']} ms, {answer['risk_tier']})")

        # A promotion through the API node reaches both processors.
        training = os.path.join(WORK, "training.jsonl")  # enough days for the label delay and a test window
        subprocess.run([BIN, "generate", "--days", "20", "--cards", "300", "--seed", "9", "--quiet", "--out", training],
                       check=True)
        trained = subprocess.run([BIN, "train", "--data", training, "--no-tuning", "--trees", "20", "--registry",
                                  warehouse, "--data-dir", os.path.join(WORK, "trainer"), "--json"],
                                 check=True, capture_output=True, text=True).stdout
        version = json.loads(trained)["model_version"]
        status, body = http("POST", f"http://127.0.0.1:{api}/models/{version}/promote?force=true")
        if status != 200 or not json.loads(body).get("promoted"):
            raise Failed(f"promoting v{version} through the API node: {status} {body[:300]!r}")
        began = time.time()
        by_owner = {0: None, 1: None}
        n = 0
        while time.time() - began < 20 and None in by_owner.values():
            n += 1
            c = f"card_promo_{n:04d}"
            owner = 0 if murmur2_partition(c, PARTITIONS) in owned[0] else 1
            if by_owner[owner] is not None:
                continue
            status, body = http("POST", f"http://127.0.0.1:{api}/v1/transactions",
                                {"transaction_id": f"promo-{n}", "card_id": c, "merchant_id": "mer_000001",
                                 "amount": 12.5, "currency": "USD",
                                 "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            if status == 200 and json.loads(body).get("model_version") == version:
                by_owner[owner] = round(time.time() - began, 2)
            elif status == 200:
                time.sleep(0.2)
        if None in by_owner.values():
            raise Failed(f"v{version}, promoted through the API node, did not decide on both processors: {by_owner}")
        passed(f"v{version} promoted through the API node decides on processor 0 after {by_owner[0]} s and on "
               f"processor 1 after {by_owner[1]} s")

        # Redis away: the API keeps answering with the fallback, the breaker opens; the stream goes on.
        subprocess.run(["redis-cli", "-p", str(redis_port), "shutdown", "nosave"], capture_output=True)
        r.close()
        answers = [predict(api, card, f"down-{i}")["features"] for i in range(8)]
        if set(answers) != {"fallback"}:
            raise Failed(f"with Redis down every online answer must be the fallback: {answers}")
        if metric(api, "cardwatch_online_store_breaker_open") != 1.0:
            raise Failed("the breaker must be open after repeated failures")
        more = os.path.join(WORK, "more.jsonl")
        subprocess.run([BIN, "generate", "--days", "1", "--cards", "300", "--seed", "22", "--quiet", "--out", more],
                       check=True)
        before = decided()
        subprocess.run([BIN, "import", more, "--log", f"kafka://{bootstrap}", "--max-event-age", "none", "--quiet"],
                       check=True)
        added = sum(1 for _ in open(more))
        wait_until("the processors decide while Redis is away", lambda: decided() >= before + added, 120, procs[0])
        passed(f"Redis down: {len(answers)} online answers with features 'fallback', the breaker open, "
               f"{added} more transactions decided")
        subprocess.run(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                        "no", "--daemonize", "yes", "--dir", redis_dir, "--logfile", os.path.join(redis_dir, "redis.log")],
                       check=True, capture_output=True)
        wait_until("the breaker closes", lambda: predict(api, card, f"up-{time.time()}")["features"] != "fallback"
                   and metric(api, "cardwatch_online_store_breaker_open") == 0.0, 20)
        alerts = set(psql(warehouse, "SELECT transaction_id FROM alerts").split())
        wait_until("the alerts decided while Redis was away reach cw:alerts", lambda: consumer.seen >= alerts, 30)
        passed(f"Redis back: the breaker closed; the consumer saw all {len(alerts)} alerts, those decided during "
               f"the outage included ({consumer.reconnects} reconnects)")

        for p in procs:
            if not stop(p, 30):
                raise Failed("a process did not stop within 30 s of SIGTERM")
        passed("the processors and the API node stopped on SIGTERM")
    except Failed as e:
        for path in logs:
            print(f"--- {path}\n{tail(path)}")
        print(f"FAIL: {e}")
        sys.exit(1)
    finally:
        if consumer:
            consumer.done.set()
        if driver:
            driver.quit()
        for p in procs:
            if p.poll() is None:
                p.kill()
        if cluster:
            cluster.kill()
        subprocess.run([os.path.join(SCRIPTS, "redis.sh"), "stop", redis_dir], capture_output=True)
        try:
            psql(ADMIN, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        except subprocess.CalledProcessError:
            pass
    log(f"passed: {len(checks)} checks")


main()

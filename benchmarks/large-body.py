#!/usr/bin/env python3
"""Memory of the server around one large request (issue 14, item 4): a 0.99 MB body of
330,000 `{}` lines (every one invalid), sent --times times to a running server whose PID is
given. Prints, per request, its status, time and answer size, and the server's resident
memory before, at its peak during the request (VmHWM, reset before each request through
/proc/PID/clear_refs) and two seconds after the answer.

usage: large-body.py --url http://127.0.0.1:8080 --pid PID [--lines 330000] [--times 2] [--token T]
"""
import argparse
import json
import socket
import time
import urllib.parse


def status_kb(pid):
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                values[key] = int(value.split()[0])
    return values


def reset_peak(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def post(host, port, body, token):
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (f"POST /v1/transactions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/x-ndjson\r\n{auth}"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    s = socket.create_connection((host, port), timeout=600)
    began = time.monotonic()
    s.sendall(head.encode() + body)
    data = b""
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    s.close()
    status = int(data.split()[1]) if data.startswith(b"HTTP/1.1") else None
    return status, time.monotonic() - began, len(data)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--lines", type=int, default=330_000)
    p.add_argument("--times", type=int, default=2)
    p.add_argument("--token")
    args = p.parse_args()
    u = urllib.parse.urlparse(args.url)
    body = b"\n".join(b"{}" for _ in range(args.lines))
    print(f"body: {args.lines} lines, {len(body) / 1e6:.2f} MB")
    for i in range(args.times):
        before = status_kb(args.pid)["VmRSS"]
        peak_reset = reset_peak(args.pid)
        status, seconds, size = post(u.hostname, u.port or 80, body, args.token)
        peak = status_kb(args.pid)["VmHWM"]
        time.sleep(2)
        after = status_kb(args.pid)["VmRSS"]
        print(json.dumps({
            "request": i + 1, "status": status, "seconds": round(seconds, 2), "answer_bytes": size,
            "rss_before_mb": round(before / 1024, 1), "rss_peak_mb": round(peak / 1024, 1) if peak_reset else None,
            "rss_after_mb": round(after / 1024, 1),
        }))


if __name__ == "__main__":
    main()

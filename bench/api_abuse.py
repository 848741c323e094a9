#!/usr/bin/env python3
"""Abuse of the controller's API, measured in one run (bench/api_abuse.sh starts the controller):
1. the controller's RSS before, peak during and after 16 concurrent anonymous 64 MiB POSTs
   (streamed, no Expect: the clients do not wait for an answer before sending);
2. GET /v1/instances p50/p99 of one user (bob, paced under his rate limit) with nobody else,
   then while another user (alice) sends 0.9 MB bodies on 4 connections back to back; the
   ratio of the two.

usage: api_abuse.py HOST PORT ADMIN_TOKEN CONTROLLER_PID [GETS]"""
import http.client
import json
import multiprocessing
import socket
import sys
import threading
import time

HOST, PORT, ADMIN, PID = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
GETS = int(sys.argv[5]) if len(sys.argv) > 5 else 300


def status_kb(field):
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def call(method, path, token, body=None):
    c = http.client.HTTPConnection(HOST, PORT, timeout=30)
    c.request(method, path, body=body, headers={"Authorization": "Bearer " + token})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def big_post(n):
    """One anonymous POST announcing n bytes, sent whole unless the server closes first."""
    try:
        s = socket.create_connection((HOST, PORT), 60)
        s.sendall(f"POST /v1/instances HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {n}\r\n\r\n".encode())
        chunk = b" " * 65536
        for _ in range(n // len(chunk)):
            s.sendall(chunk)
        s.recv(4096)
        s.close()
    except OSError:
        pass


def rss_part():
    before = status_kb("VmRSS")
    threads = [threading.Thread(target=big_post, args=(64 << 20,)) for _ in range(16)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    peak = before
    while any(t.is_alive() for t in threads):
        peak = max(peak, status_kb("VmRSS"))
        time.sleep(0.02)
    took = time.monotonic() - t0
    after = status_kb("VmRSS")
    print(f"rss: before {before // 1024} MiB, peak during 16 x 64 MiB anonymous POSTs "
          f"{peak // 1024} MiB, after {after // 1024} MiB ({took:.1f} s)")


def abuser(token, stop, counts):
    body = json.dumps({"name": "abuse", "image": "x", "env": {"K": "v" * 900000}}).encode()
    c = None
    while not stop.is_set():
        try:
            if c is None:
                c = http.client.HTTPConnection(HOST, PORT, timeout=30)
            c.request("POST", "/v1/instances", body=body,
                      headers={"Authorization": "Bearer " + token,
                               "Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            with counts.get_lock():
                counts[0 if r.status == 429 else 1] += 1
            if r.status == 429:
                time.sleep(0.01)  # a client that honours nothing, but does not spin
            if r.getheader("Connection", "").lower() == "close":
                c.close()
                c = None
        except (OSError, http.client.HTTPException):
            with counts.get_lock():
                counts[2] += 1  # refused while still sending: the body was not read
            if c:
                c.close()
            c = None


def gets(token, n):
    """n GETs on one keep-alive connection, 25 ms apart (40/s, under the default 50/s)."""
    c = http.client.HTTPConnection(HOST, PORT, timeout=30)
    lat = []
    for _ in range(n):
        t = time.monotonic()
        c.request("GET", "/v1/instances", headers={"Authorization": "Bearer " + token})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            sys.exit(f"bob's GET answered {r.status}")
        lat.append((time.monotonic() - t) * 1000)
        time.sleep(max(0, 0.025 - (time.monotonic() - t)))
    lat.sort()
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def user(name):
    st, data = call("POST", "/v1/users", ADMIN, json.dumps({"name": name}))
    if st != 200:
        sys.exit(f"create user {name}: {st} {data[:200]}")
    return json.loads(data)["data"]["users"][0]["token"]


def main():
    rss_part()
    alice, bob = user("alice"), user("bob")
    gets(bob, 20)  # warm up
    p50, p99 = gets(bob, GETS)
    stop = multiprocessing.Event()
    counts = multiprocessing.Array("l", 3)
    procs = [multiprocessing.Process(target=abuser, args=(alice, stop, counts)) for _ in range(4)]
    for p in procs:
        p.start()
    time.sleep(1)
    a50, a99 = gets(bob, GETS)
    stop.set()
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
    print(f"bob's GET alone: p50 {p50:.2f} ms, p99 {p99:.2f} ms ({GETS} GETs)")
    print(f"bob's GET while alice sends 0.9 MB bodies on 4 connections: p50 {a50:.2f} ms, "
          f"p99 {a99:.2f} ms (alice: {counts[1]} bodies answered, {counts[0]} refused 429, "
          f"{counts[2]} cut off while sending)")
    print(f"ratio under abuse: p50 x{a50 / p50:.2f}, p99 x{a99 / p99:.2f}")


if __name__ == "__main__":
    main()

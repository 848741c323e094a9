#!/usr/bin/env python3
"""A bounded HTTPS load generator for tests through the ingress: CONCURRENCY threads, each
GETting https://FQDN/ over keep-alive connections to ADDR:443 (SNI and Host FQDN, verified
against CACERT) back to back, until SECONDS have passed or the file STOP exists. Prints "<ok> <failed>"
and, on stderr, the first failures.

Usage: http_load.py FQDN ADDR CACERT CONCURRENCY SECONDS [STOP]"""
import os
import http.client
import socket
import ssl
import sys
import threading
import time


class Conn(http.client.HTTPSConnection):
    """HTTPS to a fixed address, whatever the host name says (curl's --resolve)."""

    def __init__(self, fqdn, addr, ctx):
        super().__init__(fqdn, 443, context=ctx, timeout=20)
        self.addr = addr
        self.ctx = ctx

    def connect(self):
        sock = socket.create_connection((self.addr, 443), self.timeout)
        self.sock = self.ctx.wrap_socket(sock, server_hostname=self.host)


def main():
    fqdn, addr, cacert = sys.argv[1:4]
    conc, secs = int(sys.argv[4]), float(sys.argv[5])
    stop = sys.argv[6] if len(sys.argv) > 6 else None
    if not 1 <= conc <= 64 or not 0 < secs <= 120:
        sys.exit("concurrency 1..64, seconds up to 120")
    ctx = ssl.create_default_context(cafile=cacert)
    end = time.monotonic() + secs
    counts = {"ok": 0, "failed": 0}
    errors = []
    lock = threading.Lock()

    def worker():
        c = None
        while time.monotonic() < end and not (stop and os.path.exists(stop)):
            try:
                if c is None:
                    c = Conn(fqdn, addr, ctx)
                c.request("GET", "/")
                r = c.getresponse()
                body = r.read()
                good = r.status == 200 and b"Hello from nubo" in body
                if r.getheader("Connection", "").lower() == "close":
                    c.close()
                    c = None
            except (OSError, http.client.HTTPException) as e:
                good, body = False, repr(e).encode()
                c = None
            with lock:
                counts["ok" if good else "failed"] += 1
                if not good and len(errors) < 5:
                    errors.append(body[:200])
        if c is not None:
            c.close()

    threads = [threading.Thread(target=worker) for _ in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in errors:
        print("http_load: " + e.decode(errors="replace"), file=sys.stderr)
    print(counts["ok"], counts["failed"])


if __name__ == "__main__":
    main()

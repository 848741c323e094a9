#!/usr/bin/env python3
"""leader_proxy.py PORT URL...: a TCP front for several nubo-controllers, as HAProxy is in
deploy (`option httpchk GET /healthz/leader`, `fall 3`, `on-marked-down shutdown-sessions`):
each new connection goes to the controller whose /healthz/leader answers 200 (probed every
100 ms), a connection arriving while none leads is closed, and the connections to a controller
are cut as soon as another leads or it failed three probes in a row, so the clients behind it (the fake agents) reconnect to the next
leader. Prints one line per change of leader."""
import socket
import sys
import threading
import time
import urllib.request

PORT = int(sys.argv[1])
BACKENDS = sys.argv[2:]
lock = threading.Lock()
leader = None
conns = {b: set() for b in BACKENDS}


def leads(url):
    try:
        with urllib.request.urlopen(url + "/healthz/leader", timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


def cut(socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def monitor():
    global leader
    misses = 0
    while True:
        now = next((b for b in BACKENDS if leads(b)), None)
        # like HAProxy's `fall 3`: a leader too busy to answer one probe is not dropped at once
        misses = misses + 1 if now is None else 0
        if now is None and leader is not None and misses < 3:
            now = leader
        with lock:
            old, leader = leader, now
            stale = list(conns[old]) if old and old != now else []
        if old != now:
            print(f"leader_proxy: leader now {now}", flush=True)
        cut(stale)
        time.sleep(0.1)


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    cut([dst])


def serve(client):
    with lock:
        target = leader
    if target is None:
        client.close()
        return
    host, port = target.split("//", 1)[1].rsplit(":", 1)
    try:
        up = socket.create_connection((host, int(port)), timeout=2)
        up.settimeout(None)
    except OSError:
        client.close()
        return
    with lock:
        conns[target].update((client, up))
    threads = [threading.Thread(target=pump, args=(client, up), daemon=True),
               threading.Thread(target=pump, args=(up, client), daemon=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with lock:
        conns[target].difference_update((client, up))
    client.close()
    up.close()


def main():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", PORT))
    srv.listen(256)
    threading.Thread(target=monitor, daemon=True).start()
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""lose_reply_proxy.py PORT URL [GATE]: an HTTP/1.1 front for one nubo-controller that loses the reply
to each node's first register: the request reaches the controller, which answers (so the node
is committed), but the proxy closes the agent's connection instead of passing the answer on, as
a controller killed or failing over right after its commit, or a connection reset, does. Every
other request and reply passes unchanged. Prints "lost NAME's register reply (HTTP CODE)" for
each one it dropped. With GATE (a file name), connections that arrive after a dropped reply wait
until that file exists before they reach the controller, so a test can kill -9 and restart the
controller between the lost reply and the agent's retry. Requests on one connection are handled
in turn (agents do not pipeline)."""
import json
import os
import time
import socket
import sys
import threading
from urllib.parse import urlsplit

PORT = int(sys.argv[1])
BACKEND = urlsplit(sys.argv[2])
GATE = sys.argv[3] if len(sys.argv) > 3 else None
lock = threading.Lock()
lost = set()  # node names whose first register reply was dropped


def read_message(sock, buf):
    """One HTTP message (head + Content-Length body) from sock; returns (head, body, rest) or
    None when the peer closed before a whole one arrived."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
        if k.strip().lower() == b"transfer-encoding":
            raise ValueError("chunked messages are not handled")
    while len(buf) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    return head, buf[:length], buf[length:]


def node_name(head, body):
    if not head.startswith(b"POST /agent/v1/register "):
        return None
    try:
        return json.loads(body)["name"]
    except (ValueError, KeyError, TypeError):
        return None


def serve(client):
    while GATE and lost and not os.path.exists(GATE):
        time.sleep(0.05)
    try:
        backend = socket.create_connection((BACKEND.hostname, BACKEND.port))
    except OSError as e:
        print(f"controller unreachable: {e}", flush=True)
        client.close()
        return
    cbuf = bbuf = b""
    try:
        while True:
            req = read_message(client, cbuf)
            if req is None:
                return
            head, body, cbuf = req
            backend.sendall(head + b"\r\n\r\n" + body)
            resp = read_message(backend, bbuf)
            if resp is None:
                return
            rhead, rbody, bbuf = resp
            name = node_name(head, body)
            with lock:
                lose = name is not None and name not in lost
                if lose:
                    lost.add(name)
            if lose:
                code = rhead.split(b" ", 2)[1].decode()
                print(f"lost {name}'s register reply (HTTP {code})", flush=True)
                return
            client.sendall(rhead + b"\r\n\r\n" + rbody)
    except (OSError, ValueError) as e:
        print(f"connection ended: {e}", flush=True)
    finally:
        client.close()
        backend.close()


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", PORT))
srv.listen(64)
print(f"listening on {PORT}", flush=True)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()

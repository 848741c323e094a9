#!/usr/bin/env python3
"""Raw HTTP probes of the controller's header gate (tests/security/reject_before_read.sh):

  body_probe.py early HOST PORT PATH LENGTH [TOKEN] [--ca CA] [--wait S]
      send a request's headers announcing a LENGTH-byte body and none of the body, and wait up
      to S (20) seconds for an answer: prints "<status> <first line of the body>", or "none"
      when the server waits for the body (what it does for a request it will read).
  body_probe.py idle HOST PORT [--ca CA] [--send BYTES]
      open a connection (TLS handshake with --ca), send BYTES of a request's headers (default
      none) and wait up to 60 s for the server to close it: prints "closed" or "open".
  body_probe.py hold HOST PORT N
      open N plain connections and keep them until stdin closes; prints how many of them the
      server closed within 3 s of opening ("closed <k>")."""
import socket
import ssl
import sys
import time


def connect(host, port, ca, timeout):
    s = socket.create_connection((host, port), timeout)
    if ca:
        ctx = ssl.create_default_context(cafile=ca)
        s = ctx.wrap_socket(s, server_hostname=host)
    return s


def opt(args, name, default=None):
    return args[args.index(name) + 1] if name in args else default


def early(args):
    host, port, path, length = args[0], int(args[1]), args[2], int(args[3])
    token = args[4] if len(args) > 4 and not args[4].startswith("--") else None
    s = connect(host, port, opt(args, "--ca"), float(opt(args, "--wait", "20")))
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    s.sendall((head + f"Content-Length: {length}\r\n\r\n").encode())
    data = b""
    try:
        while b"\r\n\r\n" not in data or not data.split(b"\r\n\r\n", 1)[1]:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except OSError:  # a timeout, or the close after the answer (TLS without close_notify)
        pass
    if not data:
        print("none")
        return
    status = data.split(b" ", 2)[1].decode()
    body = data.split(b"\r\n\r\n", 1)[1].split(b"\n", 1)[0].decode(errors="replace")
    print(status, body)


def idle(args):
    host, port = args[0], int(args[1])
    s = connect(host, port, opt(args, "--ca"), 60)
    send = opt(args, "--send")
    if send:
        s.sendall(send.encode())
    try:
        print("closed" if s.recv(4096) == b"" else "open")
    except socket.timeout:
        print("open")
    except OSError:  # reset, or TLS cut short
        print("closed")


def hold(args):
    host, port, n = args[0], int(args[1]), int(args[2])
    socks = [socket.create_connection((host, port), 10) for _ in range(n)]
    time.sleep(3)
    closed = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except ConnectionResetError:
            closed += 1
    print("closed", closed, flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    {"early": early, "idle": idle, "hold": hold}[sys.argv[1]](sys.argv[2:])

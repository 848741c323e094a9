# Runs in the node's network namespace: TCP listeners and one UDP listener on the addresses a
# guest must not reach, logging every connection or datagram that arrives.
import socket
import sys
import threading


def tcp(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(16)
    while True:
        c, peer = s.accept()
        print(f"ACCEPT {addr}:{port} from {peer[0]}", flush=True)
        c.close()


def udp(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    while True:
        data, peer = s.recvfrom(2048)
        print(f"UDP {addr}:{port} from {peer[0]}: {data[:40]!r}", flush=True)


for spec in sys.argv[1:]:
    kind, addr, port = spec.split(":")
    threading.Thread(target=tcp if kind == "tcp" else udp, args=(addr, int(port)), daemon=True).start()
print("LISTENING", flush=True)
threading.Event().wait()

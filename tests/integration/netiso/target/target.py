# The neighbour guest: says which uid it runs as and whether it may open a raw socket, answers
# HTTP on 8080 with "target <its address>", and reports any UDP datagram it receives on 9999.
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

print(f"NETTEST uid={os.getuid()} gid={os.getgid()}")
try:
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()
    print("NETTEST raw=allowed")
except PermissionError:
    print("NETTEST raw=denied")


def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 9999))
    while True:
        data, peer = s.recvfrom(2048)
        print(f"NETTEST udp from {peer[0]}: {data[:40]!r}")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"target {self.connection.getsockname()[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


threading.Thread(target=udp, daemon=True).start()
ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()

# A tiny HTTP app for nubo's python runtime: answers every GET with a greeting that names the
# address the request arrived on, so replicas behind a service can be told apart.
import os
import platform
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PORT", "8080"))
PYTHON = platform.python_version()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        addr = self.connection.getsockname()[0]
        body = f"Hello from nubo! (Python {PYTHON}, instance {addr})\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print("%s - %s" % (self.address_string(), fmt % args), flush=True)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    print(f"listening on :{PORT}", flush=True)
    server.serve_forever()

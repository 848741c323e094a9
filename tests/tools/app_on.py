# A fake node's "guest": runs the python web app APP (which serves through http.server's
# ThreadingHTTPServer on 0.0.0.0, like examples/http-python) bound to IP instead, the private
# address the controller gave the instance. usage: app_on.py IP APP
import http.server
import runpy
import sys

ip, app = sys.argv[1], sys.argv[2]


class Bound(http.server.ThreadingHTTPServer):
    def __init__(self, addr, handler):
        super().__init__((ip, addr[1]), handler)


http.server.ThreadingHTTPServer = Bound
sys.argv = [app]
runpy.run_path(app, run_name="__main__")

# The one python a test keeps for reading JSON (tests/lib.sh's jget, t_jdef): a python started
# per field read took seconds each on a loaded machine, which made control-plane tests crawl.
# Requests on stdin, answers on stdout, every field ended by a NUL byte (bash's `read -d ''`):
#   request  ID OP CODE JSON   OP "print": print(CODE) with d = JSON parsed, exactly as
#                              `python3 -c "d=json.load(sys.stdin); print(CODE)"` prints it;
#                              OP "exec": run CODE (a helper's def) in the globals all share
#   answer   ID STATUS TEXT    STATUS "0" with what print wrote, or "1" with the traceback
import contextlib
import io
import json
import sys
import traceback


def fields(stream, n):
    """The next n NUL-ended fields, or None at the end of the input."""
    out = []
    buf = fields.rest
    while len(out) < n:
        cut = buf.find(b"\0")
        if cut < 0:
            chunk = stream.read1(1 << 16)
            if not chunk:
                return None
            buf += chunk
            continue
        out.append(buf[:cut].decode("utf-8", "surrogateescape"))
        buf = buf[cut + 1 :]
    fields.rest = buf
    return out


fields.rest = b""


def main():
    shared = {"__builtins__": __builtins__, "json": json, "sys": sys}
    compiled = {}
    out = sys.stdout.buffer
    while True:
        req = fields(sys.stdin.buffer, 4)
        if req is None:
            return
        rid, op, code, body = req
        text = io.StringIO()
        status = "0"
        try:
            if op == "exec":
                exec(code, shared)
            else:
                key = (op, code)
                if key not in compiled:
                    compiled[key] = compile("print(" + code + ")", "<jget>", "exec")
                shared["d"] = json.loads(body)
                with contextlib.redirect_stdout(text):
                    exec(compiled[key], shared)
        except BaseException:  # SystemExit too: the reader outlives a bad expression
            status = "1"
            text = io.StringIO(traceback.format_exc())
        out.write(("%s\0%s\0%s\0" % (rid, status, text.getvalue())).encode("utf-8", "surrogateescape"))
        out.flush()


main()

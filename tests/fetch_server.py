"""fetch_server.py — a local HTTP server for tests/test_fetch.sh (127.0.0.1 only).

usage: /usr/bin/python3 fetch_server.py ROOT PORTFILE LOGFILE [LIFETIME_SECONDS]

Serves files of ROOT on a free port of 127.0.0.1 (written to PORTFILE), logging every request as
"PATH RANGE" lines to LOGFILE. Path prefixes choose the behaviour:
  /FILE           GET with single-range support ("Range: bytes=N-" -> 206 + Content-Range)
  /norange/FILE   ignores Range: always 200 with the whole file
  /flaky/FILE     the first request for FILE announces the full length, sends half of the
                  requested bytes and closes the connection; later requests behave as /FILE
  /drip/FILE      announces the full length, then sends one byte every half second
  /endless/FILE   200 without a length, then the file's bytes over and over, for ever
  /huge/FILE      announces a length of 100 GB, then sends the file
Stops by itself after LIFETIME_SECONDS (default 120) so a failed test never leaves it running.
"""
import http.server
import os
import re
import sys
import threading
import time

root, portfile, logfile = sys.argv[1], sys.argv[2], sys.argv[3]
lifetime = float(sys.argv[4]) if len(sys.argv) > 4 else 120.0
flaky_done = set()
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        rng = self.headers.get("Range", "-")
        with lock:
            with open(logfile, "a") as f:
                f.write(f"{self.path} {rng}\n")
        path = self.path
        mode = "range"
        for prefix in ("norange", "flaky", "drip", "endless", "huge"):
            if path.startswith("/" + prefix + "/"):
                mode, path = prefix, path[len(prefix) + 1:]
        full = os.path.join(root, os.path.basename(path))
        if not os.path.isfile(full):
            self.send_error(404)
            return
        data = open(full, "rb").read()
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", rng)
        if m and mode != "norange":
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        body = data[start:]
        try:
            if mode == "drip":
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                for b in data:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    time.sleep(0.5)
                return
            if mode == "endless":
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                while True:
                    self.wfile.write(data)
            if mode == "huge":
                self.send_response(200)
                self.send_header("Content-Length", str(100 * 10**9))
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = True
                return
        except (BrokenPipeError, ConnectionResetError):
            return
        cut = False
        if mode == "flaky":
            with lock:
                cut = path not in flaky_done
                flaky_done.add(path)
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/gzip")
        self.end_headers()
        if cut:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(portfile + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(portfile + ".tmp", portfile)
threading.Timer(lifetime, server.shutdown).start()
server.serve_forever()

#!/usr/bin/env python3
"""Loopback HTTP server for the fetch tests: misbehaves on purpose, one way per mode.

Binds 127.0.0.1 on a free port, prints "PORT <n>" on stdout, and serves until killed (or
--lifetime seconds, so that it always stops by itself). Each request path is appended to
--log when given.

Modes (GET /<name> looks up <root>/<name>):
  serve     the file, or 404 when absent
  404       always 404
  wrong     the file's length, every byte changed
  truncate  Content-Length of the whole file, then half of it, then close
  stall     headers, then silence
  flaky     503 on the first request for each path, then serve
  flood     no Content-Length, bytes until the client hangs up (at most 64 MiB)
"""
import argparse
import http.server
import os
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", required=True,
                    choices=["serve", "404", "wrong", "truncate", "stall", "flaky", "flood"])
    ap.add_argument("--root", default=".")
    ap.add_argument("--log", default="")
    ap.add_argument("--lifetime", type=float, default=120.0)
    args = ap.parse_args()
    seen = set()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):  # quiet
            pass

        def send_body_headers(self, length):
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if length is not None:
                self.send_header("Content-Length", str(length))
            self.send_header("Connection", "close")
            self.end_headers()

        def do_GET(self):
            name = os.path.basename(self.path.split("?")[0])
            if args.log:
                with lock, open(args.log, "a") as f:
                    f.write(self.path + "\n")
            path = os.path.join(args.root, name)
            data = None
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    data = f.read()
            mode = args.mode
            if mode == "flaky":
                with lock:
                    first = name not in seen
                    seen.add(name)
                if first:
                    self.send_error(503, "try again")
                    return
                mode = "serve"
            if mode == "flood":
                self.send_body_headers(None)
                chunk = b"\xab" * 65536
                try:
                    for _ in range(1024):
                        self.wfile.write(chunk)
                except OSError:
                    pass
                self.close_connection = True
                return
            if mode == "404" or data is None:
                self.send_error(404, "not here")
                return
            if mode == "serve":
                self.send_body_headers(len(data))
                self.wfile.write(data)
            elif mode == "wrong":
                self.send_body_headers(len(data))
                self.wfile.write(bytes((b ^ 0x5A) for b in data))
            elif mode == "truncate":
                self.send_body_headers(len(data))
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
            elif mode == "stall":
                self.send_body_headers(len(data))
                self.wfile.flush()
                time.sleep(args.lifetime)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("PORT", server.server_address[1], flush=True)
    threading.Timer(args.lifetime, lambda: os._exit(0)).start()
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())

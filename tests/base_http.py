"""A static HTTP server for base-image tests: serves a directory with single-range requests
(206), counts every request, and can play a host that ignores ranges or has lost a file."""

from __future__ import annotations

import http.server
import re
import threading
from pathlib import Path


class BaseHost:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[list] = []  # [path, Range header, status], logged before the answer
        self.ignore_ranges = False
        self.lock = threading.Lock()
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                rel = self.path.split("?")[0].lstrip("/")
                path = (host.root / rel).resolve()
                rng = self.headers.get("Range")
                entry: list = [rel, rng, 404]
                with host.lock:
                    host.requests.append(entry)
                if True:
                    if host.root.resolve() not in path.parents or not path.is_file():
                        self.send_response(404)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    data = path.read_bytes()
                    m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
                    if m and not host.ignore_ranges:
                        start = int(m[1])
                        end = min(int(m[2]) + 1 if m[2] else len(data), len(data))
                        entry[2] = 206
                        self.send_response(206)
                        self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
                        data = data[start:end]
                    else:
                        entry[2] = 200
                        self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Access-Control-Allow-Origin", "*")
                    self.end_headers()
                    self.wfile.write(data)

            def log_message(self, format: str, *args) -> None:  # noqa: A002
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def since(self, mark: int) -> list[list]:
        with self.lock:
            return self.requests[mark:]

    def mark(self) -> int:
        with self.lock:
            return len(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

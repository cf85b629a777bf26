"""`serve` throughput (not a test): MB/s for 1 MiB writes and reads, and small messages/s (Tgetattr),
over TCP and WebSocket, with 1 and 50 clients, against the same client on an in-process
``Server.handle`` in the same run. The client is tests/ninep_client.py (pure Python; its own
encoding costs are in every column alike). The server is a `serve` subprocess (memory store).

    .venv/bin/python bench/serve.py [--quick]
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from ninep_client import Client
from serving import Serve, TcpLink, WsLink

from pyninep_browser import Server

MIB = 1 << 20
MSIZE = MIB + 4096  # a whole 1 MiB payload per Tread/Twrite


def session(kind: str, serve: Serve | None) -> Client:
    if kind == "in-process":
        return Client(SHARED, msize=MSIZE)
    assert serve is not None
    if kind == "tcp":
        assert serve.tcp is not None
        return Client(TcpLink(serve.tcp), msize=MSIZE)
    assert serve.ws is not None
    return Client(WsLink(serve.ws), msize=MSIZE)


class _Shared:
    """In-process: one Server per client over one filesystem, as serve does."""

    def __init__(self) -> None:
        from pyninep_browser import Filesystem

        self.fs = Filesystem(quota_bytes=8 << 30)
        self.local = threading.local()
        self.lock = threading.Lock()

    def handle(self, frame: bytes) -> bytes | None:
        s = getattr(self.local, "server", None)
        if s is None:
            s = self.local.server = Server(self.fs, max_msize=MSIZE)
        with self.lock:  # one event loop in serve; one lock here
            return s.handle(frame)


SHARED = _Shared()


def work(kind: str, serve: Serve | None, i: int, mib: int, small: int, out: dict) -> None:
    c = session(kind, serve)
    d = c.fid()
    c.walk(0, d, [])
    c.lcreate(d, f"bench-{kind}-{i}-{mib}-{small}", 2, 0o644)
    block = bytes([i % 251]) * MIB
    t = time.perf_counter()
    for n in range(mib):
        c.write(d, n * MIB, block)
    out.setdefault("write", []).append((t, time.perf_counter()))
    t = time.perf_counter()
    for n in range(mib):
        assert len(c.read(d, n * MIB, MIB)) == MIB
    out.setdefault("read", []).append((t, time.perf_counter()))
    t = time.perf_counter()
    for _ in range(small):
        c.getattr(d)
    out.setdefault("small", []).append((t, time.perf_counter()))
    c.clunk(d)
    c.server.close() if hasattr(c.server, "close") else None


def run(kind: str, serve: Serve | None, clients: int, mib: int, small: int) -> tuple[float, float, float]:
    out: dict = {}
    threads = [threading.Thread(target=work, args=(kind, serve, i, mib, small, out)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    def span(key: str) -> float:
        spans = out[key]
        return max(e for _, e in spans) - min(s for s, _ in spans)

    return (
        clients * mib / span("write"),
        clients * mib / span("read"),
        clients * small / span("small"),
    )


def main() -> None:
    quick = "--quick" in sys.argv
    serve = Serve(
        "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--max-msize", str(MSIZE), "--max-fids", "64"
    )
    try:
        day = time.strftime("%Y-%m-%d")
        print(f"serve throughput ({day}); client: tests/ninep_client.py, 1 MiB per message")
        print(f"{'transport':<11} {'clients':>7} {'write MB/s':>11} {'read MB/s':>10} {'getattr/s':>10}")
        for clients, mib, small in ((1, 16 if quick else 64, 5000 if quick else 20000), (50, 2, 300)):
            for kind in ("in-process", "tcp", "ws"):
                w, r, s = run(kind, serve, clients, mib, small)
                print(
                    f"{kind:<11} {clients:>7} {w * MIB / 1e6:>11.0f} {r * MIB / 1e6:>10.0f} {s:>10.0f}",
                    flush=True,
                )
    finally:
        serve.stop()


if __name__ == "__main__":
    main()

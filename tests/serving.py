"""Run ``python -m pyninep_browser serve`` for tests and talk to it over real sockets.

The 9P side is tests/ninep_client.py (its own encoder and decoder, not the package's protocol.py);
this file only gives it links: :class:`TcpLink` (9P's length-prefixed framing) and :class:`WsLink`
(one binary WebSocket message per frame, the websockets package's synchronous client).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from ninep_client import Client

ROOT = Path(__file__).resolve().parent.parent


class Serve:
    """``serve`` in a subprocess; ``tcp``/``ws`` are the addresses it printed."""

    def __init__(self, *args: str, wait: bool = True) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyninep_browser", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.tcp: tuple[str, int] | None = None
        self.ws: str | None = None
        self.line = ""
        self.err: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()
        if wait:
            self._started()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)

    def _started(self) -> None:
        assert self.proc.stdout is not None
        self.line = self.proc.stdout.readline()
        if not self.line:
            self.proc.wait(10)
            raise RuntimeError(f"serve did not start: {''.join(self.err)}")
        m = re.search(r"tcp://([\d.]+):(\d+)", self.line)
        if m:
            self.tcp = (m.group(1), int(m.group(2)))
        m = re.search(r"(ws://\S+/)", self.line)
        if m:
            self.ws = m.group(1)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def client(self, **kw) -> Client:
        assert self.tcp is not None
        return Client(TcpLink(self.tcp), **kw)

    def ws_client(self, query: str = "", **kw) -> Client:
        assert self.ws is not None
        return Client(WsLink(self.ws + query), **kw)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed by the server")
        buf += chunk
    return bytes(buf)


class TcpLink:
    """``handle(frame) -> reply`` over one TCP connection (what ninep_client.Client drives)."""

    def __init__(self, addr: tuple[str, int], timeout: float = 30) -> None:
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self, frame: bytes) -> bytes:
        self.sock.sendall(frame)
        head = recv_exact(self.sock, 4)
        (size,) = struct.unpack("<I", head)
        return head + recv_exact(self.sock, size - 4)

    def close(self) -> None:
        self.sock.close()


class WsLink:
    def __init__(self, url: str, origin: str | None = None, timeout: float = 30) -> None:
        from websockets.sync.client import connect

        headers = {"Origin": origin} if origin else None
        options = {
            "additional_headers": headers,
            "open_timeout": timeout,
            "max_size": None,
            "compression": None,
        }
        try:  # a link lives longer than a with-block: websockets 17 wants that said (legacy=True)
            self.ws = connect(url, legacy=True, **options)
        except TypeError:
            self.ws = connect(url, **options)

    def handle(self, frame: bytes) -> bytes:
        self.ws.send(frame)
        reply = self.ws.recv(timeout=30)
        assert isinstance(reply, bytes)
        return reply

    def close(self) -> None:
        self.ws.close()


def wait_for(predicate, timeout: float = 10, step: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def sigkill_rounds(db: str, kills: int, writers: int = 3) -> tuple[dict[str, bytes], list[str]]:
    """SIGKILL ``serve --db`` ``kills`` times while ``writers`` clients create files and fsync
    them; then restart it once more and read every file whose Rfsync arrived. Returns (what was
    acknowledged, the names that are missing or differ)."""
    import random

    acked: dict[str, bytes] = {}
    lock = threading.Lock()
    for round_ in range(kills):
        s = Serve("--tcp", "127.0.0.1:0", "--db", db)
        stop = threading.Event()

        def writer(w: int, s: Serve = s, stop: threading.Event = stop, round_: int = round_) -> None:
            try:
                c = s.client()
                n = 0
                while not stop.is_set():
                    name = f"r{round_}-w{w}-{n}"
                    data = f"{name} ".encode() * random.randint(1, 3000)
                    d = c.fid()
                    c.walk(0, d, [])
                    c.lcreate(d, name, 2, 0o644)
                    c.write(d, 0, data)
                    c.fsync(d)
                    with lock:
                        acked[name] = data
                    c.clunk(d)
                    n += 1
            except (OSError, AssertionError):
                pass  # killed under us

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        time.sleep(random.uniform(0.05, 0.3))
        s.kill()
        stop.set()
        for t in threads:
            t.join(10)
    lost = []
    s = Serve("--tcp", "127.0.0.1:0", "--db", db)
    try:
        c = s.client()
        for name, data in acked.items():
            try:
                f = c.walk_new(name)
                c.lopen(f, 0)
                got = b""
                while len(got) < len(data):
                    chunk = c.read(f, len(got), 1 << 16)
                    if not chunk:
                        break
                    got += chunk
                c.clunk(f)
            except OSError:
                got = b""
            if got != data:
                lost.append(name)
    finally:
        s.stop()
    return acked, lost

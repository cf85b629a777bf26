"""Dispatcher benchmark on CPython (not a test): messages/s and MB/s through Server.handle.

Peers in the same run: a trivial handler that only echoes a fixed reply (the floor for any Python
dispatcher), and os.pread/os.pwrite of the same sizes on a tmpfs file (the host kernel).
Targets (issue 3): >= 100,000 getattr/s, >= 1 GB/s for 128 KiB reads.
"""

import os
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyninep_browser import Server, protocol as p  # noqa: E402
from pyninep_browser.protocol import T  # noqa: E402

BLOCK = 128 * 1024


def rate(fn, n):
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    s = Server()
    s.handle(p.encode(T.Tversion, p.NOTAG, 1 << 20, "9P2000.L"))
    s.handle(p.encode(T.Tattach, 1, 0, p.NOFID, "root", "", 0))
    s.handle(p.encode(T.Twalk, 1, 0, 1, []))
    s.handle(p.encode(T.Tlcreate, 1, 1, "f", 2, 0o644, 0))
    payload = os.urandom(BLOCK)
    for i in range(64):  # an 8 MiB file to read from
        s.handle(p.encode(T.Twrite, 1, 1, i * BLOCK, payload))
    handle = s.handle
    getattr_f = p.encode(T.Tgetattr, 1, 1, 0x3FFF)
    walk_f, clunk_f = p.encode(T.Twalk, 1, 0, 2, ["f"]), p.encode(T.Tclunk, 1, 2)
    reads = [p.encode(T.Tread, 1, 1, i * BLOCK, BLOCK) for i in range(64)]
    writes = [p.encode(T.Twrite, 1, 1, i * BLOCK, payload) for i in range(64)]
    echo_reply = struct.pack("<IBH", 7, 121, 1)
    echo = (lambda frame: echo_reply)

    results = []
    results.append(("getattr", "msg/s", rate(lambda: handle(getattr_f), 100_000),
                    rate(lambda: echo(getattr_f), 100_000), "echo handler"))
    walk_clunk = rate(lambda: (handle(walk_f), handle(clunk_f)), 50_000)
    results.append(("walk+clunk", "pairs/s", walk_clunk,
                    rate(lambda: (echo(walk_f), echo(clunk_f)), 50_000), "echo handler"))
    it = iter(range(1 << 62))
    r = rate(lambda: handle(reads[next(it) % 64]), 5000) * BLOCK / 1e6
    w = rate(lambda: handle(writes[next(it) % 64]), 5000) * BLOCK / 1e6
    with tempfile.NamedTemporaryFile(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp:
        fd = tmp.fileno()
        for i in range(64):
            os.pwrite(fd, payload, i * BLOCK)
        pr = rate(lambda: os.pread(fd, BLOCK, (next(it) % 64) * BLOCK), 5000) * BLOCK / 1e6
        pw = rate(lambda: os.pwrite(fd, payload, (next(it) % 64) * BLOCK), 5000) * BLOCK / 1e6
    results.append(("read 128 KiB", "MB/s", r, pr, "os.pread on tmpfs"))
    results.append(("write 128 KiB", "MB/s", w, pw, "os.pwrite on tmpfs"))

    print(f"pyninep_browser dispatcher on CPython {sys.version.split()[0]}")
    print(f"{'message':<15}{'unit':<9}{'ours':>12}{'peer':>12}{'ours/peer':>11}  peer")
    for name, unit, ours, peer, peer_name in results:
        print(f"{name:<15}{unit:<9}{ours:>12,.0f}{peer:>12,.0f}{ours / peer:>11.2f}  {peer_name}")


if __name__ == "__main__":
    main()

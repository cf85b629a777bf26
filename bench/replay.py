"""Record the 9P traffic of real guest workloads, then replay it through the dispatcher (not a test).

    .venv/bin/python bench/replay.py record [TRACE]      boot the guest, record, write TRACE
    .venv/bin/python bench/replay.py replay [TRACE] [--profile]   replay on CPython
    node bench/replay.mjs dist [TRACE]                   replay in Pyodide under Node

A trace is our saved state at the start (the 9P session included) followed by the request frames
the guest sent, so a replay repeats exactly what the guest asked, reply for reply. It shows where
the dispatcher spends its time per message type without the guest around it.
"""

from __future__ import annotations

import argparse
import base64
import collections
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from pyninep_browser import snapshot  # noqa: E402
from pyninep_browser.protocol import T  # noqa: E402

DEFAULT = Path("/tmp/pyninep-trace.bin")
MAGIC = b"PYNINEP-TRACE-1\n"

WORKLOAD = """
cd /mnt; mkdir -p w; tar xf /tmp/src.tar -C w; find w > /dev/null; ls -lR w > /dev/null
i=0; while [ $i -lt 200 ]; do stat -t w/src/f1 > /dev/null; i=$((i+1)); done
mkdir w/c; i=0; while [ $i -lt 300 ]; do : > w/c/f$i; i=$((i+1)); done
dd if=/dev/zero of=w/big bs=1M count=4 2>/dev/null; cat w/big > /dev/null; rm -rf w
"""


def record(path: Path) -> None:
    from guest import Guest
    from guest_workloads import MOUNT, SETUP

    g = Guest("--root", "none", "--mount", MOUNT.format(cache="none"))
    try:
        g.sh(SETUP, timeout=300)
        state = base64.b64decode(g.request("record")["state"])
        g.sh(WORKLOAD, timeout=600)
        frames = base64.b64decode(g.request("recorded")["frames"])
    finally:
        g.close()
    path.write_bytes(MAGIC + struct.pack("<Q", len(state)) + state + frames)
    print(f"{path}: state {len(state)} bytes, frames {len(frames)} bytes")


def load(path: Path) -> tuple[bytes, list[bytes]]:
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise SystemExit(f"{path}: not a trace (record one with: bench/replay.py record)")
    pos = len(MAGIC)
    (n,) = struct.unpack_from("<Q", data, pos)
    pos += 8
    state = data[pos:pos + n]
    pos += n
    frames = []
    while pos < len(data):
        (size,) = struct.unpack_from("<I", data, pos)
        frames.append(data[pos:pos + size])
        pos += size
    return state, frames


def replay(path: Path, profile: bool, rounds: int) -> None:
    state, frames = load(path)
    names = {int(m): m.name for m in T}
    per_type: dict[int, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    best = float("inf")
    for _ in range(rounds):
        server = snapshot.restore(state)
        handle = server.handle
        clock = time.perf_counter
        start = clock()
        for frame in frames:
            t = clock()
            handle(frame)
            s = per_type[frame[4]]
            s[0] += 1
            s[1] += clock() - t
        best = min(best, clock() - start)
    if profile:
        import cProfile
        import pstats

        server = snapshot.restore(state)
        prof = cProfile.Profile()
        prof.runcall(lambda: [server.handle(f) for f in frames])
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    print(f"{len(frames)} frames, best of {rounds}: {best * 1e3:.1f} ms, "
          f"{best / len(frames) * 1e6:.2f} us/message (timing loop included)")
    for mtype, (count, secs) in sorted(per_type.items(), key=lambda kv: -kv[1][1]):
        print(f"  {names.get(mtype, mtype):<12}{count // rounds:>7}{secs / count * 1e6:>9.2f} us")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("verb", choices=["record", "replay"])
    ap.add_argument("trace", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    opts = ap.parse_args()
    if opts.verb == "record":
        record(opts.trace)
    else:
        replay(opts.trace, opts.profile, opts.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())

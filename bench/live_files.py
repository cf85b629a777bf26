"""Live files and the default image, measured (not a test).

    .venv/bin/python bench/live_files.py [--rounds N] [--opens N]

1. The default image: `image build` of pyninep_browser/default_image.py, wall time (Python start-up
   included) and size, best of N.
2. In the real guest (dist/, the default image, one boot): open+read+close by the shell's own
   `read` builtin (no process start-up) of a plain file, a live file (/py/version) and a live
   directory's entry, best of N rounds; and the page's own time per Tlopen/Tread for each
   (tests/e2e/harness.mjs's per-type timers).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from guest import Guest  # noqa: E402

GUEST_ROOT = Path(os.environ.get("PYNINEP_CACHE", Path.home() / ".cache/pyninep-browser")) / "root"
TARGETS = [("plain file (/etc/hostname)", "/etc/hostname"),
           ("live file (/py/version)", "/py/version"),
           ("live dir entry (/py/modules/sys)", "/py/modules/sys")]


def image_build(rounds: int) -> None:
    best = None
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "default.img"
        for _ in range(rounds):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "pyninep_browser", "image", "build",
                            str(ROOT / "pyninep_browser/default_image.py"), "-o", str(out),
                            "--arg", f"guest_root={GUEST_ROOT}"], check=True, capture_output=True, cwd=ROOT)
            wall = time.perf_counter() - t
            best = wall if best is None else min(best, wall)
        size = out.stat().st_size
    print(f"default image: {size:,} bytes, image build {best * 1000:.0f} ms wall (best of {rounds})")


def guest_latency(rounds: int, opens: int) -> None:
    g = Guest()
    try:
        loop = ("t0=$(cut -d' ' -f1 /proc/uptime); i=0; while [ $i -lt {n} ]; do read -r x < {f};"
                " i=$((i+1)); done; t1=$(cut -d' ' -f1 /proc/uptime); echo $t0 $t1")
        print(f"\n| open+read+close ({opens} per round, best of {rounds}) | guest ms each | page µs/Tlopen | page µs/Tread |")
        print("|---|---:|---:|---:|")
        for name, path in TARGETS:
            best = None
            for _ in range(rounds):
                g.request("stats")
                t0, t1 = (float(x) for x in g.sh(loop.format(n=opens, f=path), timeout=600).split())
                stats = g.request("stats")["stats"]
                lo, rd = stats.get("12", {}), stats.get("116", {})
                row = ((t1 - t0) * 1000 / opens, 1000 * lo.get("ms", 0) / max(1, lo.get("count", 1)),
                       1000 * rd.get("ms", 0) / max(1, rd.get("count", 1)))
                best = row if best is None or row[0] < best[0] else best
            print(f"| {name} | {best[0]:.2f} | {best[1]:.0f} | {best[2]:.0f} |")
    finally:
        g.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--opens", type=int, default=300)
    args = ap.parse_args()
    image_build(args.rounds)
    guest_latency(args.rounds, args.opens)


if __name__ == "__main__":
    main()

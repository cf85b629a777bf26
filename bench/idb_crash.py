"""Crash test, long form (not a test): SIGKILL real Chromium during a write-heavy workload on an
IndexedDB-backed server, reopen, and check that nothing acknowledged was lost.

    .venv/bin/python bench/idb_crash.py [--runs 100] [--guest 3]

``--runs`` frame-driven runs (9P frames from page script: creates, rewrites, 64 KiB writes,
fsync, writeFile; tests/pages/idb.js framesWorkload), then ``--guest`` runs with the real guest
writing and fsyncing (dd conv=fsync) until the kill. Every reopen must open the database; every
file whose fsync/writeFile returned before the kill must read back exactly, after every later
crash too. Prints the tally (see tests/crashcheck.py).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from chromium import SiteServer  # noqa: E402
from crashcheck import CrashTally, frames_runs, guest_runs  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--guest", type=int, default=3)
    ap.add_argument("--seed", type=int, default=None)
    opts = ap.parse_args()
    rng = random.Random(opts.seed)
    from playwright.sync_api import sync_playwright

    site = SiteServer()
    started = time.monotonic()
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
            print(f"frame-driven crash runs: {opts.runs}", flush=True)
            frames = frames_runs(pw, site, Path(tmp) / "frames", opts.runs, rng, wait_ms=(200, 4000),
                                 check_all_every=10, say=lambda line: print(line, flush=True))
            print(frames.line("frame-driven"))
            guest = CrashTally()
            if opts.guest:
                print(f"guest crash runs: {opts.guest}", flush=True)
                guest = guest_runs(pw, site, Path(tmp) / "guest", opts.guest, rng, wait_ms=(500, 6000),
                                   say=lambda line: print(line, flush=True))
                print(guest.line("real guest"))
    finally:
        site.close()
    lost = frames.lost + guest.lost
    print(f"total: {frames.kills + guest.kills} kills, {frames.checked + guest.checked} files checked, "
          f"{lost} lost, {len(frames.discards) + len(guest.discards)} database(s) discarded by "
          f"Chromium and reported ({frames.gone_with_discard + guest.gone_with_discard} acknowledged "
          f"files with them), {time.monotonic() - started:.0f} s")
    for failure in (frames.failures + guest.failures)[:20]:
        print("LOST:", failure)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())

"""Machine blob size and time (not a test): saveMachine/restoreMachine of a booted guest in Node.

    .venv/bin/python bench/machine_blob.py [--rounds 3]

Boots the guest (v86 + our server, tests/e2e/harness.mjs), then per round: saveMachine plain and
gzip-compressed, and restoreMachine of each into a new emulator and a new server (to the first
shell reply). Prints bytes and ms (best of N).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from guest import Guest  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    opts = ap.parse_args()
    g = Guest()
    try:
        g.sh("dd if=/dev/urandom of=/root/data bs=1M count=4 2>/dev/null; exec 3</root/data")
        rows = {}
        for _ in range(opts.rounds):
            for compress in (False, True):
                saved = g.request("saveMachine", compress=compress, wait=300)
                restored = g.request("restoreMachine", wait=300)
                best = rows.setdefault(compress, [saved["bytes"], 1 << 30, 1 << 30])
                best[1] = min(best[1], saved["save_ms"])
                best[2] = min(best[2], restored["restore_ms"])
    finally:
        g.close()
    print(f"machine blob in Node (256 MiB guest, booted), best of {opts.rounds}")
    print(f"{'blob':<10} | {'bytes':>12} | {'save ms':>8} | {'restore ms (new objects, to a shell reply)':>42}")
    for compress, (size, save, restore) in rows.items():
        print(f"{'gzip' if compress else 'plain':<10} | {size:>12,} | {save:>8} | {restore:>42}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`serve --db` under SIGKILL (not a test): kill it N times while three clients create files and
fsync them, restart, and count the acknowledged files that are missing or wrong (must be 0).
tests/test_serve.py runs the same with two dozen kills.

    .venv/bin/python bench/serve_crash.py [--kills 120]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from serving import sigkill_rounds


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=120)
    opts = ap.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        acked, lost = sigkill_rounds(str(Path(tmp) / "fs.sqlite"), opts.kills)
    print(
        f"serve --db: {opts.kills} SIGKILLs during fsync'd writes from 3 clients: {len(acked)} files "
        f"acknowledged, {len(lost)} lost or wrong ({time.monotonic() - started:.0f} s)"
    )
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())

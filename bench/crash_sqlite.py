"""Crash-consistency run on CPython (not a test): SIGKILL a writer doing fsync'd writes on a
SQLite store at random points, many times, and check after each kill that every file whose
fsync had been answered is intact, that the store opens, and what the open-time check repaired.

    python bench/crash_sqlite.py [--kills 100] [--seed 1]

The suite runs the same loop three times (tests/test_store.py); this prints the tally.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_store import check_after_crash, crash_once  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    logging.getLogger("pyninep_browser").setLevel(logging.ERROR)  # repairs are counted instead
    rnd = random.Random(args.seed)
    synced: dict[str, str] = {}
    checked = repairs = lost = 0
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.kills):
            # A new database every 20 kills keeps the filesystem under its 1 GiB quota; within
            # one, every file fsynced by any earlier writer is checked again after each kill.
            db = str(Path(tmp) / f"crash{run // 20}.db")
            if run % 20 == 0:
                synced = {}
            synced.update(crash_once(db, run, rnd.uniform(0.0, 0.8)))
            try:
                repairs += len(check_after_crash(db, synced))
            except AssertionError as exc:
                lost += 1
                print(f"kill {run}: LOST {exc}")
            checked += len(synced)
            if run % 10 == 9:
                print(f"{run + 1} kills, {checked} fsynced-file checks so far", flush=True)
    print(f"crash tally (SQLite, CPython): runs {args.kills}, kills {args.kills}, "
          f"fsynced-file checks {checked}, files lost {lost}, repairs reported {repairs}")


if __name__ == "__main__":
    main()

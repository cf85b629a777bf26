"""Long fuzz run (not in the suite): python bench/fuzz_long.py [--frames N] [--seed S]

Prints crashes (exceptions escaping handle or logged inside it), hangs (a handle() call over 1 s),
malformed replies, peak memory and frames/s.
"""

import argparse
import logging
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fuzzing import check_reply, frames  # noqa: E402
from pyninep_browser import Server  # noqa: E402


class Count(logging.Handler):
    def __init__(self):
        super().__init__()
        self.n = 0

    def emit(self, record):
        self.n += 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    logger = logging.getLogger("pyninep_browser")
    logger.propagate = False
    internal = Count()
    logger.addHandler(internal)
    server = Server()
    crashes = hangs = bad = 0
    slowest = 0.0
    start = time.perf_counter()
    gen = frames(args.seed)
    for i in range(args.frames):
        frame = next(gen)
        t = time.perf_counter()
        try:
            reply = server.handle(frame)
        except Exception as exc:  # noqa: BLE001 - counting is the point
            crashes += 1
            print(f"crash at frame {i}: {exc!r}")
            continue
        dt = time.perf_counter() - t
        slowest = max(slowest, dt)
        if dt > 1.0:
            hangs += 1
            print(f"hang at frame {i}: {dt:.2f} s")
        try:
            check_reply(frame, reply)
        except AssertionError as exc:
            bad += 1
            print(f"malformed reply at frame {i}: {exc}")
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"frames {args.frames:,}  seconds {elapsed:.1f}  frames/s {args.frames / elapsed:,.0f}")
    print(f"escaped exceptions {crashes}  logged internal errors {internal.n}  hangs {hangs}  "
          f"malformed replies {bad}  slowest call {slowest * 1000:.1f} ms  peak RSS {peak:.0f} MiB")
    return 1 if crashes or hangs or bad or internal.n else 0


if __name__ == "__main__":
    sys.exit(main())

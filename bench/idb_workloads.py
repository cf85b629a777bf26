"""Persistence's cost (not a test): the guest workloads of bench/guest_workloads.py in real
Chromium with our server on IndexedDB storage, on memory storage, and v86's built-in JavaScript
9p, same browser, same run; plus the latency of an fsync'd 1 MiB write.

    .venv/bin/python bench/idb_workloads.py [--rounds 2] [--variants builtin,memory,indexeddb]

Each variant boots the guest with ``pyninep.root=none`` (host9p on /mnt, workloads from the
initramfs) in a fresh profile; all of them boot first and each round takes the columns in turn.
Times come from the guest's /proc/uptime (10 ms resolution; the 16 MiB rows: one of
guest_workloads.PASSES passes); best of N rounds. The fsync row writes 1 MiB with ``dd conv=fsync`` 10 times and prints the mean.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from chromium import Browser, SiteServer  # noqa: E402
from guest_workloads import MOUNT, SETUP, WORKLOADS, keep_best, round_script  # noqa: E402

FSYNC = ("dd if=/dev/urandom of=/tmp/onemib bs=1M count=1 2>/dev/null; t=$(now); i=0;"
         " while [ $i -lt 10 ]; do dd if=/tmp/onemib of=$D/w bs=1M conv=fsync 2>/dev/null;"
         " i=$((i+1)); done; echo \"fsync'd 1 MiB write=$(( ($(now) - t) / 10 ))\"")


class Variant:
    """One column: a browser with a fresh profile, its page booted with the guest."""

    def __init__(self, pw, site, variant: str, profile: Path) -> None:
        self.name = variant
        self.browser = Browser(pw, profile)
        self.page = self.browser.page()
        self.page.goto(site.url + "tests/pages/idb.html")
        self.page.wait_for_function("window.ready === true", timeout=60_000)
        storage = {"builtin": "builtin", "memory": "memory", "indexeddb": "indexeddb:bench"}[variant]
        # Our server under the guest's own mount (cache=loose: docs/guest.md); v86's 9p as before.
        cache = "none" if variant == "builtin" else "loose"
        cmdline = f"pyninep.root=none pyninep.mount={MOUNT.format(cache=cache)}"
        self.page.evaluate("(o) => T.boot(o)", {"storage": storage, "cmdline": cmdline,
                                                "options": {"image": None}})
        self.sh(SETUP)

    def sh(self, script: str, timeout: int = 900_000) -> str:
        r = self.page.evaluate("([s, t]) => T.sh(s, t)", [script, timeout])
        if r["status"]:
            raise RuntimeError(f"{self.name}: exit {r['status']}: {r['output'][-500:]}")
        return r["output"]

    def run_round(self, results: dict[str, int]) -> None:
        """Every workload once, then the fsync row; each row keeps its best."""
        keep_best(self.sh(round_script("/mnt/bench", "\n" + FSYNC)), results)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--variants", default="builtin,memory,indexeddb")
    opts = ap.parse_args()
    from playwright.sync_api import sync_playwright

    variants = opts.variants.split(",")
    columns: dict[str, dict[str, int]] = {}
    started = time.time()
    site = SiteServer()
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
            # Every column's guest is up first and the rounds take the columns in turn, as in
            # guest_workloads.py: this machine drifts by tens of per cent over minutes.
            running: list[Variant] = []
            try:
                for v in variants:
                    running.append(Variant(pw, site, v, Path(tmp) / v))
                    columns[v] = {}
                for _ in range(opts.rounds):
                    for col in running:
                        col.run_round(columns[col.name])
            finally:
                for col in running:
                    col.browser.close()
    finally:
        site.close()
    names = [n for n, _ in WORKLOADS] + ["fsync'd 1 MiB write"]
    head = " | ".join(f"{v:>9}" for v in variants)
    ratios = [v for v in ("memory", "builtin") if v in variants and "indexeddb" in variants]
    print(f"\nguest workloads in Chromium, ms (best of {opts.rounds} rounds taking the columns in turn; "
          "16 MiB rows: one pass); ratios: indexeddb / peer")
    print(f"{'workload':<22} | {head} | " + " | ".join(f"idb/{r}" for r in ratios))
    for n in names:
        cells = " | ".join(f"{columns[v].get(n, -1):>9}" for v in variants)
        rs = []
        for r in ratios:
            a, b = columns["indexeddb"].get(n), columns[r].get(n)
            rs.append(f"{a / b:>8.2f}" if a is not None and b else f"{'-':>8}")
        print(f"{n:<22} | {cells} | " + " | ".join(rs))
    print(f"({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time to a shell prompt in the page, in headless Chromium: the first visit (a new profile: the
machine saved at build time is downloaded and restored) and the returning visit (the machine this
browser saved is restored from IndexedDB), and the bytes a first visit downloads.

Usage: python bench/page.py [DIST] [--runs N]      (./build.sh bench runs it)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pyninep_browser.__main__ import make_site_server  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
READY = "window.pyninep && (window.pyninep.timing.prompt_ms || window.pyninep.failed)"


def visit(page, url):
    started = time.monotonic()
    page.goto(url)
    page.wait_for_function(READY, timeout=180_000)
    failed = page.evaluate("window.pyninep.failed")
    if failed:
        raise SystemExit(f"bench/page.py: the page failed: {failed}")
    return time.monotonic() - started, page.evaluate("window.pyninep.timing"), page.evaluate("window.pyninep.source")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dist", nargs="?", default=str(ROOT / "dist"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    server = make_site_server(Path(args.dist), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    first, again, python, downloaded = [], [], [], []
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            context = pw.chromium.launch_persistent_context(
                f"{tmp}/profile-{run}", executable_path="/usr/bin/chromium", args=FLAGS,
                viewport={"width": 1180, "height": 720})
            page = context.pages[0] if context.pages else context.new_page()
            sizes: list[int] = []
            page.on("requestfinished", lambda r: sizes.append(r.sizes()["responseBodySize"]))
            wall, timing, source = visit(page, url)
            assert source == "shipped", source
            first.append(wall)
            python.append(timing["python_ms"] / 1000)
            downloaded.append(sum(sizes))
            page.evaluate("window.pyninep.save()")
            wall, timing, source = visit(page, url)
            assert source == "saved", source
            again.append(wall)
            context.close()
    server.shutdown()

    def row(name, values, unit="s"):
        print(f"  {name:<40} median {statistics.median(values):6.2f} {unit}   "
              f"(runs: {', '.join(f'{v:.2f}' for v in values)})")

    print(f"page: time to a shell prompt in headless Chromium ({args.runs} runs, new profile each)")
    row("first visit (shipped machine restored)", first)
    row("  of which Python (Pyodide) ready at", python)
    row("returning visit (saved machine restored)", again)
    print(f"  first visit downloads {statistics.median(downloaded) / 1e6:.1f} MB "
          f"(response bodies; the saved machine is gzipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

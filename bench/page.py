"""Time to a shell prompt in the page, in headless Chromium (not a test): the first visit (a new
profile: the machine saved at build time is downloaded and restored) and every kind of return
(a reload, a closed and reopened tab, a quit and restarted browser, a browser SIGKILLed and
started again), each a restore of the machine the page saved by itself over the files in
IndexedDB; the machine save's size and time; the bytes a first visit downloads.

Usage: python bench/page.py [DIST] [--runs N]      (./build.sh bench runs it; median of N)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from chromium import Browser, SiteServer  # noqa: E402
from page_user import run, visit, wait_ready  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dist", nargs="?", default=str(ROOT / "dist"))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    site = SiteServer(Path(args.dist))
    rows: dict[str, list[float]] = {k: [] for k in (
        "first visit (shipped machine restored)", "  of which Python (Pyodide) ready at",
        "reload", "tab closed, opened again", "browser quit, started again",
        "browser SIGKILLed, started again", "  keys reach the guest (after a kill)")}
    saves: list[tuple[int, int]] = []
    downloaded: list[int] = []
    sources: set[str] = set()
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
        for n in range(args.runs):
            browser = Browser(pw, Path(tmp) / f"profile-{n}")
            page = browser.page()
            sizes: list[int] = []
            page.on("requestfinished", lambda r: sizes.append(r.sizes()["responseBodySize"]))
            _, timing, source = visit(page, site.url)
            assert source == "shipped", source
            rows["first visit (shipped machine restored)"].append(timing["prompt_ms"] / 1000)
            rows["  of which Python (Pyodide) ready at"].append(timing["python_ms"] / 1000)
            downloaded.append(sum(sizes))

            def work(tag: str) -> None:
                # What a visitor does before leaving: a file, then a moment (the page saves).
                t = page.evaluate("Date.now()")
                run(page, f"echo {tag} > /root/{tag}; echo did-$((6*7))", r"did-42")
                page.wait_for_function("t => window.pyninep.lastSave && window.pyninep.lastSave.at > t"
                                       " && !window.pyninep.saving", arg=t, timeout=30_000)
                last = page.evaluate("window.pyninep.lastSave")
                saves.append((last["bytes"], last["ms"]))

            def back(name: str, timing: dict, source: str) -> None:
                sources.add(source)
                rows[name].append(timing["prompt_ms"] / 1000)
                run(page, "cat /root/r*; echo seen-$((7*7))", r"seen-49")

            work("r1")
            page.reload()
            back("reload", *wait_ready(page))
            work("r2")
            page.close()
            page = browser.page()
            back("tab closed, opened again", *visit(page, site.url)[1:])
            work("r3")
            browser.close()
            browser = Browser(pw, Path(tmp) / f"profile-{n}")
            page = browser.page()
            back("browser quit, started again", *visit(page, site.url)[1:])
            work("r4")
            browser.kill()
            browser = Browser(pw, Path(tmp) / f"profile-{n}")
            page = browser.page()
            _, timing, source = visit(page, site.url)
            back("browser SIGKILLed, started again", timing, source)
            timing = page.evaluate("window.pyninep.timing")  # input_ms comes once the guest dropped its caches
            rows["  keys reach the guest (after a kill)"].append(timing.get("input_ms", timing["prompt_ms"]) / 1000)
            browser.close()
            time.sleep(0.5)
    site.close()

    print(f"page: time to a shell prompt in headless Chromium ({args.runs} runs, new profile each; "
          f"returns restored: {', '.join(sorted(sources))})")
    for name, values in rows.items():
        print(f"  {name:<42} median {statistics.median(values):5.2f} s   "
              f"(runs: {', '.join(f'{v:.2f}' for v in values)})")
    print(f"  machine save (the page's own, session only): median {statistics.median(b for b, _ in saves) / 1e6:.1f} MB "
          f"in {statistics.median(ms for _, ms in saves):.0f} ms ({len(saves)} saves)")
    print(f"  first visit downloads {statistics.median(downloaded) / 1e6:.1f} MB "
          f"(response bodies; the saved machine is gzipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A first visit to the page as a static host serves it (not a test): headless Chromium with a new
profile each run, the site served with gzip (Content-Encoding, as GitHub Pages, Netlify or nginx's
gzip_static do; the Debian base's content files plain, with HTTP ranges), served locally and through
Chromium's network emulation (CDP: 20 Mbit/s down, 40 ms latency by default). Prints the time to a
usable prompt, the bytes on the wire before the prompt and for the whole visit (the prompt, a
command, and the page settling), and which files they were; then a return visit (a reload) to the
prompt with the previous session's file.

Usage: python bench/visit.py [DIST] [--runs N] [--mbit 20] [--latency-ms 40]
       (./build.sh bench runs it on dist/, the Debian page)
"""

from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from chromium import Browser  # noqa: E402
from page_user import run, visit, wait_ready  # noqa: E402

from pyninep_browser.sitefiles import SITE_TYPES  # noqa: E402

# What a static host compresses: everything but content that is compressed already.
PLAIN = (".gz", ".zst", ".png", ".whl", ".zip")


class GzipSite:
    """The built site over HTTP/1.1 on 127.0.0.1: gzip (level 6, once per file, kept) for the
    page's files, byte ranges for the base's content files (debian/...)."""

    def __init__(self, dist: Path) -> None:
        cache: dict[Path, bytes] = {}
        lock = threading.Lock()
        self.sent: list[tuple[str, int]] = []  # (path, bytes on the wire), in the order sent
        sent = self.sent

        class Handler(http.server.SimpleHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **SITE_TYPES}  # noqa: RUF012

            def log_message(self, format: str, *args) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                path = Path(self.translate_path(self.path))
                if path.is_dir():
                    path = path / "index.html"
                if not path.is_file():
                    self.send_error(404)
                    return
                ctype = self.guess_type(str(path))
                rel = path.relative_to(dist).as_posix()
                data = path.read_bytes()
                if rel.startswith("debian/") and self.headers.get("Range", "").startswith("bytes="):
                    first, _, last = self.headers["Range"][6:].partition("-")
                    lo = int(first)
                    hi = min(int(last) if last else len(data) - 1, len(data) - 1)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {lo}-{hi}/{len(data)}")
                    data = data[lo : hi + 1]
                elif not rel.startswith("debian/") and not rel.endswith(PLAIN) and "gzip" in self.headers.get(
                    "Accept-Encoding", ""
                ):
                    with lock:
                        if path not in cache:
                            cache[path] = gzip.compress(data, 6)
                        data = cache[path]
                    self.send_response(200)
                    self.send_header("Content-Encoding", "gzip")
                    self.send_header("Vary", "Accept-Encoding")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Cache-Control", "max-age=600")  # GitHub Pages' (and many hosts')
                self.end_headers()
                self.wfile.write(data)
                with lock:
                    sent.append((rel, len(data)))

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(dist)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def group(rel: str) -> str:
    for prefix, name in (
        ("debian/base/", "debian/base/ (the files the guest read)"),
        ("machine/", "machine/ (the saved machine)"),
        ("pysnap/", "pysnap/ (Python's start-up)"),
        ("pyodide/pyodide.asm.wasm", "pyodide/pyodide.asm.wasm"),
        ("pyodide/", "pyodide/ (the rest)"),
        ("v86/", "v86/"),
        ("guest/", "guest/"),
        ("images/", "images/"),
        ("debian/", "debian/fs.json"),
    ):
        if rel.startswith(prefix):
            return name
    return "the page (html, js, css, manifest, wheel)"


def one_visit(pw, profile: Path, site: GzipSite, throttle: dict | None, query: str = "") -> dict:
    browser = Browser(pw, profile)
    try:
        page = browser.page()
        if throttle:
            cdp = page.context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.send("Network.emulateNetworkConditions", throttle)
        # What the host sent (the page's own requests and its service worker's), counted there.
        site.sent.clear()
        wall, timing, source = visit(page, site.url + (f"?{query}" if query else ""), timeout=300_000)
        before = list(site.sent)
        t = time.monotonic()
        run(page, "python3 -c 'print(6*7)'; echo ok-$((1+1))", r"ok-2", 120_000)
        python_s = time.monotonic() - t
        run(page, "echo kept > /root/visit-note; sync; echo saved-$((2+2))", r"saved-4", 60_000)
        time.sleep(5)  # the page settles: the service worker asks for the build's files, the save
        after = list(site.sent)
        t = time.monotonic()
        page.reload()
        rtiming, rsource = wait_ready(page, 300_000)
        back_wall = time.monotonic() - t
        kept = "kept" in run(page, "cat /root/visit-note; echo back-$((3+3))", r"back-6", 60_000)
        return {
            "source": source,
            "prompt_s": timing["prompt_ms"] / 1000,
            "timing": timing,
            "rtiming": rtiming,
            "wall_s": wall,
            "before": before,
            "after": after,
            "python_s": python_s,
            "return_s": rtiming["prompt_ms"] / 1000,
            "return_wall_s": back_wall,
            "return_source": rsource,
            "kept": kept,
        }
    finally:
        browser.close()


def mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def report(label: str, results: list[dict]) -> None:
    med = statistics.median
    print(f"\n## {label} ({len(results)} runs, median; each a new profile)")
    print(f"first visit, prompt (page's clock)   {med(r['prompt_s'] for r in results):6.2f} s   "
          f"(runs: {', '.join(format(r['prompt_s'], '.2f') for r in results)}; from {results[0]['source']})")
    print(f"  python3 -c 'print(6*7)' then       {med(r['python_s'] for r in results):6.2f} s")
    print(f"return visit (reload), prompt        {med(r['return_s'] for r in results):6.2f} s   "
          f"(from {results[0]['return_source']}; the file kept: {all(r['kept'] for r in results)})")
    for key, what in (("timing", "first"), ("rtiming", "return")):
        steps = sorted({k for r in results for k in r[key]}, key=lambda k: med(r[key].get(k, 0) for r in results))
        print(f"  {what} visit, the page's clock at each step (ms, median): "
              + ", ".join(f"{k.removesuffix('_ms')} {med(r[key].get(k, 0) for r in results):.0f}" for k in steps))
    last = results[-1]
    for name, key in (("before the prompt", "before"), ("the whole visit", "after")):
        by: dict[str, list[int]] = {}
        for url, size in last[key]:
            g = group(url)
            by.setdefault(g, [0, 0])
            by[g][0] += max(size, 0)
            by[g][1] += 1
        total = sum(v[0] for v in by.values())
        print(f"bytes the host sent, {name}: {mb(total)} in {sum(v[1] for v in by.values())} requests")
        for g, (n, count) in sorted(by.items(), key=lambda kv: -kv[1][0]):
            print(f"    {mb(n):>10}  {count:4d}  {g}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dist", nargs="?", default=str(ROOT / "dist"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mbit", type=float, default=20.0)
    parser.add_argument("--latency-ms", type=float, default=40.0)
    parser.add_argument("--query", default="", help="added to the page's URL, e.g. nosnap (no Pyodide snapshot)")
    parser.add_argument("--throttled-only", action="store_true")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    dist = Path(args.dist)
    if not (dist / "manifest.json").is_file():
        print(f"bench/visit.py: {dist} is not built: run ./build.sh", file=sys.stderr)
        return 2
    site = GzipSite(dist)
    throttle = {
        "offline": False,
        "latency": args.latency_ms,
        "downloadThroughput": args.mbit * 1e6 / 8,
        "uploadThroughput": args.mbit * 1e6 / 8,
    }
    print(f"# A first visit to {dist} (gzip), headless Chromium, load average {open('/proc/loadavg').read().split()[0]}")
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
            conditions = [("served locally", None)] if not args.throttled_only else []
            conditions.append((f"{args.mbit:g} Mbit/s, {args.latency_ms:g} ms (Chromium's network emulation)", throttle))
            for label, cond in conditions:
                if args.query:
                    label += f", ?{args.query}"
                results = [
                    one_visit(pw, Path(tmp) / f"{label[:6]}-{n}", site, cond, args.query) for n in range(args.runs)
                ]
                report(label, results)
    finally:
        site.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

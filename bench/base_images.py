"""Base images (v86's fs2json) against today's image and against v86's own 9p (not a test).

    .venv/bin/python bench/base_images.py [DIST]

The default tree plus 300 small files and a 5 MB one, as today's image and exported with
``image export-fs2json`` (plain and zstd), on a local HTTP host that counts requests:
- Node: time to a prompt, HTTP requests and bytes to get there, and the first and second read of
  a small file (ms, timed from the host around the guest's `cat`, minus an empty command), for
  today's image, the base through our server (plain, zstd), and v86's own 9p on the same fs.json
  (local files: v86 reads basefs from disk under Node);
- Chromium (the demo page, real IndexedDB): time to a prompt booting the base, cold (new
  profile) and warm (reload: the tree and every file read come from IndexedDB), against the page's
  own image booted with ?fresh, cold and warm.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from base_http import BaseHost  # noqa: E402
from guest import Guest  # noqa: E402

from pyninep_browser.fs.image import dump_image, load_image  # noqa: E402
from pyninep_browser.fs2json import export_fs2json  # noqa: E402


def content_bytes(host: BaseHost, mark: int, root: Path) -> tuple[int, int]:
    reqs = [r for r in host.since(mark) if "/base/" in r[0] or r[0].endswith("fs.json")]
    total = 0
    for path, rng, status in reqs:
        size = (root / path).stat().st_size if (root / path).exists() else 0
        if status == 206 and rng:
            a, _, b = rng[6:].partition("-")
            size = min(int(b) + 1, size) - int(a)
        total += size
    return len(reqs), total


def timed_read(g: Guest, path: str) -> float:
    t = time.perf_counter()
    g.sh("true")
    empty = time.perf_counter() - t
    t = time.perf_counter()
    g.sh(f"cat {path} > /dev/null")
    return (time.perf_counter() - t - empty) * 1000


def node_row(name: str, args: list[str], host: BaseHost | None, root: Path) -> dict:
    mark = host.mark() if host else 0
    t = time.perf_counter()
    g = Guest(*args, boot_timeout=600)
    wall = time.perf_counter() - t
    try:
        reqs, nbytes = content_bytes(host, mark, root) if host else (0, 0)
        cold = timed_read(g, "/srv/many/f017")
        warm = timed_read(g, "/srv/many/f017")
        big = timed_read(g, "/srv/big")
    finally:
        g.close()
    return {"name": name, "prompt_s": wall, "boot_ms": g.info["boot_ms"], "requests": reqs, "bytes": nbytes,
            "cold_ms": cold, "warm_ms": warm, "big_ms": big}


def page_rows(dist: Path, host: BaseHost) -> list[tuple[str, float]]:
    from playwright.sync_api import sync_playwright

    from chromium import Browser, SiteServer
    from page_user import wait_ready

    out = []
    site = SiteServer(dist)
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
        for name, query in (("base image (plain)", f"?basefs={host.url}plain/fs.json&nosw"),
                            ("today's image, ?fresh boot", "?fresh&nosw")):
            browser = Browser(pw, Path(tmp) / name.replace(" ", "_"))
            try:
                page = browser.page()
                for visit in ("cold", "warm"):
                    mark = host.mark()
                    t = time.perf_counter()
                    if visit == "cold":
                        page.goto(site.url + query)
                    else:
                        page.wait_for_timeout(2000)
                        page.reload()
                    timing, _ = wait_ready(page, timeout=600_000)
                    wall = time.perf_counter() - t
                    reqs = len([r for r in host.since(mark) if "/base/" in r[0]])
                    out.append((f"{name}, {visit}", wall, timing.get("prompt_ms", 0) / 1000, reqs))
            finally:
                browser.kill()
    site.close()
    return out


def main() -> None:
    dist = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "dist")
    fs = load_image((dist / "images" / "default.img").read_bytes())
    for i in range(300):
        fs.write_file(f"/srv/many/f{i:03}", f"small file {i}\n".encode() * (1 + i % 7))
    fs.write_file("/srv/big", random.Random(1).randbytes(5 * 1000 * 1000))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        export_fs2json(fs, root / "plain")
        export_fs2json(fs, root / "zst", zstd=True)
        (root / "today.img").write_bytes(dump_image(fs))
        files = sum(1 for _ in (root / "plain" / "base").iterdir())
        size = sum(p.stat().st_size for p in (root / "plain" / "base").iterdir())
        print(f"base: {len(fs.inodes)} inodes, {files} content files, {size / 1e6:.1f} MB "
              f"(zstd {sum(p.stat().st_size for p in (root / 'zst' / 'base').iterdir()) / 1e6:.1f} MB); "
              f"today's image {(root / 'today.img').stat().st_size / 1e6:.1f} MB")
        host = BaseHost(root)
        rows = [
            node_row("today's image (ours)", ["--image", str(root / "today.img")], None, root),
            node_row("base, plain (ours)", ["--basefs", host.url + "plain/fs.json", "--baseurl", host.url + "plain/base/"],
                     host, root),
            node_row("base, zstd (ours)", ["--basefs", host.url + "zst/fs.json", "--baseurl", host.url + "zst/base/"],
                     host, root),
            node_row("base, plain (v86's 9p)", ["--builtin", "--basefs", str(root / "plain" / "fs.json"),
                                               "--baseurl", str(root / "plain" / "base") + "/"], None, root),
        ]
        print("\nNode: boot to a prompt, then reads of a small file (cold, again) and of the 5 MB file")
        print(f"{'':28} {'prompt s':>9} {'requests':>9} {'MB fetched':>11} {'small cold ms':>14} "
              f"{'again ms':>9} {'5 MB ms':>8}")
        for r in rows:
            print(f"{r['name']:28} {r['prompt_s']:9.1f} {r['requests']:9} {r['bytes'] / 1e6:11.2f} "
                  f"{r['cold_ms']:14.1f} {r['warm_ms']:9.1f} {r['big_ms']:8.0f}")
        v86 = rows[3]
        for r in rows[1:3]:
            print(f"  {r['name']}: prompt {r['prompt_s'] / v86['prompt_s']:.2f}x v86's 9p, "
                  f"first small read {r['cold_ms'] / max(v86['cold_ms'], 0.1):.2f}x")
        print("\nChromium, the demo page: time to a prompt (wall s, the page's prompt_ms), base requests")
        for name, wall, prompt, reqs in page_rows(dist, host):
            print(f"  {name:36} {wall:6.1f} s  (prompt_ms {prompt:.1f} s)  {reqs} base requests")
        host.close()


if __name__ == "__main__":
    main()

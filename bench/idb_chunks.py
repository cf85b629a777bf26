"""Which chunk size for file data in IndexedDB (not a test): real Chromium, real IndexedDB.

    .venv/bin/python bench/idb_chunks.py [--mib 16]

For each chunk size: write N MiB in one strict readwrite transaction (what an fsync after a big
write commits), read it back one get() per chunk (what lazy loading does), and commit a 4 KiB
change to one chunk strictly (what a small write + fsync costs: the whole chunk is rewritten).
Prints ms per row (best of 3).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from chromium import Browser, SiteServer  # noqa: E402

MEASURE = """async ([mib, size]) => {
    const name = `chunks-${size}`;
    await new Promise((r) => { const d = indexedDB.deleteDatabase(name); d.onsuccess = d.onerror = r; });
    const db = await new Promise((resolve, reject) => {
        const r = indexedDB.open(name, 1);
        r.onupgradeneeded = () => r.result.createObjectStore("chunks");
        r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error);
    });
    const done = (tx) => new Promise((res, rej) => { tx.oncomplete = res; tx.onabort = () => rej(tx.error); });
    const n = (mib << 20) / size;
    const data = new Uint8Array(mib << 20);
    for (let i = 0; i < data.length; i += 4096) data[i] = i & 255;
    const best = { write: Infinity, read: Infinity, small: Infinity };
    for (let round = 0; round < 3; round++) {
        let t = performance.now();
        let tx = db.transaction("chunks", "readwrite", { durability: "strict" });
        for (let i = 0; i < n; i++) tx.objectStore("chunks").put(data.slice(i * size, (i + 1) * size), `1:${i}`);
        await done(tx);
        best.write = Math.min(best.write, performance.now() - t);
        t = performance.now();
        const gets = [];
        for (let i = 0; i < n; i++) gets.push(new Promise((res) => {
            const g = db.transaction("chunks", "readonly").objectStore("chunks").get(`1:${i}`);
            g.onsuccess = () => res(g.result);
        }));
        await Promise.all(gets);
        best.read = Math.min(best.read, performance.now() - t);
        t = performance.now();
        for (let k = 0; k < 5; k++) {
            tx = db.transaction("chunks", "readwrite", { durability: "strict" });
            const chunk = data.slice(0, size); chunk[k] ^= 1;
            tx.objectStore("chunks").put(chunk, `1:${k}`);
            await done(tx);
        }
        best.small = Math.min(best.small, (performance.now() - t) / 5);
    }
    db.close();
    return best;
}"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=16)
    opts = ap.parse_args()
    from playwright.sync_api import sync_playwright

    site = SiteServer()
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
            browser = Browser(pw, Path(tmp) / "profile")
            try:
                page = browser.page()
                page.goto(site.url + "tests/pages/idb.html")
                print(f"IndexedDB in Chromium, {opts.mib} MiB, strict durability, best of 3 (ms)")
                print(f"{'chunk':>8} | {'write all':>9} | {'read all (1 get/chunk)':>22} | {'4 KiB change + commit':>21}")
                for size in (16 << 10, 64 << 10, 256 << 10, 1 << 20):
                    r = page.evaluate(MEASURE, [opts.mib, size])
                    print(f"{size >> 10:>6} K | {r['write']:>9.0f} | {r['read']:>22.0f} | {r['small']:>21.1f}")
            finally:
                browser.close()
    finally:
        site.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

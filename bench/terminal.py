"""The terminal's throughput in headless Chromium (not a test): lines per second from the guest's
console to the screen (until the last line is in xterm.js's buffer), the same output piped to
`wc -l` inside the guest (the guest's own time, nothing crosses the serial port), and how long
Ctrl+C takes to stop a long output and give the prompt back. Each on two pages side by side: the
page's terminal as it was before batching its writes to xterm.js (?flushms=0) and as it is.

Two outputs: `seq N` (short lines, ~6 bytes) and N listing-like lines of ~60 bytes (what
`ls -lR /` prints).

Usage: python bench/terminal.py [DIST] [--lines N] [--runs R]      (median of R)
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
from page_user import visit  # noqa: E402

# A ~60-byte line per number, like a line of `ls -l`, made by the shell's awk (no file system).
LISTING = ("awk 'BEGIN{for(i=1;i<=%d;i++) "
           "printf \"-rw-r--r--    1 root     root   %%8d Dec  1 03:47 file-%%d\\n\", i*7, i}'")


# The screen's last lines only: reading the whole scrollback on every poll would take the page's
# main thread (where the emulator runs) away from the guest.
TAIL_MATCHES = """re => {
    const b = window.pyninep.terminal.buffer.active, lines = [];
    for (let i = Math.max(0, b.length - 40); i < b.length; i++) {
        lines.push(b.getLine(i).translateToString(true));
    }
    return new RegExp(re).test(lines.join("\\n"));
}"""


def timed(page, command: str, until: str, timeout: float = 600_000) -> float:
    """Seconds from pressing Enter on `command` (typed and echoed first: typing is not timed) to
    `until` (a regex over the screen's last lines) showing."""
    page.keyboard.type(command)
    page.wait_for_function(
        "c => window.pyninep.screenText().replace(/\\n/g, '').endsWith(c)", arg=command[-12:], timeout=30_000)
    page.keyboard.press("Enter")
    started = time.monotonic()
    page.wait_for_function(TAIL_MATCHES, arg=until, timeout=timeout, polling=50)
    return time.monotonic() - started


def interrupt(page, tag: str) -> float | None:
    """Seconds from Ctrl+C during an endless output to the prompt on the screen (then checks that
    it answers), or None if it did not come within 20 s."""
    page.keyboard.type("yes 'an endless line of output'\n")
    page.wait_for_timeout(1500)
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    started = time.monotonic()
    page.keyboard.press("Control+c")
    try:
        page.wait_for_function(TAIL_MATCHES, arg=r"\^C\s*\n\S+[#$]\s*$", timeout=20_000, polling=20)
    except PlaywrightTimeout:
        return None
    took = time.monotonic() - started
    timed(page, f"echo {tag}-$((3*3))", rf"{tag}-9", timeout=20_000)
    return took


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dist", nargs="?", default=str(ROOT / "dist"))
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    n = args.lines
    outputs = {"seq": f"seq {n}", "listing (~60 B/line)": LISTING % n}
    # The page as it was (one write to xterm.js per macrotask: ?flushms=0) and as it is (batched
    # during a flood, web/page/terminal.js), side by side so both see the same load: two browsers
    # (a second tab of one browser would find the sandbox open in the first).
    pages = {"before (flushms=0)": "&flushms=0", "after": ""}
    rows: dict[str, list[float]] = {}
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
        site = SiteServer(Path(args.dist))
        browsers = []
        try:
            opened = {}
            for i, (name, extra) in enumerate(pages.items()):
                browsers.append(Browser(pw, Path(tmp) / f"profile{i}"))
                opened[name] = page = browsers[-1].page()
                visit(page, site.url + "?memory&nofiles&nosw" + extra)
                timed(page, (LISTING % 2000) + "; echo warm-$((1+1))", r"\bwarm-2")  # the JIT warmed up
            for k in range(args.runs):
                for j, (name, command) in enumerate(outputs.items()):
                    page = opened["after"]
                    tag = f"end{k}x{j}"
                    piped = timed(page, f"{command} | wc -l; echo {tag}-$((1+1))", rf"\n\s*{n}\s+{tag}-2")
                    rows.setdefault(f"{name}: piped to wc -l (guest only)", []).append(n / piped)
                    for variant, page in opened.items():
                        shown = timed(page, f"{command}; echo {tag}-$((2+2))", rf"\b{n}\b[^\n]*\n{tag}-4")
                        rows.setdefault(f"{name}: to the screen, {variant}", []).append(n / shown)
                for variant, page in opened.items():
                    took = interrupt(page, f"stopped-{k}")
                    if took is None:
                        print(f"  Ctrl+C did not stop the output within 20 s ({variant})", file=sys.stderr)
                    else:
                        rows.setdefault(f"Ctrl+C to the prompt, {variant} (s)", []).append(took)
        finally:
            for browser in browsers:
                browser.close()
            site.close()
    print(f"terminal: {n} lines through the serial console in headless Chromium ({args.runs} runs)")
    for name, values in sorted(rows.items()):
        unit = "" if name.endswith("(s)") else " lines/s"
        print(f"  {name:<58} median {statistics.median(values):9.2f}{unit}   "
              f"(runs: {', '.join(f'{v:.2f}' for v in values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

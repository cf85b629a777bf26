"""Real Chromium for the IndexedDB tests and the crash script: a site server and a killable browser.

The browser is started as our own process (``/usr/bin/chromium --remote-debugging-port=0`` on a
profile directory) and Playwright attaches over CDP, so a test can SIGKILL the browser's whole
process group at any moment, as a crash or power cut would, and start it again on the same profile.
Pages come from dist/ (the built site) and, under ``/tests/``, from this directory (test-only pages
and helpers such as ``js/frames.mjs``).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from guest import DEBIAN_DIST, DIST  # noqa: F401 (the sites the tests serve)

from pyninep_browser.sitefiles import SITE_TYPES

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--no-default-browser-check", "--disable-features=Translate,MediaRouter"]


class SiteServer:
    """dist/ at /, tests/ at /tests/, on 127.0.0.1 and a free port, in a thread."""

    def __init__(self, dist: Path = DIST, tests: Path = TESTS) -> None:
        if not (dist / "pyninep.js").is_file():
            raise RuntimeError("dist/ is not built: run ./build.sh")

        class Handler(http.server.SimpleHTTPRequestHandler):
            extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **SITE_TYPES}

            def translate_path(self, path: str) -> str:
                clean = path.split("?", 1)[0].split("#", 1)[0]
                if clean.startswith("/tests/"):
                    target = (tests / clean[len("/tests/"):]).resolve()
                    if tests.resolve() in target.parents:
                        return str(target)
                return super().translate_path(path)

            def log_message(self, format: str, *args) -> None:  # noqa: A002
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(dist)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Browser:
    """One Chromium process on ``profile``; ``page()`` gives a Playwright page in it."""

    def __init__(self, playwright, profile: Path, extra_flags: list[str] | None = None) -> None:
        if not CHROMIUM.exists():
            raise RuntimeError("Chromium is missing: apt-get install chromium")
        profile.mkdir(parents=True, exist_ok=True)
        self.profile = profile
        port_file = profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)
        # PYNINEP_CHROMIUM_LOG=DIR keeps every process's log (the storage service's included) in
        # DIR/chromium.log, one block per browser started: what to read when a crash test fails.
        log_dir = os.environ.get("PYNINEP_CHROMIUM_LOG")
        log = subprocess.DEVNULL
        if log_dir:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            log = open(Path(log_dir) / "chromium.log", "ab")
            log.write(f"=== {time.strftime('%H:%M:%S')} chromium on {profile}\n".encode())
            log.flush()
            extra_flags = [*(extra_flags or []), "--enable-logging=stderr", "--v=0"]
        self.proc = subprocess.Popen(
            [str(CHROMIUM), *FLAGS, *(extra_flags or []), f"--user-data-dir={profile}",
             "--remote-debugging-port=0", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            start_new_session=True)  # its own process group: kill() takes every child with it
        if log_dir:
            log.close()
        deadline = time.monotonic() + 60
        while True:
            if port_file.is_file():
                text = port_file.read_text().split("\n")
                if len(text) >= 2 and text[0].strip():
                    port = int(text[0])
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("Chromium did not start")
            time.sleep(0.05)
        self.cdp = playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{port}")
        self.context = self.cdp.contexts[0]
        self.pid = self.proc.pid

    def page(self):
        page = self.context.new_page()
        page.on("pageerror", lambda exc: print("pageerror:", exc))
        return page

    def kill(self) -> None:
        """SIGKILL the browser and every process it started, now, and return once all of them
        are gone: IndexedDB lives in a utility process (the storage service), and a next browser
        on the same profile must not start while the killed one still holds its databases."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        _wait_group_gone(self.proc.pid)
        _kill_strays(self.profile)
        log_dir = os.environ.get("PYNINEP_CHROMIUM_LOG")
        if log_dir:  # the databases as the kill left them, for when the next open fails
            target = Path(log_dir) / f"killed-{time.strftime('%H%M%S')}-{self.proc.pid}"
            shutil.copytree(self.profile / "Default" / "IndexedDB", target,
                            ignore=shutil.ignore_patterns("*.blob"), dirs_exist_ok=True)
        try:
            self.cdp.close()
        except Exception:  # noqa: BLE001 - the connection died with the browser
            pass

    def close(self) -> None:
        """A normal shutdown: SIGTERM, which Chromium handles like quitting (it closes its
        databases); then the CDP connection (closing that first can hang on a live browser)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:  # helpers the browser left behind would keep writing into the profile
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        _kill_strays(self.profile)
        try:
            self.cdp.close()
        except Exception:  # noqa: BLE001
            pass


@contextlib.contextmanager
def first_visit(url: str, profile: Path):
    """A Chromium of its own on a new ``profile``, its page opened at ``url`` and waited for to
    the prompt: yields (page, where the machine came from). For a test module's one browser."""
    from playwright.sync_api import sync_playwright

    from page_user import visit

    with sync_playwright() as pw:
        browser = Browser(pw, profile)
        try:
            page = browser.page()
            wall, timing, source = visit(page, url)
            print(f"first visit: {source}, prompt in {timing['prompt_ms']} ms (wall {wall:.2f} s)")
            yield page, source
        finally:
            browser.close()


def _kill_strays(profile: Path) -> None:
    """SIGKILL what still runs on ``profile`` outside the browser's process group: Chromium's
    on-device-model utility process leaves the group and would outlive every browser a test
    starts (dozens per suite run)."""
    marker = f"--user-data-dir={profile}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if marker in args:
            try:
                os.kill(int(entry), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _wait_group_gone(pgid: int, timeout: float = 10.0) -> None:
    """Wait until no live (non-zombie) process is left in process group ``pgid``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive = True
                break
        if not alive:
            return
        time.sleep(0.01)
    raise RuntimeError(f"processes of the killed browser (group {pgid}) are still running")


def console_lines(page, pattern: str) -> list[str]:
    """Collect console messages matching ``pattern`` as they come (the list fills in)."""
    lines: list[str] = []
    regex = re.compile(pattern)
    page.on("console", lambda msg: lines.append(msg.text) if regex.search(msg.text) else None)
    return lines


def open_idb_page(browser: Browser, site: SiteServer, ledger: list[str] | None = None):
    """tests/pages/idb.html in ``browser``, ready (window.T); ``ledger`` receives the lines the
    page's frames workload logs (START/ACK), through a function the page awaits."""
    page = browser.page()
    if ledger is not None:
        page.expose_function("ledger", lambda line: ledger.append(line))
    page.goto(site.url + "tests/pages/idb.html")
    page.wait_for_function("window.ready === true", timeout=60_000)
    return page

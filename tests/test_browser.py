"""The built page in real headless Chromium: Pyodide serves the guest's root, a shell answers.

Playwright drives Debian's /usr/bin/chromium (it cannot download its own browsers here). The site
is served from dist/ by the same static server ``./build.sh serve`` uses.
"""

import threading
import time
from pathlib import Path

import pytest

from pyninep_browser.__main__ import make_site_server

DIST = Path(__file__).resolve().parent.parent / "dist"
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def site():
    if not (DIST / "index.html").is_file():
        pytest.fail("dist/ is not built: run ./build.sh")
    server = make_site_server(DIST, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # A sub-path, to prove the site uses relative URLs only.
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_page_boots_the_guest_and_runs_a_command(site, tmp_path):
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: apt-get install chromium (./build.sh test does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            started = time.monotonic()
            page.goto(site + "index.html")
            page.wait_for_function(
                "document.getElementById('terminal').textContent.trimEnd().endsWith('#')",
                timeout=120_000)
            boot = time.monotonic() - started
            assert "shell ready" in page.inner_text("#status")
            page.click("#terminal")
            page.keyboard.type("echo page-says-$((6*7)); uname -m; cat /etc/hostname\n")
            # Wait for the last command's output, not the first: the terminal
            # fills in as the guest writes to its serial port.
            page.wait_for_function(
                "(() => { const t = document.getElementById('terminal').textContent;"
                " const i = t.lastIndexOf('page-says-42');"
                " return i >= 0 && /i686\\s+pyninep/.test(t.slice(i)); })()",
                timeout=60_000)
            text = page.inner_text("#terminal")
            after = text.rsplit("page-says-42", 1)[1]
            assert "i686" in after and "pyninep" in after
            # The page's own API sees what the guest wrote.
            page.keyboard.type("echo from-guest > /root/seen-by-page\n")
            page.wait_for_function(
                "(() => { try { return new TextDecoder().decode("
                "window.pyninep.server.readFile('/root/seen-by-page')) === 'from-guest\\n'; }"
                " catch (e) { return false; } })()", timeout=30_000)
            # The default image's /py/run: Python in the page runs what the guest writes to it.
            page.keyboard.type("echo 'print(6*7, \"from\", \"py/run\")' > /py/run; cat /py/run\n")
            page.wait_for_function(
                "document.getElementById('terminal').textContent.includes('42 from py/run')",
                timeout=30_000)
            page.screenshot(path=str(tmp_path / "page.png"))
            assert not errors, errors
            print(f"page to shell: {boot:.1f} s")
        finally:
            browser.close()

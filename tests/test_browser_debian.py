"""The shipped page (dist/, ``./build.sh``): the Debian userland, as a visitor meets it in Chromium.

A first visit restores the saved Debian machine (no boot); bash, the guest's own python3 with json
and sqlite3, coreutils' ls with colours, nano and man work; /py/run (the page's Python) answers;
the files the guest read come from debian/base/ and stay in IndexedDB; a file written in /root
survives a reload, and the return is a restore of the visitor's own machine. One browser for the
module. Skipped when dist/ was built without the Debian base (``DEBIAN=0``).
"""

from __future__ import annotations

import json
import re
import time

import pytest

from chromium import DEBIAN_DIST, SiteServer, first_visit
from page_user import sh

PROMPT = r"root@pyninep:~# $"


@pytest.fixture(scope="module")
def site():
    manifest = DEBIAN_DIST / "manifest.json"
    if not manifest.is_file() or not json.loads(manifest.read_text()).get("baseurl"):
        pytest.skip("dist/ is not the Debian site: run ./build.sh (DEBIAN=0 leaves it out)")
    server = SiteServer(DEBIAN_DIST)
    yield server
    server.close()


@pytest.fixture(scope="module")
def page(site, tmp_path_factory):
    with first_visit(site.url, tmp_path_factory.mktemp("profile")) as (p, source):
        assert source == "shipped"  # the saved Debian machine, not a boot
        yield p


def test_the_first_visit_is_debian_at_a_bash_prompt(page):
    out = sh(page, "bash --version | head -1; cat /etc/debian_version; echo $0")
    assert re.search(r"GNU bash, version 5\.2", out), out
    assert re.search(r"^12\.\d+", out, re.M), out
    assert "bash" in out


def test_the_restored_guest_has_the_visitors_clock_and_terminal_size(page):
    """The wake sets both through the second serial port's loop: a shipped machine whose loop was
    not yet reading when it was saved kept the build's clock and a 0x0 console (bash wrapped at 80
    columns), while the port's echo still confirmed the page's token."""
    out = sh(page, "echo size=$(stty size) now=$(date +%s)")
    rows, cols = page.evaluate("[window.pyninep.terminal.rows, window.pyninep.terminal.cols]")
    m = re.search(r"size=(\d+) (\d+) now=(\d+)", out)
    assert m, out
    assert (int(m[1]), int(m[2])) == (rows, cols), out
    assert abs(int(m[3]) - time.time()) < 120, out


def test_the_guests_own_python3(page):
    out = sh(page, "python3 -c 'import json, sqlite3; print(json.dumps([1]), sqlite3.sqlite_version)'", 120_000)
    assert re.search(r"^\[1\] 3\.\d+\.\d+$", out, re.M), out


def test_the_usual_tools(page):
    out = sh(page, "ls --color=always / | cat -v | head -2; nano --version | head -1; man ls 2>/dev/null | head -4")
    assert "^[[" in out, out  # colours: the escape shown by cat -v
    assert "GNU nano" in out, out
    assert "ls - list directory contents" in out, out


def test_the_pages_python_answers_on_py_run(page):
    out = sh(page, "echo 'import sys; print(6*7, sys.platform)' > /py/run; cat /py/run")
    assert "42 emscripten" in out, out


def test_a_file_in_root_survives_a_reload(page):
    sh(page, "echo 'kept by debian' > /root/debian-note")
    written = time.time() * 1000
    # A visitor who waits for the page to say it saved the machine (its status line), then
    # reloads. (The file is kept either way: test_browser_return reloads right after a write.)
    page.wait_for_function("t => window.pyninep.lastSave?.at > t && !window.pyninep.saving",
                           arg=written, timeout=60_000)
    started = time.monotonic()
    page.reload()
    from page_user import wait_ready

    timing, source = wait_ready(page)
    print(f"return: {source}, prompt in {timing['prompt_ms']} ms (wall {time.monotonic() - started:.2f} s)")
    assert source == "saved"  # the visitor's own machine, restored
    assert "kept by debian" in sh(page, "cat /root/debian-note")
    # what the guest read before the reload came from IndexedDB, not the host, and python3 works
    out = sh(page, "python3 -c 'print(40+2)'", 120_000)
    assert "42" in out

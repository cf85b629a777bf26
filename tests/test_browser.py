"""The built page in real headless Chromium: the first visit restores the shipped machine, the
terminal, the files panel, the returning visit, offline use, a fresh boot, reset, and every error
state the page knows, each shown as one sentence.

Playwright drives Debian's /usr/bin/chromium (it cannot download its own browsers here). The site
is served from a sub-path (/some/dir/) by the same static server ``./build.sh serve`` uses, to
prove it uses relative URLs only. Screenshots of the main states go to test-artifacts/page/.
"""

import hashlib
import io
import json
import re
import tarfile
import threading
import time
from pathlib import Path

import pytest

from page_user import READY, run, screen, visit
from pyninep_browser.__main__ import make_site_server

ROOT = Path(__file__).resolve().parent.parent
from guest import DEBIAN_DIST, DIST  # noqa: E402,F401
ARTIFACTS = ROOT / "test-artifacts" / "page"
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SUB = "some/dir/"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not (DIST / "index.html").is_file():
        pytest.fail("dist/ is not built: run ./build.sh")
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: apt-get install chromium (./build.sh test does it)")
    top = tmp_path_factory.mktemp("www")
    (top / "some").mkdir()
    (top / SUB.rstrip("/")).symlink_to(DIST, target_is_directory=True)
    server = make_site_server(top, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield f"http://127.0.0.1:{server.server_address[1]}/{SUB}"
    server.shutdown()


@pytest.fixture(scope="module")
def pw():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        yield p


class Watch:
    """Console errors, uncaught exceptions and failed responses of a page: none are allowed."""

    def __init__(self, page):
        self.problems: list[str] = []
        page.on("pageerror", lambda exc: self.problems.append(f"exception: {exc}"))
        page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status} {r.url}"))


def shot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def ux_shot(page, name):
    """Screenshots of the page's keyboard, files panel and words: test-artifacts/ux/."""
    (ARTIFACTS.parent / "ux").mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS.parent / "ux" / f"{name}.png"))


@pytest.fixture(scope="module")
def visitor_page(pw, tmp_path_factory):
    """One visitor's browser (a persistent profile) and page, shared by the tests below that need a
    running guest: the machine is restored once for them, not once per test."""
    context = pw.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("profile")), executable_path=str(CHROMIUM), args=FLAGS,
        viewport={"width": 1180, "height": 720}, accept_downloads=True)
    try:
        yield context.pages[0] if context.pages else context.new_page()
    finally:
        context.close()


def test_page_first_visit_files_return_offline_fresh_reset(site, visitor_page):
    page = visitor_page
    context = page.context
    watch = Watch(page)
    # First visit: the machine saved at build time is restored, not booted.
    wall, timing, source = visit(page, site)
    assert source == "shipped"
    print(f"\nfirst visit: shell in {wall:.2f} s (page's own count {timing['prompt_ms']} ms: {timing})")
    assert "ready" in page.inner_text("#status")
    assert page.evaluate("document.activeElement.closest('#terminal') !== null"), "terminal has focus"
    out = run(page, "echo page-says-$((6*7)); uname -m; cat /etc/hostname; date +%s",
              r"page-says-42\s+i686\s+pyninep\s+\d+\s")
    guest_now = int(re.search(r"pyninep\s+(\d+)", out).group(1))
    assert abs(guest_now - time.time()) < 60, "the restored guest's clock was set from the page"
    # The default image's /py/run, re-attached from images/default.py in the restored machine:
    # Python in the page runs what the guest writes to it.
    run(page, "echo 'print(6*7, \"from\", \"py/run\")' > /py/run; cat /py/run", r"\n42 from py/run\s")
    # The boot noise is not in the terminal (there was no boot); the log says what happened.
    assert "Linux version" not in screen(page)
    shot(page, "first-visit")

    # Resizing the window tells the guest.
    size1 = re.findall(r"^(\d+) (\d+)$", run(page, "stty size", r"\n\d+ \d+\s"), re.M)[-1]
    page.set_viewport_size({"width": 640, "height": 480})
    page.wait_for_timeout(400)
    size2 = re.findall(r"^(\d+) (\d+)$", run(page, "stty size", r"\n\d+ \d+\s"), re.M)[-1]
    assert size2 != size1 and int(size2[1]) < int(size1[1]), (size1, size2)
    # On a small screen the file browser is out of the terminal's way until asked for.
    assert not page.is_visible("#files")
    shot(page, "small-screen")
    page.click("#files-toggle")
    assert page.is_visible("#files")
    shot(page, "small-screen-files")
    page.keyboard.press("Escape")
    assert not page.is_visible("#files")
    page.set_viewport_size({"width": 1180, "height": 720})

    # The files panel: upload by button and by drop, seen by the guest at once.
    page.keyboard.press("Alt+f")
    assert page.is_visible("#files")
    page.click("#files-refresh")
    page.set_input_files("#files-upload", files=[
        {"name": "up.txt", "mimeType": "text/plain", "buffer": b"uploaded through the panel\n"}])
    page.wait_for_selector("#file-list button.name:text-is('up.txt')")
    page.evaluate("""() => {
        const dt = new DataTransfer();
        dt.items.add(new File(['dropped here\\n'], 'dropped.txt'));
        document.getElementById('files').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true}));
    }""")
    page.wait_for_selector("#file-list button.name:text-is('dropped.txt')")
    page.click("#terminal")
    out = run(page, "cat /root/up.txt /root/dropped.txt", r"uploaded through the panel\s+dropped here")
    # A file the guest writes downloads with the same bytes.
    out = run(page, "head -c 5000 /dev/urandom > /root/rand.bin; sha256sum /root/rand.bin",
              r"[0-9a-f]{64}\s+/root/rand.bin")
    guest_sum = re.search(r"([0-9a-f]{64})\s+/root/rand.bin", out).group(1)
    page.click("#files-refresh")
    with page.expect_download() as download:
        page.click("#file-list button.name:text-is('rand.bin')")
    assert hashlib.sha256(Path(download.value.path()).read_bytes()).hexdigest() == guest_sum
    # The folder exported as a tar holds what the guest wrote; an imported tar appears in the guest.
    with page.expect_download() as download:
        page.click("#files-export")
    with tarfile.open(download.value.path()) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("rand.bin"))
        assert hashlib.sha256(tar.extractfile(member).read()).hexdigest() == guest_sum
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w") as tar:
        info = tarfile.TarInfo("imported/hello.txt")
        info.size = len(b"from a tar\n")
        tar.addfile(info, io.BytesIO(b"from a tar\n"))
    page.set_input_files("#files-import", files=[
        {"name": "in.tar", "mimeType": "application/x-tar", "buffer": packed.getvalue()}])
    page.wait_for_selector("#file-list button.name:text-is('imported/')")
    page.click("#terminal")
    run(page, "cat /root/imported/hello.txt", r"\nfrom a tar\s")
    page.click("#files-refresh")
    # New folder and delete, by keyboard: the dialogs are the browser's own.
    page.once("dialog", lambda d: d.accept("made-here"))
    page.focus("#files-mkdir")
    page.keyboard.press("Enter")
    page.wait_for_selector("#file-list button.name:text-is('made-here/')")
    page.once("dialog", lambda d: d.accept())
    page.click("#file-list li:has(button.name:text-is('dropped.txt')) button.del")
    page.wait_for_selector("#file-list button.name:text-is('dropped.txt')", state="detached")
    page.click("#terminal")
    out = run(page, "ls -d /root/made-here; ls /root/dropped.txt", r"No such file")
    assert "/root/made-here" in out
    shot(page, "files")
    assert not watch.problems, watch.problems

    # Returning visit: the machine the page saved by itself once the guest was quiet comes
    # back, over the files as they are now.
    page.wait_for_function("window.pyninep.offlineReady", timeout=60_000)
    page.wait_for_function("window.pyninep.lastSave && !window.pyninep.saving", timeout=30_000)
    wall, timing, source = visit(page, site)
    assert source == "saved"
    print(f"returning visit: shell in {wall:.2f} s ({timing}, storage {page.evaluate('window.pyninep.storage')})")
    out = run(page, "cat /root/up.txt; date +%s", r"uploaded through the panel\s+\d+\s")
    guest_now = int(re.search(r"panel\s+(\d+)", out).group(1))
    assert abs(guest_now - time.time()) < 60, "the clock came by the second serial port"
    assert "page-says-42" in screen(page), "the saved screen came back with the machine"
    shot(page, "returning-visit")

    # Offline: every request to the network fails; the service worker has the site.
    context.route("**/*", lambda route: route.abort("internetdisconnected"))
    try:
        wall, timing, source = visit(page, site)
        print(f"offline visit: shell in {wall:.2f} s")
        run(page, "echo offline-$((1+1))", r"offline-2")
        shot(page, "offline")
    finally:
        context.unroute("**/*")
    watch.problems.clear()  # the offline run's aborted requests are its point

    # Boot fresh: the kernel boots; its noise goes to the log, not the terminal.
    wall, timing, source = visit(page, site + "?fresh=1", timeout=240_000)
    assert source == "boot"
    print(f"fresh boot: shell in {wall:.1f} s")
    boot_log = page.evaluate("document.getElementById('log-text').textContent")
    assert "BusyBox" in boot_log and "BusyBox" not in screen(page)
    run(page, "echo fresh-$((2+3)); date +%s", r"fresh-5\s+\d+")
    shot(page, "fresh-boot")

    # Reset, with its confirmation: the saved machine goes, the shipped one starts.
    page.click("#reset")
    page.wait_for_selector("#confirm-reset[open]")
    shot(page, "reset-confirm")
    with page.expect_navigation():
        page.click("#confirm-reset-yes")
    page.wait_for_function(READY, timeout=120_000)
    assert page.evaluate("window.pyninep.source") == "shipped"
    run(page, "ls /root/up.txt", r"No such file")
    assert not watch.problems, watch.problems


def test_files_panel_shows_what_the_guest_changes_without_a_click(site, visitor_page):
    page = visitor_page
    # The guest the test above left at its prompt (after its reset); run alone, open the page.
    if not page.evaluate("!!(window.pyninep && window.pyninep.timing.prompt_ms && !window.pyninep.failed)"):
        visit(page, site)
    watch = Watch(page)
    if not page.is_visible("#files"):  # open at start on a wide screen
        page.keyboard.press("Alt+f")
    page.wait_for_selector("#files:not([hidden])")
    assert page.inner_text("#files-path") == "/root"
    name = f"guest-made-{int(time.time())}.txt"
    assert page.locator(f"#file-list button.name:text-is('{name}')").count() == 0
    # Typing goes to the terminal (it has the focus after start-up); nothing in the panel is touched.
    page.focus("#terminal .xterm-helper-textarea")
    run(page, f"echo from the guest > /root/{name}; echo made-$((2*4))", r"made-8")
    started = time.monotonic()
    page.wait_for_selector(f"#file-list button.name:text-is('{name}')", timeout=5_000)
    print(f"\nthe guest's new file showed in the panel {time.monotonic() - started:.2f} s after the prompt came back")
    run(page, f"rm /root/{name}; echo gone-$((3*3))", r"gone-9")
    page.wait_for_selector(f"#file-list button.name:text-is('{name}')", state="detached", timeout=5_000)
    shot(page, "files-follow-the-guest")
    assert not watch.problems, watch.problems


def test_the_guest_sees_the_pages_changes_to_files_it_has_cached(site, visitor_page):
    """The guest caches (cache=loose): a file it has read, stat'ed and listed, then changed by the
    page (an upload over it, a delete in the panel, a live file's Python renaming one), reads as
    changed at its next cat, ls and stat, with no wait."""
    page = visitor_page
    if not page.evaluate("!!(window.pyninep && window.pyninep.timing.prompt_ms && !window.pyninep.failed)"):
        visit(page, site)
    watch = Watch(page)
    if not page.is_visible("#files"):
        page.keyboard.press("Alt+f")
    page.wait_for_selector("#files:not([hidden])")
    page.click("#terminal")
    run(page, "rm -rf /root/co; mkdir /root/co; echo first > /root/co/a; echo gone > /root/co/b;"
              " echo old > /root/co/c; cat /root/co/*; stat -c %s /root/co/a; ls /root/co; echo cached-$((5*5))",
        r"cached-25")
    page.click("#files-refresh")
    page.click("#file-list button.name:text-is('co/')")
    page.wait_for_function("document.getElementById('files-path').textContent === '/root/co'")
    # An upload over a file the guest has in its cache, through the panel.
    page.set_input_files("#files-upload", files=[
        {"name": "a", "mimeType": "text/plain", "buffer": b"second, and longer\n"}])
    page.wait_for_selector("#files-note:has-text('Uploaded 1 file to /root/co.')")
    page.click("#terminal")
    out = run(page, "cat /root/co/a; stat -c %s /root/co/a; echo up-$((6*6))", r"up-36")
    assert "second, and longer" in out and "\n19\n" in out.replace("\r", ""), out
    # The page's own calls (window.pyninep.server: the page's scripting interface) and a live
    # file's Python: a delete, and a rename made in Python through /py/run.
    page.evaluate("window.pyninep.server.remove('/root/co/b')")
    run(page, "printf 'from pyninep_browser.live import context\\nfs = context().fs\\n"
              "d = fs.resolve(\"/root/co\")\\nfs.rename(d, \"c\", d, \"renamed\")\\n' > /py/run;"
              " cat /py/run; echo ran-$((7*7))", r"ran-49")
    out = run(page, "ls -1 /root/co; cat /root/co/b /root/co/c 2>&1; cat /root/co/renamed; echo seen-$((8*8))",
              r"seen-64").replace("\r", "")
    assert "a\nrenamed\n" in out and "can't open '/root/co/b'" in out and "can't open '/root/co/c'" in out, out
    assert "\nold\n" in out, out
    assert page.evaluate("window.pyninep.timing.outside_drop_ms") is not None
    assert not watch.problems, watch.problems


def test_first_screen_says_what_this_is_at_a_prompt_in_roots_home(site, visitor_page):
    page = visitor_page
    # A new visitor's first screen (memory storage: the shipped machine, as on a first visit).
    visit(page, site + "?memory")
    assert page.evaluate("window.pyninep.source") == "shipped"
    first = screen(page)
    lines = first.splitlines()
    # What this is and what to try, then the prompt in /root (~): nothing else.
    assert "served by Python" in lines[0], first
    assert "/py/run" in first and "Files panel" in first, first
    assert re.fullmatch(r"root@pyninep:~# ?", lines[-1]), first
    assert len(lines) <= 5, first
    for noise in ("Linux version", "BusyBox", "date -s", "urandom", "PYNINEP", "job control"):
        assert noise not in first, (noise, first)
    out = run(page, "pwd; echo home=$HOME", r"\nhome=\S+")
    assert re.search(r"\n/root\s+home=/root", out), out
    shot(page, "first-screen")


def error_sentence(page, timeout=60_000) -> str:
    page.wait_for_selector("#error:not([hidden])", timeout=timeout)
    return page.inner_text("#error-text")


def test_page_error_states_each_show_one_sentence(site, pw, tmp_path):
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
    seen = {}
    try:
        def fresh_page(init=None):
            context = browser.new_context(viewport={"width": 1000, "height": 640}, service_workers="block")
            if init:
                context.add_init_script(init)
            return context, context.new_page()

        # No WebAssembly.
        context, page = fresh_page("delete globalThis.WebAssembly")
        page.goto(site)
        seen["no-wasm"] = error_sentence(page)
        assert "WebAssembly" in seen["no-wasm"]
        shot(page, "error-no-webassembly")
        context.close()

        # IndexedDB refused (as in some private modes): the page says so and runs anyway.
        context, page = fresh_page(
            "IDBFactory.prototype.open = function () { throw new DOMException('denied', 'SecurityError'); }")
        page.goto(site)
        seen["no-idb"] = error_sentence(page)
        assert "IndexedDB" in seen["no-idb"]
        page.wait_for_function(READY, timeout=120_000)
        assert page.evaluate("window.pyninep.failed") is None
        shot(page, "error-no-indexeddb")
        context.close()

        # Quota full: the browser reports no room left. (CDP's Storage.overrideQuotaForOrigin
        # changes nothing that estimate() reports in this Chromium, so the estimate is replaced.)
        context, page = fresh_page(
            "StorageManager.prototype.estimate = async () => ({usage: 2 ** 30, quota: 2 ** 30})")
        page.goto(site)
        seen["quota"] = error_sentence(page)
        assert "full" in seen["quota"]
        shot(page, "error-quota-full")

        # Another tab holds the sandbox.
        other = context.new_page()
        other.goto(site)
        seen["other-tab"] = error_sentence(other)
        assert "another tab" in seen["other-tab"]
        shot(other, "error-another-tab")
        context.close()

        # A corrupt shipped machine: the page offers a fresh boot.
        context, page = fresh_page()
        page.route("**/machine/*.machine*", lambda route: route.fulfill(
            status=200, body=b"\x28\xb5\x2f\xfd\xa0\x00\x10\x00\x00" + b"not really zstd" * 100,
            headers={"content-type": "application/octet-stream"}))
        page.goto(site)
        seen["corrupt"] = error_sentence(page)
        assert "damaged" in seen["corrupt"] and page.is_visible("#error-fresh")
        shot(page, "error-corrupt-machine")
        context.close()

        # A machine saved by an older build in this browser: detected, the shipped one starts.
        # (Written from a page of the site that is not the app, so no save of the app's races it.)
        context, page = fresh_page()
        page.goto(site + "manifest.json")
        page.evaluate("""() => new Promise((resolve, reject) => {
            const r = indexedDB.open('pyninep-page', 1);
            r.onupgradeneeded = () => r.result.createObjectStore('machine');
            r.onerror = () => reject(r.error);
            r.onsuccess = () => {
                const tx = r.result.transaction('machine', 'readwrite');
                tx.objectStore('machine').put({stamp: 'an-older-build', bytes: new Uint8Array(8)}, 'last');
                tx.oncomplete = () => { r.result.close(); resolve(); };
                tx.onerror = () => reject(tx.error);
            };
        })""")
        page.goto(site)
        seen["old-build"] = error_sentence(page)
        assert "older version" in seen["old-build"]
        page.wait_for_function(READY, timeout=120_000)
        assert page.evaluate("window.pyninep.source") == "shipped"
        context.close()
    finally:
        browser.close()
    for name, sentence in seen.items():
        # one readable sentence each
        assert sentence.count(". ") == 0 and sentence.endswith("."), (name, sentence)
    print("\n" + json.dumps(seen, indent=1))


def ready_visitor(page, site):
    """The guest a test above left at its prompt; run alone, open the page."""
    if not page.evaluate("!!(window.pyninep && window.pyninep.timing.prompt_ms && !window.pyninep.failed)"):
        visit(page, site)
    page.set_viewport_size({"width": 1180, "height": 720})


def focused(page) -> str:
    """What has the focus, as a person would name it: a button's id, a row's name, or the terminal."""
    return page.evaluate("""() => {
        const el = document.activeElement;
        if (el.closest('#terminal')) return 'terminal';
        const li = el.closest('#file-list li');
        return li ? 'row:' + li.dataset.name : el.id || el.tagName;
    }""")


def terminal_focused(page) -> None:
    """The terminal has the focus back (a dialog's close event gives it back a moment after)."""
    page.wait_for_function("document.activeElement.closest('#terminal')", timeout=5_000)


def test_keyboard_leaves_the_terminal_reaches_every_header_control_and_esc_closes_the_panel(
        site, visitor_page):
    page = visitor_page
    ready_visitor(page, site)
    watch = Watch(page)
    page.focus("#terminal .xterm-helper-textarea")
    # The way out is written in the header, and the help lists every shortcut.
    hint = page.inner_text("#keys-hint")
    assert "Alt+T" in hint and "Alt+H" in hint, hint
    ux_shot(page, "first-screen-hint")
    # Alt+T: from the terminal to the header's first control; Tab and Shift+Tab reach every one.
    page.keyboard.press("Alt+t")
    assert focused(page) == "files-toggle"
    for expected in ["fresh", "reset", "help"]:
        page.keyboard.press("Tab")
        assert focused(page) == expected
    for expected in ["reset", "fresh", "files-toggle"]:
        page.keyboard.press("Shift+Tab")
        assert focused(page) == expected
    # Esc (or Alt+T again) goes back to the terminal.
    page.keyboard.press("Escape")
    terminal_focused(page)
    page.keyboard.press("Alt+t")
    page.keyboard.press("Alt+t")
    terminal_focused(page)
    # Alt+H and ? open the help; Esc closes it, back to the terminal.
    page.keyboard.press("Alt+h")
    page.wait_for_selector("#help-dialog[open]")
    assert "Alt+F" in page.inner_text("#help-dialog") and "Delete" in page.inner_text("#help-dialog")
    ux_shot(page, "help")
    page.keyboard.press("Escape")
    page.wait_for_selector("#help-dialog", state="hidden")
    terminal_focused(page)
    page.keyboard.press("Alt+t")
    page.keyboard.press("?")
    page.wait_for_selector("#help-dialog[open]")
    page.keyboard.press("Escape")
    terminal_focused(page)
    # Reset… by keyboard: its confirmation opens, Esc cancels it.
    page.keyboard.press("Alt+t")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert focused(page) == "reset"
    page.keyboard.press("Enter")
    page.wait_for_selector("#confirm-reset[open]")
    page.keyboard.press("Escape")
    page.wait_for_selector("#confirm-reset", state="hidden")
    terminal_focused(page)
    # Files by keyboard: Enter on the button opens the panel (its first row gets the focus).
    page.keyboard.press("Alt+t")
    if page.is_visible("#files"):  # open at start on a wide screen
        page.keyboard.press("Enter")
        assert not page.is_visible("#files")
    page.keyboard.press("Enter")
    page.wait_for_selector("#files:not([hidden])")
    page.wait_for_function("document.activeElement.closest('#file-list li')")
    page.keyboard.press("Backspace")  # the parent folder, /: many rows
    page.wait_for_function("document.getElementById('files-path').textContent === '/'")
    page.wait_for_function("document.activeElement.closest('#file-list li')")
    rows = page.evaluate("[...document.querySelectorAll('#file-list li')].map(li => li.dataset.name)")
    assert len(rows) >= 2, rows
    # A row is one tab stop (not name, then its delete button); the arrows move between rows too.
    assert focused(page) == f"row:{rows[0]}"
    page.keyboard.press("Tab")
    assert focused(page) == f"row:{rows[1]}"
    page.keyboard.press("ArrowUp")
    assert focused(page) == f"row:{rows[0]}"
    page.keyboard.press("End")
    assert focused(page) == f"row:{rows[-1]}"
    # Esc closes the panel on a wide screen too, and the terminal has the focus again.
    page.keyboard.press("Escape")
    assert not page.is_visible("#files")
    terminal_focused(page)
    run(page, "echo keys-$((5*5))", r"keys-25")
    page.keyboard.press("Alt+f")
    page.wait_for_selector("#files:not([hidden])")
    ux_shot(page, "keyboard-files")
    assert not watch.problems, watch.problems


def test_files_panel_refuses_to_delete_the_system_names_exports_and_says_what_it_did(site, visitor_page):
    page = visitor_page
    ready_visitor(page, site)
    watch = Watch(page)
    dialogs, answers = [], []  # the browser's dialogs seen; what to answer the next one (else: Cancel)

    def on_dialog(d):
        dialogs.append(d.message)
        d.accept() if answers and answers.pop() else d.dismiss()
    page.on("dialog", on_dialog)
    if not page.is_visible("#files"):
        page.keyboard.press("Alt+f")
    page.wait_for_selector("#files:not([hidden])")
    page.evaluate("window.pyninep.files.cd('/')")
    page.wait_for_selector("#file-list li[data-name='bin']")
    # Deleting /bin from the panel is refused, in words, in /bin's row, without even asking; /bin stays.
    page.focus("#file-list li[data-name='bin'] button.name")
    page.keyboard.press("Delete")
    note = page.inner_text("#file-list li[data-name='bin'] .row-note")
    assert "Not deleted" in note and "/bin" in note and "?delete=anywhere" in note, note
    row, said = (page.locator(f"#file-list li[data-name='bin'] {s}").bounding_box() for s in ("button.name", ".row-note"))
    assert 0 <= said["y"] - (row["y"] + row["height"]) < 12, (row, said)  # right under the row
    ux_shot(page, "files-delete-refused")
    page.click("#file-list li[data-name='etc'] button.del")
    assert "Not deleted: /etc" in page.inner_text("#file-list li[data-name='etc'] .row-note")
    assert page.locator("#file-list .row-note").count() == 1  # the one about the last press
    page.focus("#file-list li[data-name='etc'] button.name")
    page.keyboard.press("ArrowDown")  # the rows are still one stop each, the note is no stop
    assert page.evaluate("document.activeElement.closest('li')?.dataset.name") not in ("etc", None)
    assert not dialogs, dialogs
    assert page.locator("#file-list li[data-name='bin']").count() == 1
    # The kernel's folders are marked as such, not offered as empty folders to drop files in.
    assert page.inner_text("#file-list li[data-name='proc'] .size") == "virtual"
    page.click("#file-list li[data-name='proc'] button.name")
    page.wait_for_function("document.getElementById('files-path').textContent === '/proc'")
    note = page.inner_text("#files-note")
    assert "virtual folder" in note and "Drop files" not in note, note
    ux_shot(page, "files-virtual-proc")
    # The whole tree exports as rootfs.tar, a folder as NAME.tar; the note says so.
    page.keyboard.press("Backspace")
    page.wait_for_function("document.getElementById('files-path').textContent === '/'")
    with page.expect_download(timeout=60_000) as download:
        page.click("#files-export")
    assert download.value.suggested_filename == "rootfs.tar"
    with tarfile.open(download.value.path()) as tar:
        assert any(n.lstrip("./").startswith("bin/") for n in tar.getnames())
    page.wait_for_function("document.getElementById('files-note').textContent.includes('rootfs.tar')")
    page.evaluate("window.pyninep.files.cd('/root')")
    page.wait_for_function("document.getElementById('files-path').textContent === '/root'")
    with page.expect_download() as download:
        page.click("#files-export")
    assert download.value.suggested_filename == "root.tar"
    # An import says what it did, and an import that fails says why, in the panel.
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w") as tar:
        for name in ["tarred/a.txt", "tarred/b.txt"]:
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"hi\n"))
    page.set_input_files("#files-import", files=[
        {"name": "two.tar", "mimeType": "application/x-tar", "buffer": packed.getvalue()}])
    page.wait_for_function("/Imported \\d+ entr/.test(document.getElementById('files-note').textContent)")
    note = page.inner_text("#files-note")
    assert re.search(r"Imported [23] entries from two.tar into /root\.", note), note
    page.set_input_files("#files-import", files=[
        {"name": "junk.tar", "mimeType": "application/x-tar", "buffer": b"this is not a tar at all" * 40}])
    page.wait_for_function("document.getElementById('files-note').textContent.includes('Cannot import junk')")
    ux_shot(page, "files-import-feedback")
    # Inside /root the panel deletes, as before (after asking).
    assert not dialogs, dialogs
    answers.append(True)
    page.focus("#file-list li[data-name='tarred'] button.name")
    page.keyboard.press("Delete")
    page.wait_for_selector("#file-list li[data-name='tarred']", state="detached")
    assert len(dialogs) == 1 and "tarred" in dialogs[0], dialogs
    assert "Deleted /root/tarred." in page.inner_text("#files-note")
    page.remove_listener("dialog", on_dialog)
    assert not watch.problems, watch.problems


def test_status_line_says_in_words_when_the_session_was_saved(site, visitor_page):
    page = visitor_page
    ready_visitor(page, site)
    watch = Watch(page)
    before = page.evaluate("window.pyninep.lastSave ? window.pyninep.lastSave.at : 0")
    # What a user does: use the shell, then stop; the page saves by itself once the guest is quiet.
    run(page, "echo saved-$((6*7))", "saved-42")
    page.wait_for_function("t => window.pyninep.lastSave?.at > t && !window.pyninep.saving",
                           arg=before, timeout=30_000)
    status = page.inner_text("#status")
    assert status == "session saved just now", status
    ux_shot(page, "status-saved")
    # The numbers are there for whoever asks (the tooltip), not in the line.
    details = page.get_attribute("#status", "title")
    assert "MB" in details and " ms" in details, details
    # The line stays true as time passes.
    page.wait_for_function("/^session saved \\d+ s ago$/.test(document.getElementById('status').textContent)",
                           timeout=15_000)
    # The boot log says where the machine came from, without a placeholder for what it does not know.
    log = page.evaluate("document.getElementById('log-text').textContent")
    assert "restored the" in log and "?" not in "".join(re.findall(r"restored the[^\n]*", log)), log[-2000:]
    assert not watch.problems, watch.problems


# The terminal's last lines as text (reading the whole scrollback on every poll would take the
# page's one thread from the guest while it floods the screen).
TAIL = """n => {
    const b = window.pyninep.terminal.buffer.active, lines = [];
    for (let i = Math.max(0, b.length - n); i < b.length; i++) {
        lines.push(b.getLine(i).translateToString(true));
    }
    return lines.join('\\n');
}"""


def test_ctrl_c_stops_a_flood_of_output_at_once(site, visitor_page):
    page = visitor_page
    ready_visitor(page, site)
    watch = Watch(page)
    page.click("#terminal")
    for k, (flood, shows) in enumerate((("yes 'a flood of lines'", r"(a flood of lines\n){5}"),
                                        ("cat /dev/urandom | od -x", r"(\n[0-7]{7}( [0-9a-f]{4}){8}){5}"))):
        page.keyboard.type(flood)
        page.keyboard.press("Enter")
        page.wait_for_function(f"re => new RegExp(re).test(({TAIL})(12))", arg=shows, timeout=15_000,
                               polling=50)
        page.wait_for_timeout(1000)  # well under way
        started = time.monotonic()
        page.keyboard.press("Control+c")
        page.wait_for_function(f"() => /\\^C\\s*\\n\\S+# ?$/.test(({TAIL})(3))", timeout=10_000, polling=20)
        took = time.monotonic() - started
        print(f"\n{flood!r}: the prompt came back {took:.2f} s after Ctrl+C")
        assert took < 3, (flood, took)
        run(page, f"echo answers-{k}-$((6*7))", rf"answers-{k}-42")  # and it takes commands again
    assert not watch.problems, watch.problems


def test_terminal_is_xterm_256color_and_colours_reach_the_screen(site, visitor_page):
    page = visitor_page
    ready_visitor(page, site)
    watch = Watch(page)
    page.click("#terminal")
    out = run(page, "echo term=$TERM; ls /usr/share/terminfo/x/", r"\nterm=\S+\n.*xterm-256color")
    assert "term=xterm-256color" in out, out
    run(page, "ls --color=always /; printf '\\033[38;5;208m%s\\033[0m\\n' orange-$((1+1))", r"\norange-2")
    # What xterm.js holds for the cells of "bin" (a folder: busybox colours it blue) and "orange-2".
    cells = page.evaluate("""() => {
        const b = window.pyninep.terminal.buffer.active, found = {};
        for (let i = b.length - 1; i >= 0 && Object.keys(found).length < 2; i--) {
            const text = b.getLine(i).translateToString(true);
            for (const word of ["bin", "orange-2"]) {
                const at = text.search(new RegExp(`(^|\\\\s)${word}(\\\\s|$)`));
                if (at < 0 || found[word]) continue;
                const cell = b.getLine(i).getCell(at === 0 ? 0 : at + 1);
                found[word] = {palette: cell.isFgPalette(), colour: cell.getFgColor(), bold: cell.isBold()};
            }
        }
        return found;
    }""")
    assert cells.get("bin", {}).get("palette") and cells["bin"]["colour"] in (4, 12), cells
    assert cells.get("orange-2") == {"palette": True, "colour": 208, "bold": 0}, cells
    ux_shot(page, "terminal-colours")
    assert not watch.problems, watch.problems


def started_from_the_snapshot_and_the_shipped_machine(context, site: str):
    """A new page of ``context`` at ``site``, at its prompt, having started Python from its
    snapshot and restored the shipped machine."""
    page = context.new_page()
    page.goto(site)
    page.wait_for_function(READY, timeout=120_000)
    assert page.evaluate("window.pyninep.failed") is None
    assert page.evaluate("window.pyninep.source") == "shipped"
    assert "pyodide_ms" in page.evaluate("window.pyninep.timing")  # Python came from the snapshot
    return page


def test_a_host_that_decodes_the_zstd_files_on_the_way_still_starts(site, pw):
    """A host may send the saved machine and Python's snapshot (machine/*.zst, pysnap/*.zst) with
    ``Content-Encoding: zstd``: the browser then hands the page their content, not the zstd
    frame, and the page takes it as it is (from the snapshot, from the shipped machine)."""
    import zstandard

    manifest = json.loads((DIST / "manifest.json").read_text())
    decoded = {rel: zstandard.ZstdDecompressor().decompress((DIST / rel).read_bytes())
               for rel in (manifest["machine"]["url"], manifest["pyodideSnapshot"])}
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
    try:
        context = browser.new_context(service_workers="block")
        for rel, body in decoded.items():
            context.route(f"**/{rel}", lambda route, _request, body=body: route.fulfill(
                status=200, body=body, headers={"content-type": "application/octet-stream"}))
        page = started_from_the_snapshot_and_the_shipped_machine(context, site)
        assert "decoded-ok" in run(page, "echo decoded-$((1))k | sed s/1k/ok/", r"decoded-ok")
    finally:
        browser.close()


def test_without_its_worker_the_page_decodes_and_reads_its_saved_machine_itself(site, pw):
    """The page's worker (web/page/worker.js) downloads and decodes the two large files and reads
    the machine saved in this browser. When its script does not load (a host or an old cache
    without it), the page does all of that on its own thread: it starts from Python's snapshot
    and the shipped machine, and a reload restores the machine it saved."""
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
    try:
        context = browser.new_context(service_workers="block")
        missing: list[str] = []
        context.route("**/page/worker.js", lambda route: (missing.append(route.request.url),
                                                          route.fulfill(status=404, body="not here")))
        page = started_from_the_snapshot_and_the_shipped_machine(context, site)
        run(page, "echo by-the-page > /root/no-worker.txt; sync; echo ok-$((3+4))", r"ok-7")
        now = page.evaluate("Date.now()")
        page.wait_for_function("t => window.pyninep.lastSave && window.pyninep.lastSave.at > t && !window.pyninep.saving",
                               arg=now, timeout=30_000)
        page.reload()
        page.wait_for_function(READY, timeout=120_000)
        assert page.evaluate("window.pyninep.source") == "saved"
        assert "by-the-page" in run(page, "cat /root/no-worker.txt", r"\nby-the-page\s")
        assert len(missing) == 2, missing  # the worker was asked for on both loads
    finally:
        browser.close()

"""The page on a phone, in real headless Chromium with touch emulated (390 by 844, a phone's screen):
the terminal keeps 60 columns (it scrolls sideways), the files panel opens as a sheet below the
prompt, and the key row gives what a phone's keyboard lacks (Esc, Ctrl, Tab, the arrows).

One visit (the shipped machine restored, not booted) serves every scenario here. Screenshots go
to test-artifacts/ux/.
"""

import re
from pathlib import Path

import pytest
from page_user import run, screen, wait_ready
from test_browser import CHROMIUM, FLAGS, Watch, pw, site  # noqa: F401 (fixtures)

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "ux"


@pytest.fixture(scope="module")
def phone(pw, site):  # noqa: F811
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                  is_mobile=True, has_touch=True, service_workers="block")
    page = context.new_page()
    watch = Watch(page)
    page.goto(site)
    # What the first visit downloads, in words: not a "Saved machine" that was never saved here.
    page.wait_for_selector("#progress progress")
    labels = page.evaluate("document.getElementById('progress').textContent")
    wait_ready(page)
    yield page, watch, labels
    context.close()
    browser.close()


def tap_key(page, label):
    page.tap(f"#keyrow button:text-is('{label}')")


def test_phone_first_visit_names_what_it_downloads(phone):
    page, _, progress_text = phone
    assert "Linux, ready to run" in progress_text and "Saved machine" not in progress_text, progress_text
    assert " MB" not in progress_text, progress_text
    assert page.evaluate("window.pyninep.source") == "shipped"


def test_phone_header_is_one_row_with_every_control(phone):
    page, watch, _ = phone
    page.wait_for_function("/saved|ready/.test(document.getElementById('status').textContent)", timeout=30_000)

    def one_row():
        boxes = page.evaluate("""() => [...document.querySelectorAll('header > *')]
            .filter((e) => e.getClientRects().length && e.getBoundingClientRect().width > 1)
            .map((e) => ({id: e.id || e.tagName, ...e.getBoundingClientRect().toJSON()}))""")
        header = page.eval_on_selector("header", "e => e.getBoundingClientRect().toJSON()")
        assert {b["id"] for b in boxes} >= {"status", "files-toggle", "fresh", "reset", "help"}, boxes
        middles = {round(b["top"] + b["height"] / 2) for b in boxes}
        assert max(middles) - min(middles) <= 4 and header["height"] < 48, (header, boxes)  # one row
        assert all(b["right"] <= 390 for b in boxes), boxes  # nothing pushed off the screen

    one_row()
    page.screenshot(path=str(ARTIFACTS / "phone-header.png"), clip={"x": 0, "y": 0, "width": 390, "height": 120})
    # The longest things the status line says fit too (cut short, whole in its tooltip).
    said = page.evaluate("""() => { const s = document.getElementById('status'), was = s.textContent;
        s.textContent = 'session saved 55 min ago (offline)'; return was; }""")
    one_row()
    page.evaluate("was => { document.getElementById('status').textContent = was; }", said)
    assert not watch.problems, watch.problems


def test_phone_terminal_keeps_60_columns_and_the_key_row_reaches_the_guest(phone):
    page, watch, _ = phone
    assert page.is_visible("#keyrow")
    cols = page.evaluate("window.pyninep.terminal.cols")
    scrolls = page.evaluate("(m => m.scrollWidth > m.clientWidth)(document.querySelector('main'))")
    assert cols >= 60 or scrolls, (cols, scrolls)
    print(f"\nphone: {cols} columns, scrolls sideways: {scrolls}")
    page.tap("#terminal")
    run(page, "stty size", r"\n\d+ \d+\s")
    assert int(re.findall(r"^\d+ (\d+)$", screen(page), re.M)[-1]) >= 60
    # Esc and Tab reach the guest as bytes: cat -v shows Esc as ^[, and the tab moves to column 8.
    page.keyboard.type("cat -v\n")
    page.wait_for_timeout(300)
    tap_key(page, "Esc")
    tap_key(page, "Tab")
    page.keyboard.type("x\n")
    page.wait_for_function("/\\^\\[ {6}x[\\s\\S]*\\^\\[ {6}x/.test(window.pyninep.screenText())",
                           timeout=10_000)
    # Ctrl (sticky) then c: the guest's interrupt ends cat.
    tap_key(page, "Ctrl")
    assert page.get_attribute("#key-ctrl", "aria-pressed") == "true"
    page.keyboard.press("c")
    assert page.get_attribute("#key-ctrl", "aria-pressed") == "false"
    # The prompt first: what is typed while the interrupt is delivered is discarded (the tty's way).
    page.wait_for_function(r"/\^C[\s\S]*# *\s*$/.test(window.pyninep.screenText())", timeout=10_000)
    run(page, "echo after-ctrl-c-$((4*4))", r"after-ctrl-c-16")
    # The arrows: ↑ brings the last command back.
    run(page, "echo arrow-$((3*3))", r"\narrow-9\s")
    before = screen(page).count("arrow-9")
    tap_key(page, "↑")
    page.keyboard.press("Enter")
    page.wait_for_function("n => window.pyninep.screenText().split('arrow-9').length - 1 > n",
                           arg=before, timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "phone-keyrow.png"))
    assert not watch.problems, watch.problems


def test_phone_files_panel_is_a_sheet_below_the_prompt(phone):
    page, watch, _ = phone
    assert not page.is_visible("#files")
    page.tap("#files-toggle")
    page.wait_for_selector("#files:not([hidden])")
    page.wait_for_timeout(300)  # the terminal refits above the sheet
    term = page.eval_on_selector("#terminal", "e => e.getBoundingClientRect().toJSON()")
    sheet = page.eval_on_selector("#files", "e => e.getBoundingClientRect().toJSON()")
    assert term["bottom"] <= sheet["top"] + 1, (term, sheet)
    # The prompt (the cursor's row) is on screen above the sheet.
    cursor_y = page.evaluate("""() => {
        const t = window.pyninep.terminal;
        const r = document.querySelector('#terminal .xterm-screen').getBoundingClientRect();
        return r.top + (t.buffer.active.cursorY + 0.5) * r.height / t.rows;
    }""")
    assert cursor_y < sheet["top"], (cursor_y, sheet)
    page.screenshot(path=str(ARTIFACTS / "phone-files.png"))
    page.tap("#files-close")
    assert not page.is_visible("#files")
    run(page, "echo sheet-closed", r"\nsheet-closed\s")
    assert not watch.problems, watch.problems

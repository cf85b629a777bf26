"""What a person does with the demo page, for the browser tests: open it and wait for the prompt,
type a command and read the terminal. Nothing here reaches into the page's internals beyond
reading what it shows (``window.pyninep``'s state, the terminal's text)."""

from __future__ import annotations

import time

READY = "window.pyninep && (window.pyninep.timing.prompt_ms || window.pyninep.failed)"


def wait_ready(page, timeout: float = 120_000) -> tuple[dict, str]:
    """The page's start-up has finished: (its timing, where the machine came from)."""
    page.wait_for_function(READY, timeout=timeout)
    failed = page.evaluate("window.pyninep.failed")
    assert not failed, failed
    return page.evaluate("window.pyninep.timing"), page.evaluate("window.pyninep.source")


def visit(page, url: str, timeout: float = 120_000) -> tuple[float, dict, str]:
    """Open ``url`` and wait for the prompt: (wall seconds, the page's timing, its source)."""
    started = time.monotonic()
    page.goto(url)
    timing, source = wait_ready(page, timeout)
    return time.monotonic() - started, timing, source


def screen(page) -> str:
    return page.evaluate("window.pyninep.screenText()")


# The screen's text from line `n - 1` (the prompt the command was typed at, `n` counted before).
# Once the scrollback is full, xterm.js drops the oldest lines as new ones come and the count is
# no mark: then from the last line that shows `head` (the start of the command, echoed).
AFTER = """([n, head]) => {
    const t = window.pyninep.terminal, lines = window.pyninep.screenText().split('\\n');
    let from = Math.max(n - 1, 0);
    if (t.buffer.active.length >= t.options.scrollback + t.rows) {
        from = lines.length - 1;
        while (from > 0 && !lines[from].includes(head)) from--;
    }
    return lines.slice(from).join('\\n');
}"""


def run(page, command: str, until: str, timeout: float = 30_000) -> str:
    """Type a command on the keyboard and return what the terminal shows after it, once `until`
    (a regex) matches there."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    before = len(screen(page).splitlines())
    head = command.split("\n")[0][:20]
    page.keyboard.type(command + "\n")
    try:
        page.wait_for_function(
            f"([n, head, re]) => new RegExp(re).test(({AFTER})([n, head]))",
            arg=[before, head, until], timeout=timeout)
    except PlaywrightTimeout:
        tail = page.evaluate(AFTER, [before, head])[-1500:]
        raise AssertionError(f"no {until!r} on the screen after {command!r}; it shows:\n{tail}") from None
    return page.evaluate(AFTER, [before, head])


def sh(page, command: str, timeout: float = 60_000) -> str:
    """Type ``command`` at the prompt; its output (the echoed command line and the next prompt
    left out)."""
    out = run(page, command + "; echo __done__", r"\n__done__\s*\n[^\n]*[#$]\s*$", timeout)
    body = out.split("\n", 1)[1] if "\n" in out else ""
    return body.rsplit("__done__", 1)[0].replace("\r", "")

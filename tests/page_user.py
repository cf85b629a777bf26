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


def run(page, command: str, until: str, timeout: float = 30_000) -> str:
    """Type a command on the keyboard and return what the terminal shows after it, once `until`
    (a regex) matches there."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    before = len(screen(page).splitlines())
    page.keyboard.type(command + "\n")
    try:
        page.wait_for_function(
            "([n, re]) => new RegExp(re).test(window.pyninep.screenText().split('\\n').slice(Math.max(n - 1, 0)).join('\\n'))",
            arg=[before, until], timeout=timeout)
    except PlaywrightTimeout:
        tail = "\n".join(screen(page).splitlines()[max(before - 1, 0):])[-1500:]
        raise AssertionError(f"no {until!r} on the screen after {command!r}; it shows:\n{tail}") from None
    return "\n".join(screen(page).splitlines()[max(before - 1, 0):])

"""Book-keeping for the crash tests (tests/test_browser_idb.py, bench/idb_crash.py).

A workload logs ``START path version size`` before it changes a file and ``ACK path …`` once the
change is durable (its fsync, writeFile or flush returned). After the browser was killed and the
database reopened, every file whose last change was acknowledged must read back exactly; a file
that was being changed again at the kill is "in flux" and may hold either version or a mix (POSIX
promises nothing for unsynced writes), so it is counted but not checked.

One exception, counted apart and never silent: Chromium itself can discard the whole database at
an open. A kill between the two writes of one LevelDB log record (header, then payload) leaves a
header-only record at the log's end; the next session reopens it, and LevelDB (``reuse_logs``,
Chromium's default outside ChromeOS) appends after it; the open after that fails with "Corruption:
checksum mismatch" and Chromium deletes the origin's IndexedDB and reports "total" data loss,
which ``openReport.dataLoss`` passes on. Those files are gone with the database: they are counted
as ``discarded`` (with the message), and a file missing at any other open is ``lost``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from chromium import Browser, SiteServer, console_lines, open_idb_page


@dataclass
class CrashTally:
    kills: int = 0
    opens: int = 0
    checked: int = 0
    lost: int = 0
    in_flux: int = 0
    repairs: list[str] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    discards: list[str] = field(default_factory=list)  # the browser's data-loss messages
    gone_with_discard: int = 0  # acknowledged files that went with a discarded database
    _just_discarded: bool = False

    def killed(self) -> None:
        self.kills += 1

    def opened(self, report: dict | None) -> None:
        """The database opened after a kill; keep what its open-time check repaired."""
        assert report is not None and "repairs" in report, report
        self.opens += 1
        self.repairs.extend(report["repairs"])
        loss = report.get("dataLoss")
        self._just_discarded = bool(loss)
        if loss:
            self.discards.append(f"{loss['status']}: {loss['message']}")
            # the browser made a new, empty database: nothing of the old one may remain
            assert not report["repairs"], report

    def discarded_at_last_open(self, acknowledged: int) -> bool:
        """Whether the last open reported the browser's discard; if so the ``acknowledged``
        files went with it (counted, not checked)."""
        if self._just_discarded:
            self.gone_with_discard += acknowledged
        return self._just_discarded

    def line(self, what: str) -> str:
        return (f"crash tally ({what}): {self.kills} kills, {self.opens} reopens (all opened), "
                f"{self.checked} acknowledged files checked, {self.lost} lost, {self.in_flux} in flux at "
                f"the kill (not checked), open-time check repaired {len(self.repairs)} thing(s)"
                + (f": {self.repairs[:5]}" if self.repairs else "")
                + (f"; Chromium discarded the database {len(self.discards)} time(s) at an open, "
                   f"reporting it ({self.discards[0]}), taking {self.gone_with_discard} acknowledged "
                   "file(s) with it" if self.discards else ""))


class GuestLedger:
    """The guest's own loop: one new file per round, dd conv=fsync, then an ACK with its sha256."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    @staticmethod
    def script(tag: str) -> str:
        return ("mkdir -p /root/crash; i=0; while :; do f=/root/crash/" + tag + "_$i;"
                " dd if=/dev/urandom of=$f bs=1k count=$((i % 97 * 3 + 1)) conv=fsync 2>/dev/null || break;"
                " echo \"ACK $f $(sha256sum $f | cut -d' ' -f1)\" > /dev/ttyS0; i=$((i+1)); done")

    def check(self, page, tally: CrashTally) -> None:
        acked = [line.split()[1:3] for line in list(self.lines) if len(line.split()) == 3]
        if tally.discarded_at_last_open(len(acked)):
            return
        got = page.evaluate("(paths) => Promise.all(paths.map((p) => T.fileHash(p)))",
                            [path for path, _ in acked])
        for (path, sha), result in zip(acked, got):
            tally.checked += 1
            if result.get("sha256") != sha:
                tally.lost += 1
                tally.failures.append({"path": path, "want": sha, "got": result})


class FramesLedger:
    """The page's 9P workload (tests/pages/idb.js framesWorkload): START/ACK per file version."""

    def __init__(self) -> None:
        self.state: dict[str, dict] = {}  # path -> {"started": v, "acked": v, "size": n}
        self._lines: list[list[str]] = []
        self._counted: set[tuple[str, int]] = set()  # tallied once, however often re-checked

    def follow(self, lines: list[str]) -> None:
        self._lines.append(lines)

    def _update(self) -> set[str]:
        touched = set()
        for lines in self._lines:
            for line in list(lines):
                kind, path, v, size = line.split()
                entry = self.state.setdefault(path, {"started": 0, "acked": 0, "size": 0})
                touched.add(path)
                if kind == "START":
                    entry["started"] = max(entry["started"], int(v))
                else:
                    if int(v) >= entry["acked"]:
                        entry["acked"], entry["size"] = int(v), int(size)
        self._lines = []
        return touched

    def check(self, page, tally: CrashTally, everything: bool = False) -> None:
        """Check the files the last run touched, or (``everything``) every acknowledged file so
        far: earlier crashes must not have damaged them either."""
        touched = self._update()
        acked = [path for path, entry in self.state.items() if entry["acked"]]
        if tally.discarded_at_last_open(len(acked)):
            self.state.clear()  # all of it went with the database; what comes next starts anew
            self._counted.clear()
            return
        files = []
        for path, entry in self.state.items():
            if not everything and path not in touched:
                continue
            if not entry["acked"]:
                continue
            first = (path, entry["acked"]) not in self._counted
            self._counted.add((path, entry["acked"]))
            if entry["started"] != entry["acked"]:
                tally.in_flux += first
                continue
            tally.checked += first
            files.append([path, entry["acked"], entry["size"]])
        bad = page.evaluate("(files) => T.verify(files)", files)
        tally.lost += len(bad)
        tally.failures.extend(bad)


def _kill_later(pw, browser: Browser, page, ms: float, tally: CrashTally) -> Browser:
    """Let the workload run ``ms`` (waiting in Playwright keeps its callbacks, the ledger's
    lines, coming), SIGKILL the browser, and start a new one on the same profile."""
    page.wait_for_timeout(ms)
    browser.kill()
    tally.killed()
    return Browser(pw, browser.profile)


def frames_runs(pw, site: SiteServer, profile: Path, runs: int, rng: random.Random,
                wait_ms: tuple[float, float], check_all_every: int, say=print) -> CrashTally:
    """``runs`` frame-driven crash runs on one profile: open the database, check what the last
    run acknowledged (everything acknowledged so far every ``check_all_every`` runs and at the
    end), start the next workload, SIGKILL the browser after ``wait_ms``."""
    tally = CrashTally()
    ledger = FramesLedger()
    browser = Browser(pw, profile)
    try:
        for run in range(runs + 1):
            lines: list[str] = []
            page = open_idb_page(browser, site, ledger=lines)
            opened = page.evaluate("T.open({db: 'frames', options: {image: null}})")
            if run:
                tally.opened(opened["report"])
                ledger.check(page, tally, everything=run == runs or run % check_all_every == 0)
                say(f"  run {run}/{runs}: {tally.checked} checked, {tally.lost} lost")
            if run == runs:
                break
            ledger.follow(lines)
            page.evaluate("(seed) => { T.framesWorkload({seed}).catch((e) => console.log('WORKLOAD ' + e)); }",
                          run + 1)
            browser = _kill_later(pw, browser, page, rng.uniform(*wait_ms), tally)
    finally:
        browser.close()
    return tally


def guest_runs(pw, site: SiteServer, profile: Path, runs: int, rng: random.Random,
               wait_ms: tuple[float, float], say=print) -> CrashTally:
    """``runs`` crash runs with the real guest writing and fsyncing (GuestLedger.script), each
    reopen checking what the run before acknowledged."""
    tally = CrashTally()
    browser = Browser(pw, profile)
    ledger = None
    try:
        for run in range(runs + 1):
            page = open_idb_page(browser, site)
            acks = console_lines(page, r"^ACK ")
            opened = page.evaluate("T.open({db: 'guest'})")
            if ledger is not None:
                tally.opened(opened["report"])
                ledger.check(page, tally)
                say(f"  guest run {run}/{runs}: {tally.checked} checked, {tally.lost} lost")
            if run == runs:
                break
            page.evaluate("T.boot()")
            ledger = GuestLedger(acks)
            page.evaluate("(s) => T.start(s)", GuestLedger.script(f"r{run}"))
            browser = _kill_later(pw, browser, page, rng.uniform(*wait_ms), tally)
    finally:
        browser.close()
    return tally

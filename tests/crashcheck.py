"""Book-keeping for the crash tests (tests/test_browser_idb.py, bench/idb_crash.py).

A workload logs ``START path version size`` before it changes a file and ``ACK path …`` once the
change is durable (its fsync, writeFile or flush returned). After the browser was killed and the
database reopened, every file whose last change was acknowledged must read back exactly; a file
that was being changed again at the kill is "in flux" and may hold either version or a mix (POSIX
promises nothing for unsynced writes), so it is counted but not checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CrashTally:
    kills: int = 0
    opens: int = 0
    checked: int = 0
    lost: int = 0
    in_flux: int = 0
    repairs: list[str] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)

    def killed(self) -> None:
        self.kills += 1

    def opened(self, report: dict | None) -> None:
        """The database opened after a kill; keep what its open-time check repaired."""
        assert report is not None and "repairs" in report, report
        self.opens += 1
        self.repairs.extend(report["repairs"])

    def line(self, what: str) -> str:
        return (f"crash tally ({what}): {self.kills} kills, {self.opens} reopens (all opened), "
                f"{self.checked} acknowledged files checked, {self.lost} lost, {self.in_flux} in flux at "
                f"the kill (not checked), open-time check repaired {len(self.repairs)} thing(s)"
                + (f": {self.repairs[:5]}" if self.repairs else ""))


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

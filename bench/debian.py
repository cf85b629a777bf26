"""The Debian userland (dist/debian/, ``./build.sh debian``) in the real guest: ours against v86's
own 9p on the same export, in the same run (not a test).

    .venv/bin/python bench/debian.py [DIST] [--skip-builtin]

Each side boots once in Node: ours through ``createServer({basefs, baseurl})`` from a local HTTP
host that counts requests (Range-capable, tests/base_http.py), v86's built-in 9p from the same
``fs.json`` and ``base/`` as local files (v86 reads them from disk under Node; it fetches a whole
content file on first read). Then, each typed at the guest's shell and timed from the host around
it minus an empty command: ``python3 -c 'print(42)'`` first (cold: nothing of python fetched) and second;
``ls -l /usr/bin | wc -l``; ``grep -r`` over /usr/share/doc; ``man ls | head``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from base_http import BaseHost  # noqa: E402
from guest import Guest  # noqa: E402

WORKLOADS = (
    ("python3 print(42), first", "python3 -c 'print(42)'"),
    ("python3 print(42), again", "python3 -c 'print(42)'"),
    ("ls -l /usr/bin | wc -l", "ls -l /usr/bin | wc -l"),
    ("grep -r over /usr/share/doc", "grep -r -l -i license /usr/share/doc | wc -l"),
    ("grep -r again", "grep -r -l -i license /usr/share/doc | wc -l"),
    ("man ls | head", "man ls 2>/dev/null | head -3"),
)


def fetched(host: BaseHost, mark: int, base: Path) -> tuple[int, int]:
    """(content files, bytes) the host sent since ``mark``."""
    names, total = set(), 0
    for path, rng, status in host.since(mark):
        if not path.startswith("debian/base/") or status not in (200, 206):
            continue
        size = (base / path.removeprefix("debian/base/")).stat().st_size
        if status == 206 and rng:
            a, _, b = rng[6:].partition("-")
            size = min(int(b) + 1 if b else size, size) - int(a)
        names.add(path)
        total += size
    return len(names), total


def typed(g: Guest, script: str) -> str:
    """``script`` typed at the guest's shell, as a user does. (Guest.sh writes it as a file through
    the server first: a change the guest did not make, so the guest drops every cache it holds
    before each command, and every command ran as if for the first time.)"""
    msg = g.request("run", wait=600, script=script, timeout=600_000, via_serial=True)
    if msg["status"]:
        raise RuntimeError(f"exit {msg['status']} from {script!r}: {msg['output'][-500:]}")
    return msg["output"]


def timed(g: Guest, script: str) -> tuple[float, str]:
    t = time.perf_counter()
    typed(g, "true")
    empty = time.perf_counter() - t
    t = time.perf_counter()
    out = typed(g, script)
    return time.perf_counter() - t - empty, out.strip().splitlines()[0] if out.strip() else ""


def side(name: str, args: list[str], host: BaseHost | None, base: Path) -> dict:
    mark = host.mark() if host else 0
    t = time.perf_counter()
    g = Guest(*args, boot_timeout=600)
    # boot_ms counts from the harness's start: ours starts Python (Pyodide) first, v86's 9p has none.
    row: dict = {"name": name, "prompt_s": time.perf_counter() - t, "python_ms": g.info.get("pyodide_ms", 0),
                 "boot_ms": g.info["boot_ms"] - g.info.get("pyodide_ms", 0)}
    try:
        if host:
            row["boot_fetch"] = fetched(host, mark, base)
        for label, script in WORKLOADS:
            row[label] = timed(g, script)
        if host:
            row["all_fetch"] = fetched(host, mark, base)
    finally:
        g.close()
    return row


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    dist = Path(args[0] if args else ROOT / "dist").resolve()
    deb = dist / "debian"
    if not (deb / "fs.json").is_file():
        sys.exit("bench/debian.py: dist/debian/ is not built: run ./build.sh debian")
    base = deb / "base"
    sizes = [p.stat().st_size for p in base.iterdir()]
    print(
        f"Debian base: {len(sizes)} content files, {sum(sizes) / 1e6:.1f} MB, "
        f"fs.json {(deb / 'fs.json').stat().st_size / 1e3:.0f} kB"
    )
    host = BaseHost(dist)
    rows = [side("ours (HTTP)", ["--basefs", host.url + "debian/fs.json", "--baseurl", host.url + "debian/base/"],
                 host, base)]
    if "--skip-builtin" not in sys.argv:
        rows.append(side("v86's 9p", ["--builtin", "--basefs", str(deb / "fs.json"), "--baseurl", str(base) + "/"],
                         None, base))
    host.close()
    ours = rows[0]
    bf, bb = ours["boot_fetch"]
    af, ab = ours["all_fetch"]
    print(f"ours: to the prompt {bf} content files, {bb / 1e6:.2f} MB fetched; after the workloads {af} files, "
          f"{ab / 1e6:.2f} MB ({ab / sum(sizes):.1%} of the base)")
    print(f"\n{'':30}" + "".join(f"{r['name']:>16}" for r in rows) + ("   ratio" if len(rows) > 1 else ""))

    def line(label: str, values: list[float], fmt: str = "{:16.2f}") -> None:
        ratio = f"   {values[0] / values[1]:.2f}x" if len(values) > 1 and values[1] else ""
        print(f"{label:30}" + "".join(fmt.format(v) for v in values) + ratio)

    line("time to prompt (s)", [r["prompt_s"] for r in rows])
    line("  of which Python's start (s)", [r["python_ms"] / 1000 for r in rows])
    line("  of which guest boot (s)", [r["boot_ms"] / 1000 for r in rows])
    for label, _ in WORKLOADS:
        line(f"{label} (s)", [r[label][0] for r in rows])
    print("\noutputs: " + "; ".join(f"{label}: {ours[label][1]!r}" for label, _ in WORKLOADS))


if __name__ == "__main__":
    main()

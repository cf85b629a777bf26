"""The fs2json fixture: a small tree, and what v86's own tools make of it.

``TREE`` is written to a host directory and given to v86's ``tools/fs2json.py`` (plain and
``--zstd``) and ``tools/copy-to-sha256.py --zstd``; their output is kept here (``v86-fs.json``,
``v86-fs-zstd.json``, ``zst/``) so the suite checks our reader and writer against v86's format
without fetching v86. Run again only to regenerate (needs a v86 checkout and ``zstandard``):

    .venv/bin/python tests/data/fs2json/make_fixture.py V86_CHECKOUT
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MTIME = 1_700_000_000

# (path, kind, mode, content or link target)
TREE: list[tuple[str, str, int, bytes | str | None]] = [
    ("etc", "d", 0o755, None),
    ("etc/hostname", "f", 0o644, b"fixture\n"),
    ("etc/motd", "f", 0o644, b"Welcome.\n" * 40),
    ("bin", "d", 0o755, None),
    ("bin/hello", "f", 0o755, b"#!/bin/sh\necho hello\n"),
    ("bin/sh", "l", 0o777, "busybox"),
    ("srv", "d", 0o750, None),
    ("srv/empty", "f", 0o600, b""),
    ("srv/zeros", "f", 0o644, bytes(70_000)),
    ("srv/same-a", "f", 0o644, b"same bytes\n"),
    ("srv/same-b", "f", 0o644, b"same bytes\n"),
    ("srv/deep", "d", 0o755, None),
    ("srv/deep/er", "d", 0o700, None),
    ("srv/deep/er/file", "f", 0o4755, bytes(range(256)) * 9),
    ("srv/deep/up", "l", 0o777, "../../etc/hostname"),
]


def write_host(root: Path) -> None:
    """``TREE`` as host files (owned by whoever runs this; the test compares without owners)."""
    for path, kind, mode, data in TREE:
        p = root / path
        if kind == "d":
            p.mkdir()
        elif kind == "f":
            assert isinstance(data, bytes)
            p.write_bytes(data)
        else:
            assert isinstance(data, str)
            p.symlink_to(data)
    for path, kind, mode, _ in reversed(TREE):  # children first: a directory's time last
        p = root / path
        if kind != "l":
            os.chmod(p, mode)
        os.utime(p, (MTIME, MTIME), follow_symlinks=False)


def main(v86: str) -> None:
    tools = Path(v86) / "tools"
    with tempfile.TemporaryDirectory() as tmp:
        host = Path(tmp) / "tree"
        host.mkdir()
        write_host(host)
        for out, extra in (("v86-fs.json", []), ("v86-fs-zstd.json", ["--zstd"])):
            subprocess.run([sys.executable, tools / "fs2json.py", *extra, "--out", HERE / out, host], check=True)
        shutil.rmtree(HERE / "zst", ignore_errors=True)
        (HERE / "zst").mkdir()
        subprocess.run([sys.executable, tools / "copy-to-sha256.py", "--zstd", host, HERE / "zst"], check=True)


if __name__ == "__main__":
    main(sys.argv[1])

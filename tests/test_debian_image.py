"""pyninep_browser/debian_image.py on CPython, without Debian's packages: the merged /usr, the
alternatives, and the authored root exported as fs2json, over a small fake staging tree (the real
one is booted by tests/test_e2e_debian.py)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from pyninep_browser import debian_image
from pyninep_browser.fs2json import DirSource, load_fs2json


def fake_unpacked(root: Path) -> Path:
    """What dpkg-deb -x leaves: bookworm's packages still ship /bin, /sbin and /lib."""
    for d in ("bin", "sbin", "lib/i386-linux-gnu", "usr/bin", "usr/lib/i386-linux-gnu", "usr/share/base-files",
              "usr/share/man/man1", "etc/skel"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "bin/bash").write_bytes(b"\x7fELF bash")
    (root / "bin/bash").chmod(0o755)
    (root / "bin/sh").symlink_to("dash")
    (root / "bin/dash").write_bytes(b"\x7fELF dash")
    (root / "sbin/ldconfig").write_bytes(b"\x7fELF ldconfig")
    (root / "lib/i386-linux-gnu/libc.so.6").write_bytes(b"libc")
    (root / "usr/lib/i386-linux-gnu/libz.so.1").write_bytes(b"libz")
    (root / "usr/bin/mawk").write_bytes(b"\x7fELF mawk")
    (root / "usr/bin/busybox").write_bytes(b"\x7fELF busybox")
    (root / "usr/share/man/man1/mawk.1.gz").write_bytes(b"man")
    for name, text in (("profile", "PATH=/usr/bin\n"), ("dot.profile", "# ~/.profile\n"), ("dot.bashrc", "# bashrc\n")):
        (root / "usr/share/base-files" / name).write_text(text)
    (root / "etc/skel/.bashrc").write_text("# skel\n")
    return root


def test_merge_usr_moves_the_top_directories_into_usr(tmp_path) -> None:
    root = fake_unpacked(tmp_path / "r")
    debian_image.merge_usr(root)
    debian_image.merge_usr(root)  # idempotent
    for name in ("bin", "sbin", "lib"):
        assert os.readlink(root / name) == f"usr/{name}"
    assert (root / "usr/bin/bash").read_bytes() == b"\x7fELF bash"
    assert os.readlink(root / "usr/bin/sh") == "dash"
    assert {p.name for p in (root / "usr/lib/i386-linux-gnu").iterdir()} == {"libc.so.6", "libz.so.1"}
    assert (root / "usr/sbin/ldconfig").is_file()


def test_merge_usr_refuses_two_different_files_of_one_name(tmp_path) -> None:
    root = fake_unpacked(tmp_path / "r")
    (root / "usr/bin/dash").write_bytes(b"another dash")
    with pytest.raises(ValueError, match="differ"):
        debian_image.merge_usr(root)


def test_alternatives_link_only_what_is_there(tmp_path) -> None:
    root = fake_unpacked(tmp_path / "r")
    debian_image.merge_usr(root)
    debian_image.set_alternatives(root)
    assert os.readlink(root / "usr/bin/awk") == "mawk"
    assert os.readlink(root / "usr/share/man/man1/awk.1.gz") == "mawk.1.gz"
    assert not os.path.lexists(root / "usr/bin/editor")  # no nano in this tree


def test_the_authored_root_exports_as_fs2json(tmp_path) -> None:
    root = fake_unpacked(tmp_path / "r")
    debian_image.merge_usr(root)
    out = tmp_path / "out"
    counts = debian_image.export(root, out)
    assert counts["files"] > 5
    doc = json.loads((out / "fs.json").read_text())
    assert doc["version"] == 3
    fs = load_fs2json((out / "fs.json").read_bytes())
    fs.base_source = DirSource(out / "base")
    assert fs.read_file("/bin/bash") == b"\x7fELF bash"  # through the /bin symlink
    assert fs.read_file("/etc/passwd").startswith(b"root:x:0:0:root:/root:/bin/bash\n")
    assert b"::respawn:-/bin/bash" in fs.read_file("/etc/inittab")
    assert fs.read_file("/etc/profile") == b"PATH=/usr/bin\n"
    assert b"xterm-256color" in fs.read_file("/etc/profile.d/pyninep.sh")
    assert b"# bashrc\n" in fs.read_file("/root/.bashrc")
    entries = {e[0]: e for e in doc["fsroot"]}
    usr = {e[0]: e for e in entries["usr"][6]}
    assert {e[0]: e for e in usr["sbin"][6]}["init"][6] == "../bin/busybox"
    assert entries["bin"][6] == "usr/bin"
    assert stat.S_IMODE(entries["root"][3]) == 0o700 and stat.S_IMODE(entries["tmp"][3]) == 0o1777
    assert all(e[4] == 0 for e in doc["fsroot"])  # owners root
    home = next(e for e in entries["home"][6] if e[0] == "user")
    assert home[4:6] == [1000, 1000]

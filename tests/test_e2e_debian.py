"""The Debian userland (dist/debian/, ``./build.sh debian``; docs/debian.md) boots in the real guest
through our server as a v86 fs2json base over HTTP (``createServer({basefs, baseurl})``), and its
tools work: bash, the guest's own python3 with json and sqlite3, coreutils' ls with colours, nano.
One boot for the module; every request to the host is counted, so the boot's share of the base is
checked too.

Skipped when dist/debian/ is not built. ``./build.sh test`` refreshes it when its packages are
already cached (a few seconds; the first download and export is ``./build.sh debian``, about a
minute); see docs/debian.md."""

from __future__ import annotations

import json
import re

import pytest

from base_http import BaseHost
from guest import DEBIAN_DIST, Guest, GuestError

BASE = DEBIAN_DIST / "debian"


def content_files() -> dict[str, int]:
    return {p.name: p.stat().st_size for p in (BASE / "base").iterdir()}


@pytest.fixture(scope="module")
def host():
    if not (BASE / "fs.json").is_file():
        pytest.skip("the Debian base is not built: run ./build.sh debian (docs/debian.md)")
    served = BaseHost(DEBIAN_DIST)
    yield served
    served.close()


@pytest.fixture(scope="module")
def guest(host):
    try:
        g = Guest("--basefs", host.url + "debian/fs.json", "--baseurl", host.url + "debian/base/", boot_timeout=240)
    except GuestError as exc:
        pytest.fail(str(exc))
    g.boot_requests = host.since(0)  # type: ignore[attr-defined]
    yield g
    g.close()


def fetched(requests: list[list]) -> dict[str, int]:
    """Content file -> bytes the host sent for it (ranges add up)."""
    sizes = content_files()
    out: dict[str, int] = {}
    for path, rng, status in requests:
        if not path.startswith("debian/base/") or status not in (200, 206):
            continue
        name = path.removeprefix("debian/base/")
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
        size = sizes[name]
        sent = size if status == 200 or not m else min(int(m[2]) + 1 if m[2] else size, size) - int(m[1])
        out[name] = out.get(name, 0) + sent
    return out


def test_boot_fetches_a_small_part_of_the_base(guest) -> None:
    sizes = content_files()
    boot = fetched(guest.boot_requests)
    total_bytes = sum(sizes.values())
    print(
        f"\nDebian boot: {len(boot)} of {len(sizes)} content files, "
        f"{sum(boot.values())} of {total_bytes} bytes fetched; boot {guest.info['boot_ms']} ms"
    )
    assert 0 < len(boot) < len(sizes) / 20, (len(boot), len(sizes))
    assert sum(boot.values()) < total_bytes / 4
    fsjson = [r for r in guest.boot_requests if r[0] == "debian/fs.json"]
    assert len(fsjson) == 1 and fsjson[0][2] == 200


def test_bash(guest) -> None:
    out = guest.sh("bash --version")
    assert re.match(r"GNU bash, version 5\.\d+\.\d+.*i686-pc-linux-gnu", out), out
    # the console's shell is a bash login shell, session leader on the serial console
    assert guest.sh("ps -o tty=,stat=,args= -p $PPID").split()[:2] == ["ttyS0", "Ss"]


def test_python3_is_the_guests_own_with_its_stdlib(guest) -> None:
    out = guest.sh("python3 -c 'import json, sqlite3; print(json.dumps([1]))'", timeout=180)
    assert out == "[1]\n"
    info = json.loads(
        guest.sh(
            "python3 -c 'import json, sys, sqlite3, platform;"
            ' print(json.dumps([sys.version_info[:2], platform.machine(), sqlite3.sqlite_version, sys.prefix]))\''
        )
    )
    assert info[0] == [3, 11] and re.fullmatch(r"i[3-6]86", info[1]) and info[3] == "/usr", info


def test_ls_colours(guest) -> None:
    # the harness's commands write to the serial console itself: a terminal, so auto colours
    out = guest.sh("ls --color=auto /")
    assert "\x1b[" not in guest.sh("ls --color=auto / | cat"), "auto: no colours into a pipe"
    for name in ("bin", "etc", "root", "tmp", "usr"):
        assert re.search(r"\x1b\[[0-9;]*m" + name + r"\x1b\[0m", out), (name, out)
    # /bin is bookworm's merged /usr
    assert guest.sh("readlink /bin /lib /sbin").split() == ["usr/bin", "usr/lib", "usr/sbin"]


def test_nano_and_the_rest_of_the_tools(guest) -> None:
    assert guest.sh("nano --version").startswith(" GNU nano, version 7.")
    out = guest.sh(
        "printf 'b 2\\na 1\\n' | sort | awk '{print $2}' | tr '\\n' ' ' | sed 's/ $//'; echo;"
        " find /etc -name hostname | grep -c hostname; echo x | gzip | xz | xz -d | gunzip;"
        " file -b /bin/bash | cut -d, -f1; less --version | head -1 | cut -d' ' -f1;"
        " ps -p 1 -o comm=; which python3; command -v mount; command -v tar"
    )
    assert out.splitlines() == [
        "1 2",
        "1",
        "x",
        "ELF 32-bit LSB pie executable",
        "less",
        "init",
        "/usr/bin/python3",
        "/usr/bin/mount",
        "/usr/bin/tar",
    ], out


def test_a_file_in_root_reads_back(guest) -> None:
    guest.sh("cd /root && printf 'kept\\n' > note.txt && python3 -c 'print(open(\"/root/note.txt\").read(), end=\"\")'")
    assert guest.sh("cat /root/note.txt") == "kept\n"
    assert guest.read_file("/root/note.txt") == b"kept\n"  # the server's store holds it
    assert guest.sh("stat -c '%U %a' /root /root/note.txt").split() == ["root", "700", "root", "644"]


def test_man_pages(guest) -> None:
    assert guest.sh("whatis ls").startswith("ls (1)")
    out = guest.sh("man ls 2>&1 | head -4", timeout=300)
    assert "ls - list directory contents" in out, out


def test_dpkg_knows_what_is_installed(guest) -> None:
    # bookworm's packages still list /bin (dpkg -S knows the names the packages give)
    out = guest.sh("dpkg -l bash python3 | tail -2; dpkg -S /bin/bash; dpkg -L libc6 | grep -c libc.so.6 2>&1")
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["ii", "bash"] and lines[1].split()[:2] == ["ii", "python3"], out
    assert lines[2:] == ["bash: /bin/bash", "1"], out

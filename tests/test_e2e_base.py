"""The real guest boots a v86 fs2json base image (the default tree exported with
``image export-fs2json``, plus a 5 MB file and a few hundred small ones) from a real HTTP host:
through our server (``createServer({basefs, baseurl})``), and through v86's own 9p, which must see
the same tree. Every request to the host is counted."""

from __future__ import annotations

import hashlib
import random
import shutil
from pathlib import Path

import pytest

from pyninep_browser.fs.base import PIECE
from pyninep_browser.fs.image import load_image
from pyninep_browser.fs2json import export_fs2json

from base_http import BaseHost
from guest import DIST, Guest, GuestError

BIG = random.Random(11).randbytes(5 * 1000 * 1000)


def small(i: int) -> bytes:
    return f"small file {i}\n".encode() * (1 + i % 7)


def name_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:8] + ".bin"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory):
    image = DIST / "images" / "default.img"
    if not image.is_file():
        pytest.skip("dist/ is not built: run ./build.sh")
    fs = load_image(image.read_bytes())
    srv = fs.makedirs("/srv/many")
    for i in range(300):
        fs.write_file(f"/srv/many/f{i:03}", small(i))
    fs.write_file("/srv/big", BIG)
    fs.write_file("/srv/run.sh", b"#!/bin/sh\necho ran from the base\n", mode=0o755)
    fs.symlink(srv, "big-link", b"../big")
    root = tmp_path_factory.mktemp("base")
    export_fs2json(fs, root / "plain")
    host = BaseHost(root)
    yield host, root / "plain"
    host.close()


@pytest.fixture(scope="module")
def guest(base):
    host, _ = base
    try:
        g = Guest("--basefs", host.url + "plain/fs.json", "--baseurl", host.url + "plain/base/")
    except GuestError as exc:
        pytest.fail(str(exc))
    yield g
    g.close()


def content(host: BaseHost, mark: int) -> list[list]:
    return [r for r in host.since(mark) if r[0].startswith("plain/base/")]


def test_boot_reads_only_what_it_uses(base, guest) -> None:
    host, plain = base
    fetched = {r[0] for r in content(host, 0)}
    files = len(list((plain / "base").iterdir()))
    assert 0 < len(fetched) < files / 2, (len(fetched), files)
    assert f"plain/base/{name_of(BIG)}" not in fetched


def test_one_read_fetches_that_file_only(base, guest) -> None:
    host, _ = base
    mark = host.mark()
    assert guest.sh("cat /srv/many/f017").encode() == small(17)
    assert [r[0] for r in content(host, mark)] == [f"plain/base/{name_of(small(17))}"]
    mark = host.mark()
    guest.sh("cat /srv/many/f017 >/dev/null")  # again: kept, not fetched
    assert content(host, mark) == []


def test_4k_of_5mb_fetches_at_most_one_range(base, guest) -> None:
    host, _ = base
    mark = host.mark()
    out = guest.sh("dd if=/srv/big bs=4096 count=1 2>/dev/null | md5sum")
    assert out.split()[0] == hashlib.md5(BIG[:4096]).hexdigest()
    reqs = content(host, mark)
    assert len(reqs) == 1 and reqs[0][1] == f"bytes=0-{PIECE - 1}" and reqs[0][2] == 206, reqs
    assert guest.sh("md5sum /srv/many/big-link").split()[0] == hashlib.md5(BIG).hexdigest()


def test_missing_content_is_eio_for_that_file_only(base, guest) -> None:
    _, plain = base
    victim = plain / "base" / name_of(small(100))
    kept = victim.read_bytes()
    victim.unlink()
    try:
        status, out = guest.run("cat /srv/many/f100")
        assert status != 0 and "I/O error" in out or "Input/output error" in out, out
        assert guest.sh("cat /srv/many/f101").encode() == small(101)
    finally:
        victim.write_bytes(kept)
    assert guest.sh("cat /srv/many/f100").encode() == small(100)  # nothing was half-filled


def test_copy_on_write_leaves_the_base_alone(base, guest) -> None:
    _, plain = base
    before = {p.name: p.read_bytes() for p in (plain / "base").iterdir()}
    json_before = (plain / "fs.json").read_bytes()
    guest.sh(
        "echo appended >> /srv/many/f005 && mv /srv/many/f006 /srv/moved && chmod 600 /srv/many/f007"
        " && rm /srv/many/f008 && printf 'XY' | dd of=/srv/big bs=1 seek=1048580 conv=notrunc 2>/dev/null"
        " && truncate -s 100 /srv/many/f009 2>/dev/null || : > /srv/many/f009"
    )
    assert guest.sh("cat /srv/many/f005").encode() == small(5) + b"appended\n"
    assert guest.sh("cat /srv/moved").encode() == small(6)
    assert guest.sh("stat -c %a /srv/many/f007").strip() == "600"
    assert guest.run("test -e /srv/many/f008")[0] != 0
    expected = bytearray(BIG)
    expected[1048580:1048582] = b"XY"
    assert guest.sh("md5sum /srv/big").split()[0] == hashlib.md5(expected).hexdigest()
    assert guest.sh("/srv/run.sh").strip() == "ran from the base"
    after = {p.name: p.read_bytes() for p in (plain / "base").iterdir()}
    assert after == before and (plain / "fs.json").read_bytes() == json_before


def test_saved_state_holds_references(guest) -> None:
    saved = guest.request("save", wait=120)
    assert saved["fs_bytes"] < 2 << 20, saved  # over 5 MB of files read, kept by reference


def test_v86_builtin_9p_boots_the_export(base, guest) -> None:
    """v86's own 9p (no server of ours) boots the same export and sees the same tree."""
    _, plain = base
    check = "md5sum /bin/busybox /srv/many/f017 /srv/many/big-link /etc/motd; ls -ln /srv | sort"
    ours_before = None
    fresh = plain.parent / "pristine"
    if not fresh.exists():  # the guest above changed files: compare what both saw unchanged
        shutil.copytree(plain, fresh)
    ours_before = guest.sh("md5sum /bin/busybox /srv/many/f017 /etc/motd")
    try:
        v86 = Guest("--builtin", "--basefs", str(fresh / "fs.json"), "--baseurl", str(fresh / "base") + "/")
    except GuestError as exc:
        pytest.fail(str(exc))
    try:
        theirs = v86.sh(check)
    finally:
        v86.close()
    assert theirs.splitlines()[0:2] == ours_before.splitlines()[0:2]
    assert hashlib.md5(BIG).hexdigest() in theirs
    assert ours_before.splitlines()[2] == theirs.splitlines()[3]
    assert "run.sh" in theirs and "many" in theirs

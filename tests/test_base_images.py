"""Base images (v86's fs2json ``basefs``/``baseurl``) on CPython: the format against v86's own
tools' output, lazy fetches counted over real HTTP, copy on write, checks, SQLite persistence,
save states, and the ``image import-fs2json``/``export-fs2json`` commands."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from pyninep_browser import snapshot
from pyninep_browser.authoring import Tree
from pyninep_browser.fs import ChunksNeeded, Filesystem
from pyninep_browser.fs.base import PIECE
from pyninep_browser.fs2json import (
    DirSource,
    Fs2jsonError,
    UrlSource,
    export_fs2json,
    import_fs2json,
    load_fs2json,
)
from pyninep_browser.server import Server
from pyninep_browser.store.sqlite import SQLiteStore

from base_http import BaseHost
from ninep_client import Client

sys.path.insert(0, str(Path(__file__).resolve().parent / "data" / "fs2json"))
from make_fixture import MTIME, TREE  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).resolve().parent / "data" / "fs2json"


def author_fixture() -> Tree:
    tree = Tree()
    for path, kind, mode, data in TREE:
        p = tree.path("/" + path)
        if kind == "d":
            p.mkdir(mode=mode)
        elif kind == "f":
            assert isinstance(data, bytes)
            p.write_bytes(data, mode=mode)
        else:
            assert isinstance(data, str)
            p.symlink_to(data)
    for path, _, _, _ in TREE:
        tree.path("/" + path).set_times(mtime=MTIME)
    return tree


def normal(entries: list) -> list:
    """fs2json entries without owners (the fixture's are whoever ran v86's tools), children sorted."""
    out = []
    for e in entries:
        e = list(e)
        e[4] = e[5] = 0
        if len(e) > 6 and isinstance(e[6], list):
            e[6] = normal(e[6])
        out.append(e)
    return sorted(out)


def test_export_matches_v86_fs2json(tmp_path: Path) -> None:
    """Our writer gives the fs.json v86's tools/fs2json.py gives for the same tree."""
    export_fs2json(author_fixture().fs, tmp_path)
    ours = json.loads((tmp_path / "fs.json").read_text())
    v86 = json.loads((FIXTURE / "v86-fs.json").read_text())
    assert normal(ours["fsroot"]) == normal(v86["fsroot"])
    assert ours["version"] == v86["version"] == 3
    # Content files are named and filled as copy-to-sha256.py names and fills them.
    for path, kind, _, data in TREE:
        if kind == "f":
            assert isinstance(data, bytes)
            name = hashlib.sha256(data).hexdigest()[:8] + ".bin"
            assert (tmp_path / "base" / name).read_bytes() == data


def test_v86_zstd_base_reads_back() -> None:
    """v86's --zstd fs.json and copy-to-sha256.py --zstd content: every file reads back."""
    fs = load_fs2json((FIXTURE / "v86-fs-zstd.json").read_bytes())
    fs.base_source = DirSource(FIXTURE / "zst")
    for path, kind, mode, data in TREE:
        st = fs.resolve("/" + path, follow=False)
        assert st.mode & 0o7777 == mode or kind == "l"
        assert st.mtime == MTIME * 10**9
        if kind == "f":
            assert fs.read_file("/" + path) == data
        elif kind == "l":
            assert st.target == str(data).encode()


def test_bad_fs2json_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(Fs2jsonError, match="version 2 is not supported"):
        load_fs2json(b'{"fsroot": [], "version": 2}')
    with pytest.raises(Fs2jsonError, match="not a fs2json file"):
        load_fs2json(b"<html>")
    with pytest.raises(Fs2jsonError, match="content file name"):
        load_fs2json(json.dumps({"fsroot": [["x", 3, 0, 0o100644, 0, 0, "../../etc/passwd"]], "version": 3}))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """A base made by our export (checked against v86's above): the fixture tree plus a 5 MB
    file and a few hundred small ones, plain and zstd, on a real HTTP server."""
    tree = author_fixture()
    rng = random.Random(7)
    big = rng.randbytes(5 * 1000 * 1000)
    tree.path("/srv/big").write_bytes(big)
    many = tree.path("/srv/many").mkdir()
    for i in range(300):
        (many / f"f{i:03}").write_bytes(f"small file {i}\n".encode() * (1 + i % 7))
    root = tmp_path_factory.mktemp("base")
    export_fs2json(tree.fs, root / "plain")
    export_fs2json(tree.fs, root / "zst", zstd=True)
    host = BaseHost(root)
    yield host, big
    host.close()


def base_fs(host: BaseHost, kind: str = "plain", **options) -> Filesystem:
    fs = load_fs2json((host.root / kind / "fs.json").read_bytes(), **options)
    fs.base_source = UrlSource(host.url + kind + "/base/")
    return fs


def content_requests(host: BaseHost, mark: int) -> list[list]:
    return [r for r in host.since(mark) if "/base/" in r[0]]


def test_one_file_read_fetches_that_file_only(served) -> None:
    host, big = served
    fs = base_fs(host)
    mark = host.mark()
    assert fs.read_file("/srv/many/f017") == b"small file 17\n" * 4
    reqs = content_requests(host, mark)
    name = hashlib.sha256(b"small file 17\n" * 4).hexdigest()[:8] + ".bin"
    assert [r[0] for r in reqs] == [f"plain/base/{name}"]
    # Read again: from memory, nothing fetched.
    fs.read_file("/srv/many/f017")
    assert len(content_requests(host, mark)) == 1
    # 4 KiB of the 5 MB file: one range of at most 1 MiB.
    mark = host.mark()
    inode = fs.resolve("/srv/big")
    assert fs.read_bytes(inode, 0, 4096) == big[:4096]
    reqs = content_requests(host, mark)
    assert len(reqs) == 1 and reqs[0][1] == f"bytes=0-{PIECE - 1}" and reqs[0][2] == 206
    # The whole file, piece by piece, checked against the source bytes.
    assert fs.read_bytes(inode, 0, inode.size) == big
    assert len(content_requests(host, mark)) == 5
    assert fs.base_stats["failed"] == 0 and fs.base_stats["bytes"] >= len(big)


def test_host_without_ranges_and_zstd(served) -> None:
    host, big = served
    host.ignore_ranges = True
    try:
        fs = base_fs(host)
        mark = host.mark()
        assert fs.read_bytes(fs.resolve("/srv/big"), 4096, 10) == big[4096:4106]
        reqs = content_requests(host, mark)
        assert len(reqs) == 1 and reqs[0][2] == 200  # the whole file, once, then from memory
        assert fs.read_bytes(fs.resolve("/srv/big"), 3 * PIECE, 100) == big[3 * PIECE : 3 * PIECE + 100]
        assert len(content_requests(host, mark)) == 1
    finally:
        host.ignore_ranges = False
    fs = base_fs(host, "zst")
    mark = host.mark()
    assert fs.read_bytes(fs.resolve("/srv/big"), 2 * PIECE, 4096) == big[2 * PIECE : 2 * PIECE + 4096]
    reqs = content_requests(host, mark)
    assert len(reqs) == 1 and reqs[0][0].endswith(".bin.zst") and reqs[0][1] is None  # whole, compressed
    assert fs.read_file("/etc/motd") == b"Welcome.\n" * 40


def test_missing_or_wrong_content_is_eio_for_that_file_only(served, tmp_path: Path) -> None:
    host, _ = served
    base = tmp_path / "base"
    shutil.copytree(host.root / "plain" / "base", base)
    fs = load_fs2json((host.root / "plain" / "fs.json").read_bytes())
    fs.base_source = DirSource(base)
    hello = hashlib.sha256(b"#!/bin/sh\necho hello\n").hexdigest()[:8] + ".bin"
    motd = hashlib.sha256(b"Welcome.\n" * 40).hexdigest()[:8] + ".bin"
    (base / hello).unlink()
    (base / motd).write_bytes(b"Welcome.\n" * 39 + b"Welcome!\n")  # same size, other bytes
    for path in ("/bin/hello", "/etc/motd"):
        with pytest.raises(OSError) as exc:
            fs.read_file(path)
        assert exc.value.errno == errno.EIO
    assert fs.read_file("/etc/hostname") == b"fixture\n"
    assert fs.base_stats["failed"] == 2 and "does not match" in fs.base_stats["error"]
    # Nothing half-filled: the file still reads from the base, and reads again once it is right.
    (base / motd).write_bytes(b"Welcome.\n" * 40)
    assert fs.read_file("/etc/motd") == b"Welcome.\n" * 40


def test_copy_on_write_and_sqlite_restart(served, tmp_path: Path) -> None:
    host, big = served
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (host.root / "plain" / "base").iterdir()}
    db = tmp_path / "fs.sqlite"
    fs = base_fs(host)
    fs.adopt_store(SQLiteStore(db))
    fs.persist(True)
    # Read some, write some: an append, a write in the middle of the 5 MB file, a truncate,
    # a rename, a chmod, an unlink.
    assert fs.read_file("/srv/many/f001") == b"small file 1\n" * 2
    inode = fs.resolve("/srv/big")
    assert fs.write(inode, PIECE + 10, b"WRITTEN") == 7
    assert fs.read_file("/etc/motd") == b"Welcome.\n" * 40
    fs.truncate(fs.resolve("/etc/motd"), 9)  # still the base's bytes (fetched above), fewer
    assert fs.write(fs.resolve("/etc/hostname"), 8, b"more\n") == 5
    fs.rename(fs.resolve("/srv"), "same-a", fs.resolve("/srv"), "renamed")
    fs.setattr(fs.resolve("/bin/hello"), mode=0o700)
    fs.unlink(fs.resolve("/srv/many"), "f002")
    # A file read, then removed: its fetched piece is a cache no file reads any more.
    gone = fs.resolve("/srv/many/f003").base.name
    kept = fs.resolve("/srv/many/f001").base.name
    assert fs.read_file("/srv/many/f003")
    fs.unlink(fs.resolve("/srv/many"), "f003")
    fs.close()
    assert {f"b:{gone}:0", f"b:{kept}:0"} <= stored_chunks(db)
    assert inode.data_bytes == 65536  # one chunk copied, the rest still the base's

    # A new process, the base now unreachable: what was read or written is in the store.
    fs = Filesystem(store=SQLiteStore(db))
    fs.base_source = DirSource(tmp_path / "nowhere")
    assert fs.read_file("/srv/many/f001") == b"small file 1\n" * 2  # fetched once, kept
    assert fs.read_file("/etc/motd") == b"Welcome.\n"
    assert fs.read_file("/etc/hostname") == b"fixture\nmore\n"
    assert fs.resolve("/bin/hello").mode & 0o777 == 0o700
    assert "f002" not in fs.listdir("/srv/many")
    b = fs.resolve("/srv/big")
    assert fs.read_bytes(b, PIECE, 20) == big[PIECE : PIECE + 10] + b"WRITTEN" + big[PIECE + 17 : PIECE + 20]
    with pytest.raises(OSError):  # never read, and the base is gone
        fs.read_bytes(b, 4 * PIECE, 10)
    fs.base_source = UrlSource(host.url + "plain/base/")
    assert fs.read_file("/srv/renamed") == b"same bytes\n"
    expected = bytearray(big)
    expected[PIECE + 10 : PIECE + 17] = b"WRITTEN"
    assert fs.read_bytes(b, 0, b.size) == expected
    fs.close()
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (host.root / "plain" / "base").iterdir()}
    assert after == before  # the base is never written
    # The open dropped the removed file's piece (at the next commit) and kept the read one's.
    held = stored_chunks(db)
    assert f"b:{kept}:0" in held and f"b:{gone}:0" not in held


def stored_chunks(db: Path) -> set[str]:
    store = SQLiteStore(db)
    try:
        return set(store.chunk_keys() or [])
    finally:
        store.close()


def test_save_state_keeps_references(served) -> None:
    host, big = served
    server = Server(base_fs(host))
    full = snapshot.save(server)
    assert len(full) < 200_000  # 5.1 MB of files, by reference
    restored = snapshot.restore(full)
    with pytest.raises(OSError):  # a restored base file needs its base location
        restored.fs.read_file("/etc/hostname")
    restored.fs.base_source = UrlSource(host.url + "plain/base/")
    assert restored.fs.read_bytes(restored.fs.resolve("/srv/big"), 0, 100) == big[:100]


def test_async_source_defers_the_9p_read(served) -> None:
    """A page's fetch answers later: the 9P read is deferred (the guest runs meanwhile) and
    answered once the piece is in."""
    host, _ = served
    calls: list = []

    class Later:
        asynchronous = True
        location = "later"

        def fetch(self, name, start, end, done):
            calls.append(lambda: UrlSource(host.url + "plain/base/").fetch(name, start, end, done))

    fs = base_fs(host)
    fs.base_source = Later()
    with pytest.raises(ChunksNeeded):
        fs.read_file("/etc/hostname")
    server = Server(fs)
    replies: list[bytes] = []
    server.on_reply = replies.append
    client = Client(server)
    fid = client.walk_new("etc/hostname")
    client.lopen(fid, 0)
    frame = struct.pack("<IBHIQI", 23, 116, 9, fid, 0, 100)  # Tread, tag 9
    assert server.handle(frame) is None and len(calls) == 1  # deferred
    calls.pop()()
    (size, rtype, tag, n) = struct.unpack_from("<IBHI", replies[-1])
    assert (rtype, tag) == (117, 9) and replies[-1][11 : 11 + n] == b"fixture\n"


def test_image_commands_round_trip(served, tmp_path: Path) -> None:
    host, big = served
    py = [sys.executable, "-m", "pyninep_browser", "image"]
    plain = host.root / "plain"
    img = tmp_path / "base.img"
    out = subprocess.run([*py, "import-fs2json", plain / "fs.json", plain / "base", "-o", img],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert img.stat().st_size < 200_000  # references (SHA-256s), not 5.1 MB of content
    # Without --base, one line; with it, the same tree back in v86's format (zstd this time).
    out = subprocess.run([*py, "export-fs2json", img, "-o", tmp_path / "ex"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "--base" in out.stderr
    out = subprocess.run([*py, "export-fs2json", img, "-o", tmp_path / "ex", "--zstd", "--base", plain / "base"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    again = load_fs2json((tmp_path / "ex" / "fs.json").read_bytes())
    again.base_source = DirSource(tmp_path / "ex" / "base")
    assert again.read_file("/srv/big") == big
    # An image made by import-fs2json checks every byte against its SHA-256s: a content file
    # with one byte changed (same name, same size) is refused.
    fs = import_fs2json(plain / "fs.json", plain / "base")
    bad = tmp_path / "bad"
    shutil.copytree(plain / "base", bad)
    name = fs.resolve("/srv/big").base.name
    data = bytearray((bad / name).read_bytes())
    data[2 * PIECE + 5] ^= 1
    (bad / name).write_bytes(data)
    fs.base_source = DirSource(bad)
    b = fs.resolve("/srv/big")
    assert fs.read_bytes(b, 0, 10) == big[:10]
    with pytest.raises(OSError):
        fs.read_bytes(b, 2 * PIECE, 10)
    # A missing content directory at import is one line too.
    out = subprocess.run([*py, "import-fs2json", plain / "fs.json", tmp_path / "none", "-o", img],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "no such directory" in out.stderr
    assert os.path.getsize(img) > 0


def test_warm_pieces_ship_what_was_read(served, tmp_path: Path) -> None:
    """What a saved machine ships (web/build-machine.mjs): the pieces one filesystem read, taken
    by another with no fetch, each checked as a fetched piece is; a piece that does not check,
    or that nothing names a hash for (a range of a v86 fs2json file), is left out and fetched;
    the pieces reach the store only after the next flush (store_warm_pieces)."""
    host, big = served
    reader = base_fs(host)
    reader.read_file("/srv/many/f017")
    reader.read_file("/srv/many/f018")
    reader.read_bytes(reader.resolve("/srv/big"), PIECE, 10)  # the big file's second piece
    keys = reader.base_pieces_held()
    assert len(keys) == 3 and keys[2].endswith(":1")
    blob = reader.export_base_pieces(keys)

    fs = base_fs(host)
    fs.adopt_store(SQLiteStore(str(tmp_path / "warm.db")))
    mark = host.mark()
    assert fs.warm_base_pieces(blob) == 2  # v86's fs.json names no hash for a range
    assert fs.read_file("/srv/many/f017") == b"small file 17\n" * 4
    assert fs.read_file("/srv/many/f018") == b"small file 18\n" * 5
    assert content_requests(host, mark) == []
    assert fs.read_bytes(fs.resolve("/srv/big"), PIECE, 4096) == big[PIECE : PIECE + 4096]
    assert len(content_requests(host, mark)) == 1
    assert not [k for k in fs.store.chunk_keys() or [] if k.startswith("b:") and k in keys[:2]]
    fs.store_warm_pieces()
    assert set(keys[:2]) <= set(fs.store.chunk_keys())

    # One byte changed in the second small file: that piece is refused (and fetched), not the first.
    n = int.from_bytes(blob[:4], "little")
    bad = bytearray(blob)
    bad[4 + n + 56 + 3] ^= 1
    other = base_fs(host)
    assert other.warm_base_pieces(bytes(bad)) == 1
    mark = host.mark()
    assert other.read_file("/srv/many/f018") == b"small file 18\n" * 5
    assert len(content_requests(host, mark)) == 1
    with pytest.raises(ValueError):
        other.warm_base_pieces(bytes(blob[: 4 + n + 5]))  # cut short

"""v86's fs2json base images: the ``basefs`` tree (``fs.json``) and its ``baseurl`` content files.

The format is v86's (``tools/fs2json.py``, ``tools/copy-to-sha256.py``): ``{"fsroot": [...],
"version": 3, "size": N}``, each entry ``[name, size, mtime, mode, uid, gid, target]`` with trailing
nulls dropped, where ``target`` is a directory's children, a symlink's text or a regular file's
content file name: the first eight hex digits of its SHA-256 plus ``.bin`` (``.bin.zst`` when
zstd-compressed, level 19). Hard links are separate copies; atime and ctime are not stored.

- :func:`load_fs2json` builds a :class:`~pyninep_browser.fs.Filesystem` whose regular files are
  references into the base (``fs/base.py``): nothing is read until a file is.
- :func:`import_fs2json` does the same and also names every file's full SHA-256 (and one per
  ``PIECE``), read from a local base directory, so an image made from it checks every byte.
- :func:`export_fs2json` writes a filesystem as ``fs.json`` plus a ``base/`` directory that plain
  v86 boots (``filesystem: {basefs: "fs.json", baseurl: "base/"}``).
- :class:`DirSource` and :class:`UrlSource` fetch content files on CPython (a directory, HTTP).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import stat
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from .fs import Filesystem, Inode
from .fs.base import PIECE, BaseRef, check_content_name, zstd_compress, zstd_decompress
from .fs.inode import DirEntries

log = logging.getLogger("pyninep_browser")

VERSION = 3
_NS = 10**9
_KEPT_TYPES = (stat.S_IFDIR, stat.S_IFREG, stat.S_IFLNK, stat.S_IFIFO)


class Fs2jsonError(ValueError):
    """A ``fs.json`` this version cannot use (one readable line)."""


def parse(data: bytes | str | dict) -> dict:
    """The JSON document, checked for the parts every reader relies on."""
    if isinstance(data, dict):
        doc = data
    else:
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise Fs2jsonError(f"not a fs2json file: {exc}") from None
    if not isinstance(doc, dict) or "fsroot" not in doc:
        raise Fs2jsonError("not a fs2json file: no fsroot")
    if doc.get("version") != VERSION:
        raise Fs2jsonError(
            f"fs2json version {doc.get('version')!r} is not supported (this reads version {VERSION}); "
            "make it again with v86's current tools/fs2json.py"
        )
    if not isinstance(doc["fsroot"], list):
        raise Fs2jsonError("not a fs2json file: fsroot is not a list")
    return doc


def load_fs2json(
    data: bytes | str | dict,
    *,
    hashes: Callable[[str], tuple[bytes, tuple[bytes, ...] | None] | None] | None = None,
    **options: Any,
) -> Filesystem:
    """A filesystem whose tree is ``data``'s and whose regular files read from the base.

    ``hashes(name)`` may return ``(sha256, piece sha256s)`` for a content file, to check every
    byte fetched; ``options`` go to :class:`Filesystem` (not ``store``: keep the result in a
    store with :meth:`Filesystem.adopt_store`).
    """
    doc = parse(data)
    fs = Filesystem(**options)
    root = fs.root
    inodes: dict[int, Inode] = {root.ino: root}
    refs: dict[str, BaseRef] = {}
    next_ino = root.ino + 1
    skipped = 0
    # A stack of (directory inode, children list, index) instead of recursion: deep trees exist.
    stack: list[tuple[Inode, list, int]] = [(root, doc["fsroot"], 0)]
    while stack:
        directory, children, i = stack.pop()
        while i < len(children):
            entry = children[i]
            i += 1
            if not isinstance(entry, list) or len(entry) < 6:
                raise Fs2jsonError(f"bad entry in fs.json: {str(entry)[:80]}")
            name, size, mtime, mode, uid, gid = entry[:6]
            target = entry[6] if len(entry) > 6 else None
            if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
                raise Fs2jsonError(f"bad name in fs.json: {name!r}")
            if type(size) is not int or type(mode) is not int or type(uid) is not int or type(gid) is not int:
                raise Fs2jsonError(f"bad attributes for {name!r} in fs.json")
            if type(mtime) is not int and type(mtime) is not float:
                raise Fs2jsonError(f"bad attributes for {name!r} in fs.json")
            kind = mode & 0o170000
            assert directory.entries is not None
            if kind not in _KEPT_TYPES or name in directory.entries.by_name:
                skipped += 1  # sockets and devices (v86 skips them too), duplicate names
                continue
            t = int(mtime * _NS)
            inode = Inode(next_ino, mode, uid, gid, t, t, t, t, nlink=1, gen=1)
            next_ino += 1
            if kind == stat.S_IFDIR:
                if not isinstance(target, list):
                    raise Fs2jsonError(f"directory {name!r} has no children list in fs.json")
                inode.entries = DirEntries()
                inode.parent = directory
                inode.nlink = 2
                directory.nlink += 1
            elif kind == stat.S_IFREG:
                inode.chunks = {}
                if size > 0:
                    if not check_content_name(target):
                        raise Fs2jsonError(f"file {name!r} has no content file name in fs.json")
                    ref = refs.get(target)
                    if ref is None or ref.size != size:
                        known = hashes(target) if hashes is not None else None
                        ref = BaseRef(target, size, *(known or (None, None)))
                        refs[target] = ref
                    inode.base = ref
                    inode.base_end = size
                    inode.size = size
            elif kind == stat.S_IFLNK:
                if not isinstance(target, str):
                    raise Fs2jsonError(f"symlink {name!r} has no target in fs.json")
                inode.target = target.encode("utf-8", "surrogateescape")
                inode.size = len(inode.target)
            directory.entries.add(name, inode)
            inodes[inode.ino] = inode
            if kind == stat.S_IFDIR:
                stack.append((directory, children, i))
                directory, children, i = inode, cast(list, target), 0
    if skipped:
        log.info("fs2json: skipped %d entries (sockets, devices, duplicate names)", skipped)
    fs.set_tree(inodes, root, next_ino)
    return fs


def content_hashes(data: bytes) -> tuple[bytes, tuple[bytes, ...] | None]:
    """(SHA-256 of ``data``, SHA-256 of each ``PIECE`` or None for a file of one piece)."""
    pieces = None
    if len(data) > PIECE:
        pieces = tuple(hashlib.sha256(data[i : i + PIECE]).digest() for i in range(0, len(data), PIECE))
    return hashlib.sha256(data).digest(), pieces


def import_fs2json(json_path: str | os.PathLike, basedir: str | os.PathLike, **options: Any) -> Filesystem:
    """:func:`load_fs2json`, naming every content file's SHA-256s from ``basedir``: each file is
    read (and decompressed) once to hash it, and must match its name and size."""
    doc = parse(Path(json_path).read_bytes())
    base = Path(basedir)
    problems: list[str] = []
    sizes: dict[str, int] = {}

    def walk(children: list) -> None:
        for e in children:
            if isinstance(e, list) and len(e) > 6:
                if isinstance(e[6], list):
                    walk(e[6])
                elif e[3] & 0o170000 == stat.S_IFREG and isinstance(e[1], int) and e[1] > 0:
                    sizes[e[6]] = e[1]

    walk(doc["fsroot"])
    known: dict[str, tuple[bytes, tuple[bytes, ...] | None]] = {}
    for name, size in sizes.items():
        if not check_content_name(name):
            problems.append(f"{name!r}: not a content file name")
            continue
        try:
            raw = (base / name).read_bytes()
            data = zstd_decompress(raw, size) if name.endswith(".zst") else raw
        except OSError as exc:
            problems.append(f"{name}: {exc.strerror or exc}")
            continue
        digest, pieces = content_hashes(data)
        if len(data) != size or not name.startswith(digest.hex()[:8]):
            problems.append(f"{name}: does not match its name and size")
            continue
        known[name] = (digest, pieces)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise Fs2jsonError(
            f"{len(problems)} content files in {base} are unusable: {'; '.join(problems[:3])}{more}"
        )
    return load_fs2json(doc, hashes=known.get, **options)


def _content(fs: Filesystem, inode: Inode) -> bytes:
    """A regular file's bytes (a live file's current snapshot), without touching its atime."""
    snapshot = getattr(inode.backend, "snapshot", None)
    return bytes(snapshot()) if snapshot is not None else fs.stored_bytes(inode)


def export_fs2json(fs: Filesystem, out: str | os.PathLike, *, zstd: bool = False) -> dict[str, int]:
    """Write ``out/fs.json`` and ``out/base/`` (content files) in v86's format. Returns counts."""
    out = Path(out)
    base = out / "base"
    base.mkdir(parents=True, exist_ok=True)
    suffix = ".bin.zst" if zstd else ".bin"
    written: dict[str, str] = {}  # content name -> full hash (a short-hash collision is an error)
    total = 0
    counts = {"entries": 0, "files": 0, "content_bytes": 0}

    def node(name: str, inode: Inode) -> list:
        nonlocal total
        size = inode.size
        if inode.is_dir():
            size = 4096
        obj: list = [name, size, inode.mtime // _NS, inode.mode, inode.uid, inode.gid, None]
        total += size
        counts["entries"] += 1
        if inode.is_dir():
            assert inode.entries is not None
            obj[6] = [node(n, child) for n, child in sorted(inode.entries.items())]
        elif inode.is_symlink():
            assert inode.target is not None
            obj[6] = inode.target.decode("utf-8", "surrogateescape")
        elif inode.is_reg():
            data = _content(fs, inode)
            obj[1] = len(data)
            total += len(data) - size
            digest = hashlib.sha256(data).hexdigest()
            cname = digest[:8] + suffix
            if written.get(cname, digest) != digest:
                raise Fs2jsonError(f"two different files share the short hash {digest[:8]}")
            if cname not in written:
                (base / cname).write_bytes(zstd_compress(data) if zstd else data)
                written[cname] = digest
                counts["files"] += 1
                counts["content_bytes"] += len(data)
            obj[6] = cname
        while obj[-1] is None:
            obj.pop()
        return obj

    assert fs.root.entries is not None
    root = [node(n, child) for n, child in sorted(fs.root.entries.items())]
    doc = {"fsroot": root, "version": VERSION, "size": total}
    (out / "fs.json").write_text(json.dumps(doc, separators=(",", ":")))
    return counts


class DirSource:
    """Content files from a local directory (synchronous)."""

    asynchronous = False

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.location = str(self.directory)

    def fetch(
        self, name: str, start: int, end: int | None, done: Callable[[Any, bool, str | None], None]
    ) -> None:
        try:
            with open(self.directory / name, "rb") as f:
                if end is None:
                    data = f.read()
                else:
                    f.seek(start)
                    data = f.read(end - start)
        except OSError as exc:
            done(None, False, f"{self.directory / name}: {exc.strerror or exc}")
            return
        done(data, end is None, None)


class UrlSource:
    """Content files over HTTP(S) on CPython (synchronous: one request at a time), with ranges."""

    asynchronous = False

    def __init__(self, url: str, timeout: float = 60) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.location = self.url
        self.timeout = timeout

    def fetch(
        self, name: str, start: int, end: int | None, done: Callable[[Any, bool, str | None], None]
    ) -> None:
        req = urllib.request.Request(self.url + name)
        if end is not None:
            req.add_header("Range", f"bytes={start}-{end - 1}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                data = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            done(None, False, f"{self.url}{name}: HTTP {exc.code}")
            return
        except (OSError, ValueError) as exc:
            done(None, False, f"{self.url}{name}: {exc}")
            return
        if end is not None and status == 206:
            done(data, False, None)
        elif status == 200:
            done(data, True, None)  # the host ignored the range: this is the whole file
        else:
            done(None, False, f"{self.url}{name}: HTTP {status}")


def source_for(location: str | os.PathLike) -> DirSource | UrlSource:
    """A source for a base location: an ``http(s)://`` URL or a directory."""
    text = str(location)
    if text.startswith(("http://", "https://")):
        return UrlSource(text)
    if not Path(text).is_dir():
        raise OSError(errno.ENOENT, f"base directory {text} does not exist")
    return DirSource(text)

"""The Python API for authoring a tree: building, copying in and saving what the guest boots into.

A :class:`Tree` wraps a :class:`~pyninep_browser.fs.Filesystem`; ``tree / "etc/motd"`` is a
:class:`TreePath`, which reads and creates like :class:`pathlib.Path` (``write_text``, ``mkdir``,
``symlink_to``, ``iterdir``…) with keyword arguments for what an image needs and pathlib lacks
(``mode``, ``uid``, ``gid``, ``mtime``, ``xattrs``). Missing parent directories are created with the
tree's defaults, which ``with tree.defaults(uid=1000, …):`` changes for a block. A host directory
comes in with :meth:`TreePath.copy_from`, a tar with :meth:`Tree.add_tar` (:mod:`.archive`), and a
script's ``build(tree)`` runs with :func:`build_from_script`.

Live files call Python when the guest uses them. They are declared once, by name, at module level
in an authoring script (:func:`live_file`, :func:`live_dir`), and placed in a tree with
:meth:`TreePath.live`. The inode records only the name (in the xattr ``trusted.pyninep.live``), so an
image or a saved state holds no code: :func:`attach` binds the names to the functions a script
declared. Without the script a live file is an ordinary file holding the last content read from it
(empty if it was never read). How a live file behaves per open, its time limit and async functions
are :mod:`pyninep_browser.live`'s: this module only places live files in a tree, and re-exports the
declarations (``live_file``, ``live_dir``, ``context``, ``attach``…) so scripts import one module.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypedDict, Unpack, cast

from . import archive
from .device_numbers import major, makedev, minor
from .fs import ROOT, FileBackend, Filesystem, Inode, fail
from .live import (
    LIMIT,
    LIVE_XATTR,
    REGISTRY,
    LiveContext,
    LiveDir,
    LiveFile,
    attach,
    context,
    live_dir,
    live_file,
)

# ----------------------------------------------------------------- times, device kinds


def _ns(value: Any) -> int:
    """Seconds (int, float), a datetime, or None (now) as nanoseconds since the epoch."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        delta = value - _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
        return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    if isinstance(value, int):
        return value * 10**9
    if isinstance(value, float):
        return round(value * 1e9)
    raise TypeError(f"a time is seconds (int or float) or a datetime, not {type(value).__name__}")


_KINDS = {
    "c": stat.S_IFCHR,
    "char": stat.S_IFCHR,
    "b": stat.S_IFBLK,
    "block": stat.S_IFBLK,
    "p": stat.S_IFIFO,
    "fifo": stat.S_IFIFO,
    "s": stat.S_IFSOCK,
    "socket": stat.S_IFSOCK,
}


# ----------------------------------------------------------------- the tree


class Attrs(TypedDict, total=False):
    """The attributes every creating call takes (besides ``mode``): owner, times, xattrs.
    An owner not given is the tree's default; times are seconds or datetimes, or exact
    ``*_ns``; atime follows mtime, ctime follows mtime."""

    uid: int | None
    gid: int | None
    mtime: Any
    atime: Any
    mtime_ns: int | None
    atime_ns: int | None
    xattrs: Mapping[str, Any] | None


_ATTR_NAMES = frozenset(Attrs.__annotations__)


def _known(attrs: Attrs) -> None:
    """Refuse a misspelt attribute before anything is created."""
    unknown = attrs.keys() - _ATTR_NAMES
    if unknown:
        raise TypeError(f"unexpected attribute {sorted(unknown)[0]!r}: use {sorted(_ATTR_NAMES)}")


@dataclass(frozen=True)
class Defaults:
    """What a created entry gets when the call does not say: owner, modes, times (None: now)."""

    uid: int = 0
    gid: int = 0
    dir_mode: int = 0o755
    file_mode: int = 0o644
    mtime_ns: int | None = None


class Tree:
    """A filesystem being authored. ``Tree()`` starts empty; ``Tree(fs)`` edits ``fs`` in place.

    Keyword arguments set the :class:`Defaults`: ``uid``, ``gid``, ``dir_mode``, ``file_mode``,
    ``mtime`` (seconds or datetime; all created entries get it, for reproducible images).
    """

    def __init__(
        self,
        fs: Filesystem | None = None,
        *,
        uid: int = 0,
        gid: int = 0,
        dir_mode: int = 0o755,
        file_mode: int = 0o644,
        mtime: Any = None,
        quota_bytes: int = 1 << 30,
    ) -> None:
        self.fs = fs if fs is not None else Filesystem(quota_bytes=quota_bytes)
        self._defaults = Defaults(uid, gid, dir_mode, file_mode, None if mtime is None else _ns(mtime))

    @property
    def root(self) -> TreePath:
        return TreePath(self, "/")

    def __truediv__(self, other: str | os.PathLike) -> TreePath:
        return self.root / other

    def path(self, path: str | os.PathLike) -> TreePath:
        return self.root / path

    @contextlib.contextmanager
    def defaults(
        self,
        *,
        uid: int | None = None,
        gid: int | None = None,
        dir_mode: int | None = None,
        file_mode: int | None = None,
        mtime: Any = ...,
    ) -> Iterator[Tree]:
        """``with tree.defaults(uid=1000, gid=1000): …``: other defaults for the block."""
        old = self._defaults
        changes: dict[str, Any] = {
            k: v
            for k, v in (("uid", uid), ("gid", gid), ("dir_mode", dir_mode), ("file_mode", file_mode))
            if v is not None
        }
        if mtime is not ...:
            changes["mtime_ns"] = None if mtime is None else _ns(mtime)
        self._defaults = replace(old, **changes)
        try:
            yield self
        finally:
            self._defaults = old

    # ---- whole-tree operations

    def walk(self, top: str = "/") -> Iterator[TreePath]:
        """Every entry under ``top`` (itself first), depth first, names sorted."""
        start = self.path(top)
        yield start
        if start.is_dir() and not start.is_symlink():
            for child in sorted(start.iterdir(), key=lambda p: p.name):
                yield from self.walk(child.path)

    def image(self) -> bytes:
        """The tree as an image file's bytes (see :mod:`pyninep_browser.imagefile`)."""
        from .imagefile import dump_image

        return dump_image(self.fs)

    def save(self, path: str | os.PathLike) -> int:
        """Write the image to ``path`` (atomically); returns its size."""
        data = self.image()
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return len(data)

    @classmethod
    def load(cls, path: str | os.PathLike | bytes) -> Tree:
        """A tree from an image file (or its bytes), its live files attached to what is declared."""
        from .imagefile import load_image

        data = path if isinstance(path, (bytes, bytearray, memoryview)) else Path(path).read_bytes()
        tree = cls(load_image(data))
        attach(tree.fs)
        return tree

    def add_tar(self, source: str | os.PathLike | Any, at: str = "/") -> None:
        """Unpack a tar (path or binary file object; any compression tarfile reads) under ``at``:
        modes, owners, ns times (pax), hard links, symlinks, devices, fifos, xattrs."""
        archive.import_tar(self, source, at)

    def export_tar(self, target: str | os.PathLike | Any, top: str = "/") -> None:
        """Write the tree (or the subtree ``top``) as a pax tar."""
        archive.export_tar(self.fs, target, top)

    def live_files(self) -> dict[str, str]:
        """Path → live name of every live file and directory in the tree."""
        out = {}
        for inode in list(self.fs.inodes.values()):
            name = (inode.xattrs or {}).get(LIVE_XATTR)
            if name is not None:
                out[self.fs.path_of(inode) if inode.is_dir() else _any_path(self.fs, inode)] = name.decode()
        return out


def _any_path(fs: Filesystem, inode: Inode) -> str:
    for d in fs.inodes.values():
        if d.entries is not None:
            for name, child in d.entries.items():
                if child is inode:
                    return (fs.path_of(d) or "") + "/" + name
    return "?"


class TreePath:
    """A path in a :class:`Tree`, used like :class:`pathlib.Path`.

    Creating calls return the path (so they chain) and take ``mode``, ``uid``, ``gid``, ``mtime``
    (seconds or datetime; ``mtime_ns`` for exact nanoseconds), ``atime`` and ``xattrs`` (a
    mapping of name → bytes or str); what is not given comes from the tree's defaults. Unlike
    pathlib, missing parents are created and an existing directory is fine for :meth:`mkdir`: a
    script says what should exist.
    """

    __slots__ = ("tree", "path")

    def __init__(self, tree: Tree, path: str) -> None:
        parts = [p for p in str(path).split("/") if p and p != "."]
        self.tree = tree
        self.path = "/" + "/".join(parts)

    # ---- pure path operations

    def __truediv__(self, other: str | os.PathLike) -> TreePath:
        other = os.fspath(other)
        if other.startswith("/"):
            return TreePath(self.tree, other)
        return TreePath(self.tree, self.path.rstrip("/") + "/" + other)

    def __str__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"TreePath({self.path!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TreePath) and other.tree is self.tree and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1]

    @property
    def parent(self) -> TreePath:
        return TreePath(self.tree, self.path.rsplit("/", 1)[0] or "/")

    @property
    def fs(self) -> Filesystem:
        return self.tree.fs

    # ---- looking

    def inode(self, *, follow: bool = True) -> Inode:
        """The inode (OSError if missing)."""
        try:
            return self.fs.resolve(self.path, follow=follow)
        except FileNotFoundError:
            # A live directory on the way computes its entries when asked, as for the guest.
            parts = self.path.strip("/").split("/")
            for i in range(len(parts)):
                try:
                    d = self.fs.resolve("/" + "/".join(parts[:i]))
                except OSError:
                    break
                if d.is_dir() and d.backend is not None:
                    d.backend.refresh(None)
            return self.fs.resolve(self.path, follow=follow)

    def _try(self, follow: bool = True) -> Inode | None:
        try:
            return self.inode(follow=follow)
        except OSError:
            return None

    def exists(self) -> bool:
        return self._try() is not None

    def is_dir(self) -> bool:
        i = self._try()
        return i is not None and i.is_dir()

    def is_file(self) -> bool:
        i = self._try()
        return i is not None and i.is_reg()

    def is_symlink(self) -> bool:
        i = self._try(follow=False)
        return i is not None and i.is_symlink()

    def is_live(self) -> bool:
        i = self._try()
        return i is not None and LIVE_XATTR in (i.xattrs or {})

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        i = self.inode(follow=follow_symlinks)
        return os.stat_result(
            (
                i.mode,
                i.ino,
                0,
                i.nlink,
                i.uid,
                i.gid,
                i.size,
                i.atime // 10**9,
                i.mtime // 10**9,
                i.ctime // 10**9,
                i.atime / 1e9,
                i.mtime / 1e9,
                i.ctime / 1e9,
                i.atime,
                i.mtime,
                i.ctime,
            )
        )

    def lstat(self) -> os.stat_result:
        return self.stat(follow_symlinks=False)

    def read_bytes(self) -> bytes:
        inode = self.inode()
        if inode.backend is not None and not inode.is_dir():
            return cast(FileBackend, inode.backend).snapshot()  # not a directory: a live file's
        return self.fs.read_file(self.path)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def readlink(self) -> str:
        return self.fs.readlink(self.inode(follow=False)).decode("utf-8", "surrogateescape")

    def iterdir(self) -> Iterator[TreePath]:
        inode = self.inode()
        if inode.entries is None:
            raise fail(errno.ENOTDIR, self.path)
        if inode.backend is not None:
            inode.backend.refresh(None)
        for name, _ in list(inode.entries.items()):
            yield self / name

    @property
    def xattrs(self) -> XattrMap:
        """The entry's extended attributes as a mutable mapping (name → bytes)."""
        return XattrMap(self)

    # ---- creating

    def _attrs(self, inode: Inode, mode: int | None, attrs: Attrs, *, ctime_ns: int | None = None) -> None:
        """Give ``inode`` ``mode`` and ``attrs``: an owner not given is the tree's default,
        mtime not given the tree's default mtime if it has one, atime follows mtime, ctime
        follows mtime unless given."""
        _known(attrs)
        d = self.tree._defaults
        fs = self.fs
        uid = attrs.get("uid")
        gid = attrs.get("gid")
        uid = d.uid if uid is None else uid
        gid = d.gid if gid is None else gid
        if (uid, gid) != (inode.uid, inode.gid):
            keep = inode.mode & 0o7777  # chown clears set-id bits: set them again below
            fs.setattr(inode, ROOT, uid=uid, gid=gid, mode=keep if mode is None else mode)
        elif mode is not None:
            fs.setattr(inode, ROOT, mode=mode)
        for name, value in (attrs.get("xattrs") or {}).items():
            fs.setxattr(inode, name, value.encode() if isinstance(value, str) else bytes(value), 0, ROOT)
        mtime, atime = attrs.get("mtime"), attrs.get("atime")
        mtime_ns, atime_ns = attrs.get("mtime_ns"), attrs.get("atime_ns")
        m = mtime_ns if mtime_ns is not None else _ns(mtime) if mtime is not None else d.mtime_ns
        a = atime_ns if atime_ns is not None else _ns(atime) if atime is not None else m
        if m is not None:
            inode.mtime = m
            inode.ctime = ctime_ns if ctime_ns is not None else m
            inode.btime = min(inode.btime, m)
        elif ctime_ns is not None:
            inode.ctime = ctime_ns
        if a is not None:
            inode.atime = a
        fs.dirty.add(inode.ino)

    def set_attrs(
        self,
        *,
        mode: int | None = None,
        ctime_ns: int | None = None,
        follow_symlinks: bool = True,
        **attrs: Unpack[Attrs],
    ) -> TreePath:
        """Give this existing entry the attributes a creating call would: an owner not given is
        the tree's default (unlike :meth:`chown`), mtime not given is the tree's default mtime if
        it has one, atime follows mtime, ctime follows mtime unless given. A tar's entries get
        their attributes this way (:func:`pyninep_browser.archive.import_tar`)."""
        self._attrs(self.inode(follow=follow_symlinks), mode, attrs, ctime_ns=ctime_ns)
        return self

    def _parent_inode(self) -> tuple[Inode, str]:
        if self.path == "/":
            raise fail(errno.EEXIST, "/")
        parent = self.parent
        parent.mkdir()
        return parent.inode(), self.name

    def _existing(self, directory: Inode, name: str) -> Inode | None:
        return directory.entries.get(name) if directory.entries is not None else None

    def mkdir(
        self, mode: int | None = None, *, parents: bool = True, exist_ok: bool = True, **attrs: Unpack[Attrs]
    ) -> TreePath:
        """A directory (and, with ``parents``, the missing ones above it)."""
        _known(attrs)
        if self.path == "/":
            if (
                mode is not None
                or attrs.get("uid") is not None
                or attrs.get("gid") is not None
                or attrs.get("xattrs")
            ):
                self._attrs(self.fs.root, mode, attrs)
            return self
        existing = self._try()
        if existing is not None:
            if not existing.is_dir():
                raise fail(errno.EEXIST, f"{self.path} exists and is not a directory")
            if not exist_ok:
                raise fail(errno.EEXIST, self.path)
            if mode is not None or any(v is not None and v != {} for v in attrs.values()):
                self._attrs(existing, mode, attrs)
            return self
        if not parents and not self.parent.is_dir():
            raise fail(errno.ENOENT, str(self.parent))
        directory, name = self._parent_inode()
        d = self.tree._defaults
        mode = d.dir_mode if mode is None else mode
        self._attrs(self.fs.mkdir(directory, name, mode, ROOT, 0), mode, attrs)
        return self

    def write_bytes(
        self, data: bytes | bytearray | memoryview, *, mode: int | None = None, **attrs: Unpack[Attrs]
    ) -> TreePath:
        """A regular file with this content (replaced if it exists, keeping its attributes
        unless given)."""
        _known(attrs)
        directory, name = self._parent_inode()
        d = self.tree._defaults
        inode = self._existing(directory, name)
        if inode is not None and inode.is_symlink():
            inode = self.inode()
        if inode is None:
            inode = self.fs.create(directory, name, d.file_mode if mode is None else mode, ROOT, 0)
            mode = d.file_mode if mode is None else mode
        elif not inode.is_reg():
            raise fail(errno.EISDIR if inode.is_dir() else errno.EEXIST, self.path)
        else:
            self.fs.truncate(inode, 0)
            if attrs.get("uid") is None:
                attrs["uid"] = inode.uid
            if attrs.get("gid") is None:
                attrs["gid"] = inode.gid
        self.fs.write(inode, 0, data)
        self._attrs(inode, mode, attrs)
        return self

    def write_text(
        self, text: str, encoding: str = "utf-8", *, mode: int | None = None, **attrs: Unpack[Attrs]
    ) -> TreePath:
        return self.write_bytes(text.encode(encoding), mode=mode, **attrs)

    def touch(self, *, mode: int | None = None, **attrs: Unpack[Attrs]) -> TreePath:
        """An empty file if missing; an existing entry gets the given attributes (times: now)."""
        _known(attrs)
        inode = self._try()
        if inode is None:
            return self.write_bytes(b"", mode=mode, **attrs)
        attrs.setdefault("mtime", time.time_ns() / 1e9)
        attrs.setdefault("uid", inode.uid)
        attrs.setdefault("gid", inode.gid)
        self._attrs(inode, mode, attrs)
        return self

    def symlink_to(self, target: str | os.PathLike, **attrs: Unpack[Attrs]) -> TreePath:
        """This path becomes a symlink to ``target`` (stored as given: relative stays relative)."""
        _known(attrs)
        directory, name = self._parent_inode()
        inode = self.fs.symlink(directory, name, os.fspath(target), ROOT, 0)
        self._attrs(inode, None, attrs)
        return self

    def hardlink_to(self, target: str | os.PathLike | TreePath) -> TreePath:
        """This path becomes another name of ``target`` (a path in the same tree)."""
        target_path = target if isinstance(target, TreePath) else self.tree.path(os.fspath(target))
        inode = target_path.inode(follow=False)
        directory, name = self._parent_inode()
        self.fs.link(directory, name, inode)
        return self

    def mknod(
        self, kind: str, major: int = 0, minor: int = 0, *, mode: int | None = None, **attrs: Unpack[Attrs]
    ) -> TreePath:
        """A device node or special file: ``kind`` is "c"/"char", "b"/"block", "p"/"fifo" or
        "s"/"socket"; ``mode`` defaults to 0o600 for devices, the file default otherwise."""
        _known(attrs)
        try:
            ftype = _KINDS[kind]
        except KeyError:
            raise ValueError(f"mknod kind must be one of {sorted(_KINDS)}, not {kind!r}") from None
        if mode is None:
            mode = 0o600 if ftype in (stat.S_IFCHR, stat.S_IFBLK) else self.tree._defaults.file_mode
        directory, name = self._parent_inode()
        rdev = makedev(major, minor) if ftype in (stat.S_IFCHR, stat.S_IFBLK) else 0
        inode = self.fs.mknod(directory, name, ftype | mode, rdev, ROOT, 0)
        self._attrs(inode, mode, attrs)
        return self

    def mkfifo(self, mode: int | None = None, **attrs: Unpack[Attrs]) -> TreePath:
        return self.mknod("fifo", mode=mode, **attrs)

    def copy_from(
        self, source: str | os.PathLike, *, preserve_owner: bool = False, follow_symlinks: bool = False
    ) -> TreePath:
        """Copy a host file or directory tree here, with its modes, times, symlinks, hard links,
        fifos, devices and ``user.`` xattrs. Owners come from the tree's defaults unless
        ``preserve_owner``."""
        src = Path(source)
        seen: dict[tuple[int, int], TreePath] = {}
        self._copy_one(src, seen, preserve_owner, follow_symlinks)
        return self

    def _copy_one(self, src: Path, seen: dict, preserve_owner: bool, follow: bool) -> None:
        st = os.stat(src, follow_symlinks=follow)
        uid, gid = (st.st_uid, st.st_gid) if preserve_owner else (None, None)
        times: Attrs = {"mtime_ns": st.st_mtime_ns, "atime_ns": st.st_atime_ns}
        xattrs = _host_xattrs(src, follow)
        kind = stat.S_IFMT(st.st_mode)
        perm = stat.S_IMODE(st.st_mode)
        if kind != stat.S_IFDIR and st.st_nlink > 1 and (st.st_dev, st.st_ino) in seen:
            self.hardlink_to(seen[(st.st_dev, st.st_ino)])
            return
        if kind == stat.S_IFDIR:
            self.mkdir(perm, xattrs=xattrs, uid=uid, gid=gid)
            for child in sorted(os.listdir(src)):
                (self / child)._copy_one(src / child, seen, preserve_owner, follow)
            inode = self.inode()
        elif kind == stat.S_IFLNK:
            self.symlink_to(os.readlink(src), xattrs=xattrs, uid=uid, gid=gid)
            inode = self.inode(follow=False)
        elif kind == stat.S_IFREG:
            self.write_bytes(src.read_bytes(), mode=perm, xattrs=xattrs, uid=uid, gid=gid)
            inode = self.inode()
        else:
            letter = {stat.S_IFCHR: "c", stat.S_IFBLK: "b", stat.S_IFIFO: "p", stat.S_IFSOCK: "s"}[kind]
            self.mknod(
                letter, os.major(st.st_rdev), os.minor(st.st_rdev), mode=perm, xattrs=xattrs, uid=uid, gid=gid
            )
            inode = self.inode(follow=False)
        self._attrs(inode, None, {"uid": inode.uid, "gid": inode.gid, **times})
        if st.st_nlink > 1 and kind != stat.S_IFDIR:
            seen[(st.st_dev, st.st_ino)] = self

    def chmod(self, mode: int) -> TreePath:
        self.fs.setattr(self.inode(), ROOT, mode=mode)
        return self

    def chown(self, uid: int | None = None, gid: int | None = None) -> TreePath:
        inode = self.inode(follow=False)
        self._attrs(
            inode,
            inode.mode & 0o7777,
            {
                "uid": uid if uid is not None else inode.uid,
                "gid": gid if gid is not None else inode.gid,
                "mtime_ns": inode.mtime,
                "atime_ns": inode.atime,
            },
        )
        return self

    def set_times(
        self,
        *,
        mtime: Any = None,
        atime: Any = None,
        mtime_ns: int | None = None,
        atime_ns: int | None = None,
    ) -> TreePath:
        """Set mtime/atime (seconds or datetime, or exact ``*_ns``); ctime follows mtime."""
        inode = self.inode(follow=False)
        m = mtime_ns if mtime_ns is not None else _ns(mtime) if mtime is not None else inode.mtime
        a = atime_ns if atime_ns is not None else _ns(atime) if atime is not None else inode.atime
        self._attrs(inode, None, {"uid": inode.uid, "gid": inode.gid, "mtime_ns": m, "atime_ns": a})
        return self

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.remove(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def rmdir(self) -> None:
        self.fs.remove(self.path)

    def live(
        self,
        spec: LiveFile | LiveDir | Callable[[], Any],
        *,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        mtime: Any = None,
    ) -> TreePath:
        """Make this path a live file or directory backed by ``spec`` (from :func:`live_file` /
        :func:`live_dir`; a plain function is a read function of an unnamed live file, which an
        image cannot re-attach). Default mode: 0o444 read-only, 0o644 writable, 0o555 directory."""
        if not isinstance(spec, (LiveFile, LiveDir)):
            spec = LiveFile(name=None, read=spec)
        if isinstance(spec, LiveDir):
            self.mkdir(0o555 if mode is None else mode, uid=uid, gid=gid, mtime=mtime)
            inode = self.inode()
        else:
            if mode is None:
                mode = 0o644 if spec.writable else 0o444
            existing = self._try()
            if existing is None or not existing.is_reg():
                self.write_bytes(b"", mode=mode, uid=uid, gid=gid, mtime=mtime)
            else:
                self._attrs(existing, mode, {"uid": uid, "gid": gid, "mtime": mtime})
            inode = self.inode()
        if spec.name is not None:
            self.fs.setxattr(inode, LIVE_XATTR, spec.name.encode(), 0, ROOT)
        spec.bind(self.fs, inode)
        return self


class XattrMap:
    """``path.xattrs``: a mutable mapping of an entry's extended attributes (values are bytes)."""

    def __init__(self, path: TreePath) -> None:
        self._path = path

    def _inode(self) -> Inode:
        return self._path.inode(follow=False)

    def __getitem__(self, name: str) -> bytes:
        try:
            return self._path.fs.getxattr(self._inode(), name, ROOT)
        except OSError:
            raise KeyError(name) from None

    def __setitem__(self, name: str, value: bytes | str) -> None:
        self._path.fs.setxattr(
            self._inode(), name, value.encode() if isinstance(value, str) else bytes(value), 0, ROOT
        )

    def __delitem__(self, name: str) -> None:
        try:
            self._path.fs.removexattr(self._inode(), name, ROOT)
        except OSError:
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._inode().xattrs or ()))

    def __len__(self) -> int:
        return len(self._inode().xattrs or ())

    def __contains__(self, name: object) -> bool:
        return name in (self._inode().xattrs or {})

    def keys(self) -> list[str]:
        return list(self)

    def items(self) -> list[tuple[str, bytes]]:
        return list((self._inode().xattrs or {}).items())

    def get(self, name: str, default: Any = None) -> Any:
        return (self._inode().xattrs or {}).get(name, default)

    def update(self, other: Mapping[str, bytes | str]) -> None:
        for k, v in other.items():
            self[k] = v


def _host_xattrs(path: Path, follow: bool) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=follow)
    except (OSError, AttributeError):
        return {}
    out = {}
    for name in names:
        if name.startswith("user."):
            with contextlib.suppress(OSError):
                out[name] = os.getxattr(path, name, follow_symlinks=follow)
    return out


# ----------------------------------------------------------------- scripts


def load_script(
    path: str | os.PathLike | None = None, *, source: str | None = None, name: str = "pyninep_script"
) -> Any:
    """Run an authoring script (a file, or its ``source``) as a module; its module-level
    :func:`live_file`/:func:`live_dir` declarations register. Returns the module."""
    if source is None:
        if path is None:
            raise TypeError("load_script needs a path or a source")
        source = Path(path).read_text()
    filename = os.fspath(path) if path is not None else f"<{name}>"
    module = type(sys)(name)
    module.__file__ = filename
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    exec(compile(source, filename, "exec"), module.__dict__)
    return module


def script_mistake(script: str | os.PathLike, exc: BaseException) -> str:
    """An authoring script's own mistake as one line that says where in the script it happened:
    ``SCRIPT (line N): TypeError: …`` (the last frame in that file; no line when there is none)."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == os.fspath(script)]
    where = f" (line {frames[-1].lineno})" if frames else ""
    return f"{os.fspath(script)}{where}: {type(exc).__name__}: {exc}"


def build_from_script(
    path: str | os.PathLike | None = None,
    *,
    source: str | None = None,
    tree: Tree | None = None,
    **arguments: Any,
) -> Tree:
    """Run a script's ``build(tree, **arguments)`` on a new (or the given) tree."""
    module = load_script(path, source=source)
    build = getattr(module, "build", None)
    if not callable(build):
        raise ValueError(f"{path or 'the script'} defines no build(tree) function")
    tree = tree if tree is not None else Tree()
    build(tree, **arguments)
    return tree


__all__ = [
    "LIMIT",
    "LIVE_XATTR",
    "REGISTRY",
    "Defaults",
    "LiveContext",
    "LiveDir",
    "LiveFile",
    "Tree",
    "TreePath",
    "XattrMap",
    "attach",
    "build_from_script",
    "context",
    "live_dir",
    "live_file",
    "load_script",
    "major",
    "makedev",
    "minor",
    "script_mistake",
]

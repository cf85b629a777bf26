"""Trees in and out of tar (pax), host directories and listings: what ``image`` commands do.

Tar is written in the pax format so nothing an image holds is lost: modes, numeric owners,
nanosecond atime/mtime/ctime (pax ``atime``/``mtime``/``ctime`` records), hard links, symlinks,
character and block devices, fifos, and xattrs (``SCHILY.xattr.NAME``, what GNU tar and bsdtar
use). Sockets have no tar form and are skipped with a warning. Nothing here touches 9P.

Reading out (export, extract, listings) works on a :class:`~pyninep_browser.fs.Filesystem`.
Reading in (:func:`import_tar`) makes entries through the :class:`~pyninep_browser.authoring.Tree`
it is given, so a tar's missing parents get the tree's defaults like a script's would. This module
does not import :mod:`~pyninep_browser.authoring`: authoring's ``Tree.add_tar``/``Tree.export_tar``
call here, and the import goes that way only (``tests/test_imports.py`` checks).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .device_numbers import major, minor
from .fs import Filesystem, Inode
from .live import LIVE_XATTR

log = logging.getLogger("pyninep_browser")
_NS = 10**9
_XATTR = "SCHILY.xattr."


def _pax_time(ns: int) -> str:
    sign = "-" if ns < 0 else ""
    sec, frac = divmod(abs(ns), _NS)
    return f"{sign}{sec}.{frac:09d}"


def _parse_pax_time(text: str) -> int:
    text = text.strip()
    neg = text.startswith("-")
    whole, _, frac = text.lstrip("+-").partition(".")
    ns = int(whole or "0") * _NS + int((frac + "000000000")[:9] or "0")
    return -ns if neg else ns


def entries(fs: Filesystem, top: str = "/") -> Iterator[tuple[str, Inode]]:
    """(path relative to ``top`` — "." for top itself —, inode) depth first, names sorted."""
    start = fs.resolve(top)
    yield ".", start

    def walk(directory: Inode, prefix: str) -> Iterator[tuple[str, Inode]]:
        assert directory.entries is not None  # only directories are walked into
        for name, child in sorted(directory.entries.items()):
            rel = f"{prefix}{name}"
            yield rel, child
            if child.is_dir():
                yield from walk(child, rel + "/")

    if start.is_dir():
        yield from walk(start, "")


def export_tar(tree: Any, target: str | os.PathLike | Any, top: str = "/") -> int:
    """Write a filesystem (or a Tree's) under ``top`` as a pax tar to a path or binary file;
    returns entries written."""
    fs = tree if isinstance(tree, Filesystem) else tree.fs
    count = 0
    with contextlib.ExitStack() as stack:
        if isinstance(target, (str, os.PathLike)):
            target = stack.enter_context(open(target, "wb"))
        with tarfile.open(fileobj=target, mode="w", format=tarfile.PAX_FORMAT) as tar:
            first: dict[int, str] = {}
            for rel, inode in entries(fs, top):
                info = tarfile.TarInfo(rel)
                info.mode = inode.mode & 0o7777
                info.uid, info.gid = inode.uid, inode.gid
                info.uname = info.gname = ""
                info.mtime = inode.mtime // _NS
                pax = {
                    "mtime": _pax_time(inode.mtime),
                    "atime": _pax_time(inode.atime),
                    "ctime": _pax_time(inode.ctime),
                }
                for name, value in (inode.xattrs or {}).items():
                    pax[_XATTR + name] = value.decode("utf-8", "surrogateescape")
                kind = inode.mode & 0o170000
                data = None
                if kind != stat.S_IFDIR and inode.nlink > 1 and inode.ino in first:
                    info.type = tarfile.LNKTYPE
                    info.linkname = first[inode.ino]
                elif kind == stat.S_IFDIR:
                    info.type = tarfile.DIRTYPE
                elif kind == stat.S_IFREG:
                    data = fs.stored_bytes(inode)
                    info.size = len(data)
                elif kind == stat.S_IFLNK:
                    info.type = tarfile.SYMTYPE
                    info.linkname = (inode.target or b"").decode("utf-8", "surrogateescape")
                elif kind in (stat.S_IFCHR, stat.S_IFBLK):
                    info.type = tarfile.CHRTYPE if kind == stat.S_IFCHR else tarfile.BLKTYPE
                    info.devmajor, info.devminor = major(inode.rdev), minor(inode.rdev)
                elif kind == stat.S_IFIFO:
                    info.type = tarfile.FIFOTYPE
                else:
                    log.warning("tar: %s is a socket, which tar cannot hold: skipped", rel)
                    continue
                if kind != stat.S_IFDIR and inode.nlink > 1:
                    first.setdefault(inode.ino, rel)
                info.pax_headers = pax
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
                count += 1
    return count


def _member_path(name: str) -> str | None:
    parts = [p for p in name.split("/") if p and p != "."]
    if ".." in parts:
        return None
    return "/".join(parts)


def import_tar(tree: Any, source: str | os.PathLike | Any, at: str = "/") -> int:
    """Unpack a tar under ``at`` of ``tree`` (an authoring Tree); returns entries imported.
    Existing entries are replaced."""
    base = tree.path(at).mkdir()
    kw: dict[str, Any] = {"fileobj": source} if hasattr(source, "read") else {"name": os.fspath(source)}
    dirs: list[tuple[Any, dict[str, Any]]] = []  # (TreePath, the tar's attributes)
    times_of: dict[int, dict[str, Any]] = {}
    count = 0
    with tarfile.open(mode="r:*", **kw) as tar:
        for m in tar:
            rel = _member_path(m.name)
            if rel is None:
                log.warning("tar: %s leaves the tree: skipped", m.name)
                continue
            path = base / rel if rel else base
            pax = m.pax_headers
            times = {
                "mtime_ns": _parse_pax_time(pax["mtime"]) if "mtime" in pax else int(m.mtime) * _NS,
                "atime_ns": _parse_pax_time(pax["atime"]) if "atime" in pax else None,
                "ctime_ns": _parse_pax_time(pax["ctime"]) if "ctime" in pax else None,
            }
            xattrs = {
                k[len(_XATTR) :]: v.encode("utf-8", "surrogateescape")
                for k, v in pax.items()
                if k.startswith(_XATTR)
            }
            if not m.isdir() and rel:
                try:
                    existing = path.inode(follow=False)
                except OSError:
                    existing = None
                if existing is not None:
                    if existing.is_dir():
                        log.warning("tar: %s would replace a directory: skipped", m.name)
                        continue
                    path.unlink()
            if m.isdir():
                path.mkdir()
                dirs.append((path, {"mode": m.mode, "uid": m.uid, "gid": m.gid, "xattrs": xattrs, **times}))
                count += 1
                continue
            if m.islnk():
                target = _member_path(m.linkname)
                if target is None:
                    log.warning("tar: hard link %s leaves the tree: skipped", m.name)
                    continue
                inode = path.hardlink_to(base / target).inode(follow=False)
                if inode.ino in times_of:  # linking touched its ctime: put the tar's back
                    _finish(path, {}, times_of[inode.ino], follow=False)
                count += 1
                continue
            if m.isreg():
                f = tar.extractfile(m)
                path.write_bytes(f.read() if f is not None else b"", mode=m.mode, uid=m.uid, gid=m.gid)
            elif m.issym():
                path.symlink_to(m.linkname, uid=m.uid, gid=m.gid)
            elif m.ischr() or m.isblk():
                path.mknod(
                    "c" if m.ischr() else "b", m.devmajor, m.devminor, mode=m.mode, uid=m.uid, gid=m.gid
                )
            elif m.isfifo():
                path.mkfifo(m.mode, uid=m.uid, gid=m.gid)
            else:
                log.warning("tar: %s has a type this tree cannot hold: skipped", m.name)
                continue
            _finish(path, xattrs, times, follow=False)
            times_of[path.inode(follow=False).ino] = times
            count += 1
    for path, attrs in reversed(dirs):  # after their contents, which touched their times
        path.set_attrs(mode=attrs["mode"], uid=attrs["uid"], gid=attrs["gid"])
        _finish(path, attrs["xattrs"], attrs, follow=True)
    return count


def _finish(path: Any, xattrs: dict[str, bytes], times: dict[str, Any], *, follow: bool) -> None:
    """The tar's xattrs (one warning per one refused) and times, last, on the entry at ``path``."""
    inode = path.inode(follow=follow)
    for name, value in xattrs.items():
        try:
            path.fs.setxattr(inode, name, value, 0)
        except OSError as exc:
            log.warning("tar: %s: xattr %s not kept (%s)", path, name, exc.strerror)
    path.set_attrs(
        uid=inode.uid,
        gid=inode.gid,
        mtime_ns=times["mtime_ns"],
        atime_ns=times["atime_ns"],
        ctime_ns=times["ctime_ns"],
        follow_symlinks=follow,
    )


# ----------------------------------------------------------------- listing and extracting


def mode_string(mode: int) -> str:
    return stat.filemode(mode)


def listing(fs: Filesystem, path: str = "/", recursive: bool = False) -> list[str]:
    """``ls -l``-like lines: mode, links, uid, gid, size (or major, minor), mtime (ns), path."""
    inode = fs.resolve(path, follow=False)
    if inode.is_dir():
        rows = list(entries(fs, path))
        if not recursive:
            rows = [(rel, i) for rel, i in rows if "/" not in rel]
    else:
        rows = [(".", inode)]
    prefix = path.rstrip("/")
    lines = []
    for rel, i in rows:
        full = (prefix if rel == "." else f"{prefix}/{rel}") or "/"
        kind = i.mode & 0o170000
        size = f"{major(i.rdev)}, {minor(i.rdev)}" if kind in (stat.S_IFCHR, stat.S_IFBLK) else str(i.size)
        owners = f"{i.nlink:>3} {i.uid:>5} {i.gid:>5}"
        line = f"{stat.filemode(i.mode)} {owners} {size:>9} {_pax_time(i.mtime)} {full}"
        if i.is_symlink():
            line += " -> " + (i.target or b"").decode("utf-8", "surrogateescape")
        live = (i.xattrs or {}).get(LIVE_XATTR)
        if live is not None:
            line += f"  [live: {live.decode()}]"
        lines.append(line)
    return lines


def extract(fs: Filesystem, directory: str | os.PathLike, top: str = "/") -> list[str]:
    """Write the tree into a host directory, keeping what the host allows (owners, devices and
    non-``user.`` xattrs need root); returns one warning per thing not kept."""
    dest = Path(directory)
    dest.mkdir(parents=True, exist_ok=True)
    warnings: list[str] = []
    first: dict[int, Path] = {}
    dirs: list[tuple[Path, Inode]] = []
    am_root = hasattr(os, "geteuid") and os.geteuid() == 0
    for rel, inode in entries(fs, top):
        out = dest if rel == "." else dest / rel
        kind = inode.mode & 0o170000
        if rel != "." and (out.exists() or out.is_symlink()) and kind != stat.S_IFDIR:
            out.unlink()
        if kind != stat.S_IFDIR and inode.nlink > 1 and inode.ino in first:
            os.link(first[inode.ino], out, follow_symlinks=False)
            continue
        try:
            if kind == stat.S_IFDIR:
                out.mkdir(exist_ok=True)
                dirs.append((out, inode))
                continue
            if kind == stat.S_IFREG:
                out.write_bytes(fs.stored_bytes(inode))
            elif kind == stat.S_IFLNK:
                os.symlink((inode.target or b"").decode("utf-8", "surrogateescape"), out)
            elif kind == stat.S_IFIFO:
                os.mkfifo(out)
            elif kind in (stat.S_IFCHR, stat.S_IFBLK):
                os.mknod(out, kind | 0o600, os.makedev(major(inode.rdev), minor(inode.rdev)))
            else:
                warnings.append(f"{rel}: socket not extracted")
                continue
        except PermissionError as exc:
            warnings.append(f"{rel}: not created ({exc.strerror})")
            continue
        if inode.nlink > 1:
            first[inode.ino] = out
        _host_attrs(out, inode, am_root, warnings, rel)
    for out, inode in reversed(dirs):
        _host_attrs(out, inode, am_root, warnings, str(out.relative_to(dest)))
    return warnings


def _host_attrs(out: Path, inode: Inode, am_root: bool, warnings: list[str], rel: str) -> None:
    link = inode.is_symlink()
    for name, value in (inode.xattrs or {}).items():
        if link:
            break
        if not am_root and not name.startswith("user."):
            warnings.append(f"{rel}: xattr {name} needs root")
            continue
        try:
            os.setxattr(out, name, value, follow_symlinks=False)
        except OSError as exc:
            warnings.append(f"{rel}: xattr {name} not kept ({exc.strerror})")
    if am_root:
        with contextlib.suppress(OSError):
            os.chown(out, inode.uid, inode.gid, follow_symlinks=False)
    if not link:
        os.chmod(out, inode.mode & 0o7777)
    with contextlib.suppress(NotImplementedError, OSError):
        os.utime(out, ns=(inode.atime, inode.mtime), follow_symlinks=False)


__all__ = ["entries", "export_tar", "extract", "import_tar", "listing"]

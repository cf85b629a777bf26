"""The state format: how a filesystem (and, in :mod:`pyninep_browser.server.state`, a session)
is written as bytes: the one container every image, save state and machine session uses.

Layout: a fixed head (magic ``PYNINEP\\0``, format number, flags, header length, body length,
CRC-32 of everything after the head), a JSON header of named records, then one blob holding
every byte of data (file chunks, symlink targets, xattr values, saved frames), referenced from
the header as ``[offset, length]``. Nothing in it is executed on load (no pickle): a state from
elsewhere is only data, and everything is checked before it is trusted. A truncated, corrupted
(checksum), foreign (magic) or newer (format) state raises :class:`SnapshotError` before
anything is built, and loading builds new objects, so a refused state changes nothing.

Format history: 1 had no checksum; 2 added it; 3 (this version) writes every fid and lock as a
named record (format 2 wrote a fid as a 12-element list, and inode times as one list). Every
older format is still read.

An inode record: ``ino mode uid gid nlink rdev size gen version atime mtime ctime btime`` (ns),
and as they apply ``chunks`` (``[[index, offset, length], ...]``; offset -1: the chunk is in the
store the state builds on), ``target``, ``xattrs`` (``[[name, offset, length], ...]``),
``entries`` (``[[name, readdir sequence, ino], ...]``), ``next``, ``parent``, ``refs``.
A lock record: ``start end type owner``.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

from .base import BaseRef
from .constants import CHUNK
from .filesystem import Filesystem
from .inode import DirEntries, Inode
from .locks import Lock

MAGIC = b"PYNINEP\0"
FORMAT = 3  # bump when the layout changes; load refuses newer formats, reads every older one
_HEAD_V1 = struct.Struct("<8sIQ")  # magic, format, header length
_HEAD = struct.Struct("<8sIIQQI")  # magic, format, flags, header length, body length, CRC-32


class SnapshotError(ValueError):
    """Bytes that are not a state this version can read."""


class Blob:
    """The data part of a state being written: every ``put`` returns its ``[offset, length]``."""

    def __init__(self) -> None:
        self.parts: list[Any] = []
        self.size = 0

    def put(self, data: Any) -> list[int]:
        n = len(data)
        ref = [self.size, n]
        self.parts.append(data)
        self.size += n
        return ref


def corrupt(exc: Exception) -> SnapshotError:
    """What a state that passed its checksum yet does not build raises (a SnapshotError as is)."""
    return exc if isinstance(exc, SnapshotError) else SnapshotError(f"snapshot is corrupt: {exc!r}")


def take(blob: memoryview, ref: list[int]) -> memoryview:
    """The bytes ``ref`` names in a state's blob, checked against its end."""
    off, n = int(ref[0]), int(ref[1])
    if off < 0 or n < 0 or off + n > len(blob):
        raise SnapshotError("snapshot data reference out of range")
    return blob[off : off + n]


def pack(kind: str, header: dict[str, Any], blob: Blob) -> bytes:
    header["kind"] = kind
    raw = json.dumps(header, separators=(",", ":")).encode()
    crc = zlib.crc32(raw)
    for part in blob.parts:
        crc = zlib.crc32(part, crc)
    return b"".join([_HEAD.pack(MAGIC, FORMAT, 0, len(raw), blob.size, crc), raw, *blob.parts])


def unpack(
    data: bytes | bytearray | memoryview, kind: str | tuple[str, ...]
) -> tuple[dict[str, Any], memoryview]:
    """The header (with its ``format``) and blob of a state of one of the kinds given."""
    try:
        buf = memoryview(data).cast("B") if not isinstance(data, memoryview) else data.cast("B")
    except TypeError:
        raise SnapshotError("not a pyninep snapshot: not bytes") from None
    if len(buf) < _HEAD_V1.size:
        raise SnapshotError("not a pyninep snapshot: too short")
    magic, fmt, _ = _HEAD_V1.unpack_from(buf, 0)
    if magic != MAGIC:
        raise SnapshotError("not a pyninep snapshot: bad magic")
    if fmt > FORMAT:
        raise SnapshotError(
            f"snapshot format {fmt} is newer than this version reads ({FORMAT}): "
            "restore it with a newer pyninep_browser"
        )
    if fmt == 1:  # no checksum and no body length: read as it always was
        head_size, (_, _, hlen) = _HEAD_V1.size, _HEAD_V1.unpack_from(buf, 0)
        end = len(buf)
    elif fmt >= 2:
        if len(buf) < _HEAD.size:
            raise SnapshotError("snapshot truncated")
        _, _, _, hlen, blen, crc = _HEAD.unpack_from(buf, 0)
        head_size = _HEAD.size
        end = head_size + hlen + blen
        if end > len(buf):
            raise SnapshotError(f"snapshot truncated: {len(buf)} of {end} bytes")
        if end < len(buf):
            raise SnapshotError(f"snapshot has {len(buf) - end} unexpected bytes after its end")
        if zlib.crc32(buf[head_size:end]) != crc:
            raise SnapshotError("snapshot is corrupt: checksum mismatch")
    else:
        raise SnapshotError(f"snapshot format {fmt} is not supported (this version reads {FORMAT})")
    if head_size + hlen > end:
        raise SnapshotError("snapshot truncated")
    try:
        header = json.loads(bytes(buf[head_size : head_size + hlen]))
    except ValueError as exc:
        raise SnapshotError(f"snapshot header is corrupt: {exc}") from None
    kinds = (kind,) if isinstance(kind, str) else kind
    if not isinstance(header, dict) or header.get("kind") not in kinds:
        raise SnapshotError(f"snapshot is not a {' or '.join(kinds)} snapshot")
    header["format"] = fmt
    return header, buf[head_size + hlen : end]


# ---- inodes and locks


def inode_record(inode: Inode, blob: Blob, stored: set | None = None) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "ino": inode.ino,
        "mode": inode.mode,
        "uid": inode.uid,
        "gid": inode.gid,
        "nlink": inode.nlink,
        "rdev": inode.rdev,
        "size": inode.size,
        "gen": inode.gen,
        "version": inode.version,
        "atime": inode.atime,
        "mtime": inode.mtime,
        "ctime": inode.ctime,
        "btime": inode.btime,
    }
    if inode.chunks is not None:
        if stored is None:
            rec["chunks"] = [[ci, *blob.put(c)] for ci, c in sorted(inode.chunks.items())]
        else:  # offset -1: the chunk is in the store this state builds on
            ino = inode.ino
            rec["chunks"] = [
                [ci, -1, c if isinstance(c, int) else len(c)]
                if (ino, ci) not in stored
                else [ci, *blob.put(c)]
                for ci, c in sorted(inode.chunks.items())
            ]
    if inode.base is not None:
        rec["base"] = [inode.base_end, *inode.base.record()]
    if inode.target is not None:
        rec["target"] = blob.put(inode.target)
    if inode.xattrs:
        rec["xattrs"] = [[k, *blob.put(v)] for k, v in inode.xattrs.items()]
    if inode.entries is not None:
        e = inode.entries
        rec["entries"] = [[name, seq, child.ino] for name, (seq, child) in e.by_name.items()]
        rec["next"] = e.next_seq
        rec["parent"] = inode.parent.ino if inode.parent is not None else inode.ino
    if inode.refs:
        rec["refs"] = inode.refs
    return rec


def inode_times(r: dict[str, Any]) -> tuple[int, int, int, int]:
    """(atime, mtime, ctime, btime) of an inode record of any format."""
    if "t" in r:  # formats 1 and 2
        a, m, c, b = (int(x) for x in r["t"])
        return a, m, c, b
    return int(r["atime"]), int(r["mtime"]), int(r["ctime"]), int(r["btime"])


def lock_records(locks: list[Lock]) -> list[dict[str, Any]]:
    return [
        {
            "start": lk.start,
            "end": lk.end,
            "type": lk.type,
            "owner": list(lk.owner) if isinstance(lk.owner, tuple) else lk.owner,
        }
        for lk in locks
    ]


def locks_from(records: list[Any]) -> list[Lock]:
    out = []
    for r in records:
        if isinstance(r, dict):
            a, b, t, o = r["start"], r["end"], r["type"], r["owner"]
        else:  # formats 1 and 2: [start, end, type, owner]
            a, b, t, o = r
        out.append(Lock(int(a), int(b), int(t), tuple(o) if isinstance(o, list) else o))
    return out


def load_everything(fs: Filesystem) -> None:
    """A complete state holds every file's data: bring in the chunks a store has not loaded."""
    missing = fs.missing_chunks()
    if not missing:
        return
    if fs.store is not None and fs.store.asynchronous:
        raise SnapshotError(
            f"{len(missing)} data chunks are not loaded yet: load "
            "fs.missing_chunks() with fs.load_chunks() before saving"
        )
    result: list[int] = []
    fs.load_chunks(missing, result.append)
    if result != [0]:
        raise SnapshotError(f"reading the store failed (errno {result})")


def filesystem_header(fs: Filesystem, blob: Blob, stored: bool = False) -> dict[str, Any]:
    """The records of a whole filesystem; ``stored``: leave out what its store already holds."""
    if not stored:
        load_everything(fs)
        unstored = None
    else:
        if fs.store is None:
            raise SnapshotError("stored=True needs a filesystem kept in a store")
        unstored = fs.unstored_chunks()
    header: dict[str, Any] = {
        "root": fs.root.ino,
        "next_ino": fs.next_ino,
        "fsid": fs.fsid,
        "quota_bytes": fs.quota_bytes,
        "quota_inodes": fs.quota_inodes,
        "user_quota_bytes": fs.user_quota_bytes,
        "max_file_size": fs.max_file_size,
        "inodes": [inode_record(i, blob, unstored) for i in fs.inodes.values()],
        "locks": [[ino, lock_records(locks)] for ino, locks in fs.locks.items()],
    }
    if stored:
        # The store generation this state builds on: the last commit, and the one in flight
        # (its chunks are in the state, so a store that finished it is just as good).
        header["stored"] = {"fsid": fs.fsid, "gen": fs.generation, "inflight": fs.commit_in_flight}
    return header


def build_filesystem(h: dict[str, Any], blob: memoryview) -> Filesystem:
    """A filesystem in memory from :func:`filesystem_header`'s records (any format)."""
    fs = Filesystem(
        quota_bytes=int(h["quota_bytes"]),
        quota_inodes=int(h["quota_inodes"]),
        user_quota_bytes=h.get("user_quota_bytes"),
        max_file_size=int(h["max_file_size"]),
        fsid=int(h["fsid"]),
    )
    inodes: dict[int, Inode] = {}
    recs = h["inodes"]
    for r in recs:
        at, mt, ct, bt = inode_times(r)
        inode = Inode(
            ino=int(r["ino"]),
            mode=int(r["mode"]),
            uid=int(r["uid"]),
            gid=int(r["gid"]),
            atime=at,
            mtime=mt,
            ctime=ct,
            btime=bt,
            nlink=int(r["nlink"]),
            rdev=int(r["rdev"]),
            size=int(r["size"]),
            gen=int(r["gen"]),
            version=int(r["version"]),
            refs=int(r.get("refs", 0)),
        )
        if "chunks" in r:
            inode.chunks = {}
            for ci, off, n in r["chunks"]:
                if not 0 < n <= CHUNK:
                    raise SnapshotError("chunk larger than the chunk size")
                if off == -1 and "stored" in h:  # in the store the state builds on
                    inode.chunks[int(ci)] = int(n)
                else:
                    inode.chunks[int(ci)] = bytearray(take(blob, [off, n]))
                inode.data_bytes += int(n)
        if "base" in r:
            inode.base_end = int(r["base"][0])
            inode.base = BaseRef.from_record(r["base"][1:])
        if "target" in r:
            inode.target = bytes(take(blob, r["target"]))
        if "xattrs" in r:
            inode.xattrs = {str(k): bytes(take(blob, [off, n])) for k, off, n in r["xattrs"]}
        inodes[inode.ino] = inode
    for r in recs:
        if "entries" not in r:
            continue
        inode = inodes[int(r["ino"])]
        entries = DirEntries()
        for name, seq, child in sorted(r["entries"], key=lambda e: e[1]):
            if int(child) not in inodes:
                raise SnapshotError("directory entry names a missing inode")
            entries.restore(str(name), int(seq), inodes[int(child)])
        entries.next_seq = int(r["next"])
        inode.entries = entries
        inode.parent = inodes.get(int(r["parent"]), inode)
    root = inodes.get(int(h["root"]))
    if root is None or root.entries is None:
        raise SnapshotError("snapshot has no root directory")
    fs.adopt_inodes(inodes, root, int(h["next_ino"]))
    for ino, locks in h.get("locks", []):
        fs.locks[int(ino)] = locks_from(locks)
    return fs

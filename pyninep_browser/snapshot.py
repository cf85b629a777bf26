"""Versioned serialization of a filesystem, and of a whole server (filesystem plus session).

The format is ours and stable across releases that keep ``FORMAT``: a fixed head (magic
``PYNINEP\0``, format number, flags, header length, body length, CRC-32 of everything after the
head), a JSON header describing inodes, directories and fids, then one blob holding every byte of
data (file chunks, symlink targets, xattr values) referenced from the header by offset and length.
Nothing in it is executed on load (no pickle), so a state file from elsewhere is only data, and
everything read is checked before it is trusted: a truncated, corrupted (checksum), foreign
(magic) or newer (format) state raises :class:`SnapshotError` before anything is built, and a
restore builds new objects, so a refused one changes nothing that runs. Format 1 (no checksum)
is still read.

A state is always complete and portable: for a filesystem kept in a store it holds every file's
data too (a synchronous store's chunks are loaded while saving; for an asynchronous one, load
``fs.missing_chunks()`` with ``fs.load_chunks`` first). :func:`restore` makes a filesystem in
memory, or, given a store, one that replaces that store's content at its first commit.

Requests still deferred at save time (waiting for data or for a commit) are saved with their
frames: the restored server runs them again on :meth:`Server.resume` (or its first ``tick``) and
answers the others EINTR there, so a restored guest never waits forever for a reply.

Directory entries keep their readdir sequence numbers and fids keep their inodes, open modes and
locks, so a guest restored from a v86 save state carries on mid-``ls`` with its files still open.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

from .fs import CHUNK, DirEntries, Filesystem, Inode, Lock
from .server import Fid, Server
from .fs import Cred

MAGIC = b"PYNINEP\0"
FORMAT = 2  # bump when the layout changes; load refuses newer formats
_HEAD_V1 = struct.Struct("<8sIQ")  # magic, format, header length
_HEAD = struct.Struct("<8sIIQQI")  # magic, format, flags, header length, body length, CRC-32


class SnapshotError(ValueError):
    """Bytes that are not a snapshot this version can read."""


class _Blob:
    def __init__(self) -> None:
        self.parts: list[Any] = []
        self.size = 0

    def put(self, data) -> list[int]:
        n = len(data)
        ref = [self.size, n]
        self.parts.append(data)
        self.size += n
        return ref


def _inode_record(inode: Inode, blob: _Blob, stored: set | None = None) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "ino": inode.ino, "mode": inode.mode, "uid": inode.uid, "gid": inode.gid,
        "nlink": inode.nlink, "rdev": inode.rdev, "size": inode.size, "gen": inode.gen,
        "version": inode.version, "t": [inode.atime, inode.mtime, inode.ctime, inode.btime],
    }
    if inode.chunks is not None:
        if stored is None:
            rec["chunks"] = [[ci, *blob.put(c)] for ci, c in sorted(inode.chunks.items())]
        else:  # offset -1: the chunk is in the store this state builds on
            ino = inode.ino
            rec["chunks"] = [
                [ci, -1, c if type(c) is int else len(c)] if (ino, ci) not in stored
                else [ci, *blob.put(c)] for ci, c in sorted(inode.chunks.items())]
    if inode.target is not None:
        rec["target"] = blob.put(inode.target)
    if inode.xattrs:
        rec["xattrs"] = [[k, *blob.put(v)] for k, v in inode.xattrs.items()]
    if inode.entries is not None:
        e = inode.entries
        rec["entries"] = [[name, seq, child.ino] for name, (seq, child) in e.by_name.items()]
        rec["next"] = e._next
        rec["parent"] = inode.parent.ino if inode.parent is not None else inode.ino
    if inode.refs:
        rec["refs"] = inode.refs
    return rec


def _load_everything(fs: Filesystem) -> None:
    """A state holds every file's data: bring in the chunks a store has not loaded yet."""
    missing = fs.missing_chunks()
    if not missing:
        return
    if fs.store.asynchronous:
        raise SnapshotError(f"{len(missing)} data chunks are not loaded yet: load "
                            "fs.missing_chunks() with fs.load_chunks() before saving")
    result: list[int] = []
    fs.load_chunks(missing, result.append)
    if result != [0]:
        raise SnapshotError(f"reading the store failed (errno {result})")


def _fs_header(fs: Filesystem, blob: _Blob, stored: bool = False) -> dict[str, Any]:
    if not stored:
        _load_everything(fs)
        unstored = None
    else:
        if fs.store is None:
            raise SnapshotError("stored=True needs a filesystem kept in a store")
        unstored = fs.unstored_chunks()
    header = {
        "root": fs.root.ino, "next_ino": fs.next_ino, "fsid": fs.fsid,
        "quota_bytes": fs.quota_bytes, "quota_inodes": fs.quota_inodes,
        "user_quota_bytes": fs.user_quota_bytes, "max_file_size": fs.max_file_size,
        "inodes": [_inode_record(i, blob, unstored) for i in fs.inodes.values()],
        "locks": [[ino, _lock_records(locks)] for ino, locks in fs.locks.items()],
    }
    if stored:
        # The store generation this state builds on: the last commit, and the one in flight
        # (its chunks are in the state, so a store that finished it is just as good).
        header["stored"] = {"fsid": fs.fsid, "gen": fs.generation, "inflight": fs._inflight}
    return header


def _lock_records(locks: list[Lock]) -> list[list[Any]]:
    return [[lk.start, lk.end, lk.type, list(lk.owner) if isinstance(lk.owner, tuple) else lk.owner]
            for lk in locks]


def _locks_from(records: list[list[Any]]) -> list[Lock]:
    return [Lock(int(a), int(b), int(t), tuple(o) if isinstance(o, list) else o) for a, b, t, o in records]


def _pack(kind: str, header: dict[str, Any], blob: _Blob) -> bytes:
    header["kind"] = kind
    raw = json.dumps(header, separators=(",", ":")).encode()
    crc = zlib.crc32(raw)
    for part in blob.parts:
        crc = zlib.crc32(part, crc)
    return b"".join([_HEAD.pack(MAGIC, FORMAT, 0, len(raw), blob.size, crc), raw, *blob.parts])


def _unpack(data: bytes | bytearray | memoryview, kind: str | tuple[str, ...]) -> tuple[dict[str, Any], memoryview]:
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
        raise SnapshotError(f"snapshot format {fmt} is newer than this version reads ({FORMAT}): "
                            "restore it with a newer pyninep_browser")
    if fmt == 1:  # no checksum and no body length: read as it always was
        head_size, (_, _, hlen) = _HEAD_V1.size, _HEAD_V1.unpack_from(buf, 0)
        end = len(buf)
    elif fmt == FORMAT:
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
        header = json.loads(bytes(buf[head_size:head_size + hlen]))
    except ValueError as exc:
        raise SnapshotError(f"snapshot header is corrupt: {exc}") from None
    kinds = (kind,) if isinstance(kind, str) else kind
    if not isinstance(header, dict) or header.get("kind") not in kinds:
        raise SnapshotError(f"snapshot is not a {' or '.join(kinds)} snapshot")
    return header, buf[head_size + hlen:end]


def _take(blob: memoryview, ref: list[int]) -> bytes:
    off, n = int(ref[0]), int(ref[1])
    if off < 0 or n < 0 or off + n > len(blob):
        raise SnapshotError("snapshot data reference out of range")
    return blob[off:off + n]


def _build_fs(h: dict[str, Any], blob: memoryview) -> Filesystem:
    fs = Filesystem.__new__(Filesystem)
    Filesystem.__init__(fs, quota_bytes=int(h["quota_bytes"]), quota_inodes=int(h["quota_inodes"]),
                        user_quota_bytes=h.get("user_quota_bytes"),
                        max_file_size=int(h["max_file_size"]), fsid=int(h["fsid"]))
    fs.inodes = {}
    fs.used_inodes = 0
    fs.used_bytes = 0
    fs.user_bytes = {}
    recs = h["inodes"]
    for r in recs:
        at, mt, ct, bt = (int(x) for x in r["t"])
        inode = Inode(ino=int(r["ino"]), mode=int(r["mode"]), uid=int(r["uid"]), gid=int(r["gid"]),
                      atime=at, mtime=mt, ctime=ct, btime=bt, nlink=int(r["nlink"]),
                      rdev=int(r["rdev"]), size=int(r["size"]), gen=int(r["gen"]),
                      version=int(r["version"]), refs=int(r.get("refs", 0)))
        if "chunks" in r:
            inode.chunks = {}
            for ci, off, n in r["chunks"]:
                if not 0 < n <= CHUNK:
                    raise SnapshotError("chunk larger than the chunk size")
                if off == -1 and "stored" in h:  # in the store the state builds on
                    inode.chunks[int(ci)] = int(n)
                else:
                    inode.chunks[int(ci)] = bytearray(_take(blob, [off, n]))
                inode.data_bytes += int(n)
        if "target" in r:
            inode.target = bytes(_take(blob, r["target"]))
        if "xattrs" in r:
            inode.xattrs = {str(k): bytes(_take(blob, [off, n])) for k, off, n in r["xattrs"]}
        fs.inodes[inode.ino] = inode
        fs.used_inodes += 1
        used = inode.allocated + fs._xattr_bytes(inode)
        fs.used_bytes += used
        fs.user_bytes[inode.uid] = fs.user_bytes.get(inode.uid, 0) + used
    for r in recs:
        if "entries" not in r:
            continue
        inode = fs.inodes[int(r["ino"])]
        entries = DirEntries()
        for name, seq, child in sorted(r["entries"], key=lambda e: e[1]):
            if int(child) not in fs.inodes:
                raise SnapshotError("directory entry names a missing inode")
            entries.by_name[str(name)] = (int(seq), fs.inodes[int(child)])
            entries._seqs.append(int(seq))
            entries._names.append(str(name))
        entries._next = int(r["next"])
        inode.entries = entries
        inode.parent = fs.inodes.get(int(r["parent"]), inode)
    root = fs.inodes.get(int(h["root"]))
    if root is None or root.entries is None:
        raise SnapshotError("snapshot has no root directory")
    fs.root = root
    fs.next_ino = int(h["next_ino"])
    for ino, locks in h.get("locks", []):
        fs.locks[int(ino)] = _locks_from(locks)
    fs.dirty = set(fs.inodes)
    return fs


def save_filesystem(fs: Filesystem) -> bytes:
    """The whole filesystem as bytes (an image to boot from, or a backup)."""
    blob = _Blob()
    return _pack("filesystem", _fs_header(fs, blob), blob)


def load_filesystem(data: bytes | bytearray | memoryview, store=None,
                    **store_options) -> Filesystem:
    """A filesystem from an image. With ``store``: the filesystem kept there if the store holds
    one (the image is not even read), else the image, which becomes the store's content at its
    first commit (started here; ``store_options``: ``cache_bytes``, ``writeback_ms``)."""
    if store is not None:
        if store.load_meta():
            return Filesystem(store=store, **store_options)
        fs = load_filesystem(data)
        fs.adopt_store(store, **store_options)
        fs.persist(True)
        return fs
    header, blob = _unpack(data, "filesystem")
    try:
        fs = _build_fs(header, blob)
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"snapshot is corrupt: {exc!r}") from None
    # An image starts a fresh life: nothing holds its inodes open.
    for inode in list(fs.inodes.values()):
        inode.refs = 0
        fs._maybe_free(inode)
    fs.locks.clear()
    return fs


def save(server: Server, stored: bool = False) -> bytes:
    """The server's whole state (filesystem, negotiated session, fids) as bytes.

    ``stored=True`` (a filesystem kept in a store): leave out the data the store already holds
    and name the store generation the state builds on; :func:`restore` then needs that store,
    unchanged since (saving at page unload, restoring at the next load). Small whatever the
    store's size, and nothing has to be loaded to take it.

    Take it with no request in flight (v86 is paused, or between two requests). Deferred
    requests still pending are recorded (with their frames where they can run again), and the
    restored server answers every one of them on :meth:`Server.resume`.
    """
    blob = _Blob()
    header = _fs_header(server.fs, blob, stored)
    header["session"] = {
        "msize": server.msize, "max_msize": server.max_msize, "max_fids": server.max_fids,
        "version": server.version, "pending": sorted(server.pending),
        # Deferred requests that can run again on the restored server (see Server.resume).
        "frames": [[tag, blob.put(server.deferred_frames[tag])] for tag in sorted(server.pending)
                   if tag in server.deferred_frames],
        "session_id": server.session_id,
        "permissions": server.permissions,
        "fids": [[n, f.inode.ino, [f.cred.uid, f.cred.gid, sorted(f.cred.groups), f.cred.trusted],
                  f.parent.ino if f.parent is not None else None, f.name, f.open_flags,
                  blob.put(bytes(f.xattr)) if f.xattr is not None else None, f.xattr_name,
                  f.xattr_size, f.xattr_flags, [list(o) for o in f.lock_owners or ()],
                  f.top.ino if f.top is not None else None]
                 for n, f in server.fids.items()],
    }
    return _pack("server", header, blob)


def _session_server(fs: Filesystem, s: dict[str, Any], blob: memoryview) -> Server:
    """A server over ``fs`` with a saved session's negotiation and deferred requests (no fid yet)."""
    server = Server(fs, max_msize=int(s["max_msize"]), max_fids=int(s["max_fids"]),
                    permissions=str(s.get("permissions", "server")))
    server.msize = int(s["msize"])
    server.version = s["version"]
    server.session_id = s["session_id"]
    server.pending = set(int(t) for t in s["pending"])
    frames = {int(tag): bytes(_take(blob, ref)) for tag, ref in s.get("frames", [])}
    server.resume_frames = [(tag, frames.get(tag)) for tag in sorted(server.pending)]
    return server


def _fid_from(r: dict[str, Any], inode: Inode, parent: Inode | None, top: Inode | None,
              blob: memoryview) -> Fid:
    """A fid from its record (:func:`_fid_records`), bound to inodes already looked up."""
    c = r["cred"]
    f = Fid(inode, Cred(int(c["uid"]), int(c["gid"]), frozenset(int(g) for g in c["groups"]),
                        bool(c["trusted"])), parent, r["name"], int(r["open_flags"]))
    if r["xattr"] is not None:
        value = _take(blob, r["xattr"])
        f.xattr = bytearray(value) if r["xattr_name"] is not None else bytes(value)
    f.xattr_name = r["xattr_name"]
    f.xattr_size = int(r["xattr_size"])
    f.xattr_flags = int(r["xattr_flags"])
    f.lock_owners = {tuple(o) for o in r["lock_owners"]} or None
    f.top = top
    return f


def restore(data: bytes | bytearray | memoryview, store=None, **store_options) -> Server:
    """A server exactly as :func:`save` found it. With ``store``, its filesystem is kept in that
    store from now on, replacing what the store held at its first commit (``store_options``:
    ``cache_bytes``, ``writeback_ms``); a refused state leaves the store untouched."""
    header, blob = _unpack(data, "server")
    generation = _check_store_for(header, store)
    try:
        fs = _build_fs(header, blob)
        server = _session_server(fs, header["session"], blob)
        for r in _fid_records(header):
            inode, top = fs.inodes.get(int(r["ino"])), r["top"]
            if inode is None or (top is not None and int(top) not in fs.inodes):
                raise SnapshotError("fid names a missing inode")
            parent = fs.inodes.get(r["parent"]) if r["parent"] is not None else None
            server.fids[int(r["fid"])] = _fid_from(r, inode, parent, fs.inodes.get(top) if top is not None else None, blob)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SnapshotError):
            raise
        raise SnapshotError(f"snapshot is corrupt: {exc!r}") from None
    if store is not None:
        fs.adopt_store(store, generation=generation, **store_options)
    return server


# ---- the session alone: a machine state over a store that is the truth for files

def _identity(inode: Inode) -> list[int]:
    """What says an inode of a store is the one a saved fid held: its number comes with it;
    numbers are never reused in one filesystem (``next_ino`` only grows, and a machine state is
    taken after a durable commit), and birth time, generation and type must agree too."""
    return [inode.gen, inode.btime, inode.mode & 0o170000]


def save_session(server: Server) -> bytes:
    """The 9P session alone (negotiated size, fids, locks, deferred requests), no file: a few
    KiB whatever the tree's size. :func:`restore_session` puts it back over the same filesystem
    in any later state (a store that moved on since); each fid is re-bound to its inode there
    by number and identity. Take it after a durable commit of the store (a fid's inode must be
    in it) and with no request in flight."""
    blob = _Blob()
    fs = server.fs
    held: dict[int, Inode] = {}
    fids = []
    for n, f in server.fids.items():
        for inode in (f.inode, f.parent, f.top):
            if inode is not None:
                held[inode.ino] = inode
        fids.append({
            "fid": n, "ino": f.inode.ino,
            "cred": {"uid": f.cred.uid, "gid": f.cred.gid, "groups": sorted(f.cred.groups),
                     "trusted": f.cred.trusted},
            "parent": f.parent.ino if f.parent is not None else None, "name": f.name,
            "open_flags": f.open_flags,
            "xattr": blob.put(bytes(f.xattr)) if f.xattr is not None else None,
            "xattr_name": f.xattr_name, "xattr_size": f.xattr_size, "xattr_flags": f.xattr_flags,
            "lock_owners": [list(o) for o in f.lock_owners or ()],
            "top": f.top.ino if f.top is not None else None,
        })
    header: dict[str, Any] = {
        "fsid": fs.fsid,
        "identity": {str(ino): _identity(inode) for ino, inode in held.items()},
        "locks": [[ino, _lock_records(locks)] for ino, locks in fs.locks.items() if ino in held],
        "session": {
            "msize": server.msize, "max_msize": server.max_msize, "max_fids": server.max_fids,
            "version": server.version, "pending": sorted(server.pending),
            "frames": [[tag, blob.put(server.deferred_frames[tag])] for tag in sorted(server.pending)
                       if tag in server.deferred_frames],
            "session_id": server.session_id, "permissions": server.permissions,
        },
        "fid_records": fids,
    }
    return _pack("session", header, blob)


class ForeignFilesystem(SnapshotError):
    """A session saved over another filesystem (another image, an older build's store): none
    of its fids can be trusted to name the same files here."""


def _identities(header: dict[str, Any]) -> dict[int, list[int]]:
    """Each held inode's :func:`_identity` as a "session" state (or a complete state) records it."""
    if header["kind"] == "session":
        return {int(k): [int(x) for x in v] for k, v in header["identity"].items()}
    return {int(r["ino"]): [int(r["gen"]), int(r["t"][3]), int(r["mode"]) & 0o170000]
            for r in header["inodes"]}


def _fid_records(header: dict[str, Any]) -> list[dict[str, Any]]:
    """The fids of a "session" state, or of a complete state (positional there), as records."""
    if header["kind"] == "session":
        return list(header["fid_records"])
    return [{"fid": n, "ino": ino, "cred": {"uid": c[0], "gid": c[1], "groups": c[2],
                                            "trusted": c[3] if len(c) > 3 else False},
             "parent": parent, "name": name, "open_flags": flags, "xattr": xattr,
             "xattr_name": xname, "xattr_size": xsize, "xattr_flags": xflags,
             "lock_owners": owners, "top": top}
            for n, ino, c, parent, name, flags, xattr, xname, xsize, xflags, owners, top
            in header["session"]["fids"]]


def restore_session(data: bytes | bytearray | memoryview, fs: Filesystem) -> tuple[Server, dict[str, Any]]:
    """A server over ``fs`` (kept as it is: its files are the truth) with the session a state
    saved: :func:`save_session`'s, or the session part of a complete :func:`save` state (whose
    files are ignored). Each fid is re-bound to ``fs``'s inode of the same number when its
    identity (generation, birth time, type) agrees; a fid whose file is gone or is another file
    now is *stale*: every use of it is ESTALE and a clunk frees it, so it can never reach other
    data. Locks held through re-bound fids are held again. Raises :class:`ForeignFilesystem`
    when the state was saved over another filesystem, :class:`SnapshotError` when it is not an
    intact state; neither changes anything. Returns the server and a report
    ``{"fids": re-bound, "stale": [fid numbers]}``."""
    header, blob = _unpack(data, ("session", "server"))
    try:
        if int(header["fsid"]) != fs.fsid:
            raise ForeignFilesystem("the state's session was saved over another filesystem "
                                    f"(id {int(header['fsid']):x}, this one is {fs.fsid:x})")
        identity = _identities(header)
        server = _session_server(fs, header["session"], blob)

        def bound(ino: Any) -> Inode | None:
            if ino is None:
                return None
            inode = fs.inodes.get(int(ino))
            if inode is None or _identity(inode) != identity.get(int(ino)):
                return None
            return inode

        fids: dict[int, Fid] = {}
        stale: list[int] = []
        for r in _fid_records(header):
            inode, top = bound(r["ino"]), bound(r["top"])
            if inode is None or (r["top"] is not None and top is None):
                stale.append(int(r["fid"]))
            else:
                fids[int(r["fid"])] = _fid_from(r, inode, bound(r["parent"]), top, blob)
        locks = []
        for ino, held in header.get("locks", []):
            inode = bound(ino)
            if inode is not None:
                locks.append((inode, _locks_from(held)))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, SnapshotError):
            raise
        raise SnapshotError(f"snapshot is corrupt: {exc!r}") from None
    # Checked and built: now change the filesystem (references held, locks taken again).
    owners = {o for f in fids.values() for o in f.lock_owners or ()}
    for inode, held_locks in locks:
        kept = [lk for lk in held_locks if lk.owner in owners]
        if kept:
            fs.locks.setdefault(inode.ino, []).extend(kept)
    for f in fids.values():
        fs.ref(f.inode)
    server.fids = fids
    server.stale_fids = set(stale)
    return server, {"fids": len(fids), "stale": sorted(stale)}


def _check_store_for(header: dict[str, Any], store) -> int:
    """For a state saved with ``stored=True``: the store must be the one it builds on, at the
    generation it names. Returns the store's generation (0 without a store)."""
    if store is None:
        if "stored" in header:
            raise SnapshotError("this state builds on a store: restore it with that store")
        return 0
    try:
        sup = json.loads(dict(store.load_meta()).get("super", b"{}"))
    except ValueError:
        sup = {}
    gen = sup.get("gen", 0) if isinstance(sup, dict) else 0
    ref = header.get("stored")
    if ref is None:
        return gen if isinstance(gen, int) else 0
    if sup.get("fsid") != ref.get("fsid"):
        raise SnapshotError("this state builds on another store (its filesystem id differs)")
    ok = {ref.get("gen"), ref.get("gen", 0) + 1} if ref.get("inflight") else {ref.get("gen")}
    if gen not in ok:
        raise SnapshotError(f"the store has changed since this state was saved (store generation "
                            f"{gen}, the state builds on {ref.get('gen')})")
    return gen


__all__ = ["SnapshotError", "ForeignFilesystem", "save", "restore", "save_session", "restore_session",
           "save_filesystem", "load_filesystem"]

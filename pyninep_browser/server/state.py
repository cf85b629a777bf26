"""Saving a session, and restoring it: complete states (filesystem and session) and session-only
states (a machine state over a store that is the truth for files).

Both are written in the state format (:mod:`pyninep_browser.fs.stateformat`). A fid is a named
record (format 3)::

    {"fid", "ino", "state": "walked" | "open" | "xattr-read" | "xattr-write",
     "cred": {"uid", "gid", "groups", "trusted"}, "parent", "name", "top", "open_flags",
     "xattr": [offset, length] | null, "xattr_name", "xattr_size", "xattr_flags", "lock_owners"}

Format 2 wrote a fid as a 12-element list; such states are still restored (:func:`fid_records`).

Requests still deferred at save time (waiting for data or for a commit) are saved with their
frames: the restored server runs them again on :meth:`Server.resume` (or its first ``tick``) and
answers the others EINTR there, so a restored guest never waits forever for a reply.
"""

from __future__ import annotations

import json
from typing import Any

from ..fs import Cred, Filesystem, Inode
from ..fs.stateformat import (
    Blob,
    SnapshotError,
    build_filesystem,
    corrupt,
    filesystem_header,
    inode_times,
    lock_records,
    locks_from,
    pack,
    take,
    unpack,
)
from .fids import OPEN, WALKED, XATTR_READ, XATTR_WRITE, Fid, FidState
from .session import Server


class ForeignFilesystem(SnapshotError):
    """A session saved over another filesystem (another image, an older build's store): none
    of its fids can be trusted to name the same files here."""


# ---- records


def _fid_record(n: int, f: Fid, blob: Blob) -> dict[str, Any]:
    return {
        "fid": n,
        "ino": f.inode.ino,
        "state": f.state.value,
        "cred": {
            "uid": f.cred.uid,
            "gid": f.cred.gid,
            "groups": sorted(f.cred.groups),
            "trusted": f.cred.trusted,
        },
        "parent": f.parent.ino if f.parent is not None else None,
        "name": f.name,
        "top": f.top.ino if f.top is not None else None,
        "open_flags": f.open_flags,
        "xattr": blob.put(bytes(f.xattr)) if f.xattr is not None else None,
        "xattr_name": f.xattr_name,
        "xattr_size": f.xattr_size,
        "xattr_flags": f.xattr_flags,
        "lock_owners": [list(o) for o in f.lock_owners or ()],
    }


def fid_records(header: dict[str, Any]) -> list[dict[str, Any]]:
    """The fids of a state as named records, whatever its format and kind."""
    if "fid_records" in header:
        return list(header["fid_records"])
    # a format 2 complete state: positional lists
    return [
        {
            "fid": n,
            "ino": ino,
            "cred": {"uid": c[0], "gid": c[1], "groups": c[2], "trusted": c[3] if len(c) > 3 else False},
            "parent": parent,
            "name": name,
            "open_flags": flags,
            "xattr": xattr,
            "xattr_name": xname,
            "xattr_size": xsize,
            "xattr_flags": xflags,
            "lock_owners": owners,
            "top": top,
        }
        for n, ino, c, parent, name, flags, xattr, xname, xsize, xflags, owners, top in header["session"][
            "fids"
        ]
    ]


def _state_of(r: dict[str, Any]) -> FidState:
    if "state" in r:
        return FidState(r["state"])
    if r["xattr_name"] is not None:  # format 2 had no state: it follows from the fields
        return XATTR_WRITE
    if r["xattr"] is not None:
        return XATTR_READ
    return OPEN if int(r["open_flags"]) >= 0 else WALKED


def _fid_from(
    r: dict[str, Any], inode: Inode, parent: Inode | None, top: Inode | None, blob: memoryview
) -> Fid:
    """A fid from its record, bound to inodes already looked up (no live handle: a restored
    open live file reads what it last showed)."""
    c = r["cred"]
    f = Fid(
        inode,
        Cred(int(c["uid"]), int(c["gid"]), frozenset(int(g) for g in c["groups"]), bool(c["trusted"])),
        parent,
        r["name"],
        top=top,
    )
    f.state = _state_of(r)
    f.open_flags = int(r["open_flags"]) if f.state is OPEN else -1
    if r["xattr"] is not None:
        value = take(blob, r["xattr"])
        f.xattr = bytearray(value) if f.state is XATTR_WRITE else bytes(value)
    f.xattr_name = r["xattr_name"]
    f.xattr_size = int(r["xattr_size"])
    f.xattr_flags = int(r["xattr_flags"])
    f.lock_owners = {tuple(o) for o in r["lock_owners"]} or None
    return f


def _session_record(server: Server, blob: Blob) -> dict[str, Any]:
    return {
        "msize": server.msize,
        "max_msize": server.max_msize,
        "max_fids": server.max_fids,
        "version": server.version,
        "pending": sorted(server.pending),
        # Deferred requests that can run again on the restored server (see Server.resume).
        "frames": [
            [tag, blob.put(server.deferred_frames[tag])]
            for tag in sorted(server.pending)
            if tag in server.deferred_frames
        ],
        "session_id": server.session_id,
        "permissions": server.permissions,
    }


def _session_server(fs: Filesystem, s: dict[str, Any], blob: memoryview) -> Server:
    """A server over ``fs`` with a saved session's negotiation and deferred requests (no fid yet)."""
    server = Server(
        fs,
        max_msize=int(s["max_msize"]),
        max_fids=int(s["max_fids"]),
        permissions=str(s.get("permissions", "server")),
    )
    server.msize = int(s["msize"])
    server.version = s["version"]
    server.session_id = s["session_id"]
    server.pending = {int(t) for t in s["pending"]}
    frames = {int(tag): bytes(take(blob, ref)) for tag, ref in s.get("frames", [])}
    server.resume_frames = [(tag, frames.get(tag)) for tag in sorted(server.pending)]
    return server


# ---- complete states


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
    blob = Blob()
    header = filesystem_header(server.fs, blob, stored)
    header["session"] = _session_record(server, blob)
    header["fid_records"] = [_fid_record(n, f, blob) for n, f in server.fids.items()]
    return pack("server", header, blob)


def restore(data: bytes | bytearray | memoryview, store: Any = None, **store_options: Any) -> Server:
    """A server exactly as :func:`save` found it. With ``store``, its filesystem is kept in that
    store from now on, replacing what the store held at its first commit (``store_options``:
    ``cache_bytes``, ``writeback_ms``); a refused state leaves the store untouched."""
    header, blob = unpack(data, "server")
    generation = _check_store_for(header, store)
    try:
        fs = build_filesystem(header, blob)
        server = _session_server(fs, header["session"], blob)
        for r in fid_records(header):
            inode, top = fs.inodes.get(int(r["ino"])), r["top"]
            if inode is None or (top is not None and int(top) not in fs.inodes):
                raise SnapshotError("fid names a missing inode")
            parent = fs.inodes.get(r["parent"]) if r["parent"] is not None else None
            server.fids[int(r["fid"])] = _fid_from(
                r, inode, parent, fs.inodes.get(top) if top is not None else None, blob
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise corrupt(exc) from None
    if store is not None:
        fs.adopt_store(store, generation=generation, **store_options)
    return server


def _check_store_for(header: dict[str, Any], store: Any) -> int:
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
        raise SnapshotError(
            f"the store has changed since this state was saved (store generation "
            f"{gen}, the state builds on {ref.get('gen')})"
        )
    return gen


# ---- the session alone: a machine state over a store that is the truth for files


def identity(inode: Inode) -> list[int]:
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
    blob = Blob()
    fs = server.fs
    held: dict[int, Inode] = {}
    for f in server.fids.values():
        for inode in (f.inode, f.parent, f.top):
            if inode is not None:
                held[inode.ino] = inode
    header: dict[str, Any] = {
        "fsid": fs.fsid,
        "identity": {str(ino): identity(inode) for ino, inode in held.items()},
        "locks": [[ino, lock_records(locks)] for ino, locks in fs.locks.items() if ino in held],
        "session": _session_record(server, blob),
        "fid_records": [_fid_record(n, f, blob) for n, f in server.fids.items()],
    }
    return pack("session", header, blob)


def _identities(header: dict[str, Any]) -> dict[int, list[int]]:
    """Each held inode's :func:`identity` as a session state (or a complete state) records it."""
    if header["kind"] == "session":
        return {int(k): [int(x) for x in v] for k, v in header["identity"].items()}
    return {
        int(r["ino"]): [int(r["gen"]), inode_times(r)[3], int(r["mode"]) & 0o170000] for r in header["inodes"]
    }


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
    header, blob = unpack(data, ("session", "server"))
    try:
        if int(header["fsid"]) != fs.fsid:
            raise ForeignFilesystem(
                "the state's session was saved over another filesystem "
                f"(id {int(header['fsid']):x}, this one is {fs.fsid:x})"
            )
        ids = _identities(header)
        server = _session_server(fs, header["session"], blob)

        def bound(ino: Any) -> Inode | None:
            if ino is None:
                return None
            inode = fs.inodes.get(int(ino))
            if inode is None or identity(inode) != ids.get(int(ino)):
                return None
            return inode

        fids: dict[int, Fid] = {}
        stale: list[int] = []
        for r in fid_records(header):
            inode, top = bound(r["ino"]), bound(r["top"])
            if inode is None or (r["top"] is not None and top is None):
                stale.append(int(r["fid"]))
            else:
                fids[int(r["fid"])] = _fid_from(r, inode, bound(r["parent"]), top, blob)
        locks = []
        for ino, held in header.get("locks", []):
            inode = bound(ino)
            if inode is not None:
                locks.append((inode, locks_from(held)))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise corrupt(exc) from None
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

"""The lookup triplet, decoded in place: Twalk of one name (or a clone), Tgetattr and Tclunk.

Nine messages in ten a Linux guest sends are these (stat, open and create all walk, then getattr
and clunk). They decode their fixed layouts straight from the frame and skip the generic decoder;
they give the same answers, errors included, as the handlers in :mod:`.session` (the differential
and unit tests compare the two byte for byte). Anything unusual falls back to the generic path.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from typing import Any

from .. import protocol as p
from ..fs import NAME_MAX, S_IFMT, Filesystem, Inode, fail
from ..protocol import HEADER_SIZE, ProtocolError, T
from .fids import _QID_TYPE, OPEN, Fid, qid_version

# Twalk's fixed fields after the header (fid, newfid, nwname), from protocol's table
_TWALK_BODY = struct.Struct("<" + p.head_struct(T.Twalk).format.removeprefix(p.HEADER.format))
_RWALK_HDR = p.head_struct(T.Rwalk)
_RWALK1 = struct.Struct(_RWALK_HDR.format + "BIQ")  # an Rwalk with one qid
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_RWALK = int(T.Rwalk)


class FastPaths:
    """The in-place half of the session (see the module docstring)."""

    fs: Filesystem
    fids: dict[int, Fid]
    _file_fid: Callable[[int], Fid]
    _new_fid_slot: Callable[..., None]
    _bind: Callable[[int, Fid], None]
    _release: Callable[[Fid], None]
    _step: Callable[[Fid, Inode, str], Inode]
    _generic: Callable[[int, int, Any, int], bytes | None]
    _rgetattr: Callable[[int, Inode], bytes]
    clunk: Callable[[int, int], bytes | None]

    def _walk_frame(self, tag: int, buf: bytearray | memoryview, size: int) -> bytes | None:
        if size < 17:
            raise ProtocolError(errno.EPROTO, "frame too short")
        fid, newfid, nwname = _TWALK_BODY.unpack_from(buf, HEADER_SIZE)
        if nwname == 0 and size == 17:  # a clone: the client is about to open or create
            f = self._file_fid(fid)
            if newfid != fid:
                self._new_fid_slot(newfid)
            self._bind(newfid, f.walked(f.inode, f.parent, f.name))
            return _RWALK_HDR.pack(9, _RWALK, tag, 0)
        if nwname != 1 or size < 19:
            return self._generic(T.Twalk, tag, buf, size)
        (length,) = _U16.unpack_from(buf, 17)
        if 19 + length != size:
            return self._generic(T.Twalk, tag, buf, size)  # it says what is wrong
        name = str(buf[19:size], "utf-8", "surrogateescape")
        f = self._file_fid(fid)
        if f.state is OPEN:
            raise fail(errno.EBADF, "walk from an open fid")
        if newfid != fid:
            self._new_fid_slot(newfid)
        cur = f.inode
        entries = cur.entries
        cred = f.cred
        searchable = cred.uid == 0 or cred.trusted  # no search permission to check
        hit = entries.by_name.get(name) if entries is not None and searchable else None
        if hit is not None:
            nxt = hit[1]
        elif (
            entries is not None
            and searchable
            and len(name) < NAME_MAX // 4
            and name
            and name != "."
            and name != ".."
            and "/" not in name
            and cur.backend is None
        ):
            # A plain miss (every create starts with one): what lookup would raise, without the
            # exception. Names this short cannot be ENAMETOOLONG in any encoding.
            return p.lerror(tag, errno.ENOENT)
        else:  # the full rules, and their errors
            nxt = self._step(f, cur, name)
        self.fs.ref(nxt)
        fids = self.fids
        old = fids.get(newfid)
        fids[newfid] = Fid(nxt, cred, cur, name, top=f.top)
        if old is not None:
            self._release(old)
        kind = _QID_TYPE.get(nxt.mode & S_IFMT, 0)
        return _RWALK1.pack(22, _RWALK, tag, 1, kind, qid_version(nxt), nxt.ino)

    def _getattr_frame(self, tag: int, buf: bytearray | memoryview, size: int) -> bytes | None:
        if size != 19:
            raise ProtocolError(errno.EPROTO, "frame size does not match the message")
        (fid,) = _U32.unpack_from(buf, HEADER_SIZE)  # every attribute is always returned
        return self._rgetattr(tag, self._file_fid(fid).inode)

    def _clunk_frame(self, tag: int, buf: bytearray | memoryview, size: int) -> bytes | None:
        if size != 11:
            raise ProtocolError(errno.EPROTO, "frame size does not match the message")
        (fid,) = _U32.unpack_from(buf, HEADER_SIZE)
        return self.clunk(tag, fid)

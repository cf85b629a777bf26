"""The 9P2000.L wire: message numbers, one table of layouts, one encoder and one decoder.

This module is sans-IO. It turns bytes into ``(type, tag, fields)`` and back and knows nothing of
fids, files, sockets or JavaScript. Every message is described once, in ``LAYOUTS``, by a few
letters per field in the style of Linux's ``p9pdu_readf``:

    b u8   w u16   d u32   q u64   s string (u16 length + UTF-8)   Q qid (13 bytes)
    D data (u32 count + bytes)   S list of strings (u16 count + s…)   Z list of qids (u16 count + Q…)
    R raw bytes to the end of the frame (Rreaddir payload)

Decoding checks every length against the frame and raises only :class:`ProtocolError`, carrying
the errno the server answers with. The table doubles as the fuzzer's grammar.
"""

from __future__ import annotations

import errno
import struct
from enum import IntEnum, IntFlag
from typing import Any, NamedTuple

HEADER = struct.Struct("<IBH")
HEADER_SIZE = HEADER.size  # 7
NOTAG = 0xFFFF
NOFID = 0xFFFFFFFF
VERSION_9P2000L = "9P2000.L"
# Bytes an Rread/Rreaddir spends before its payload: size[4] type[1] tag[2] count[4].
IOHDRSZ = 11
# What Linux subtracts from msize for iounit 0 (P9_IOHDRSZ).
P9_IOHDRSZ = 24
MAX_WALK = 16


# Linux's errno numbers, which is what Rlerror carries. The host's ``errno`` module may differ:
# Pyodide has Emscripten's numbers (ENOENT is 44 there), macOS has BSD's. Errors are raised with
# the host's names and translated here, once, on the way to the wire. (Kept as a dense table.)
# fmt: off
LINUX_ERRNO = {
    "EPERM": 1, "ENOENT": 2, "ESRCH": 3, "EINTR": 4, "EIO": 5, "ENXIO": 6, "E2BIG": 7,
    "ENOEXEC": 8, "EBADF": 9, "ECHILD": 10, "EAGAIN": 11, "ENOMEM": 12, "EACCES": 13,
    "EFAULT": 14, "ENOTBLK": 15, "EBUSY": 16, "EEXIST": 17, "EXDEV": 18, "ENODEV": 19,
    "ENOTDIR": 20, "EISDIR": 21, "EINVAL": 22, "ENFILE": 23, "EMFILE": 24, "ENOTTY": 25,
    "ETXTBSY": 26, "EFBIG": 27, "ENOSPC": 28, "ESPIPE": 29, "EROFS": 30, "EMLINK": 31,
    "EPIPE": 32, "EDOM": 33, "ERANGE": 34, "EDEADLK": 35, "ENAMETOOLONG": 36, "ENOLCK": 37,
    "ENOSYS": 38, "ENOTEMPTY": 39, "ELOOP": 40, "ENOMSG": 42, "EIDRM": 43, "ENOSTR": 60,
    "ENODATA": 61, "ETIME": 62, "ENOSR": 63, "ENOLINK": 67, "EPROTO": 71, "EBADMSG": 74,
    "EOVERFLOW": 75, "EILSEQ": 84, "EUSERS": 87, "ENOTSOCK": 88, "EDESTADDRREQ": 89,
    "EMSGSIZE": 90, "EPROTOTYPE": 91, "ENOPROTOOPT": 92, "EPROTONOSUPPORT": 93,
    "EOPNOTSUPP": 95, "ENOTSUP": 95, "EAFNOSUPPORT": 97, "EADDRINUSE": 98,
    "EADDRNOTAVAIL": 99, "ENETDOWN": 100, "ENETUNREACH": 101, "ECONNABORTED": 103,
    "ECONNRESET": 104, "ENOBUFS": 105, "EISCONN": 106, "ENOTCONN": 107, "ETIMEDOUT": 110,
    "ECONNREFUSED": 111, "EHOSTUNREACH": 113, "EALREADY": 114, "EINPROGRESS": 115,
    "ESTALE": 116, "EDQUOT": 122, "ECANCELED": 125, "EOWNERDEAD": 130,
    "ENOTRECOVERABLE": 131,
}
# fmt: on
_HOST_TO_LINUX = {
    getattr(errno, name): num
    for name, num in LINUX_ERRNO.items()
    if isinstance(getattr(errno, name, None), int)
}


def linux_errno(host_errno: int | None) -> int:
    """The Linux errno for a number from this host's ``errno`` module (EIO if it has none)."""
    if host_errno is None:
        return LINUX_ERRNO["EIO"]
    return _HOST_TO_LINUX.get(host_errno, LINUX_ERRNO["EIO"])


class ProtocolError(Exception):
    """A frame that cannot be decoded; ``errno`` (the host's number) is what the server answers with."""

    def __init__(self, err: int, message: str) -> None:
        super().__init__(message)
        self.errno = err


class T(IntEnum):
    """Message types (T requests and R replies)."""

    Tlerror = 6
    Rlerror = 7
    Tstatfs = 8
    Rstatfs = 9
    Tlopen = 12
    Rlopen = 13
    Tlcreate = 14
    Rlcreate = 15
    Tsymlink = 16
    Rsymlink = 17
    Tmknod = 18
    Rmknod = 19
    Trename = 20
    Rrename = 21
    Treadlink = 22
    Rreadlink = 23
    Tgetattr = 24
    Rgetattr = 25
    Tsetattr = 26
    Rsetattr = 27
    Txattrwalk = 30
    Rxattrwalk = 31
    Txattrcreate = 32
    Rxattrcreate = 33
    Treaddir = 40
    Rreaddir = 41
    Tfsync = 50
    Rfsync = 51
    Tlock = 52
    Rlock = 53
    Tgetlock = 54
    Rgetlock = 55
    Tlink = 70
    Rlink = 71
    Tmkdir = 72
    Rmkdir = 73
    Trenameat = 74
    Rrenameat = 75
    Tunlinkat = 76
    Runlinkat = 77
    Tversion = 100
    Rversion = 101
    Tauth = 102
    Rauth = 103
    Tattach = 104
    Rattach = 105
    Terror = 106
    Rerror = 107
    Tflush = 108
    Rflush = 109
    Twalk = 110
    Rwalk = 111
    Topen = 112
    Ropen = 113
    Tcreate = 114
    Rcreate = 115
    Tread = 116
    Rread = 117
    Twrite = 118
    Rwrite = 119
    Tclunk = 120
    Rclunk = 121
    Tremove = 122
    Rremove = 123
    Tstat = 124
    Rstat = 125
    Twstat = 126
    Rwstat = 127


class QidType(IntFlag):
    FILE = 0x00
    LINK = 0x01
    SYMLINK = 0x02
    TMP = 0x04
    AUTH = 0x08
    MOUNT = 0x10
    EXCL = 0x20
    APPEND = 0x40
    DIR = 0x80


class GetattrMask(IntFlag):
    MODE = 0x1
    NLINK = 0x2
    UID = 0x4
    GID = 0x8
    RDEV = 0x10
    ATIME = 0x20
    MTIME = 0x40
    CTIME = 0x80
    INO = 0x100
    SIZE = 0x200
    BLOCKS = 0x400
    BASIC = 0x7FF
    BTIME = 0x800
    GEN = 0x1000
    DATA_VERSION = 0x2000
    ALL = 0x3FFF


class SetattrValid(IntFlag):
    MODE = 0x1
    UID = 0x2
    GID = 0x4
    SIZE = 0x8
    ATIME = 0x10
    MTIME = 0x20
    CTIME = 0x40
    ATIME_SET = 0x80
    MTIME_SET = 0x100


class LockType(IntEnum):
    RDLCK = 0
    WRLCK = 1
    UNLCK = 2


class LockFlags(IntFlag):
    BLOCK = 1
    RECLAIM = 2


class LockStatus(IntEnum):
    SUCCESS = 0
    BLOCKED = 1
    ERROR = 2
    GRACE = 3


class Qid(NamedTuple):
    type: int
    version: int
    path: int


# Field layouts, one line per message. Names document the wire and are used by tests and the fuzzer.
LAYOUTS: dict[int, tuple[tuple[str, str], ...]] = {
    T.Rlerror: (("ecode", "d"),),
    T.Tstatfs: (("fid", "d"),),
    T.Rstatfs: (
        ("type", "d"),
        ("bsize", "d"),
        ("blocks", "q"),
        ("bfree", "q"),
        ("bavail", "q"),
        ("files", "q"),
        ("ffree", "q"),
        ("fsid", "q"),
        ("namelen", "d"),
    ),
    T.Tlopen: (("fid", "d"), ("flags", "d")),
    T.Rlopen: (("qid", "Q"), ("iounit", "d")),
    T.Tlcreate: (("fid", "d"), ("name", "s"), ("flags", "d"), ("mode", "d"), ("gid", "d")),
    T.Rlcreate: (("qid", "Q"), ("iounit", "d")),
    T.Tsymlink: (("fid", "d"), ("name", "s"), ("symtgt", "s"), ("gid", "d")),
    T.Rsymlink: (("qid", "Q"),),
    T.Tmknod: (("dfid", "d"), ("name", "s"), ("mode", "d"), ("major", "d"), ("minor", "d"), ("gid", "d")),
    T.Rmknod: (("qid", "Q"),),
    T.Trename: (("fid", "d"), ("dfid", "d"), ("name", "s")),
    T.Rrename: (),
    T.Treadlink: (("fid", "d"),),
    T.Rreadlink: (("target", "s"),),
    T.Tgetattr: (("fid", "d"), ("request_mask", "q")),
    T.Rgetattr: (
        ("valid", "q"),
        ("qid", "Q"),
        ("mode", "d"),
        ("uid", "d"),
        ("gid", "d"),
        ("nlink", "q"),
        ("rdev", "q"),
        ("size", "q"),
        ("blksize", "q"),
        ("blocks", "q"),
        ("atime_sec", "q"),
        ("atime_nsec", "q"),
        ("mtime_sec", "q"),
        ("mtime_nsec", "q"),
        ("ctime_sec", "q"),
        ("ctime_nsec", "q"),
        ("btime_sec", "q"),
        ("btime_nsec", "q"),
        ("gen", "q"),
        ("data_version", "q"),
    ),
    T.Tsetattr: (
        ("fid", "d"),
        ("valid", "d"),
        ("mode", "d"),
        ("uid", "d"),
        ("gid", "d"),
        ("size", "q"),
        ("atime_sec", "q"),
        ("atime_nsec", "q"),
        ("mtime_sec", "q"),
        ("mtime_nsec", "q"),
    ),
    T.Rsetattr: (),
    T.Txattrwalk: (("fid", "d"), ("newfid", "d"), ("name", "s")),
    T.Rxattrwalk: (("size", "q"),),
    T.Txattrcreate: (("fid", "d"), ("name", "s"), ("attr_size", "q"), ("flags", "d")),
    T.Rxattrcreate: (),
    T.Treaddir: (("fid", "d"), ("offset", "q"), ("count", "d")),
    T.Rreaddir: (("data", "D"),),
    T.Tfsync: (("fid", "d"), ("datasync", "d")),
    T.Rfsync: (),
    T.Tlock: (
        ("fid", "d"),
        ("type", "b"),
        ("flags", "d"),
        ("start", "q"),
        ("length", "q"),
        ("proc_id", "d"),
        ("client_id", "s"),
    ),
    T.Rlock: (("status", "b"),),
    T.Tgetlock: (
        ("fid", "d"),
        ("type", "b"),
        ("start", "q"),
        ("length", "q"),
        ("proc_id", "d"),
        ("client_id", "s"),
    ),
    T.Rgetlock: (("type", "b"), ("start", "q"), ("length", "q"), ("proc_id", "d"), ("client_id", "s")),
    T.Tlink: (("dfid", "d"), ("fid", "d"), ("name", "s")),
    T.Rlink: (),
    T.Tmkdir: (("dfid", "d"), ("name", "s"), ("mode", "d"), ("gid", "d")),
    T.Rmkdir: (("qid", "Q"),),
    T.Trenameat: (("olddirfid", "d"), ("oldname", "s"), ("newdirfid", "d"), ("newname", "s")),
    T.Rrenameat: (),
    T.Tunlinkat: (("dirfd", "d"), ("name", "s"), ("flags", "d")),
    T.Runlinkat: (),
    T.Tversion: (("msize", "d"), ("version", "s")),
    T.Rversion: (("msize", "d"), ("version", "s")),
    T.Tauth: (("afid", "d"), ("uname", "s"), ("aname", "s"), ("n_uname", "d")),
    T.Rauth: (("aqid", "Q"),),
    T.Tattach: (("fid", "d"), ("afid", "d"), ("uname", "s"), ("aname", "s"), ("n_uname", "d")),
    T.Rattach: (("qid", "Q"),),
    T.Tflush: (("oldtag", "w"),),
    T.Rflush: (),
    T.Twalk: (("fid", "d"), ("newfid", "d"), ("wnames", "S")),
    T.Rwalk: (("qids", "Z"),),
    T.Tread: (("fid", "d"), ("offset", "q"), ("count", "d")),
    T.Rread: (("data", "D"),),
    T.Twrite: (("fid", "d"), ("offset", "q"), ("data", "D")),
    T.Rwrite: (("count", "d"),),
    T.Tclunk: (("fid", "d"),),
    T.Rclunk: (),
    T.Tremove: (("fid", "d"),),
    T.Rremove: (),
}

_FIXED = {"b": "B", "w": "H", "d": "I", "q": "Q", "Q": "BIQ"}
_QID = struct.Struct("<BIQ")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


class _Layout:
    """A message layout compiled into runs of fixed-size fields and variable-size fields."""

    __slots__ = ("names", "steps", "simple")

    def __init__(self, fields: tuple[tuple[str, str], ...]) -> None:
        self.names = tuple(name for name, _ in fields)
        # ("fixed", Struct, the run's codes) or (code, None, ()); Any: the hot loops read st.size
        steps: list[tuple[str, Any, tuple[str, ...]]] = []
        run: list[str] = []

        def flush() -> None:
            if run:
                steps.append(("fixed", struct.Struct("<" + "".join(_FIXED[c] for c in run)), tuple(run)))
                run.clear()

        for _, code in fields:
            if code in _FIXED:
                run.append(code)
            else:
                flush()
                steps.append((code, None, ()))
        flush()
        self.steps = tuple(steps)
        # Layouts of fixed-size integers only (Tgetattr, Tread, Tclunk…) decode in one call.
        self.simple = (
            steps[0][1] if (len(steps) == 1 and steps[0][0] == "fixed" and "Q" not in steps[0][2]) else None
        )


_COMPILED = {mtype: _Layout(fields) for mtype, fields in LAYOUTS.items()}


def _read_counted(
    buf: memoryview, pos: int, end: int, count: struct.Struct, what: str
) -> tuple[memoryview, int]:
    """A length-prefixed field (``s`` with a u16 count, ``D`` with a u32 one), checked against end."""
    if pos + count.size > end:
        raise ProtocolError(errno.EPROTO, f"{what} length past end of frame")
    (n,) = count.unpack_from(buf, pos)
    pos += count.size
    if pos + n > end:
        raise ProtocolError(errno.EPROTO, f"{what} past end of frame")
    return buf[pos : pos + n], pos + n


def _read_u16(buf: memoryview, pos: int, end: int, what: str) -> tuple[int, int]:
    """A u16 count (of names, of qids), checked against end."""
    if pos + 2 > end:
        raise ProtocolError(errno.EPROTO, f"{what} past end of frame")
    return _U16.unpack_from(buf, pos)[0], pos + 2


def _read_string(buf: memoryview, pos: int, end: int) -> tuple[str, int]:
    raw, pos = _read_counted(buf, pos, end, _U16, "string")
    # surrogateescape: any bytes decode, and names round-trip byte for byte.
    return str(raw, "utf-8", "surrogateescape"), pos


def decode_body(mtype: int, buf: memoryview, pos: int, end: int) -> tuple[Any, ...]:
    """Decode the fields of message ``mtype`` from ``buf[pos:end]``; the body must fill it exactly.

    ``D`` fields come back as memoryviews into ``buf`` (no copy); strings as ``str`` (undecodable
    bytes kept through ``surrogateescape`` so names round-trip byte for byte).
    """
    layout = _COMPILED.get(mtype)
    if layout is None:
        raise ProtocolError(errno.EOPNOTSUPP, f"unknown message type {mtype}")
    simple = layout.simple
    if simple is not None:
        if pos + simple.size != end:
            raise ProtocolError(errno.EPROTO, "frame size does not match the message")
        return simple.unpack_from(buf, pos)
    values: list[Any] = []
    for kind, st, codes in layout.steps:
        if kind == "fixed":
            if pos + st.size > end:
                raise ProtocolError(errno.EPROTO, "frame too short")
            raw = st.unpack_from(buf, pos)
            pos += st.size
            if "Q" in codes:
                i = 0
                for c in codes:
                    if c == "Q":
                        values.append(Qid(raw[i], raw[i + 1], raw[i + 2]))
                        i += 3
                    else:
                        values.append(raw[i])
                        i += 1
            else:
                values.extend(raw)
        elif kind == "s":
            s, pos = _read_string(buf, pos, end)
            values.append(s)
        elif kind == "D":
            data, pos = _read_counted(buf, pos, end, _U32, "data")
            values.append(data)
        elif kind == "S":
            n, pos = _read_u16(buf, pos, end, "name count")
            if n > MAX_WALK:
                raise ProtocolError(errno.EINVAL, "more than 16 names in a walk")
            names = []
            for _ in range(n):
                s, pos = _read_string(buf, pos, end)
                names.append(s)
            values.append(names)
        elif kind == "Z":
            n, pos = _read_u16(buf, pos, end, "qid count")
            if pos + 13 * n > end:
                raise ProtocolError(errno.EPROTO, "qids past end of frame")
            qids = [Qid(*_QID.unpack_from(buf, pos + 13 * i)) for i in range(n)]
            pos += 13 * n
            values.append(qids)
        else:  # pragma: no cover - table error
            raise AssertionError(kind)
    if pos != end:
        raise ProtocolError(errno.EPROTO, "trailing bytes after message body")
    return tuple(values)


def decode(
    frame: bytes | bytearray | memoryview, msize: int = 0xFFFFFFFF
) -> tuple[int, int, tuple[Any, ...]]:
    """Decode one whole frame into ``(type, tag, fields)``.

    Bytes past the size field are ignored (transports may pad); a size field that is smaller than
    the header, larger than the frame or larger than ``msize`` is an error.
    """
    buf = memoryview(frame)
    if buf.ndim != 1 or buf.itemsize != 1:
        buf = buf.cast("B")
    if len(buf) < HEADER_SIZE:
        raise ProtocolError(errno.EPROTO, "frame shorter than a header")
    size, mtype, tag = HEADER.unpack_from(buf, 0)
    if size < HEADER_SIZE or size > len(buf):
        raise ProtocolError(errno.EPROTO, f"size field {size} does not match frame of {len(buf)} bytes")
    if size > msize:
        raise ProtocolError(errno.EMSGSIZE, f"frame of {size} bytes exceeds msize {msize}")
    if mtype & 1:
        raise ProtocolError(errno.EOPNOTSUPP, f"message type {mtype} is a reply")
    return mtype, tag, decode_body(mtype, buf, HEADER_SIZE, size)


def _encode_string(s: str | bytes) -> bytes:
    b = s if isinstance(s, (bytes, bytearray)) else s.encode("utf-8", "surrogateescape")
    if len(b) > 0xFFFF:
        raise ProtocolError(errno.ENAMETOOLONG, "string longer than 65535 bytes")
    return _U16.pack(len(b)) + b


def encode(mtype: int, tag: int, *values: Any) -> bytes:
    """Encode one frame from field values in table order (qids as Qid or 3-tuples)."""
    layout = _COMPILED[mtype]
    parts: list[Any] = [b""]
    vi = 0
    for kind, st, codes in layout.steps:
        if kind == "fixed":
            flat: list[int] = []
            for c in codes:
                v = values[vi]
                vi += 1
                if c == "Q":
                    flat.extend(v)
                else:
                    flat.append(v)
            parts.append(st.pack(*flat))
        elif kind == "s":
            parts.append(_encode_string(values[vi]))
            vi += 1
        elif kind == "D":
            data = values[vi]
            vi += 1
            parts.append(_U32.pack(len(data)))
            parts.append(data)
        elif kind == "S":
            names = values[vi]
            vi += 1
            parts.append(_U16.pack(len(names)))
            parts.extend(_encode_string(n) for n in names)
        elif kind == "Z":
            qids = values[vi]
            vi += 1
            parts.append(_U16.pack(len(qids)))
            parts.extend(_QID.pack(*q) for q in qids)
        else:  # pragma: no cover
            raise AssertionError(kind)
    if vi != len(values):
        raise TypeError(f"{T(mtype).name} takes {vi} fields, got {len(values)}")
    size = HEADER_SIZE + sum(len(p) for p in parts)
    parts[0] = HEADER.pack(size, mtype, tag)
    return b"".join(parts)


def frame_struct(mtype: int) -> struct.Struct:
    """The whole frame of a message whose fields all have fixed sizes (Rgetattr, Rlopen, Rwrite…)
    as one compiled struct: ``pack(size, type, tag, *fields)`` with a qid as three fields. Replies
    built this way come from the same table as everything else, so they cannot drift from it."""
    steps = _COMPILED[mtype].steps
    if any(kind != "fixed" for kind, _, _ in steps):
        raise ValueError(f"{T(mtype).name} has variable-size fields: use head_struct")
    return struct.Struct(HEADER.format + "".join(st.format.lstrip("<") for _, st, _ in steps))


def head_struct(mtype: int) -> struct.Struct:
    """The frame up to the payload of a message that ends in one counted field (Rread's and
    Rreaddir's ``D``, Rwalk's ``Z``): size, type, tag, the fixed fields, and the count."""
    steps = _COMPILED[mtype].steps
    fixed = "".join(st.format.lstrip("<") for kind, st, _ in steps[:-1])
    last = steps[-1][0]
    if last not in _COUNT or any(kind != "fixed" for kind, _, _ in steps[:-1]):
        raise ValueError(f"{T(mtype).name} does not end in one counted field")
    return struct.Struct(HEADER.format + fixed + _COUNT[last])


_COUNT = {"D": "I", "Z": "H", "S": "H"}


def field_names(mtype: int) -> tuple[str, ...]:
    """Names of a message's fields, in order."""
    return _COMPILED[mtype].names


def lerror(tag: int, host_errno: int | None) -> bytes:
    """An Rlerror frame for an error raised on this host (translated to Linux's number)."""
    return _RLERROR.pack(11, T.Rlerror, tag, linux_errno(host_errno))


_RLERROR = struct.Struct("<IBHI")

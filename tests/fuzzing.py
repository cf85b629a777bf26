"""Frame generators shared by the fuzz test (in the suite) and bench/fuzz_long.py (outside it).

Frames are grammar-based (the protocol's layout table) with plausible values or, in any integer
field, boundary values (0, 1, 2**31, 2**32-1, 2**63, 2**64-1, the largest file offset, msize…),
then some are mutated byte-wise, truncated or extended; a few are pure noise. The server keeps state between frames, so
later frames hit fids, files and locks made by earlier ones.
"""

from __future__ import annotations

import random
import struct

from pyninep_browser import protocol
from pyninep_browser.protocol import LAYOUTS

FID_FIELDS = {"fid", "newfid", "dfid", "dirfd", "olddirfid", "newdirfid"}
NAMES = ["a", "b", "d", "..", ".", "", "x" * 255, "x" * 256, "a/b", "user.x", "security.capability",
         "trusted.t", "system.posix_acl_access", "\udcff", "é"]
REQUESTS = [t for t in LAYOUTS if t % 2 == 0]
ON_A_FID = [protocol.T.Tread, protocol.T.Twrite, protocol.T.Treaddir, protocol.T.Tsetattr,
            protocol.T.Tlock, protocol.T.Tgetlock, protocol.T.Tfsync, protocol.T.Txattrwalk,
            protocol.T.Tlcreate, protocol.T.Tmkdir, protocol.T.Tmknod, protocol.T.Tsymlink]


MSIZE = 65536  # what frames() negotiates
MAX_FILE_SIZE = 1 << 40  # the filesystem's default largest offset
# Edge values for every integer width: byte mutation almost never yields a well-formed frame that
# carries one of these, so the generator puts them in on purpose.
BOUNDARIES = {
    "b": [0, 1, 0x7F, 0x80, 0xFF],
    "w": [0, 1, 0x7FFF, 0x8000, 0xFFFF],
    "d": [0, 1, 2, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, MSIZE - 24, MSIZE - 11, MSIZE, MSIZE + 1],
    "q": [0, 1, (1 << 31), (1 << 32) - 1, 1 << 32, (1 << 63) - 1, 1 << 63, (1 << 64) - 1,
          MAX_FILE_SIZE - 1, MAX_FILE_SIZE, MAX_FILE_SIZE + 1, MSIZE],
}


def _value(rng: random.Random, name: str, code: str, edges: float = 0.0):
    if code in BOUNDARIES and name not in FID_FIELDS and name != "afid" and rng.random() < edges:
        return rng.choice(BOUNDARIES[code])
    if name in FID_FIELDS:
        return rng.choice([0, 1, 2, 3, 4, 5, rng.randrange(1 << 32)])
    if name == "afid":
        return rng.choice([protocol.NOFID, 0, 7])
    if code == "b":
        return rng.choice([0, 1, 2, 3, rng.randrange(256)])
    if code == "w":
        return rng.randrange(1 << 16)
    if code == "d":
        return rng.choice([0, 1, 2, 0o644, 0o100644, 0o40755, 0o10600, 0o20666, 0o140755, 0x200,
                           0o2002, 0o1101, 8192, 1 << 20, rng.randrange(1 << 32)])
    if code == "q":
        return rng.choice([0, 1, 4096, 65536, 1 << 40, (1 << 64) - 1, 1 << 63, 0x3FFF, rng.randrange(1 << 64)])
    if code == "s":
        return rng.choice(NAMES)
    if code == "D":
        return rng.choice([b"", b"data", bytes(rng.randrange(5000))])
    if code == "S":
        return [rng.choice(NAMES[:6]) for _ in range(rng.choice([0, 1, 2, 3, 16]))]
    if code == "Q":
        return (0, 0, 0)
    if code == "Z":
        return []
    raise AssertionError(code)


def frames(seed: int, edges: float = 0.3):
    """An endless stream of request frames; ``edges``: how often an integer field carries a
    boundary value (:data:`BOUNDARIES`) instead of a plausible one."""
    rng = random.Random(seed)
    T = protocol.T
    start = [protocol.encode(T.Tversion, protocol.NOTAG, MSIZE, "9P2000.L"),
             protocol.encode(T.Tattach, 1, 0, protocol.NOFID, "root", "", 0)]
    yield from start
    while True:
        roll = rng.random()
        if roll < 0.03:
            yield bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
            continue
        if roll > 0.9:
            # A well-formed step towards deep state (open files, directories, xattr fids), so
            # that the boundary values below land on fids that can take them.
            fid, tag = rng.randrange(1, 6), rng.randrange(0xFFFF)
            name = rng.choice(NAMES[:3])
            yield protocol.encode(T.Tattach, tag, 0, protocol.NOFID, "root", "", 0)  # if clunked
            yield protocol.encode(T.Tclunk, tag, fid)
            yield protocol.encode(T.Twalk, tag, 0, fid, [])
            if rng.random() < 0.7:  # a file, made if missing, open for I/O
                yield protocol.encode(T.Tlcreate, tag, fid, name, 2, 0o644, 0)
                yield protocol.encode(T.Tclunk, tag, fid)
                yield protocol.encode(T.Twalk, tag, 0, fid, [name])
                yield protocol.encode(T.Tlopen, tag, fid, rng.choice([0, 1, 2, 0o2002]))
            elif rng.random() < 0.5:  # a directory, open for readdir
                yield protocol.encode(T.Tlopen, tag, fid, 0o200000)
            # ...and then a request on that fid, with boundary values in its other fields.
            mtype = rng.choice(ON_A_FID)
            fields = [fid if n == "fid" else _value(rng, n, c, edges) for n, c in LAYOUTS[mtype]]
            yield protocol.encode(mtype, tag, *fields)
            continue
        mtype = rng.choice(REQUESTS)
        if mtype == T.Tversion:
            if rng.random() < 0.9:
                mtype = T.Twalk  # a reset every frame would keep the state shallow
            else:
                yield from start  # a reset, and a session again
                continue
        fields = [_value(rng, n, c, edges) for n, c in LAYOUTS[mtype]]
        try:
            frame = bytearray(protocol.encode(mtype, rng.randrange(0xFFFF), *fields))
        except protocol.ProtocolError:
            continue
        if roll < 0.15:
            for _ in range(rng.randrange(1, 4)):
                frame[rng.randrange(len(frame))] = rng.randrange(256)
        elif roll < 0.2:
            frame = frame[:rng.randrange(len(frame) + 1)]
        elif roll < 0.23:
            frame += bytes(rng.randrange(1, 9))
            if rng.random() < 0.5:
                struct.pack_into("<I", frame, 0, len(frame))
        yield bytes(frame)


def check_reply(frame: bytes, reply: bytes | None) -> None:
    """A reply is well-formed: its size is its length, it carries the tag, its type fits."""
    if len(frame) < 7:
        assert reply is None
        return
    assert reply is not None, "no reply to a frame with a tag"
    size, rtype, tag = struct.unpack_from("<IBH", reply)
    assert size == len(reply)
    assert tag == struct.unpack_from("<H", frame, 5)[0]
    assert rtype == protocol.T.Rlerror or rtype == frame[4] + 1
    if rtype == protocol.T.Rlerror:
        assert size == 11
    else:
        protocol.decode_body(rtype, memoryview(reply), 7, size)  # the reply decodes exactly

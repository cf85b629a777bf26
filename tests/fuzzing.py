"""Frame generators shared by the fuzz test (in the suite) and bench/fuzz_long.py (outside it).

Frames are grammar-based (the protocol's layout table) with plausible values, then some are mutated
byte-wise, truncated or extended; a few are pure noise. The server keeps state between frames, so
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


def _value(rng: random.Random, name: str, code: str):
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


def frames(seed: int):
    """An endless stream of request frames."""
    rng = random.Random(seed)
    yield protocol.encode(protocol.T.Tversion, protocol.NOTAG, 65536, "9P2000.L")
    yield protocol.encode(protocol.T.Tattach, 1, 0, protocol.NOFID, "root", "", 0)
    while True:
        roll = rng.random()
        if roll < 0.03:
            yield bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
            continue
        mtype = rng.choice(REQUESTS)
        if mtype == protocol.T.Tversion and rng.random() < 0.9:
            mtype = protocol.T.Twalk  # a reset every frame would keep the state shallow
        fields = [_value(rng, n, c) for n, c in LAYOUTS[mtype]]
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

"""The wire codec: every layout round-trips, agrees byte for byte with an independent encoder, and
malformed frames raise only ProtocolError."""

import random
import struct

import pytest

from ninep_client import Client
from pyninep_browser import protocol as p
from pyninep_browser.protocol import LAYOUTS, ProtocolError, Qid, T

SAMPLES = {"b": 0xAB, "w": 0xBEEF, "d": 0xDEADBEEF, "q": 0x0123456789ABCDEF, "s": "näme/\udcff",
           "Q": Qid(0x80, 7, 42), "D": b"\x00data\xff", "S": ["a", "..", "ü"],
           "Z": [Qid(0, 1, 2), Qid(0x80, 0, 3)]}


def sample(mtype):
    return tuple(SAMPLES[code] for _, code in LAYOUTS[mtype])


@pytest.mark.parametrize("mtype", sorted(LAYOUTS), ids=lambda t: T(t).name)
def test_every_layout_round_trips(mtype):
    values = sample(mtype)
    frame = p.encode(mtype, 0x1234, *values)
    assert struct.unpack_from("<IBH", frame) == (len(frame), mtype, 0x1234)
    decoded = p.decode_body(mtype, memoryview(frame), 7, len(frame))
    assert [bytes(v) if isinstance(v, memoryview) else v for v in decoded] == list(values)
    assert p.field_names(mtype) == tuple(name for name, _ in LAYOUTS[mtype])


def test_every_9p2000l_message_is_in_the_table():
    names = {T(t).name for t in LAYOUTS}
    for base in ["statfs", "lopen", "lcreate", "symlink", "mknod", "rename", "readlink", "getattr",
                 "setattr", "xattrwalk", "xattrcreate", "readdir", "fsync", "lock", "getlock", "link",
                 "mkdir", "renameat", "unlinkat", "version", "auth", "attach", "flush", "walk",
                 "read", "write", "clunk", "remove"]:
        assert "T" + base in names and "R" + base in names, base
    assert "Rlerror" in names


class Capture:
    """Stands in for a server: records the frame an independent client sends."""

    def __init__(self):
        self.frames = []

    def handle(self, frame):
        self.frames.append(frame)
        size, mtype, tag = struct.unpack_from("<IBH", frame)
        return struct.pack("<IBHI", 11, 7, tag, 5)  # Rlerror: the client raises, we keep the frame


def test_requests_match_an_independent_encoder_byte_for_byte():
    cap = Capture()
    c = Client(cap, attach=False)
    calls = [
        (T.Tversion, lambda: c.version(8192), (8192, "9P2000.L")),
        (T.Tattach, lambda: c.attach(3, uid=1000, uname="u", aname="/x"), (3, p.NOFID, "u", "/x", 1000)),
        (T.Twalk, lambda: c.walk(1, 2, ["a", "b"]), (1, 2, ["a", "b"])),
        (T.Tlcreate, lambda: c.lcreate(1, "f", 2, 0o644, 7), (1, "f", 2, 0o644, 7)),
        (T.Twrite, lambda: c.write(1, 10, b"xyz"), (1, 10, b"xyz")),
        (T.Tread, lambda: c.read(1, 10, 99), (1, 10, 99)),
        (T.Treaddir, lambda: c.readdir(1, 5, 100), (1, 5, 100)),
        (T.Tgetattr, lambda: c.getattr(1, 0x7FF), (1, 0x7FF)),
        (T.Tsetattr, lambda: c.setattr(1, 0x1FF, 1, 2, 3, 4, (5, 6), (7, 8)), (1, 0x1FF, 1, 2, 3, 4, 5, 6, 7, 8)),
        (T.Tmkdir, lambda: c.mkdir(1, "d", 0o700, 9), (1, "d", 0o700, 9)),
        (T.Tsymlink, lambda: c.symlink(1, "s", "t", 9), (1, "s", "t", 9)),
        (T.Tmknod, lambda: c.mknod(1, "n", 0o20666, 1, 3, 9), (1, "n", 0o20666, 1, 3, 9)),
        (T.Trenameat, lambda: c.renameat(1, "a", 2, "b"), (1, "a", 2, "b")),
        (T.Tunlinkat, lambda: c.unlinkat(1, "a", 0x200), (1, "a", 0x200)),
        (T.Tlock, lambda: c.lock(1, 1, 2, 3, 4, "cid", 1), (1, 1, 1, 2, 3, 4, "cid")),
        (T.Tgetlock, lambda: c.getlock(1, 0, 2, 3, 4, "cid"), (1, 0, 2, 3, 4, "cid")),
        (T.Txattrcreate, lambda: c.xattrcreate(1, "user.a", 5, 1), (1, "user.a", 5, 1)),
        (T.Tstatfs, lambda: c.statfs(1), (1,)),
        (T.Tclunk, lambda: c.clunk(1), (1,)),
    ]
    for mtype, do, fields in calls:
        cap.frames.clear()
        with pytest.raises(OSError):
            do()
        sent = cap.frames[0]
        tag = struct.unpack_from("<H", sent, 5)[0]
        assert sent == p.encode(mtype, tag, *fields), T(mtype).name
        got_type, got_tag, got = p.decode(sent)
        assert (got_type, got_tag) == (mtype, tag)


def test_malformed_frames_raise_only_protocol_error():
    rng = random.Random(5)
    good = [p.encode(t, 1, *sample(t)) for t in LAYOUTS if t % 2 == 0]
    for _ in range(20000):
        frame = bytearray(rng.choice(good))
        action = rng.randrange(4)
        if action == 0:
            frame = frame[:rng.randrange(len(frame))]
        elif action == 1:
            frame[rng.randrange(len(frame))] = rng.randrange(256)
        elif action == 2:
            frame += bytes(rng.randrange(1, 5))
            struct.pack_into("<I", frame, 0, len(frame))
        else:
            frame = bytearray(rng.randbytes(rng.randrange(30)))
        try:
            p.decode(bytes(frame), msize=8192)
        except ProtocolError as exc:
            assert exc.errno > 0
    with pytest.raises(ProtocolError):
        p.decode(p.encode(T.Tversion, 1, 8192, "x" * 9000), msize=8192)


def test_walk_of_more_than_16_names_is_a_protocol_error():
    frame = p.encode(T.Twalk, 1, 0, 1, ["a"] * 17)
    with pytest.raises(ProtocolError):
        p.decode(frame)

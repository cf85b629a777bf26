"""Mutated, random and boundary-valued frames: nothing escapes handle(), nothing fails inside it,
every reply is well-formed, and the server still works afterwards. (bench/fuzz_long.py runs the
same generator for a million frames.)"""

import collections
import itertools
import logging

from fuzzing import check_reply, frames
from ninep_client import Client
from pyninep_browser import Server, protocol


def test_five_thousand_hostile_frames_leave_a_working_server(caplog):
    server = Server()
    answered = collections.Counter()
    with caplog.at_level(logging.ERROR, logger="pyninep_browser"):
        for frame in itertools.islice(frames(seed=20261125), 5000):
            reply = server.handle(frame)
            check_reply(frame, reply)
            if reply is not None and reply[4] != protocol.T.Rlerror:
                answered[reply[4] - 1] += 1
    assert not caplog.records, "a handler raised internally: " + caplog.text[:2000]
    # The generator reaches deep state: open files take reads, writes, locks and setattrs with
    # boundary values, not only EBADF for fids that were never opened.
    for mtype in (protocol.T.Twrite, protocol.T.Tread, protocol.T.Tsetattr, protocol.T.Tlock,
                  protocol.T.Treaddir, protocol.T.Tlcreate):
        assert answered[mtype] >= 5, (mtype.name, answered[mtype])
    c = Client(server)  # a fresh, normal session still works
    f = c.fid()
    c.walk(0, f, [])
    c.lcreate(f, "after-fuzz", 2, 0o644)
    assert c.write(f, 0, b"ok") == 2 and c.read(f, 0, 2) == b"ok"

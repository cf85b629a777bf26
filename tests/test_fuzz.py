"""Mutated and random frames: nothing escapes handle(), every reply is well-formed, and the
server still works afterwards. (bench/fuzz_long.py runs the same generator for a million frames.)"""

import itertools
import logging

from fuzzing import check_reply, frames
from ninep_client import Client
from pyninep_browser import Server


def test_five_thousand_hostile_frames_leave_a_working_server(caplog):
    server = Server()
    with caplog.at_level(logging.ERROR, logger="pyninep_browser"):
        for frame in itertools.islice(frames(seed=20261125), 5000):
            check_reply(frame, server.handle(frame))
    assert not caplog.records, "a handler raised internally: " + caplog.text[:2000]
    c = Client(server)  # a fresh, normal session still works
    f = c.fid()
    c.walk(0, f, [])
    c.lcreate(f, "after-fuzz", 2, 0o644)
    assert c.write(f, 0, b"ok") == 2 and c.read(f, 0, 2) == b"ok"

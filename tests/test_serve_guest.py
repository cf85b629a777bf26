"""The real guest on v86's own ``proxy_url``: its root filesystem lives on ``serve --ws``.

One server for the module, serving the default image; guest A boots from it (with a session id, so
its session survives a dropped socket), runs the usual scenarios, and a second guest, booted from
the same server, sees A's files. The independent 9P client watches over TCP (tests/ninep_client.py).
"""

from __future__ import annotations

import pytest
from guest import DIST, Guest
from serving import Serve, wait_for

WRLCK, SUCCESS, BLOCKED = 1, 0, 1


@pytest.fixture(scope="module")
def served():
    image = DIST / "images" / "default.img"
    if not image.is_file():
        pytest.skip("dist/ is not built: run ./build.sh")
    s = Serve("--ws", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--image", str(image))
    yield s
    assert s.stop() == 0, s.stderr


@pytest.fixture(scope="module")
def guest(served):
    g = Guest("--proxy", served.ws + "?session=guest-a")
    yield g
    g.close()


def test_the_guest_boots_with_its_root_on_the_server(guest):
    out = guest.sh("mount; cat /etc/hostname")
    assert "host9p on / type 9p" in out and "pyninep" in out


def test_files_written_in_the_guest_are_on_the_server(guest, served):
    guest.sh(
        "mkdir -p /root/d/e && printf 'from guest a\\n' > /root/d/e/f && mv /root/d/e/f /root/d/g"
        " && ln /root/d/g /root/d/h && ln -s g /root/d/s && cat /root/d/s"
    )
    c = served.client()
    f = c.walk_new("root/d/h")
    c.lopen(f, 0)
    assert c.read(f, 0, 100) == b"from guest a\n"
    out = guest.sh(
        "dd if=/dev/urandom of=/root/big bs=1M count=3 2>/dev/null; sync;"
        " md5sum /root/big | cut -d' ' -f1; stat -c %s /root/big"
    )
    assert out.split()[1] == str(3 << 20)


# 9p turns flock() into a whole-file POSIX lock, released when the locking process exits: a
# process that stays (flock running sleep) holds it.
HOLD = (
    "rm -f /root/holding; flock -x {path} sh -c 'touch /root/holding; exec sleep 600' >/dev/null 2>&1 &"
    " echo $! > /root/holder; while [ ! -e /root/holding ]; do sleep 0.1; done"
)
RELEASE = "kill $(cat /root/holder); wait 2>/dev/null; true"


def blocked_by_the_guest(served, path: str) -> tuple:
    """Another client opens ``path`` and finds the guest's lock on it: (that client, its fid)."""
    c = served.client()
    f = c.walk_new(path)
    c.lopen(f, 2)
    assert c.lock(f, WRLCK, 0, 0) == BLOCKED
    return c, f


def test_locks_between_the_guest_and_another_client(guest, served):
    guest.sh("echo lockme > /root/locked; " + HOLD.format(path="/root/locked"))
    c, f = blocked_by_the_guest(served, "root/locked")
    guest.sh(RELEASE)
    wait_for(lambda: c.lock(f, WRLCK, 0, 0) == SUCCESS)
    status, _ = guest.run("flock -n -x /root/locked true")
    assert status != 0  # now the other client holds it
    c.lock(f, 2, 0, 0)


def test_a_dropped_socket_resumes_with_the_open_fd_and_the_lock(guest, served):
    guest.sh("printf 'first\\n' > /root/held; exec 3<>/root/held; " + HOLD.format(path="/root/held"))
    c, f = blocked_by_the_guest(served, "root/held")
    before = guest.request("sockets")["sockets"]
    assert guest.request("dropSocket")["ok"]
    # the guest's next request finds the socket gone; v86 opens a new one with the same URL
    out = guest.sh("cat <&3; echo second >&3; cat /root/held", timeout=60)
    assert out == "first\nfirst\nsecond\n"
    assert guest.request("sockets")["sockets"] == before + 1
    assert c.lock(f, WRLCK, 0, 0) == BLOCKED  # still the guest's
    guest.sh("exec 3>&-; " + RELEASE)
    wait_for(lambda: c.lock(f, WRLCK, 0, 0) == SUCCESS)


def test_a_saved_machine_restored_against_the_server_reads_its_open_file(guest, served):
    guest.sh("printf 'one\\n' > /root/saved; exec 4<>/root/saved")
    before = guest.request("sockets")["sockets"]
    guest.request("restoreV86", wait=180)
    assert guest.sh("cat <&4; echo two >&4; cat /root/saved; exec 4>&-") == "one\none\ntwo\n"
    assert guest.request("sockets")["sockets"] > before  # a new emulator, a new socket, the same session


def test_a_second_guest_sees_the_first_ones_files(guest, served):
    """The second guest runs as the page does in server mode (createServer({server}): the shim
    forwards handle9p over its own socket, and the harness writes its scripts through the page's
    9P client in pyninep-remote.js)."""
    guest.sh("echo 'left by guest a' > /root/note; sync")
    second = Guest("--server", served.ws)
    try:
        assert second.sh("cat /root/note /root/d/h") == "left by guest a\nfrom guest a\n"
        second.sh("echo 'and guest b' >> /root/note")
        assert second.read_file("/root/note") == b"left by guest a\nand guest b\n"
        second.write_file("/root/from-b", b"x" * 200_000)
        assert guest.sh("wc -c < /root/from-b") == "200000\n"
    finally:
        second.close()
    assert guest.sh("cat /root/note") == "left by guest a\nand guest b\n"

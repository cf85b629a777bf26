"""Snapshots: a filesystem image and a whole server (with open fids) survive a round trip."""

import random
import stat

import pytest

from pyninep_browser import Filesystem, Server, protocol as p, snapshot
from pyninep_browser.protocol import NOFID, T
from pyninep_browser.snapshot import SnapshotError


def rpc(server, mtype, *fields, tag=1):
    reply = server.handle(p.encode(mtype, tag, *fields))
    rtype = reply[4]
    values = p.decode_body(rtype, memoryview(reply), 7, len(reply))
    if rtype == T.Rlerror:
        raise OSError(values[0], "Rlerror")
    assert rtype == mtype + 1
    return values


def build_tree(busybox_kib: int = 250) -> Filesystem:
    fs = Filesystem(quota_bytes=64 << 20)
    fs.write_file("/etc/hostname", b"guest\n")
    fs.add_symlink("/bin/sh", "busybox")
    fs.write_file("/bin/busybox", b"\x7fELF" + bytes(range(256)) * (busybox_kib * 4), mode=0o755)
    fs.add_hardlink("/bin/ls", "/bin/busybox")
    fs.add_node("/dev/null", stat.S_IFCHR | 0o666, rdev=0x103)
    fs.add_node("/run/fifo", stat.S_IFIFO | 0o600)
    f = fs.write_file("/sparse", b"")
    fs.write(f, 5 << 20, b"tail")
    fs.setxattr(fs.resolve("/bin/busybox"), "security.capability", b"\x01\x02")
    fs.setxattr(fs.resolve("/etc/hostname"), "user.note", "héllo".encode())
    fs.write_file("/odd/\udcff-name", b"surrogate-escaped name")
    return fs


def test_filesystem_image_round_trips_every_kind_of_file():
    fs = build_tree()
    again = snapshot.load_filesystem(snapshot.save_filesystem(fs))
    assert again.read_file("/etc/hostname") == b"guest\n"
    assert again.read_file("/bin/sh") == fs.read_file("/bin/busybox")
    assert again.resolve("/bin/ls") is again.resolve("/bin/busybox")
    assert again.resolve("/bin/ls").nlink == 2
    assert again.resolve("/dev/null").rdev == 0x103
    assert stat.S_ISFIFO(again.resolve("/run/fifo").mode)
    sparse = again.resolve("/sparse")
    assert sparse.size == (5 << 20) + 4 and sparse.allocated < 70_000
    assert again.getxattr(again.resolve("/bin/busybox"), "security.capability") == b"\x01\x02"
    assert again.read_file("/odd/\udcff-name") == b"surrogate-escaped name"
    assert again.used_bytes == fs.used_bytes and again.used_inodes == fs.used_inodes
    assert again.fsid == fs.fsid and again.quota_bytes == fs.quota_bytes
    for ino, inode in fs.inodes.items():
        other = again.inodes[ino]
        assert (other.mode, other.uid, other.gid, other.size, other.mtime, other.ctime) == (
            inode.mode, inode.uid, inode.gid, inode.size, inode.mtime, inode.ctime)
    new = again.create(again.root, "new", 0o644)
    assert new.ino not in fs.inodes


def test_server_state_keeps_open_fids_and_an_unlinked_open_file():
    server = Server(build_tree())
    rpc(server, T.Tversion, 65536, "9P2000.L", tag=p.NOTAG)
    rpc(server, T.Tattach, 0, NOFID, "root", "", 0)
    rpc(server, T.Twalk, 0, 1, [])
    rpc(server, T.Tlcreate, 1, "open-and-gone", 2, 0o644, 0)
    rpc(server, T.Twrite, 1, 0, b"still here")
    rpc(server, T.Tunlinkat, 0, "open-and-gone", 0)
    rpc(server, T.Twalk, 0, 2, ["etc"])
    rpc(server, T.Tlopen, 2, 0)
    (data,) = rpc(server, T.Treaddir, 2, 0, 60)  # read part of the directory
    cookie = int.from_bytes(bytes(data[13:21]), "little")
    rpc(server, T.Tlock, 1, 1, 0, 0, 0, 42, "guest")

    restored = snapshot.restore(snapshot.save(server))
    (got,) = rpc(restored, T.Tread, 1, 0, 100)
    assert bytes(got) == b"still here"
    rpc(restored, T.Twrite, 1, 10, b" and writable")
    (rest,) = rpc(restored, T.Treaddir, 2, cookie, 8192)
    assert b"hostname" in bytes(rest) and restored.msize == 65536
    (status,) = rpc(restored, T.Tlock, 1, 1, 0, 0, 0, 43, "guest")
    assert status == p.LockStatus.BLOCKED  # the lock travelled too
    used = restored.fs.used_inodes
    rpc(restored, T.Tclunk, 1)
    assert restored.fs.used_inodes == used - 1  # last holder gone: the file is freed


def test_corrupt_or_foreign_bytes_are_refused_with_snapshot_error():
    good = snapshot.save_filesystem(build_tree())
    for bad in (b"", b"hello world", good[:20], good[:-5000], b"PYNINEP\0" + b"\xff" * 20):
        with pytest.raises(SnapshotError):
            snapshot.load_filesystem(bad)
    with pytest.raises(SnapshotError):
        snapshot.restore(good)  # a filesystem image is not a server state
    rng = random.Random(7)
    for _ in range(200):
        mutated = bytearray(good)
        for _ in range(3):
            mutated[rng.randrange(16, 400)] = rng.randrange(256)
        try:
            snapshot.load_filesystem(bytes(mutated))
        except SnapshotError:
            pass


DATA = __import__("pathlib").Path(__file__).parent / "data"


def test_states_saved_in_format_2_still_restore():
    """tests/data/state-v2.* were saved by the format-2 code (fids as positional lists); they
    restore whole: files, fids in their states (open, xattr read, xattr write), locks."""
    fs = snapshot.load_filesystem((DATA / "state-v2.filesystem").read_bytes())
    assert fs.read_file("/etc/hostname") == b"guest\n"
    assert fs.resolve("/bin/ls") is fs.resolve("/bin/busybox")
    server = snapshot.restore((DATA / "state-v2.server").read_bytes())
    assert server.version == "9P2000.L" and server.msize == 65536
    assert rpc(server, T.Tread, 2, 0, 100) == (b"guest\n",)  # fid 2 is still open
    assert rpc(server, T.Tread, 4, 0, 100) == ("héllo".encode(),)  # an xattr being read
    rpc(server, T.Twrite, 5, 2, b"c")  # an xattr being written: committed at clunk
    rpc(server, T.Tclunk, 5)
    assert server.fs.getxattr(server.fs.resolve("/run"), "user.pending") == b"abc"
    locks = server.fs.locks[server.fs.resolve("/etc/hostname").ino]
    assert [(lk.start, lk.end, lk.type) for lk in locks] == [(0, 9, 1)]
    again, report = snapshot.restore_session((DATA / "state-v2.session").read_bytes(),
                                             snapshot.restore((DATA / "state-v2.server").read_bytes()).fs)
    assert report == {"fids": 5, "stale": []}
    assert rpc(again, T.Tread, 2, 0, 100) == (b"guest\n",)


def test_a_state_in_todays_format_names_every_field():
    """Format 3: a fid is a named record with its state; an inode's times are named too."""
    import json
    server = snapshot.restore((DATA / "state-v2.server").read_bytes())
    data = snapshot.save(server)
    assert int.from_bytes(data[8:12], "little") == snapshot.FORMAT == 3
    hlen = int.from_bytes(data[16:24], "little")
    header = json.loads(data[36:36 + hlen])
    states = {r["fid"]: r["state"] for r in header["fid_records"]}
    assert states == {1: "walked", 2: "open", 3: "walked", 4: "xattr-read", 5: "xattr-write"}
    assert {"atime", "mtime", "ctime", "btime"} <= set(header["inodes"][0])
    again = snapshot.restore(data)
    assert rpc(again, T.Tread, 2, 0, 100) == (b"guest\n",)

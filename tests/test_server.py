"""The 9P session, message by message, through an independent client (tests/ninep_client.py)."""

import errno
import stat
import struct

import pytest

from ninep_client import NOFID, Client, NinePError
from pyninep_browser import Filesystem, Server, protocol

O_RDONLY, O_WRONLY, O_RDWR = 0, 1, 2
O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_DIRECTORY = 0o100, 0o200, 0o1000, 0o2000, 0o200000
AT_REMOVEDIR = 0x200


@pytest.fixture
def server():
    return Server()


@pytest.fixture
def c(server):
    return Client(server)


def err(fn, *args, **kw) -> int:
    with pytest.raises(NinePError) as info:
        fn(*args, **kw)
    return info.value.errno


def new_file(c, name, data=b"", mode=0o644, parent=0):
    f = c.fid()
    c.walk(parent, f, [])
    c.lcreate(f, name, O_RDWR, mode)
    if data:
        c.write(f, 0, data)
    return f


# ----------------------------------------------------------------- session


def test_server_with_no_arguments_serves_an_empty_root_owned_by_root(c):
    st = c.getattr(0)
    assert stat.S_ISDIR(st.mode) and stat.S_IMODE(st.mode) == 0o755 and st.uid == 0
    d = c.fid()
    c.walk(0, d, [])
    c.lopen(d, O_RDONLY)
    assert c.readdir_all(d) == [".", ".."]


def test_every_request_before_tversion_is_refused_with_eproto_and_changes_nothing(server):
    """A session starts with Tversion: a client that skips it is not speaking 9P2000.L and must
    not get a fid (Linux's client always sends it first)."""
    server.fs.write_file("/f", b"x")
    c = Client(server, attach=False)
    assert err(c.attach, 0) == errno.EPROTO
    assert not server.fids
    for mtype, body in [(protocol.T.Twalk, struct.pack("<IIH", 0, 1, 0)),
                        (protocol.T.Tgetattr, struct.pack("<IQ", 0, 0x3FFF)),
                        (protocol.T.Tclunk, struct.pack("<I", 0)),
                        (protocol.T.Tflush, struct.pack("<H", 1)),
                        (protocol.T.Tstatfs, struct.pack("<I", 0)),
                        (protocol.T.Tlopen, struct.pack("<II", 0, 0))]:
        assert err(c.rpc, mtype, body) == errno.EPROTO
    c.version(8192, "9P2000.u")  # a version we do not speak leaves no session either
    assert err(c.attach, 0) == errno.EPROTO
    c.version(8192)
    c.attach(0)
    assert c.getattr(0).uid == 0


def test_xattrcreate_on_an_open_fid_is_refused_and_the_file_stays_open(c):
    f = new_file(c, "f", b"data")
    assert err(c.xattrcreate, f, "user.x", 1) == errno.EBADF
    assert c.read(f, 0, 10) == b"data"


def test_version_negotiates_msize_down_and_rejects_unknown_versions(server):
    c = Client(server, attach=False)
    assert c.version(1 << 30) == server.max_msize
    assert c.version(8192) == 8192
    c.version(8192, "9P2000.u")
    assert c.version_string == "unknown"
    c.version(8192, "9P2000.L")
    assert c.version_string == "9P2000.L"


def test_version_resets_the_session_and_clunks_every_fid(c):
    f = new_file(c, "f", b"data")
    c.version(65536)
    assert err(c.read, f, 0, 4) == errno.EBADF
    c.attach(0)
    assert c.getattr(0).qid[0] == 0x80


def test_auth_is_refused_and_attach_with_an_afid_fails(c):
    assert err(c.auth, 5) == errno.EOPNOTSUPP
    assert err(c.attach, 9, afid=5) == errno.EBADF


def test_attach_takes_uid_from_n_uname_and_groups_from_etc_group():
    fs = Filesystem()
    fs.write_file("/etc/passwd", "root:x:0:0::/root:/bin/sh\nann:x:1000:1000::/home/ann:/bin/sh\n")
    fs.write_file("/etc/group", "root:x:0:\nann:x:1000:\nstaff:x:50:ann\n")
    shared = fs.makedirs("/shared")
    fs.setattr(shared, gid=50, mode=0o770)
    c = Client(Server(fs, permissions="server"), uid=1000)
    d = c.walk_new("shared")  # only group 50 may enter: ann is in it through /etc/group
    q, _ = c.lcreate(d, "mine", O_RDWR, 0o640, 1000)
    assert c.getattr(d).uid == 1000


def test_attach_to_a_subtree_by_aname(server):
    server.fs.write_file("/exports/one/file", b"in one")
    c = Client(server, attach=False)
    c.version(65536)
    c.attach(1, aname="/exports/one")
    f = c.walk_new("file", start=1)
    c.lopen(f, O_RDONLY)
    assert c.read(f, 0, 100) == b"in one"
    assert err(c.attach, 2, aname="/missing") == errno.ENOENT


def test_dotdot_does_not_leave_the_attached_subtree(server):
    server.fs.write_file("/exports/one/sub/file", b"")
    server.fs.write_file("/secret", b"")
    c = Client(server, attach=False)
    c.version(65536)
    top = c.attach(1, aname="/exports/one")
    for names in (["..", ".."], ["sub", "..", ".."], ["sub", "..", "..", "sub", "..", ".."]):
        qids = c.walk(1, c.fid(), names)
        assert qids[-1] == top, names
    assert c.walk(1, c.fid(), ["..", "secret"]) == [top]  # a partial walk: no /secret above
    # The clone, a walked fid and an xattr fid carry the limit; so does a snapshot.
    clone = c.fid()
    c.walk(1, clone, [])
    assert c.walk(clone, c.fid(), [".."])[-1] == top
    from pyninep_browser import snapshot
    c.server = snapshot.restore(snapshot.save(server))
    assert c.walk(clone, c.fid(), [".."])[-1] == top
    # Attached at the root, ".." from the same directory goes up as usual.
    c.attach(2)
    one = c.walk_new("exports/one", start=2)
    assert c.walk(one, c.fid(), [".."])[-1] != top


def test_unknown_fid_and_fid_in_use(c):
    assert err(c.getattr, 4242) == errno.EBADF
    assert err(c.clunk, 4242) == errno.EBADF
    f = c.fid()
    c.walk(0, f, [])
    assert err(c.walk, 0, f, []) == errno.EBADF  # newfid in use
    assert err(c.attach, f) == errno.EBADF


def test_clunked_fid_cannot_be_used_again(c):
    f = c.walk_new("")
    c.clunk(f)
    assert err(c.getattr, f) == errno.EBADF


def test_fid_table_is_bounded_with_emfile():
    c = Client(Server(max_fids=10))
    for _ in range(9):
        c.walk(0, c.fid(), [])
    assert err(c.walk, 0, c.fid(), []) == errno.EMFILE


def test_flush_answers_even_for_unknown_tags(c):
    c.flush(1234)


# ----------------------------------------------------------------- walk


def test_walk_full_partial_and_first_element_failure(c):
    c.mkdir(0, "a")
    a = c.walk_new("a")
    c.mkdir(a, "b")
    f = c.fid()
    assert len(c.walk(0, f, ["a", "b"])) == 2
    g = c.fid()
    qids = c.walk(0, g, ["a", "missing", "b"])
    assert len(qids) == 1  # partial walk: the qids so far ...
    assert err(c.getattr, g) == errno.EBADF  # ... and newfid is not created
    assert err(c.walk, 0, c.fid(), ["missing"]) == errno.ENOENT


def test_walk_dotdot_at_root_stays_at_root_and_clone_shares_the_file(c):
    root_qid = c.getattr(0).qid
    f = c.fid()
    qids = c.walk(0, f, ["..", ".."])
    assert qids[-1] == root_qid
    g = c.fid()
    assert c.walk(f, g, []) == []
    assert c.getattr(g).qid == root_qid


def test_walk_more_than_16_names_is_refused(c):
    body = struct.pack("<IIH", 0, 50, 17) + b"".join(struct.pack("<H", 1) + b"a" for _ in range(17))
    assert err(c.rpc, 110, body) == errno.EINVAL


def test_walk_from_a_file_and_from_an_open_fid(c):
    f = new_file(c, "file")
    assert err(c.walk, f, c.fid(), ["x"]) in (errno.ENOTDIR, errno.EBADF)
    d = c.walk_new("")
    c.lopen(d, O_RDONLY)
    assert err(c.walk, d, c.fid(), ["file"]) == errno.EBADF


def test_walk_needs_search_permission():
    server = Server(permissions="server")
    server.fs.setattr(server.fs.makedirs("/private"), mode=0o700)
    server.fs.write_file("/private/x", b"")
    c = Client(server, uid=1000)
    assert len(c.walk(0, c.fid(), ["private", "x"])) == 1  # stops where search is denied
    private = c.walk_new("private")
    assert err(c.walk, private, c.fid(), ["x"]) == errno.EACCES


def _frame(mtype, tag, body):
    return struct.pack("<IBH", 7 + len(body), mtype, tag) + body


def _walk_frame(tag, fid, newfid, names):
    body = struct.pack("<IIH", fid, newfid, len(names))
    for n in names:
        raw = n if isinstance(n, bytes) else n.encode()
        body += struct.pack("<H", len(raw)) + raw
    return _frame(110, tag, body)


def test_fast_paths_answer_byte_for_byte_like_the_generic_decoder():
    """Twalk, Tgetattr and Tclunk have fast paths that decode in place; the same frames through
    the generic decoder (fast paths off) must give the same replies, errors included."""
    def fresh(fast: bool) -> Server:
        fs = Filesystem(clock=lambda: 1_700_000_000_123_456_789)
        server = Server(fs, max_fids=12)
        fs.write_file("/d/file", b"x")
        fs.makedirs("/d/sub")
        fs.makedirs("/private")
        fs.setattr(fs.resolve("/private"), mode=0o700)
        fs.write_file("/private/secret", b"")
        fs.write_file("/" + "n" * 255, b"")
        fs.write_file("/bad\udcff".encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape"), b"")
        if not fast:
            server._fast = {}
        server.handle(protocol.encode(protocol.T.Tversion, protocol.NOTAG, 65536, "9P2000.L"))
        server.handle(protocol.encode(protocol.T.Tattach, 1, 0, NOFID, "root", "", 0))
        server.handle(protocol.encode(protocol.T.Tattach, 1, 1, NOFID, "user", "", 1000))
        return server

    frames = []
    names = ["d", "file", "sub", "", ".", "..", "a/b", "missing", "m" * 63, "m" * 64, "n" * 255,
             "n" * 256, "\u00e9" * 64, "private", "secret", b"bad\xff", b"bad\xfe", "d\0x"]
    for fid in (0, 1, 5, 6, 4242):
        for name in names:
            frames.append(_walk_frame(1, fid, 5, [name]))
            frames.append(_walk_frame(2, 5, 6, [name]))
            frames.append(_frame(24, 3, struct.pack("<IQ", 6, 0x3FFF)))
            frames.append(_frame(120, 4, struct.pack("<I", 6)))
            frames.append(_walk_frame(5, 5, 5, [name]))  # newfid == fid: the fid moves
            frames.append(_walk_frame(6, 5, 7, []))  # a clone
            frames.append(_walk_frame(7, 7, 7, []))  # a clone onto itself
            frames.append(_walk_frame(8, 0, 7, []))  # newfid in use
            frames.append(_walk_frame(9, 0, NOFID, ["d"]))
            frames.append(_frame(24, 10, struct.pack("<IQ", 5, 0x3FFF)))
            frames.append(_frame(120, 11, struct.pack("<I", 5)))
            frames.append(_frame(120, 11, struct.pack("<I", 7)))
    # Malformed: short, long, and name lengths that do not fit the frame.
    frames.append(_frame(110, 12, struct.pack("<IIH", 0, 9, 1) + struct.pack("<H", 9) + b"d"))
    frames.append(_frame(110, 13, struct.pack("<IIH", 0, 9, 1) + struct.pack("<H", 1) + b"dd"))
    frames.append(_frame(110, 14, struct.pack("<IIH", 0, 9, 0) + b"x"))
    frames.append(_frame(110, 15, struct.pack("<II", 0, 9)))
    frames.append(_frame(24, 16, struct.pack("<I", 0)))
    frames.append(_frame(120, 17, struct.pack("<IB", 0, 0)))
    # Fill the fid table: EMFILE from one-name walks and clones alike.
    for i in range(20):
        frames.append(_walk_frame(18, 0, 100 + i, ["d"] if i % 2 else []))
    fast, generic = fresh(True), fresh(False)
    for frame in frames:
        assert fast.handle(frame) == generic.handle(frame), frame
    assert sorted(fast.fids) == sorted(generic.fids)
    for fid in fast.fids:
        a, b = fast.fids[fid], generic.fids[fid]
        assert (a.inode.ino, a.cred, a.name, a.parent and a.parent.ino) == \
            (b.inode.ino, b.cred, b.name, b.parent and b.parent.ino)


# ----------------------------------------------------------------- open, create, read, write


def test_lcreate_opens_the_new_file_on_the_same_fid(c):
    f = c.fid()
    c.walk(0, f, [])
    q, iounit = c.lcreate(f, "new", O_WRONLY, 0o444)
    assert q[0] == 0 and iounit == 0
    assert c.write(f, 0, b"writable though mode is 0444") == 28
    assert stat.S_IMODE(c.getattr(f).mode) == 0o444
    g = c.fid()
    c.walk(0, g, [])
    assert err(c.lcreate, g, "new", O_RDWR, 0o644) == errno.EEXIST


def test_read_and_write_obey_the_open_mode(c):
    f = new_file(c, "f", b"hello")
    r = c.walk_new("f")
    c.lopen(r, O_RDONLY)
    assert err(c.write, r, 0, b"x") == errno.EBADF
    w = c.walk_new("f")
    c.lopen(w, O_WRONLY)
    assert err(c.read, w, 0, 5) == errno.EBADF
    n = c.walk_new("f")
    assert err(c.read, n, 0, 5) == errno.EBADF  # never opened
    assert err(c.lopen, f, O_RDONLY) == errno.EBADF  # already open


def test_o_trunc_and_o_append(c):
    new_file(c, "f", b"0123456789")
    a = c.walk_new("f")
    c.lopen(a, O_WRONLY | O_APPEND)
    c.write(a, 0, b"AB")  # offset ignored: appends
    r = c.walk_new("f")
    c.lopen(r, O_RDONLY)
    assert c.read(r, 0, 100) == b"0123456789AB"
    t = c.walk_new("f")
    c.lopen(t, O_WRONLY | O_TRUNC)
    assert c.getattr(t).size == 0


def test_writes_past_the_end_make_holes(c):
    f = new_file(c, "sparse")
    c.write(f, 1 << 30, b"end")
    st = c.getattr(f)
    assert st.size == (1 << 30) + 3 and st.blocks * 512 < 1 << 20
    assert c.read(f, 1000, 8) == bytes(8)
    assert c.read(f, (1 << 30) - 1, 10) == b"\0end"
    assert c.read(f, 1 << 40, 10) == b""


def test_reads_are_clamped_to_msize(server):
    c = Client(server, msize=8192)
    server.fs.write_file("/big", b"x" * 100_000)
    f = c.walk_new("big")
    c.lopen(f, O_RDONLY)
    assert len(c.read(f, 0, 1 << 30)) == 8192 - 11


def test_directories_cannot_be_read_or_opened_for_writing(c):
    c.mkdir(0, "d")
    d = c.walk_new("d")
    assert err(c.lopen, d, O_WRONLY) == errno.EISDIR
    c.lopen(d, O_RDONLY)
    assert err(c.read, d, 0, 10) == errno.EISDIR
    f = new_file(c, "plain")
    g = c.walk_new("plain")
    assert err(c.lopen, g, O_RDONLY | O_DIRECTORY) == errno.ENOTDIR


def test_open_checks_permissions_for_non_root():
    server = Server(permissions="server")
    server.fs.write_file("/secret", b"s", mode=0o600)
    c = Client(server, uid=1000)
    f = c.walk_new("secret")
    assert err(c.lopen, f, O_RDONLY) == errno.EACCES


def test_fsync_answers(c):
    f = new_file(c, "f", b"x")
    c.fsync(f)
    c.fsync(f, 1)


# ----------------------------------------------------------------- readdir


def test_readdir_lists_entries_with_types_and_resumes_by_cookie(c):
    c.mkdir(0, "dir")
    new_file(c, "file")
    c.symlink(0, "link", "file")
    c.mknod(0, "fifo", stat.S_IFIFO | 0o644)
    d = c.walk_new("")
    c.lopen(d, O_RDONLY)
    entries = c.readdir(d)
    types = {e[3]: e[2] for e in entries}
    assert types == {".": 4, "..": 4, "dir": 4, "file": 8, "link": 10, "fifo": 1}
    first_two = c.readdir(d, 0, 24 + 1 + 24 + 2)  # room for "." and ".." only
    assert [e[3] for e in first_two] == [".", ".."]
    rest = c.readdir(d, first_two[-1][1])
    assert [e[3] for e in rest] == ["dir", "file", "link", "fifo"]


def test_readdir_cookies_stay_valid_while_the_directory_changes(c):
    c.mkdir(0, "d")
    d = c.walk_new("d")
    for i in range(100):
        new_file(c, f"f{i:03}", parent=d)
    r = c.walk_new("d")
    c.lopen(r, O_RDONLY)
    seen = []
    offset = 0
    removed = set()
    while True:
        batch = c.readdir(r, offset, 600)
        if not batch:
            break
        seen += [e[3] for e in batch]
        offset = batch[-1][1]
        for i in range(100):  # remove some entries not seen yet, add new ones
            name = f"f{i:03}"
            if name not in seen and name not in removed and i % 7 == 0:
                c.unlinkat(d, name)
                removed.add(name)
                break
        if len(seen) < 60:
            new_file(c, f"new{len(seen)}", parent=d)
    names = [n for n in seen if n.startswith("f")]
    assert len(names) == len(set(names))  # nothing repeated
    assert set(names) == {f"f{i:03}" for i in range(100)} - removed  # nothing lost


def test_readdir_needs_an_open_directory(c):
    d = c.walk_new("")
    assert err(c.readdir, d) == errno.EBADF
    f = new_file(c, "f")
    assert err(c.readdir, f) == errno.ENOTDIR


# ----------------------------------------------------------------- getattr and setattr


SET_MODE, SET_UID, SET_GID, SET_SIZE = 0x1, 0x2, 0x4, 0x8
SET_ATIME, SET_MTIME, SET_CTIME, SET_ATIME_SET, SET_MTIME_SET = 0x10, 0x20, 0x40, 0x80, 0x100


def test_getattr_reports_everything_valid(c):
    f = new_file(c, "f", b"12345", mode=0o640)
    st = c.getattr(f)
    assert st.valid == 0x3FFF
    assert stat.S_ISREG(st.mode) and stat.S_IMODE(st.mode) == 0o640
    assert (st.nlink, st.size, st.uid, st.gid) == (1, 5, 0, 0)
    assert st.qid[2] == c.getattr(c.walk_new("f")).qid[2]
    assert st.btime <= st.mtime and st.gen != 0


def test_setattr_every_bit(c):
    f = new_file(c, "f", b"0123456789", mode=0o644)
    c.setattr(f, SET_MODE, mode=0o600)
    c.setattr(f, SET_UID | SET_GID, uid=1000, gid=100)
    c.setattr(f, SET_SIZE, size=4)
    c.setattr(f, SET_ATIME | SET_ATIME_SET | SET_MTIME | SET_MTIME_SET,
              atime=(1_000_000_000, 123), mtime=(1_100_000_000, 456_789))
    st = c.getattr(f)
    assert stat.S_IMODE(st.mode) == 0o600 and (st.uid, st.gid, st.size) == (1000, 100, 4)
    assert st.atime == 1_000_000_000 * 10**9 + 123 and st.mtime == 1_100_000_000 * 10**9 + 456_789
    before = st.ctime
    c.setattr(f, SET_ATIME | SET_MTIME)  # "now"
    st = c.getattr(f)
    assert st.mtime > 1_700_000_000 * 10**9 and st.ctime >= before
    c.setattr(f, SET_SIZE, size=100)
    assert c.read(f, 0, 200) == b"0123" + bytes(96)


def test_setattr_times_before_1970(c):
    f = new_file(c, "old")
    c.setattr(f, SET_MTIME | SET_MTIME_SET, mtime=((1 << 64) - 100, 0))
    assert c.getattr(f).mtime == ((1 << 64) - 100) * 10**9  # u64 on the wire, as sent


def test_setattr_rejects_bad_nanoseconds_and_unknown_bits(c):
    f = new_file(c, "f")
    assert err(c.setattr, f, SET_MTIME | SET_MTIME_SET, mtime=(1, 10**9)) == errno.EINVAL
    assert err(c.setattr, f, 0x4000) == errno.EINVAL


def test_chmod_and_chown_by_non_owner_are_refused():
    server = Server(permissions="server")
    server.fs.write_file("/f", b"", mode=0o666)
    c = Client(server, uid=1000)
    f = c.walk_new("f")
    assert err(c.setattr, f, SET_MODE, mode=0o777) == errno.EPERM
    assert err(c.setattr, f, SET_UID, uid=1000) == errno.EPERM


def test_write_by_non_root_clears_setuid_through_9p(server):
    server.fs.setattr(server.fs.root, mode=0o777)
    c = Client(server, uid=1000)
    f = new_file(c, "prog", mode=0o4755)
    assert stat.S_IMODE(c.getattr(f).mode) == 0o4755
    c.write(f, 0, b"#!")
    assert stat.S_IMODE(c.getattr(f).mode) == 0o755


def test_statfs_reports_namelen_255_and_quota_counts():
    c = Client(Server(Filesystem(quota_bytes=1 << 20, quota_inodes=100)))
    ftype, bsize, blocks, bfree, bavail, files, ffree, fsid, namelen = c.statfs(0)
    assert namelen == 255 and bsize * blocks == 1 << 20 and files == 100 and ffree == 99
    f = new_file(c, "f", b"x" * 8192)
    assert c.statfs(0)[3] == bfree - 2 and c.statfs(0)[7] == fsid


def test_quota_gives_enospc_through_9p():
    c = Client(Server(Filesystem(quota_bytes=100_000)))
    f = new_file(c, "f")
    assert err(c.write, f, 0, b"x" * 200_000) == errno.ENOSPC
    assert c.getattr(f).size == 0


def test_max_file_size_gives_efbig_through_9p():
    c = Client(Server(Filesystem(max_file_size=1 << 20)))
    f = new_file(c, "f")
    assert err(c.write, f, 1 << 20, b"x") == errno.EFBIG


# ----------------------------------------------------------------- directory operations


def test_mkdir_symlink_mknod_readlink(c):
    q = c.mkdir(0, "d", 0o750)
    assert q[0] == 0x80
    q = c.symlink(0, "s", "d/target")
    assert q[0] == 0x02 and c.readlink(c.walk_new("s")) == "d/target"
    c.mknod(0, "null", stat.S_IFCHR | 0o666, 1, 3)
    c.mknod(0, "disk", stat.S_IFBLK | 0o600, 8, 1)
    c.mknod(0, "sock", stat.S_IFSOCK | 0o755)
    c.mknod(0, "fifo", stat.S_IFIFO | 0o600)
    null = c.getattr(c.walk_new("null"))
    assert stat.S_ISCHR(null.mode) and null.rdev == (1 << 8) | 3
    assert stat.S_ISBLK(c.getattr(c.walk_new("disk")).mode)
    assert stat.S_ISSOCK(c.getattr(c.walk_new("sock")).mode)
    assert err(c.readlink, c.walk_new("d")) == errno.EINVAL
    assert err(c.mkdir, 0, "d") == errno.EEXIST


@pytest.mark.parametrize("name,code", [("", errno.EINVAL), (".", errno.EINVAL), ("..", errno.EINVAL),
                                       ("a/b", errno.EINVAL), ("x" * 256, errno.ENAMETOOLONG)])
def test_bad_names_everywhere(c, name, code):
    assert err(c.mkdir, 0, name) == code
    f = c.fid()
    c.walk(0, f, [])
    assert err(c.lcreate, f, name, O_RDWR, 0o644) == code
    assert err(c.symlink, 0, name, "t") == code


def test_link_rename_renameat_unlinkat_remove(c):
    f = new_file(c, "a", b"data")
    c.link(0, f, "b")
    assert c.getattr(f).nlink == 2
    c.renameat(0, "b", 0, "c")
    c.mkdir(0, "dir")
    d = c.walk_new("dir")
    c.rename(c.walk_new("c"), d, "moved")
    assert err(c.walk_new, "c") == errno.ENOENT
    m = c.walk_new("dir/moved")
    c.lopen(m, O_RDONLY)
    assert c.read(m, 0, 10) == b"data"
    assert err(c.unlinkat, 0, "dir") == errno.EISDIR
    assert err(c.unlinkat, 0, "dir", AT_REMOVEDIR) == errno.ENOTEMPTY
    c.unlinkat(d, "moved")
    c.unlinkat(0, "dir", AT_REMOVEDIR)
    victim = c.walk_new("a")
    c.remove(victim)
    assert err(c.getattr, victim) == errno.EBADF  # remove clunks
    assert err(c.unlinkat, 0, "a") == errno.ENOENT


def test_remove_clunks_even_when_it_fails(c):
    c.mkdir(0, "full")
    full = c.walk_new("full")
    new_file(c, "x", parent=full)
    g = c.walk_new("full")
    assert err(c.remove, g) == errno.ENOTEMPTY
    assert err(c.getattr, g) == errno.EBADF


def test_rename_follows_rename2_rules(c):
    c.mkdir(0, "a")
    a = c.walk_new("a")
    c.mkdir(a, "sub")
    c.mkdir(0, "full")
    new_file(c, "x", parent=c.walk_new("full"))
    new_file(c, "file")
    assert err(c.renameat, 0, "a", c.walk_new("a/sub"), "in") == errno.EINVAL
    assert err(c.renameat, 0, "a", 0, "full") == errno.ENOTEMPTY
    assert err(c.renameat, 0, "a", 0, "file") == errno.ENOTDIR
    assert err(c.renameat, 0, "file", 0, "a") == errno.EISDIR


def test_fids_follow_a_renamed_file(c):
    f = new_file(c, "old", b"content")
    c.renameat(0, "old", 0, "new")
    assert c.read(f, 0, 10) == b"content"


def test_unlinked_file_stays_readable_through_open_fid(c):
    f = new_file(c, "doomed", b"last words")
    c.unlinkat(0, "doomed")
    assert c.read(f, 0, 100) == b"last words"
    c.write(f, 10, b"!")
    assert c.getattr(f).nlink == 0 and c.read(f, 0, 100) == b"last words!"
    c.clunk(f)


# ----------------------------------------------------------------- xattrs


def test_xattr_set_get_list_create_replace_remove(c):
    f = new_file(c, "f")
    c.setxattr(f, "user.one", b"1")
    c.setxattr(f, "security.capability", b"\x01\x00\x00\x02")
    assert c.getxattr(f, "user.one") == b"1"
    assert sorted(c.getxattr(f, "").split(b"\0")[:-1]) == [b"security.capability", b"user.one"]
    assert err(c.setxattr, f, "user.one", b"2", 1) == errno.EEXIST
    assert err(c.setxattr, f, "user.two", b"2", 2) == errno.ENODATA
    c.setxattr(f, "user.one", b"uno", 2)
    assert c.getxattr(f, "user.one") == b"uno"
    x = c.fid()
    c.walk(0, x, ["f"])
    c.xattrcreate(x, "user.one", 0, 2)  # size 0, no writes: the kernel's removexattr
    c.clunk(x)
    assert err(c.getxattr, f, "user.one") == errno.ENODATA


def test_xattr_sizes_are_bounded(c):
    f = new_file(c, "f")
    x = c.walk_new("f")
    assert err(c.xattrcreate, x, "user.big", 70_000) == errno.E2BIG
    c.xattrcreate(x, "user.small", 4)
    assert err(c.write, x, 0, b"too long") == errno.ERANGE
    c.write(x, 0, b"ok")
    assert err(c.clunk, x) == errno.EINVAL  # fewer bytes than announced: not committed
    assert err(c.getxattr, f, "user.small") == errno.ENODATA
    assert err(c.setxattr, f, "system.posix_acl_access", b"x") == errno.EOPNOTSUPP


def test_xattr_fids_are_not_files(c):
    f = new_file(c, "f")
    c.setxattr(f, "user.a", b"v")
    x = c.fid()
    c.xattrwalk(f, x, "user.a")
    assert err(c.getattr, x) == errno.EBADF
    assert err(c.walk, x, c.fid(), []) == errno.EBADF


# ----------------------------------------------------------------- locks


RD, WR, UN = 0, 1, 2
SUCCESS, BLOCKED = 0, 1


def test_locks_conflict_across_owners_and_release_on_clunk(c):
    new_file(c, "f")
    a = c.walk_new("f")
    c.lopen(a, O_RDWR)
    b = c.walk_new("f")
    c.lopen(b, O_RDWR)
    assert c.lock(a, WR, 0, 100, proc_id=1) == SUCCESS
    assert c.lock(b, RD, 50, 10, proc_id=2) == BLOCKED
    assert c.lock(b, RD, 100, 0, proc_id=2) == SUCCESS  # from 100 to EOF: no overlap
    assert c.getlock(b, WR, 0, 0, proc_id=2)[:4] == (WR, 0, 100, 1)
    assert c.lock(a, UN, 40, 20, proc_id=1) == SUCCESS  # split a's lock
    assert c.lock(b, RD, 45, 10, proc_id=2) == SUCCESS
    c.clunk(a)  # a's remaining locks die with its fid
    assert c.getlock(b, WR, 0, 0, proc_id=3)[0] == RD  # only b's read locks remain
    assert err(c.lock, b, 7, 0, 0) == errno.EINVAL


def test_getlock_reports_unlocked_when_free(c):
    f = new_file(c, "f")
    assert c.getlock(f, WR, 10, 5, proc_id=9)[0] == UN


def test_lock_needs_an_open_fid(c):
    new_file(c, "f")
    assert err(c.lock, c.walk_new("f"), WR, 0, 0) == errno.EBADF


# ----------------------------------------------------------------- malformed input


def test_malformed_frames_get_rlerror_with_the_request_tag(server):
    c = Client(server)
    cases = [
        (struct.pack("<IBH", 6, 24, 77), errno.EPROTO),  # size smaller than a header
        (struct.pack("<IBHI", 15, 24, 77, 0), errno.EPROTO),  # size larger than the frame
        (struct.pack("<IBHIQ", 23, 24, 77, 0, 0) + b"junk", errno.EPROTO),  # trailing garbage
        (struct.pack("<IBHIH", 13, 72, 77, 0, 500), errno.EPROTO),  # string past the end
        (struct.pack("<IBH", 7, 99, 77), errno.EOPNOTSUPP),  # unknown type
        (struct.pack("<IBHI", 11, 25, 77, 0), errno.EOPNOTSUPP),  # an R-message
        (struct.pack("<IBHIQ", 19, 112, 77, 0, 0), errno.EOPNOTSUPP),  # legacy Topen
    ]
    for frame, code in cases:
        reply = server.handle(frame)
        size, rtype, tag, ecode = struct.unpack("<IBHI", reply)
        assert (size, rtype, tag, ecode) == (11, 7, 77, code), (frame, ecode)
    assert server.handle(b"\x01\x02") is None  # too short to carry a tag: nothing to answer
    # Bytes past the size field are transport padding (v86 hands over whole descriptor chains).
    padded = struct.pack("<IBHIQ", 19, 24, 78, 0, 0x3FFF) + bytes(64)
    assert server.handle(padded)[4] == 25
    assert c.getattr(0).valid  # and the session still works


def test_frames_larger_than_msize_are_refused(server):
    c = Client(server, msize=8192)
    f = new_file(c, "f")
    assert err(c.write, f, 0, b"x" * 9000) == errno.EMSGSIZE


def test_a_bug_inside_a_handler_is_eio_not_an_exception(server, monkeypatch, caplog):
    c = Client(server)

    def boom(*args):
        raise RuntimeError("simulated bug")

    monkeypatch.setitem(server._handlers, protocol.T.Tstatfs, boom)
    assert err(c.statfs, 0) == errno.EIO
    assert "simulated bug" in caplog.text
    assert c.getattr(0).valid


# ----------------------------------------------------------------- deferred replies


class DeferringServer(Server):
    """Tfsync deferred, as fsync to durable storage will be."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.waiting: list[int] = []
        self.sent: list[bytes] = []
        self.on_reply = self.sent.append

    def fsync(self, tag, fid, datasync):
        self._file_fid(fid)
        self.defer(tag)
        self.waiting.append(tag)
        return None

    def finish(self):
        tag = self.waiting.pop(0)
        self.complete(tag, protocol.encode(protocol.T.Rfsync, tag))


def _kind(frame):
    return frame[4], int.from_bytes(frame[5:7], "little"), \
        int.from_bytes(frame[7:11], "little") if frame[4] == 7 else None


def test_deferred_reply_is_delivered_once_through_on_reply():
    server = DeferringServer()
    c = Client(server)
    assert server.handle(_frame(50, 40, struct.pack("<II", 0, 0))) is None
    assert server.sent == []
    c.getattr(0)  # the session goes on meanwhile
    server.finish()
    assert [_kind(f) for f in server.sent] == [(51, 40, None)]
    server.complete(40, b"again")  # a second completion is ignored
    assert len(server.sent) == 1


def test_flush_answers_the_deferred_request_with_eintr_before_rflush():
    server = DeferringServer()
    Client(server)
    assert server.handle(_frame(50, 41, struct.pack("<II", 0, 0))) is None
    rflush = server.handle(_frame(108, 42, struct.pack("<H", 41)))
    assert _kind(rflush) == (109, 42, None)
    assert [_kind(f) for f in server.sent] == [(7, 41, errno.EINTR)]
    server.finish()  # the work ends after the flush: nothing more goes out
    assert len(server.sent) == 1


def test_version_reset_answers_every_deferred_request():
    server = DeferringServer()
    Client(server)
    for tag in (43, 44):
        assert server.handle(_frame(50, tag, struct.pack("<II", 0, 0))) is None
    server.handle(protocol.encode(protocol.T.Tversion, protocol.NOTAG, 65536, "9P2000.L"))
    assert [_kind(f) for f in server.sent] == [(7, 43, errno.EINTR), (7, 44, errno.EINTR)]
    assert not server.pending


# ----------------------------------------------------------------- who decides access
# "client" (the default, access=client): the guest's kernel has checked with credentials the
# server cannot see; "server": the server enforces with what the served /etc files say.


def _other_users_file(server, mode):
    server.fs.setattr(server.fs.root, mode=0o777)
    inode = server.fs.write_file("/f", b"data", mode=mode)
    server.fs.setattr(inode, uid=65534, gid=65534)


def test_a_trusted_client_opens_by_its_own_checks():
    server = Server()  # permissions="client"
    _other_users_file(server, 0o006)
    c = Client(server, uid=65533)  # in no group the served /etc/group knows of
    for flags in (O_RDONLY, O_WRONLY, O_RDWR):
        f = c.walk_new("f")
        c.lopen(f, flags)
        c.clunk(f)


def test_the_server_enforces_when_it_is_the_gatekeeper():
    server = Server(permissions="server")
    _other_users_file(server, 0o060)
    c = Client(server, uid=65533)
    assert err(c.lopen, c.walk_new("f"), O_RDONLY) == errno.EACCES
    with pytest.raises(ValueError):
        Server(permissions="everyone")


def test_a_trusted_client_chowns_to_any_group_of_the_caller():
    server = Server()
    _other_users_file(server, 0o644)
    c = Client(server, uid=65534)
    f = c.walk_new("f")
    c.setattr(f, SET_GID, gid=65531)  # a supplementary group only the guest knows about
    assert c.getattr(f).gid == 65531
    c.setattr(f, SET_UID | SET_GID, uid=65534, gid=65532)
    assert (c.getattr(f).uid, c.getattr(f).gid) == (65534, 65532)


def test_new_inodes_take_the_gid_the_request_carries():
    server = Server()
    server.fs.setattr(server.fs.root, mode=0o777)
    c = Client(server, uid=65533)
    f = c.fid()
    c.walk(0, f, [])
    c.lcreate(f, "file", O_RDWR, 0o644, 65532)
    d = c.walk_new("")
    c.mkdir(d, "dir", 0o755, 65532)
    c.mknod(d, "fifo", stat.S_IFIFO | 0o644, 0, 0, 65532)
    c.symlink(d, "link", "file", 65532)
    for name in ("file", "dir", "fifo", "link"):
        st = c.getattr(c.walk_new(name))
        assert (st.uid, st.gid) == (65533, 65532), name


def test_setgid_directory_still_gives_its_group_to_trusted_creates():
    server = Server()
    top = server.fs.makedirs("/shared")
    server.fs.setattr(top, gid=65531, mode=0o2777)
    c = Client(server, uid=65533)
    d = c.walk_new("shared")
    c.mkdir(d, "sub", 0o755, 65532)
    st = c.getattr(c.walk_new("shared/sub"))
    assert st.gid == 65531 and stat.S_IMODE(st.mode) == 0o2755


def test_a_trusted_client_truncates_a_file_it_opened_before_chmod():
    server = Server()
    server.fs.setattr(server.fs.root, mode=0o777)
    c = Client(server, uid=65534)
    f = new_file(c, "mode0", b"abc", mode=0)  # open(O_CREAT|O_RDWR, 0) then ftruncate(fd, 0)
    c.setattr(f, SET_SIZE, size=0)
    assert c.getattr(f).size == 0


def test_write_by_a_user_outside_the_group_clears_setgid_without_group_execute(server):
    _other_users_file(server, 0o2666)
    c = Client(server, uid=65533)
    f = c.walk_new("f")
    c.lopen(f, O_WRONLY)
    c.write(f, 0, b"x")
    assert stat.S_IMODE(c.getattr(f).mode) == 0o666


def test_zero_byte_write_past_the_largest_offset_writes_nothing(c):
    f = new_file(c, "edge")
    limit = c.server.fs.max_file_size
    for offset in (limit - 1, limit, limit + 1, (1 << 63) - 1, (1 << 64) - 1):
        assert c.write(f, offset, b"") == 0
    assert err(c.write, f, limit, b"x") == errno.EFBIG
    assert c.getattr(f).size == 0


def test_a_uid_etc_passwd_does_not_list_is_in_no_other_group():
    fs = Filesystem()
    fs.write_file("/etc/passwd", "root:x:0:0::/root:/bin/sh\n")
    fs.write_file("/etc/group", "root:x:0:\nnogroup:x:65534:\n")  # no members
    fs.setattr(fs.root, mode=0o777)
    fs.setattr(fs.write_file("/f", b"", mode=0o060), uid=65534, gid=65534)
    c = Client(Server(fs, permissions="server"), uid=65533)
    assert err(c.lopen, c.walk_new("f"), O_RDONLY) == errno.EACCES

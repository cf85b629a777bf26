"""The authoring API: every call on CPython, then live files through 9P frames (tests/ninep_client.py)."""

import asyncio
import datetime as dt
import errno
import io
import logging
import os
import stat
import tarfile
import time

import pytest

from ninep_client import Client, NinePError
from pyninep_browser import Server
from pyninep_browser.authoring import (LIVE_XATTR, Tree, attach, build_from_script, context,
                                       live_dir, live_file, load_script, major, makedev, minor)

O_RDONLY, O_WRONLY, O_RDWR, O_TRUNC, O_APPEND = 0, 1, 2, 0o1000, 0o2000
T0 = dt.datetime(2001, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)


def err(fn, *args, **kw) -> int:
    with pytest.raises(NinePError) as info:
        fn(*args, **kw)
    return info.value.errno


# ----------------------------------------------------------------- the tree API


def test_paths_join_like_pathlib():
    tree = Tree()
    p = tree / "etc" / "motd"
    assert str(p) == "/etc/motd" and p.name == "motd" and p.parent == tree / "etc"
    assert tree / "/abs" == tree.path("abs") and str(tree.root) == "/"
    assert str(p / "../x") == "/etc/motd/../x"  # kept as written; resolved by the filesystem


def test_write_text_and_bytes_create_parents_with_defaults_and_keywords():
    tree = Tree()
    (tree / "etc/motd").write_text("hi\n")
    (tree / "srv/data.bin").write_bytes(b"\0\1", mode=0o600, uid=1000, gid=100, mtime=T0,
                                        xattrs={"user.kind": "blob"})
    assert (tree / "etc/motd").read_text() == "hi\n"
    st = (tree / "srv/data.bin").stat()
    assert stat.S_IMODE(st.st_mode) == 0o600 and (st.st_uid, st.st_gid) == (1000, 100)
    assert st.st_mtime_ns == int(T0.timestamp()) * 10**9 and st.st_size == 2
    assert stat.S_IMODE((tree / "srv").stat().st_mode) == 0o755
    assert (tree / "srv/data.bin").xattrs["user.kind"] == b"blob"
    # Replacing content keeps the owner unless told otherwise.
    (tree / "srv/data.bin").write_bytes(b"new")
    assert (tree / "srv/data.bin").stat().st_uid == 1000 and (tree / "srv/data.bin").read_bytes() == b"new"


def test_mkdir_is_idempotent_and_refuses_a_file_in_the_way():
    tree = Tree()
    d = (tree / "a/b/c").mkdir(0o750)
    assert d.is_dir() and stat.S_IMODE(d.stat().st_mode) == 0o750
    assert (tree / "a/b/c").mkdir().is_dir()
    with pytest.raises(FileExistsError):
        (tree / "a/b/c").mkdir(exist_ok=False)
    (tree / "f").write_text("x")
    with pytest.raises(FileExistsError):
        (tree / "f").mkdir()
    with pytest.raises(FileNotFoundError):
        (tree / "no/such").mkdir(parents=False)


def test_defaults_context_manager_sets_owner_modes_and_times_for_a_block():
    tree = Tree(mtime=0)
    with tree.defaults(uid=1000, gid=1000, file_mode=0o600, dir_mode=0o700, mtime=T0):
        (tree / "home/user/notes").write_text("n")
    (tree / "after").write_text("a")
    home = (tree / "home/user").stat()
    assert (home.st_uid, stat.S_IMODE(home.st_mode)) == (1000, 0o700)
    notes = (tree / "home/user/notes").stat()
    assert (notes.st_uid, notes.st_gid, stat.S_IMODE(notes.st_mode)) == (1000, 1000, 0o600)
    assert notes.st_mtime == T0.timestamp()
    after = (tree / "after").stat()
    assert (after.st_uid, after.st_mtime_ns) == (0, 0)


def test_symlinks_hard_links_devices_fifos_sockets():
    tree = Tree()
    (tree / "bin/busybox").write_bytes(b"\x7fELF", mode=0o755)
    (tree / "bin/sh").symlink_to("busybox")
    (tree / "bin/ls").hardlink_to("/bin/busybox")
    (tree / "dev/null").mknod("c", 1, 3, mode=0o666)
    (tree / "dev/sda").mknod("block", 8, 0)
    (tree / "run/ctl").mkfifo(0o620)
    (tree / "run/sock").mknod("s")
    assert (tree / "bin/sh").is_symlink() and (tree / "bin/sh").readlink() == "busybox"
    assert (tree / "bin/sh").read_bytes() == b"\x7fELF"
    assert (tree / "bin/ls").stat().st_ino == (tree / "bin/busybox").stat().st_ino
    assert (tree / "bin/busybox").stat().st_nlink == 2
    null = (tree / "dev/null").lstat()
    assert stat.S_ISCHR(null.st_mode) and stat.S_IMODE(null.st_mode) == 0o666
    rdev = (tree / "dev/null").inode().rdev
    assert rdev == makedev(1, 3) and (major(rdev), minor(rdev)) == (1, 3)
    assert (major(makedev(300, 70000)), minor(makedev(300, 70000))) == (300, 70000)
    assert stat.S_ISBLK((tree / "dev/sda").lstat().st_mode)
    assert stat.S_ISFIFO((tree / "run/ctl").lstat().st_mode)
    assert stat.S_ISSOCK((tree / "run/sock").lstat().st_mode)
    with pytest.raises(ValueError):
        (tree / "x").mknod("q")


def test_chmod_chown_set_times_touch_unlink_rmdir_iterdir():
    tree = Tree()
    f = (tree / "d/f").write_text("x")
    f.chmod(0o4755)
    f.chown(5, 6)
    assert stat.S_IMODE(f.stat().st_mode) == 0o4755 and f.stat().st_uid == 5  # set-id kept
    f.set_times(mtime_ns=123_456_789_012, atime=T0)
    st = f.stat()
    assert st.st_mtime_ns == 123_456_789_012 and st.st_atime == T0.timestamp()
    (tree / "d/new").touch()
    assert sorted(p.name for p in (tree / "d").iterdir()) == ["f", "new"]
    (tree / "d/new").unlink()
    (tree / "d/new").unlink(missing_ok=True)
    f.unlink()
    (tree / "d").rmdir()
    assert not (tree / "d").exists()
    assert [str(p) for p in tree.walk()] == ["/"]


def test_set_attrs_gives_an_existing_entry_what_a_creating_call_would():
    tree = Tree(uid=1000, gid=100, mtime=T0)
    f = (tree / "f").write_text("x", mode=0o4755, uid=0, gid=0, mtime=5)
    f.set_attrs(ctime_ns=7, xattrs={"user.k": "v"})  # owner and times: the tree's defaults
    st = f.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 100, 0o4755)  # set-id kept
    assert st.st_mtime == st.st_atime == T0.timestamp() and st.st_ctime_ns == 7
    assert f.xattrs["user.k"] == b"v"
    (tree / "l").symlink_to("f")
    (tree / "l").set_attrs(mtime_ns=9, follow_symlinks=False)
    assert (tree / "l").lstat().st_mtime_ns == 9 and f.stat().st_mtime == T0.timestamp()


def test_xattr_mapping():
    tree = Tree()
    x = (tree / "f").write_text("x").xattrs
    x["user.a"] = b"1"
    x.update({"user.b": "2"})
    assert dict(x.items()) == {"user.a": b"1", "user.b": b"2"} and "user.a" in x and len(x) == 2
    del x["user.a"]
    assert list(x) == ["user.b"] and x.get("user.a") is None
    with pytest.raises(KeyError):
        x["user.none"]


def test_copy_from_a_host_directory_keeps_modes_times_links_and_xattrs(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub/a.txt").write_text("A")
    os.chmod(src / "sub/a.txt", 0o640)
    os.utime(src / "sub/a.txt", ns=(1_000_000_001, 2_000_000_002))
    os.link(src / "sub/a.txt", src / "hard")
    os.symlink("sub/a.txt", src / "link")
    os.mkfifo(src / "fifo")
    try:
        os.setxattr(src / "sub/a.txt", "user.colour", b"red")
        has_xattr = True
    except OSError:
        has_xattr = False
    tree = Tree()
    (tree / "opt/app").copy_from(src)
    a = (tree / "opt/app/sub/a.txt")
    assert a.stat().st_mtime_ns == 2_000_000_002 and a.stat().st_atime_ns == 1_000_000_001
    assert a.read_text() == "A" and stat.S_IMODE(a.stat().st_mode) == 0o640
    assert (tree / "opt/app/hard").stat().st_ino == a.stat().st_ino
    assert (tree / "opt/app/link").readlink() == "sub/a.txt"
    assert stat.S_ISFIFO((tree / "opt/app/fifo").lstat().st_mode)
    if has_xattr:
        assert a.xattrs["user.colour"] == b"red"
    (tree / "single").copy_from(src / "sub/a.txt")
    assert (tree / "single").read_text() == "A"


def test_add_tar_and_export_tar_through_the_tree(tmp_path):
    tree = Tree()
    (tree / "a/b").write_text("b")
    buf = io.BytesIO()
    tree.export_tar(buf)
    other = Tree()
    other.add_tar(io.BytesIO(buf.getvalue()), at="/imported")
    assert (other / "imported/a/b").read_text() == "b"


def test_image_save_and_load(tmp_path):
    tree = Tree()
    (tree / "etc/hostname").write_text("box\n")
    size = tree.save(tmp_path / "t.img")
    assert size == (tmp_path / "t.img").stat().st_size
    assert (Tree.load(tmp_path / "t.img") / "etc/hostname").read_text() == "box\n"


# ----------------------------------------------------------------- live files without 9P


def test_live_declarations_register_by_name_and_attach_after_an_image_round_trip():
    calls = []
    greeting = live_file("test-greeting", read=lambda: "hello\n")
    sink = live_file("test-sink", write=calls.append)

    @live_file
    def test_counter():
        calls.append("read")
        return str(len(calls))

    @live_dir("test-listing")
    def listing():
        return {"one": "1\n", "two": lambda: b"2\n"}

    tree = Tree()
    (tree / "py/greeting").live(greeting)
    (tree / "py/sink").live(sink)
    (tree / "py/counter").live(test_counter)
    (tree / "py/list").live(listing)
    assert (tree / "py/greeting").read_text() == "hello\n"
    assert stat.S_IMODE((tree / "py/greeting").stat().st_mode) == 0o444
    assert stat.S_IMODE((tree / "py/sink").stat().st_mode) == 0o644
    assert sorted(p.name for p in (tree / "py/list").iterdir()) == ["one", "two"]
    assert (tree / "py/list/two").read_bytes() == b"2\n"
    assert tree.live_files() == {"/py/greeting": "test-greeting", "/py/sink": "test-sink",
                                 "/py/counter": "test_counter", "/py/list": "test-listing"}
    # An image holds names, not code: without the declarations they are ordinary files holding
    # the last content read (empty if never read).
    from pyninep_browser.imagefile import load_image
    fs = load_image(tree.image())
    bare = Tree(fs)
    assert (bare / "py/greeting").read_bytes() == b"hello\n" and (bare / "py/sink").read_bytes() == b""
    assert (bare / "py/greeting").xattrs[LIVE_XATTR] == b"test-greeting"
    assert sorted(attach(fs)) == ["test-greeting", "test-listing", "test-sink", "test_counter"]
    calls.clear()
    assert (bare / "py/counter").read_text() == "1"


def test_attach_leaves_undeclared_names_ordinary_and_says_so_once(caplog):
    tree = Tree()
    (tree / "x").live(live_file("test-temporary", read=lambda: "t"))
    from pyninep_browser.imagefile import load_image
    fs = load_image(tree.image())
    with caplog.at_level(logging.WARNING, "pyninep_browser"):
        assert attach(fs, {}) == []
    assert len(caplog.records) == 1 and "test-temporary" in caplog.records[0].getMessage()


def test_scripts_build_trees_and_declare_live_files(tmp_path):
    script = tmp_path / "site.py"
    script.write_text(
        "from pyninep_browser.authoring import live_file\n"
        "hello = live_file('test-script-hello', read=lambda: 'from the script\\n')\n"
        "def build(tree, who='world'):\n"
        "    (tree / 'etc/who').write_text(who)\n"
        "    (tree / 'hello').live(hello)\n")
    tree = build_from_script(script, who="me")
    assert (tree / "etc/who").read_text() == "me"
    assert (tree / "hello").read_text() == "from the script\n"
    module = load_script(source="X = 1\n")
    assert module.X == 1
    with pytest.raises(ValueError):
        build_from_script(source="pass\n")


# ----------------------------------------------------------------- live files through 9P


@pytest.fixture
def live_tree():
    state = {"written": [], "value": "v1\n"}

    class Echo:
        """A stream: a read returns what the previous write on the same open asked for."""

        def __init__(self, flags):
            self.pending = b""

        def write(self, data):
            self.pending = data.upper()

        def read(self, size):
            out, self.pending = self.pending[:size], self.pending[size:]
            return out

    def boom():
        raise ValueError("the live function is broken")

    def who():
        ctx = context()
        return f"uid {ctx.cred.uid}\n"

    tree = Tree()
    (tree / "etc/passwd").write_text("root:x:0:0::/:/bin/sh\nu:x:1000:1000::/:/bin/sh\n")
    (tree / "live/value").live(live_file("t-value", read=lambda: state["value"]))
    (tree / "live/sink").live(live_file("t-sink", read=lambda: b"".join(state["written"]),
                                        write=state["written"].append), mode=0o666)
    (tree / "live/echo").live(live_file("t-echo", open=Echo), mode=0o666)
    (tree / "live/boom").live(live_file("t-boom", read=boom))
    (tree / "live/denied").live(live_file("t-denied", read=lambda: (_ for _ in ()).throw(
        PermissionError(errno.EACCES, "no"))))
    (tree / "live/who").live(live_file("t-who", read=who))
    (tree / "live/slow").live(live_file("t-slow", read=lambda: [0 for _ in iter(int, 1)], limit=0.2))
    (tree / "live/dir").live(live_dir("t-dir", list=lambda: {k: f"{k}\n" for k in state["names"]}))
    state["names"] = ["a", "b"]
    server = Server(tree.fs)
    return server, state


def _open(c, path, flags):
    f = c.walk_new(path)
    c.lopen(f, flags)
    return f


def test_live_read_is_one_snapshot_per_open_and_getattr_tells_its_size(live_tree):
    server, state = live_tree
    c = Client(server)
    first = _open(c, "live/value", O_RDONLY)
    state["value"] = "changed and longer\n"
    assert c.read(first, 0, 2) + c.read(first, 2, 100) == b"v1\n"  # the snapshot taken at open
    assert c.getattr(first).size == 3
    second = _open(c, "live/value", O_RDONLY)  # two opens at once: each its own snapshot
    assert c.read(second, 0, 100) == b"changed and longer\n"
    assert c.read(first, 0, 100) == b"v1\n"
    st = c.getattr(second)
    assert st.size == len(b"changed and longer\n") and st.mtime > 0
    c.clunk(first)
    c.clunk(second)
    c.setattr(c.walk_new("live/value"), 0x8, size=0)  # what O_TRUNC sends: the copy empties
    third = _open(c, "live/value", O_RDONLY)  # the same content as before: still told honestly
    assert c.getattr(third).size == len(b"changed and longer\n")


def test_live_write_gets_the_whole_content_at_close_and_fsync(live_tree):
    server, state = live_tree
    c = Client(server)
    f = _open(c, "live/sink", O_WRONLY | O_TRUNC)
    c.write(f, 0, b"hello ")
    c.write(f, 6, b"world")
    assert state["written"] == []
    c.fsync(f)
    assert state["written"] == [b"hello world"]
    c.write(f, 11, b"!")
    c.clunk(f)
    assert state["written"] == [b"hello world", b"hello world!"]
    g = _open(c, "live/sink", O_RDONLY)
    assert c.read(g, 0, 100) == b"hello worldhello world!"
    c.clunk(g)
    # Two writers at once: each commits its own content at its own close.
    a = _open(c, "live/sink", O_WRONLY)
    b = _open(c, "live/sink", O_WRONLY | O_APPEND)
    c.write(a, 0, b"A")
    c.write(b, 0, b"B")
    c.clunk(b)
    c.clunk(a)
    assert state["written"][-2:] == [b"B", b"A"]


def test_stream_state_per_open(live_tree):
    server, _ = live_tree
    c = Client(server)
    one = _open(c, "live/echo", O_RDWR)
    two = _open(c, "live/echo", O_RDWR)
    c.write(one, 0, b"ping")
    c.write(two, 0, b"other")
    assert c.read(one, 0, 100) == b"PING" and c.read(one, 0, 100) == b""
    assert c.read(two, 0, 2) == b"OT" and c.read(two, 0, 100) == b"HER"
    c.clunk(one)
    c.clunk(two)


def test_a_raising_function_is_eio_for_that_request_and_one_log_line(live_tree, caplog):
    server, _ = live_tree
    c = Client(server)
    f = c.walk_new("live/boom")
    with caplog.at_level(logging.ERROR, "pyninep_browser"):
        assert err(c.lopen, f, O_RDONLY) == errno.EIO
    assert len(caplog.records) == 1
    assert "the live function is broken" in caplog.records[0].getMessage()
    assert "\n" not in caplog.records[0].getMessage() and caplog.records[0].exc_info is None
    # The server goes on: the same fid can be clunked, other files read.
    c.clunk(f)
    g = _open(c, "live/value", O_RDONLY)
    assert c.read(g, 0, 10) == b"v1\n"
    d = c.walk_new("live/denied")
    assert err(c.lopen, d, O_RDONLY) == errno.EACCES  # an OSError keeps its errno


def test_a_slow_function_is_stopped_at_its_limit(live_tree, caplog):
    server, _ = live_tree
    c = Client(server)
    f = c.walk_new("live/slow")
    with caplog.at_level(logging.ERROR, "pyninep_browser"):
        assert err(c.lopen, f, O_RDONLY) == errno.EIO
    assert "stopped after 0.2 s" in caplog.text


def test_read_only_live_file_refuses_writers_and_context_sees_the_caller(live_tree):
    server, _ = live_tree
    c = Client(server)
    f = c.walk_new("live/value")
    assert err(c.lopen, f, O_WRONLY) == errno.EACCES
    user = Client(server, uid=1000)
    w = _open(user, "live/who", O_RDONLY)
    assert user.read(w, 0, 100) == b"uid 1000\n"


def test_live_directory_is_computed_at_open_and_on_lookup(live_tree):
    server, state = live_tree
    c = Client(server)
    d = _open(c, "live/dir", O_RDONLY)
    assert sorted(n for n in c.readdir_all(d) if n not in (".", "..")) == ["a", "b"]
    c.clunk(d)
    state["names"] = ["b", "c"]
    f = _open(c, "live/dir/c", O_RDONLY)  # a name new since the last listing
    assert c.read(f, 0, 10) == b"c\n"
    d = _open(c, "live/dir", O_RDONLY)
    assert sorted(n for n in c.readdir_all(d) if n not in (".", "..")) == ["b", "c"]
    assert err(c.walk_new, "live/dir/a") == errno.ENOENT


def test_async_live_function_defers_the_reply():
    async def slow_read():
        await asyncio.sleep(0.01)
        return "async value\n"

    tree = Tree()
    (tree / "a").live(live_file("t-async", read=slow_read))
    replies = []
    server = Server(tree.fs, on_reply=replies.append)
    c = Client(server)
    f = c.walk_new("a")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        import struct
        frame = struct.pack("<IBHII", 15, 12, 77, f, O_RDONLY)
        assert server.handle(frame) is None  # deferred
        deadline = time.monotonic() + 30  # a busy machine may take a while to run the loop
        while not replies and time.monotonic() < deadline:
            loop.run_until_complete(asyncio.sleep(0.01))
        assert len(replies) == 1 and replies[0][4] == 13 and replies[0][5:7] == (77).to_bytes(2, "little")
        assert c.read(f, 0, 100) == b"async value\n"
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def test_stats_count_requests_by_type():
    server = Server()
    stats = server.enable_stats()
    c = Client(server)
    c.getattr(0)
    assert stats["requests"][24] == 1 and stats["requests"][100] == 1  # Tgetattr, Tversion
    assert stats["bytes_in"] > 0 and stats["bytes_out"] > stats["bytes_in"]


def test_a_misspelt_attribute_is_a_clear_type_error_and_creates_nothing():
    tree = Tree()
    with pytest.raises(TypeError, match="'mtim'"):
        (tree / "f").write_bytes(b"x", mtim=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="'owner'"):
        (tree / "d").mkdir(owner=3)  # type: ignore[call-arg]
    assert not (tree / "f").exists() and not (tree / "d").exists()
    (tree / "g").write_text("y", uid=7, mtime=5)
    st = (tree / "g").stat()
    assert (st.st_uid, st.st_mtime_ns) == (7, 5 * 10**9)


def test_what_a_live_files_python_changes_is_announced_and_the_guests_own_requests_are_not(live_tree):
    """The guest caches (cache=loose): the server tells the page (Filesystem.on_outside_change)
    when files change other than by the guest's own requests, so the guest drops its caches. A
    live file's Python changing the tree is such a change; the guest writing a file is not; nor is
    reading a live file (its snapshot is kept in the inode). Live files have qid.version 0 (our
    kernel never caches them), stored files 1."""
    server, state = live_tree
    fs = server.fs
    told: list[int] = []
    fs.on_outside_change = lambda: told.append(1)
    c = Client(server)
    f = c.walk_new("")
    c.lcreate(f, "mine", os.O_WRONLY, 0o644)
    c.write(f, 0, b"the guest's own\n")
    c.clunk(f)
    for _ in range(2):
        v = _open(c, "live/value", O_RDONLY)
        assert c.read(v, 0, 100) == b"v1\n"
        c.clunk(v)
    assert told == []
    d = _open(c, "live/dir", os.O_RDONLY | os.O_DIRECTORY)  # its entries a, b appear: names change
    c.clunk(d)
    assert told == [1]
    c.clunk(_open(c, "live/dir", os.O_RDONLY | os.O_DIRECTORY))  # the same entries: nothing new
    assert told == [1]
    before = len(told)
    state["written"].clear()
    s = _open(c, "live/sink", O_WRONLY | O_TRUNC)

    def sink(data: bytes) -> None:  # a live write whose Python changes a file
        (Tree(fs) / "made-by-python").write_text(data.decode())

    fs.resolve("/live/sink").backend.spec.write = sink
    c.write(s, 0, b"from python")
    c.clunk(s)
    assert len(told) == before + 1 and fs.read_file("/made-by-python") == b"from python"
    assert c.getattr(c.walk_new("live/value")).qid[1] == 0
    assert c.getattr(c.walk_new("mine")).qid[1] == 1


def test_an_open_carries_the_data_version_that_moves_with_each_write(live_tree):
    """Close-to-open for caching guests: the qid of a Tlopen or Tlcreate carries the file's data
    version (Rgetattr's data_version, never 0 for a stored file), which another client's write or
    truncate moves; walks and getattr keep qid.version 1, and a live file's are all 0."""
    server, _ = live_tree
    a = b = Client(server)  # one session's fids stand for two clients: the server does not tell them apart
    f = a.walk_new("")
    (_, created, _), _ = a.lcreate(f, "shared", os.O_RDWR, 0o644)
    assert created == a.getattr(f).data_version != 0
    a.write(f, 0, b"one\n")
    g = b.walk_new("shared")
    (_, opened, _), _ = b.lopen(g, O_RDONLY)
    assert opened == b.getattr(g).data_version != created
    assert b.getattr(g).qid[1] == 1
    a.clunk(f)
    t = b.walk_new("shared")
    (_, truncated, _), _ = b.lopen(t, O_WRONLY | O_TRUNC)
    assert truncated not in (opened, created)
    h = a.walk_new("shared")
    assert a.lopen(h, O_RDONLY)[0][1] == truncated  # nothing changed since: the same version
    v = a.walk_new("live/value")
    assert a.lopen(v, O_RDONLY)[0][1] == 0 and a.getattr(v).data_version == 0

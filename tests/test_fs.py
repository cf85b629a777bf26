"""Filesystem rules, checked on the Filesystem directly (no 9P): what a user of a POSIX fs relies on."""

import errno
import stat

import pytest

from pyninep_browser.fs import CHUNK, Cred, Filesystem, F_RDLCK, F_UNLCK, F_WRLCK, LOCK_END

from stores import KINDS, SMALL_CACHE, assert_store_round_trip, open_store

ALICE = Cred(1000, 1000)
BOB = Cred(1001, 1001)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000 * 10**9

    def __call__(self) -> int:
        return self.now

    def tick(self, ns: int = 1_000_000) -> None:
        self.now += ns


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(params=KINDS)
def new_fs(request, clock, tmp_path):
    """Make the test's filesystem, plain or kept in a store; at the end, a stored one must
    reopen from its store as the same tree."""
    made = []

    def make(**options):
        store = open_store(request.param, tmp_path)
        fs = Filesystem(clock=clock, store=store, cache_bytes=SMALL_CACHE, **options)
        made.append((fs, store, options))
        return fs

    yield make
    for fs, store, options in made:
        if store is not None:
            assert_store_round_trip(fs, request.param, store, tmp_path, clock=clock, **options)


@pytest.fixture
def fs(new_fs):
    return new_fs()


def errno_of(fn, *args, **kw):
    with pytest.raises(OSError) as info:
        fn(*args, **kw)
    return info.value.errno


def test_root_is_a_directory_owned_by_root_mode_0755(fs):
    assert stat.S_ISDIR(fs.root.mode) and stat.S_IMODE(fs.root.mode) == 0o755
    assert (fs.root.uid, fs.root.gid, fs.root.nlink) == (0, 0, 2)


def test_inode_numbers_are_unique_and_never_reused(fs):
    a = fs.create(fs.root, "a", 0o644)
    fs.unlink(fs.root, "a")
    b = fs.create(fs.root, "b", 0o644)
    assert b.ino != a.ino and b.ino > a.ino


def test_sparse_file_holes_cost_no_memory_and_read_as_zeros(fs):
    f = fs.create(fs.root, "sparse", 0o644)
    fs.write(f, 10 * 2**30, b"end")
    assert f.size == 10 * 2**30 + 3
    assert f.allocated < CHUNK + 3
    assert fs.read_bytes(f, 5 * 2**30, 8) == bytes(8)
    assert fs.read_bytes(f, 10 * 2**30 - 2, 10) == b"\0\0end"


def test_write_spanning_chunks_reads_back(fs):
    f = fs.create(fs.root, "big", 0o644)
    data = bytes(range(256)) * (3 * CHUNK // 256 + 7)
    fs.write(f, 100, data)
    assert fs.read_bytes(f, 100, len(data)) == data
    assert fs.read_bytes(f, 0, 100) == bytes(100)


def test_truncate_down_then_up_exposes_zeros_not_old_data(fs):
    f = fs.create(fs.root, "t", 0o644)
    fs.write(f, 0, b"x" * (CHUNK + 100))
    fs.truncate(f, 10)
    fs.truncate(f, CHUNK + 100)
    assert fs.read_bytes(f, 0, CHUNK + 100) == b"x" * 10 + bytes(CHUNK + 90)


def test_quota_bytes_gives_enospc_and_changes_nothing(new_fs):
    fs = new_fs(quota_bytes=100_000)
    f = fs.create(fs.root, "f", 0o644)
    fs.write(f, 0, b"a" * 90_000)
    assert errno_of(fs.write, f, 90_000, b"b" * 20_000) == errno.ENOSPC
    assert f.size == 90_000
    fs.truncate(f, 0)
    fs.write(f, 0, b"c" * 99_000)  # freed space is usable again


def test_quota_inodes_gives_enospc(new_fs):
    fs = new_fs(quota_inodes=3)
    fs.create(fs.root, "a", 0o644)
    fs.mkdir(fs.root, "d", 0o755)
    assert errno_of(fs.create, fs.root, "b", 0o644) == errno.ENOSPC
    assert fs.statfs().ffree == 0


def test_user_quota_gives_edquot_but_root_is_exempt(new_fs):
    fs = new_fs(user_quota_bytes=1000)
    fs.setattr(fs.root, mode=0o777)
    mine = fs.create(fs.root, "mine", 0o644, ALICE)
    assert errno_of(fs.write, mine, 0, b"x" * 2000, ALICE) == errno.EDQUOT
    roots = fs.create(fs.root, "roots", 0o644)
    fs.write(roots, 0, b"x" * 2000)


def test_max_file_size_gives_efbig(new_fs):
    fs = new_fs(max_file_size=1000)
    f = fs.create(fs.root, "f", 0o644)
    assert errno_of(fs.write, f, 1000, b"x") == errno.EFBIG
    assert fs.write(f, 990, b"y" * 50) == 10  # short write up to the limit, as Linux does
    assert errno_of(fs.truncate, f, 1001) == errno.EFBIG


def test_statfs_counts_follow_usage(fs):
    before = fs.statfs()
    f = fs.create(fs.root, "f", 0o644)
    fs.write(f, 0, b"x" * 3 * 4096)
    after = fs.statfs()
    assert before.bfree - after.bfree == 3
    assert before.ffree - after.ffree == 1
    assert after.namelen == 255


def test_hard_links_share_the_inode_and_count(fs):
    f = fs.create(fs.root, "a", 0o644)
    fs.link(fs.root, "b", f)
    assert f.nlink == 2 and fs.lookup(fs.root, "b") is f
    fs.unlink(fs.root, "a")
    assert f.nlink == 1 and fs.read_bytes(f, 0, 1) == b""
    assert errno_of(fs.link, fs.root, "c", fs.mkdir(fs.root, "d", 0o755)) == errno.EPERM


def test_unlinked_file_stays_usable_while_referenced_and_frees_on_last_unref(fs):
    f = fs.create(fs.root, "f", 0o644)
    fs.write(f, 0, b"data")
    fs.ref(f)
    used = fs.used_bytes
    fs.unlink(fs.root, "f")
    assert f.nlink == 0 and fs.read_bytes(f, 0, 4) == b"data"
    fs.write(f, 4, b"more")
    assert fs.used_bytes == used + 4
    fs.unref(f)
    assert f.ino not in fs.inodes and fs.used_bytes == 0


def test_directory_link_counts(fs):
    d = fs.mkdir(fs.root, "d", 0o755)
    assert fs.root.nlink == 3 and d.nlink == 2
    fs.mkdir(d, "e", 0o755)
    assert d.nlink == 3
    fs.unlink(d, "e", rmdir=True)
    assert d.nlink == 2


def test_unlink_and_rmdir_errors_match_linux(fs):
    d = fs.mkdir(fs.root, "d", 0o755)
    fs.create(d, "f", 0o644)
    assert errno_of(fs.unlink, fs.root, "d") == errno.EISDIR
    assert errno_of(fs.unlink, fs.root, "d", rmdir=True) == errno.ENOTEMPTY
    assert errno_of(fs.unlink, d, "f", rmdir=True) == errno.ENOTDIR
    assert errno_of(fs.unlink, d, "missing") == errno.ENOENT
    assert errno_of(fs.unlink, fs.root, ".", rmdir=True) == errno.EINVAL


@pytest.mark.parametrize("name,err", [("", errno.EINVAL), (".", errno.EINVAL), ("..", errno.EINVAL),
                                      ("a/b", errno.EINVAL), ("x" * 256, errno.ENAMETOOLONG)])
def test_bad_names_are_refused(fs, name, err):
    assert errno_of(fs.create, fs.root, name, 0o644) == err


def test_name_of_255_bytes_is_fine(fs):
    fs.create(fs.root, "n" * 255, 0o644)
    fs.create(fs.root, "é" * 127, 0o644)  # 254 bytes of UTF-8


def test_rename_rules(fs):
    a = fs.mkdir(fs.root, "a", 0o755)
    sub = fs.mkdir(a, "sub", 0o755)
    full = fs.mkdir(fs.root, "full", 0o755)
    fs.create(full, "x", 0o644)
    f = fs.create(fs.root, "f", 0o644)
    assert errno_of(fs.rename, fs.root, "a", sub, "a2") == errno.EINVAL
    assert errno_of(fs.rename, fs.root, "a", fs.root, "full") == errno.ENOTEMPTY
    assert errno_of(fs.rename, fs.root, "a", fs.root, "f") == errno.ENOTDIR
    assert errno_of(fs.rename, fs.root, "f", fs.root, "a") == errno.EISDIR
    fs.link(fs.root, "g", f)
    fs.rename(fs.root, "f", fs.root, "g")  # same inode: nothing happens
    assert fs.lookup(fs.root, "f") is f and f.nlink == 2
    empty = fs.mkdir(fs.root, "empty", 0o755)
    fs.rename(fs.root, "a", fs.root, "empty")  # over an empty directory
    assert fs.lookup(fs.root, "empty") is a and empty.nlink == 0
    fs.rename(a, "sub", fs.root, "moved")
    assert sub.parent is fs.root and a.nlink == 2 and fs.lookup(sub, "..") is fs.root


def test_rename_replacing_a_file_frees_it(fs):
    a = fs.create(fs.root, "a", 0o644)
    b = fs.create(fs.root, "b", 0o644)
    fs.write(b, 0, b"old")
    fs.rename(fs.root, "a", fs.root, "b")
    assert fs.lookup(fs.root, "b") is a and b.ino not in fs.inodes


def test_timestamps_follow_posix(fs, clock):
    d = fs.mkdir(fs.root, "d", 0o755)
    clock.tick()
    f = fs.create(d, "f", 0o644)
    assert d.mtime == d.ctime == f.btime == clock.now
    clock.tick()
    fs.write(f, 0, b"x")
    assert f.mtime == f.ctime == clock.now and d.mtime < clock.now
    clock.tick()
    fs.link(d, "g", f)
    assert f.ctime == clock.now and f.mtime < clock.now and d.mtime == clock.now
    clock.tick()
    fs.setattr(f, mode=0o600)
    assert f.ctime == clock.now and f.mtime < clock.now
    clock.tick()
    fs.setattr(f, atime=5 * 10**9 + 7, mtime=6 * 10**9 + 9)
    assert (f.atime, f.mtime, f.ctime) == (5 * 10**9 + 7, 6 * 10**9 + 9, clock.now)


def test_relatime_updates_atime_only_when_older_than_mtime(fs, clock):
    f = fs.create(fs.root, "f", 0o644)
    fs.write(f, 0, b"x")
    clock.tick()
    fs.read(f, 0, 1)
    first = f.atime
    assert first == clock.now
    clock.tick()
    fs.read(f, 0, 1)
    assert f.atime == first  # not again until mtime moves or a day passes
    clock.tick(86400 * 10**9)
    fs.read(f, 0, 1)
    assert f.atime == clock.now


def test_permissions_for_non_root(fs):
    assert errno_of(fs.mkdir, fs.root, "nope", 0o755, ALICE) == errno.EACCES
    d = fs.mkdir(fs.root, "home", 0o755)
    fs.setattr(d, uid=1000, gid=1000)
    f = fs.create(d, "secret", 0o600, ALICE, 1000)
    assert errno_of(fs.open, f, 0, BOB) == errno.EACCES
    fs.open(f, 2, ALICE)
    assert errno_of(fs.create, d, "x", 0o644, BOB) == errno.EACCES
    assert errno_of(fs.setattr, f, BOB, mode=0o777) == errno.EPERM
    assert errno_of(fs.setattr, f, ALICE, uid=1001) == errno.EPERM
    fs.setattr(f, ALICE, mode=0o644)
    fs.open(f, 0, BOB)
    private = fs.mkdir(d, "private", 0o700, ALICE)
    assert errno_of(fs.lookup, private, "anything", BOB) == errno.EACCES


def test_root_cannot_execute_a_file_nobody_may_execute(fs):
    f = fs.create(fs.root, "f", 0o644)
    assert not fs.permitted(f, Cred(0, 0), 1)
    fs.setattr(f, mode=0o744)
    assert fs.permitted(f, Cred(0, 0), 1)


def test_sticky_directory_protects_other_users_files(fs):
    tmp = fs.mkdir(fs.root, "tmp", 0o1777)
    fs.create(tmp, "alice", 0o644, ALICE)
    assert errno_of(fs.unlink, tmp, "alice", BOB) == errno.EPERM
    fs.unlink(tmp, "alice", ALICE)


def test_write_by_non_root_clears_setuid_and_setgid(fs):
    fs.setattr(fs.root, mode=0o777)
    f = fs.create(fs.root, "prog", 0o6755, ALICE, 1000)
    fs.write(f, 0, b"x", ALICE)
    assert stat.S_IMODE(f.mode) == 0o755
    g = fs.create(fs.root, "rootprog", 0o6755)
    fs.write(g, 0, b"x")  # root keeps them (CAP_FSETID)
    assert stat.S_IMODE(g.mode) == 0o6755


def test_setgid_without_group_exec_survives_write(fs):
    fs.setattr(fs.root, mode=0o777)
    f = fs.create(fs.root, "f", 0o2644, ALICE, 1000)
    fs.write(f, 0, b"x", ALICE)
    assert stat.S_IMODE(f.mode) == 0o2644


def test_chown_clears_setuid(fs):
    f = fs.create(fs.root, "f", 0o4755)
    fs.setattr(f, uid=1000)
    assert stat.S_IMODE(f.mode) == 0o755 and f.uid == 1000


def test_chmod_by_non_member_drops_setgid(fs):
    f = fs.create(fs.root, "f", 0o644)
    fs.setattr(f, uid=1000, gid=50)  # Alice's file, in a group Alice is not in
    fs.setattr(f, ALICE, mode=0o2755)
    assert stat.S_IMODE(f.mode) == 0o755


def test_setgid_directory_passes_group_down(fs):
    d = fs.mkdir(fs.root, "shared", 0o2777, Cred(0, 0), 77)
    f = fs.create(d, "f", 0o644, ALICE, 1000)
    sub = fs.mkdir(d, "sub", 0o755, ALICE, 1000)
    assert f.gid == 77 and sub.gid == 77 and sub.mode & stat.S_ISGID


def test_utimes_rules(fs):
    f = fs.create(fs.root, "f", 0o666)
    assert errno_of(fs.setattr, f, BOB, mtime=5) == errno.EPERM
    fs.setattr(f, BOB, mtime_now=True, atime_now=True)  # writable: "now" is allowed
    g = fs.create(fs.root, "g", 0o644)
    assert errno_of(fs.setattr, g, BOB, mtime_now=True) == errno.EACCES


def test_mknod_types_and_device_numbers(fs):
    fifo = fs.mknod(fs.root, "fifo", stat.S_IFIFO | 0o644)
    dev = fs.mknod(fs.root, "null", stat.S_IFCHR | 0o666, rdev=0x103)
    sock = fs.mknod(fs.root, "sock", stat.S_IFSOCK | 0o755)
    assert stat.S_ISFIFO(fifo.mode) and stat.S_ISCHR(dev.mode) and dev.rdev == 0x103
    assert stat.S_ISSOCK(sock.mode)
    fs.setattr(fs.root, mode=0o777)
    assert errno_of(fs.mknod, fs.root, "blk", stat.S_IFBLK | 0o600, 0, ALICE) == errno.EPERM
    assert errno_of(fs.mknod, fs.root, "dir", stat.S_IFDIR | 0o755) == errno.EINVAL


def test_symlink_rules(fs):
    s = fs.symlink(fs.root, "s", "target/path")
    assert fs.readlink(s) == b"target/path" and s.size == 11
    assert errno_of(fs.symlink, fs.root, "e", "") == errno.ENOENT
    assert errno_of(fs.symlink, fs.root, "long", "x" * 4096) == errno.ENAMETOOLONG
    assert errno_of(fs.open, s, 0) == errno.ELOOP


def test_xattrs_create_replace_list_remove_and_bounds(fs):
    f = fs.create(fs.root, "f", 0o644)
    fs.setxattr(f, "user.a", b"1")
    assert errno_of(fs.setxattr, f, "user.a", b"2", 1) == errno.EEXIST
    assert errno_of(fs.setxattr, f, "user.b", b"2", 2) == errno.ENODATA
    fs.setxattr(f, "user.a", b"3", 2)
    fs.setxattr(f, "security.capability", b"\x01\x00\x00\x02")
    assert sorted(fs.listxattr(f)) == ["security.capability", "user.a"]
    assert fs.getxattr(f, "user.a") == b"3"
    fs.removexattr(f, "user.a")
    assert errno_of(fs.getxattr, f, "user.a") == errno.ENODATA
    assert errno_of(fs.setxattr, f, "user.big", b"x" * 65537) == errno.E2BIG
    assert errno_of(fs.setxattr, f, "user." + "n" * 251, b"x") == errno.ERANGE
    assert errno_of(fs.setxattr, f, "system.posix_acl_access", b"x") == errno.EOPNOTSUPP
    assert errno_of(fs.setxattr, f, "bogus.ns", b"x") == errno.EOPNOTSUPP
    assert errno_of(fs.setxattr, f, "trusted.t", b"x", 0, ALICE) == errno.EPERM


def test_xattr_total_per_inode_is_bounded(fs):
    f = fs.create(fs.root, "f", 0o644)
    for i in range(3):
        fs.setxattr(f, f"user.{i}", b"x" * 65536)
    assert errno_of(fs.setxattr, f, "user.3", b"x" * 65536) == errno.ENOSPC


def test_readdir_cookies_survive_changes(fs):
    d = fs.mkdir(fs.root, "d", 0o755)
    for i in range(10):
        fs.create(d, f"f{i}", 0o644)
    first = list(fs.readdir(d, 0))[:6]  # ".", "..", f0..f3
    cookie = first[-1][0]
    fs.unlink(d, "f1")  # before the cookie
    fs.unlink(d, "f5")  # after it
    fs.create(d, "new", 0o644)
    rest = [name for _, name, _ in fs.readdir(d, cookie)]
    assert rest == ["f4", "f6", "f7", "f8", "f9", "new"]


def test_readdir_cookies_survive_compaction(fs):
    d = fs.mkdir(fs.root, "d", 0o755)
    for i in range(300):
        fs.create(d, f"f{i:03}", 0o644)
    entries = list(fs.readdir(d, 0))
    cookie = entries[150][0]
    for i in range(0, 300, 2):
        fs.unlink(d, f"f{i:03}")
    rest = [name for _, name, _ in fs.readdir(d, cookie)]
    assert rest == [f"f{i:03}" for i in range(149, 300, 2)]


def test_posix_locks_split_merge_upgrade_and_conflict(fs):
    f = fs.create(fs.root, "f", 0o644)
    a, b = "owner-a", "owner-b"
    assert fs.lock(f, a, F_RDLCK, 0, 99)
    assert fs.lock(f, b, F_RDLCK, 50, 149)  # shared reads overlap
    assert not fs.lock(f, b, F_WRLCK, 0, 10)  # conflicts with a's read lock
    assert fs.lock(f, a, F_UNLCK, 40, 59)  # split a's lock in two
    assert [(lk.start, lk.end) for lk in fs.locks[f.ino] if lk.owner == a] == [(0, 39), (60, 99)]
    assert fs.lock(f, a, F_RDLCK, 40, 59)  # merge back
    assert [(lk.start, lk.end) for lk in fs.locks[f.ino] if lk.owner == a] == [(0, 99)]
    fs.unlock_owner(f, b)
    assert fs.lock(f, a, F_WRLCK, 10, 19)  # upgrade a piece
    assert sorted((lk.start, lk.end, lk.type) for lk in fs.locks[f.ino]) == [
        (0, 9, F_RDLCK), (10, 19, F_WRLCK), (20, 99, F_RDLCK)]
    assert fs.conflict(f, b, F_RDLCK, 15, 15).type == F_WRLCK
    assert fs.conflict(f, b, F_RDLCK, 50, LOCK_END) is None
    assert fs.lock(f, b, F_WRLCK, 100, LOCK_END)


def test_path_helpers_author_a_tree(fs):
    fs.write_file("/etc/motd", b"hi\n")
    fs.add_symlink("/bin/sh", "busybox")
    fs.write_file("/bin/busybox", b"\x7fELF", mode=0o755)
    fs.add_hardlink("/bin/bb", "/bin/busybox")
    fs.add_node("/dev/null", stat.S_IFCHR | 0o666, rdev=0x103)
    assert fs.read_file("/etc/motd") == b"hi\n"
    assert fs.read_file("/bin/sh") == b"\x7fELF"
    assert fs.resolve("/bin/sh", follow=False).target == b"busybox"
    assert sorted(fs.listdir("/bin")) == ["bb", "busybox", "sh"]
    assert fs.resolve("/bin/bb").nlink == 2
    fs.add_symlink("/loop", "/loop")
    assert errno_of(fs.resolve, "/loop") == errno.ELOOP
    fs.remove("/etc/motd")
    assert errno_of(fs.read_file, "/etc/motd") == errno.ENOENT


def test_wire_errnos_are_linux_numbers_whatever_the_host():
    import errno as host
    from pyninep_browser.protocol import LINUX_ERRNO, linux_errno
    # Pyodide's errno module has Emscripten's numbers; the guest needs Linux's.
    assert LINUX_ERRNO["ENODATA"] == 61 and LINUX_ERRNO["ENOENT"] == 2 and LINUX_ERRNO["ESTALE"] == 116
    assert linux_errno(host.ENODATA) == 61 and linux_errno(host.ENOTEMPTY) == 39
    assert linux_errno(None) == 5 and linux_errno(-12345) == 5


def test_rename_over_an_ancestor_of_the_source_is_enotempty(fs):
    d = fs.mkdir(fs.root, "d", 0o755)
    fs.create(d, "a", 0o644)
    assert errno_of(fs.rename, d, "a", fs.root, "d") == errno.ENOTEMPTY  # found by the differential test
    assert errno_of(fs.link, fs.root, "d", d) == errno.EEXIST  # EEXIST before EPERM, as Linux


def test_allocated_bytes_track_writes_truncates_and_snapshots(fs):
    from pyninep_browser import snapshot
    f = fs.create(fs.root, "f", 0o644)
    fs.write(f, 0, b"x" * (3 * CHUNK + 10))
    fs.write(f, 10 * CHUNK, b"y")
    assert f.allocated == sum(len(c) for c in f.chunks.values()) == 3 * CHUNK + 11
    fs.truncate(f, CHUNK + 5)
    assert f.allocated == sum(len(c) for c in f.chunks.values()) == CHUNK + 5
    again = snapshot.load_filesystem(snapshot.save_filesystem(fs))
    assert again.resolve("/f").allocated == CHUNK + 5


def test_changes_counts_every_kind_of_change_and_nothing_else():
    fs = Filesystem()
    seen = fs.changes
    f = fs.write_file("/a", b"x")
    assert fs.changes > seen
    for change in (lambda: fs.write(f, 0, b"y"), lambda: fs.setattr(f, mode=0o600),
                   lambda: fs.setxattr(f, "user.k", b"v"), lambda: fs.mkdir(fs.root, "d", 0o755),
                   lambda: fs.rename(fs.root, "a", fs.root, "b"), lambda: fs.unlink(fs.root, "b")):
        seen = fs.changes
        change()
        assert fs.changes > seen
    seen = fs.changes
    fs.listdir("/")
    fs.resolve("/d")
    assert fs.changes == seen

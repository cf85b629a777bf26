"""Differential test: the same random operations through 9P frames against our server and through
``os.*`` against a real directory on the host; results and errnos must agree.

The 9P side behaves like the Linux client: it resolves a path one component per Twalk, does not
follow symlinks (operations here never go through one), and turns each syscall into the messages
the kernel would send. Runs as whatever user runs the suite; permission differences are avoided by
comparing operations whose outcome does not depend on being root.

It runs once per store: no store, the memory store, SQLite, and an asynchronous store whose
answers come later (every chunk load is a deferred reply, re-run when the data arrives). With a
store, the chunk cache holds two chunks, and the filesystem is committed and reopened from its
store at random points (a fresh Server, as after a reload), so the stored tree is compared too.
"""

import errno
import os
import stat
import tempfile

import pytest

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ninep_client import Client, NinePError
from pyninep_browser import Filesystem, Server
from pyninep_browser.store import MemoryStore, SQLiteStore
from stores import SMALL_CACHE, AsyncStore, DrainingServer

PATHS = ["a", "b", "c", "d", "d/a", "d/e", "d/e/f", "g"]
O_WRONLY, O_RDONLY, O_RDWR, O_EXCL, O_TRUNC, AT_REMOVEDIR = 1, 0, 2, 0o200, 0o1000, 0x200
paths = st.sampled_from(PATHS)
data = st.binary(max_size=300)
offsets = st.sampled_from([0, 1, 7, 100, 4095, 65535, 65536, 70000])


class Outcome:
    """What an operation did: a value, or an errno."""

    @staticmethod
    def of(fn, *args):
        try:
            return ("ok", fn(*args))
        except NinePError as exc:
            return ("err", errno.errorcode.get(exc.errno, exc.errno))
        except OSError as exc:
            return ("err", errno.errorcode.get(exc.errno, exc.errno))


class NineP:
    """POSIX-ish calls spoken as 9P2000.L, one Twalk per path component like the kernel."""

    def __init__(self, kind: str = "plain", db: str | None = None) -> None:
        self.kind = kind
        self.db = db
        self.inner = MemoryStore() if kind in ("memory", "async") else None
        self.deferred = 0
        self.c = Client(self._server())

    def _server(self):
        if self.kind == "plain":
            return Server()
        if self.kind == "sqlite":
            store = SQLiteStore(self.db)
        elif self.kind == "async":
            store = AsyncStore(self.inner)
        else:
            store = self.inner
        self.store = store
        server = Server(Filesystem(store=store, cache_bytes=SMALL_CACHE))
        return DrainingServer(server, store) if self.kind == "async" else server

    def persist(self):
        """Commit what changed (write-behind would), then evict what the cache cannot hold."""
        if self.kind == "plain":
            return
        fs = self.c.server.server.fs if self.kind == "async" else self.c.server.fs
        fs.persist(False, None)
        if self.kind == "async":
            self.store.drain()

    def reopen(self):
        """Commit durably and open the store again in a fresh filesystem and server."""
        if self.kind == "plain":
            return
        server = self.c.server
        fs = server.server.fs if self.kind == "async" else server.fs
        result = []
        fs.persist(True, result.append)
        if self.kind == "async":
            self.deferred += server.deferred
            self.store.drain()
        assert result == [0]
        if self.kind == "sqlite":
            self.store.close()
        self.c = Client(self._server())
        fs = self.c.server.server.fs if self.kind == "async" else self.c.server.fs
        assert fs.repairs == [], fs.repairs

    def close(self):
        if self.kind == "sqlite":
            self.store.close()

    def _walk(self, path: str) -> int:
        fid = self.c.fid()
        self.c.walk(0, fid, [])
        for name in [p for p in path.split("/") if p]:
            nxt = self.c.fid()
            try:
                self.c.walk(fid, nxt, [name])
            finally:
                self.c.clunk(fid)
            fid = nxt
        return fid

    def _parent(self, path: str) -> tuple[int, str]:
        head, _, name = path.rpartition("/")
        return self._walk(head), name

    def _with(self, fid, fn):
        try:
            return fn(fid)
        finally:
            self.c.clunk(fid)

    def create(self, path, payload):
        d, name = self._parent(path)

        def go(f):
            self.c.lcreate(f, name, O_WRONLY | O_EXCL, 0o644)
            return self.c.write(f, 0, payload) if payload else 0
        return self._with(d, go)

    def mkdir(self, path):
        d, name = self._parent(path)
        return self._with(d, lambda f: self.c.mkdir(f, name, 0o755) and None)

    def pwrite(self, path, offset, payload):
        def go(f):
            self.c.lopen(f, O_WRONLY)
            return self.c.write(f, offset, payload)
        return self._with(self._walk(path), go)

    def read(self, path):
        def go(f):
            self.c.lopen(f, O_RDONLY)
            out, pos = b"", 0
            while True:
                chunk = self.c.read(f, pos, 65536)
                if not chunk:
                    return out
                out += chunk
                pos += len(chunk)
        return self._with(self._walk(path), go)

    def truncate(self, path, size):
        return self._with(self._walk(path), lambda f: self.c.setattr(f, 0x8 | 0x20 | 0x40, size=size))

    def unlink(self, path):
        d, name = self._parent(path)
        return self._with(d, lambda f: self.c.unlinkat(f, name, 0))

    def rmdir(self, path):
        d, name = self._parent(path)
        return self._with(d, lambda f: self.c.unlinkat(f, name, AT_REMOVEDIR))

    def rename(self, src, dst):
        sd, sname = self._parent(src)
        try:
            dd, dname = self._parent(dst)
        except NinePError:
            self.c.clunk(sd)
            raise
        try:
            return self.c.renameat(sd, sname, dd, dname)
        finally:
            self.c.clunk(sd)
            self.c.clunk(dd)

    def link(self, src, dst):
        target = self._walk(src)
        try:
            dd, dname = self._parent(dst)
        except NinePError:
            self.c.clunk(target)
            raise
        try:
            return self.c.link(dd, target, dname)
        finally:
            self.c.clunk(target)
            self.c.clunk(dd)

    def symlink(self, path, target):
        d, name = self._parent(path)
        return self._with(d, lambda f: self.c.symlink(f, name, target) and None)

    def readlink(self, path):
        return self._with(self._walk(path), self.c.readlink)

    def chmod(self, path, mode):
        return self._with(self._walk(path), lambda f: self.c.setattr(f, 0x1 | 0x40, mode=mode))

    def lstat(self, path):
        s = self._with(self._walk(path), self.c.getattr)
        return (stat.S_IFMT(s.mode), stat.S_IMODE(s.mode),
                None if stat.S_ISDIR(s.mode) else s.size, None if stat.S_ISDIR(s.mode) else s.nlink)

    def listdir(self, path):
        def go(f):
            self.c.lopen(f, O_RDONLY)
            return sorted(n for n in self.c.readdir_all(f) if n not in (".", ".."))
        return self._with(self._walk(path), go)


class Host:
    def __init__(self, root: str) -> None:
        self.root = root

    def p(self, path):
        return os.path.join(self.root, path)

    def create(self, path, payload):
        fd = os.open(self.p(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            return os.write(fd, payload) if payload else 0
        finally:
            os.close(fd)

    def mkdir(self, path):
        os.mkdir(self.p(path), 0o755)

    def pwrite(self, path, offset, payload):
        fd = os.open(self.p(path), os.O_WRONLY | os.O_NOFOLLOW)
        try:
            return os.pwrite(fd, payload, offset)
        finally:
            os.close(fd)

    def read(self, path):
        fd = os.open(self.p(path), os.O_RDONLY | os.O_NOFOLLOW)
        try:
            out = b""
            while chunk := os.read(fd, 65536):
                out += chunk
            return out
        finally:
            os.close(fd)

    def truncate(self, path, size):
        if os.path.islink(self.p(path)):
            raise OSError(errno.EINVAL, "truncate of a symlink itself")  # what Tsetattr gives
        os.truncate(self.p(path), size)

    def unlink(self, path):
        os.unlink(self.p(path))

    def rmdir(self, path):
        os.rmdir(self.p(path))

    def rename(self, src, dst):
        os.rename(self.p(src), self.p(dst))

    def link(self, src, dst):
        os.link(self.p(src), self.p(dst), follow_symlinks=False)

    def symlink(self, path, target):
        os.symlink(target, self.p(path))

    def readlink(self, path):
        return os.readlink(self.p(path))

    def chmod(self, path, mode):
        os.chmod(self.p(path), mode)

    def lstat(self, path):
        s = os.lstat(self.p(path))
        isdir = stat.S_ISDIR(s.st_mode)
        return (stat.S_IFMT(s.st_mode), stat.S_IMODE(s.st_mode),
                None if isdir else s.st_size, None if isdir else s.st_nlink)

    def listdir(self, path):
        return sorted(os.listdir(self.p(path)))


class SameAsHost(RuleBasedStateMachine):
    KIND = "plain"

    @initialize()
    def setup(self):
        self.tmp = tempfile.TemporaryDirectory()
        os.mkdir(os.path.join(self.tmp.name, "host"))
        self.host = Host(os.path.join(self.tmp.name, "host"))
        self.ours = NineP(self.KIND, os.path.join(self.tmp.name, "fs.db"))
        if self.KIND != "plain":  # files larger than the chunk cache, their chunks not in memory
            self.both("create", "a", bytes(range(256)) * 800)
            self.both("create", "g", b"g" * 70000)
            self.ours.persist()

    def teardown(self):
        if hasattr(self, "tmp"):
            self.ours.close()
            self.tmp.cleanup()

    @rule()
    def persist(self):
        self.ours.persist()

    @rule()
    def reopen(self):
        self.ours.reopen()

    def both(self, op, *args):
        for arg in args:
            if isinstance(arg, str) and arg in PATHS and self._through_symlink(arg):
                return  # the kernel would resolve that link itself before any 9P: not comparable
        mine = Outcome.of(getattr(self.ours, op), *args)
        theirs = Outcome.of(getattr(self.host, op), *args)
        assert mine == theirs, f"{op}{args}: 9P gave {mine}, host gave {theirs}"

    @rule(path=paths, payload=data)
    def create(self, path, payload):
        self.both("create", path, payload)

    @rule(path=paths)
    def mkdir(self, path):
        self.both("mkdir", path)

    @rule(path=paths, offset=offsets, payload=data)
    def pwrite(self, path, offset, payload):
        if self._is_symlink(path):
            return  # open(2) follows the link; the 9P client resolves it first: not comparable
        self.both("pwrite", path, offset, payload)

    @rule(path=paths)
    def read(self, path):
        if not self._is_symlink(path):
            self.both("read", path)

    @rule(path=paths, size=st.sampled_from([0, 1, 50, 70000]))
    def truncate(self, path, size):
        self.both("truncate", path, size)

    @rule(path=paths)
    def unlink(self, path):
        self.both("unlink", path)

    @rule(path=paths)
    def rmdir(self, path):
        self.both("rmdir", path)

    @rule(src=paths, dst=paths)
    def rename(self, src, dst):
        self.both("rename", src, dst)

    @rule(src=paths, dst=paths)
    def link(self, src, dst):
        self.both("link", src, dst)

    @rule(path=paths, to=st.sampled_from(["a", "../x", "/abs/path", "d/e"]))
    def symlink(self, path, to):
        self.both("symlink", path, to)

    @rule(path=paths)
    def readlink(self, path):
        self.both("readlink", path)

    @rule(path=paths, mode=st.sampled_from([0o600, 0o755, 0o4755, 0o1777, 0o2750]))
    def chmod(self, path, mode):
        if not self._is_symlink(path):
            self.both("chmod", path, mode)

    @rule(path=paths)
    def lstat(self, path):
        self.both("lstat", path)

    def _is_symlink(self, path):
        return os.path.islink(self.host.p(path))

    def _through_symlink(self, path):
        parts = path.split("/")
        return any(self._is_symlink("/".join(parts[:i])) for i in range(1, len(parts)))

    @invariant()
    def trees_match(self):
        if not hasattr(self, "tmp"):
            return
        for path in ["", "d", "d/e"]:
            # Through a symlink the kernel resolves the link before any 9P: compare the link.
            self.both("lstat" if self._is_symlink(path) else "listdir", path)


class SameAsHostInMemoryStore(SameAsHost):
    KIND = "memory"


class SameAsHostInSQLite(SameAsHost):
    KIND = "sqlite"


class SameAsHostInAsyncStore(SameAsHost):
    KIND = "async"

    def teardown(self):
        if hasattr(self, "tmp"):
            SameAsHostInAsyncStore.deferred_total += self.ours.deferred + self.ours.c.server.deferred
        super().teardown()


SameAsHostInAsyncStore.deferred_total = 0


def _settings(examples: int):
    return settings(
        max_examples=examples, stateful_step_count=50, deadline=None,
        derandomize=not os.environ.get("DIFF_RANDOM"),
        suppress_health_check=list(HealthCheck), database=None)


SameAsHost.TestCase.settings = _settings(int(os.environ.get("DIFF_EXAMPLES", 300)))
test_same_results_and_errnos_as_the_host = SameAsHost.TestCase
# The stores rerun the same machine with fewer examples each (the plain run covers the rules).
for _cls in (SameAsHostInMemoryStore, SameAsHostInSQLite, SameAsHostInAsyncStore):
    _cls.TestCase.settings = _settings(int(os.environ.get("DIFF_STORE_EXAMPLES", 60)))
test_same_in_a_memory_store = SameAsHostInMemoryStore.TestCase
test_same_in_sqlite = SameAsHostInSQLite.TestCase
test_same_in_an_asynchronous_store = SameAsHostInAsyncStore.TestCase


def test_asynchronous_store_run_deferred_requests():
    """The asynchronous run above really went through deferred replies (run after it)."""
    if SameAsHostInAsyncStore.deferred_total == 0:
        import pytest
        pytest.skip("the asynchronous-store run did not run in this session")
    assert SameAsHostInAsyncStore.deferred_total > 50, SameAsHostInAsyncStore.deferred_total


# ----------------------------------------------------------------- as users other than root
# The server as the only gatekeeper (permissions="server") against the host kernel's own checks:
# the same calls by root and two users, one of them in a supplementary group that the served
# /etc/group names. Ownership, modes (set-ID bits dropped by writes, chmod and chown) and errnos
# must agree. Needs root on the host to take the users' credentials.

ACTORS = {"root": (0, 0, []), "ann": (1000, 1000, [100]), "bob": (1001, 1001, [])}
actors = st.sampled_from(sorted(ACTORS))
modes = st.sampled_from([0o600, 0o644, 0o660, 0o666, 0o700, 0o755, 0o777, 0o1777, 0o2775, 0o4755,
                         0o2664, 0o000])
PASSWD = "root:x:0:0::/root:/bin/sh\nann:x:1000:1000::/home/ann:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n"
GROUP = "root:x:0:\nusers:x:100:ann\nann:x:1000:\nbob:x:1001:\n"


class as_actor:
    """Host calls made with an actor's effective uid, gid and groups (the process is root)."""

    def __init__(self, name: str) -> None:
        self.uid, self.gid, self.groups = ACTORS[name]

    def __enter__(self):
        if self.uid:
            os.setgroups(self.groups)
            os.setegid(self.gid)
            os.seteuid(self.uid)

    def __exit__(self, *exc):
        if self.uid:
            os.seteuid(0)
            os.setegid(0)
            os.setgroups([])


class UserNineP(NineP):
    """The 9P side for one actor: its own session (as the guest's per-uid attach), rooted at /w."""

    def __init__(self, server: Server, actor: str) -> None:
        self.uid, self.gid, _ = ACTORS[actor]
        self.c = Client(server, attach=False)
        self.c.version(1 << 20)
        self.c.attach(0, uid=self.uid, aname="/w")

    def create_mode(self, path, mode):
        d, name = self._parent(path)
        return self._with(d, lambda f: self.c.lcreate(f, name, O_WRONLY | O_EXCL, mode, self.gid) and None)

    def mkdir_mode(self, path, mode):
        d, name = self._parent(path)
        mode &= 0o1777  # mkdir(2) ignores set-ID bits; the kernel drops them before any 9P
        return self._with(d, lambda f: self.c.mkdir(f, name, mode, self.gid) and None)

    def chown(self, path, uid, gid):
        def go(f):
            valid = (0x2 if uid != -1 else 0) | (0x4 if gid != -1 else 0) | 0x40
            # chown(2) of a non-directory drops set-user-ID, and set-group-ID with group-execute:
            # the kernel (notify_change) turns that into a mode in the same Tsetattr.
            mode = self.c.getattr(f).mode
            new = mode & ~stat.S_ISUID
            if mode & (stat.S_ISGID | stat.S_IXGRP) == stat.S_ISGID | stat.S_IXGRP:
                new &= ~stat.S_ISGID
            if not stat.S_ISDIR(mode) and new != mode:
                valid |= 0x1
            self.c.setattr(f, valid, mode=stat.S_IMODE(new), uid=uid & 0xFFFFFFFF,
                           gid=gid & 0xFFFFFFFF)
        return self._with(self._walk(path), go)

    def utime(self, path, when):
        valid = 0x10 | 0x20 | (0x80 | 0x100 if when is not None else 0)
        t = (when or 0, 0)
        return self._with(self._walk(path), lambda f: self.c.setattr(f, valid, atime=t, mtime=t))

    def owner(self, path):
        s = self._with(self._walk(path), self.c.getattr)
        return (s.uid, s.gid, stat.S_IMODE(s.mode))


class UserHost(Host):
    def create_mode(self, path, mode):
        os.close(os.open(self.p(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))

    def mkdir_mode(self, path, mode):
        os.mkdir(self.p(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self.p(path), uid, gid, follow_symlinks=False)

    def utime(self, path, when):
        os.utime(self.p(path), None if when is None else (when, when))

    def owner(self, path):
        s = os.lstat(self.p(path))
        return (s.st_uid, s.st_gid, stat.S_IMODE(s.st_mode))


class SameAsHostForUsers(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.tmp = tempfile.TemporaryDirectory()
        os.chmod(self.tmp.name, 0o777)
        self.umask = os.umask(0)  # the 9P client applies the umask itself: compare modes as sent
        self.host = UserHost(self.tmp.name)
        fs = Server().fs
        fs.write_file("/etc/passwd", PASSWD)
        fs.write_file("/etc/group", GROUP)
        fs.setattr(fs.makedirs("/w"), mode=0o777)
        self.ours = {name: UserNineP(Server(fs, permissions="server"), name) for name in ACTORS}

    def teardown(self):
        if hasattr(self, "tmp"):
            os.umask(self.umask)
            self.tmp.cleanup()

    def both(self, actor, op, *args):
        mine = Outcome.of(getattr(self.ours[actor], op), *args)
        with as_actor(actor):
            theirs = Outcome.of(getattr(self.host, op), *args)
        assert mine == theirs, f"{actor} {op}{args}: 9P gave {mine}, host gave {theirs}"

    def _plain(self, path):
        parts = path.split("/")
        return not any(os.path.islink(self.host.p("/".join(parts[:i]))) for i in range(1, len(parts) + 1))

    @rule(actor=actors, path=paths, mode=modes)
    def create(self, actor, path, mode):
        self.both(actor, "create_mode", path, mode)

    @rule(actor=actors, path=paths, mode=modes)
    def mkdir(self, actor, path, mode):
        self.both(actor, "mkdir_mode", path, mode)

    @rule(actor=actors, path=paths, payload=data)
    def write(self, actor, path, payload):
        if self._plain(path):
            self.both(actor, "pwrite", path, 0, payload)

    @rule(actor=actors, path=paths)
    def read(self, actor, path):
        if self._plain(path):
            self.both(actor, "read", path)

    @rule(actor=actors, path=paths, size=st.sampled_from([0, 3, 70000]))
    def truncate(self, actor, path, size):
        if self._plain(path):
            self.both(actor, "truncate", path, size)

    @rule(actor=actors, path=paths, mode=modes)
    def chmod(self, actor, path, mode):
        if self._plain(path):
            self.both(actor, "chmod", path, mode)

    @rule(actor=actors, path=paths, uid=st.sampled_from([-1, 0, 1000, 1001]),
          gid=st.sampled_from([-1, 0, 100, 1000, 1001]))
    def chown(self, actor, path, uid, gid):
        if self._plain(path):
            self.both(actor, "chown", path, uid, gid)

    @rule(actor=actors, path=paths, when=st.sampled_from([None, 1_000_000]))
    def utime(self, actor, path, when):
        if self._plain(path):
            self.both(actor, "utime", path, when)

    @rule(actor=actors, path=paths)
    def unlink(self, actor, path):
        self.both(actor, "unlink", path)

    @rule(actor=actors, path=paths)
    def rmdir(self, actor, path):
        self.both(actor, "rmdir", path)

    @rule(actor=actors, src=paths, dst=paths)
    def rename(self, actor, src, dst):
        self.both(actor, "rename", src, dst)

    @rule(actor=actors, path=paths)
    def owner(self, actor, path):
        self.both(actor, "owner", path)

    @invariant()
    def owners_match(self):
        if not hasattr(self, "tmp"):
            return
        for path in PATHS:
            if self._plain(path):
                self.both("root", "owner", path)


SameAsHostForUsers.TestCase.settings = settings(
    max_examples=int(os.environ.get("DIFF_EXAMPLES", 200)), stateful_step_count=40, deadline=None,
    derandomize=not os.environ.get("DIFF_RANDOM"),
    suppress_health_check=list(HealthCheck), database=None)


@pytest.mark.skipif(os.geteuid() != 0, reason="taking other users' credentials on the host needs root")
class TestSameResultsAndErrnosAsTheHostForUsers(SameAsHostForUsers.TestCase):
    pass

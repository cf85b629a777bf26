"""Persistence on CPython: what a store keeps, across processes, crashes, deferrals and states.

Everything here uses real stores (SQLite files, the memory store, an asynchronous wrapper whose
answers come when the test drains its queue) and speaks 9P frames where a guest would.
"""

import errno
import hashlib
import json
import os
import random
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from ninep_client import Client, NinePError
from pyninep_browser import Filesystem, Server, snapshot
from pyninep_browser.protocol import T
from pyninep_browser.fs import CHUNK
from pyninep_browser.snapshot import SnapshotError
from pyninep_browser.store import Batch, MemoryStore, SQLiteStore, StoreError
from stores import AsyncStore, DrainingServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
O_RDONLY, O_WRONLY, O_RDWR, O_CREAT = 0, 1, 2, 0o100


def run_py(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, HERE]))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def create(c: Client, name: str, data: bytes, fsync: bool = True, dfid: int = 0) -> None:
    d = c.fid()
    c.walk(dfid, d, [])
    c.lcreate(d, name, O_RDWR, 0o644)
    for off in range(0, len(data), 60000):
        c.write(d, off, data[off:off + 60000])
    if fsync:
        c.fsync(d)
    c.clunk(d)


def read(c: Client, path: str) -> bytes:
    f = c.walk_new(path)
    c.lopen(f, O_RDONLY)
    out = b""
    while chunk := c.read(f, len(out), 1 << 19):
        out += chunk
    c.clunk(f)
    return out


# ----------------------------------------------------------------- across processes


def test_sqlite_store_reopened_in_a_fresh_process_holds_what_was_fsynced(tmp_path):
    db = str(tmp_path / "fs.db")
    writer = run_py("""
        import os, sys
        from ninep_client import Client
        from pyninep_browser import Filesystem, Server
        from pyninep_browser.store import SQLiteStore
        from test_store import create
        c = Client(Server(Filesystem(store=SQLiteStore(sys.argv[1]))))
        create(c, "big", bytes(range(256)) * 1000)
        d = c.walk_new("/"); c.mkdir(d, "sub"); c.clunk(d)
        sub = c.walk_new("/sub")
        create(c, "small", b"fsynced", dfid=sub)
        create(c, "late", b"never fsynced", fsync=False)
        os._exit(0)  # no close, no last commit: only what fsync committed may be there
    """, db)
    assert writer.returncode == 0, writer.stderr
    reader = run_py("""
        import sys
        from pyninep_browser import Filesystem
        from pyninep_browser.store import SQLiteStore
        fs = Filesystem(store=SQLiteStore(sys.argv[1]))
        print(fs.read_file("/big") == bytes(range(256)) * 1000, fs.read_file("/sub/small"),
              fs.listdir("/"), fs.repairs)
    """, db)
    assert reader.returncode == 0, reader.stderr
    # "late" was created after the last fsync: it may or may not be there, but nothing is broken.
    assert reader.stdout.startswith("True b'fsynced' ['big', 'sub'")
    assert reader.stdout.rstrip().endswith("[]")


def test_second_server_on_the_same_sqlite_file_is_refused_clearly(tmp_path):
    store = SQLiteStore(tmp_path / "fs.db")
    fs = Filesystem(store=store)
    fs.write_file("/f", b"x")
    other = run_py("""
        import sys
        from pyninep_browser.store import SQLiteStore, StoreError
        try:
            SQLiteStore(sys.argv[1])
        except StoreError as exc:
            print("refused:", exc)
    """, str(tmp_path / "fs.db"))
    assert "refused:" in other.stdout and "in use" in other.stdout, other.stdout + other.stderr
    fs.close()
    assert Filesystem(store=SQLiteStore(tmp_path / "fs.db")).read_file("/f") == b"x"


# ----------------------------------------------------------------- crash consistency

CRASH_WRITER = """
    import hashlib, os, random, sys
    from ninep_client import Client
    from pyninep_browser import Filesystem, Server
    from pyninep_browser.store import SQLiteStore
    fs = Filesystem(store=SQLiteStore(sys.argv[1]), cache_bytes=4 * 65536)
    print("opened", len(fs.repairs), flush=True)
    c = Client(Server(fs))
    rnd = random.Random(int(sys.argv[2]))
    # An unlinked file kept open: a crash leaves it as an orphan for the open-time check.
    d = c.walk_new("/"); c.lcreate(d, "tmp-%s" % sys.argv[2], 2, 0o644)
    c.write(d, 0, os.urandom(100000))
    u = c.walk_new("/"); c.unlinkat(u, "tmp-%s" % sys.argv[2], 0); c.clunk(u)
    fs.persist(True)
    i = 0
    while True:
        i += 1
        name = "f%s-%d" % (sys.argv[2], i)
        data = os.urandom(rnd.choice([10, 5000, 65536, 70000, 200000]))
        f = c.walk_new("/"); c.lcreate(f, name, 2, 0o644)
        for off in range(0, len(data), 50000):
            c.write(f, off, data[off:off + 50000])
        if rnd.random() < 0.3:  # rewrite part of an earlier file, unsynced: must not hurt it
            g = c.walk_new("/")
            c.lcreate(g, name + ".scratch", 2, 0o644)
            c.write(g, 0, os.urandom(1000)); c.clunk(g)
        c.fsync(f); c.clunk(f)
        print("synced", name, hashlib.sha256(data).hexdigest(), flush=True)
"""


def crash_once(db: str, seed: int, kill_after: float) -> dict[str, str]:
    """Run the writer until its first fsync, SIGKILL it ``kill_after`` seconds later, and return
    the files it reported fsynced (name -> sha256)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, HERE]))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CRASH_WRITER), db, str(seed)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    first_sync = threading.Event()

    def collect() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if line.startswith("synced"):
                first_sync.set()
        first_sync.set()

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    first_sync.wait(60)
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reader.join(10)
    err = proc.stderr.read()  # type: ignore[union-attr]
    synced = {}
    for line in lines:
        parts = line.split()
        if parts[:1] == ["synced"] and len(parts) == 3:
            synced[parts[1]] = parts[2]
    assert synced, "the writer never fsynced: " + err
    return synced


def check_after_crash(db: str, synced: dict[str, str]) -> list[str]:
    fs = Filesystem(store=SQLiteStore(db))
    try:
        for name, digest in synced.items():
            assert hashlib.sha256(fs.read_file("/" + name)).hexdigest() == digest, name
        return fs.repairs
    finally:
        fs.store.close()


def test_sigkill_during_fsynced_writes_loses_no_fsynced_file(tmp_path):
    db = str(tmp_path / "crash.db")
    rnd = random.Random(8)
    all_synced: dict[str, str] = {}
    repaired = 0
    for run in range(3):
        synced = crash_once(db, run, rnd.uniform(0.0, 0.6))
        all_synced.update(synced)
        repairs = check_after_crash(db, all_synced)
        assert any("orphan inode" in r for r in repairs), repairs  # the check ran and repaired
        repaired += len(repairs)
    print(f"crash test: 3 kills, {len(all_synced)} fsynced files checked, 0 lost, "
          f"{repaired} repairs")


# ----------------------------------------------------------------- asynchronous stores


def async_server(files: dict[str, bytes], cache_bytes: int = 2 * CHUNK):
    inner = MemoryStore()
    fs = Filesystem(store=inner)
    for path, data in files.items():
        fs.write_file(path, data)
    fs.close()
    store = AsyncStore(inner)
    server = Server(Filesystem(store=store, cache_bytes=cache_bytes))
    return store, server, DrainingServer(server, store)


def test_read_of_a_file_larger_than_the_cache_defers_and_reruns(tmp_path):
    data = os.urandom(5 * CHUNK + 123)
    store, server, draining = async_server({"/big": data})
    c = Client(draining)
    assert read(c, "/big") == data
    assert draining.deferred >= 1 and store.chunk_reads >= 6
    assert server.fs.cached_chunks <= 6
    assert not server.pending


def test_small_files_stay_cached_by_their_bytes_not_counted_as_whole_chunks():
    # 3,000 files of 8-11 bytes in a 1 MiB cache: they take under 1 MiB however counted per
    # chunk (at least 256 bytes each), so a second read of all of them loads nothing. Counted as
    # whole 64 KiB chunks the cache held 16 of them, and the second read went to the store
    # (IndexedDB: an asynchronous round trip per file) for all but those.
    files = {f"/f{i}": f"small {i}\n".encode() for i in range(3000)}
    store, server, draining = async_server(files, cache_bytes=1 << 20)
    c = Client(draining)
    for path, data in files.items():
        assert read(c, path) == data
    loaded = store.chunk_reads
    assert loaded >= 3000
    for path, data in files.items():
        assert read(c, path) == data
    assert store.chunk_reads == loaded
    assert server.fs.cached_chunks == 3000
    # A large file read through the same cache still evicts, down to what fits.
    big = os.urandom(40 * CHUNK)
    server.fs.write_file("/big", big)
    assert read(c, "/big") == big
    assert server.fs.cached_chunks * 256 + 40 * CHUNK > 1 << 20  # it had to evict
    assert server.fs._lru_bytes <= (1 << 20) + CHUNK


def test_cached_small_chunks_that_grow_are_counted_again():
    # 200 small files cached after a commit, then each grown to a whole chunk and committed:
    # the cache counts them at their new size and trims to what fits (12.8 MB would not).
    fs = Filesystem(store=MemoryStore(), cache_bytes=1 << 20)
    for i in range(200):
        fs.write_file(f"/f{i}", b"small")
    fs.persist(True)
    assert fs.cached_chunks == 200
    for i in range(200):
        fs.write(fs.resolve(f"/f{i}"), 0, b"x" * CHUNK)
    fs.persist(True)
    held = [(ino, ci) for ino, ci in fs._lru if isinstance(fs.inodes[ino].chunks[ci], bytearray)]
    assert sum(len(fs.inodes[ino].chunks[ci]) for ino, ci in held) <= 1 << 20
    assert fs.read_file("/f7") == b"x" * CHUNK and fs.read_file("/f199") == b"x" * CHUNK


def test_flushed_deferred_read_gets_eintr_once_and_no_late_reply():
    store, server, _ = async_server({"/f": b"x" * 100})
    replies = []
    server.on_reply = replies.append
    c = Client(server)
    f = c.walk_new("/f")
    c.lopen(f, O_RDONLY)
    frame = struct.pack("<IBHIQI", 23, 116, 77, f, 0, 100)
    assert server.handle(frame) is None  # waiting for the chunk
    assert 77 in server.pending
    c.flush(77)
    assert [struct.unpack_from("<BHI", r, 4) for r in replies] == [(7, 77, errno.EINTR)]
    store.drain()  # the chunk arrives after the flush: no second reply
    assert len(replies) == 1 and not server.pending


def test_fsync_on_an_asynchronous_store_is_answered_after_its_durable_commit():
    inner = MemoryStore()
    store = AsyncStore(inner)
    server = Server(Filesystem(store=store))
    store.drain()
    replies = []
    server.on_reply = replies.append
    c = Client(server)
    d = c.walk_new("/")
    c.lcreate(d, "f", O_RDWR, 0o644)
    c.write(d, 0, b"payload")
    frame = struct.pack("<IBHII", 15, 50, 9, d, 0)
    assert server.handle(frame) is None and replies == []
    commits_before = inner.commits
    store.drain()
    assert inner.commits == commits_before + 1
    assert struct.unpack_from("<BH", replies[0], 4) == (51, 9)  # Rfsync, once committed
    again = Filesystem(store=inner)
    assert again.read_file("/f") == b"payload"


def test_failed_commit_answers_fsync_with_enospc_and_keeps_the_changes():
    inner = MemoryStore(quota_bytes=10_000_000)
    fs = Filesystem(store=inner)
    c = Client(Server(fs))
    d = c.walk_new("/")
    c.lcreate(d, "f", O_RDWR, 0o644)
    inner.quota_bytes = 1000  # the store fills up behind the filesystem's back
    c.write(d, 0, b"y" * 5000)
    with pytest.raises(NinePError) as info:
        c.fsync(d)
    assert info.value.errno == errno.ENOSPC
    assert fs.has_changes()
    inner.quota_bytes = 10_000_000
    c.fsync(d)
    assert Filesystem(store=inner).read_file("/f") == b"y" * 5000


def test_statfs_and_enospc_follow_the_store_estimate():
    inner = MemoryStore(quota_bytes=3 << 20)
    fs = Filesystem(store=inner)
    s = fs.statfs()
    assert s.bfree * s.bsize < 3 << 20  # the store, not the 1 GiB quota, bounds it
    f = fs.create(fs.root, "f", 0o644)
    with pytest.raises(OSError) as info:
        fs.write(f, 0, b"z" * (3 << 20))
    assert info.value.errno == errno.ENOSPC and f.size == 0


def test_write_behind_commits_once_changes_are_older_than_the_bound():
    inner = MemoryStore()
    fs = Filesystem(store=inner, writeback_ms=500)
    server = Server(fs)
    fs.write_file("/wb", b"later")
    server.tick(1000)
    server.tick(1400)
    assert "wb" not in Filesystem(store=_copy(inner)).listdir("/")
    server.tick(1600)
    assert Filesystem(store=_copy(inner)).read_file("/wb") == b"later"
    assert not fs.has_changes()


def _copy(store: MemoryStore) -> MemoryStore:
    other = MemoryStore()
    other.meta, other.chunks = dict(store.meta), dict(store.chunks)
    return other


# ----------------------------------------------------------------- the open-time check


def test_open_time_check_repairs_orphans_and_wrong_counts(tmp_path):
    store = MemoryStore()
    fs = Filesystem(store=store)
    fs.write_file("/keep", b"k" * 70000)
    fs.write_file("/lost", b"l" * 100)
    fs.add_hardlink("/keep2", "/keep")
    fs.close()
    lost = fs.resolve("/lost").ino
    keep = fs.resolve("/keep").ino
    # What a damaged store could hold: an inode without a name, a chunk without an inode,
    # a link count and a used-bytes count that disagree with the tree.
    for key in [k for k, v in store.meta.items() if k.startswith("e:1:") and json.loads(v)[1] == lost]:
        del store.meta[key]
    store.chunks["999:0"] = b"stray"
    rec = json.loads(store.meta[f"i:{keep}"])
    rec["n"] = 7
    store.meta[f"i:{keep}"] = json.dumps(rec).encode()
    sup = json.loads(store.meta["super"])
    sup["used"] = 1
    store.meta["super"] = json.dumps(sup).encode()

    again = Filesystem(store=store)
    text = "\n".join(again.repairs)
    assert f"orphan inode {lost}" in text and "1 orphan chunks" in text
    assert f"inode {keep}: link count 7 corrected to 2" in text and "used-bytes" in text
    assert again.read_file("/keep") == b"k" * 70000 and again.listdir("/") == ["keep", "keep2"]
    assert "999:0" not in store.chunks and f"{lost}:0" not in store.chunks
    assert Filesystem(store=store).repairs == []  # repaired for good


@pytest.mark.parametrize("bad", [b"{not json", b"[1, 2]", b'{"m": 1}, {"m": 2}', b"7", b""])
def test_one_unreadable_record_among_many_is_removed_and_the_rest_open(bad):
    """Records are parsed together (records.parse_all); one that is not an inode's JSON, or that
    joined with the others would read as two values, is found and removed on its own."""
    store = MemoryStore()
    fs = Filesystem(store=store)
    for i in range(50):
        fs.write_file(f"/f{i}", b"x%d" % i)
    fs.makedirs("/d")
    fs.write_file("/d/inner", b"in")
    fs.close()
    victim = fs.resolve("/f7").ino
    store.meta[f"i:{victim}"] = bad
    for key, value in list(store.meta.items()):
        if key.startswith("e:") and json.loads(value)[0] == "f8":
            store.meta[key] = b'"not an entry"'
    again = Filesystem(store=store)
    text = "\n".join(again.repairs)
    assert f"removed unreadable record 'i:{victim}'" in text, text
    assert "removed bad entry" in text, text
    names = set(again.listdir("/"))
    assert "f7" not in names and "f8" not in names and len(names) == 49
    assert again.read_file("/f49") == b"x49" and again.read_file("/d/inner") == b"in"
    assert Filesystem(store=store).repairs == []


def test_newer_or_foreign_store_is_refused_and_left_alone(tmp_path):
    store = MemoryStore()
    Filesystem(store=store).close()
    sup = json.loads(store.meta["super"])
    sup["format"] = 99
    store.meta["super"] = json.dumps(sup).encode()
    before = dict(store.meta)
    with pytest.raises(StoreError, match="newer"):
        Filesystem(store=store)
    assert store.meta == before
    foreign = MemoryStore()
    foreign.commit(Batch(meta_put={"something": b"else"}), True, lambda err: None)
    with pytest.raises(StoreError, match="not a pyninep filesystem"):
        Filesystem(store=foreign)
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError):
        Filesystem(store=SQLiteStore(tmp_path / "junk.db"))


# ----------------------------------------------------------------- states


def test_state_of_a_stored_filesystem_is_complete_and_restores_into_a_store(tmp_path):
    store = SQLiteStore(tmp_path / "a.db")
    fs = Filesystem(store=store, cache_bytes=CHUNK)
    data = os.urandom(4 * CHUNK)
    fs.write_file("/d/f", data)
    fs.close()
    server = Server(Filesystem(store=SQLiteStore(tmp_path / "a.db"), cache_bytes=CHUNK))
    c = Client(server)
    f = c.walk_new("/d/f")
    c.lopen(f, O_RDONLY)
    state = snapshot.save(server)  # chunks not in memory are loaded for the state
    target = SQLiteStore(tmp_path / "b.db")
    Filesystem(store=target).write_file("/old", b"replaced")
    restored = snapshot.restore(state, store=target)
    c2 = Client(restored, attach=False)
    c2.tag = 100
    assert c2.read(f, 0, 1 << 20)[:CHUNK] == data[:CHUNK]  # the open fid still works
    restored.fs.close()
    again = Filesystem(store=SQLiteStore(tmp_path / "b.db"))
    assert again.read_file("/d/f") == data and again.listdir("/") == ["d"]


def test_request_deferred_at_save_time_is_answered_after_restore():
    store, server, _ = async_server({"/f": b"abc" * 100})
    c = Client(server)
    f = c.walk_new("/f")
    c.lopen(f, O_RDONLY)
    assert server.handle(struct.pack("<IBHIQI", 23, 116, 5, f, 0, 300)) is None
    assert len(store.queue) == 1  # the read waits for its chunk
    # Saving a state first loads every chunk (what the page does for an asynchronous store);
    # run only that load, so the read is still waiting when the state is taken.
    loaded = []
    server.fs.load_chunks(server.fs.missing_chunks(), loaded.append)
    store.queue.pop()()
    assert loaded == [0] and server.pending == {5}
    state = snapshot.save(server)
    restored = snapshot.restore(state)
    replies = []
    restored.on_reply = replies.append
    restored.tick(0)
    assert len(replies) == 1 and replies[0][4] == 117 and replies[0].endswith(b"abc" * 100)
    assert not restored.pending


def test_bad_states_are_refused_and_nothing_running_changes():
    server = Server()
    c = Client(server)
    create(c, "f", b"hello", fsync=False)
    good = snapshot.save(server)
    newer = bytearray(good)
    newer[8:12] = struct.pack("<I", snapshot.FORMAT + 1)
    flipped = bytearray(good)
    flipped[-3] ^= 0x40
    cases = {"truncated": good[:-10], "corrupt": bytes(flipped), "foreign": b"GIF89a" + good[6:],
             "newer": bytes(newer), "empty": b"", "trailing": good + b"x"}
    for what, data in cases.items():
        with pytest.raises(SnapshotError) as info:
            snapshot.restore(data)
        assert str(info.value), what
    assert "newer" in str(pytest.raises(SnapshotError, snapshot.restore, bytes(newer)).value)
    assert "checksum" in str(pytest.raises(SnapshotError, snapshot.restore, bytes(flipped)).value)
    assert read(c, "/f") == b"hello"  # the running server is untouched


def test_sqlite_commit_past_its_quota_is_enospc_and_applies_nothing(tmp_path):
    store = SQLiteStore(tmp_path / "q.db", quota_bytes=1 << 20)
    ok = []
    store.commit(Batch(meta_put={"a": b"1"}), True, ok.append)
    big = Batch(meta_put={"b": b"2"}, chunk_put={f"9:{i}": os.urandom(CHUNK) for i in range(40)})
    store.commit(big, True, ok.append)
    assert ok == [0, errno.ENOSPC]
    assert dict(store.load_meta()) == {"a": b"1"} and store.chunk_keys() == []


def test_failed_write_behind_stays_pending_and_is_retried():
    inner = MemoryStore(quota_bytes=10_000_000)
    fs = Filesystem(store=inner, writeback_ms=100)
    fs._store_limit = float("inf")  # let the filesystem believe there is room
    fs.write_file("/f", b"w" * 20_000)
    inner.quota_bytes = 1000
    fs.tick(0)
    fs.tick(200)  # the commit fails: nothing is lost, it stays pending
    assert fs.has_changes() and "f" not in Filesystem(store=_copy(inner)).listdir("/")
    inner.quota_bytes = 10_000_000
    fs.tick(300)
    fs.tick(500)
    assert not fs.has_changes() and Filesystem(store=_copy(inner)).read_file("/f") == b"w" * 20_000


def test_stored_state_leaves_stored_data_out_and_needs_the_unchanged_store(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    fs = Filesystem(store=store, cache_bytes=CHUNK)
    big = os.urandom(8 * CHUNK)
    fs.write_file("/big", big)
    fs.persist(True)
    server = Server(fs)
    c = Client(server)
    create(c, "unstored", b"only in memory", fsync=False)  # not committed: must be in the state
    f = c.walk_new("/big")
    c.lopen(f, O_RDONLY)
    state = snapshot.save(server, stored=True)
    assert len(state) < 3 * CHUNK  # the stored chunks are left out
    fs.store.close()
    with pytest.raises(SnapshotError, match="with that store"):
        snapshot.restore(state)
    with pytest.raises(SnapshotError, match="another store"):
        snapshot.restore(state, store=_other_store(tmp_path))
    restored = snapshot.restore(state, store=SQLiteStore(tmp_path / "s.db"))
    c2 = Client(restored, attach=False)
    c2.tag = 200
    assert c2.read(f, 0, 1 << 20) == big
    assert read(c2, "/unstored") == b"only in memory"
    restored.fs.close()
    # The store moved on (a commit after the restore): the old state no longer fits it.
    with pytest.raises(SnapshotError, match="changed since"):
        snapshot.restore(state, store=SQLiteStore(tmp_path / "s.db"))


def _other_store(tmp_path):
    other = SQLiteStore(tmp_path / "other.db")
    Filesystem(store=other)
    return other


def test_an_empty_store_is_seeded_from_an_image_and_a_full_one_keeps_its_files(tmp_path):
    image_fs = Filesystem()
    image_fs.write_file("/etc/motd", b"from the image")
    image = snapshot.save_filesystem(image_fs)
    fs = snapshot.load_filesystem(image, store=SQLiteStore(tmp_path / "s.db"))
    fs.write_file("/home/mine", b"the user's")
    fs.close()
    again = snapshot.load_filesystem(b"not even an image", store=SQLiteStore(tmp_path / "s.db"))
    assert again.read_file("/etc/motd") == b"from the image"
    assert again.read_file("/home/mine") == b"the user's" and again.repairs == []


# ----------------------------------------------------------------- a session over a newer store


def test_session_restores_over_a_store_that_moved_on_and_never_binds_another_file(tmp_path):
    """The page's return visit: the store is the truth for files; a machine's saved session
    (fids, locks) is put back over whatever the store holds now. Fids whose file is still there
    read its current bytes; a fid whose file is gone is ESTALE (and can be clunked), never
    another file's data; the session is refused whole over another filesystem."""
    path = tmp_path / "s.db"
    fs = Filesystem(store=SQLiteStore(path), cache_bytes=CHUNK)
    fs.write_file("/keep", b"old keep")
    fs.write_file("/gone", b"old gone")
    fs.write_file("/locked", b"x")
    fs.persist(True)
    server = Server(fs)
    c = Client(server)
    keep, gone, locked = c.walk_new("/keep"), c.walk_new("/gone"), c.walk_new("/locked")
    c.lopen(keep, O_RDONLY)
    c.lopen(gone, O_RDONLY)
    c.lopen(locked, O_RDWR)
    lock = struct.pack("<IBIQQI", locked, 1, 0, 0, 0, 77) + b"\x03\x00abc"  # write lock, whole file
    assert c.rpc(T.Tlock, lock).take("B") == (0,)
    state = snapshot.save_session(server)
    assert len(state) < 4096, len(state)
    fs.close()

    # After the save (the page was killed later): the store moves on without the session.
    later = Filesystem(store=SQLiteStore(path), cache_bytes=CHUNK)
    later.write_file("/keep", b"new keep, longer than before")
    later.remove("/gone")
    later.write_file("/newer", b"made after the save")  # a new inode number, never /gone's
    later.persist(True)
    later.close()

    fs = Filesystem(store=SQLiteStore(path), cache_bytes=CHUNK)
    restored, report = snapshot.restore_session(state, fs)
    assert report == {"fids": 3, "stale": [gone]}  # the root, /keep and /locked
    c2 = Client(restored, attach=False)
    c2.tag, c2.next_fid = 300, c.next_fid
    assert c2.read(keep, 0, 4096) == b"new keep, longer than before"  # the store's bytes
    with pytest.raises(NinePError) as err:
        c2.read(gone, 0, 4096)
    assert err.value.errno == errno.ESTALE
    c2.clunk(gone)  # the guest closes it cleanly
    with pytest.raises(NinePError) as err:
        c2.read(gone, 0, 4096)
    assert err.value.errno == errno.EBADF
    # The lock is held again: another owner conflicts with it.
    getlock = struct.pack("<IBQQI", locked, 1, 0, 0, 99) + b"\x03\x00xyz"
    assert c2.rpc(T.Tgetlock, getlock).take("B") == (1,)
    assert read(c2, "/newer") == b"made after the save"
    fs.close()

    # Another filesystem (another image, an older build's store): refused, nothing bound.
    other = Filesystem(store=SQLiteStore(tmp_path / "other.db"))
    with pytest.raises(snapshot.ForeignFilesystem):
        snapshot.restore_session(state, other)
    assert all(i.refs == 0 for i in other.inodes.values())
    with pytest.raises(SnapshotError):
        snapshot.restore_session(state[:-3], fs)
    other.close()


def test_a_complete_state_gives_its_session_to_a_store_it_seeded(tmp_path):
    """The shipped machine's complete state seeds a new visitor's store; on a later visit with
    no machine of their own, its session goes back over that store as it is now."""
    fs = Filesystem()
    fs.write_file("/run/console.sh", b"script")
    server = Server(fs)
    c = Client(server)
    f = c.walk_new("/run/console.sh")
    c.lopen(f, O_RDONLY)
    state = snapshot.save(server)
    seeded = snapshot.restore(state, store=SQLiteStore(tmp_path / "s.db"))
    seeded.fs.persist(True)
    seeded.fs.write_file("/root/mine", b"the visitor's")
    seeded.fs.persist(True)
    seeded.fs.close()
    fs = Filesystem(store=SQLiteStore(tmp_path / "s.db"))
    restored, report = snapshot.restore_session(state, fs)
    assert report["stale"] == []
    c2 = Client(restored, attach=False)
    c2.tag, c2.next_fid = 400, c.next_fid
    assert c2.read(f, 0, 100) == b"script"
    assert read(c2, "/root/mine") == b"the visitor's"
    fs.close()


def test_the_indexeddb_preload_is_cut_back_into_its_records_and_a_cut_short_one_is_refused():
    """web/pyninep-idb.js packs the page database's records for Python in one buffer (the counts,
    every length, then the bytes); store/indexeddb.unpack cuts them out again. A buffer that
    does not add up is refused, never read past its end."""
    from pyninep_browser.store.indexeddb import unpack

    meta = [("super", b'{"format":1}'), ("i:1", b"{}"), ("e:1:0", '["café",2]'.encode()), ("empty", b"")]
    chunk_keys = ["2:0", "2:1"]
    fields = [k.encode() for k, _ in meta] + [v for _, v in meta] + [k.encode() for k in chunk_keys]
    packed = (struct.pack("<II", len(meta), len(chunk_keys))
              + b"".join(struct.pack("<I", len(f)) for f in fields) + b"".join(fields))
    assert unpack(packed) == (meta, chunk_keys)
    assert unpack(struct.pack("<II", 0, 0)) == ([], [])
    for bad in (packed[:-1], packed + b"x", packed[:7], struct.pack("<II", 1 << 20, 0) + packed[8:]):
        with pytest.raises(ValueError, match="truncated"):
            unpack(bad)

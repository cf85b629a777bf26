"""``python -m pyninep_browser serve`` over real sockets, driven by the independent 9P client
(tests/ninep_client.py): sessions over one filesystem, limits, security, shutdown, durability,
and sessions that survive a reconnect. The real guest over ``proxy_url`` is tests/test_serve_guest.py.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import sqlite3
import struct
import threading
import time
import urllib.error
import urllib.request

import pytest
from ninep_client import Client, NinePError
from serving import Serve, TcpLink, WsLink, sigkill_rounds, wait_for

O_RDONLY, O_RDWR = 0, 2
WRLCK, UNLCK = 1, 2
SUCCESS, BLOCKED = 0, 1
ESTALE, EACCES, EROFS = 116, 13, 30


@pytest.fixture(scope="module")
def server():
    s = Serve("--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--grace", "1.5")
    yield s
    assert s.stop() == 0, s.stderr


def create(c: Client, path: str, data: bytes = b"") -> int:
    parent, _, name = path.rpartition("/")
    d = c.walk_new(parent) if parent else c.fid()
    if not parent:
        c.walk(0, d, [])
    c.lcreate(d, name, O_RDWR, 0o644)
    step = c.msize - 24
    for off in range(0, len(data), step):
        c.write(d, off, data[off : off + step])
    return d


def opened(c: Client, path: str, flags: int = O_RDWR) -> int:
    f = c.walk_new(path)
    c.lopen(f, flags)
    return f


# ----------------------------------------------------------------- sessions over one filesystem


def test_sessions_share_files_and_behave_as_two_processes(server):
    a, b = server.client(), server.ws_client()
    fa = create(a, "shared.txt", b"one")
    fb = opened(b, "shared.txt")
    assert b.read(fb, 0, 100) == b"one"
    # POSIX locks: the sessions are different owners
    assert a.lock(fa, WRLCK, 0, 0) == SUCCESS
    assert b.lock(fb, WRLCK, 0, 0) == BLOCKED
    assert b.getlock(fb, WRLCK, 0, 0)[0] == WRLCK
    a.clunk(fa)  # the lock dies with the fid
    assert b.lock(fb, WRLCK, 0, 0) == SUCCESS
    # a rename by one is seen by the other; its open fid keeps the file
    d = a.fid()
    a.walk(0, d, [])
    a.renameat(d, "shared.txt", d, "moved.txt")
    with pytest.raises(NinePError):
        b.walk_new("shared.txt")
    assert b.read(fb, 0, 100) == b"one"
    # unlinked while open in the other session: still readable and writable there
    a.unlinkat(d, "moved.txt")
    b.write(fb, 3, b"+two")
    assert b.read(fb, 0, 100) == b"one+two"


def test_fifty_concurrent_sessions_with_a_broken_client_and_one_that_never_reads(server):
    d = server.client()
    lockfile = opened(d, create_path(d, "lockfile"))
    assert d.lock(lockfile, WRLCK, 0, 0) == SUCCESS  # held throughout: every other session conflicts
    big = create(d, "big", random.randbytes(1 << 20))
    d.fsync(big)

    # One client sends half a frame and leaves; one floods reads of 1 MiB and never reads a reply.
    half = socket.create_connection(server.tcp)
    half.sendall(struct.pack("<IBH", 100, 100, 0xFFFF) + b"\0" * 20)
    half.close()
    glutton = server.client()
    g = opened(glutton, "big", O_RDONLY)
    read = struct.pack("<IBHIQI", 23, 116, 1, g, 0, 1 << 19)
    glutton.server.sock.setblocking(False)
    sent = 0
    try:
        for _ in range(2000):
            sent += glutton.server.sock.send(read)
    except BlockingIOError:
        pass
    assert sent > 0

    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            c = server.client() if i % 5 else server.ws_client()
            data = f"client {i} ".encode() * (100 + i)
            f = create(c, f"w{i}", data)
            c.fsync(f)
            c.clunk(f)
            f = opened(c, f"w{i}", O_RDONLY)
            assert c.read(f, 0, len(data) + 10) == data
            lk = opened(c, "lockfile")
            assert c.lock(lk, WRLCK, 0, 0) == BLOCKED
            assert c.getlock(lk, WRLCK, 0, 0)[0] == WRLCK
            c.server.close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert time.monotonic() - started < 30
    # nothing lost: every file is there, whole
    for i in range(50):
        f = opened(d, f"w{i}", O_RDONLY)
        assert d.read(f, 0, 1 << 16) == f"client {i} ".encode() * (100 + i)
        d.clunk(f)
    glutton.server.close()


def create_path(c: Client, name: str) -> str:
    c.clunk(create(c, name))
    return name


# ----------------------------------------------------------------- malformed input


def test_malformed_and_oversized_frames_close_only_that_connection(server):
    ok = server.client()
    f = create(ok, "survivor", b"alive")
    for bad in (
        struct.pack("<IBH", 3, 100, 0),  # size below a header
        struct.pack("<IBH", 1 << 30, 100, 0),  # far beyond msize
        struct.pack("<IBH", 7, 100, 0),  # too short for Tversion: an Rlerror, not a close
    ):
        s = socket.create_connection(server.tcp, timeout=5)
        s.sendall(bad)
        try:
            data = s.recv(100)
        except OSError:
            data = b""
        s.close()
        assert data == b"" or struct.unpack_from("<B", data, 4)[0] == 7
    # over WebSocket: a frame whose size field lies, a text message, a message over max size
    for payload in (struct.pack("<IBH", 99, 100, 0), "text", b"\0" * (2 << 20)):
        w = WsLink(server.ws)
        try:
            w.ws.send(payload)
            with pytest.raises(Exception):  # noqa: B017 - closed: websockets' ConnectionClosed
                w.ws.recv(timeout=5)
        finally:
            w.close()
    assert ok.read(f, 0, 100) == b"alive"


# ----------------------------------------------------------------- sessions that survive


def test_a_session_resumes_with_its_fids_open_files_and_locks(server):
    link = WsLink(server.ws + "?session=resume-1")
    c = Client(link)
    f = create(c, "resumed", b"before")
    assert c.lock(f, WRLCK, 0, 0) == SUCCESS
    link.close()  # the socket drops
    other = server.client()
    o = opened(other, "resumed")
    assert other.lock(o, WRLCK, 0, 0) == BLOCKED  # still held while the session waits
    c.server = WsLink(server.ws + "?session=resume-1")  # reconnect: no Tversion, no attach
    assert c.read(f, 0, 100) == b"before"
    c.write(f, 6, b"+after")
    assert other.read(o, 0, 100) == b"before+after"
    assert other.lock(o, WRLCK, 0, 0) == BLOCKED
    status = json.loads(
        urllib.request.urlopen(server.ws.replace("ws:", "http:") + ".pyninep/session?id=resume-1").read()
    )
    assert status["state"] == "live"
    c.server.close()
    # past the grace period the session ends: locks released, and a late resume is told so
    wait_for(lambda: other.lock(o, WRLCK, 0, 0) == SUCCESS, timeout=10)
    status = json.loads(
        urllib.request.urlopen(server.ws.replace("ws:", "http:") + ".pyninep/session?id=resume-1").read()
    )
    assert status["state"] == "expired"
    late = WsLink(server.ws + "?session=resume-1")
    with pytest.raises(NinePError) as err:
        Client(late, attach=False).read(f, 0, 10)
    assert err.value.errno == ESTALE
    # a mount (Tversion) under the same id starts a new session
    fresh = Client(late)
    assert fresh.read(opened(fresh, "resumed", O_RDONLY), 0, 100) == b"before+after"
    late.close()


def test_an_unknown_session_is_told_rather_than_given_a_fresh_one(server):
    link = WsLink(server.ws + "?session=never-seen")
    with pytest.raises(NinePError) as err:
        Client(link, attach=False).getattr(0)
    assert err.value.errno == ESTALE
    link.close()


# ----------------------------------------------------------------- security


def test_foreign_origin_is_refused_and_no_origin_is_not_a_browser(server):
    with pytest.raises(Exception, match="403"):
        WsLink(server.ws, origin="http://evil.example")
    Client(WsLink(server.ws)).server.close()


def test_token_is_required_in_the_url_and_in_the_attach(tmp_path):
    (tmp_path / "t").write_text("s3cret\n")
    s = Serve(
        "--tcp",
        "127.0.0.1:0",
        "--ws",
        "127.0.0.1:0",
        "--token-file",
        str(tmp_path / "t"),
        "--allow-origin",
        "http://good.example",
    )
    try:
        for query in ("", "?token=wrong"):
            with pytest.raises(Exception, match="403"):
                WsLink(s.ws + query)
        Client(WsLink(s.ws + "?token=s3cret", origin="http://good.example")).server.close()
        c = Client(TcpLink(s.tcp), attach=False)
        c.version(1 << 16)
        with pytest.raises(NinePError) as err:
            c.attach(0, aname="token=nope")
        assert err.value.errno == EACCES
        with pytest.raises(ConnectionError):
            c.version(1 << 16)  # the connection was closed
        c = Client(TcpLink(s.tcp), attach=False)
        c.version(1 << 16)
        c.attach(0, aname="token=s3cret")
        c.attach(1, aname="")  # the connection is authorized now
    finally:
        assert s.stop() == 0


def test_read_only_refuses_changes(tmp_path):
    s = Serve("--tcp", "127.0.0.1:0", "--read-only")
    try:
        c = s.client()
        d = c.fid()
        c.walk(0, d, [])
        for call in (lambda: c.mkdir(0, "x"), lambda: c.lcreate(d, "f", O_RDWR, 0o644)):
            with pytest.raises(NinePError) as err:
                call()
            assert err.value.errno == EROFS
        assert ".." in c.readdir_all(_open_root(c))
    finally:
        s.stop()


def _open_root(c: Client) -> int:
    f = c.fid()
    c.walk(0, f, [])
    c.lopen(f, O_RDONLY)
    return f


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tcp", "nope"], "--tcp wants HOST:PORT"),
        (["--bogus"], "unrecognized arguments"),
        ([], "nothing to listen on"),
        (["--tcp", "0.0.0.0:0"], "needs --token"),
        (["--ws", "127.0.0.1:0", "--site", "/nonexistent"], "no index.html"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(args, message):
    s = Serve(*args, wait=False)
    assert s.proc.wait(20) == 2
    time.sleep(0.1)
    assert message in s.stderr and "Traceback" not in s.stderr


def test_a_busy_port_and_a_foreign_or_newer_database_exit_2(tmp_path, server):
    s = Serve("--tcp", f"127.0.0.1:{server.tcp[1]}", wait=False)
    assert s.proc.wait(20) == 2
    time.sleep(0.1)
    assert "cannot listen on" in s.stderr
    foreign = tmp_path / "foreign.sqlite"
    sqlite3.connect(foreign).execute("CREATE TABLE x (y)").connection.commit()
    (tmp_path / "text.sqlite").write_text("not a database at all, just text " * 100)
    newer = tmp_path / "newer.sqlite"
    Serve("--tcp", "127.0.0.1:0", "--db", str(newer)).stop()
    db = sqlite3.connect(newer)
    rows = db.execute("SELECT k, v FROM meta").fetchall()
    assert rows
    db.execute("UPDATE meta SET v = ? WHERE k = 'super'", (b'{"format": 999}',))
    db.commit()
    db.close()
    for path in (foreign, tmp_path / "text.sqlite", newer):
        s = Serve("--tcp", "127.0.0.1:0", "--db", str(path), wait=False)
        assert s.proc.wait(20) == 2, path
        time.sleep(0.1)
        assert "Traceback" not in s.stderr and s.stderr.count("\n") == 1, s.stderr


# ----------------------------------------------------------------- shutdown and durability


def test_sigterm_commits_and_exits_0(tmp_path):
    db = str(tmp_path / "fs.sqlite")
    s = Serve("--tcp", "127.0.0.1:0", "--db", db)
    c = s.client()
    create(c, "kept", b"not fsync'd, committed at shutdown")
    assert s.stop(signal.SIGTERM) == 0
    s = Serve("--tcp", "127.0.0.1:0", "--db", db)
    c = s.client()
    assert c.read(opened(c, "kept", O_RDONLY), 0, 100) == b"not fsync'd, committed at shutdown"
    assert s.stop(signal.SIGINT) == 0


def test_every_acknowledged_fsync_survives_sigkill(tmp_path):
    kills = 24  # bench/serve_crash.py runs the same with 100+
    acked, lost = sigkill_rounds(str(tmp_path / "fs.sqlite"), kills)
    assert len(acked) > kills
    assert not lost, f"{len(lost)} acknowledged files lost or wrong, e.g. {lost[:3]}"


def test_unix_socket_and_the_site_without_traversal(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<p>the site</p>")
    (tmp_path / "secret").write_text("not served")
    sock = str(tmp_path / "9p.sock")
    s = Serve("--unix", sock, "--ws", "127.0.0.1:0", "--site", str(site))
    try:
        u = socket.socket(socket.AF_UNIX)
        u.connect(sock)
        link = TcpLink.__new__(TcpLink)
        link.sock = u
        c = Client(link)
        c.clunk(create(c, "over-unix", b"u"))
        http = s.ws.replace("ws:", "http:")
        assert urllib.request.urlopen(http).read() == b"<p>the site</p>"
        for bad in ("../secret", "%2e%2e/secret", "..%2fsecret"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(http + bad)
            assert err.value.code == 404
        # the site's own origin (a loopback name) may open the WebSocket; another port may not
        Client(WsLink(s.ws, origin=http.rstrip("/"))).server.close()
        with pytest.raises(Exception, match="403"):
            WsLink(s.ws, origin="http://127.0.0.1:1")
    finally:
        assert s.stop(signal.SIGINT) == 0


def test_idle_connections_time_out_and_silent_ones_are_not_served_forever():
    s = Serve("--tcp", "127.0.0.1:0", "--idle-timeout", "0.5")
    try:
        c = s.client()
        c.getattr(0)
        time.sleep(1.5)
        with pytest.raises(OSError):
            c.getattr(0)
        s.client().getattr(0)  # a new connection is served
    finally:
        assert s.stop() == 0


def test_a_second_connection_with_a_live_session_id_takes_it_over(server):
    first = WsLink(server.ws + "?session=take-over")
    c = Client(first)
    f = create(c, "taken", b"mine")
    second = WsLink(server.ws + "?session=take-over")  # the client saw the drop before the server
    c.server = second
    assert c.read(f, 0, 100) == b"mine"
    with pytest.raises(Exception):  # noqa: B017 - the first socket was closed (4000)
        first.handle(struct.pack("<IBHI", 11, 120, 1, f))
    second.close()


def test_a_base_image_is_served_lazily_and_copied_on_write(tmp_path):
    """``serve --base FS.JSON BASEDIR --db``: clients read base files (each fetched once, from
    the directory), write over them, and after a restart with the base gone what was read or
    written is in the store; the base directory is never written."""
    from pyninep_browser.authoring import Tree
    from pyninep_browser.fs2json import export_fs2json

    tree = Tree()
    tree.path("/etc").mkdir()
    tree.path("/etc/motd").write_bytes(b"from the base\n")
    tree.path("/etc/other").write_bytes(b"never read\n")
    export_fs2json(tree.fs, tmp_path / "b")
    before = {p.name: p.read_bytes() for p in (tmp_path / "b" / "base").iterdir()}
    db = tmp_path / "fs.sqlite"
    s = Serve("--tcp", "127.0.0.1:0", "--db", str(db), "--base", str(tmp_path / "b" / "fs.json"),
              str(tmp_path / "b" / "base"))
    try:
        c = s.client()
        assert c.read(opened(c, "etc/motd", O_RDONLY), 0, 100) == b"from the base\n"
        f = opened(c, "etc/motd")
        c.write(f, 5, b"THE")
        c.fsync(f)
    finally:
        assert s.stop() == 0, s.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "b" / "base").iterdir()} == before
    s = Serve("--tcp", "127.0.0.1:0", "--db", str(db), "--base", str(tmp_path / "b" / "fs.json"),
              str(tmp_path / "nowhere"), wait=False)
    assert s.proc.wait(20) == 2 and "does not exist" in s.stderr  # a base directory that is not there
    (tmp_path / "empty").mkdir()
    s = Serve("--tcp", "127.0.0.1:0", "--db", str(db), "--base", str(tmp_path / "b" / "fs.json"),
              str(tmp_path / "empty"))
    try:
        c = s.client()
        assert c.read(opened(c, "etc/motd", O_RDONLY), 0, 100) == b"from THE base\n"
        with pytest.raises(NinePError) as err:  # never read, and the base is empty now
            c.read(opened(c, "etc/other", O_RDONLY), 0, 100)
        assert err.value.errno == 5
    finally:
        assert s.stop() == 0, s.stderr
    s = Serve("--tcp", "127.0.0.1:0", "--base", str(tmp_path / "nope.json"), str(tmp_path / "b" / "base"),
              wait=False)
    assert s.proc.wait(20) == 2 and "nope.json" in s.stderr and "Traceback" not in s.stderr


def test_a_session_holds_at_most_max_locks_ranges():
    s = Serve("--tcp", "127.0.0.1:0", "--max-locks", "3")
    try:
        c, other = s.client(), s.client()
        f = create(c, "locked", b"x" * 100)
        for i in range(3):
            assert c.lock(f, WRLCK, i * 10, 1, 1, "c") == SUCCESS
        with pytest.raises(NinePError) as err:  # a fourth range: ENOLCK for this session only
            c.lock(f, WRLCK, 50, 1, 1, "c")
        assert err.value.errno == 37
        g = opened(other, "locked")
        assert other.lock(g, WRLCK, 60, 1, 2, "o") == SUCCESS  # the other session is not capped
        assert c.lock(f, UNLCK, 0, 1, 1, "c") == SUCCESS  # releasing always works
        assert c.lock(f, WRLCK, 50, 1, 1, "c") == SUCCESS
    finally:
        s.stop()

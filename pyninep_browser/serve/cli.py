"""``python -m pyninep_browser serve``: one asyncio process serving one filesystem to many clients.

    serve [--ws HOST:PORT] [--tcp HOST:PORT] [--unix PATH] [--db FILE.sqlite]
          [--image FILE.img | --base FS.JSON BASEDIR]
          [--read-only] [--site DIR] [--token T | --token-file F] [--allow-origin O]… [--insecure]
          [--grace SECONDS] [--idle-timeout SECONDS] [--max-msize N] [--max-fids N] [-v]

Where the files live is decided by a *filesystem factory* (:data:`FilesystemFactory`): the default,
:func:`open_filesystem`, reads ``--db``, ``--image`` and ``--base``; a caller (or a new source such as base
images) passes its own to :func:`main`. A user's mistake (a bad flag, a busy port, a database that
is not ours or is newer) is one line on stderr and exit status 2. SIGINT or SIGTERM stops
accepting, closes the connections, commits the store durably and exits 0; a second one exits at
once (status 1; everything fsync'd was committed when its Rfsync left).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..fs import Filesystem
from .hub import Hub, Limits
from .streams import StreamTransport

log = logging.getLogger("pyninep_browser.serve")

FilesystemFactory = Callable[[argparse.Namespace], Filesystem]


class UsageError(Exception):
    """A user's mistake: printed as one line, exit status 2."""


def parse_address(text: str, flag: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT``, ``:PORT`` or ``PORT`` (host 127.0.0.1). Port 0 picks one."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
        if not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise UsageError(f"{flag} wants HOST:PORT, got {text!r}") from None
    return host, number


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m pyninep_browser serve",
        description="Serve one filesystem over 9P2000.L to many clients: v86's proxy_url (WebSocket), "
        "TCP and Unix sockets. See docs/serve.md.",
    )
    ap.add_argument("--ws", metavar="HOST:PORT", help="WebSocket listener (v86 proxy_url: ws://HOST:PORT/)")
    ap.add_argument(
        "--tcp", metavar="HOST:PORT", help="TCP listener (9P framing; Linux: mount -t 9p -o trans=tcp)"
    )
    ap.add_argument("--unix", metavar="PATH", help="Unix-socket listener (9P framing)")
    ap.add_argument("--db", type=Path, metavar="FILE.sqlite", help="keep the files in this SQLite store")
    ap.add_argument(
        "--image",
        type=Path,
        metavar="FILE.img",
        help="start from this image (without --db: a copy in memory)",
    )
    ap.add_argument(
        "--base",
        nargs=2,
        metavar=("FS.JSON", "BASEDIR"),
        help="serve a v86 fs2json base image (or an image made by `image import-fs2json`) whose "
        "files are read from BASEDIR (a directory or an http(s) URL) on first use; with --db its "
        "tree seeds a new store, and what was read is kept there (docs/base-images.md)",
    )
    ap.add_argument("--read-only", action="store_true", help="refuse every change (EROFS)")
    ap.add_argument(
        "--site", type=Path, metavar="DIR", help="also serve a built dist/ over HTTP on the --ws port"
    )
    ap.add_argument(
        "--token", help="clients must present this token (WebSocket URL ?token=, 9P aname token=)"
    )
    ap.add_argument("--token-file", type=Path, metavar="FILE", help="read the token from FILE")
    ap.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a browser origin allowed to open the WebSocket (repeatable; default: the --site's own)",
    )
    ap.add_argument("--insecure", action="store_true", help="allow listening beyond loopback without a token")
    ap.add_argument(
        "--grace", type=float, default=300.0, metavar="SECONDS", help="resumable sessions wait this long"
    )
    ap.add_argument(
        "--idle-timeout",
        type=float,
        default=0,
        metavar="SECONDS",
        help="close connections silent this long (0: never)",
    )
    ap.add_argument(
        "--max-msize", type=int, default=1 << 20, metavar="BYTES", help="largest 9P frame (msize)"
    )
    ap.add_argument("--max-fids", type=int, default=4096, metavar="N", help="fids per session")
    ap.add_argument(
        "--max-locks",
        type=int,
        default=1024,
        metavar="N",
        help="lock ranges one session may hold (ENOLCK past it)",
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="log connections and sessions")
    return ap


def open_filesystem(args: argparse.Namespace) -> Filesystem:
    """The default factory: ``--db`` (with ``--image`` as its first content), ``--image`` alone
    (a copy in memory: the image file is never written), or an empty filesystem in memory."""
    from ..fs.image import ImageError, load_image
    from ..store.base import StoreError

    if getattr(args, "base", None):
        return _open_base(args)
    data = None
    if args.image is not None:
        try:
            data = args.image.read_bytes()
        except OSError as exc:
            raise UsageError(f"--image {args.image}: {exc.strerror}") from None
    try:
        if args.db is None:
            return load_image(data) if data is not None else Filesystem()
        from ..store.sqlite import SQLiteStore

        _check_foreign(args.db)
        store = SQLiteStore(args.db)
        if store.load_meta():
            return Filesystem(store=store)
        if data is not None:
            return load_image(data, store=store)
        fs = Filesystem()
        fs.adopt_store(store)
        fs.persist(True)
        return fs
    except (StoreError, ImageError) as exc:
        raise UsageError(str(exc)) from None


def _open_base(args: argparse.Namespace) -> Filesystem:
    """``--base FS.JSON BASEDIR``: the base's tree (a new store's first content, or in memory),
    its files read from BASEDIR as clients read them. An existing store opens as it is."""
    from ..fs.image import MAGIC, ImageError, load_image
    from ..fs2json import Fs2jsonError, load_fs2json, source_for
    from ..store.base import StoreError

    if args.image is not None:
        raise UsageError(
            "--base and --image do not go together: --base takes an image made by import-fs2json too"
        )
    tree_path, location = Path(args.base[0]), args.base[1]
    try:
        source = source_for(location)
    except OSError as exc:
        raise UsageError(f"--base {location}: {exc.strerror}") from None
    try:
        store = None
        if args.db is not None:
            from ..store.sqlite import SQLiteStore

            _check_foreign(args.db)
            store = SQLiteStore(args.db)
            if store.load_meta():
                fs = Filesystem(store=store)
                fs.base_source = source
                return fs
        try:
            data = tree_path.read_bytes()
        except OSError as exc:
            raise UsageError(f"--base {tree_path}: {exc.strerror}") from None
        fs = load_image(data) if data.startswith(MAGIC) else load_fs2json(data)
        fs.base_source = source
        if store is not None:
            fs.adopt_store(store)
            fs.persist(True)
        return fs
    except (StoreError, ImageError, Fs2jsonError) as exc:
        raise UsageError(f"--base {tree_path}: {exc}") from None


def _check_foreign(path: Path) -> None:
    """Refuse a SQLite database that holds other tables than a store's: it is someone else's."""
    import sqlite3

    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            db.close()
    except sqlite3.Error:
        return  # not SQLite at all: the store says so in its own words
    if tables - {"meta", "chunks"}:
        raise UsageError(
            f"--db {path} is a SQLite database but not a pyninep store (tables: {', '.join(sorted(tables))})"
        )


def _token(args: argparse.Namespace) -> str | None:
    if args.token is not None and args.token_file is not None:
        raise UsageError("give --token or --token-file, not both")
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            raise UsageError(f"--token-file {args.token_file}: {exc.strerror}") from None
        if not token:
            raise UsageError(f"--token-file {args.token_file} is empty")
        return token
    if args.token is not None and not args.token:
        raise UsageError("--token is empty")
    return args.token


class App:
    """The running server: listeners, the hub, the tick, and shutdown."""

    def __init__(self, args: argparse.Namespace, factory: FilesystemFactory) -> None:
        self.args = args
        self.factory = factory
        self.listeners: list[Any] = []
        self.stopping = asyncio.Event()
        self.signals = 0
        self.hub: Hub | None = None

    def check(self) -> str | None:
        """Validate the flags before touching anything; returns the token."""
        a = self.args
        if not (a.ws or a.tcp or a.unix):
            raise UsageError("nothing to listen on: give --ws HOST:PORT, --tcp HOST:PORT or --unix PATH")
        if a.site is not None:
            if not a.ws:
                raise UsageError("--site is served on the --ws port: give --ws too")
            if not (a.site / "index.html").is_file():
                raise UsageError(f"--site {a.site}: no index.html there (run ./build.sh)")
        if a.max_msize < 4096 or a.max_fids < 1 or a.max_locks < 1 or a.grace < 0 or a.idle_timeout < 0:
            raise UsageError(
                "--max-msize is at least 4096, --max-fids and --max-locks at least 1, times not negative"
            )
        token = _token(a)
        hosts = [parse_address(x, f)[0] for x, f in ((a.ws, "--ws"), (a.tcp, "--tcp")) if x]
        exposed = [h for h in hosts if not is_loopback(h)]
        if exposed and token is None:
            if not a.insecure:
                raise UsageError(
                    f"listening on {exposed[0]} (beyond this machine) needs --token or --token-file "
                    "(or --insecure to serve anyone who can connect)"
                )
            print(
                f"pyninep: WARNING: serving on {exposed[0]} with no token: ANYONE who can reach this "
                "machine can read and change these files",
                file=sys.stderr,
            )
        if a.ws:
            try:
                import websockets  # noqa: F401
            except ImportError:
                raise UsageError(
                    "--ws needs the websockets package: pip install 'pyninep-browser[serve]'"
                ) from None
        return token

    async def run(self, token: str | None) -> int:
        a = self.args
        fs = self.factory(a)
        limits = Limits(max_msize=a.max_msize, max_fids=a.max_fids, max_locks=a.max_locks, grace=a.grace)
        hub = self.hub = Hub(fs, limits=limits, token=token, read_only=a.read_only)
        streams = StreamTransport(hub, idle_timeout=a.idle_timeout)
        ws = None
        where = []
        try:
            if a.tcp:
                host, port = parse_address(a.tcp, "--tcp")
                srv = await self._listen(streams.start_tcp(host, port), f"{host}:{port}")
                where.append(f"tcp://{_hostport(srv)}")
            if a.unix:
                srv = await self._listen(streams.start_unix(a.unix), a.unix)
                where.append(f"unix:{a.unix}")
            if a.ws:
                from .websocket import WebSocketTransport

                ws = WebSocketTransport(
                    hub, allow_origins=a.allow_origin, site=a.site, idle_timeout=a.idle_timeout
                )
                host, port = parse_address(a.ws, "--ws")
                srv = await self._listen(ws.start(host, port), f"{host}:{port}")
                where.append(f"ws://{_hostport(srv)}/")
        except UsageError:
            self._stop_listening()
            hub.close()
            raise
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._signal)
        store = f"SQLite {a.db}" if a.db else f"a copy of {a.image} in memory" if a.image else "memory"
        print(f"pyninep: serving {store} on {' '.join(where)}", flush=True)
        try:
            while not self.stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 0.1)
                hub.tick()
        finally:
            self._stop_listening()
            streams.close_all()
            if ws is not None:
                ws.close_all()
            await asyncio.sleep(0)
            hub.close()
        print(f"pyninep: stopped after {hub.requests} requests; everything is committed", flush=True)
        return 0

    async def _listen(self, starting: Any, where: str) -> Any:
        try:
            srv = await starting
        except OSError as exc:
            raise UsageError(f"cannot listen on {where}: {exc.strerror or exc}") from None
        self.listeners.append(srv)
        return srv

    def _stop_listening(self) -> None:
        for srv in self.listeners:
            srv.close()

    def _signal(self) -> None:
        self.signals += 1
        if self.signals > 1:
            os._exit(1)  # the second signal: at once
        self.stopping.set()


def _hostport(srv: Any) -> str:
    sock = srv.sockets[0]
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def main(argv: list[str], factory: FilesystemFactory = open_filesystem) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed its one line (and usage)
        return 2 if exc.code else 0
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="pyninep: %(message)s",
        stream=sys.stderr,
    )
    app = App(args, factory)
    try:
        token = app.check()
        return asyncio.run(app.run(token))
    except UsageError as exc:
        print(f"pyninep: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 1

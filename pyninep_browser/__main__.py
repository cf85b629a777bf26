"""Command line: ``python -m pyninep_browser image|initramfs …`` (build.sh uses both).

User mistakes (a missing file, a bad option) get one readable line and exit status 2; only a bug of
ours prints a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import snapshot
from .image import build_default_root, build_initramfs


def _extras(specs: list[str]) -> dict[str, Path]:
    extras = {}
    for spec in specs:
        guest, sep, host = spec.partition("=")
        if not sep or not guest.startswith("/"):
            raise ValueError(f"--extra wants GUEST_PATH=HOST_PATH, got {spec!r}")
        path = Path(host)
        if not path.is_symlink() and not path.is_file():
            raise FileNotFoundError(f"--extra {spec}: {host} is not a file")
        extras[guest] = path
    return extras


def make_site_server(directory: Path, host: str = "127.0.0.1", port: int = 8000):
    """A threaded static HTTP server for a built site, with the MIME types modules and wasm need."""
    import functools
    import http.server

    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                          ".mjs": "text/javascript", ".js": "text/javascript",
                          ".wasm": "application/wasm", ".json": "application/json",
                          ".whl": "application/zip", ".img": "application/octet-stream"}

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
            pass

    handler = functools.partial(Handler, directory=str(directory))
    return http.server.ThreadingHTTPServer((host, port), handler)


def serve_site(directory: Path, host: str, port: int) -> int:
    if not (directory / "index.html").is_file():
        print(f"pyninep: {directory}/index.html not found: run ./build.sh first", file=sys.stderr)
        return 2
    try:
        server = make_site_server(directory, host, port)
    except OSError as exc:
        print(f"pyninep: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"serving {directory} on http://{host}:{server.server_address[1]}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyninep_browser",
                                     description="pyninep-browser: build guest images.")
    sub = parser.add_subparsers(dest="command", required=True)
    img = sub.add_parser("image", help="author the default root filesystem image")
    img.add_argument("--busybox", required=True, type=Path, help="static i386 busybox binary")
    img.add_argument("--extra", action="append", default=[], metavar="GUEST=HOST",
                     help="copy a host file (or symlink) into the image; repeatable")
    img.add_argument("--out", required=True, type=Path, help="where to write the image")
    ird = sub.add_parser("initramfs", help="write the initramfs that mounts host9p as /")
    ird.add_argument("--kernel-root", required=True, type=Path,
                     help="an extracted kernel package (with lib/modules/…)")
    ird.add_argument("--busybox", required=True, type=Path, help="static i386 busybox binary")
    ird.add_argument("--out", required=True, type=Path, help="where to write the cpio archive")
    site = sub.add_parser("site", help="serve a built dist/ directory over HTTP (static files)")
    site.add_argument("directory", type=Path, nargs="?", default=Path("dist"))
    site.add_argument("--host", default="127.0.0.1")
    site.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    if args.command == "site":
        return serve_site(args.directory, args.host, args.port)
    try:
        if args.command == "image":
            for p in (args.busybox,):
                if not p.is_file():
                    raise FileNotFoundError(f"{p}: no such file")
            fs = build_default_root(args.busybox, _extras(args.extra))
            data = snapshot.save_filesystem(fs)
        else:
            if not args.busybox.is_file():
                raise FileNotFoundError(f"{args.busybox}: no such file")
            data = build_initramfs(args.kernel_root, args.busybox)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(args.out)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"pyninep: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({len(data):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``python -m pyninep_browser image|initramfs|site|serve …`` (build.sh uses the
first three; ``site build`` is :mod:`.sitebuild`, your own site made from a built one; ``serve``
is :mod:`.serve.cli`: the filesystem over WebSocket, TCP and Unix sockets).

``image build|ls|extract|import-tar|export-tar`` work on image files (:mod:`.fs.image`); the older
``image --busybox PATH [--extra G=H] --out FILE`` still builds the default image.

User mistakes (a missing file, a bad option) get one readable line and exit status 2; only a bug of
ours prints a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

from .initramfs import build_initramfs
from .sitefiles import SITE_TYPES

IMAGE_VERBS = (
    "build",
    "ls",
    "extract",
    "import-tar",
    "export-tar",
    "import-fs2json",
    "export-fs2json",
    "requires",
)


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
        # The stdlib's handler looks MIME types up in this class attribute: extend it.
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **SITE_TYPES}  # noqa: RUF012

        def log_message(self, format: str, *args) -> None:  # "format": the stdlib's name
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
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


_RESERVED_ARGS = ("tree", "source")  # build_from_script's keywords: a script cannot be handed them


def _script_args(specs: list[str]) -> dict[str, Any]:
    """``--arg NAME=VALUE`` options as the keyword arguments of the script's build()."""
    out: dict[str, Any] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--arg wants NAME=VALUE, got {spec!r}")
        if key in _RESERVED_ARGS:
            raise ValueError(f"--arg {key}=… is not a build() argument: '{key}' is build_from_script's own")
        out[key] = value
    return out


def _taken(build: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """The ``arguments`` a script's ``build()`` accepts (all of them if it takes ``**kwargs``)."""
    import inspect

    params = inspect.signature(build).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return arguments
    names = {p.name for p in params}
    return {k: v for k, v in arguments.items() if k in names}


def _load(path: Path, base: str | None = None, content: bool = False):
    """An image's filesystem; its live files stay unattached (listed by name, never run).
    ``base``: where its base files' content is (a directory or an http(s) URL)."""
    from .fs.image import ImageError, load_image
    from .fs2json import source_for

    try:
        fs = load_image(path.read_bytes())
    except ImageError as exc:
        raise ImageError(f"{path}: {exc}") from None
    if base is not None:
        fs.base_source = source_for(base)
    elif content and any(i.base is not None for i in fs.inodes.values()):
        raise ValueError(f"{path} reads its files' content from a base image: give --base DIR_OR_URL")
    return fs


def image_main(argv: list[str]) -> int:
    """``image build|ls|extract|import-tar|export-tar|import-fs2json|export-fs2json``."""
    parser = argparse.ArgumentParser(
        prog="python -m pyninep_browser image", description="Build, inspect and convert image files."
    )
    sub = parser.add_subparsers(dest="verb", required=True)
    b = sub.add_parser(
        "build",
        help="run authoring scripts' build(tree), in order on one tree, and write the image",
    )
    b.add_argument("script", type=Path, nargs="+")
    b.add_argument("-o", "--out", required=True, type=Path)
    b.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="passed to build(tree, NAME=VALUE) (with several scripts: to each whose build() takes "
        "NAME); repeatable",
    )
    b.add_argument(
        "--base",
        nargs=2,
        type=Path,
        metavar=("FS.JSON", "BASEDIR"),
        help="start the tree from v86's fs2json base (its files stay references into BASEDIR: the "
        "image is small, and a page serves it with baseurl pointing at BASEDIR)",
    )
    ls = sub.add_parser("ls", help="list an image's entries (ls -l style)")
    ls.add_argument("image", type=Path)
    ls.add_argument("path", nargs="?", default="/")
    ls.add_argument("-R", "--recursive", action="store_true")
    ex = sub.add_parser("extract", help="write an image's tree into a host directory")
    ex.add_argument("image", type=Path)
    ex.add_argument("directory", type=Path)
    it = sub.add_parser("import-tar", help="make an image from a tar (any compression)")
    it.add_argument("tar", type=Path)
    it.add_argument("-o", "--out", required=True, type=Path)
    et = sub.add_parser("export-tar", help="write an image's tree as a pax tar")
    et.add_argument("image", type=Path)
    et.add_argument("-o", "--out", required=True, type=Path)
    ij = sub.add_parser(
        "import-fs2json",
        help="make an image from v86's fs2json base (fs.json + content directory), keeping its "
        "files as lazy references checked by full SHA-256",
    )
    ij.add_argument("fs_json", type=Path, metavar="FS.JSON")
    ij.add_argument("basedir", type=Path, metavar="BASEDIR")
    ij.add_argument("-o", "--out", required=True, type=Path)
    ej = sub.add_parser("export-fs2json", help="write an image as v86's fs2json: DIR/fs.json and DIR/base/")
    ej.add_argument("image", type=Path)
    ej.add_argument("-o", "--out", required=True, type=Path, metavar="DIR")
    ej.add_argument("--zstd", action="store_true", help="compress content files (zstd level 19, .bin.zst)")
    for p in (ex, et, ej):
        p.add_argument("--base", metavar="DIR_OR_URL", help="content of an image made by import-fs2json")
    rq = sub.add_parser(
        "requires",
        help="download the pure-Python wheels a script's REQUIRES names (and their dependencies, and "
        "micropip) into a directory of the site, with index.json for createServer({requires})",
    )
    rq.add_argument("script", type=Path)
    rq.add_argument("-o", "--out", required=True, type=Path, metavar="DIR", help="e.g. dist/requires")
    rq.add_argument(
        "--pyodide-lock",
        required=True,
        type=Path,
        metavar="LOCK.json",
        help="the site's pyodide-lock.json: the page's Python version and the micropip it names",
    )
    rq.add_argument("--python-version", metavar="X.Y", help="default: the lock file's")
    args = parser.parse_args(argv)
    from .archive import export_tar, extract, import_tar, listing
    from .authoring import Tree, load_script, script_mistake
    from .fs.image import dump_image

    try:
        if args.verb == "requires":
            return _requires(args.script, args.out, args.pyodide_lock, args.python_version)
        if args.verb == "build":
            for script in args.script:
                if not script.is_file():
                    raise FileNotFoundError(f"{script}: no such script")
            started = time.monotonic()
            start = None
            if args.base is not None:
                from .fs2json import import_fs2json

                fs_json, basedir = args.base
                if not fs_json.is_file():
                    raise FileNotFoundError(f"{fs_json}: no such file")
                if not basedir.is_dir():
                    raise FileNotFoundError(f"{basedir}: no such directory")
                from .fs2json import DirSource

                start = Tree(import_fs2json(fs_json, basedir))
                start.fs.base_source = DirSource(basedir)  # the script may read the base's files
            tree = start if start is not None else Tree()
            arguments = _script_args(args.arg)
            for i, script in enumerate(args.script):
                try:
                    module = load_script(script, name=f"pyninep_script_{i}" if i else "pyninep_script")
                    build = getattr(module, "build", None)
                    if not callable(build):
                        raise ValueError("the script defines no build(tree) function")
                    build(tree, **(arguments if len(args.script) == 1 else _taken(build, arguments)))
                except (OSError, ValueError, TypeError) as exc:
                    raise ValueError(script_mistake(script, exc)) from None
            data = dump_image(tree.fs)
            _write(args.out, data)
            live = len(tree.live_files())
            print(
                f"wrote {args.out} ({len(data):,} bytes, {len(tree.fs.inodes)} inodes, "
                f"{live} live) in {time.monotonic() - started:.2f} s"
            )
        elif args.verb == "ls":
            for line in listing(_load(args.image), args.path, args.recursive):
                print(line)
        elif args.verb == "extract":
            warnings = extract(_load(args.image, args.base, content=True), args.directory)
            for w in warnings:
                print(f"pyninep: {w}", file=sys.stderr)
        elif args.verb == "import-tar":
            tree = Tree()
            n = import_tar(tree, args.tar)
            data = dump_image(tree.fs)
            _write(args.out, data)
            print(f"wrote {args.out} ({len(data):,} bytes, {n} entries)")
        elif args.verb == "import-fs2json":
            from .fs2json import import_fs2json

            if not args.fs_json.is_file():
                raise FileNotFoundError(f"{args.fs_json}: no such file")
            if not args.basedir.is_dir():
                raise FileNotFoundError(f"{args.basedir}: no such directory")
            fs = import_fs2json(args.fs_json, args.basedir)
            data = dump_image(fs)
            _write(args.out, data)
            files = len({i.base for i in fs.inodes.values() if i.base is not None})
            print(
                f"wrote {args.out} ({len(data):,} bytes, {len(fs.inodes)} inodes, "
                f"{files} content files by reference)"
            )
        elif args.verb == "export-fs2json":
            from .fs2json import export_fs2json

            counts = export_fs2json(_load(args.image, args.base, content=True), args.out, zstd=args.zstd)
            print(
                f"wrote {args.out}/fs.json ({counts['entries']} entries) and {args.out}/base/ "
                f"({counts['files']} content files, {counts['content_bytes']:,} bytes)"
            )
        else:
            tmp = args.out.with_name(args.out.name + ".tmp")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            n = export_tar(_load(args.image, args.base, content=True), tmp)
            tmp.replace(args.out)
            print(f"wrote {args.out} ({n} entries)")
    except BrokenPipeError:  # `image ls … | head`
        sys.stderr.close()
        return 0
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"pyninep: {exc}", file=sys.stderr)
        return 2
    return 0


def _requires(script: Path, out: Path, lock_path: Path, python_version: str | None) -> int:
    """``image requires``: the wheels of a script's REQUIRES into ``out`` (docs/authoring.md)."""
    import json

    from .requires import fetch_requires, read_requires

    if not script.is_file():
        raise FileNotFoundError(f"{script}: no such script")
    if not lock_path.is_file():
        raise FileNotFoundError(f"{lock_path}: no such file")
    try:
        lock = json.loads(lock_path.read_text())
    except ValueError as exc:
        raise ValueError(f"{lock_path}: not JSON ({exc})") from None
    started = time.monotonic()
    index = fetch_requires(read_requires(script), out, lock, python_version)
    wheels = index["wheels"]
    total = sum(w["size"] for w in [index["micropip"], *wheels])
    names = ", ".join(f"{w['name']} {w['version']}" for w in wheels) or "no package"
    print(
        f"wrote {out}/index.json: {names} and micropip for Python {index['python']} "
        f"({total:,} bytes) in {time.monotonic() - started:.2f} s"
    )
    return 0


def site_build_main(argv: list[str]) -> int:
    """``site build SCRIPT.py --from SITE --out OUT [--arg NAME=VALUE]… [--no-machine]``."""
    parser = argparse.ArgumentParser(
        prog="python -m pyninep_browser site build",
        description="Make your own sandbox site: a built site (--from) with your authoring script's "
        "build(tree) added, its REQUIRES fetched, and its machine saved again (docs/your-site.md).",
    )
    parser.add_argument("script", type=Path, metavar="SCRIPT.py")
    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        type=Path,
        metavar="SITE",
        help="a built site: the dist/ of ./build.sh, or a published one",
    )
    parser.add_argument(
        "-o", "--out", required=True, type=Path, metavar="OUT", help="the new site's directory"
    )
    parser.add_argument(
        "--arg", action="append", default=[], metavar="NAME=VALUE", help="passed to build(tree, NAME=VALUE)"
    )
    parser.add_argument(
        "--no-machine",
        action="store_true",
        help="do not save the booted machine (a first visit then boots the guest); without Node it is not",
    )
    args = parser.parse_args(argv)
    from .sitebuild import build_site

    def log(line: str) -> None:
        print(f"pyninep: {line}", file=sys.stderr)

    try:
        made = build_site(
            args.script, args.source, args.out, _script_args(args.arg), machine=not args.no_machine, log=log
        )
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"pyninep: {exc}", file=sys.stderr)
        return 2
    packages = ", ".join(made["packages"]) or "none"
    machine = "saved" if made["machine"] else "none (the first visit boots)"
    print(
        f"wrote {args.out}/: image {made['image_bytes']:,} bytes ({made['live']} live files), "
        f"packages: {packages}, machine: {machine}, in {made['seconds']:.1f} s; "
        f"try it: python -m pyninep_browser site {args.out}"
    )
    return 0


def _is_site_build(argv: list[str]) -> bool:
    """``site build …`` builds a site, except where ./build is a built site and no script is
    named: the older form ``site [DIRECTORY]`` then serves that directory."""
    if len(argv) < 2 or argv[0] != "site" or argv[1] != "build":
        return False
    return any(a.endswith(".py") for a in argv[2:]) or not Path("build/index.html").is_file()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) >= 2 and argv[0] == "image" and argv[1] in IMAGE_VERBS:
        return image_main(argv[1:])
    if _is_site_build(argv):
        return site_build_main(argv[2:])
    if argv and argv[0] == "serve":
        from .serve.cli import main as serve_main

        return serve_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m pyninep_browser", description="pyninep-browser: build guest images."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    img = sub.add_parser(
        "image",
        help="the default image (older form); image build|ls|extract|import-tar|export-tar|"
        "import-fs2json|export-fs2json|requires: see 'image build -h', 'image requires -h'",
    )
    img.add_argument("--busybox", required=True, type=Path, help="static i386 busybox binary")
    img.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="GUEST=HOST",
        help="copy a host file (or symlink) into the image; repeatable",
    )
    img.add_argument("--out", required=True, type=Path, help="where to write the image")
    ird = sub.add_parser("initramfs", help="write the initramfs that mounts host9p as /")
    kernel = ird.add_mutually_exclusive_group(required=True)
    kernel.add_argument(
        "--kernel-root", type=Path, help="an extracted kernel package (lib/modules/…): pack its 9p modules"
    )
    kernel.add_argument(
        "--builtin", action="store_true", help="a kernel with 9p and virtio built in (build.sh's): no modules"
    )
    ird.add_argument("--busybox", required=True, type=Path, help="static i386 busybox binary")
    ird.add_argument("--out", required=True, type=Path, help="where to write the cpio archive")
    sub.add_parser(
        "serve", help="serve a filesystem over 9P: WebSocket (v86 proxy_url), TCP, Unix; see 'serve -h'"
    )
    site = sub.add_parser(
        "site",
        help="serve a built dist/ directory over HTTP (static files); 'site build SCRIPT.py --from SITE "
        "--out OUT' makes your own site: see 'site build -h'",
    )
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
            from . import default_image
            from .authoring import Tree
            from .fs.image import dump_image

            tree = Tree()
            default_image.build(
                tree, busybox=str(args.busybox), extras={g: str(h) for g, h in _extras(args.extra).items()}
            )
            data = dump_image(tree.fs)
        else:
            if not args.busybox.is_file():
                raise FileNotFoundError(f"{args.busybox}: no such file")
            data = build_initramfs(None if args.builtin else args.kernel_root, args.busybox)
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

"""``python -m pyninep_browser site build SCRIPT.py --from SITE --out OUT``: your own sandbox site,
made from a built one (docs/your-site.md).

``./build.sh build --image SCRIPT.py`` builds a site from this repository (v86, Pyodide, the kernel,
the Debian or busybox userland). Someone who installed the package has none of that, but can have a
built site (one ``./build.sh`` made, or a published one): this module makes a new site from it
with the user's authoring script added, as build.sh would:

- every file of SITE is linked (or copied) into OUT, except the image, the saved machine and
  the script's packages, which are made anew;
- the script's ``REQUIRES`` are fetched into ``OUT/requires/`` (pure-Python wheels and micropip,
  :mod:`.requires`) and are importable while its ``build()`` runs;
- ``build(tree, **args)`` runs on SITE's tree (``images/default.img``: the userland and /py; on
  a Debian site the base's files stay references into ``debian/base/``), and the result is
  ``OUT/images/default.img``, with the script as ``images/default.py`` (the page runs it at
  start-up to attach its live files);
- the booted machine is saved again with Node (``tools/build-machine.mjs`` of the site), so the
  first visit restores instead of booting; without Node the site still works and boots;
- ``manifest.json`` and the service worker (``sw.js``) list exactly the new site's files.

OUT is written beside itself and renamed into place at the end: an error leaves an earlier OUT
as it was. Every mistake the user can fix is a :class:`SiteError` (one line).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .requires import fetch_requires, file_sha256, read_requires

# Made anew for OUT; everything else of SITE is carried over as it is.
_REMADE = ("images", "machine", "requires", "manifest.json", "sw.js")
_SW_BUILD = re.compile(r'^const BUILD = ".*";$', re.M)
_SW_FILES = re.compile(r"^const FILES = .*?; //", re.M)


class SiteError(ValueError):
    """A site cannot be built as asked: one readable line."""


def _link_or_copy(src: str, dst: str) -> None:
    """copytree's copy: a hard link, or across filesystems a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _link_tree(src: Path, dst: Path) -> None:
    """Every file of ``src`` into ``dst`` (linked where it can be), but what is made anew."""
    top = os.fspath(src)
    shutil.copytree(
        src,
        dst,
        ignore=lambda d, names: [n for n in names if n in _REMADE] if d == top else [],
        copy_function=_link_or_copy,
        dirs_exist_ok=True,
    )


def _site_files(site: Path) -> Iterator[Path]:
    """The files of the page (what manifest.sizes lists and the service worker caches): not a
    base's content (fetched as the guest reads it), not tools/, not hidden or temporary files."""
    for dirpath, dirnames, filenames in os.walk(site):
        rel = Path(dirpath).relative_to(site)
        if rel == Path("."):
            dirnames[:] = [d for d in dirnames if not d.startswith("debian") and d != "tools"]
        for name in filenames:
            if name.startswith(".") or name.endswith(".tmp"):
                continue
            if rel == Path(".") and name in ("sw.js", "manifest.json"):
                continue
            yield rel / name


@contextlib.contextmanager
def _importable(wheels: list[Path]) -> Iterator[None]:
    """The fetched wheels on sys.path (pure-Python wheels import from their zip) while the
    script runs, as the page will have them installed."""
    paths = [str(w) for w in wheels]
    sys.path[:0] = paths
    try:
        yield
    finally:
        for p in paths:
            with contextlib.suppress(ValueError):
                sys.path.remove(p)


def _run_script(script: Path, tree: Any, arguments: dict[str, Any]) -> None:
    from .authoring import load_script, script_mistake

    try:
        module = load_script(script, name="pyninep_site_script")
        build = getattr(module, "build", None)
        if not callable(build):
            raise ValueError("the script defines no build(tree) function")
        build(tree, **arguments)
    except (OSError, ValueError, TypeError, ImportError) as exc:
        raise SiteError(script_mistake(script, exc)) from None


def _save_machine(out: Path, stamp: str, log: Callable[[str], None]) -> dict[str, Any] | None:
    """Boot the new site's guest once in Node and save it (tools/build-machine.mjs, the script
    build.sh runs); None, with a line saying why, when Node or the script is missing."""
    tool = out / "tools" / "build-machine.mjs"
    node = shutil.which("node")
    if node is None or not tool.is_file():
        why = "node is not on PATH" if node is None else f"{tool.relative_to(out)} is missing"
        log(f"no saved machine ({why}): a first visit boots the guest instead of restoring it")
        return None
    rel = f"machine/{stamp[:16]}.machine"
    (out / "machine").mkdir()
    log("saving the booted machine (Node boots the guest once)")
    done = subprocess.run(
        [node, str(tool), str(out), str(out / rel), stamp], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise SiteError(f"saving the machine failed: {lines[-1] if lines else f'exit {done.returncode}'}")
    from .sitefiles import pack_machine

    return pack_machine(out, rel)


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    manifest["sizes"] = {str(p): (out / p).stat().st_size for p in sorted(_site_files(out))}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _write_service_worker(out: Path, manifest: dict[str, Any], template: str) -> None:
    """SITE's sw.js with this build's id and file list (web/sw.js's two generated lines)."""
    files = ["./", "manifest.json", *manifest["sizes"]]
    h = hashlib.sha256()
    for rel in ["manifest.json", *manifest["sizes"]]:
        h.update(f"{rel}\0{file_sha256(out / rel)}\n".encode())
    if not _SW_BUILD.search(template) or not _SW_FILES.search(template):
        raise SiteError("the site's sw.js is not one build.sh wrote (no BUILD and FILES lines)")
    text = _SW_BUILD.sub(f'const BUILD = "{h.hexdigest()[:16]}";', template, count=1)
    text = _SW_FILES.sub(lambda _: f"const FILES = {json.dumps(files)}; //", text, count=1)
    (out / "sw.js").write_text(text)


def build_site(
    script: Path,
    source: Path,
    out: Path,
    arguments: dict[str, Any] | None = None,
    *,
    machine: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Make the site OUT: SITE with ``script``'s ``build(tree, **arguments)`` added (see the
    module's text). Returns what was made: image bytes, live files, packages, machine, seconds."""
    from . import __version__
    from .fs.image import ImageError, dump_image, load_image

    started = time.monotonic()
    script, source, out = Path(script), Path(source), Path(out)
    if not script.is_file():
        raise SiteError(f"{script}: no such script")
    manifest_path = source / "manifest.json"
    if not manifest_path.is_file() or not (source / "images" / "default.img").is_file():
        raise SiteError(
            f"{source} is not a built site (no manifest.json and images/default.img): run ./build.sh"
        )
    if out.resolve() == source.resolve():
        raise SiteError("--out must not be the --from site: the new site is made beside it")
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise SiteError(f"{out} exists and is not a site: give an empty or new directory")
    manifest = json.loads(manifest_path.read_text())
    wheel = str(manifest.get("wheel", ""))
    if f"-{__version__}-" not in wheel:
        log(f"note: {source} ships {Path(wheel).name}, this is pyninep-browser {__version__}")
    if (source / "images" / "default.py").is_file():
        from . import default_image

        if (source / "images" / "default.py").read_bytes() != Path(default_image.__file__).read_bytes():
            log(f"note: {source} was built from its own script; its live files stay without code")

    work = out.with_name(f".{out.name}.building")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        _link_tree(source, work)
        # The script's packages: before it runs, so it may import them
        requires = read_requires(script)
        wheels: list[Path] = []
        packages: list[str] = []
        if requires:
            lock_path = source / str(manifest.get("pyodide", "pyodide/")) / "pyodide-lock.json"
            if not lock_path.is_file():
                raise SiteError(f"{lock_path}: no such file (the site's Pyodide lock names its Python)")
            index = fetch_requires(requires, work / "requires", json.loads(lock_path.read_text()))
            wheels = [work / "requires" / w["file"] for w in index["wheels"]]
            packages = [f"{w['name']} {w['version']}" for w in index["wheels"]]
            manifest["requires"] = "requires/index.json"
        else:
            manifest.pop("requires", None)

        from .authoring import Tree

        try:
            fs = load_image((source / "images" / "default.img").read_bytes())
        except ImageError as exc:
            raise SiteError(f"{source}/images/default.img: {exc}") from None
        if manifest.get("baseurl") and (source / str(manifest["baseurl"])).is_dir():
            from .fs2json import DirSource

            fs.base_source = DirSource(source / str(manifest["baseurl"]))  # the script may read base files
        tree = Tree(fs)
        with _importable(wheels):
            _run_script(script, tree, arguments or {})
        image = dump_image(tree.fs)
        (work / "images").mkdir()
        (work / "images" / "default.img").write_bytes(image)
        shutil.copyfile(script, work / "images" / "default.py")

        manifest.pop("machine", None)
        _write_manifest(work, manifest)
        saved = None
        if machine:
            h = hashlib.sha256(hashlib.sha256(image).hexdigest().encode())
            for part in ("images/default.py", manifest["wheel"]):
                h.update(file_sha256(work / part).encode())
            h.update(json.dumps(manifest.get("guest"), sort_keys=True).encode())
            saved = _save_machine(work, h.hexdigest(), log)
            if saved is not None:
                manifest["machine"] = saved
                _write_manifest(work, manifest)
        _write_service_worker(work, manifest, (source / "sw.js").read_text())
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            work.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return {
        "image_bytes": len(image),
        "live": len(tree.live_files()),
        "packages": packages,
        "machine": saved,
        "seconds": time.monotonic() - started,
    }

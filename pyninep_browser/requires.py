"""The Python packages an authoring script's live files need, fetched at build time for the page.

A script declares them at module level::

    REQUIRES = ["humanize", "tabulate>=0.9"]      # PEP 508 requirement strings

:func:`read_requires` reads that list **without running the script** (it may import those
packages, which the build host need not have): it parses the module with :mod:`ast` and takes
the literal value of the top-level assignment. :func:`fetch_requires` has pip download
pure-Python wheels (``py3-none-any``, ``py2.py3-none-any``) for them and their dependencies,
for the page's Python version, into a directory of the site, together with micropip (the wheel
Pyodide's lock file names, checked against its sha256), and writes ``index.json`` there. The
page (``createServer({requires})`` in ``web/pyninep.js``) installs the listed wheels with
micropip from those files, ``deps=False``: everything was resolved here, no package index is
contacted at run time. See docs/authoring.md.

Every failure the user can fix is a :class:`RequiresError` whose message is one line.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

INDEX = "index.json"
INDEX_FORMAT = 1
# PEP 508's name, at the start of a requirement string
_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")
_PURE_TAGS = ("-py3-none-any.whl", "-py2.py3-none-any.whl")
# pyodide-lock.json's sha256 for micropip is that of Pyodide's own build of the wheel (on its CDN,
# which this build does not use); PyPI's wheel of the same version is another build of the same
# source. Its sha256 as PyPI publishes it, per file name: a Pyodide upgrade that names another
# micropip adds a line here.
PYPI_MICROPIP = {
    "micropip-0.11.1-py3-none-any.whl": "768de165adb8e66906039d8fec4127a57f522dfdf8e6fbff877a4616941ecfd3",
}


class RequiresError(ValueError):
    """A script's REQUIRES or its packages cannot be fetched: one readable line."""


def canonical(name: str) -> str:
    """PEP 503's normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    """The canonical project name a requirement string names (``"Tabulate>=0.9"`` → ``tabulate``)."""
    m = _NAME.match(spec)
    if not m or not spec.strip():
        raise RequiresError(
            f"REQUIRES: {spec!r} is not a requirement (want e.g. 'humanize' or 'tabulate>=0.9')"
        )
    return canonical(m.group(1))


def read_requires(script: Path | str, source: str | None = None) -> list[str]:
    """The script's ``REQUIRES`` (``[]`` when it declares none), read without running it."""
    text = Path(script).read_text(encoding="utf-8") if source is None else source
    try:
        module = ast.parse(text, filename=str(script))
    except SyntaxError as exc:
        raise RequiresError(f"{script} (line {exc.lineno}): cannot parse it: {exc.msg}") from None
    found: list[str] | None = None
    for node in module.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        elif isinstance(node, ast.AugAssign):
            targets = [node.target]
        if not any(isinstance(t, ast.Name) and t.id == "REQUIRES" for t in targets):
            if any(isinstance(t, (ast.Tuple, ast.List)) and _names(t, "REQUIRES") for t in targets):
                raise RequiresError(f"{script} (line {node.lineno}): REQUIRES must be assigned on its own")
            continue
        where = f"{script} (line {node.lineno})"
        if value is None:
            raise RequiresError(
                f"{where}: REQUIRES must be one literal list of strings, not changed afterwards"
            )
        try:
            literal = ast.literal_eval(value)
        except ValueError:
            raise RequiresError(
                f"{where}: REQUIRES must be a literal list of strings (it is read without running the script)"
            ) from None
        if not isinstance(literal, list) or not all(isinstance(s, str) for s in literal):
            raise RequiresError(f"{where}: REQUIRES must be a list of strings, got {type(literal).__name__}")
        if found is not None:
            raise RequiresError(f"{where}: REQUIRES is assigned twice; keep one list")
        for spec in literal:
            requirement_name(spec)
        found = literal
    return found or []


def _names(target: ast.expr, name: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(target))


def file_sha256(path: Path) -> str:
    """A file's SHA-256, hex, read a MiB at a time."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _wheel_name(filename: str) -> tuple[str, str]:
    """(canonical project name, version) of a wheel file name."""
    parts = filename[: -len(".whl")].split("-")
    return canonical(parts[0]), parts[1]


def _requires_dist(wheel: Path) -> list[str]:
    """The project names a wheel's METADATA requires (extras' and markers' included)."""
    with zipfile.ZipFile(wheel) as z:
        meta = next((n for n in z.namelist() if n.endswith(".dist-info/METADATA")), None)
        text = z.read(meta).decode("utf-8", "replace") if meta else ""
    out = []
    for line in text.splitlines():
        if not line.strip():
            break  # the headers end at the first empty line
        if line.lower().startswith("requires-dist:"):
            m = _NAME.match(line.split(":", 1)[1])
            if m:
                out.append(canonical(m.group(1)))
    return out


def _pip_download(args: list[str], dest: Path, python_version: str, lock: dict[str, Any]) -> None:
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--platform", "any", "--implementation", "py", "--abi", "none",
        "--python-version", python_version, "--dest", str(dest), *args,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIP_NO_INPUT": "1"})
    if proc.returncode != 0:
        raise RequiresError(_pip_failure(proc.stderr + proc.stdout, python_version, lock))


def _pip_failure(output: str, python_version: str, lock: dict[str, Any]) -> str:
    """pip's failure as one line, naming the package it could not get."""
    m = re.search(r"No matching distribution found for (\S+)", output)
    if m:
        name = m.group(1)
        shipped = lock.get("packages", {}).get(requirement_name(name))
        why = (
            f"; Pyodide builds {shipped['file_name']} for WebAssembly, but the site's Pyodide (npm's core "
            "package) does not hold it"
            if shipped
            else ""
        )
        return (
            f"{name}: no pure-Python wheel (py3-none-any) for Python {python_version} on the package index "
            f"(compiled code, or no such package){why}"
        )
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")] or lines or ["pip download failed"]
    return f"pip download: {errors[-1].removeprefix('ERROR: ')}"


def micropip_pin(lock: dict[str, Any]) -> tuple[str, str]:
    """(file name, sha256) of the micropip wheel Pyodide's lock file names."""
    entry = lock.get("packages", {}).get("micropip")
    if not entry or not entry.get("file_name") or not entry.get("sha256"):
        raise RequiresError("pyodide-lock.json names no micropip wheel")
    return entry["file_name"], entry["sha256"]


def fetch_requires(
    requires: list[str],
    out: Path,
    lock: dict[str, Any],
    python_version: str | None = None,
) -> dict[str, Any]:
    """Download the wheels ``requires`` needs (and micropip) into ``out`` and write its index.

    Returns the index. A directory whose index already says the same (same requirements, same
    Python, files present with their sha256) is kept as it is: nothing is downloaded."""
    version = python_version or ".".join(str(lock.get("info", {}).get("python", "")).split(".")[:2])
    if not re.fullmatch(r"3\.\d+", version):
        raise RequiresError(f"the page's Python version {version!r} is not X.Y (give --python-version)")
    for spec in requires:
        requirement_name(spec)
    micropip_file, lock_sha = micropip_pin(lock)
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / INDEX
    if index_path.is_file():
        try:
            old = json.loads(index_path.read_text())
        except ValueError:
            old = None
        if (
            old
            and old.get("format") == INDEX_FORMAT
            and old.get("requires") == requires
            and old.get("python") == version
            and old.get("micropip", {}).get("file") == micropip_file
            and old["micropip"].get("sha256") in (lock_sha, PYPI_MICROPIP.get(micropip_file))
            and all(
                (out / w["file"]).is_file() and file_sha256(out / w["file"]) == w["sha256"]
                for w in [old["micropip"], *old["wheels"]]
            )
        ):
            return old
    with tempfile.TemporaryDirectory(prefix="pyninep-requires-") as tmp:
        work = Path(tmp)
        lockdir = work / "micropip"
        _pip_download(["--no-deps", f"micropip=={_wheel_name(micropip_file)[1]}"], lockdir, version, lock)
        got = lockdir / micropip_file
        if not got.is_file():
            raise RequiresError(f"pip did not download {micropip_file}")
        micropip_sha = file_sha256(got)
        if micropip_sha not in (lock_sha, PYPI_MICROPIP.get(micropip_file)):
            raise RequiresError(
                f"{micropip_file} from the package index has sha256 {micropip_sha}, neither "
                "pyodide-lock.json's nor PyPI's known one (pyninep_browser/requires.py PYPI_MICROPIP)"
            )
        wheels_dir = work / "wheels"
        wheels_dir.mkdir()
        if requires:
            _pip_download(list(requires), wheels_dir, version, lock)
        files = sorted(p for p in wheels_dir.iterdir())
        for p in files:
            if not p.name.endswith(_PURE_TAGS):
                raise RequiresError(
                    f"{p.name}: not a pure-Python wheel (py3-none-any); the page cannot install it"
                )
        # Which requirement each wheel satisfies: a named one, or the dependency of one.
        direct = {requirement_name(s): s for s in requires}
        names = {_wheel_name(p.name)[0]: p for p in files}
        parents: dict[str, list[str]] = {}
        for name, p in names.items():
            for dep in _requires_dist(p):
                parents.setdefault(dep, []).append(name)
        wheels = []
        for name, p in sorted(names.items()):
            entry: dict[str, Any] = {
                "file": p.name,
                "name": name,
                "version": _wheel_name(p.name)[1],
                "sha256": file_sha256(p),
                "size": p.stat().st_size,
            }
            if name in direct:
                entry["requirement"] = direct[name]
            else:
                entry["dependency_of"] = sorted(parents.get(name, []))
            wheels.append(entry)
        # Dependencies before what needs them (deps=False installs each as given).
        wheels.sort(key=lambda w: "requirement" in w)
        for old_file in out.glob("*.whl"):
            old_file.unlink()
        for p in [got, *files]:
            (out / p.name).write_bytes(p.read_bytes())
    index = {
        "format": INDEX_FORMAT,
        "python": version,
        "requires": list(requires),
        "micropip": {
            "file": micropip_file,
            "sha256": micropip_sha,
            "size": (out / micropip_file).stat().st_size,
        },
        "wheels": wheels,
    }
    tmp_index = index_path.with_name(INDEX + ".tmp")
    tmp_index.write_text(json.dumps(index, indent=1) + "\n")
    tmp_index.replace(index_path)
    return index

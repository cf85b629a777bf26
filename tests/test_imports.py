"""The package's import graph: no circles, and the layers point one way.

Every module of pyninep_browser (the source beside this file) is parsed with ``ast``, nothing is
imported, and every import in it counts wherever it stands: at module level, inside a function, a
``try`` or an ``if`` — relative and absolute, and ``importlib.import_module("pyninep_browser…")``
with a literal name. A function-level import does not make a circle harmless: it only moves the
failure from start-up to the first call, and it hides the direction from the reader.

An edge goes to the module named, and to the packages on the way to it (``from .store.base import
Batch`` runs ``store/__init__.py`` too), except the importer's own enclosing packages, which
are already being imported when it runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "pyninep_browser"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / PACKAGE


def _modules() -> dict[str, Path]:
    """Dotted module name → source file, packages by their ``__init__.py``."""
    out = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = [PACKAGE, *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _enclosing(name: str) -> list[str]:
    """The packages around ``name``, outermost first (``a.b.c`` → ``a``, ``a.b``)."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _named(module: str, path: Path, node: ast.AST) -> list[str]:
    """The dotted names an import statement (or a literal import_module call) asks for."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            here = module if path.name == "__init__.py" else module.rpartition(".")[0]
            base = here.split(".")
            base = base[:len(base) - (node.level - 1)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        # `from X import y` is the submodule X.y when there is one, else a name defined by X.
        return [f"{prefix}.{alias.name}" if alias.name != "*" else prefix for alias in node.names]
    if (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and ast.unparse(node.func) in ("importlib.import_module", "import_module", "__import__")):
        return [node.args[0].value]
    return []


def import_graph() -> dict[str, set[str]]:
    """Module → the package's modules it imports (directly)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        own = set(_enclosing(module)) | {module}
        for node in ast.walk(tree):
            for name in _named(module, path, node):
                if name != PACKAGE and not name.startswith(PACKAGE + "."):
                    continue
                while name not in modules:  # a name defined by a module, not a module
                    name = name.rpartition(".")[0]
                graph[module].add(name)
                graph[module].update(p for p in _enclosing(name) if p not in own)
        graph[module].discard(module)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every circle a depth-first walk meets (one per back edge), each as a → b → … → a."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _short(name: str) -> str:
    return name.removeprefix(PACKAGE + ".")


def test_the_graph_sees_every_module_and_both_kinds_of_import():
    graph = import_graph()
    for name in ("pyninep_browser", "pyninep_browser.live", "pyninep_browser.authoring",
                 "pyninep_browser.archive", "pyninep_browser.fs", "pyninep_browser.__main__"):
        assert name in graph
    assert "pyninep_browser.live" in graph["pyninep_browser.authoring"]  # module level, relative
    assert "pyninep_browser.authoring" in graph["pyninep_browser.__main__"]  # inside a function


def test_the_package_has_no_import_cycle():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles in pyninep_browser:\n" + "\n".join(
        "  " + " → ".join(_short(m) for m in cycle) for cycle in cycles)


def test_live_files_runtime_imports_neither_authoring_nor_archive():
    graph = import_graph()
    above = {"pyninep_browser.authoring", "pyninep_browser.archive"}
    found = reachable(graph, "pyninep_browser.live") & above
    assert not found, f"live imports {sorted(map(_short, found))} (directly or through others)"


def test_archive_does_not_import_authoring():
    # authoring's Tree.add_tar/export_tar call archive; archive is handed the Tree.
    assert "pyninep_browser.authoring" not in reachable(import_graph(), "pyninep_browser.archive")


def test_old_homes_still_export_what_scripts_import():
    # Scripts, README examples and default_image import these from where they used to live.
    import pyninep_browser.authoring as authoring
    import pyninep_browser.image as image
    import pyninep_browser.initramfs as initramfs
    import pyninep_browser.live as live

    for name in ("LIMIT", "LIVE_XATTR", "REGISTRY", "LiveContext", "LiveDir", "LiveFile", "attach",
                 "context", "live_dir", "live_file"):
        assert getattr(authoring, name) is getattr(live, name)
    for name in ("Defaults", "Tree", "TreePath", "XattrMap", "build_from_script", "load_script",
                 "major", "makedev", "minor"):
        assert hasattr(authoring, name)
    for name in ("CpioWriter", "build_initramfs", "MODULES", "MOUNT_OPTIONS", "INIT_SCRIPT",
                 "find_modules", "busybox_applets"):
        assert getattr(image, name) is getattr(initramfs, name)


def test_the_filesystem_imports_nothing_above_it():
    """fs is the bottom layer: the session, authoring, live files and the page sit on it."""
    graph = import_graph()
    above = {m for m in graph if m.split(".")[1:2] and m.split(".")[1] in
             ("server", "snapshot", "authoring", "live", "archive", "browser", "__main__")}
    for module in (m for m in graph if m.startswith("pyninep_browser.fs")):
        found = reachable(graph, module) & above
        assert not found, f"{_short(module)} imports {sorted(map(_short, found))}"


def test_the_server_imports_neither_authoring_nor_the_page():
    graph = import_graph()
    for module in (m for m in graph if m.startswith("pyninep_browser.server")):
        found = reachable(graph, module) & {"pyninep_browser.authoring", "pyninep_browser.archive",
                                             "pyninep_browser.browser", "pyninep_browser.live"}
        assert not found, f"{_short(module)} imports {sorted(map(_short, found))}"


def test_building_and_loading_an_image_does_not_load_the_9p_server():
    """Run in a fresh interpreter: what an image tool does, and what it loaded."""
    import subprocess
    import sys
    code = """if True:
        import sys
        from pyninep_browser.authoring import Tree
        from pyninep_browser.fs.image import dump_image, load_image
        tree = Tree()
        (tree / "etc/hostname").write_text("guest\\n")
        (tree / "bin/sh").symlink_to("busybox")
        data = tree.image()
        assert Tree.load(data).path("/etc/hostname").read_text() == "guest\\n"
        assert load_image(dump_image(load_image(data))).read_file("/etc/hostname") == b"guest\\n"
        loaded = sorted(m for m in sys.modules if m.startswith("pyninep_browser."))
        print(" ".join(loaded))
        assert not any(m.startswith(("pyninep_browser.server", "pyninep_browser.snapshot",
                                     "pyninep_browser.browser")) for m in loaded), loaded
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=PACKAGE_DIR.parent)
    assert done.returncode == 0, done.stderr
    assert "pyninep_browser.fs.image" in done.stdout

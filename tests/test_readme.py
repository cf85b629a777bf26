"""The README and docs/*.md say what is true: their Python examples run as written, the README
stays a map (short), every repository path they name exists, and every link between them lands.

A ```python block runs; each file's blocks run in order in one namespace, so a later block may use
what an earlier one made. A block that cannot run here (it needs a browser or a guest) is fenced
```js, ```sh or ```text instead.
"""

import re
import tempfile
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
README_MAX_LINES = 210

FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
# A path in the repository: a file or folder under one of these, or build.sh; "{a,b}" lists
# alternatives and "*" globs. Not preceded by a word, dot, slash or colon (URLs, dist/… paths).
PATH = re.compile(r"(?<![\w./:-])(?:\./)?((?:pyninep_browser|web|tests|bench|docs)/"
                  r"(?:[\w.*/-]|\{[\w.,*/-]*\})*|build\.sh)")


def fenced_blocks(text: str) -> list[tuple[str, int, str]]:
    """(language, line number of the first line, source) of each fenced code block."""
    blocks = []
    open_fence = None
    for n, line in enumerate(text.splitlines(keepends=True), 1):
        if open_fence is None:
            m = FENCE.match(line)
            if m:
                open_fence = (m.group(2), m.group(3), n + 1, [])
        elif line.strip() and set(line.strip()) == {open_fence[0][0]} and \
                len(line.strip()) >= len(open_fence[0]):
            blocks.append((open_fence[1], open_fence[2], textwrap.dedent("".join(open_fence[3]))))
            open_fence = None
        else:
            open_fence[3].append(line)
    assert open_fence is None, f"a code block opened at line {open_fence[2] - 1} is never closed"
    return blocks


def run_python_blocks(page: Path) -> int:
    namespace = {"__name__": f"doc_{page.stem.replace('-', '_')}"}
    blocks = [(start, src) for lang, start, src in fenced_blocks(page.read_text()) if lang == "python"]
    for start, src in blocks:
        # Padded so that a traceback names the line of the Markdown file.
        exec(compile("\n" * (start - 1) + src, str(page), "exec"), namespace)
    return len(blocks)


def expand(name: str) -> list[str]:
    m = re.search(r"\{([^}]*)\}", name)
    if not m:
        return [name]
    return [alt for choice in m.group(1).split(",")
            for alt in expand(name[:m.start()] + choice + name[m.end():])]


def named_paths(text: str) -> set[str]:
    names = set()
    for m in PATH.finditer(text):
        names.update(expand(m.group(1).rstrip(".,")))
    return names


def exists(name: str) -> bool:
    if "*" in name:
        return any(ROOT.glob(name))
    return (ROOT / name).exists()


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Examples that make temporary files make them under the test's own directory."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.chdir(tmp_path)


def test_readme_python_example_runs_and_writes_hello(capsys, private_tmp):
    assert run_python_blocks(README) >= 1
    assert "b'hello from 9P\\n'" in capsys.readouterr().out


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_docs_python_examples_run(page, private_tmp):
    run_python_blocks(page)


def test_readme_is_a_map_not_a_manual():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move details into docs/"


def test_every_repository_path_the_docs_name_exists():
    missing = {}
    for page in PAGES:
        gone = sorted(n for n in named_paths(page.read_text()) if not exists(n))
        if gone:
            missing[str(page.relative_to(ROOT))] = gone
    assert not missing, "paths named in the docs that are not in the repository:\n" + "\n".join(
        f"  {page}: {', '.join(names)}" for page, names in missing.items())


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    fence = None
    for line in page.read_text().splitlines():
        m = FENCE.match(line)
        if m and (fence is None or m.group(2).startswith(fence)):
            fence = m.group(2) if fence is None else None  # a "# comment" in code is no heading
            continue
        heading = re.match(r"#{1,6} +(.+?) *$", line)
        if fence is None and heading:
            base = slug(heading.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def test_every_link_between_the_docs_reaches_its_page_and_heading():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a URL
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_checks_read_what_they_should():
    # The helpers themselves: a fence inside a list, brace lists, URLs and dist/ paths left out.
    blocks = fenced_blocks("- item\n\n  ```python\n  x = 1\n  ```\n```text\ny\n```\n")
    assert blocks == [("python", 4, "x = 1\n"), ("text", 7, "y\n")]
    assert named_paths("see `pyninep_browser/fs/{inode,data}.py`, ./build.sh and "
                       "https://example.org/docs/x or dist/web/x; tests/test_fs.py.") == {
        "pyninep_browser/fs/inode.py", "pyninep_browser/fs/data.py", "build.sh", "tests/test_fs.py"}
    assert slug("`/py` in the default image, and what isolation it gives") == \
        "py-in-the-default-image-and-what-isolation-it-gives"
    assert slug("The guest against v86's built-in 9p (2026-11-25)") == \
        "the-guest-against-v86s-built-in-9p-2026-11-25"

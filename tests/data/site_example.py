"""A small sandbox site, as docs/your-site.md builds it: a file it authors, a live file, and a
Python package from PyPI (installed in the page with micropip) behind that live file.

    ./build.sh build --image tests/data/site_example.py --base busybox --out dist-example
    python -m pyninep_browser site build tests/data/site_example.py --from dist --out dist-example
"""

from __future__ import annotations

from pyninep_browser.authoring import Tree, live_file

REQUIRES = ["humanize"]  # pure Python; the page installs it with micropip from the site


@live_file("sizes")
def sizes() -> str:
    """Reading /srv/example/sizes calls this in the page's Python."""
    import humanize  # imported when read: the page has it, the build host need not

    return "".join(f"{n} bytes is {humanize.naturalsize(n)}\n" for n in (1, 2048, 3_500_000))


def build(tree: Tree, greeting: str = "hello from the example site") -> None:
    home = tree / "srv/example"
    home.mkdir(parents=True, mode=0o755)
    (home / "README").write_text(f"{greeting}\n")
    (home / "sizes").live(sizes)

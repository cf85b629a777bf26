"""Your own site (docs/your-site.md): a site built from an authoring script in tests/ with the
package's command line, ``python -m pyninep_browser site build SCRIPT.py --from SITE --out OUT``,
from the busybox site the suite builds, then opened in Chromium as a visitor would: the file the
script authored and its live file are in the guest, and the live file runs a package from PyPI
(``REQUIRES = ["humanize"]``) that the page installed with micropip from the site itself.

Also the script's REQUIRES as the build reads them (without running the script), and the one-line
refusals: a package with no pure-Python wheel, a missing script, a directory that is not a site.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chromium import DIST, SiteServer, first_visit
from page_user import sh

from pyninep_browser.requires import RequiresError, read_requires

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "tests" / "data" / "site_example.py"


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pyninep_browser", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def one_line_refusal(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    err = done.stderr.strip()
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]
    assert last.startswith("pyninep: "), err
    return last


# ------------------------------------------------------------------ REQUIRES, read without running


def test_requires_is_read_without_running_the_script(tmp_path):
    script = tmp_path / "s.py"
    script.write_text('import not_installed_anywhere\nREQUIRES = ["humanize", "tabulate>=0.9"]\n')
    assert read_requires(script) == ["humanize", "tabulate>=0.9"]
    script.write_text("def build(tree):\n    pass\n")
    assert read_requires(script) == []
    assert read_requires(EXAMPLE) == ["humanize"]


@pytest.mark.parametrize(
    "source",
    ["REQUIRES = packages()\n", "REQUIRES = ['ok', 3]\n", "REQUIRES = 'humanize'\n", "REQUIRES = ['>=1.0']\n"],
)
def test_a_requires_that_is_not_a_literal_list_of_names_is_one_line(tmp_path, source):
    script = tmp_path / "s.py"
    script.write_text(source)
    with pytest.raises(RequiresError) as info:
        read_requires(script)
    assert "\n" not in str(info.value) and "REQUIRES" in str(info.value), str(info.value)


def test_a_package_with_no_pure_python_wheel_is_refused_at_build_time(tmp_path):
    lock = DIST / "pyodide" / "pyodide-lock.json"
    if not lock.is_file():
        pytest.skip("the busybox site is not built: ./build.sh test builds it")
    script = tmp_path / "s.py"
    script.write_text('REQUIRES = ["numpy"]\n\ndef build(tree):\n    pass\n')
    last = one_line_refusal(cli("image", "requires", str(script), "-o", str(tmp_path / "req"), "--pyodide-lock", str(lock)))
    assert "numpy" in last and "pure-Python" in last, last
    assert not (tmp_path / "req" / "index.json").exists()


def test_site_build_mistakes_are_one_line(tmp_path):
    last = one_line_refusal(cli("site", "build", str(tmp_path / "none.py"), "--from", str(DIST), "--out", str(tmp_path / "o")))
    assert "no such script" in last, last
    last = one_line_refusal(cli("site", "build", str(EXAMPLE), "--from", str(tmp_path), "--out", str(tmp_path / "o")))
    assert "not a built site" in last, last
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "precious.txt").write_text("mine")
    if (DIST / "manifest.json").is_file():
        last = one_line_refusal(cli("site", "build", str(EXAMPLE), "--from", str(DIST), "--out", str(tmp_path / "busy")))
        assert "not a site" in last, last
        assert (tmp_path / "busy" / "precious.txt").read_text() == "mine"  # nothing lost


# ------------------------------------------------------------------ the example site, built and visited


@pytest.fixture(scope="module")
def example_site(tmp_path_factory):
    if not (DIST / "manifest.json").is_file():
        pytest.skip("the busybox site is not built: ./build.sh test builds it")
    out = tmp_path_factory.mktemp("your-site") / "site"
    done = cli("site", "build", str(EXAMPLE), "--from", str(DIST), "--out", str(out), "--arg", "greeting=hi from tests")
    assert done.returncode == 0, done.stderr
    print(done.stdout.strip())
    assert "humanize" in done.stdout and "machine: saved" in done.stdout, done.stdout
    return out


def test_the_site_lists_exactly_its_files(example_site):
    manifest = json.loads((example_site / "manifest.json").read_text())
    assert manifest["requires"] == "requires/index.json"
    assert manifest["machine"]["url"].startswith("machine/")
    for rel, size in manifest["sizes"].items():
        assert (example_site / rel).stat().st_size == size, rel
    index = json.loads((example_site / "requires" / "index.json").read_text())
    assert [w["name"] for w in index["wheels"]] == ["humanize"]
    assert all(w["file"] in {Path(p).name for p in manifest["sizes"]} for w in [index["micropip"], *index["wheels"]])
    sw = (example_site / "sw.js").read_text()
    files = json.loads(re.search(r"^const FILES = (.*?); //", sw, re.M).group(1))
    assert files == ["./", "manifest.json", *manifest["sizes"]]
    assert re.search(r'^const BUILD = "[0-9a-f]{16}";$', sw, re.M)
    assert (example_site / "images" / "default.py").read_text() == EXAMPLE.read_text()
    assert "tools/build-machine.mjs" not in manifest["sizes"]


def test_the_memory_images_are_packed_for_the_wire(example_site):
    """The saved machine and Python's snapshot ship as zstd frames that state their size (the
    page's decoder needs it): a plain PYN9MACH blob inside the one, Pyodide's snapshot inside the
    other."""
    import zstandard

    manifest = json.loads((example_site / "manifest.json").read_text())
    for rel in (manifest["machine"]["url"], manifest["pyodideSnapshot"]):
        assert rel.endswith(".zst"), rel
        packed = (example_site / rel).read_bytes()
        size = zstandard.frame_content_size(packed)
        data = zstandard.ZstdDecompressor().decompress(packed)
        assert size == len(data), rel
        if rel.startswith("machine/"):
            assert data[:8] == b"PYN9MACH" and int.from_bytes(data[12:16], "little") == 0  # not gzip inside
            assert int.from_bytes(data[24:32], "little") == manifest["machine"]["raw"] + 4 + int.from_bytes(data[40:44], "little")
            assert manifest["machine"]["bytes"] == len(packed)
        else:
            assert data[:4] == b"\x00snp"  # Pyodide's memory snapshot


def test_without_zstd_the_build_packs_with_gzip(tmp_path, monkeypatch):
    import gzip

    from pyninep_browser import sitefiles
    from pyninep_browser.fs import base

    def no_zstd(*args, **kwargs):
        raise RuntimeError("zstd needs Python 3.14 or `pip install zstandard`")

    monkeypatch.setattr(base, "zstd_compress", no_zstd)
    (tmp_path / "snap.bin").write_bytes(b"memory" * 1000)
    out = sitefiles.pack_for_wire(tmp_path / "snap.bin")
    assert out.name == "snap.bin.gz" and not (tmp_path / "snap.bin").exists()
    assert gzip.decompress(out.read_bytes()) == b"memory" * 1000


@pytest.fixture(scope="module")
def page(example_site, tmp_path_factory):
    server = SiteServer(example_site)
    try:
        with first_visit(server.url, tmp_path_factory.mktemp("profile")) as (p, source):
            assert source == "shipped"  # the site's own saved machine, not a boot
            yield p
    finally:
        server.close()


def test_the_scripts_file_is_in_the_guest(page):
    assert "hi from tests" in sh(page, "cat /srv/example/README")


def test_the_live_file_runs_the_package_micropip_installed(page):
    out = sh(page, "cat /srv/example/sizes")
    assert "2048 bytes is 2.0 kB" in out, out
    assert "3500000 bytes is 3.5 MB" in out, out
    requires = page.evaluate("window.pyninep.server.requires")
    assert requires and any(p.startswith("humanize ") for p in requires["packages"]), requires


def test_the_pages_own_live_files_are_still_there(page):
    out = sh(page, "echo 'print(6*7)' > /py/run; cat /py/run")
    assert "42" in out, out

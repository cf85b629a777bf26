"""The demo page booting a v86 fs2json base image (``?basefs=…&baseurl=…``) in real Chromium,
its content on a real HTTP host of its own that counts requests: the status line tells what
loads, a read fetches that file only, and after a reload with the base host cut off (routes
aborted) the guest boots from IndexedDB alone: what the user wrote is there, files read before
read, nothing was asked of the host, and a file never read gives an I/O error, only for itself."""

from __future__ import annotations

import hashlib

import pytest

from base_http import BaseHost
from chromium import Browser, SiteServer
from guest import DIST
from page_user import run, visit

from pyninep_browser.fs.image import load_image
from pyninep_browser.fs2json import export_fs2json


def small(i: int) -> bytes:
    return f"base file {i}\n".encode() * (1 + i % 5)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory):
    fs = load_image((DIST / "images" / "default.img").read_bytes())
    for i in range(50):
        fs.write_file(f"/srv/f{i:02}", small(i))
    root = tmp_path_factory.mktemp("base")
    export_fs2json(fs, root / "img", zstd=True)  # compressed content: whole-file fetches
    host = BaseHost(root)
    yield host
    host.close()


@pytest.fixture(scope="module")
def pw():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def test_base_image_page_keeps_and_works_offline(pw, base, tmp_path) -> None:
    site = SiteServer()
    browser = Browser(pw, tmp_path / "profile")
    try:
        url = f"{site.url}?basefs={base.url}img/fs.json&baseurl={base.url}img/base/&nosw"
        page = browser.page()
        # The status line as the user sees it, every change of it.
        page.add_init_script("""
            window.statusSeen = [];
            new MutationObserver(() => {
                const s = document.getElementById('status');
                if (s) window.statusSeen.push(s.textContent);
            }).observe(document, {subtree: true, childList: true, characterData: true});
        """)
        visit(page, url, timeout=240_000)
        seen = page.evaluate("window.statusSeen")
        assert any("loading files from the base image" in s for s in seen), seen[-20:]
        progress = page.evaluate("window.pyninep.server.baseProgress()")
        assert progress["fetched"] > 5 and progress["failed"] == 0, progress
        # The user reads a file, and writes one.
        mark = base.mark()
        run(page, "cat /srv/f07", "base file 7")
        name = hashlib.sha256(small(7)).hexdigest()[:8] + ".bin.zst"
        assert [r[0] for r in base.since(mark) if "/base/" in r[0]] == [f"img/base/{name}"]
        run(page, 'echo written-here > /root/mine; sed -i s/base/changed/ /srv/f08; echo w""-ok', "w-ok")

        # Two seconds later (past the 1 s write-behind bound the page promises), the base host
        # is cut off (every request to it aborted, and noted) and the user reloads: the tree and
        # every file read before come from IndexedDB, so Linux boots and the reads work offline.
        page.wait_for_timeout(2000)
        tried: list[str] = []
        page.context.route(f"{base.url}**", lambda route: (tried.append(route.request.url), route.abort()))
        page.reload()
        page.wait_for_function("window.pyninep && (window.pyninep.timing.prompt_ms || window.pyninep.failed)",
                               timeout=240_000)
        assert not page.evaluate("window.pyninep.failed")
        assert "written-here" in run(page, "cat /root/mine", "written-here")
        assert "changed file 8" in run(page, "cat /srv/f08", "changed file 8")
        assert "base file 7" in run(page, "cat /srv/f07", "base file 7")
        assert tried == [], tried  # the boot and the reads asked the base host for nothing
        # A file never read cannot come: an I/O error for it alone, said in the page.
        out = run(page, 'cat /srv/f30 || echo read""-failed', "read-failed")
        assert "I/O error" in out or "Input/output error" in out, out
        f30 = hashlib.sha256(small(30)).hexdigest()[:8] + ".bin.zst"
        assert tried and {u.rsplit("/", 1)[1] for u in tried} == {f30}, tried  # that file only
        page.wait_for_function("document.getElementById('error').textContent.includes('base image')", timeout=5000)
        page.context.unroute(f"{base.url}**")
        assert "base file 30" in run(page, "cat /srv/f30", "base file 30")  # back online: it loads
    finally:
        browser.kill()
        site.close()

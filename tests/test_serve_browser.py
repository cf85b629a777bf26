"""The demo page in server mode, in real headless Chromium: ``serve --ws … --site dist`` gives the
page and the files on one port; ``?server=ws://…`` boots the guest with its root on that server
(v86's own proxy_url), the status line says where the files live, and what is typed in the
terminal lands on the server, where another 9P client reads it."""

from __future__ import annotations

import pytest
from guest import DIST
from page_user import run, wait_ready
from serving import Serve
from test_browser import CHROMIUM, FLAGS, Watch, pw  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def served():
    if not (DIST / "index.html").is_file():
        pytest.fail("dist/ is not built: run ./build.sh")
    s = Serve(
        "--ws",
        "127.0.0.1:0",
        "--tcp",
        "127.0.0.1:0",
        "--site",
        str(DIST),
        "--image",
        str(DIST / "images" / "default.img"),
    )
    yield s
    s.stop()


def test_the_page_boots_with_its_files_on_the_server(pw, served):  # noqa: F811
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
    try:
        context = browser.new_context(service_workers="block")
        page = context.new_page()
        watch = Watch(page)
        http = served.ws.replace("ws://", "http://")
        page.goto(f"{http}?server={served.ws}")
        wait_ready(page, timeout=300_000)
        status = page.evaluate("document.getElementById('status').textContent")
        assert f"files live on {served.ws}" in status, status
        assert page.evaluate("window.pyninep.storage") == "server"
        run(page, "echo typed-in-chromium > /root/from-page.txt; echo ok-$((40+2))", "ok-42", timeout=60_000)
        c = served.client()
        f = c.walk_new("root/from-page.txt")
        c.lopen(f, 0)
        assert c.read(f, 0, 100) == b"typed-in-chromium\n"
        # the files panel lists the server's tree through the page's own 9P session
        names = page.evaluate("window.pyninep.server.listDir('/root').then(l => l.map(e => e.name))")
        assert "from-page.txt" in names
        assert not watch.problems, watch.problems
        # The server restarts (on the same port): the page's session is gone, and it says so.
        assert served.stop() == 0
        port = served.ws.rstrip("/").rsplit(":", 1)[1]
        again = Serve("--ws", f"127.0.0.1:{port}", "--site", str(DIST))
        try:
            page.wait_for_function("!document.getElementById('error').hidden", timeout=40_000)
            sentence = page.evaluate("document.getElementById('error-text').textContent")
            assert "no longer knows this page's session" in sentence, sentence
        finally:
            again.stop()
    finally:
        browser.close()

"""IndexedDB storage in real Chromium with a persistent profile: what the guest writes survives
reloads and SIGKILLs of the browser, within the promises docs/storage.md makes.

Chromium runs as our own process (tests/chromium.py) so a test can kill it at any moment; the
test page is tests/pages/idb.html. Crash runs: ``CRASH_FRAMES`` runs drive the server with 9P
frames from page script (fast), ``CRASH_GUEST`` runs have the real guest writing and fsyncing;
``bench/idb_crash.py`` does the same 100+ times.
"""

from __future__ import annotations

import random
import time

import pytest

from chromium import Browser, SiteServer, console_lines, open_idb_page
from crashcheck import CrashTally, GuestLedger, frames_runs, guest_runs

CRASH_FRAMES = 17
CRASH_GUEST = 3  # the first is part of the guest scenario below


@pytest.fixture(scope="module")
def site():
    server = SiteServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def pw():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        yield playwright


def test_a_second_page_on_the_same_database_gets_a_clear_error(pw, site, tmp_path):
    browser = Browser(pw, tmp_path / "profile")
    try:
        first = open_idb_page(browser, site)
        first.evaluate("T.open({db: 'shared', options: {image: null}})")
        first.evaluate("T.writeFile('/kept', 'first page')")
        second = open_idb_page(browser, site)
        result = second.evaluate("T.tryOpen('shared')")
        assert not result["ok"]
        assert "already being served by another tab" in result["message"]
        # The first page still serves, and nothing was changed by the refused attempt.
        assert first.evaluate("T.fileHash('/kept')")["length"] == len("first page")
        first.evaluate("T.close()")
        # Once the first page lets go, the second can serve it.
        assert second.evaluate("T.tryOpen('shared')")["ok"]
    finally:
        browser.close()


def test_quota_option_gives_enospc_and_keeps_earlier_files(pw, site, tmp_path):
    browser = Browser(pw, tmp_path / "profile")
    try:
        page = open_idb_page(browser, site)
        page.evaluate("T.open({db: 'q', options: {image: null}})")
        usage = page.evaluate("T.stats().estimate[0]")
        page.evaluate("T.close()")
        page.evaluate(f"T.open({{db: 'q', options: {{image: null, quota: {usage + (6 << 20)}}}}})")
        page.evaluate("server.writeFile('/before', new Uint8Array(1 << 20).fill(7))")
        result = page.evaluate("""async () => {
            try { await server.writeFile('/too-big', new Uint8Array(16 << 20)); return 'accepted'; }
            catch (e) { return e.errno; } }""")
        assert result == 28  # ENOSPC
        assert page.evaluate("T.fileHash('/before')")["length"] == 1 << 20
    finally:
        browser.close()


def test_a_failed_commit_is_an_error_for_whoever_waits_for_it(pw, site, tmp_path):
    browser = Browser(pw, tmp_path / "profile")
    try:
        page = open_idb_page(browser, site)
        page.evaluate("T.open({db: 'f', options: {image: null}})")
        page.evaluate("T.writeFile('/safe', 'committed')")
        # The connection goes away under the server, as in a browser shutdown: every
        # transaction from now on fails.
        page.evaluate("server._storage._db.close()")
        result = page.evaluate("""async () => {
            try { await server.writeFile('/lost', 'not committed'); return 'reported success'; }
            catch (e) { return e.errno; } }""")
        assert result == 5  # EIO, never a success
        assert page.evaluate("""async () => { try { await server.flush(); return 'ok'; }
                                             catch (e) { return e.errno; } }""") == 5
        assert page.evaluate("T.fileHash('/safe')")["length"] == len("committed")
    finally:
        browser.close()


def test_a_database_chromium_discards_is_reported_not_served_as_if_empty(pw, site, tmp_path):
    """Chromium's own failure, made on purpose: a kill between the two writes of a LevelDB log
    record leaves a header-only record at the log's end (what the crash runs produce now and
    then); the next session appends after it; the open after that fails its checksum and
    Chromium deletes the database. The page must say so (openReport.dataLoss), not boot the
    empty database as if it were the user's files."""
    profile = tmp_path / "profile"
    browser = Browser(pw, profile)
    try:
        page = open_idb_page(browser, site)
        assert page.evaluate("T.open({db: 'torn', options: {image: null}})")["report"]["dataLoss"] is None
        page.evaluate("T.writeFile('/kept', 'before the torn record')")
        browser.close()

        logs = sorted((profile / "Default" / "IndexedDB").glob("*.indexeddb.leveldb/*.log"))
        log = logs[-1]
        size = log.stat().st_size
        with open(log, "ab") as f:
            if 32768 - size % 32768 < 7:  # LevelDB pads a block's last bytes: start the next block
                f.write(bytes(32768 - size % 32768))
            f.write(bytes([0x5a, 0x5a, 0x5a, 0x5a, 196, 0, 1]))  # crc, length 196, FULL; no payload

        browser = Browser(pw, profile)
        page = open_idb_page(browser, site)
        opened = page.evaluate("T.open({db: 'torn'})")  # LevelDB reads the torn tail as the end
        assert opened["report"]["dataLoss"] is None
        assert page.evaluate("T.fileHash('/kept')")["length"] == len("before the torn record")
        page.evaluate("T.writeFile('/after', 'appended after the torn record')")
        browser.close()

        browser = Browser(pw, profile)
        page = open_idb_page(browser, site)
        errors = console_lines(page, "discarded IndexedDB database")
        opened = page.evaluate("T.open({db: 'torn', options: {image: null}})")
        loss = opened["report"]["dataLoss"]
        assert loss and loss["status"] == "total", opened
        assert "checksum mismatch" in loss["message"], loss
        assert any('"torn"' in line and "its files are gone" in line for line in errors), errors
        assert page.evaluate("T.fileHash('/kept')")["errno"] == 2  # gone with the database
        # The next open is of the new database, which has nothing to report.
        page.evaluate("T.close()")
        assert page.evaluate("T.open({db: 'torn'})")["report"]["dataLoss"] is None
    finally:
        browser.close()


def test_guest_files_survive_reload_write_behind_large_files_quota_and_a_crash(pw, site, tmp_path):
    profile = tmp_path / "profile"
    tally = CrashTally()
    browser = Browser(pw, profile)
    try:
        page = open_idb_page(browser, site)
        acks = console_lines(page, r"^ACK ")
        # A 2 MiB chunk cache, so the 6 MiB file below cannot stay in memory.
        booted = page.evaluate("T.boot({db: 'guest', headroom: 40 << 20, options: {writeBehindMs: 1000, "
                               "chunkCacheBytes: 2 << 20}})")
        print(f"boot in Chromium with IndexedDB: {booted['bootMs'] / 1000:.1f} s")

        def sh(script: str, timeout: int = 120_000) -> str:
            r = page.evaluate("([s, t]) => T.sh(s, t)", [script, timeout])
            assert r["status"] == 0, r
            return r["output"]

        # fsync'd files, one larger than the chunk cache read back after the guest drops its cache
        out = sh("echo synced > /root/s1 && dd if=/root/s1 of=/root/s2 conv=fsync 2>/dev/null;"
                 "dd if=/dev/urandom of=/root/big bs=1M count=6 conv=fsync 2>/dev/null;"
                 "sha256sum /root/big; echo 3 > /proc/sys/vm/drop_caches; sha256sum /root/big")
        first, second = (line.split()[0] for line in out.splitlines())
        assert first == second
        assert page.evaluate("T.stats().chunkReads") > 0  # the re-read came from IndexedDB
        big = page.evaluate("T.fileHash('/root/big')")
        assert big["sha256"] == first and big["length"] == 6 << 20

        # quota (the option): a dd until full gets ENOSPC, and the files before it are intact
        out = page.evaluate("T.sh('dd if=/dev/zero of=/root/fill bs=1M count=64 conv=fsync; echo dd=$?', 120000)")
        assert "No space left on device" in out["output"] and "dd=1" in out["output"], out
        assert page.evaluate("T.fileHash('/root/s1')")["length"] == len("synced\n")
        assert page.evaluate("T.fileHash('/root/big')")["sha256"] == first
        sh("rm -f /root/fill")
        assert sh("cat /root/s1; sha256sum /root/big").split()[:2] == ["synced", first]

        # the machine beside its database: a small blob that builds on the database, refused
        # once the database has moved on, restored while it has not
        saved = page.evaluate("T.saveMachine({stored: true})")
        sh("echo after-save > /root/after-save; dd if=/root/s1 of=/root/s3 conv=fsync 2>/dev/null")
        refused = page.evaluate("T.restoreMachine()")
        assert "store has changed" in refused["refused"] and refused["running"], refused
        assert sh("cat /root/after-save") == "after-save\n"
        saved = page.evaluate("T.saveMachine({stored: true})")
        restored = page.evaluate("T.restoreMachine()")
        assert restored.get("ok"), restored
        assert sh("cat /root/s1; ls /root/after-save") == "synced\n/root/after-save\n"
        print(f"machine beside its IndexedDB database: {saved['bytes']:,} bytes, save "
              f"{saved['ms']:.0f} ms, restore {restored['ms']:.0f} ms")

        # write-behind: no fsync, and the file is stored within the bound (1 s)
        sh("echo unsynced > /root/u1")
        time.sleep(1.5)

        # crash run: the guest writes and fsyncs in a loop; SIGKILL at a random point
        ledger = GuestLedger(acks)
        page.evaluate("T.start(" + repr(GuestLedger.script("a")) + ")")
        time.sleep(random.uniform(1.0, 4.0))
        browser.kill()
        tally.killed()

        browser = Browser(pw, profile)
        page = open_idb_page(browser, site)
        opened = page.evaluate("T.open({db: 'guest'})")
        tally.opened(opened["report"])
        if not tally.discarded_at_last_open(3):  # (see crashcheck.py: Chromium's, and reported)
            assert page.evaluate("T.fileHash('/root/s1')")["length"] == len("synced\n")
            assert page.evaluate("T.fileHash('/root/u1')")["length"] == len("unsynced\n")
            assert page.evaluate("T.fileHash('/root/big')")["sha256"] == first
        ledger.check(page, tally)
    finally:
        browser.close()
    print(tally.line("guest scenario"))
    assert tally.lost == 0, tally.failures


def test_guest_crash_runs_lose_nothing_that_was_fsynced(pw, site, tmp_path):
    tally = guest_runs(pw, site, tmp_path / "profile", CRASH_GUEST - 1, random.Random(), wait_ms=(500, 4000))
    print(tally.line("guest crash runs"))
    assert tally.kills == CRASH_GUEST - 1
    assert tally.lost == 0, tally.failures


def test_frame_driven_crash_runs_lose_nothing_that_was_acknowledged(pw, site, tmp_path):
    tally = frames_runs(pw, site, tmp_path / "profile", CRASH_FRAMES, random.Random(),
                        wait_ms=(200, 1500), check_all_every=CRASH_FRAMES)
    print(tally.line("frame-driven crash runs"))
    assert tally.kills == CRASH_FRAMES and tally.checked > 0
    assert tally.lost == 0, tally.failures

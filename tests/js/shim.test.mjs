// The shim (dist/pyninep.js) in Node with real Pyodide and the real wheel: node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { T, call, frame, rtype, rtag, ecode, u32 } from "./frames.mjs";

const dist = path.resolve(process.env.PYNINEP_DIST || "dist");
const { createServer } = await import(pathToFileURL(path.join(dist, "pyninep.js")).href);
const server = await createServer({ storage: "memory", baseUrl: pathToFileURL(dist + "/"), image: null });

test("a session through handle9p writes a file the page can read", async () => {
    assert.equal(rtype(call(server, T.version(0xffff, 65536))), 101);
    assert.equal(rtype(call(server, T.attach(1, 0))), 105);
    assert.equal(rtype(call(server, T.walk(2, 0, 1, []))), 111);
    assert.equal(rtype(call(server, T.lcreate(3, 1, "hello"))), 15);
    const w = call(server, T.write(4, 1, 0, new TextEncoder().encode("hi from js")));
    assert.equal(rtype(w), 119);
    const r = call(server, T.read(5, 1, 3, 100));
    assert.equal(new TextDecoder().decode(r.subarray(11)), "from js");
    assert.equal(new TextDecoder().decode(await server.readFile("/hello")), "hi from js");
    await server.writeFile("/from-page", new TextEncoder().encode("page"));
    assert.equal(new TextDecoder().decode(await server.readFile("/from-page")), "page");
    await assert.rejects(server.readFile("/missing"), (e) => e.errno === 2 && /ENOENT/.test(e.message));
    await server.flush(); // memory storage: nothing to commit, resolves at once
});

test("changes() grows with every change, the guest's or the page's, and never on a read", async () => {
    const start = server.changes();
    assert.equal(typeof start, "number");
    call(server, T.read(50, 1, 0, 100)); // the guest reads (fid 1: /hello, open since the test above)
    call(server, T.getattr(51, 1));
    await server.readFile("/hello"); // the page reads
    server.listDir("/");
    assert.equal(server.changes(), start, "reads change nothing");
    call(server, T.write(52, 1, 0, new TextEncoder().encode("hi"))); // the guest writes (same bytes)
    const guest = server.changes();
    assert.ok(guest > start, `a guest's write moves it (${start} -> ${guest})`);
    await server.writeFile("/from-page", "page again");
    const page = server.changes();
    assert.ok(page > guest, `a page's write moves it (${guest} -> ${page})`);
    server.mkdir("/made-by-page");
    server.remove("/made-by-page");
    assert.ok(server.changes() > page, "mkdir and remove move it");
});

test("requests cross by the direct call on the pinned Pyodide", () => {
    // If a Pyodide upgrade drops what the direct call needs, the shim still works through
    // PyProxy calls, but every small request gets slower: this makes that visible.
    assert.equal(server.crossing, "direct");
});

test("handle9p works detached from its object (as v86 calls it)", () => {
    const { handle9p } = server;
    let reply = null;
    handle9p(T.getattr(9, 0), (r) => { reply = r; });
    assert.equal(rtype(reply), 25);
    assert.equal(rtag(reply), 9);
});

test("a Python exception inside a request is Rlerror EIO and one console error", async () => {
    // Break the glue's Python side: its handle raises. A server made now picks the break up
    // (each server binds its handle method when it is created).
    server.pyodide.runPython(`
import pyninep_browser.browser as b
b.PageServer._saved_handle = b.PageServer.handle_shared
def broken(self):
    raise MemoryError("simulated")
b.PageServer.handle_shared = broken
`);
    const broken = await createServer({ storage: "memory", baseUrl: pathToFileURL(dist + "/"),
                                        image: null, pyodide: server.pyodide });
    const seen = [];
    const original = console.error;
    console.error = (...args) => seen.push(args.map(String).join(" "));
    try {
        const a = call(broken, T.statfs(42, 0));
        const b = call(broken, T.statfs(43, 0));
        assert.deepEqual([rtype(a), rtag(a), ecode(a)], [7, 42, 5]);
        assert.deepEqual([rtype(b), rtag(b), ecode(b)], [7, 43, 5]);
        assert.equal(seen.length, 1, "one console error for a repeated failure");
        assert.match(seen[0], /EIO/);
    } finally {
        console.error = original;
        server.pyodide.runPython("b.PageServer.handle_shared = b.PageServer._saved_handle");
        broken.close();
    }
});

test("a deferred reply reaches v86's callback later; a flushed one gets EINTR first", async () => {
    // Make Tfsync defer (as fsync to IndexedDB will): Python keeps the tag, the test completes it.
    server.pyodide.runPython(`
import pyninep_browser.server as s
from pyninep_browser.protocol import T
s.Server._saved_fsync = s.Server.fsync
deferred = []
def fsync(self, tag, fid, datasync):
    self._file_fid(fid)
    self.defer(tag)
    deferred.append((self, tag))
    return None
def finish():
    server, tag = deferred.pop(0)
    server.complete(tag, server._empty(T.Rfsync, tag))
s.Server.fsync = fsync
`);
    const deferring = await createServer({ storage: "memory", baseUrl: pathToFileURL(dist + "/"),
                                           image: null, pyodide: server.pyodide });
    try {
        call(deferring, T.version(0xffff, 65536));
        call(deferring, T.attach(1, 0));
        const replies = [];
        const got = (r) => replies.push([rtype(r), rtag(r), rtype(r) === 7 ? ecode(r) : 0]);
        deferring.handle9p(T.fsync(30, 0), got);
        assert.deepEqual(replies, [], "no reply before the work is done");
        deferring.handle9p(T.getattr(31, 0), got); // others are answered meanwhile
        server.pyodide.runPython("finish()");
        assert.deepEqual(replies, [[25, 31, 0], [51, 30, 0]]);

        replies.length = 0;
        deferring.handle9p(T.fsync(32, 0), got);
        deferring.handle9p(T.flush(33, 32), got);
        assert.deepEqual(replies, [[7, 32, 4], [109, 33, 0]], "EINTR for the flushed request, then Rflush");
        server.pyodide.runPython("finish()"); // completes too late: dropped
        assert.equal(replies.length, 2);
    } finally {
        server.pyodide.runPython("s.Server.fsync = s.Server._saved_fsync");
        deferring.close();
    }
});

test("saveState and restoreState keep files and open fids", async () => {
    const state = await server.saveState();
    assert.ok(state instanceof Uint8Array && state.length > 0);
    call(server, T.write(20, 1, 0, new TextEncoder().encode("CHANGED!!!")));
    await server.restoreState(state);
    const r = call(server, T.read(21, 1, 0, 100)); // fid 1 is still open after the restore
    assert.equal(new TextDecoder().decode(r.subarray(11)), "hi from js");
});

test("saveSession and restoreSession keep the server's files and re-bind open fids", async () => {
    const session = await server.saveSession();
    assert.ok(session.length < 4096, `a session state is small (${session.length} bytes)`);
    call(server, T.write(22, 1, 0, new TextEncoder().encode("newer file"))); // after the save
    const report = await server.restoreSession(session);
    assert.deepEqual(report, { fids: 2, stale: [] });
    const r = call(server, T.read(23, 1, 0, 100)); // fid 1 re-bound: it reads the file as it is now
    assert.equal(new TextDecoder().decode(r.subarray(11)), "newer file");
    // A session of another filesystem is refused whole, and nothing changes.
    const other = await createServer({ storage: "memory", baseUrl: pathToFileURL(dist + "/"), image: null, script: null });
    try {
        await assert.rejects(other.restoreSession(session), (e) => e.foreign === true);
    } finally {
        await other.close();
    }
    assert.equal(new TextDecoder().decode(call(server, T.read(24, 1, 0, 100)).subarray(11)), "newer file");
});

test("a page script authors the tree; live files answer, async ones later; tar out and in", async () => {
    const source = `
import asyncio
from pyninep_browser.authoring import live_file

async def _later():
    await asyncio.sleep(0.01)
    return "async in the page\\n"

later = live_file("js-later", read=_later)
hello = live_file("js-hello", read=lambda: "hello from the script\\n")

def build(tree):
    (tree / "etc/motd").write_text("site motd\\n")
    (tree / "hello").live(hello)
    (tree / "later").live(later)
`;
    const site = await createServer({ storage: "memory", baseUrl: pathToFileURL(dist + "/"), image: null,
                                      script: { source }, pyodide: server.pyodide });
    const lopen = (tag, fid) => frame(12, tag, [u32(fid), u32(0)]);
    const text = (r) => new TextDecoder().decode(r.subarray(11));
    try {
        call(site, T.version(0xffff, 65536));
        call(site, T.attach(1, 0));
        assert.equal(rtype(call(site, T.walk(2, 0, 2, ["hello"]))), 111);
        assert.equal(rtype(call(site, lopen(3, 2))), 13);
        assert.equal(text(call(site, T.read(4, 2, 0, 100))), "hello from the script\n");
        // An async live function: the open is answered when it finishes, through v86's callback.
        assert.equal(rtype(call(site, T.walk(5, 0, 3, ["later"]))), 111);
        const replies = [];
        site.handle9p(lopen(6, 3), (r) => replies.push([rtype(r), rtag(r)]));
        assert.deepEqual(replies, []);
        for (let i = 0; i < 50 && replies.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
        assert.deepEqual(replies, [[13, 6]]);
        assert.equal(text(call(site, T.read(7, 3, 0, 100))), "async in the page\n");
        // The tree as a tar, and back in elsewhere.
        const tar = await site.exportTar("/etc");
        assert.ok(tar instanceof Uint8Array && tar.length >= 1024);
        assert.ok(await site.importTar(tar, "/copy") >= 1);
        assert.equal(new TextDecoder().decode(await site.readFile("/copy/motd")), "site motd\n");
    } finally {
        await site.close();
    }
});

test("unknown storage is refused with a clear error", async () => {
    await assert.rejects(createServer({ storage: "floppy", baseUrl: pathToFileURL(dist + "/") }), /storage/);
});

test("IndexedDB storage where there is no IndexedDB (Node) is a clear error", async () => {
    await assert.rejects(createServer({ storage: "indexeddb:x", baseUrl: pathToFileURL(dist + "/") }),
        /needs IndexedDB/);
});

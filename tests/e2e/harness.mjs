// Boots the real guest in real v86 under Node, its root served by dist/pyninep.js (our Python in
// Pyodide), and runs shell scripts in it for pytest. One JSON object per line each way:
//   ← {"ready": true, "boot_ms": N, "pyodide_ms": N}
//   → {"id": 1, "op": "run", "script": "…", "timeout": 60000}   ← {"id": 1, "status": 0, "output": "…"}
//   → {"id": 2, "op": "save"}      ← {"id": 2, "ok": true, "v86_bytes": N, "fs_bytes": N}
//   → {"id": 3, "op": "restore"}   ← {"id": 3, "ok": true, "restore_ms": N}  (the last save)
//   → {"id": 4, "op": "readFile", "path": "/etc/hostname"}   ← {"id": 4, "data": "<base64>"}
//   → {"id": 5, "op": "writeFile", "path": "…", "data": "<base64>"}   ← {"id": 5, "ok": true}
//   → {"id": 15, "op": "remove" | "mkdir", "path": "…"}   ← {"id": 15, "ok": true}
//   (the page's calls resolve once the guest dropped its caches: onOutsideChange, the drop loop)
//   → {"id": 6, "op": "stats"}     ← {"id": 6, "stats": {"<type>": {"count", "ms", "bytes"}}} (then reset)
//   → {"id": 7, "op": "record"}    ← {"id": 7, "state": "<base64>"}  (our state now; frames are kept from here)
//   → {"id": 8, "op": "recorded"}  ← {"id": 8, "frames": "<base64>"}  (the request frames since, end to end)
//   → {"id": 9, "op": "saveMachine", "compress": true, "path": "…"?}
//        ← {"id": 9, "ok": true, "bytes": N, "raw_bytes": N, "save_ms": N}  (saveMachine; kept, and
//          written to path if given)
//   → {"id": 10, "op": "restoreMachine", "corrupt": N?}  ← {"id": 10, "ok": true, "restore_ms": N}
//        the kept blob into a NEW server and a NEW emulator (the old ones are destroyed). With
//        "corrupt": N, byte N of a copy is flipped and it is restored into the running machine,
//        which must refuse it: ← {"id": 10, "refused": "<error message>"}
//   → {"id": 11, "op": "exportTar", "path": "/etc"}   ← {"id": 11, "data": "<base64 tar>"}
//   → {"id": 12, "op": "importTar", "data": "<base64>", "dir": "/"}   ← {"id": 12, "entries": N}
//   → {"id": 14, "op": "restoreV86"}  ← {"id": 14, "ok": true, "bytes": N, "restore_ms": N}  (--proxy:
//        save the machine, restore it into a new emulator on the same proxy_url)
//   → {"id": 13, "op": "dropSocket"}  ← {"id": 13, "ok": true, "sockets": N}  (--proxy: close the
//        9P WebSocket under the guest, as a network drop would; v86 opens a new one itself)
// Scripts are handed to the guest as files written through writeFile, so any length works; with
// --proxy (v86's own proxy_url: the files live on a `serve --ws` server) they go through the serial
// line, and readFile/writeFile are not available.
// Usage: node harness.mjs DIST_DIR [--builtin | --proxy WS_URL | --server WS_URL] [--mount OPTS] [--root none]
//        (--server: createServer({server}), the page's server mode: our shim forwards v86's handle9p)
//        [--image FILE.img [--script SCRIPT.py]]   (boot a user image, its live files from SCRIPT)
//        [--basefs URL --baseurl URL]   (boot a v86 fs2json base image: through our server, or
//                                        with --builtin through v86's own 9p, paths then local)
import path from "node:path";
import readline from "node:readline";
import { pathToFileURL } from "node:url";

const args = process.argv.slice(2);
const dist = path.resolve(args[0] || "dist");
const builtin = args.includes("--builtin");
const proxy = args.includes("--proxy") ? args[args.indexOf("--proxy") + 1] : undefined;
// Every WebSocket v86 opens (proxy_url), so a test can drop the current one.
const sockets = [];
if (proxy) {
    if (typeof globalThis.WebSocket === "undefined") {
        process.stdout.write(JSON.stringify({ fatal: "no WebSocket in this Node: run it with --experimental-websocket (Node 20) or Node 22+" }) + "\n");
        process.exit(1);
    }
    const Base = globalThis.WebSocket;
    globalThis.WebSocket = class extends Base {
        constructor(...a) { super(...a); sockets.push(this); }
    };
}
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const send = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const fail = (message) => { send({ fatal: message }); process.exit(1); };

const manifest = JSON.parse(await (await import("node:fs/promises")).readFile(path.join(dist, "manifest.json"), "utf8"));
const { V86 } = await import(pathToFileURL(path.join(dist, manifest.v86, "libv86.mjs")).href);
const { createServer, saveMachine, restoreMachine } = await import(pathToFileURL(path.join(dist, "pyninep.js")).href);
const machine = await import(pathToFileURL(path.join(dist, "machine.js")).href);

const t0 = Date.now();
let server = null;
let pyodideMs = 0;
// The guest caches (cache=loose): when the files change other than by its own requests
// (writeFile, importTar, a live file's Python), it drops its caches before the call resolves, as
// the page's console loop does (web/machine.js): a loop on its second serial port, started after
// boot, reads a token, writes /sys/fs/9p/invalidate (our kernel: docs/guest.md) and echoes the
// token back.
let dropLoop = false;
let serial1 = null; // machine.listenSerial1 of the running emulator
let drops = 0;
const guestDrops = async () => {
    if (!dropLoop || !emulator.is_running()) return;
    const token = `__DROP_${++drops}__`;
    const said = serial1.says(token, 30000);
    emulator.serial_send_bytes(1, new TextEncoder().encode(token + "\n"));
    if (!(await said)) throw new Error(`the guest did not say ${token} on its second serial port within 30 s`);
};
if (!builtin && !proxy) {
    const options = { storage: "memory", baseUrl: pathToFileURL(dist + "/"), onOutsideChange: guestDrops };
    if (opt("--server")) options.server = opt("--server"); // server mode: pyninep-remote.js's shim
    if (opt("--image")) {
        const { readFile } = await import("node:fs/promises");
        options.image = new Uint8Array(await readFile(opt("--image")));
        options.script = opt("--script") ? { source: await readFile(opt("--script"), "utf8") } : null;
    }
    if (opt("--basefs")) Object.assign(options, { basefs: opt("--basefs"), baseurl: opt("--baseurl") });
    server = await createServer(options);
    pyodideMs = Date.now() - t0;
}
const g = manifest.guest;
let cmdline = g.cmdline;
if (opt("--root")) cmdline += ` pyninep.root=${opt("--root")}`;
if (opt("--mount")) cmdline += ` pyninep.mount=${opt("--mount")}`;
const file = (p) => ({ url: path.join(dist, p) });
// Time spent answering 9P, by message type (the "stats" op reads and resets it).
const stats = new Map();
let recording = null; // request frames since the "record" op, for bench/replay.py
const timed = (handle) => (req, reply) => {
    if (recording) recording.push(req.slice(0, new DataView(req.buffer, req.byteOffset).getUint32(0, true)));
    const t = performance.now();
    handle(req, reply);
    const s = stats.get(req[4]) ?? [0, 0, 0];
    s[0] += 1;
    s[1] += performance.now() - t;
    s[2] += req.length;
    stats.set(req[4], s);
};
const makeEmulator = (autostart) => new V86({
    wasm_path: path.join(dist, manifest.v86, "v86.wasm"),
    bios: file(g.bios), vga_bios: file(g.vgabios), bzimage: file(g.kernel), initrd: file(g.initrd),
    cmdline, memory_size: g.memory,
    // The server is looked up per request: restoreMachine swaps in a new one.
    filesystem: builtin ? (opt("--basefs") ? { basefs: opt("--basefs"), baseurl: opt("--baseurl") } : {})
        : proxy ? { proxy_url: proxy } : { handle9p: timed((req, reply) => server.handle9p(req, reply)) },
    uart1: true, // the second serial port: the drop loop below
    autostart, disable_keyboard: true, disable_mouse: true, disable_speaker: true,
});
let emulator = makeEmulator(true);
const loaded = new Promise((resolve) => emulator.add_listener("emulator-loaded", resolve));
server?.attachEmulator?.(emulator); // server mode: the shim's replies wake a halted guest
// --proxy: v86's own socket, its replies waking the guest as the page's server mode does
// (--proxy-plain: v86's proxy_url exactly as it comes)
const { wakeOnProxyReplies, closeProxy, quiesceProxy } = await import(pathToFileURL(path.join(dist, "pyninep-remote.js")).href);
if (proxy && !args.includes("--proxy-plain")) {
    await loaded;
    wakeOnProxyReplies(emulator);
}

let buffer = "";
let waiter = null; // { pattern, resolve, timer }
const listen = (emu) => emu.add_listener("serial0-output-byte", (byte) => {
    if (emu !== emulator) return;
    buffer += String.fromCharCode(byte);
    if (buffer.length > 64 << 20) buffer = buffer.slice(-(32 << 20));
    checkWaiter();
});
listen(emulator);
serial1 = machine.listenSerial1(emulator);
function checkWaiter() {
    if (!waiter) return;
    const m = waiter.pattern.exec(buffer);
    if (m) {
        const w = waiter;
        waiter = null;
        clearTimeout(w.timer);
        const before = buffer.slice(0, m.index);
        buffer = buffer.slice(m.index + m[0].length);
        w.resolve({ before, match: m });
    }
}
function waitFor(pattern, timeout) {
    return new Promise((resolve, reject) => {
        waiter = { pattern, resolve, timer: setTimeout(() => {
            waiter = null;
            reject(new Error(`timeout after ${timeout} ms waiting for ${pattern}; last output: ${JSON.stringify(buffer.slice(-400))}`));
        }, timeout) };
        checkWaiter();
    });
}

try {
    await waitFor(/[#$] $/, 240000);  // a loaded 2-core machine booting the Debian base
} catch (e) {
    fail(e.message);
}
const bootMs = Date.now() - t0;
// A quiet shell: no echo, no prompt, so output is exactly what commands print.
// (The marker is split in the typed line so that the line's own echo cannot match it.)
emulator.serial0_send("stty -echo; PS1=''; PS2=''; echo __READ\"\"Y__\n");
await waitFor(/__READY__\r?\n/, 30000);
if (server) {
    emulator.serial0_send("(setsid sh -c 'stty -F /dev/ttyS1 -echo icanon; echo __LOOP_\"\"READY__ >/dev/ttyS1; " +
        "while read -r k; do echo 1 >/sys/fs/9p/invalidate; echo \"$k\" >/dev/ttyS1; done </dev/ttyS1' </dev/null >/dev/null 2>&1 &)\n");
    if (!(await serial1.says("__LOOP_READY__", 30000))) fail("the drop loop did not start on the second serial port within 30 s");
    dropLoop = true;
}
send({ ready: true, boot_ms: bootMs, pyodide_ms: pyodideMs });

let counter = 0;
let saved = null;
let savedMachine = null;
async function run(req) {
    const n = ++counter;
    const marker = `__END_${n}__`;
    const timeout = req.timeout ?? 60000;
    if (server && req.via_serial !== true) {
        // Our filesystem is the guest's / (or its /mnt with --root none).
        const guestPath = `${opt("--root") === "none" ? "/mnt" : "/tmp"}/.e2e-${n}.sh`;
        const ourPath = opt("--root") === "none" ? `/.e2e-${n}.sh` : guestPath;
        await server.writeFile(ourPath, new TextEncoder().encode(req.script + "\n"));
        emulator.serial0_send(`sh ${guestPath} </dev/null 2>&1; echo "${marker}$?"; rm -f ${guestPath}\n`);
    } else {
        emulator.serial0_send(`{ ${req.script}\n} </dev/null 2>&1; echo "${marker}$?"\n`);
    }
    const { before, match } = await waitFor(new RegExp(`${marker}(\\d+)\\r?\\n`), timeout);
    return { before, status: Number(match[1]) };
}

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
    if (!line.trim()) continue;
    const req = JSON.parse(line);
    try {
        if (req.op === "run") {
            const { before, status } = await run(req);
            send({ id: req.id, status, output: before.replace(/\r/g, "") });
        } else if (req.op === "save") {
            emulator.stop();
            const v86State = await emulator.save_state();
            const fsState = await server.saveState();
            saved = { v86State, fsState };
            emulator.run();
            send({ id: req.id, ok: true, v86_bytes: v86State.byteLength, fs_bytes: fsState.byteLength });
        } else if (req.op === "restore") {
            const t = Date.now();
            emulator.stop();
            await server.restoreState(saved.fsState);
            await emulator.restore_state(saved.v86State);
            emulator.run();
            buffer = "";
            emulator.serial0_send("echo __RESTORED__\n");
            await waitFor(/__RESTORED__\r?\n/, 30000);
            send({ id: req.id, ok: true, restore_ms: Date.now() - t });
        } else if (req.op === "saveMachine") {
            const t = Date.now();
            savedMachine = await saveMachine(emulator, server, { compress: req.compress ?? true });
            const saveMs = Date.now() - t;
            if (req.path) await (await import("node:fs/promises")).writeFile(req.path, savedMachine);
            send({ id: req.id, ok: true, bytes: savedMachine.length, save_ms: saveMs });
        } else if (req.op === "restoreMachine" && req.corrupt !== undefined) {
            const bad = savedMachine.slice();
            bad[req.corrupt % bad.length] ^= 0x55;
            try {
                await restoreMachine(bad, { emulator, server });
                send({ id: req.id, error: "a corrupted blob was accepted" });
            } catch (e) {
                send({ id: req.id, refused: String(e.message), running: emulator.is_running() });
            }
        } else if (req.op === "restoreMachine") {
            const t = Date.now();
            const oldEmulator = emulator, oldServer = server;
            await oldEmulator.stop();
            const fresh = await createServer({ storage: "memory", baseUrl: pathToFileURL(dist + "/"),
                                               pyodide: oldServer.pyodide, image: null, onOutsideChange: guestDrops });
            const emu = makeEmulator(false);
            await new Promise((resolve) => emu.add_listener("emulator-loaded", resolve));
            oldEmulator.destroy?.();
            await oldServer.close();
            server = fresh;
            emulator = emu;
            listen(emu);
            serial1.close();
            serial1 = machine.listenSerial1(emu);
            buffer = "";
            await restoreMachine(savedMachine, { emulator: emu, server: fresh });
            emulator.serial0_send("echo __RESTORED__\n");
            await waitFor(/__RESTORED__\r?\n/, 30000);
            send({ id: req.id, ok: true, restore_ms: Date.now() - t });
        } else if (req.op === "restoreV86") {
            // --proxy: the running machine saved and restored into a NEW emulator on the same
            // proxy_url (so the same session id), as a page restores a saved machine.
            const t = Date.now();
            await emulator.stop();
            // a request the guest sent just before the stop is still in flight: v86 cannot save it
            let state;
            try {
                if (!(await quiesceProxy(emulator, 30000))) throw new Error("9P requests still unanswered after 30 s");
                state = await emulator.save_state();
            } catch (e) {
                emulator.run(); // the guest goes on, so one failure does not take the next tests with it
                throw e;
            }
            const old = emulator;
            const emu = makeEmulator(false);
            await new Promise((resolve) => emu.add_listener("emulator-loaded", resolve));
            if (!args.includes("--proxy-plain")) wakeOnProxyReplies(emu);
            closeProxy(old); // v86's destroy() leaves the old socket open, reconnecting
            old.destroy?.();
            emulator = emu;
            listen(emu);
            buffer = "";
            await emu.restore_state(state);
            emu.run();
            emulator.serial0_send("echo __RESTORED__\n");
            await waitFor(/__RESTORED__\r?\n/, 60000);
            send({ id: req.id, ok: true, bytes: state.byteLength, restore_ms: Date.now() - t });
        } else if (req.op === "dropSocket") {
            const ws = sockets.at(-1);
            ws?.close();
            send({ id: req.id, ok: Boolean(ws), sockets: sockets.length });
        } else if (req.op === "sockets") {
            send({ id: req.id, sockets: sockets.length, state: sockets.at(-1)?.readyState });
        } else if (req.op === "stats") {
            const out = {};
            for (const [type, [count, ms, bytes]] of stats) out[type] = { count, ms: +ms.toFixed(2), bytes };
            stats.clear();
            send({ id: req.id, stats: out });
        } else if (req.op === "record") {
            recording = [];
            send({ id: req.id, state: Buffer.from(await server.saveState()).toString("base64") });
        } else if (req.op === "recorded") {
            const frames = Buffer.concat(recording ?? []);
            recording = null;
            send({ id: req.id, frames: frames.toString("base64") });
        } else if (req.op === "readFile") {
            send({ id: req.id, data: Buffer.from(await server.readFile(req.path)).toString("base64") });
        } else if (req.op === "exportTar") {
            send({ id: req.id, data: Buffer.from(await server.exportTar(req.path ?? "/")).toString("base64") });
        } else if (req.op === "importTar") {
            const n = await server.importTar(new Uint8Array(Buffer.from(req.data, "base64")), req.dir ?? "/");
            send({ id: req.id, entries: n });
        } else if (req.op === "remove" || req.op === "mkdir") {
            await server[req.op](req.path);
            send({ id: req.id, ok: true });
        } else if (req.op === "writeFile") {
            await server.writeFile(req.path, new Uint8Array(Buffer.from(req.data, "base64")));
            send({ id: req.id, ok: true });
        } else {
            send({ id: req.id, error: `unknown op ${req.op}` });
        }
    } catch (e) {
        send({ id: req.id, error: String(e.message || e) });
    }
}
emulator.destroy?.();
process.exit(0);

// Helpers for the IndexedDB tests, as window.T (see idb.html). Every call returns plain JSON.
import { createServer, saveMachine, restoreMachine } from "../../pyninep.js";
import { T as F, frame, u32, rtype, ecode } from "../js/frames.mjs";

const manifest = await (await fetch("../../manifest.json")).json();
let server = null, emulator = null;
let serial = "", waiter = null;

const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
const sha256 = async (bytes) => hex(await crypto.subtle.digest("SHA-256", bytes));

/** Deterministic content for file `name` version `v`: its size and bytes follow from both. */
function content(name, v, size) {
    let x = 0x9e3779b9 ^ v;
    for (const ch of name) x = Math.imul(x ^ ch.charCodeAt(0), 0x01000193);
    const out = new Uint8Array(size);
    for (let i = 0; i < size; i++) {
        x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
        out[i] = x & 0xff;
    }
    return out;
}

function checkWaiter() {
    if (!waiter) return;
    const m = waiter.pattern.exec(serial);
    if (m) {
        const w = waiter;
        waiter = null;
        clearTimeout(w.timer);
        const before = serial.slice(0, m.index);
        serial = serial.slice(m.index + m[0].length);
        w.resolve({ before, match: m });
    }
}
function waitFor(pattern, timeout) {
    return new Promise((resolve, reject) => {
        waiter = { pattern, resolve, timer: setTimeout(() => {
            waiter = null;
            reject(new Error(`timeout waiting for ${pattern}; last output: ${JSON.stringify(serial.slice(-300))}`));
        }, timeout) };
        checkWaiter();
    });
}

// Time from request to reply by message type, deferred replies included (T.latency()).
const latency = new Map();
const timed = (handle) => (req, reply) => {
    const t = performance.now(), type = req[4];
    handle(req, (frame) => {
        const s = latency.get(type) ?? [0, 0, 0];
        const dt = performance.now() - t;
        s[0]++; s[1] += dt; s[2] = Math.max(s[2], dt);
        latency.set(type, s);
        reply(frame);
    });
};

let counter = 0;
window.T = {
    /** {type: [count, total ms, max ms]} since the last call. */
    latency() {
        const out = Object.fromEntries([...latency].map(([k, v]) => [k, v.map((x) => +x.toFixed(2))]));
        latency.clear();
        return out;
    },
    async open(opts = {}) {
        const t = performance.now();
        const options = { ...opts.options };
        if (opts.headroom !== undefined) { // a quota this much above what the origin uses now
            options.quota = (await navigator.storage.estimate()).usage + opts.headroom;
        }
        server = await createServer({ storage: opts.storage ?? `indexeddb:${opts.db ?? "test"}`, ...options });
        window.server = server;
        return { ms: performance.now() - t, report: server.openReport, crossing: server.crossing,
                 persisted: await server.persisted };
    },
    async tryOpen(db) {
        try {
            const s = await createServer({ storage: `indexeddb:${db}` });
            await s.close();
            return { ok: true };
        } catch (error) {
            return { ok: false, message: String(error.message) };
        }
    },
    /** Boot the guest on the current server (or open one: T.open's options); storage
     *  "builtin" boots on v86's own JavaScript 9p instead. opts.cmdline is appended. */
    async boot(opts = {}) {
        const builtin = opts.storage === "builtin";
        const opened = server || builtin ? {} : await T.open(opts);
        const { V86 } = await import(`../../${manifest.v86}libv86.mjs`);
        const g = manifest.guest;
        const t = performance.now();
        emulator = new V86({
            wasm_path: `../../${manifest.v86}v86.wasm`,
            bios: { url: `../../${g.bios}` }, vga_bios: { url: `../../${g.vgabios}` },
            bzimage: { url: `../../${g.kernel}` }, initrd: { url: `../../${g.initrd}` },
            cmdline: `${g.cmdline} ${opts.cmdline ?? ""}`, memory_size: g.memory,
            filesystem: builtin ? {} : { handle9p: timed(server.handle9p) },
            autostart: true, disable_keyboard: true, disable_mouse: true, disable_speaker: true,
        });
        window.emulator = emulator;
        if (!builtin && opts.wake !== false) server.attachEmulator?.(emulator);
        emulator.add_listener("serial0-output-byte", (byte) => {
            const ch = String.fromCharCode(byte);
            serial += ch;
            if (ch === "\n") {
                const nl = serial.lastIndexOf("\n", serial.length - 2);
                const line = serial.slice(nl + 1, -1).replace(/\r$/, "");
                if (line.startsWith("ACK ")) console.log(line); // the crash tests count these
            }
            checkWaiter();
        });
        await waitFor(/[#$] $/, 240000);
        emulator.serial0_send("stty -echo; PS1=''; PS2=''; echo __READ\"\"Y__\n");
        await waitFor(/__READY__\r?\n/, 30000);
        return { ...opened, bootMs: performance.now() - t };
    },
    /** Run a short script in the guest's shell (through the serial line). */
    async sh(script, timeout = 60000) {
        const marker = `__END_${++counter}__`;
        emulator.serial0_send(`{ ${script}\n} </dev/null 2>&1; echo "${marker}$?"\n`);
        const { before, match } = await waitFor(new RegExp(`${marker}(\\d+)\\r?\\n`), timeout);
        return { status: Number(match[1]), output: before.replace(/\r/g, "") };
    },
    /** Start a script and do not wait (the crash tests kill the browser while it runs). */
    start(script) {
        emulator.serial0_send(`{ ${script}\n} </dev/null >/dev/null 2>&1 &\n`);
    },
    async fileHash(path) {
        try {
            const bytes = await server.readFile(path);
            return { length: bytes.length, sha256: await sha256(bytes) };
        } catch (error) {
            return { error: String(error.message), errno: error.errno };
        }
    },
    async writeFile(path, text) {
        const t = performance.now();
        await server.writeFile(path, text);
        return performance.now() - t;
    },
    async flush() {
        const t = performance.now();
        await server.flush();
        return performance.now() - t;
    },
    stats: () => server.storageStats(),
    async close() { await server.close(); },

    /**
     * The frame-driven crash workload: a 9P session from page script, no guest. Each round
     * creates a file (or rewrites an earlier one), writes its content in 64 KiB Twrites, and
     * fsyncs; an "ACK name version size" console line is logged once Rfsync is back. Some rounds
     * skip the fsync (write-behind only) and some use writeFile instead.
     */
    async framesWorkload({ seed = 1, rounds = 1000 } = {}) {
        // START must reach the test before the change can: window.ledger is the test's own
        // function (Playwright's expose_function), and awaiting it is a round trip to the test.
        const log = async (line) => { if (window.ledger) await window.ledger(line); else console.log(line); };
        let tag = 1;
        const call = (frame) => new Promise((resolve) => server.handle9p(frame, resolve));
        const ok = (r, type) => {
            if (rtype(r) !== type) throw new Error(`expected ${type}, got ${rtype(r)} errno ${ecode(r)}`);
            return r;
        };
        ok(await call(F.version(0xffff, 131072)), 101);
        ok(await call(F.attach(tag++, 0)), 105);
        let rng = seed >>> 0 || 1;
        const rand = (n) => { rng ^= rng << 13; rng ^= rng >>> 17; rng ^= rng << 5; return (rng >>> 0) % n; };
        const versions = new Map();
        const dir = `crash${seed}`;
        ok(await call(F.walk(tag++, 0, 1, [])), 111);
        ok(await call(frame(72, tag++, [u32(1), dir, u32(0o755), u32(0)])), 73); // Tmkdir
        ok(await call(F.clunk(tag++, 1)), 121);
        for (let round = 0; round < rounds; round++) {
            const existing = versions.size && rand(3) === 0;
            const name = existing ? [...versions.keys()][rand(versions.size)] : `f${round}`;
            const v = (versions.get(name) ?? 0) + 1;
            const size = [100, 5000, 65536, 70000, 200000, 300000][rand(6)];
            const data = content(name, v, size);
            await log(`START ${dir}/${name} ${v} ${size}`);
            versions.set(name, v);
            if (rand(5) === 0) { // through the page API: resolves after its commit
                await server.writeFile(`/${dir}/${name}`, data);
                await log(`ACK ${dir}/${name} ${v} ${size}`);
                continue;
            }
            ok(await call(F.walk(tag++, 0, 2, [dir])), 111);
            if (existing) {
                ok(await call(F.walk(tag++, 2, 3, [name])), 111);
                ok(await call(frame(12, tag++, [u32(3), u32(0o2 | 0o1000)])), 13); // Tlopen O_RDWR|O_TRUNC
                ok(await call(F.clunk(tag++, 2)), 121);
            } else {
                ok(await call(F.lcreate(tag++, 2, name)), 15);
            }
            const fid = existing ? 3 : 2;
            for (let off = 0; off < size; off += 65536) {
                ok(await call(F.write(tag++, fid, off, data.subarray(off, off + 65536))), 119);
            }
            const sync = rand(4) !== 0;
            if (sync) ok(await call(F.fsync(tag++, fid)), 51);
            ok(await call(F.clunk(tag++, fid)), 121);
            if (sync) await log(`ACK ${dir}/${name} ${v} ${size}`);
            tag &= 0x7fff;
        }
        return { rounds };
    },
    /** Check files against their expected content: [[path, version, size], ...] → mismatches. */
    async verify(files) {
        const bad = [];
        for (const [path, v, size] of files) {
            const got = await T.fileHash(`/${path}`);
            const want = await sha256(content(path.split("/").pop(), v, size));
            if (got.sha256 !== want) bad.push({ path, v, size, got });
        }
        return bad;
    },
    async saveMachine(opts) {
        const t = performance.now();
        const blob = await saveMachine(emulator, server, opts);
        window.machine = blob;
        return { bytes: blob.length, ms: performance.now() - t };
    },
    /** Restore the last saved machine into the running emulator and server. */
    async restoreMachine() {
        const t = performance.now();
        try {
            await restoreMachine(window.machine, { emulator, server });
        } catch (error) {
            return { refused: String(error.message), running: emulator.is_running() };
        }
        serial = "";
        return { ok: true, ms: performance.now() - t };
    },
};
document.getElementById("log").textContent = "ready";
window.ready = true;

// Replays a recorded trace (bench/replay.py record) through the real shim in Pyodide (not a test):
//   node bench/replay.mjs [DIST] [TRACE] [--thrash MB]
// Prints µs per message by type. --thrash walks a buffer of that many MB between messages, so the
// caches are as cold as they are when v86 runs the guest between two requests.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const args = process.argv.slice(2);
const flag = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? Number(args.splice(i, 2)[1]) : dflt; };
const thrashMb = flag("--thrash", 0);
const rounds = flag("--rounds", 3);
const dist = path.resolve(args[0] || "dist");
const tracePath = args[1] || "/tmp/pyninep-trace.bin";
const MAGIC = "PYNINEP-TRACE-1\n";
const NAMES = { 8: "Tstatfs", 12: "Tlopen", 14: "Tlcreate", 16: "Tsymlink", 18: "Tmknod", 20: "Trename",
    22: "Treadlink", 24: "Tgetattr", 26: "Tsetattr", 30: "Txattrwalk", 32: "Txattrcreate", 40: "Treaddir",
    50: "Tfsync", 52: "Tlock", 54: "Tgetlock", 70: "Tlink", 72: "Tmkdir", 74: "Trenameat", 76: "Tunlinkat",
    100: "Tversion", 104: "Tattach", 108: "Tflush", 110: "Twalk", 116: "Tread", 118: "Twrite", 120: "Tclunk", 122: "Tremove" };

const data = new Uint8Array(fs.readFileSync(tracePath));
if (new TextDecoder().decode(data.subarray(0, MAGIC.length)) !== MAGIC) {
    console.error(`${tracePath}: not a trace (record one with: bench/replay.py record)`);
    process.exit(1);
}
const view = new DataView(data.buffer, data.byteOffset);
let pos = MAGIC.length;
const stateLen = Number(view.getBigUint64(pos, true));
pos += 8;
const state = data.slice(pos, pos + stateLen);
pos += stateLen;
const frames = [];
while (pos < data.length) {
    const size = view.getUint32(pos, true);
    frames.push(data.slice(pos, pos + size));
    pos += size;
}

const { createServer } = await import(pathToFileURL(path.join(dist, "pyninep.js")).href);
const server = await createServer({ storage: "memory", baseUrl: pathToFileURL(dist + "/"), image: null });
const thrash = new Uint32Array((thrashMb << 20) / 4);
let sink = 0;
const perType = new Map();
let best = Infinity;
for (let r = 0; r < rounds; r++) {
    await server.restoreState(state);
    let total = 0;
    for (const frame of frames) {
        for (let i = 0; i < thrash.length; i += 16) sink += thrash[i]++;
        const t = performance.now();
        server.handle9p(frame, () => {});
        const dt = performance.now() - t;
        total += dt;
        const s = perType.get(frame[4]) ?? [0, 0];
        s[0]++;
        s[1] += dt;
        perType.set(frame[4], s);
    }
    best = Math.min(best, total);
}
console.log(`${frames.length} frames in Pyodide${thrashMb ? `, ${thrashMb} MB walked between messages` : ""}, ` +
    `best of ${rounds}: ${best.toFixed(1)} ms, ${(best / frames.length * 1000).toFixed(2)} us/message`);
for (const [type, [count, ms]] of [...perType].sort((a, b) => b[1][1] - a[1][1]).slice(0, 12)) {
    console.log(`  ${(NAMES[type] ?? type).padEnd(12)}${String(count / rounds).padStart(7)}${(ms / count * 1000).toFixed(2).padStart(9)} us`);
}
server.close();
if (sink === 0.5) console.log(sink);

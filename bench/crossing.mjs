// The frame crossing JS -> Python -> JS through the real shim (not a test):
//   node bench/crossing.mjs [DIST]
// Prints messages/s for getattr frames and MB/s for 128 KiB Tread/Twrite through handle9p, next to
// the same shim over a Python side that does nothing (our floor) and a naive PyProxy echo.
import path from "node:path";
import { pathToFileURL } from "node:url";
import { T, call } from "../tests/js/frames.mjs";

const dist = path.resolve(process.argv[2] || "dist");
const { createServer } = await import(pathToFileURL(path.join(dist, "pyninep.js")).href);
const t0 = performance.now();
const server = await createServer({ storage: "memory", baseUrl: pathToFileURL(dist + "/"), image: null });
const loadMs = performance.now() - t0;
const BLOCK = 128 * 1024;
call(server, T.version(0xffff, 1 << 20));
call(server, T.attach(1, 0));
call(server, T.walk(2, 0, 1, []));
call(server, T.lcreate(3, 1, "f"));
const payload = new Uint8Array(BLOCK).map((_, i) => i & 0xff);
for (let i = 0; i < 64; i++) call(server, T.write(4, 1, i * BLOCK, payload));

function rate(fn, n) {
    fn(0);
    const t = performance.now();
    for (let i = 0; i < n; i++) fn(i);
    return n / ((performance.now() - t) / 1000);
}
const noop = () => {};
const getattr = T.getattr(5, 1);
const reads = Array.from({ length: 64 }, (_, i) => T.read(6, 1, i * BLOCK, BLOCK));
const writes = Array.from({ length: 64 }, (_, i) => T.write(7, 1, i * BLOCK, payload));

server.pyodide.runPython(`
_reply = bytes(11)
def _echo(frame):
    frame.to_bytes()
    return _reply
`);
const echo = server.pyodide.globals.get("_echo");
const echoCall = (frame) => { const r = echo(frame); const out = r.toJs(); r.destroy(); return out; };

// The floor of our own path: the same shim and buffers, a Python side that only writes a reply.
server.pyodide.runPython(`
import pyninep_browser.browser as _b
_saved = _b.PageServer.handle_shared
_small = bytes([11, 0, 0, 0, 7, 1, 0, 5, 0, 0, 0])
_big = (11 + ${BLOCK}).to_bytes(4, "little") + bytes([117, 1, 0]) + (${BLOCK}).to_bytes(4, "little") + bytes(${BLOCK})
def _trivial(self):
    if self.request_buffer[4] == 116:  # Tread: a reply as big as ours
        self.reply_buffer[:len(_big)] = _big
    else:
        self.reply_buffer[:11] = _small
_b.PageServer.handle_shared = _trivial
`);
const floor = await createServer({ storage: "memory", baseUrl: pathToFileURL(dist + "/"), image: null,
                                   pyodide: server.pyodide });
server.pyodide.runPython("_b.PageServer.handle_shared = _saved");

const cases = [
    ["getattr", "msg/s", 20000, 1, () => getattr],
    ["read 128 KiB", "MB/s", 2000, BLOCK / 1e6, (i) => reads[i % 64]],
    ["write 128 KiB", "MB/s", 2000, BLOCK / 1e6, (i) => writes[i % 64]],
];
console.log(`JS<->Python crossing through dist/pyninep.js in Node ${process.version} (Pyodide + wheel + empty fs loaded in ${loadMs.toFixed(0)} ms; crossing: ${server.crossing})`);
console.log("floor: the same shim with a Python side that only writes a fixed reply (128 KiB for Tread);");
console.log("naive: a PyProxy call taking the Uint8Array and returning bytes (toJs), no server");
console.log(`${"message".padEnd(15)}${"unit".padEnd(8)}${"ours".padStart(10)}${"floor".padStart(10)}${"naive".padStart(10)}${"ours/floor".padStart(12)}${"ours/naive".padStart(12)}`);
for (const [name, unit, n, scale, frame] of cases) {
    const ours = rate((i) => server.handle9p(frame(i), noop), n) * scale;
    const fl = rate((i) => floor.handle9p(frame(i), noop), n) * scale;
    const naive = rate((i) => echoCall(frame(i)), n) * scale;
    console.log(`${name.padEnd(15)}${unit.padEnd(8)}${ours.toFixed(0).padStart(10)}${fl.toFixed(0).padStart(10)}${naive.toFixed(0).padStart(10)}` +
        `${(ours / fl).toFixed(2).padStart(12)}${(ours / naive).toFixed(2).padStart(12)}`);
}
floor.close();
echo.destroy();
server.close();

// The frame crossing JS -> Python -> JS through the real shim (not a test):
//   node bench/crossing.mjs [DIST]
// Prints messages/s for getattr frames and MB/s for 128 KiB Tread/Twrite through handle9p, next to
// a trivial Python echo handler called the same way (the floor any Python server pays per message).
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

const rows = [
    ["getattr", "msg/s", rate(() => server.handle9p(getattr, noop), 20000), rate(() => echoCall(getattr), 20000)],
    ["read 128 KiB", "MB/s", rate((i) => server.handle9p(reads[i % 64], noop), 2000) * BLOCK / 1e6,
        rate((i) => echoCall(reads[i % 64]), 2000) * BLOCK / 1e6],
    ["write 128 KiB", "MB/s", rate((i) => server.handle9p(writes[i % 64], noop), 2000) * BLOCK / 1e6,
        rate((i) => echoCall(writes[i % 64]), 2000) * BLOCK / 1e6],
];
console.log(`JS<->Python crossing through dist/pyninep.js in Node ${process.version} (Pyodide + wheel + empty fs loaded in ${loadMs.toFixed(0)} ms)`);
console.log(`${"message".padEnd(15)}${"unit".padEnd(8)}${"ours".padStart(12)}${"echo floor".padStart(12)}${"ours/floor".padStart(12)}`);
for (const [name, unit, ours, floor] of rows) {
    console.log(`${name.padEnd(15)}${unit.padEnd(8)}${ours.toFixed(0).padStart(12)}${floor.toFixed(0).padStart(12)}${(ours / floor).toFixed(2).padStart(12)}`);
}
echo.destroy();
server.close();

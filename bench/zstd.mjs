// zstd decompression for base images (v86's .bin.zst), not a test:
//   node bench/zstd.mjs [DIST]
// Pyodide's compression.zstd (what our server uses, in the same Python) against v86's own wasm
// decompressor (V86.prototype.zstd_decompress), on the same level-19 frames: 5 MB of random bytes,
// 5 MB of text-like bytes, and 300 small files. Prints MB/s of output.
import path from "node:path";
import { readFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";

const dist = path.resolve(process.argv[2] || "dist");
const manifest = JSON.parse(await readFile(path.join(dist, "manifest.json"), "utf8"));
const { loadPyodide } = await import(pathToFileURL(path.join(dist, manifest.pyodide, "pyodide.mjs")).href);
const py = await loadPyodide({ indexURL: path.join(dist, manifest.pyodide) });
const { V86 } = await import(pathToFileURL(path.join(dist, manifest.v86, "libv86.mjs")).href);
const g = manifest.guest;
const emulator = new V86({ wasm_path: path.join(dist, manifest.v86, "v86.wasm"), bios: { url: path.join(dist, g.bios) },
    autostart: false, disable_keyboard: true, disable_mouse: true, disable_speaker: true });
await new Promise((resolve) => emulator.add_listener("emulator-loaded", resolve));

py.runPython(`
from compression import zstd
import random
rnd = random.Random(1)
text = b"".join(b"line %d of a text-like file, with words that repeat\\n" % i for i in range(100000))[:5_000_000]
cases = {"5 MB random": [rnd.randbytes(5_000_000)], "5 MB text": [text],
         "300 small files": [(b"small file %d\\n" % i) * (1 + i % 7) for i in range(300)]}
frames = {k: [zstd.compress(d, level=19) for d in v] for k, v in cases.items()}
`);
const names = py.runPython("list(cases)").toJs();
console.log(`${"".padEnd(18)} ${"out MB".padStart(7)} ${"Pyodide MB/s".padStart(13)} ${"v86 wasm MB/s".padStart(14)}`);
for (const name of names) {
    const frames = py.runPython(`[bytes(f) for f in frames[${JSON.stringify(name)}]]`).toJs();
    const sizes = py.runPython(`[len(d) for d in cases[${JSON.stringify(name)}]]`).toJs();
    const total = sizes.reduce((a, b) => a + b, 0);
    const best = (fn) => { let b = Infinity; for (let r = 0; r < 5; r++) { const t = performance.now(); fn(); b = Math.min(b, performance.now() - t); } return b; };
    const pyMs = best(() => py.runPython(`for f, n in zip(frames[${JSON.stringify(name)}], cases[${JSON.stringify(name)}]): assert len(zstd.decompress(f)) == len(n)`));
    const v86Ms = best(() => { frames.forEach((f, i) => { const out = emulator.zstd_decompress(sizes[i], f); if (out.byteLength !== sizes[i]) throw new Error("size"); }); });
    console.log(`${name.padEnd(18)} ${(total / 1e6).toFixed(1).padStart(7)} ${(total / 1e3 / pyMs).toFixed(0).padStart(13)} ${(total / 1e3 / v86Ms).toFixed(0).padStart(14)}`);
}
emulator.destroy();
process.exit(0);

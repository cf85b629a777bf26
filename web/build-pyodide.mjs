// Build step (./build.sh): a memory snapshot of Pyodide with our package imported, which the page
// loads instead of starting Python from scratch (measured in Chromium on this machine: Python ready
// in about 1 s instead of 2–5 s; the snapshot costs about 5 MB more to download, with zstd).
// Usage: node web/build-pyodide.mjs DIST_DIR OUT_FILE
import { readFile, writeFile, rename } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [distArg, outArg] = process.argv.slice(2);
const dist = path.resolve(distArg || "dist");
const t0 = Date.now();
const manifest = JSON.parse(await readFile(path.join(dist, "manifest.json"), "utf8"));
const pyodideDir = path.join(dist, manifest.pyodide);
const { loadPyodide } = await import(pathToFileURL(path.join(pyodideDir, "pyodide.mjs")).href);
const pyodide = await loadPyodide({ indexURL: pyodideDir + "/", _makeSnapshot: true });
// The same steps as createServer (pyninep.js) up to the first import: unpack the wheel, import.
const wheel = new Uint8Array(await readFile(path.join(dist, manifest.wheel)));
const site = pyodide.runPython("import sysconfig; sysconfig.get_path('purelib')");
pyodide.unpackArchive(wheel, "wheel", { extractDir: site });
// Also what the default image's start-up script (images/default.py, where there is one) imports,
// and what a page's server imports as it starts (its store, the site's own live files).
pyodide.runPython(`
import importlib
for name in ("pyninep_browser.browser", "pyninep_browser.authoring", "pyninep_browser.archive",
             "pyninep_browser.store.indexeddb", "pyninep_browser.default_image",
             "pathlib", "platform", "traceback", "contextlib", "functools", "io", "tarfile", "json"):
    try:
        importlib.import_module(name)
    except ImportError:
        pass
`);
// Plain: the build packs it for the wire (sitefiles.pack_for_wire: zstd).
const snapshot = pyodide.makeMemorySnapshot();
const out = path.resolve(outArg);
await writeFile(out + ".tmp", snapshot);
await rename(out + ".tmp", out);
console.log(`build-pyodide: snapshot ${snapshot.length} B in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
process.exit(0);

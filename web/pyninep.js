/**
 * pyninep.js — the page's 9P2000.L server: Python (pyninep_browser) running in Pyodide.
 *
 *   import { createServer } from "./pyninep.js";
 *   const server = await createServer({ storage: "memory" });
 *   const emulator = new V86({ ..., filesystem: { handle9p: server.handle9p } });
 *
 * createServer(options) → Promise<PyninepServer>. Options (all optional):
 *   storage   "memory" (default). ("indexeddb:NAME" is planned; anything else is an Error.)
 *   baseUrl   where the built site lives (manifest.json, pyodide/, wheels/, images/);
 *             default: the directory of this module.
 *   manifest  the manifest object itself, instead of fetching baseUrl + "manifest.json".
 *   pyodide   an already loaded Pyodide instance to reuse (our wheel is installed into it).
 *   pyodideUrl  directory URL of Pyodide's files (default: manifest.pyodide).
 *   wheelUrl  URL of the pyninep_browser wheel (default: manifest.wheel).
 *   image     the filesystem to start from: a URL string, a Uint8Array, or null for an empty
 *             filesystem (default: manifest.image, the default guest root).
 *   script    an authoring script (Python) run in Pyodide at start-up: a URL, or { source: "…" }.
 *             Its module-level live_file/live_dir declarations attach to the image's live files
 *             (and to a restored state's) by name. Given here with image: null, its build(tree)
 *             authors the whole tree (a site ships a .py file instead of an image). Default: the
 *             manifest's script (images/default.py: /py/run…), declarations only; null for none.
 *   onError   called with (error, requestType) when a request fails inside Python; the guest
 *             gets Rlerror EIO for it. Default: console.error (once per distinct message).
 *
 * PyninepServer:
 *   handle9p(reqBuf, reply)  pass as v86's filesystem.handle9p (bound: works detached)
 *   saveState() → Uint8Array  the filesystem and the 9P session (take it with v86's save_state)
 *   restoreState(bytes)       the inverse, for v86's restore_state
 *   readFile(path) → Uint8Array, writeFile(path, bytes)   files of the served tree
 *   exportTar(path = "/") → Uint8Array   the tree (or a subtree) as a pax tar
 *   importTar(bytes, dir = "/") → number   unpack a tar (any compression) into dir; entries added
 *   listDir(path) → [{name, kind: "d"|"f"|"l"|"o", size, mtime (ms)}], mkdir(path) (with parents),
 *   remove(path) (a file, or a directory and all in it)   for a page's file browser
 *   pyodide                   the Pyodide instance
 *   crossing                  "direct" (CPython's C API, the fast path) or "pyproxy" (fallback)
 *   close()                   release the Python objects
 */

const IS_NODE = typeof process !== "undefined" && !!process.versions?.node && typeof window === "undefined";
const EIO = 5;

async function fetchBytes(url) {
    const u = new URL(url);
    if (u.protocol === "file:" && IS_NODE) {
        const { readFile } = await import("node:fs/promises");
        const { fileURLToPath } = await import("node:url");
        return new Uint8Array(await readFile(fileURLToPath(u)));
    }
    const response = await fetch(u);
    if (!response.ok) throw new Error(`pyninep: cannot load ${u.href}: HTTP ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
}

async function fetchJson(url) {
    return JSON.parse(new TextDecoder().decode(await fetchBytes(url)));
}

function dirUrl(url, base) {
    const u = new URL(url, base);
    if (!u.pathname.endsWith("/")) u.pathname += "/";
    return u;
}

/** The little-endian u32 at the start of a frame: its size. */
const u32 = (b) => (b[0] | (b[1] << 8) | (b[2] << 16)) + b[3] * 0x1000000;

/** An Rlerror frame: size[4]=11 type[1]=7 tag[2] ecode[4]. */
function lerror(tag, ecode) {
    const out = new Uint8Array(11);
    const view = new DataView(out.buffer);
    view.setUint32(0, 11, true);
    out[4] = 7;
    view.setUint16(5, tag, true);
    view.setUint32(7, ecode, true);
    return out;
}

/**
 * A zero-argument call of a Python callable straight through CPython's C API, or null where this
 * Pyodide does not offer what it needs. Per request this replaces PyProxy's generic call path
 * (argument arrays, keyword handling, result conversion), which costs about half of the floor of
 * a small request when the caches are cold, as they are between two guest requests
 * (bench/replay.mjs --thrash). A Python exception still arrives as Pyodide's PythonError.
 */
function directCall(pyodide, proxy) {
    const m = pyodide._module;
    const needed = ["PyProxy_getPtr", "_PyObject_CallNoArgs", "_Py_DecRef", "_check_gil", "_pythonexc2js"];
    if (!m || needed.some((name) => typeof m[name] !== "function")) return null;
    const ptr = m.PyProxy_getPtr(proxy); // the proxy keeps the object alive until close()
    return () => {
        m._check_gil(); // throws if Python is suspended elsewhere, like PyProxy calls do
        const result = m._PyObject_CallNoArgs(ptr);
        if (result === 0) m._pythonexc2js(); // throws the PythonError (and clears it in Python)
        m._Py_DecRef(result);
    };
}

export async function createServer(options = {}) {
    const storage = options.storage ?? "memory";
    if (storage !== "memory") {
        throw new Error(`pyninep: storage ${JSON.stringify(storage)} is not supported (use "memory")`);
    }
    const baseUrl = dirUrl(options.baseUrl ?? new URL(".", import.meta.url), IS_NODE ? `file://${process.cwd()}/` : location.href);
    const manifest = options.manifest ?? await fetchJson(new URL("manifest.json", baseUrl));

    let pyodide = options.pyodide;
    if (!pyodide) {
        const indexURL = dirUrl(options.pyodideUrl ?? manifest.pyodide, baseUrl);
        const { loadPyodide } = await import(new URL("pyodide.mjs", indexURL).href);
        // In Node, Pyodide wants a path for its files; in a page, a URL.
        const index = IS_NODE && indexURL.protocol === "file:"
            ? decodeURIComponent(indexURL.pathname) : indexURL.href;
        pyodide = await loadPyodide({ indexURL: index });
    }
    const scriptOption = options.script !== undefined ? options.script : manifest.script ?? null;
    const buildFromScript = options.image === null && options.script != null;
    const [wheel, image, script] = await Promise.all([
        fetchBytes(new URL(options.wheelUrl ?? manifest.wheel, baseUrl)),
        options.image === null ? null
            : options.image instanceof Uint8Array ? options.image
            : fetchBytes(new URL(options.image ?? manifest.image, baseUrl)),
        scriptOption === null ? null
            : typeof scriptOption === "object" && "source" in scriptOption ? scriptOption.source
            : fetchBytes(new URL(scriptOption, baseUrl)).then((b) => new TextDecoder().decode(b)),
    ]);
    // A pure-Python wheel is a zip: unpack it into site-packages, no micropip needed.
    const sitePackages = pyodide.runPython("import sysconfig; sysconfig.get_path('purelib')");
    pyodide.unpackArchive(wheel, "wheel", { extractDir: sitePackages });

    const pending = new Map(); // tag -> v86's reply callback, for replies Python defers
    const deliver = (frame) => {
        const tag = frame[5] | (frame[6] << 8);
        const reply = pending.get(tag);
        if (reply) {
            pending.delete(tag);
            reply(frame);
        }
    };
    const glue = pyodide.pyimport("pyninep_browser.browser");
    // undefined, not null: Python's None
    const page = glue.PageServer(image ?? undefined, deliver, script ?? undefined, buildFromScript);
    glue.destroy();
    const handle = page.handle;
    const handleSharedProxy = page.handle_shared;
    const handleShared = directCall(pyodide, handleSharedProxy) ?? handleSharedProxy;

    // Views of the two Python buffers frames cross through. Growing wasm memory detaches views,
    // so they are taken again whenever that has happened.
    let requestBuf = null, replyBuf = null;
    const views = () => {
        if (!requestBuf || requestBuf.data.byteLength === 0) {
            requestBuf?.release();
            replyBuf?.release();
            const req = page.request_buffer, rep = page.reply_buffer;
            requestBuf = req.getBuffer("u8");
            replyBuf = rep.getBuffer("u8");
            req.destroy();
            rep.destroy();
        }
    };

    const reported = new Set();
    const onError = options.onError ?? ((error, type) => {
        const key = `${type}:${error?.message}`;
        if (!reported.has(key)) {
            reported.add(key);
            console.error(`pyninep: 9P request type ${type} failed in Python; the guest got EIO`, error);
        }
    });

    function handle9p(reqBuf, reply) {
        const tag = reqBuf.length >= 7 ? reqBuf[5] | (reqBuf[6] << 8) : 0xffff;
        let frame;
        try {
            views();
            const size = reqBuf.length >= 7 ? u32(reqBuf) : 0;
            if (size >= 7 && size <= reqBuf.length && size <= requestBuf.data.length) {
                requestBuf.data.set(size === reqBuf.length ? reqBuf : reqBuf.subarray(0, size));
                handleShared();
                views(); // answering may have grown wasm memory
                const n = u32(replyBuf.data);
                if (n !== 0) frame = replyBuf.data.slice(0, n); // 0: deferred
            } else { // a malformed or oversized frame: the general path answers it
                const result = handle(reqBuf);
                if (result != null) frame = toBytes(result); // null/undefined: deferred
            }
        } catch (error) {
            onError(error, reqBuf[4]);
            reply(lerror(tag, EIO));
            return;
        }
        if (frame === undefined) {
            pending.set(tag, reply); // deferred: Python calls deliver() later
            return;
        }
        reply(frame);
    }

    function toBytes(proxy) {
        const out = proxy.toJs();
        proxy.destroy();
        return out;
    }

    return {
        handle9p,
        pyodide,
        crossing: handleShared === handleSharedProxy ? "pyproxy" : "direct",
        saveState: () => toBytes(page.save_state()),
        restoreState(bytes) {
            pending.clear();
            page.restore_state(bytes);
        },
        readFile: (path) => toBytes(page.read_file(path)),
        writeFile(path, bytes) {
            page.write_file(path, typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes);
        },
        exportTar: (path = "/") => toBytes(page.export_tar(path)),
        importTar: (bytes, dir = "/") => page.import_tar(bytes, dir),
        listDir: (path) => JSON.parse(page.list_dir(path)).map(
            ([name, kind, size, mtime]) => ({ name, kind, size, mtime })),
        mkdir: (path) => page.make_dir(path),
        remove: (path) => page.remove_tree(path),
        close() {
            requestBuf?.release();
            replyBuf?.release();
            handle.destroy();
            handleSharedProxy.destroy();
            page.destroy();
        },
    };
}

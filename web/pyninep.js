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
 *   onError   called with (error, requestType) when a request fails inside Python; the guest
 *             gets Rlerror EIO for it. Default: console.error (once per distinct message).
 *
 * PyninepServer:
 *   handle9p(reqBuf, reply)  pass as v86's filesystem.handle9p (bound: works detached)
 *   saveState() → Uint8Array  the filesystem and the 9P session (take it with v86's save_state)
 *   restoreState(bytes)       the inverse, for v86's restore_state
 *   readFile(path) → Uint8Array, writeFile(path, bytes)   files of the served tree
 *   pyodide                   the Pyodide instance
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
    const [wheel, image] = await Promise.all([
        fetchBytes(new URL(options.wheelUrl ?? manifest.wheel, baseUrl)),
        options.image === null ? null
            : options.image instanceof Uint8Array ? options.image
            : fetchBytes(new URL(options.image ?? manifest.image, baseUrl)),
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
    const page = glue.PageServer(image ?? undefined, deliver); // undefined, not null: Python's None
    glue.destroy();
    const handle = page.handle;
    const handleShared = page.handle_shared;

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
            if (reqBuf.length <= requestBuf.data.length) {
                requestBuf.data.set(reqBuf);
                const n = handleShared(reqBuf.length);
                if (n >= 0) {
                    views(); // answering may have grown wasm memory
                    frame = replyBuf.data.slice(0, n);
                }
            } else { // larger than any frame should be: the slow path still answers it
                const result = handle(reqBuf);
                if (result !== undefined && result !== null) {
                    frame = result.toJs();
                    result.destroy();
                }
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
        saveState: () => toBytes(page.save_state()),
        restoreState(bytes) {
            pending.clear();
            page.restore_state(bytes);
        },
        readFile: (path) => toBytes(page.read_file(path)),
        writeFile(path, bytes) {
            page.write_file(path, typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes);
        },
        close() {
            requestBuf?.release();
            replyBuf?.release();
            handle.destroy();
            handleShared.destroy();
            page.destroy();
        },
    };
}

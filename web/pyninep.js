/**
 * pyninep.js — the page's 9P2000.L server: Python (pyninep_browser) running in Pyodide.
 *
 *   import { createServer, saveMachine, restoreMachine } from "./pyninep.js";
 *   const server = await createServer({ storage: "indexeddb:home" });   // or "memory"
 *   const emulator = new V86({ ..., filesystem: { handle9p: server.handle9p } });
 *
 * createServer(options) → Promise<PyninepServer>. Options (all optional):
 *   storage   "memory" (default: nothing survives the page) or "indexeddb:NAME": the filesystem
 *             lives in IndexedDB database NAME (created from `image` the first time). Only one
 *             page at a time serves a database (Web Locks): a second gets an Error saying so.
 *   writeBehindMs  IndexedDB: changes are committed at most this long after they are made
 *             (default 1000); fsync, writeFile and flush() commit at once, durably.
 *   chunkCacheBytes  IndexedDB: file data kept in memory (default 64 MiB); the rest loads on use.
 *   quota     IndexedDB: bytes the filesystem may assume it has at most (statfs and ENOSPC come
 *             from min(this, navigator.storage.estimate()'s quota) minus what is used).
 *   persist   IndexedDB: ask navigator.storage.persist() (default true); see server.persisted.
 *   baseUrl   where the built site lives (manifest.json, pyodide/, wheels/, images/);
 *             default: the directory of this module.
 *   manifest  the manifest object itself, instead of fetching baseUrl + "manifest.json".
 *   pyodide   an already loaded Pyodide instance to reuse (our wheel is installed into it).
 *   pyodideUrl  directory URL of Pyodide's files (default: manifest.pyodide).
 *   wheelUrl  URL of the pyninep_browser wheel (default: manifest.wheel).
 *   image     the filesystem to start from: a URL string, a Uint8Array, or null for an empty
 *             filesystem (default: manifest.image, the default guest root). With IndexedDB
 *             storage it seeds a new database only; an existing one is opened as it is.
 *   script    an authoring script (Python) run in Pyodide at start-up: a URL, or { source: "…" }.
 *             Its module-level live_file/live_dir declarations attach to the image's live files
 *             (and to a restored state's) by name. Given here with image: null, its build(tree)
 *             authors the whole tree (a site ships a .py file instead of an image; a database that
 *             already holds a tree keeps it). Default: the manifest's script (images/default.py:
 *             /py/run…), declarations only; null for none.
 *   requires  URL of the index.json of the Python packages the script needs (written by
 *             `python -m pyninep_browser image requires` / build.sh's fetch_requires from the
 *             script's REQUIRES), or null for none. Default: manifest.requires, when there is one.
 *             After Python starts and before the script runs, micropip (from that directory: the
 *             one wheel pyodide-lock.json names) installs the listed wheels from the site, with
 *             deps=False: they were resolved at build time, and no package index is contacted, so
 *             it works offline once the files are cached. Each file is checked against the
 *             index's sha256 (where crypto.subtle exists: secure contexts and Node). A failure
 *             rejects createServer with one line naming the file or the package.
 *   basefs, baseurl  boot a v86 fs2json base image (v86's own two options, same meanings):
 *             basefs is the fs.json (a URL, or {url, size}), baseurl the directory of its content
 *             files. The tree starts as basefs's (with IndexedDB: a new database only) and each
 *             file's bytes are fetched on its first read, in HTTP ranges of at most 1 MiB (whole
 *             where compressed or where the host ignores ranges), checked, and kept in the
 *             storage: fetched at most once per database. Writes, renames, chmods and unlinks
 *             change only our storage (copy on write). baseurl alone serves an image made by
 *             `image import-fs2json` (its `image` option) from that content directory. Default:
 *             the manifest's baseurl (a site built on the Debian base: debian/base/).
 *   server    "ws://HOST:PORT/" of a `python -m pyninep_browser serve --ws` server (docs/serve.md):
 *             server mode. The files live there; Python does not load; the result has the same
 *             file calls (readFile, writeFile, listDir, mkdir, remove), `handle9p` (a shim over our
 *             own socket) and `proxyUrl` (for v86's filesystem.proxy_url), both with a session id
 *             the server resumes after a dropped socket (pyninep-remote.js). `session`: resume
 *             that one instead of a new random id.
 *   onError   called with (error, requestType) when a request fails inside Python; the guest
 *             gets Rlerror EIO for it. Default: console.error (once per distinct message).
 *   onOutsideChange  called when the files change other than by the guest's own 9P requests:
 *             the page's calls (writeFile, importTar, mkdir, remove) and what a live file's or
 *             live directory's Python changes. (restoreState and restoreSession do not call it:
 *             a machine restored with them is woken by its page, which drops the guest's caches
 *             then, as the demo page does; see restoreMachine.) A guest that caches
 *             (our kernel's cache=loose, the default mount: docs/guest.md) must drop its caches
 *             then; return a Promise that settles once it has (the demo page has its guest drop
 *             them over the second serial port). Never two calls at once: changes made during
 *             one bring one more call after it. The page's calls above resolve only after it.
 *
 * PyninepServer:
 *   handle9p(reqBuf, reply)  pass as v86's filesystem.handle9p (bound: works detached)
 *   readFile(path) → Promise<Uint8Array>   a file of the served tree (rejects with .errno set)
 *   writeFile(path, bytes|string) → Promise  resolves once the file is committed (durably)
 *             and the guest was told (onOutsideChange)
 *   flush() → Promise         resolves once everything changed so far is committed, durably
 *   saveState({stored}) → Promise<Uint8Array>  the filesystem and the 9P session (take it with
 *             v86's save_state, or use saveMachine). Complete and portable by default; with
 *             IndexedDB, {stored: true} is small: it builds on the database after a durable
 *             commit of everything, and restores only on that database, unchanged since.
 *   restoreState(bytes, {commit}) → Promise  the inverse (with IndexedDB: the database is
 *             replaced by the state's filesystem in one durable commit; a refused state changes
 *             nothing). commit "later": resolve once the server is replaced, the commit following
 *             at flush() (or a guest's fsync), else write-behind after 10 s
 *   saveSession() → Promise<Uint8Array>  the 9P session alone (fids, locks; no file), after a
 *             durable commit: what a machine saved over IndexedDB needs, a few KiB
 *   restoreSession(bytes) → Promise<{fids, stale}>  keep the files, put back a saved session
 *             (saveSession's, or a saveState state's) over them: fids re-bind to their files by
 *             inode number and identity; a gone file's fid is ESTALE. Rejects (error.foreign)
 *             for a session of another filesystem; nothing changes then.
 *   replyLatency()            {count, medianMs, maxMs}: deferred reply to the guest's next request
 *   storage, openReport       the storage option; what the open-time check repaired, and
 *             dataLoss ({status, message} when the browser had discarded a damaged database)
 *   persisted                 Promise<boolean>: navigator.storage.persist()'s answer
 *   inFlight()                9P requests whose reply is still to come
 *   attachEmulator(emulator)  deferred replies (IndexedDB reads, fsync) wake a halted guest at
 *             once instead of at v86's next timer tick: call it after new V86(...)
 *   storageStats()            IndexedDB commits, chunk reads, the browser's estimate
 *   exportTar(path = "/") → Promise<Uint8Array>   the tree (or a subtree) as a pax tar
 *   importTar(bytes, dir = "/") → Promise<number>  unpack a tar (any compression) into dir:
 *             resolves to the entries added, once committed
 *   listDir(path) → [{name, kind: "d"|"f"|"l"|"o", size, mtime (ms)}], mkdir(path) (with parents),
 *   remove(path) (a file, or a directory and all in it)   for a page's file browser (done when
 *             they return; the Promise they return settles once the guest was told, see
 *             onOutsideChange; with IndexedDB their changes are committed write-behind, or by flush())
 *   outsideSettled() → Promise  settles once the guest was told of every outside change so far
 *   baseProgress()            {fetched, bytes, pending, failed, error}: base files fetched so far
 *             (count, bytes), fetches under way, and failures with the last one's readable line
 *   basePiecesHeld() → ["b:NAME:PIECE", ...]   the base pieces in memory (what was read)
 *   exportBasePieces(keys) → Uint8Array   those pieces as one blob; warmBase(bytes) → Number
 *             takes such a blob in (each piece checked like a fetched one; stored at the next
 *             flush()): saveMachine's warm option ships the pieces a restored guest reads first
 *   changes() → Number        how many changes the files have seen: it grows with every change,
 *             the guest's (over 9P) or the page's (writeFile, mkdir, remove, importTar...), and
 *             never on a read. Cheap (one call into Python): poll it and look again (listDir)
 *             only when it moved. Compare with !==: restoreState replaces the filesystem, whose
 *             count starts anew.
 *   pyodide                   the Pyodide instance
 *   requires                  null, or what the requires option installed: {packages: ["NAME
 *             VERSION", ...], bytes, ms} (ms: micropip's import and install, after the files arrived)
 *   crossing                  "direct" (CPython's C API, the fast path) or "pyproxy" (fallback)
 *   close() → Promise         commit what is left, release the database and the Python objects
 * (readFile and writeFile return Promises since IndexedDB storage: a file's data may have to load
 * first, and a write is done when it is committed. With "memory" they settle at once.)
 *
 * saveMachine(emulator, server, {compress, session, stored}) → Promise<Uint8Array>: the v86
 *   emulator and this server as one checked, versioned blob, taken with the emulator stopped and
 *   no 9P request in flight (it resumes afterwards). compress: gzip (2.5x smaller, seconds
 *   slower; default false). session: the server part is saveSession()'s (no file: for a machine
 *   kept beside its IndexedDB database, restored over whatever the database holds by then).
 *   stored: the server part as saveState({stored: true}).
 * restoreMachine(blob, {emulator, server, run, files, commit}) → Promise<{emulator, server, info,
 *   report, took}>: the guest back to the saved moment. files: "state" (the blob's files replace the
 *   server's: restoreState, with its commit option) or "server" (the server's files stay, the blob's
 *   session is put back over them: restoreSession); default "server" for a session blob, else
 *   "state". took: {server_ms, v86_ms}, the two halves' times. A truncated,
 *   damaged, foreign or newer blob, or a session of another filesystem, is refused with an Error
 *   before anything changes. `emulator` must have fired "emulator-loaded"; `server` may be a
 *   fresh createServer(). A guest restored over files that changed since may hold cached pages
 *   of them: drop its caches (the demo page does, over its second serial port).
 * readMachine(blob) → Promise<{v86State, serverState, info}>: the checked parts, e.g. to start
 *   a new V86({initial_state: {buffer: v86State}}) after server.restoreState(serverState).
 */

import { openIndexedDB, persistStorage } from "./pyninep-idb.js";
export { saveMachine, restoreMachine, readMachine, MACHINE_FORMAT } from "./pyninep-machine.js";

/**
 * createServer's options (see above).
 * @typedef {object} ServerOptions
 * @property {string} [storage]
 * @property {number} [writeBehindMs]
 * @property {number} [chunkCacheBytes]
 * @property {number} [quota]
 * @property {boolean} [persist]
 * @property {string | URL} [baseUrl]
 * @property {Manifest | null} [manifest]
 * @property {Pyodide | Promise<Pyodide | undefined>} [pyodide]  a loaded Pyodide, or one loading (the
 *   store opens and the wheel arrives meanwhile); undefined: Pyodide is loaded here
 * @property {string | URL} [pyodideUrl]
 * @property {string | URL} [wheelUrl]
 * @property {string | Uint8Array | null} [image]
 * @property {string | {source: string} | null} [script]
 * @property {string | URL | null} [requires]
 * @property {string | URL | {url: string | URL, size?: number}} [basefs]
 * @property {string | URL} [baseurl]
 * @property {(error: any, requestType: number | string) => void} [onError]
 * @property {() => (Promise<void> | void)} [onOutsideChange]  see above
 * @property {string} [server]  ws://HOST:PORT/ of a `serve --ws` server: server mode (pyninep-remote.js)
 * @property {string} [session]  server mode: the session id to resume (default: a new random one)
 */
/** @typedef {Awaited<ReturnType<typeof startServer>>} PyninepServer */
/** @typedef {{name: string, kind: "d" | "f" | "l" | "o", size: number, mtime: number}} DirEntry */
/** @typedef {import("./pyninep-idb.js").IndexedDBStore} IndexedDBStore */

const IS_NODE = typeof process !== "undefined" && !!process.versions?.node && typeof window === "undefined";
const EIO = 5;
const BASE_FETCH_TIMEOUT_MS = 120_000; // one base content file or range (at most 1 MiB unless whole)

/** @param {URL} url */
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

/**
 * Bytes start..end-1 of a base content file (end < 0: all of it), for Python's JsSource: calls
 * back (error, bytes, whole) where whole is true when the bytes are the entire file (the host
 * answered a range request with the whole file, as hosts without range support do).
 * @param {string} url @param {number} start @param {number} end
 * @param {(error: string | null, data: Uint8Array | null, whole: boolean) => void} done */
function fetchBase(url, start, end, done) {
    (async () => {
        const u = new URL(url);
        if (u.protocol === "file:" && IS_NODE) { // a local base directory (Node): read, then cut
            const all = await fetchBytes(u);
            return end < 0 ? done(null, all, true) : done(null, all.subarray(start, end), false);
        }
        const headers = end >= 0 ? { Range: `bytes=${start}-${end - 1}` } : undefined;
        // A stalled host must not hold the guest's read for ever: it gets EIO, and a later read
        // tries again.
        const signal = typeof AbortSignal.timeout === "function" ? AbortSignal.timeout(BASE_FETCH_TIMEOUT_MS) : undefined;
        const response = await fetch(u, { headers, signal });
        if (response.status === 206 && end >= 0) {
            const range = /bytes (\d+)-/.exec(response.headers.get("Content-Range") ?? "");
            if (range && Number(range[1]) !== start) return done(`${u.href}: the host answered another range`, null, false);
            return done(null, new Uint8Array(await response.arrayBuffer()), false);
        }
        if (response.status === 200) return done(null, new Uint8Array(await response.arrayBuffer()), true);
        done(`${u.href}: HTTP ${response.status}`, null, false);
    })().catch((error) => done(`${url}: ${error?.message ?? error}`, null, false));
}

/** @param {URL} url */
async function fetchJson(url) {
    return JSON.parse(new TextDecoder().decode(await fetchBytes(url)));
}

/**
 * The index written by `image requires` (pyninep_browser/requires.py) and the files it lists,
 * fetched side by side and checked against its sha256.
 * @typedef {{file: string, sha256: string, size?: number, name?: string, version?: string}} RequiresEntry
 * @typedef {{format: number, python: string, requires: string[], micropip: RequiresEntry, wheels: RequiresEntry[]}} RequiresIndex
 * @param {URL} indexUrl
 * @returns {Promise<{index: RequiresIndex, micropip: Uint8Array, wheels: {entry: RequiresEntry, bytes: Uint8Array}[]}>}
 */
async function fetchRequires(indexUrl) {
    /** @type {RequiresIndex} */
    let index;
    try {
        index = await fetchJson(indexUrl);
    } catch (/** @type {any} */ error) {
        throw new Error(`pyninep: the script's packages cannot be installed: ${indexUrl.href}: ${error.message}`);
    }
    if (index?.format !== 1 || !index.micropip || !Array.isArray(index.wheels)) {
        throw new Error(`pyninep: ${indexUrl.href} is not a requires index (format 1: image requires writes it)`);
    }
    const get = async (/** @type {RequiresEntry} */ entry) => {
        const url = new URL(entry.file, indexUrl);
        const bytes = await fetchBytes(url);
        if (globalThis.crypto?.subtle && entry.sha256) {
            const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
            const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
            if (hex !== entry.sha256) throw new Error(`pyninep: ${url.href} is damaged (its sha256 is not the index's)`);
        }
        return bytes;
    };
    const [micropip, ...wheels] = await Promise.all([index.micropip, ...index.wheels].map(get));
    return { index, micropip, wheels: wheels.map((bytes, i) => ({ entry: index.wheels[i], bytes })) };
}

/**
 * Install fetchRequires's wheels with micropip (itself unpacked from the site, like our wheel),
 * deps=False, from Pyodide's in-memory filesystem: no package index is contacted.
 * @param {Pyodide} pyodide @param {Awaited<ReturnType<typeof fetchRequires>>} fetched
 * @param {string} sitePackages */
async function installRequires(pyodide, fetched, sitePackages) {
    const started = performance.now();
    const { index, micropip, wheels } = fetched;
    const packages = index.wheels.map((w) => `${w.name ?? w.file} ${w.version ?? ""}`.trim());
    const bytes = [micropip, ...wheels.map((w) => w.bytes)].reduce((n, b) => n + b.length, 0);
    if (wheels.length) {
        const have = pyodide.runPython("import importlib.util; importlib.util.find_spec('micropip') is not None");
        if (!have) pyodide.unpackArchive(micropip, "wheel", { extractDir: sitePackages });
        const dir = "/tmp/pyninep-requires";
        pyodide.FS.mkdirTree(dir);
        const paths = wheels.map(({ entry, bytes }) => {
            pyodide.FS.writeFile(`${dir}/${entry.file}`, bytes);
            return `emfs:${dir}/${entry.file}`;
        });
        const mod = pyodide.pyimport("micropip");
        const list = pyodide.toPy(paths);
        try {
            await mod.install.callKwargs(list, { deps: false });
        } catch (/** @type {any} */ error) {
            const lines = String(error?.message ?? error).trim().split("\n");
            throw new Error(`pyninep: installing the script's packages (${packages.join(", ")}) failed: ${lines[lines.length - 1]}`);
        } finally {
            list.destroy();
            mod.destroy();
            for (const { entry } of wheels) pyodide.FS.unlink(`${dir}/${entry.file}`);
        }
    }
    return { packages, bytes, ms: Math.round(performance.now() - started) };
}

/** @param {string | URL} url @param {string} base */
function dirUrl(url, base) {
    const u = new URL(url, base);
    if (!u.pathname.endsWith("/")) u.pathname += "/";
    return u;
}

/** The little-endian u32 at the start of a frame: its size. */
const u32 = (/** @type {Uint8Array} */ b) => (b[0] | (b[1] << 8) | (b[2] << 16)) + b[3] * 0x1000000;

/** An Rlerror frame: size[4]=11 type[1]=7 tag[2] ecode[4].
 * @param {number} tag @param {number} ecode */
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
 * @param {Pyodide} pyodide @param {any} proxy  a PyProxy of a callable
 * @returns {(() => void) | null}
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

/** @param {ServerOptions} [options] */
export async function createServer(options = {}) {
    if (options.server) {
        // Server mode: the files live on `python -m pyninep_browser serve`; Python does not load.
        const { createRemoteServer } = await import("./pyninep-remote.js");
        return /** @type {PyninepServer} */ (/** @type {unknown} */ (await createRemoteServer({ server: options.server, session: options.session,
                                                                                        onOutsideChange: options.onOutsideChange })));
    }
    const storage = options.storage ?? "memory";
    const dbName = typeof storage === "string" && storage.startsWith("indexeddb:") ? storage.slice(10) : null;
    if (storage !== "memory" && !dbName) {
        throw new Error(`pyninep: storage ${JSON.stringify(storage)} is not supported `
            + '(use "memory" or "indexeddb:NAME")');
    }
    // The database first: a second tab on the same NAME fails here, before Pyodide is used
    // (a Pyodide still loading, options.pyodide as a promise, goes on meanwhile).
    if (options.pyodide instanceof Promise) options.pyodide.catch(() => {}); // reported where awaited
    const db = dbName ? await openIndexedDB(dbName, { quota: options.quota }) : null;
    if (db?.dataLoss) {
        console.error(`pyninep: the browser discarded IndexedDB database "${dbName}" as damaged `
            + `(${db.dataLoss.message || db.dataLoss.status}); its files are gone and it starts anew`);
    }
    try {
        return await startServer(options, storage, db);
    } catch (error) {
        db?.close();
        throw error;
    }
}

/** @param {ServerOptions} options @param {string} storage @param {IndexedDBStore | null} db */
async function startServer(options, storage, db) {
    const baseUrl = dirUrl(options.baseUrl ?? new URL(".", import.meta.url), IS_NODE ? `file://${process?.cwd()}/` : location.href);
    const manifest = options.manifest ?? await fetchJson(new URL("manifest.json", baseUrl));

    const loadHere = async () => {
        const indexURL = dirUrl(options.pyodideUrl ?? manifest.pyodide, baseUrl.href);
        const { loadPyodide } = await import(new URL("pyodide.mjs", indexURL).href);
        // In Node, Pyodide wants a path for its files; in a page, a URL.
        const index = IS_NODE && indexURL.protocol === "file:"
            ? decodeURIComponent(indexURL.pathname) : indexURL.href;
        return /** @type {Promise<Pyodide>} */ (loadPyodide({ indexURL: index }));
    };
    // Pyodide loads while the files below arrive (a caller's may be under way already).
    const pyodideP = Promise.resolve(options.pyodide).then((p) => p ?? loadHere());
    pyodideP.catch(() => {}); // reported where awaited
    const pageUrl = IS_NODE ? `file://${process?.cwd()}/` : location.href;
    const basefs = options.basefs == null ? null
        : new URL(typeof options.basefs === "object" && "url" in options.basefs ? options.basefs.url : options.basefs, pageUrl);
    if (basefs && !options.baseurl) throw new Error("pyninep: basefs needs baseurl (the directory of its content files)");
    // The site's own base (manifest.baseurl: the Debian userland's content files, beside the
    // site) serves its image and any state restored from it; a basefs brings its own.
    const baseurl = options.baseurl ? dirUrl(options.baseurl, pageUrl)
        : !basefs && manifest.baseurl ? dirUrl(manifest.baseurl, baseUrl.href) : null;
    const scriptOption = options.script !== undefined ? options.script : manifest.script ?? null;
    const buildFromScript = options.image === null && options.script != null;
    const heldDb = !!db && db.meta.length > 0;
    const requiresOption = options.requires !== undefined ? options.requires : manifest.requires ?? null;
    const [wheel, image, script, baseTree, requires, pyodide] = await Promise.all([
        fetchBytes(new URL(options.wheelUrl ?? manifest.wheel, baseUrl)),
        options.image === null || basefs ? null
            // A database that already holds a filesystem starts from it: the image seeds a new one.
            : db && db.meta.length > 0 ? null
            : options.image instanceof Uint8Array ? options.image
            : fetchBytes(new URL(options.image ?? manifest.image, baseUrl)),
        scriptOption === null ? null
            : typeof scriptOption === "object" && "source" in scriptOption ? scriptOption.source
            : fetchBytes(new URL(scriptOption, baseUrl)).then((b) => new TextDecoder().decode(b)),
        // A database that already holds a tree keeps it: the fs.json seeds a new one only.
        basefs && !heldDb ? fetchBytes(basefs) : null,
        requiresOption == null ? null : fetchRequires(new URL(requiresOption, baseUrl)),
        pyodideP,
    ]);
    // A pure-Python wheel is a zip: unpack it into site-packages, no micropip needed.
    const sitePackages = pyodide.runPython("import sysconfig; sysconfig.get_path('purelib')");
    pyodide.unpackArchive(wheel, "wheel", { extractDir: sitePackages });
    // The script's packages, before the script runs (PageServer runs it).
    const installed = requires ? await installRequires(pyodide, requires, sitePackages) : null;

    /** @type {Map<number, (frame: Uint8Array) => void>} */
    const pending = new Map(); // tag -> v86's reply callback, for replies Python defers
    /** @type {Emulator | null} */
    let emulator = null; // set by attachEmulator: woken when a deferred reply arrives
    // How soon the guest acts on a deferred reply: from its delivery to the guest's next
    // request (a halted guest that is not woken waits for v86's next timer tick).
    let deliveredAt = 0;
    const latency = { count: 0, samples: /** @type {number[]} */ ([]) };
    const deliver = (/** @type {Uint8Array} */ frame) => {
        const tag = frame[5] | (frame[6] << 8);
        const reply = pending.get(tag);
        if (reply) {
            pending.delete(tag);
            const answer = () => {
                reply(frame);
                deliveredAt = performance.now();
                wake();
            };
            // (an async live function may have changed files: the guest drops its caches first)
            if (telling) settled.then(answer);
            else answer();
        }
    };
    // A guest waiting for a deferred reply (a chunk load, an fsync's commit) has usually halted
    // its CPU, and v86 then sleeps until its next timer event, which can be tens of ms away:
    // the reply would sit in the virtqueue until then. Start v86's next tick now instead (v86
    // ignores the stale timer when it fires).
    const wake = () => {
        const v = emulator?.v86;
        if (v && v.idle && v.running && !v.stopping && typeof v.next_tick === "function") v.next_tick(0);
    };
    const glue = pyodide.pyimport("pyninep_browser.browser");
    // Write-behind: the timer ticks every `interval` ms and Python commits changes that are
    // `writeback_ms` old, so a change is committed at most writeBehindMs after it was made.
    const bound = options.writeBehindMs ?? 1000;
    const interval = Math.max(5, Math.min(100, bound / 4));
    const config = pyodide.toPy({
        writeback_ms: Math.max(0, Math.floor(bound - 2 * interval)),
        chunk_cache_bytes: options.chunkCacheBytes ?? null,
    });
    // undefined, not null: Python's None
    const source = baseurl ? glue.JsSource(fetchBase, baseurl.href) : undefined;
    // Outside changes (see onOutsideChange): at most one call at a time, one more after it
    // when files changed meanwhile; `settled` is the Promise the page's calls wait for.
    const onOutside = options.onOutsideChange;
    /** @type {Promise<void>} */
    let settled = Promise.resolve();
    let telling = false, again = false, outsideCount = 0;
    const outsideChanged = () => {
        if (!onOutside) return;
        outsideCount += 1;
        if (telling) { again = true; return; }
        telling = true;
        settled = (async () => {
            do {
                again = false;
                try {
                    await onOutside();
                } catch (error) {
                    onError(error, "onOutsideChange");
                }
            } while (again);
            telling = false;
        })();
    };
    const page = glue.PageServer(image ?? undefined, deliver, db ?? undefined, config,
                                 script ?? undefined, buildFromScript, baseTree ?? undefined, source,
                                 outsideChanged);
    config.destroy();
    source?.destroy();
    glue.destroy();
    const handle = page.handle;
    const changesProxy = page.changes;
    const handleSharedProxy = page.handle_shared;
    const handleShared = directCall(pyodide, handleSharedProxy) ?? handleSharedProxy;

    // Views of the two Python buffers frames cross through. Growing wasm memory detaches views,
    // so they are taken again whenever that has happened.
    /** @type {any} */
    let requestBuf = null;
    /** @type {any} */
    let replyBuf = null; // (PyBuffer views: .data is a Uint8Array over wasm memory)
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
    const onError = options.onError ?? ((/** @type {any} */ error, /** @type {number | string} */ type) => {
        const key = `${type}:${error?.message}`;
        if (!reported.has(key)) {
            reported.add(key);
            console.error(`pyninep: 9P request type ${type} failed in Python; the guest got EIO`, error);
        }
    });

    /** @type {Handle9p} */
    function handle9p(reqBuf, reply) {
        if (deliveredAt) {
            latency.count += 1;
            latency.samples.push(performance.now() - deliveredAt);
            if (latency.samples.length > 256) latency.samples.shift();
            deliveredAt = 0;
        }
        const tag = reqBuf.length >= 7 ? reqBuf[5] | (reqBuf[6] << 8) : 0xffff;
        const told = outsideCount;
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
        if (outsideCount !== told) { // a live file's Python changed files: the guest drops first
            const answer = frame;
            settled.then(() => { reply(answer); wake(); });
            return;
        }
        reply(frame);
    }

    /** @param {any} proxy  a PyProxy of bytes: its contents, and the proxy destroyed */
    function toBytes(proxy) {
        const out = proxy.toJs();
        proxy.destroy();
        return out;
    }

    // Write-behind (relaxed commits) and answers for requests a restored state left open.
    /** @type {ReturnType<typeof setInterval> | undefined} */
    let ticker;
    if (db) {
        ticker = setInterval(() => {
            try {
                page.tick(Date.now());
            } catch (error) {
                onError(error, "tick");
            }
        }, interval);
        /** @type {any} */ (ticker).unref?.(); // Node: a pending tick does not keep the process alive
    }
    const persisted = db && (options.persist ?? true) ? persistStorage() : Promise.resolve(false);

    /** Run a Python operation that answers through done(result, errno) as a Promise.
     * @param {string} method @param {...any} args @returns {Promise<any>} */
    const pyCall = (method, ...args) => new Promise((resolve, reject) => {
        let answered = false;
        const done = (/** @type {any} */ result, /** @type {number} */ errno) => {
            if (answered) return;
            answered = true;
            if (errno) {
                const error = Object.assign(new Error(`pyninep: ${method} failed: ${errnoName(errno)}`), { errno });
                reject(error);
            } else {
                resolve(result?.toJs ? toBytes(result) : result);
            }
        };
        try {
            page[method](...args, done);
        } catch (error) {
            answered = true;
            reject(error);
        }
    });
    /** @type {Promise<void> | null} */
    let closed = null;

    return {
        handle9p,
        pyodide,
        storage,
        /** What the requires option installed: {packages, bytes, ms}, or null. */
        requires: installed,
        crossing: handleShared === handleSharedProxy ? "pyproxy" : "direct",
        /** What the open-time check found and repaired in a stored filesystem (null: nothing to
         *  check), and dataLoss: null, or {status, message} when the browser had discarded the
         *  database (it found it damaged) and the filesystem starts anew. */
        get openReport() {
            const r = page.open_report;
            const report = r?.toJs ? r.toJs({ dict_converter: Object.fromEntries }) : r ?? null;
            return report && { ...report, dataLoss: db?.dataLoss ?? null };
        },
        /** Resolves to whether the browser granted persistent storage (navigator.storage.persist()). */
        persisted,
        /** 9P requests whose reply is still to come (a chunk loading, an fsync waiting for its commit). */
        inFlight: () => pending.size,
        /** Milliseconds from a deferred reply's delivery to the guest's next request:
         *  {count, medianMs, maxMs} over the last 256 (attachEmulator keeps them small). */
        replyLatency() {
            const s = [...latency.samples].sort((a, b) => a - b);
            return { count: latency.count, medianMs: s.length ? s[s.length >> 1] : null, maxMs: s.length ? s[s.length - 1] : null };
        },
        /** Tell the server which v86 it serves, so a deferred reply wakes a halted guest at once
         *  (without it the reply waits for v86's next timer tick). saveMachine/restoreMachine
         *  call it too. */
        attachEmulator(/** @type {Emulator} */ v86) { emulator = v86; },
        /** Resolves to the whole server's state (a stored filesystem's data is loaded for it);
         *  {stored: true}: only what the database does not hold (see docs/storage.md). */
        /** @type {(opts?: {stored?: boolean}) => Promise<Uint8Array>} */
        saveState: (opts = {}) => pyCall("save_state_async", !!opts.stored),
        /** Resolves once the state is in place (and, for IndexedDB, committed; with
         *  {commit: "later"} at once, the commit following at the next flush() or fsync, else
         *  write-behind after 10 s). A state that is not intact rejects, and nothing changes. */
        async restoreState(/** @type {Uint8Array} */ bytes, /** @type {{commit?: "now" | "later"}} */ opts = {}) {
            // (parses everything before replacing anything)
            const done = pyCall("restore_state", bytes, opts.commit === "later");
            pending.clear();
            await done;
        },
        /** Resolves to the 9P session alone (fids, locks, deferred requests; no file), taken
         *  right after a durable commit of everything changed so far: a few KiB. */
        /** @type {() => Promise<Uint8Array>} */
        saveSession: () => pyCall("save_session_async"),
        /** Keep this server's files (the store is the truth) and put back a session saved by
         *  saveSession (or the session of a saveState state) over them. Each fid is re-bound to
         *  its file by inode number and identity; one whose file is gone answers ESTALE until the
         *  guest closes it, never another file's data. Resolves to {fids, stale}; rejects with
         *  error.foreign = true when the session was saved over another filesystem (another image,
         *  an older build's store), and for a damaged state; either way nothing changes. */
        async restoreSession(/** @type {Uint8Array} */ bytes) {
            try {
                /** @type {{fids: number, stale: number[]}} */
                const report = JSON.parse(await pyCall("restore_session", bytes));
                pending.clear();
                return report;
            } catch (/** @type {any} */ error) {
                if (error.errno === 116) {
                    error.foreign = true;
                    error.message = "pyninep: the saved session belongs to another filesystem";
                }
                throw error;
            }
        },
        /** @type {(path: string) => Promise<Uint8Array<ArrayBuffer>>} */
        readFile: (path) => pyCall("read_file_async", path),
        /** @type {(path: string, bytes: Uint8Array | string) => Promise<void>} */
        writeFile: async (path, bytes) => {
            await pyCall("write_file_async", path, typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes);
            await settled;
        },
        /** Resolves once everything changed so far is committed with durability "strict". */
        /** @type {() => Promise<void>} */
        flush: () => pyCall("flush"),
        /** Storage statistics: commits, chunk reads, the browser's estimate. */
        storageStats: () => db ? { ...db.stats, estimate: db.estimate() } : null,
        _storage: db, // internal (tests)
        /** @type {(path?: string) => Promise<Uint8Array<ArrayBuffer>>} */
        exportTar: (path = "/") => pyCall("export_tar_async", path),
        /** @type {(bytes: Uint8Array, dir?: string) => Promise<number>} */
        importTar: async (bytes, dir = "/") => {
            const entries = await pyCall("import_tar_async", bytes, dir);
            await settled;
            return entries;
        },
        /** @type {(path: string) => DirEntry[]} */
        listDir: (path) => JSON.parse(page.list_dir(path)).map(
            (/** @type {[string, DirEntry["kind"], number, number]} */ [name, kind, size, mtime]) => ({ name, kind, size, mtime })),
        /** @type {(path: string) => Promise<void>} */
        mkdir: (path) => { page.make_dir(path); return settled; },
        /** @type {(path: string) => Promise<void>} */
        remove: (path) => { page.remove_tree(path); return settled; },
        /** Settles once the guest was told of every outside change so far (onOutsideChange). */
        outsideSettled: () => settled,
        /** How many changes the files have seen, the guest's and the page's (see above). */
        changes: () => Number(changesProxy()),
        /** @type {() => {fetched: number, bytes: number, pending: number, failed: number, error: string}} */
        baseProgress: () => JSON.parse(page.base_progress()),
        /** The base pieces in memory ("b:NAME:PIECE" keys): what the guest has read of the base. */
        /** @type {() => string[]} */
        basePiecesHeld: () => JSON.parse(page.base_pieces_held()),
        /** @type {(keys: string[]) => Uint8Array} */
        exportBasePieces: (keys) => toBytes(page.export_base_pieces(JSON.stringify(keys))),
        /** @type {(bytes: Uint8Array) => number} */
        warmBase: (bytes) => Number(page.warm_base(bytes)),
        close() {
            if (closed) return closed;
            clearInterval(ticker);
            const finish = () => {
                requestBuf?.release();
                replyBuf?.release();
                handle.destroy();
                handleSharedProxy.destroy();
                changesProxy.destroy();
                page.close();
                page.destroy();
                db?.close();
            };
            // A stored filesystem commits what is left before it lets go of the database.
            closed = db ? pyCall("flush").finally(finish) : Promise.resolve(finish());
            return closed;
        },
    };
}

/** @type {Record<number, string>} */
const ERRNO_NAMES = { 5: "EIO", 2: "ENOENT", 28: "ENOSPC", 21: "EISDIR", 20: "ENOTDIR", 13: "EACCES", 122: "EDQUOT" };
const errnoName = (/** @type {number} */ n) => `${ERRNO_NAMES[n] ?? "errno"} (${n})`;

/**
 * pyninep-idb.js — the page side of the IndexedDB store (used by pyninep.js; not a public API).
 *
 * One IndexedDB database per served filesystem, two object stores with string keys and byte values:
 *   "meta"    inodes, directory entries, xattrs, the superblock (what the records mean is
 *             pyninep_browser.fs's business; this layer never looks inside them)
 *   "chunks"  file data, one record per chunk
 * Every commit is ONE readwrite transaction over both stores, so what belongs together (a rename,
 * a create with its directory entry, a file's data with its size) lands together or not at all.
 * Durable commits (the ones that answer an fsync, writeFile or flush) ask for
 * {durability: "strict"}: Chromium then flushes to disk before "complete" (checked with SIGKILL,
 * see DESIGN.md); write-behind commits may use "relaxed".
 *
 * A Web Lock named "pyninep:indexeddb:NAME" is held for as long as the database is open, so at
 * most one page (tab, window, worker) serves a database; a second opener gets a clear Error and
 * touches nothing.
 */

const ENOSPC = 28;
const EIO = 5;

/** @typedef {Awaited<ReturnType<typeof openIndexedDB>>} IndexedDBStore */
/** @typedef {[string, Uint8Array][]} Pairs  records as [key, value] */

/** An Error carrying the errno that the request needing this operation should get. */
export class StorageError extends Error {
    /** @param {string} message @param {number} errno @param {unknown} [cause] */
    constructor(message, errno, cause) {
        super(message, { cause });
        this.name = "StorageError";
        this.errno = errno;
    }
}

function errnoOf(/** @type {any} */ error) {
    // Quota is the only failure the guest can do something about; everything else (the browser
    // shutting down, a closed connection, a damaged database) is an I/O error.
    return error?.name === "QuotaExceededError" ? ENOSPC : EIO;
}

/**
 * @template T
 * @param {IDBRequest<T>} req
 * @returns {Promise<T>}
 */
const request = (req) => new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
});

const asBytes = (/** @type {unknown} */ value) => value === undefined ? undefined
    : value instanceof Uint8Array ? value
    : value instanceof ArrayBuffer ? new Uint8Array(value)
    : ArrayBuffer.isView(value) ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
    : undefined; // anything else is not ours: treat as absent, the open-time check reports it

/**
 * Take the Web Lock NAME without queueing behind its holder, but give a holder that is going
 * away (a tab just closed or reloaded lets go a moment after the new page asks) up to `graceMs`.
 * Resolves to a function that releases the lock, or null when someone else keeps it.
 * @param {LockManager} locks @param {string} name
 * @returns {Promise<(() => void) | null>}
 */
export async function takeWebLock(locks, name, graceMs = 3000) {
    /** @type {() => void} */
    let release = () => {};
    /** @type {Promise<void>} */
    const held = new Promise((resolve) => { release = resolve; });
    const attempt = () => /** @type {Promise<boolean>} */ (new Promise((resolve, reject) => {
        locks.request(name, { ifAvailable: true }, (lock) => {
            resolve(lock !== null);
            return lock === null ? undefined : held; // held until release()
        }).catch(reject);
    }));
    const deadline = Date.now() + graceMs;
    let got = await attempt();
    while (!got && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        got = await attempt();
    }
    return got ? release : null;
}

/** The Web Lock for database NAME: a release function, or the "already served" Error. */
async function takeLock(/** @type {string} */ name) {
    const locks = globalThis.navigator?.locks;
    if (!locks) {
        throw new Error("pyninep: this environment has no Web Locks API (navigator.locks), "
            + "which IndexedDB storage needs to make sure only one page serves a database");
    }
    const release = await takeWebLock(locks, `pyninep:indexeddb:${name}`);
    if (!release) {
        throw new Error(`pyninep: IndexedDB database "${name}" is already being served by another `
            + "tab or window of this site; close it there first (nothing was changed)");
    }
    return release;
}

/**
 * Open (or create) the database NAME. Resolves to the store object pyninep_browser.store.indexeddb
 * wraps; "meta" (and the list of chunk keys, for the open-time check) is already loaded.
 * options: quota (bytes: report at most this much to statfs, below the browser's own quota).
 * @param {string} name @param {{quota?: number}} [options]
 */
export async function openIndexedDB(name, options = {}) {
    const idb = globalThis.indexedDB;
    if (!idb) {
        throw new Error(`pyninep: storage "indexeddb:${name}" needs IndexedDB, which this environment `
            + "does not have (in Node, use storage: \"memory\")");
    }
    if (!name) throw new Error('pyninep: storage "indexeddb:NAME" needs a database name');
    const release = await takeLock(name);
    /** @type {IDBDatabase | undefined} */
    let db;
    /** @type {{status: string, message: string} | null} */
    let dataLoss = null;
    try {
        const open = idb.open(name, 1);
        open.onupgradeneeded = (/** @type {IDBVersionChangeEvent & {dataLoss?: string, dataLossMessage?: string}} */ event) => {
            // Chromium reports here when it found the database damaged at open and deleted it
            // ("total" data loss, e.g. LevelDB's "checksum mismatch" after the browser was killed
            // mid-write): the database is new and empty. The caller must say so, never serve the
            // empty database as if it were the user's files.
            if (event.dataLoss && event.dataLoss !== "none") {
                dataLoss = { status: String(event.dataLoss), message: String(event.dataLossMessage ?? "") };
            }
            const d = open.result;
            // Version 1 of the IndexedDB layout: two stores, out-of-line string keys. The
            // filesystem's own format version lives in "meta" and is checked by Python.
            if (!d.objectStoreNames.contains("meta")) d.createObjectStore("meta");
            if (!d.objectStoreNames.contains("chunks")) d.createObjectStore("chunks");
        };
        open.onblocked = () => {}; // only an older-version connection can block; there is none
        db = await request(open);
        if (!db.objectStoreNames.contains("meta") || !db.objectStoreNames.contains("chunks")) {
            throw new Error(`pyninep: IndexedDB database "${name}" exists but was not made by `
                + "pyninep (no \"meta\"/\"chunks\" stores); refusing to use it");
        }
    } catch (/** @type {any} */ error) {
        db?.close();
        release();
        if (error instanceof Error && error.message.startsWith("pyninep:")) throw error;
        throw new Error(`pyninep: cannot open IndexedDB database "${name}": ${error?.name}: ${error?.message}`,
            { cause: error });
    }
    let closed = false;
    // Another page asking to upgrade or delete the database: keep serving (the Web Lock says we
    // own it); its request stays blocked until we close.
    db.onversionchange = () => {};

    /** @type {Pairs} */
    let meta;
    /** @type {string[]} */
    let chunkKeys;
    try {
        const tx = db.transaction(["meta", "chunks"], "readonly");
        const m = tx.objectStore("meta");
        [meta, chunkKeys] = await Promise.all([
            Promise.all([request(m.getAllKeys()), request(m.getAll())])
                .then(([keys, values]) => keys.map((k, i) => /** @type {[string, Uint8Array]} */ ([String(k), asBytes(values[i]) ?? new Uint8Array(0)]))),
            request(tx.objectStore("chunks").getAllKeys()).then((keys) => keys.map(String)),
        ]);
    } catch (/** @type {any} */ error) {
        db.close();
        release();
        throw new Error(`pyninep: cannot read IndexedDB database "${name}": ${error?.name}: ${error?.message}`,
            { cause: error });
    }

    // statfs wants (usage, quota) synchronously: keep the browser's last answer, refreshed at
    // open and, at most once a second, after commits. Between answers, every byte handed to a
    // transaction since the question was asked counts as used (an overwrite counts in full, so
    // this errs towards ENOSPC, until the next answer): without it a fast writer could put a
    // second's worth of data past the quota before the filesystem noticed.
    /** @type {[number, number] | null} */
    let estimate = null;
    /** @type {Promise<void> | null} */
    let estimating = null;
    let lastEstimate = 0, writtenAtEstimate = 0;
    const quotaCap = options.quota ?? Infinity;
    const refreshEstimate = () => {
        const storage = globalThis.navigator?.storage;
        if (!storage?.estimate || estimating) return estimating;
        lastEstimate = Date.now();
        const written = stats.bytesWritten;
        estimating = storage.estimate().then((e) => {
            if (e && typeof e.usage === "number" && typeof e.quota === "number") {
                estimate = [e.usage, Math.min(e.quota, quotaCap)];
                writtenAtEstimate = written;
            }
        }, () => {}).finally(() => { estimating = null; });
        return estimating;
    };
    const stats = { commits: 0, strict: 0, relaxed: 0, failed: 0, chunkReads: 0, bytesWritten: 0 };
    await refreshEstimate();
    if (!estimate && Number.isFinite(quotaCap)) estimate = [0, quotaCap];

    /** One readwrite transaction over both stores. Pairs are [key, Uint8Array].
     * @param {Pairs} metaPut @param {string[]} metaDelete @param {Pairs} chunkPut
     * @param {string[]} chunkDelete @param {boolean} durable @returns {Promise<void>} */
    function commit(metaPut, metaDelete, chunkPut, chunkDelete, durable) {
        const d = /** @type {IDBDatabase} */ (db);
        return new Promise((resolve, reject) => {
            if (closed) {
                reject(new StorageError(`pyninep: IndexedDB database "${name}" is closed`, EIO));
                return;
            }
            /** @type {IDBTransaction | undefined} */
            let tx;
            try {
                tx = d.transaction(["meta", "chunks"], "readwrite",
                    { durability: durable ? "strict" : "relaxed" });
                const m = tx.objectStore("meta"), c = tx.objectStore("chunks");
                let bytes = 0;
                for (const key of metaDelete) m.delete(key);
                for (const [key, value] of metaPut) { m.put(value, key); bytes += value.byteLength; }
                for (const key of chunkDelete) c.delete(key);
                for (const [key, value] of chunkPut) { c.put(value, key); bytes += value.byteLength; }
                stats.bytesWritten += bytes;
            } catch (/** @type {any} */ error) { // e.g. InvalidStateError: the connection closed under us
                tx?.abort?.();
                stats.failed++;
                reject(new StorageError(`pyninep: IndexedDB commit failed: ${error?.name}: ${error?.message}`,
                    errnoOf(error), error));
                return;
            }
            const t = tx;
            t.oncomplete = () => {
                stats.commits++;
                stats[durable ? "strict" : "relaxed"]++;
                if (Date.now() - lastEstimate > 1000) refreshEstimate();
                resolve();
            };
            // An aborted transaction applied nothing: the caller keeps its changes and reports
            // the errno to whoever waits for this commit.
            t.onabort = () => {
                stats.failed++;
                const error = t.error;
                if (errnoOf(error) === ENOSPC) refreshEstimate();
                reject(new StorageError(`pyninep: IndexedDB commit aborted: ${error?.name ?? "AbortError"}: `
                    + `${error?.message ?? "the transaction was aborted"}`, errnoOf(error), error));
            };
        });
    }

    /** @param {string} key @returns {Promise<Uint8Array | undefined>} */
    function getChunk(key) {
        const d = /** @type {IDBDatabase} */ (db);
        return new Promise((resolve, reject) => {
            if (closed) {
                reject(new StorageError(`pyninep: IndexedDB database "${name}" is closed`, EIO));
                return;
            }
            try {
                const req = d.transaction("chunks", "readonly").objectStore("chunks").get(key);
                req.onsuccess = () => { stats.chunkReads++; resolve(asBytes(req.result)); };
                req.onerror = () => reject(new StorageError(
                    `pyninep: IndexedDB read failed: ${req.error?.name}: ${req.error?.message}`, EIO, req.error));
            } catch (/** @type {any} */ error) {
                reject(new StorageError(`pyninep: IndexedDB read failed: ${error?.name}: ${error?.message}`,
                    EIO, error));
            }
        });
    }

    return {
        name,
        /** null, or {status: "total", message}: the browser discarded the database at this open */
        dataLoss: /** @type {{status: string, message: string} | null} */ (dataLoss),
        meta,            // [[key, Uint8Array], ...] as stored at open
        chunkKeys,       // [key, ...] as stored at open
        /** meta and chunkKeys in one buffer, so Python takes them in one crossing (see pack()). */
        packed: () => pack(meta, chunkKeys),
        stats,
        commit,
        getChunk,
        /** Callback forms for Python (no Promise/asyncio round trip): done(errno) / done(bytes, errno).
         * @param {Pairs} metaPut @param {string[]} metaDelete @param {Pairs} chunkPut
         * @param {string[]} chunkDelete @param {boolean} durable @param {(errno: number) => void} done */
        commitThen(metaPut, metaDelete, chunkPut, chunkDelete, durable, done) {
            commit(metaPut, metaDelete, chunkPut, chunkDelete, durable).then(
                () => done(0), (error) => done(error?.errno ?? EIO));
        },
        /** @param {string} key @param {(value: Uint8Array | undefined, errno: number) => void} done */
        getChunkThen(key, done) {
            getChunk(key).then((value) => done(value, 0), (error) => done(undefined, error?.errno ?? EIO));
        },
        /** [usage, quota] in bytes: the browser's last answer (quota capped by options.quota), usage
         *  plus what was handed to transactions since; or undefined. */
        estimate() {
            if (Date.now() - lastEstimate > 1000) refreshEstimate(); // (statfs asks: the next one sees it)
            return estimate ? [estimate[0] + stats.bytesWritten - writtenAtEstimate, estimate[1]]
                : undefined; // undefined: Python sees None (null would be jsnull)
        },
        refreshEstimate,
        close() {
            if (closed) return;
            closed = true;
            /** @type {IDBDatabase} */ (db).close();
            release();
        },
        get closed() { return closed; },
        _db: db, // internal: the tests close it under the server to make transactions fail
    };
}

/**
 * [u32 n][u32 m], then the lengths: n meta keys' (UTF-8), n meta values', m chunk keys' (u32 each),
 * then the bytes in that order, back to back; little-endian. Ten thousand files are tens of
 * thousands of records: converting each one across JS↔Python would cost more than reading them
 * from IndexedDB, and with every length up front Python cuts the records out with slices (reading
 * a length before each field cost it 40 ms for the Debian tree on CPython, 2-3 times that in Pyodide).
 * @param {Pairs} meta @param {string[]} chunkKeys
 */
function pack(meta, chunkKeys) {
    const enc = new TextEncoder();
    const fields = [...meta.map(([k]) => enc.encode(k)), ...meta.map(([, v]) => v), ...chunkKeys.map((k) => enc.encode(k))];
    const head = 8 + 4 * fields.length;
    const out = new Uint8Array(fields.reduce((size, f) => size + f.length, head));
    const view = new DataView(out.buffer);
    view.setUint32(0, meta.length, true);
    view.setUint32(4, chunkKeys.length, true);
    let at = head;
    fields.forEach((f, i) => {
        view.setUint32(8 + 4 * i, f.length, true);
        out.set(f, at);
        at += f.length;
    });
    return out;
}

/** Ask the browser to keep this origin's storage under pressure; resolves to its answer. */
export async function persistStorage() {
    try {
        return await globalThis.navigator?.storage?.persist?.() ?? false;
    } catch {
        return false;
    }
}

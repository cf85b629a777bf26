/**
 * worker.js — the page's dedicated worker, a module (background.js is its other half, on the
 * page): it downloads the page's two large files (Python's snapshot, the shipped machine) off
 * the main thread.
 *
 * Why: while Python starts, the main thread is busy for a second or more. A download read there
 * stops being read, its buffer fills and the connection waits, so on a slow link that second of
 * bandwidth is lost (measured: the machine arrived a second later than it does alone). Read
 * here, it keeps streaming. Same origin and in the page's scope, so the service worker answers
 * its fetches offline as it answers the page.
 *
 * Decoding here, instead of in v86's own zstd worker: that worker exists only once the emulator
 * does (its BIOS fetched, its memory made) and compiles v86's wasm again from bytes, so on a
 * return visit Python's snapshot waited 0.4-0.5 s after it had arrived. The page compiles v86's
 * wasm once (start.js: compileV86) and sends the compiled module with each frame; an instance
 * made from it lives for one frame (its memory, tens of MB after a snapshot, goes with it).
 *
 * It also reads the machine saved in this browser (tens of MB from IndexedDB, checked and
 * unpacked: saving.js readLastSave): on the main thread that took 0.1-0.2 s just when Python's
 * start needed it.
 *
 * Messages in: {id, url} (a download), {id, unzstd: bytes, size, module} (a zstd frame with its
 * content size, and v86's compiled wasm) or {id, saved: {db, store, key}} (a saved machine's
 * record). Out: {id, loaded, total} now and then, then {id, bytes} (transferred), {id, result}
 * or {id, error, damaged} (damaged: the frame did not decode).
 */

import { readBody, unpackSaved } from "./background.js";

const scope = /** @type {any} */ (self); // a DedicatedWorkerGlobalScope (the page's types are DOM's)

/** The frame's content, decoded by v86's zstd exports in an instance of its own. Their only
 * imports are the emulator's callbacks, which decoding never calls.
 * @param {Uint8Array} frame @param {number} size @param {WebAssembly.Module} module */
function unzstd(frame, size, module) {
    /** @type {WebAssembly.ModuleImports} */
    const env = {};
    for (const i of WebAssembly.Module.imports(module)) {
        env[i.name] = i.kind === "table" ? new WebAssembly.Table({ element: "anyfunc", initial: 1024 })
            : () => { throw new Error(`the zstd decoder called v86's ${i.name}`); };
    }
    const d = /** @type {any} */ (new WebAssembly.Instance(module, { env }).exports);
    let ctx;
    try {
        ctx = d.zstd_create_ctx(frame.length);
        new Uint8Array(d.memory.buffer).set(frame, d.zstd_get_src_ptr(ctx));
    } catch (/** @type {any} */ error) {
        throw Object.assign(new Error(`v86's zstd decoder: ${error?.message ?? error}`), { damaged: false });
    }
    try {
        const at = d.zstd_read(ctx, size);
        return new Uint8Array(d.memory.buffer.slice(at, at + size));
    } catch (/** @type {any} */ error) { // a frame that does not decode traps in the wasm
        throw Object.assign(new Error(`${error?.message ?? error}`), { damaged: true });
    }
}

/** The record under `key` in `store` of the database `db` (one the page made: a missing one is
 * not created), without its `bytes`, and those bytes read as a machine blob (`machine`), or why
 * not (`damaged`); null when there is no record.
 * @param {{db: string, store: string, key: string}} where */
async function readSaved({ db, store, key }) {
    const conn = await /** @type {Promise<IDBDatabase>} */ (new Promise((resolve, reject) => {
        const request = indexedDB.open(db);
        request.onupgradeneeded = () => request.transaction?.abort();
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error ?? new Error(`cannot open ${db}`));
    }));
    let record;
    try {
        record = await new Promise((resolve, reject) => {
            const request = conn.transaction(store, "readonly").objectStore(store).get(key);
            request.onsuccess = () => resolve(request.result);
            request.onerror = () => reject(request.error);
        });
    } finally {
        conn.close();
    }
    const result = await unpackSaved(record);
    const m = result?.machine;
    const buffers = m ? [m.v86State, m.serverState.buffer, m.warm?.buffer] : [];
    return { result, transfer: /** @type {Transferable[]} */ ([...new Set(buffers.filter((b) => b))]) };
}

/** What a request asks for: the reply's fields and the buffers it hands over.
 * @param {{id: number, url: string, unzstd?: Uint8Array, size?: number, module?: WebAssembly.Module, saved?: {db: string, store: string, key: string}}} m
 * @returns {Promise<{result?: unknown, bytes?: Uint8Array, transfer: Transferable[]}>} */
async function answer(m) {
    if (m.saved) return readSaved(m.saved);
    if (m.unzstd) {
        const bytes = unzstd(m.unzstd, /** @type {number} */ (m.size), /** @type {WebAssembly.Module} */ (m.module));
        return { bytes, transfer: [bytes.buffer] };
    }
    let told = 0;
    const bytes = await readBody(m.url, await fetch(m.url), (loaded, total) => {
        if (loaded - told < 1 << 18) return; // a bar's step, not every chunk
        told = loaded;
        scope.postMessage({ id: m.id, loaded, total });
    });
    return { bytes, transfer: [bytes.buffer] };
}

scope.onmessage = async (/** @type {MessageEvent} */ event) => {
    const { id } = event.data;
    try {
        const { transfer, ...reply } = await answer(event.data);
        scope.postMessage({ id, ...reply }, transfer);
    } catch (/** @type {any} */ error) {
        scope.postMessage({ id, error: `${error?.message ?? error}`, damaged: !!error?.damaged });
    }
};

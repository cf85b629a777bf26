/**
 * background.js — the page's side of its worker (worker.js says why it exists): downloads with
 * progress, zstd frames decoded and the saved machine read, done there and answered here. Where
 * workers are not available (or the worker's script did not load) the same work is done on this
 * thread, by the same functions (readBody, unpackSaved); a zstd frame is left to the caller.
 *
 * Owns the worker and nothing else; progress.js shows the bars, start.js decides what to load.
 */

import { readMachine } from "../pyninep-machine.js";

/** @typedef {ReturnType<typeof createBackground>} Background */

/** The whole body of `response` (from `url`), `onProgress(loaded, total)` as it arrives (total 0
 * when the server did not say). The worker's download and the one on the page's thread.
 * @param {string} url @param {Response} response @param {(loaded: number, total: number) => void} onProgress */
export async function readBody(url, response, onProgress) {
    if (!response.ok || !response.body) throw new Error(`${url}: HTTP ${response.status}`);
    const total = Number(response.headers.get("content-length")) || 0;
    const reader = response.body.getReader();
    /** @type {Uint8Array[]} */
    const parts = [];
    let loaded = 0;
    for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parts.push(value);
        loaded += value.byteLength;
        onProgress(loaded, total);
    }
    const bytes = new Uint8Array(loaded);
    let at = 0;
    for (const p of parts) { bytes.set(p, at); at += p.byteLength; }
    return bytes;
}

/** A saved machine's record (saving.js), its `bytes` read as a machine blob: the record without
 * them, plus `machine` (readMachine's parts) or `damaged` (why not); null for no record. The
 * worker's read and the one on the page's thread.
 * @template {{bytes: Uint8Array}} R
 * @param {R | undefined} record
 * @returns {Promise<(Omit<R, "bytes"> & {machine?: import("../pyninep-machine.js").MachineParts, damaged?: string}) | null>} */
export async function unpackSaved(record) {
    if (!record) return null;
    const { bytes, ...rest } = record;
    try {
        return { ...rest, machine: await readMachine(bytes) };
    } catch (/** @type {any} */ error) {
        return { ...rest, damaged: `${error?.message ?? error}` };
    }
}

export function createBackground() {
    /** @type {Worker | null | undefined} */
    let worker;
    let requests = 0;

    function theWorker() {
        if (worker === undefined) {
            try {
                worker = typeof Worker === "function" ? new Worker(new URL("./worker.js", import.meta.url), { type: "module" }) : null;
            } catch {
                worker = null;
            }
        }
        return worker;
    }

    /**
     * One request to the worker; `here` does the same work on this thread when there is none.
     * @template [T=Uint8Array]
     * @param {Record<string, unknown>} message
     * @param {() => Promise<T>} here
     * @param {(loaded: number, total: number) => void} [onProgress]
     * @returns {Promise<T>} */
    function ask(message, here, onProgress) {
        const w = theWorker();
        if (!w) return here();
        const id = ++requests;
        return new Promise((resolve, reject) => {
            const done = () => {
                w.removeEventListener("message", listener);
                w.removeEventListener("error", failed);
            };
            // The worker itself did not load (its script missing from an old cache): work here.
            const failed = () => {
                done();
                if (worker === w) worker = null;
                resolve(here());
            };
            /** @param {MessageEvent<{id: number, loaded?: number, total?: number, bytes?: T, result?: T, error?: string, damaged?: boolean}>} e */
            const listener = (e) => {
                const m = e.data;
                if (m.id !== id) return;
                if (m.bytes) { done(); resolve(m.bytes); }
                else if ("result" in m) { done(); resolve(/** @type {T} */ (m.result)); }
                else if (m.error !== undefined) { done(); reject(Object.assign(new Error(m.error), { damaged: !!m.damaged })); }
                else onProgress?.(m.loaded ?? 0, m.total ?? 0);
            };
            w.addEventListener("message", listener);
            w.addEventListener("error", failed);
            w.postMessage({ id, ...message });
        });
    }

    return {
        /** The bytes at `url` (absolute, or relative to the page); `onProgress(loaded, total)`
         * as they arrive (total 0 when the server did not say).
         * @param {string} url @param {(loaded: number, total: number) => void} onProgress
         * @param {(url: string) => Promise<Response>} fetchHere  how this thread fetches, without a worker */
        download: (url, onProgress, fetchHere) => ask({ url: new URL(url, location.href).href },
            async () => readBody(url, await fetchHere(url), onProgress), onProgress),
        /** The content of a zstd frame (`size` bytes, as its header states), decoded in the
         * worker by `module`, v86's compiled wasm. Rejects with `damaged` true when the frame
         * does not decode; without a worker, or when that decoder cannot run there, with
         * `damaged` false (the caller decodes on this thread). `frame` is copied, not taken.
         * @param {Uint8Array} frame @param {number} size @param {WebAssembly.Module} module */
        unzstd: (frame, size, module) => ask({ unzstd: frame, size, module },
            () => Promise.reject(Object.assign(new Error("no worker"), { damaged: false }))),
        /** The record under `key` in `store` of the page's database `db`, without its `bytes`,
         * which the worker read as a machine blob: `machine` (readMachine's parts) or `damaged`
         * (why not); null when there is none. `here` does it on this thread without a worker.
         * @template T
         * @param {{db: string, store: string, key: string}} where @param {() => Promise<T>} here
         * @returns {Promise<T>} */
        readSaved: (where, here) => ask({ saved: where }, here),
    };
}

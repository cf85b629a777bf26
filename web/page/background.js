/**
 * background.js — the page's side of its worker (worker.js says why it exists): downloads with
 * progress, done there and answered here. Where workers are not available (or the worker's
 * script did not load) the download is done on this thread.
 *
 * Owns the worker and nothing else; progress.js shows the bars, start.js decides what to load.
 */

/** @typedef {ReturnType<typeof createBackground>} Background */

export function createBackground() {
    /** @type {Worker | null | undefined} */
    let worker;
    let requests = 0;

    function theWorker() {
        if (worker === undefined) {
            try {
                worker = typeof Worker === "function" ? new Worker(new URL("./worker.js", import.meta.url)) : null;
            } catch {
                worker = null;
            }
        }
        return worker;
    }

    /**
     * One request to the worker; `here` does the same work on this thread when there is none.
     * @param {Record<string, unknown>} message
     * @param {() => Promise<Uint8Array>} here
     * @param {(loaded: number, total: number) => void} [onProgress]
     * @returns {Promise<Uint8Array>} */
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
            /** @param {MessageEvent<{id: number, loaded?: number, total?: number, bytes?: Uint8Array, error?: string}>} e */
            const listener = (e) => {
                const m = e.data;
                if (m.id !== id) return;
                if (m.bytes) { done(); resolve(m.bytes); }
                else if (m.error !== undefined) { done(); reject(new Error(m.error)); }
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
         * @param {(url: string) => Promise<Uint8Array>} here  the same download on this thread */
        download: (url, onProgress, here) => ask({ url: new URL(url, location.href).href }, () => here(url), onProgress),
    };
}

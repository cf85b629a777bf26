/**
 * fetcher.js — a dedicated worker that downloads the page's two large files (Python's snapshot,
 * the shipped machine) off the main thread.
 *
 * Why: while Python starts, the main thread is busy for a second or more. A download read there
 * stops being read, its buffer fills and the connection waits, so on a slow link that second of
 * bandwidth is lost (measured: the machine arrived a second later than it does alone). Read here,
 * it keeps streaming; the main thread gets progress messages and, at the end, the bytes
 * (transferred, not copied). Same origin and in the page's scope, so the service worker answers
 * it offline as it answers the page.
 *
 * Messages in: {id, url}. Out: {id, loaded, total} now and then, then {id, bytes} or {id, error}.
 */

const scope = /** @type {any} */ (self); // a DedicatedWorkerGlobalScope (the page's types are DOM's)

scope.onmessage = async (/** @type {MessageEvent<{id: number, url: string}>} */ event) => {
    const { id, url } = event.data;
    try {
        const response = await fetch(url);
        if (!response.ok || !response.body) throw new Error(`${url}: HTTP ${response.status}`);
        const total = Number(response.headers.get("content-length")) || 0;
        const reader = response.body.getReader();
        /** @type {Uint8Array[]} */
        const parts = [];
        let loaded = 0, told = 0;
        for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            parts.push(value);
            loaded += value.byteLength;
            if (loaded - told >= 1 << 18) { // a bar's step, not every chunk
                told = loaded;
                scope.postMessage({ id, loaded, total });
            }
        }
        const bytes = new Uint8Array(loaded);
        let at = 0;
        for (const p of parts) { bytes.set(p, at); at += p.byteLength; }
        scope.postMessage({ id, bytes }, [bytes.buffer]);
    } catch (/** @type {any} */ error) {
        scope.postMessage({ id, error: `${error?.message ?? error}` });
    }
};

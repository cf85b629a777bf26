/**
 * worker.js — the page's dedicated worker (background.js is its other half, on the page): it
 * downloads the page's two large files (Python's snapshot, the shipped machine) off the main
 * thread.
 *
 * Why: while Python starts, the main thread is busy for a second or more. A download read there
 * stops being read, its buffer fills and the connection waits, so on a slow link that second of
 * bandwidth is lost (measured: the machine arrived a second later than it does alone). Read
 * here, it keeps streaming. Same origin and in the page's scope, so the service worker answers
 * its fetches offline as it answers the page.
 *
 * Messages in: {id, url}. Out: {id, loaded, total} now and then, then {id, bytes} (transferred)
 * or {id, error}.
 */

const scope = /** @type {any} */ (self); // a DedicatedWorkerGlobalScope (the page's types are DOM's)

scope.onmessage = async (/** @type {MessageEvent<{id: number, url: string}>} */ event) => {
    const { id, url } = event.data;
    try {
        const bytes = await download(id, url);
        scope.postMessage({ id, bytes }, [bytes.buffer]);
    } catch (/** @type {any} */ error) {
        scope.postMessage({ id, error: `${error?.message ?? error}` });
    }
};

/** @param {number} id @param {string} url */
async function download(id, url) {
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
    return bytes;
}

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
 * Messages in: {id, url}. Out: {id, loaded, total} now and then, then {id, bytes} (transferred)
 * or {id, error}.
 */

import { readBody } from "./background.js";

const scope = /** @type {any} */ (self); // a DedicatedWorkerGlobalScope (the page's types are DOM's)

scope.onmessage = async (/** @type {MessageEvent<{id: number, url: string}>} */ event) => {
    const { id, url } = event.data;
    try {
        let told = 0;
        const bytes = await readBody(url, await fetch(url), (loaded, total) => {
            if (loaded - told < 1 << 18) return; // a bar's step, not every chunk
            told = loaded;
            scope.postMessage({ id, loaded, total });
        });
        scope.postMessage({ id, bytes }, [bytes.buffer]);
    } catch (/** @type {any} */ error) {
        scope.postMessage({ id, error: `${error?.message ?? error}` });
    }
};

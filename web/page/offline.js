/**
 * offline.js — offline use: registers the service worker (sw.js, written by build.sh with this
 * build's file list) and asks it to cache the whole build, then says so in window.pyninep
 * (offlineReady) and in the log. ?nosw leaves it out.
 *
 * Owns the page's side of the service worker. It must not decide what is cached (build.sh's
 * manifest and sw.js do) nor touch anything on the page beyond the log.
 */

/**
 * @param {import("./context.js").PageContext} ctx
 * @param {import("./errors.js").Messages} messages
 */
export async function registerServiceWorker(ctx, messages) {
    if (!("serviceWorker" in navigator) || ctx.params.has("nosw")) return;
    try {
        const reg = await navigator.serviceWorker.register("sw.js", { updateViaCache: "none" });
        const worker = /** @type {ServiceWorker} */ (reg.installing ?? reg.waiting ?? reg.active);
        /** @type {Promise<{cached: number}>} */
        const done = new Promise((resolve) => {
            navigator.serviceWorker.addEventListener("message", (e) => { if (e.data?.cached) resolve(e.data); });
        });
        // The worker caches everything of this build (the browser's HTTP cache answers most of it).
        const ask = (/** @type {ServiceWorker} */ w) => w.postMessage({ cacheAll: true });
        if (worker.state === "activated") ask(worker);
        else worker.addEventListener("statechange", () => { if (worker.state === "activated") ask(worker); });
        const result = await done;
        ctx.api.offlineReady = true;
        messages.note(`cached for offline use (${result.cached} files)`);
    } catch (/** @type {any} */ error) {
        messages.note(`offline use unavailable: ${error.message}`);
    }
}

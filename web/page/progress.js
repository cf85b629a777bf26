/**
 * progress.js — the download bars (#progress): how much of each part has arrived (Python, Linux or
 * the emulator, Linux ready to run), in per cent (the bytes in a tooltip), with totals known up
 * front from the manifest.
 *
 * Owns #progress and the page's fetch hook: Pyodide fetches its own files, so window.fetch is
 * wrapped to count their bytes as they stream through (everything else passes untouched); the
 * page's own two large files are read by its worker (background.js). It must
 * not decide what to load or when: start.js does, and tells it which bars to show.
 */

import { $ } from "./context.js";

export const mb = (/** @type {number} */ n) => (n / 1048576).toFixed(1);

/** @typedef {{group: string, rel: string, size: number}} Classified */
/** @typedef {ReturnType<typeof createProgress>} Progress */

/** @param {import("./context.js").PageContext} ctx @param {{background: import("./background.js").Background}} parts */
export function createProgress(ctx, { background }) {
    /** @type {Map<string, {files: Map<string, [number, number]>, el: HTMLProgressElement, text: HTMLElement}>} */
    const bars = new Map();

    /** Show the bar of `group` (once). */
    function bar(/** @type {string} */ group, /** @type {string} */ label) {
        const known = bars.get(group);
        if (known) return known;
        const l = document.createElement("span");
        l.textContent = label;
        const el = document.createElement("progress");
        el.setAttribute("aria-label", label);
        el.max = 1;
        el.value = 0;
        const text = document.createElement("span");
        $("progress").append(l, el, text);
        const b = { files: new Map(), el, text };
        bars.set(group, b);
        return b;
    }

    /** @param {string} group @param {string} url @param {number} loaded @param {number} total */
    function progress(group, url, loaded, total) {
        const b = bars.get(group);
        if (!b) return;
        const known = b.files.get(url);
        b.files.set(url, [loaded, total || known?.[1] || 0]);
        let sum = 0, all = 0;
        for (const [l, t] of b.files.values()) { sum += l; all += Math.max(t, l); }
        b.el.max = Math.max(all, 1);
        b.el.value = sum;
        // Plain words in the bar (how far), the bytes in its tooltip.
        b.text.textContent = sum >= all && all > 0 ? "done" : `${Math.floor((100 * sum) / Math.max(all, 1))} %`;
        b.text.title = b.el.title = `${mb(sum)} of ${mb(all)} MB`;
    }

    /** A stage is done: files it loaded without the fetch hook (module imports) count as loaded. */
    function complete(/** @type {string} */ group) {
        const b = bars.get(group);
        if (!b) return;
        for (const [url, [, total]] of b.files) progress(group, url, total, total);
    }

    /** Which bar a URL's bytes count towards, and its size from the manifest (for a total up front). */
    function classify(/** @type {string} */ url) {
        const manifest = ctx.manifest;
        const u = new URL(url, location.href);
        const base = new URL(".", location.href).href;
        if (!u.href.startsWith(base)) return null;
        const rel = u.href.slice(base.length).split(/[?#]/)[0];
        const size = manifest?.sizes?.[rel] ?? 0;
        if (rel.startsWith(manifest?.pyodide ?? "pyodide/") || rel.startsWith("pysnap/") || rel.startsWith("wheels/")
            || rel.startsWith("images/")) {
            return { group: "python", rel, size };
        }
        if (rel.startsWith("machine/")) return { group: "machine", rel, size };
        if (rel.startsWith(manifest?.v86 ?? "v86/") || rel.startsWith("guest/")) return { group: "linux", rel, size };
        return null;
    }

    // Pyodide fetches its own files: count their bytes as they stream through.
    const plainFetch = window.fetch.bind(window);
    window.fetch = async (input, init) => {
        const response = await plainFetch(input, init);
        const url = response.url || String(/** @type {Request} */ (input)?.url ?? input);
        const c = response.ok && response.body ? classify(url) : null;
        if (!c || !bars.has(c.group) || !response.body) return response;
        const total = Number(response.headers.get("content-length")) || c.size;
        let loaded = 0;
        progress(c.group, c.rel, 0, total);
        const counted = response.body.pipeThrough(new TransformStream({
            transform(chunk, controller) {
                loaded += chunk.byteLength;
                progress(c.group, c.rel, loaded, total);
                controller.enqueue(chunk);
            },
        }));
        return new Response(counted, { status: response.status, statusText: response.statusText, headers: response.headers });
    };

    /** A file of the site, its bytes counted towards `group`'s bar as they arrive; read by the
     * page's worker (worker.js says why), or here where there is none. */
    async function fetchWithProgress(/** @type {string} */ url, /** @type {string} */ group) {
        const c = classify(url);
        const rel = c?.rel ?? url;
        const bytes = await background.download(url, (loaded, total) => progress(group, rel, loaded, total || c?.size || 0),
            plainFetch);
        progress(group, rel, bytes.byteLength, bytes.byteLength);
        return bytes;
    }

    return {
        bar, progress, complete, classify, fetchWithProgress,
        /** fetch without the hook (what the page fetches itself, e.g. manifest.json). */
        plainFetch,
        /** Whether any bar was shown (a start that failed before any has no empty strip). */
        shown: () => bars.size > 0,
        hide() { $("progress").hidden = true; },
    };
}

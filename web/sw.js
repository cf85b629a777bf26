// The site's service worker: after a first visit, the page works offline. Each build has its own
// cache (the build script writes BUILD and FILES below); a new build's worker drops the old caches
// once it takes over, so a deployment never mixes two builds' files.
const BUILD = "__BUILD__";
const FILES = __FILES__; // every file of the build, relative to this script
const CACHE = `pyninep-${BUILD}`;
const scope = new URL("./", self.location.href).href;

self.addEventListener("install", () => self.skipWaiting());

self.addEventListener("activate", (event) => {
    event.waitUntil((async () => {
        for (const name of await caches.keys()) {
            if (name.startsWith("pyninep-") && name !== CACHE) await caches.delete(name);
        }
        await self.clients.claim();
    })());
});

// Fill the cache with every file of this build (the page asks once it is running, so the first
// visit's own downloads are not slowed down; most answers come from the browser's HTTP cache).
self.addEventListener("message", (event) => {
    if (!event.data?.cacheAll) return;
    event.waitUntil((async () => {
        const cache = await caches.open(CACHE);
        let cached = 0;
        for (const file of FILES) {
            const url = new URL(file, scope).href;
            if (!(await cache.match(url))) {
                const response = await fetch(url);
                if (response.ok) await cache.put(url, response);
            }
            cached += 1;
        }
        event.source?.postMessage({ cached, build: BUILD });
    })());
});

// The manifest and the page itself: network first, so a new build is seen at once (and Pyodide's
// wasm, below); everything else: this build's cache first. Offline, the cache answers all of it.
const FRESH = new Set(["", "index.html", "manifest.json", "sw.js"]);
self.addEventListener("fetch", (event) => {
    const request = event.request;
    if (request.method !== "GET" || !request.url.startsWith(scope)) return;
    const rel = request.url.slice(scope.length).split(/[?#]/)[0];
    const key = new URL(rel || "index.html", scope).href;
    // Pyodide's wasm is fetched network-first too: the browser's HTTP cache answers it with the
    // code V8 compiled for it. Served from this cache, a first return compiled it again and ran
    // Python on V8's baseline code: the page's server took 0.6 s instead of 0.2.
    if (FRESH.has(rel) || rel.endsWith(".asm.wasm")) {
        event.respondWith(fetch(request).catch(async () => (await caches.match(key)) ?? Response.error()));
        return;
    }
    event.respondWith((async () => {
        const hit = await caches.match(key, { cacheName: CACHE });
        return hit ?? fetch(request);
    })());
});

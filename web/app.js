// The demo page: a terminal on the guest's serial console, a file browser on the served tree, and
// the fast start (restore a saved machine instead of booting). See README "The page".
// Every URL here is relative to the page, so the site works from any sub-path of any static host.
import * as pyninep from "./pyninep.js";
import * as machine from "./machine.js";
import { takeWebLock } from "./pyninep-idb.js";

const $ = (id) => document.getElementById(id);
const t0 = performance.now();
const params = new URLSearchParams(location.search);
const LOCAL_DB = "pyninep-page"; // the page's own store: the last machine saved in this browser
const STORE_DB = "pyninep-sandbox"; // the guest's files, when pyninep.js keeps them in IndexedDB
let storage = "memory";

// ---------------------------------------------------------------- status, errors, log

const statusEl = $("status");
function setStatus(text, kind = "busy") {
    statusEl.textContent = text;
    statusEl.className = kind;
}

/** One readable sentence in the page; `fresh` adds a Boot fresh button. Fatal ones stop start-up. */
function showError(sentence, { fresh = false } = {}) {
    $("error-text").textContent = sentence;
    $("error-fresh").hidden = !fresh;
    $("error").hidden = false;
}

class PageError extends Error {
    constructor(sentence, { fresh = false, cause } = {}) {
        super(sentence, { cause });
        this.fresh = fresh;
    }
}

const logEl = $("log-text");
let logText = "";
let logPending = false;
function log(text) {
    logText += text;
    if (logText.length > 200_000) logText = logText.slice(-150_000);
    if (!logPending) {
        logPending = true;
        requestAnimationFrame(() => { logPending = false; logEl.textContent = logText; });
    }
}
const note = (line) => log(`[page ${((performance.now() - t0) / 1000).toFixed(2)} s] ${line}\n`);

// ---------------------------------------------------------------- progress (bytes of total)

const bars = new Map(); // group -> { files: Map(url -> [loaded, total]), el, text }
function bar(group, label) {
    if (bars.has(group)) return bars.get(group);
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
function progress(group, url, loaded, total) {
    const b = bars.get(group);
    if (!b) return;
    const known = b.files.get(url);
    b.files.set(url, [loaded, total || known?.[1] || 0]);
    let sum = 0, all = 0;
    for (const [l, t] of b.files.values()) { sum += l; all += Math.max(t, l); }
    b.el.max = Math.max(all, 1);
    b.el.value = sum;
    b.text.textContent = `${mb(sum)} of ${mb(all)} MB`;
}
const mb = (n) => (n / 1048576).toFixed(1);
/** A stage is done: files it loaded without the fetch hook (module imports) count as loaded. */
function complete(group) {
    const b = bars.get(group);
    if (!b) return;
    for (const [url, [, total]] of b.files) progress(group, url, total, total);
}

let manifest = null;
/** Which bar a URL's bytes count towards, and its size from the manifest (for a total up front). */
function classify(url) {
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
    const c = response.ok && response.body ? classify(response.url || String(input?.url ?? input)) : null;
    if (!c || !bars.has(c.group)) return response;
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

// ---------------------------------------------------------------- the terminal

let terminal = null, fit = null;
let emulator = null, server = null;
let consoleLive = false; // guest output goes to the terminal (after the console set-up), else the log
const typedEarly = []; // keys pressed before the guest listens (or while it drops its caches)
let inputHeld = false;

async function startTerminal() {
    const [{ Terminal }, { FitAddon }] = await Promise.all([
        import("./xterm/xterm.mjs"), import("./xterm/addon-fit.mjs")]);
    terminal = new Terminal({
        cursorBlink: true, scrollback: 5000, fontSize: 14,
        fontFamily: "ui-monospace, Menlo, Consolas, 'DejaVu Sans Mono', monospace",
        theme: { background: "#000000" },
    });
    fit = new FitAddon();
    terminal.loadAddon(fit);
    terminal.open($("terminal"));
    fit.fit();
    window.pyninep.terminal = terminal;
    terminal.onData((data) => send(new TextEncoder().encode(data)));
    terminal.onBinary((data) => send(Uint8Array.from(data, (c) => c.charCodeAt(0))));
    terminal.onResize(tellSize);
    // Ctrl+Shift+C / Ctrl+Shift+V copy and paste (plain Ctrl+C is the guest's interrupt).
    terminal.attachCustomKeyEventHandler((event) => {
        if (event.type !== "keydown" || !event.ctrlKey || !event.shiftKey) return true;
        if (event.code === "KeyC") {
            const text = terminal.getSelection();
            if (text) navigator.clipboard?.writeText(text).catch(() => {});
            return false;
        }
        if (event.code === "KeyV") {
            navigator.clipboard?.readText().then((text) => terminal.paste(text)).catch(() => {});
            return false;
        }
        return true;
    });
    new ResizeObserver(() => fit.fit()).observe($("terminal"));
    terminal.focus();
}

function send(bytes) {
    if (consoleLive && emulator && !inputHeld) emulator.serial_send_bytes(0, bytes);
    else typedEarly.push(bytes);
}

function tellSize({ rows, cols } = terminal) {
    if (consoleLive && emulator) emulator.serial_send_bytes(1, machine.resizeLine({ rows, cols }));
}

// Keys typed while nothing has focus go to the terminal: no click needed to find it.
document.addEventListener("keydown", (event) => {
    if (!terminal || event.target !== document.body || event.metaKey) return;
    if (event.altKey && event.code === "KeyF") return;
    terminal.focus();
    const k = event.key;
    const bytes = k === "Enter" ? "\r" : k === "Backspace" ? "\x7f" : k === "Tab" ? "\t"
        : k.length === 1 && !event.ctrlKey && !event.altKey ? k : null;
    if (bytes !== null) {
        event.preventDefault();
        send(new TextEncoder().encode(bytes));
    }
});

let outBytes = [];
let outPending = false;
let afterWake = "";
let readyResolve;
const ready = new Promise((resolve) => { readyResolve = resolve; });

function onSerial(byte) {
    activity.output += 1;
    if (!consoleLive) {
        log(String.fromCharCode(byte));
        return;
    }
    outBytes.push(byte);
    if (readyResolve) {
        afterWake = (afterWake + String.fromCharCode(byte)).slice(-64);
        if (/[#$] $/.test(afterWake)) {
            const resolve = readyResolve;
            readyResolve = null;
            resolve();
        }
    }
    if (!outPending) {
        outPending = true;
        queueMicrotask(() => setTimeout(() => {
            outPending = false;
            const chunk = Uint8Array.from(outBytes);
            outBytes = [];
            terminal.write(chunk);
        }, 0));
    }
}

/** The shipped (or freshly booted) guest waits in the console script (machine.js): wake it with
 * the clock, entropy and size. A machine this browser saved was wherever the user left it: its
 * screen comes back from the save, and the clock, entropy and size go by the second serial port.
 * `drop`: a token the guest echoes once it has dropped its caches (see guestDropped). */
function wake(savedScreen, drop = "") {
    consoleLive = true;
    const size = { rows: terminal.rows, cols: terminal.cols };
    if (savedScreen != null) {
        terminal.write(savedScreen);
        emulator.serial_send_bytes(1, machine.resizeLine({ ...size, clock: true, drop }));
        readyResolve?.();
        readyResolve = null;
    } else {
        emulator.serial0_send(machine.wakeLine(size));
        emulator.serial_send_bytes(1, machine.resizeLine({ ...size, drop }));
    }
    sendTypedEarly();
}

/** Keys typed before the guest could take them, in order, once it can. */
function sendTypedEarly() {
    if (!inputHeld) for (const bytes of typedEarly.splice(0)) emulator.serial_send_bytes(0, bytes);
}

/** The terminal's text up to the cursor, to show again when the machine is restored. */
function screenToKeep() {
    const b = terminal.buffer.active;
    const last = b.baseY + b.cursorY;
    const lines = [];
    for (let i = Math.max(0, last - 500); i < last; i++) lines.push(b.getLine(i)?.translateToString(true) ?? "");
    lines.push((b.getLine(last)?.translateToString(false) ?? "").slice(0, b.cursorX));
    return lines.join("\r\n");
}

// ---------------------------------------------------------------- storage, locks, checks

function openLocalDb() {
    return new Promise((resolve, reject) => {
        let request;
        try {
            request = indexedDB.open(LOCAL_DB, 1);
        } catch (error) {
            reject(error);
            return;
        }
        request.onupgradeneeded = (event) => {
            // Chromium found the site's IndexedDB damaged at this open and deleted all of it
            // (it tells only the first database opened afterwards): say so, once.
            if (event.dataLoss && event.dataLoss !== "none") reportDataLoss(event.dataLossMessage);
            request.result.createObjectStore("machine");
        };
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
        request.onblocked = () => reject(new Error("blocked"));
    });
}
function idb(db, mode, fn) {
    return new Promise((resolve, reject) => {
        const tx = db.transaction("machine", mode);
        const result = fn(tx.objectStore("machine"));
        tx.oncomplete = () => resolve(result.result);
        tx.onerror = tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction failed"));
    });
}
let dataLossShown = false;
function reportDataLoss(message) {
    note(`the browser discarded this site's IndexedDB as damaged: ${message || "no reason given"}`);
    if (dataLossShown) return;
    dataLossShown = true;
    showError("Your browser found this site's stored data damaged and deleted it, so your earlier files and saved machine are gone and the sandbox starts fresh. This can follow a browser crash; to keep a copy of files you care about, use \u201cExport tar\u201d in the files panel now and then.");
}
const isQuotaError = (e) => e?.name === "QuotaExceededError" || /quota/i.test(String(e?.message));

/** Exactly one tab runs the sandbox: its saved machine and files are one, and two writers would
 * fork them. (Held for the page's lifetime; a tab closed a moment ago gets a moment to let go.) */
async function holdTabLock() {
    return !navigator.locks || (await takeWebLock(navigator.locks, "pyninep-sandbox")) !== null;
}

async function checkQuota(need) {
    try {
        const { usage = 0, quota = Infinity } = await navigator.storage?.estimate?.() ?? {};
        return quota - usage >= need;
    } catch {
        return true;
    }
}

// ---------------------------------------------------------------- start-up

async function fetchWithProgress(url, group) {
    const c = classify(url);
    const response = await plainFetch(url);
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    const total = Number(response.headers.get("content-length")) || c?.size || 0;
    const reader = response.body.getReader();
    const parts = [];
    let loaded = 0;
    for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parts.push(value);
        loaded += value.byteLength;
        progress(group, c?.rel ?? url, loaded, total);
    }
    const out = new Uint8Array(loaded);
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.byteLength; }
    return out;
}

async function loadV86(boot, handle9p) {
    const { V86 } = await import(`./${manifest.v86}libv86.mjs`);
    const base = new URL(".", location.href);
    const em = new V86(machine.v86Options(manifest, { baseUrl: base, handle9p, boot }));
    em.add_listener("download-progress", (e) => {
        const c = classify(e.file_name);
        if (c) progress("linux", c.rel, e.loaded, e.total || c.size);
    });
    await new Promise((resolve, reject) => {
        em.add_listener("emulator-loaded", resolve);
        em.add_listener("download-error", (e) => reject(new Error(`cannot download ${e.file_name}`)));
    });
    return em;
}

async function start() {
    if (typeof WebAssembly !== "object" || typeof WebAssembly.instantiate !== "function") {
        throw new PageError("This browser cannot run WebAssembly, which the Linux emulator and Python both need: try a current Chrome, Firefox or Safari with WebAssembly enabled.");
    }
    const terminalReady = startTerminal();
    const timing = (window.pyninep.timing = {});

    let db = null;
    try {
        if (!window.indexedDB) throw new Error("no indexedDB");
        db = await openLocalDb();
    } catch (error) {
        showError("This browser does not let the page use IndexedDB (private browsing or blocked storage), so nothing you do here will be kept after you close the page.");
        note(`IndexedDB unavailable: ${error?.message ?? error}`);
    }
    if (!(await holdTabLock())) {
        throw new PageError("This sandbox is already open in another tab of this browser; close it there (or reload it there) to use it here.");
    }
    manifest = window.pyninep.manifest = await (await plainFetch("manifest.json", { cache: "no-cache" })).json();
    if (db && manifest.machine && !(await checkQuota(manifest.machine.raw ?? 64 << 20))) {
        showError("Your browser's storage for this site is full, so this session cannot be saved: free some space (or reset) to keep your files.");
    }

    // The store (IndexedDB) is the one truth for files. A machine (this browser's last save, or
    // the shipped one) brings back the guest's memory and its 9P session, which re-binds to the
    // store's files as they are now; only a new visitor's empty store is seeded with the shipped
    // machine's files. ?fresh boots the kernel (with the stored files).
    storage = window.pyninep.storage = db && !params.has("memory") ? `indexeddb:${STORE_DB}` : "memory";
    const forceBoot = params.has("fresh") || !manifest.machine;
    let saved = null, olderBuild = false;
    if (!forceBoot && db) {
        try {
            saved = await idb(db, "readonly", (s) => s.get("last"));
        } catch (error) {
            note(`could not read the saved machine: ${error.message}`);
        }
        if (saved && saved.stamp !== manifest.machine.stamp) {
            note("the machine saved in this browser is from another build of the page");
            olderBuild = true;
            saved = null;
        }
        // A machine saved without its files (beside the store) cannot start a page without the store.
        if (saved && saved.session && storage === "memory") saved = null;
    }
    window.pyninep.source = forceBoot ? "boot" : saved ? "saved" : "shipped";
    bar("python", "Python");
    bar("linux", forceBoot ? "Linux" : "Emulator");
    if (!forceBoot && !saved) bar("machine", "Saved machine");
    // Totals up front: every file this start will fetch, at its size from the manifest.
    const expect = [manifest.wheel, manifest.v86 + "libv86.mjs", manifest.v86 + "v86.wasm", manifest.guest.bios,
        manifest.guest.vgabios, ...["pyodide.asm.wasm", "pyodide.asm.mjs", "python_stdlib.zip"].map((f) => manifest.pyodide + f)];
    if (manifest.pyodideSnapshot && !params.has("nosnap")) expect.push(manifest.pyodideSnapshot);
    if (forceBoot) expect.push(manifest.image, manifest.guest.kernel, manifest.guest.initrd);
    else if (!saved) expect.push(manifest.machine.url);
    for (const rel of expect) {
        const c = classify(rel);
        if (c) progress(c.group, c.rel, 0, c.size);
    }

    // Python, the emulator and the machine load side by side.
    let current = null; // the server, once Python is up; v86 asks for it only after the restore
    const handle9p = (req, reply) => { activity.requests += 1; current.handle9p(req, reply); };
    setStatus(forceBoot ? "loading…" : "loading and restoring…");
    // A restore starts from no image: a new visitor's store gets the machine's files instead.
    const serverP = createServer({ image: forceBoot ? undefined : null }).then(async (s) => {
        if (s.openReport?.repairs?.length) note(`the stored files were repaired: ${JSON.stringify(s.openReport.repairs)}`);
        if (s.openReport?.dataLoss) reportDataLoss(s.openReport.dataLoss.message);
        timing.python_ms = Math.round(performance.now() - t0);
        complete("python");
        return s;
    });
    let shippedP = null;
    const shipped = () => (shippedP ??= fetchWithProgress(manifest.machine.url, "machine").then(
        (bytes) => { timing.machine_ms = Math.round(performance.now() - t0); return unpack(bytes); }));
    const savedP = saved ? unpack(saved.bytes) : null;
    if (!forceBoot && !saved) shipped();
    // (A damaged machine is reported once the restore is tried, below.)
    savedP?.catch(() => {});
    shippedP?.catch(() => {});
    const emulatorP = loadV86(forceBoot, handle9p).then((em) => { complete("linux"); return em; });
    [server, emulator] = await Promise.all([serverP, emulatorP, terminalReady]);
    current = server;
    Object.assign(window.pyninep, { server, emulator });

    // Whose files: the store's when it holds a filesystem, else (a new visitor, or memory
    // storage) the machine's, which then seed the store.
    const held = storage !== "memory" && !!server.openReport?.held;
    const filesFrom = held ? "server" : "state";
    let restored = null;
    if (!forceBoot) {
        const tries = saved ? [["saved", savedP], ["shipped", null]] : [["shipped", null]];
        for (const [source, partsP] of tries) {
            try {
                const parts = await (partsP ?? shipped());
                setStatus("restoring…");
                const { info, report } = await pyninep.restoreMachine(parts, { emulator, server, files: filesFrom });
                timing.restored_ms = Math.round(performance.now() - t0);
                restored = { source, screen: source === "saved" ? saved.screen ?? "" : null };
                note(`restored the ${source} machine (saved ${info.created ?? "?"}) ${filesFrom === "server"
                    ? `over the stored files: ${report.fids} open file(s) re-bound${report.stale.length ? `, ${report.stale.length} gone since` : ""}`
                    : "with its files"}`);
                break;
            } catch (error) {
                if (error.foreign) { note(`the ${source} machine was saved over other files than the ones stored here`); continue; }
                if (source === "saved") { note(`the machine saved in this browser could not be restored (${error.message}); the shipped one starts instead`); continue; }
                throw new PageError("The shipped machine could not be restored (the download is damaged or incomplete); boot fresh to start from the kernel instead.", { fresh: true, cause: error });
            }
        }
        if (!restored) { // the stored files come from another build's machine: boot with them
            emulator.destroy?.();
            emulator = window.pyninep.emulator = await loadV86(true, handle9p);
            bar("linux", "Linux");
        }
    }
    window.pyninep.source = restored?.source ?? "boot";
    emulator.add_listener("serial0-output-byte", onSerial);
    if (restored) {
        // The guest may hold cached pages of files that changed after its save: it drops them
        // (and says so on the second serial port) before it gets a key: what is typed meanwhile
        // (a fraction of a second) waits, the prompt does not.
        const token = filesFrom === "server" ? `drop${Math.random().toString(36).slice(2, 10)}` : "";
        if (token) {
            inputHeld = true;
            guestDropped(token).then(() => {
                inputHeld = false;
                timing.input_ms = Math.round(performance.now() - t0);
                sendTypedEarly();
            });
        }
        wake(restored.screen, token);
    } else {
        setStatus("booting Linux…");
        note("booting (the kernel's messages are in this log)");
        await waitForBootPrompt();
        await server.writeFile(machine.CONSOLE_SCRIPT_PATH, machine.CONSOLE_SCRIPT);
        emulator.serial0_send(machine.CONSOLE_COMMAND);
        await waitForLog(machine.READY_MARKER);
        wake(null);
    }
    await Promise.race([ready, new Promise((_, reject) => setTimeout(
        () => reject(new PageError("Linux did not answer within 30 s; boot fresh to start it again.", { fresh: true })), 30_000))]);
    timing.prompt_ms = Math.round(performance.now() - t0);
    $("progress").hidden = true;
    setStatus(`ready${navigator.onLine ? "" : " (offline)"}`, "ok");
    note(`shell ready (${JSON.stringify(timing)})`);
    if (olderBuild || (!forceBoot && !restored)) {
        showError(held && !restored
            ? "Your files were kept from an older version of this page, whose machine this version cannot restore, so Linux started afresh with them."
            : "The machine saved in this browser comes from an older version of this page, so this version's machine started instead, with your files.");
    }
    terminal.focus();
    files.open(innerWidth > 760 && !params.has("nofiles"));
    if (db) keepSaving(db);
    registerServiceWorker();
}

/** Resolves once the guest echoes `token` on its second serial port (it has dropped its caches),
 * or after a few seconds without it (a note in the log says so). */
function guestDropped(token) {
    let heard = "";
    return new Promise((resolve) => {
        const started = performance.now();
        const done = (ok) => {
            emulator.remove_listener("serial1-output-byte", listener);
            clearTimeout(timer);
            timings().drop_ms = Math.round(performance.now() - started);
            if (!ok) note("the restored machine did not confirm that it dropped its caches");
            resolve(ok);
        };
        const listener = (byte) => {
            heard = (heard + String.fromCharCode(byte)).slice(-64);
            if (heard.includes(token)) done(true);
        };
        const timer = setTimeout(() => done(false), 5000);
        emulator.add_listener("serial1-output-byte", listener);
    });
}

async function createServer({ image }) {
    const pyodide = await loadPython();
    try {
        return await pyninep.createServer({ storage, manifest, pyodide, ...(image === null ? { image: null } : {}) });
    } catch (error) {
        if (/another tab|already being served/i.test(error.message)) {
            throw new PageError("This sandbox is already open in another tab of this browser; close it there (or reload it there) to use it here.", { cause: error });
        }
        if (isQuotaError(error)) {
            throw new PageError("Your browser's storage for this site is full, so the sandbox cannot open its files: free some space, or reset.", { cause: error });
        }
        throw error;
    }
}

/** Pyodide from the build's memory snapshot (Python already started, our package imported), or,
 * without one or if it fails, started from scratch by createServer. */
async function loadPython() {
    if (!manifest.pyodideSnapshot || params.has("nosnap")) return undefined;
    try {
        const [{ loadPyodide }, gz] = await Promise.all([
            import(`./${manifest.pyodide}pyodide.mjs`), fetchWithProgress(manifest.pyodideSnapshot, "python")]);
        const snapshot = new Uint8Array(await new Response(
            new Blob([gz]).stream().pipeThrough(new DecompressionStream("gzip"))).arrayBuffer());
        const pyodide = await loadPyodide({ indexURL: new URL(manifest.pyodide, location.href).href, _loadSnapshot: snapshot });
        timings().pyodide_ms = Math.round(performance.now() - t0);
        return pyodide;
    } catch (error) {
        note(`the Python snapshot did not load (${error.message}); starting Python from scratch`);
        return undefined;
    }
}

/** Checked and unpacked as soon as it arrives (inflating overlaps Python's start); errors wait
 * for the restore. */
async function unpack(bytes) {
    const parts = await pyninep.readMachine(bytes);
    timings().unpacked_ms = Math.round(performance.now() - t0);
    return parts;
}
const timings = () => window.pyninep.timing;

/** The running machine as one blob: without its files when they are in the store (the store is
 * their truth, and this keeps a save to the guest's memory and 9P session), else with them. */
function saveMachine() {
    return pyninep.saveMachine(emulator, server, { session: storage !== "memory", meta: { stamp: manifest.machine?.stamp } });
}

function waitForBootPrompt() {
    return waitForLog(/[#$] $/, 180_000);
}
function waitForLog(pattern, ms = 30_000) {
    const test = typeof pattern === "string" ? (t) => t.includes(pattern) : (t) => pattern.test(t);
    const from = logText.length;
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new PageError("Linux did not finish booting; see the boot log below, or reload to try again.")), ms);
        const listener = () => {
            if (test(logText.slice(from))) {
                clearTimeout(timer);
                emulator.remove_listener("serial0-output-byte", listener);
                resolve();
            }
        };
        emulator.add_listener("serial0-output-byte", listener);
    });
}

// ---------------------------------------------------------------- saving for the next visit

// Files need no saving here: the server commits them to IndexedDB itself (at most a second after
// a change, at once on fsync). What is saved is the machine: the guest's memory and its 9P
// session, so the next visit (a reload, a closed tab, a crash) restores the shell where it was,
// over the store's files as they are then. It is saved once the guest has been quiet for a
// moment after doing something, at least every BUSY_SAVE_MS while it keeps busy, and when the
// page is hidden or closed (a bonus: an unloading page may not finish).
const QUIET_MS = 1000, BUSY_SAVE_MS = 30_000, CHECK_MS = 250;
const activity = { requests: 0, output: 0, input: 0, last: 0 };
const activityCount = () => activity.requests + activity.output + activity.input;
let saving = null;

function keepSaving(db) {
    terminal.onData(() => { activity.input += 1; });
    let savedAt = activityCount(), lastSave = performance.now(), seen = savedAt;
    const save = async (why) => {
        if (saving || !emulator || window.pyninep.resetting) return saving;
        saving = window.pyninep.saving = (async () => {
            const t = performance.now();
            const at = activityCount();
            setStatus("saving…");
            try {
                const screen = screenToKeep();
                const bytes = await saveMachine();
                // One transaction: the new machine replaces the last one whole, or not at all.
                await idb(db, "readwrite", (s) => s.put({ stamp: manifest.machine?.stamp, bytes, id: Date.now(),
                    screen, session: storage !== "memory" }, "last"));
                savedAt = at;
                lastSave = performance.now();
                const ms = Math.round(lastSave - t);
                window.pyninep.lastSave = { at: Date.now(), why, bytes: bytes.length, ms };
                note(`saved the machine (${why}): ${mb(bytes.length)} MB in ${ms} ms`);
                setStatus("saved", "ok");
            } catch (error) {
                if (isQuotaError(error)) showError("Your browser's storage for this site is full, so this session cannot be saved: free some space (or reset) to keep your files.");
                else showError(`Saving the machine failed: ${error.message}.`);
                setStatus("not saved", "bad");
            } finally {
                saving = window.pyninep.saving = null;
            }
        })();
        return saving;
    };
    setInterval(() => {
        const now = performance.now(), count = activityCount();
        if (count !== seen) { seen = count; activity.last = now; }
        if (count === savedAt || saving) return;
        if (now - activity.last >= QUIET_MS) save("quiet");
        else if (now - lastSave >= BUSY_SAVE_MS) save("busy");
    }, CHECK_MS);
    window.pyninep.save = () => save("on request");
    document.addEventListener("visibilitychange", () => { if (document.visibilityState === "hidden") save("page hidden"); });
    addEventListener("pagehide", () => save("page closed"));
}

// ---------------------------------------------------------------- buttons

function bootFresh() {
    const u = new URL(location.href);
    u.searchParams.set("fresh", "1");
    location.href = u.href;
}
$("fresh").addEventListener("click", bootFresh);
$("error-fresh").addEventListener("click", bootFresh);

async function reset() {
    window.pyninep.resetting = true;
    emulator?.stop();
    await server?.close?.(); // lets go of the files' database
    for (const name of [LOCAL_DB, STORE_DB]) {
        await new Promise((resolve) => {
            const request = indexedDB.deleteDatabase(name);
            request.onsuccess = request.onerror = request.onblocked = () => resolve();
        });
    }
    const u = new URL(location.href);
    u.searchParams.delete("fresh");
    location.href = u.href;
}
$("reset").addEventListener("click", () => $("confirm-reset").showModal());
$("confirm-reset").addEventListener("close", () => {
    if ($("confirm-reset").returnValue === "reset") reset();
    else terminal?.focus();
});

// ---------------------------------------------------------------- the file browser

const files = {
    dir: "/root",
    async open(show = true, { focus = false } = {}) {
        $("files").hidden = !show;
        $("files-toggle").setAttribute("aria-expanded", String(show));
        if (show) await this.refresh();
        if (show && focus) ($("file-list").querySelector("button") ?? $("files-up")).focus();
        $("files-export").hidden = !server?.exportTar;
        $("files-import-label").hidden = !server?.importTar;
    },
    join: (dir, name) => (dir === "/" ? "" : dir) + "/" + name,
    async refresh() {
        if (!server) return;
        const list = $("file-list");
        $("files-path").textContent = this.dir;
        let entries;
        try {
            entries = await server.listDir(this.dir);
        } catch (error) {
            this.problem(`Cannot list ${this.dir}: ${pyMessage(error)}`);
            return;
        }
        entries.sort((a, b) => (a.kind === "d") - (b.kind === "d") ? (b.kind === "d") - (a.kind === "d") : a.name.localeCompare(b.name));
        list.replaceChildren(...entries.map((e) => {
            const li = document.createElement("li");
            const name = document.createElement("button");
            name.className = "name";
            name.textContent = e.kind === "d" ? e.name + "/" : e.kind === "l" ? e.name + " →" : e.name;
            name.title = e.kind === "d" ? `Open ${e.name}` : `Download ${e.name}`;
            name.addEventListener("click", () => e.kind === "d" ? this.cd(this.join(this.dir, e.name)) : this.download(e.name));
            const size = document.createElement("span");
            size.className = "size";
            size.textContent = e.kind === "d" ? "" : human(e.size);
            const del = document.createElement("button");
            del.className = "del";
            del.textContent = "✕";
            del.title = del.ariaLabel = `Delete ${e.name}`;
            del.addEventListener("click", () => this.remove(e.name, e.kind === "d"));
            li.append(name, size, del);
            return li;
        }));
        $("files-note").textContent = entries.length ? "Drop files here to upload them into this folder."
            : "This folder is empty. Drop files here to upload them.";
    },
    async cd(dir) { this.dir = dir || "/"; await this.refresh(); $("file-list").querySelector("button")?.focus(); },
    up() { this.cd(this.dir.replace(/\/[^/]*$/, "") || "/"); },
    problem(text) { $("files-note").textContent = text; },
    async download(name) {
        const path = this.join(this.dir, name);
        try {
            const bytes = await server.readFile(path); // a Promise with stored filesystems
            saveBlob(new Blob([bytes]), name);
        } catch (error) {
            this.problem(`Cannot download ${name}: ${pyMessage(error)}`);
        }
    },
    async upload(fileList) {
        for (const f of fileList) {
            try {
                await server.writeFile(this.join(this.dir, f.name), new Uint8Array(await f.arrayBuffer()));
            } catch (error) {
                this.problem(`Cannot upload ${f.name}: ${pyMessage(error)}`);
                return;
            }
        }
        await this.refresh();
        this.problem(`Uploaded ${fileList.length} file${fileList.length === 1 ? "" : "s"} to ${this.dir}.`);
    },
    async mkdir() {
        const name = prompt("Name of the new folder:");
        if (!name) return;
        if (name.includes("/")) { this.problem("A folder name cannot contain “/”."); return; }
        try {
            await server.mkdir(this.join(this.dir, name));
            await server.flush?.(); // done once it would survive a crash, like an upload
            await this.refresh();
        } catch (error) {
            this.problem(`Cannot create ${name}: ${pyMessage(error)}`);
        }
    },
    async remove(name, isDir) {
        if (!confirm(isDir ? `Delete the folder ${name} and everything in it?` : `Delete ${name}?`)) return;
        try {
            await server.remove(this.join(this.dir, name));
            await server.flush?.(); // gone for good before the row goes
            await this.refresh();
        } catch (error) {
            this.problem(`Cannot delete ${name}: ${pyMessage(error)}`);
        }
    },
};
const human = (n) => n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KB` : `${mb(n)} MB`;
const pyMessage = (error) => String(error?.message ?? error).trim().split("\n").pop();
function saveBlob(blob, name) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

// On a small screen the file browser covers the terminal: it closes when the window gets small.
matchMedia("(max-width: 760px)").addEventListener("change", (e) => {
    if (e.matches && !$("files").hidden) files.open(false);
});
$("files-toggle").addEventListener("click", () => files.open($("files").hidden, { focus: true }));
$("files-close").addEventListener("click", () => { files.open(false); terminal?.focus(); });
$("files-up").addEventListener("click", () => files.up());
$("files-refresh").addEventListener("click", () => files.refresh());
$("files-mkdir").addEventListener("click", () => files.mkdir());
$("files-upload").addEventListener("change", (e) => { files.upload([...e.target.files]); e.target.value = ""; });
$("files-export").addEventListener("click", async () => {
    saveBlob(new Blob([await server.exportTar(files.dir)]), (files.dir.split("/").pop() || "root") + ".tar");
});
$("files-import").addEventListener("change", async (e) => {
    const f = e.target.files[0];
    e.target.value = "";
    if (!f) return;
    try {
        await server.importTar(new Uint8Array(await f.arrayBuffer()), files.dir);
        files.refresh();
    } catch (error) {
        files.problem(`Cannot import ${f.name}: ${pyMessage(error)}`);
    }
});
const panel = $("files");
panel.addEventListener("dragover", (e) => { e.preventDefault(); panel.classList.add("drop"); });
panel.addEventListener("dragleave", () => panel.classList.remove("drop"));
panel.addEventListener("drop", (e) => {
    e.preventDefault();
    panel.classList.remove("drop");
    if (e.dataTransfer?.files?.length) files.upload([...e.dataTransfer.files]);
});
panel.addEventListener("keydown", (e) => {
    if (e.key === "Backspace" && e.target.tagName === "BUTTON") { e.preventDefault(); files.up(); }
    if (e.key === "Escape" && innerWidth <= 760) { files.open(false); terminal?.focus(); }
});
// (Capture phase: the terminal would otherwise take Alt+F as a key for the guest.)
document.addEventListener("keydown", (e) => {
    if (e.altKey && e.code === "KeyF") {
        e.preventDefault();
        e.stopPropagation();
        if ($("files").hidden) files.open(true, { focus: true });
        else { files.open(false); terminal?.focus(); }
    }
}, true);

// ---------------------------------------------------------------- offline

async function registerServiceWorker() {
    if (!("serviceWorker" in navigator) || params.has("nosw")) return;
    try {
        const reg = await navigator.serviceWorker.register("sw.js", { updateViaCache: "none" });
        const worker = reg.installing ?? reg.waiting ?? reg.active;
        const done = new Promise((resolve) => {
            navigator.serviceWorker.addEventListener("message", (e) => { if (e.data?.cached) resolve(e.data); });
        });
        // The worker caches everything of this build (the browser's HTTP cache answers most of it).
        const ask = (w) => w.postMessage({ cacheAll: true });
        if (worker.state === "activated") ask(worker);
        else worker.addEventListener("statechange", () => { if (worker.state === "activated") ask(worker); });
        const result = await done;
        window.pyninep.offlineReady = true;
        note(`cached for offline use (${result.cached} files)`);
    } catch (error) {
        note(`offline use unavailable: ${error.message}`);
    }
}
addEventListener("offline", () => { if (statusEl.className === "ok") setStatus(statusEl.textContent.replace(/( \(offline\))?$/, " (offline)"), "ok"); });

// ---------------------------------------------------------------- the scripting interface

window.pyninep = {
    emulator: null, server: null, terminal: null, manifest: null,
    ready, timing: {}, source: null, offlineReady: false,
    saveMachine: () => saveMachine(),
    // A blob from saveMachine: a session-only one over this page's files, a complete one with its own.
    restoreMachine: (bytes) => pyninep.restoreMachine(bytes, { emulator, server }),
    saving: null, lastSave: null,
    bootFresh, reset,
    screenText: () => {
        const b = terminal.buffer.active;
        const lines = [];
        for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true));
        return lines.join("\n").trimEnd();
    },
    files,
};
window.pyninep.sendKeys = (text) => send(new TextEncoder().encode(text));

start().then(() => {
    Object.assign(window.pyninep, { terminal, manifest });
}, (error) => {
    const sentence = error instanceof PageError ? error.message
        : `The sandbox could not start: ${error?.message ?? error}.`;
    showError(sentence, { fresh: error instanceof PageError ? error.fresh : true });
    if (!bars.size) $("progress").hidden = true; // nothing was loading: no empty strip
    setStatus("stopped", "bad");
    note(`start failed: ${error?.stack ?? error}${error?.cause ? `\ncause: ${error.cause.stack ?? error.cause}` : ""}`);
    window.pyninep.failed = sentence;
});

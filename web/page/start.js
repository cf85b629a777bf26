/**
 * start.js — start-up: from the page's first line to the guest's prompt. It checks the browser
 * (WebAssembly, IndexedDB, one tab, room), reads the manifest, loads Python, the emulator and the
 * machine side by side, restores a machine (this browser's last save, else the shipped one) or
 * boots the kernel, wakes the console, and then hands over: the files panel opens, the save loop
 * and the service worker start. Also Boot fresh (#fresh, #error-fresh).
 *
 * Owns the order of start-up, ctx.manifest, ctx.storage, ctx.emulator and ctx.server (set once
 * here; Reset in saving.js stops them), and window.pyninep's source and timing. It must not draw
 * anything itself: it tells the other parts (passed in) what to show.
 */

import * as pyninep from "../pyninep.js";
import * as machine from "../machine.js";
import { takeWebLock } from "../pyninep-idb.js";
import { wakeOnProxyReplies } from "../pyninep-remote.js";
import { $, since } from "./context.js";
import { PageError, isQuotaError, STORAGE_FULL } from "./errors.js";
import { checkQuota, openLocalDb, readLastSave, STORE_DB } from "./saving.js";
import { registerServiceWorker } from "./offline.js";
import { readBody } from "./background.js";

const ANOTHER_TAB = "This sandbox is already open in another tab of this browser; close it there (or reload it there) to use it here.";

/**
 * @typedef {object} StartParts
 * @property {import("./errors.js").Messages} messages
 * @property {import("./progress.js").Progress} progress
 * @property {import("./background.js").Background} background
 * @property {import("./terminal.js").PageTerminal} terminal
 * @property {import("./saving.js").Saving} saving
 * @property {import("./files.js").FilesPanel} files
 */

/** Reload with ?fresh: boot the kernel instead of restoring a machine. */
export function bootFresh() {
    const u = new URL(location.href);
    u.searchParams.set("fresh", "1");
    location.href = u.href;
}
$("fresh").addEventListener("click", bootFresh);
$("error-fresh").addEventListener("click", bootFresh);

/** Exactly one tab runs the sandbox: its saved machine and files are one, and two writers would
 * fork them. (Held for the page's lifetime; a tab closed a moment ago gets a moment to let go.) */
async function holdTabLock() {
    return !navigator.locks || (await takeWebLock(navigator.locks, "pyninep-sandbox")) !== null;
}

/**
 * Start the page: resolves at the guest's prompt, rejects (a PageError, with its sentence) when
 * the sandbox cannot start.
 * @param {import("./context.js").PageContext} ctx
 * @param {StartParts} parts
 */
export async function start(ctx, parts) {
    const { messages, progress, terminal, saving, files } = parts;
    const { setStatus, showError, note } = messages;
    const { params, api } = ctx;
    if (typeof WebAssembly !== "object" || typeof WebAssembly.instantiate !== "function") {
        throw new PageError("This browser cannot run WebAssembly, which the Linux emulator and Python both need: try a current Chrome, Firefox or Safari with WebAssembly enabled.");
    }
    const terminalReady = terminal.start();
    /** @type {import("./context.js").Timing} */
    const timing = (api.timing = {});
    if (params.get("server")) return startOnServer(ctx, parts, /** @type {string} */ (params.get("server")), terminalReady);

    /** @type {IDBDatabase | null} */
    let db = null;
    try {
        if (!window.indexedDB) throw new Error("no indexedDB");
        db = await openLocalDb(messages.reportDataLoss);
    } catch (/** @type {any} */ error) {
        showError("This browser does not let the page use IndexedDB (private browsing or blocked storage), so nothing you do here will be kept after you close the page.");
        note(`IndexedDB unavailable: ${error?.message ?? error}`);
    }
    if (!(await holdTabLock())) throw new PageError(ANOTHER_TAB);
    /** @type {Manifest} */
    const manifest = ctx.manifest = api.manifest = await (await progress.plainFetch("manifest.json", { cache: "no-cache" })).json();
    if (db && manifest.machine && !(await checkQuota(manifest.machine.raw ?? 64 << 20))) showError(STORAGE_FULL);

    // The store (IndexedDB) is the one truth for files. A machine (this browser's last save, or
    // the shipped one) brings back the guest's memory and its 9P session, which re-binds to the
    // store's files as they are now; only a new visitor's empty store is seeded with the shipped
    // machine's files. ?fresh boots the kernel (with the stored files).
    // ?basefs=URL (v86's fs2json, with ?baseurl=URL: its content directory, default base/ beside
    // it): the guest boots that tree, its files fetched as they are read and kept in a database of
    // their own; the shipped machine (made from the default tree) does not apply.
    const base = baseImage(params);
    const storeDb = base ? `${STORE_DB}-base-${shortHash(base.basefs)}` : STORE_DB;
    const storage = ctx.storage = api.storage = db && !params.has("memory") ? `indexeddb:${storeDb}` : "memory";
    const shippedMachine = params.has("fresh") || base ? undefined : manifest.machine;
    const forceBoot = !shippedMachine;
    // Python, the emulator and the machine load side by side; Python first, before this
    // browser's saved machine is read (tens of MB from IndexedDB on a return).
    /** @type {PyninepServer | null} */
    let current = null; // the server, once Python is up; v86 asks for it only after the restore
    /** @type {Handle9p} */
    const handle9p = (req, reply) => {
        // A 9P request is guest activity for the save loop (saving.js says why), not a sign of
        // which files changed: the files panel asks server.changes() for that.
        ctx.activity.requests += 1;
        /** @type {PyninepServer} */ (current).handle9p(req, reply);
    };
    progress.bar("python", "Python (serves Linux its files)");
    // The emulator's wasm first: it is small, and the zstd decoder it carries unpacks Python's
    // snapshot and the shipped machine (unwire) as soon as they arrive.
    progress.bar("linux", forceBoot ? "Linux (the kernel and the PC it runs on)" : "The PC emulator");
    const v86Wasm = compileV86(ctx, progress);
    v86Wasm.catch(() => {}); // reported by loadV86, below
    const emulatorP = loadV86(ctx, parts, forceBoot, handle9p, undefined, v86Wasm).then((em) => { progress.complete("linux"); return em; });
    emulatorP.catch(() => {}); // its failure is reported where it is awaited, below
    const unwire = unwiring(emulatorP, parts.background, v86Wasm);
    // A restore starts from no image: a new visitor's store gets the machine's files instead.
    // On a slow link Python's files come first and the shipped machine after them, so Python
    // starts while the machine arrives instead of both arriving last (locally: a few ms later).
    /** @type {() => void} */
    let pythonFetched = () => {};
    const pythonFetchedP = new Promise((resolve) => { pythonFetched = () => resolve(undefined); });
    const serverP = createServer(ctx, parts, { image: forceBoot ? undefined : null, base }, unwire, pythonFetched).then(async (s) => {
        if (s.openReport?.repairs?.length) note(`the stored files were repaired: ${JSON.stringify(s.openReport.repairs)}`);
        if (s.openReport?.dataLoss) messages.reportDataLoss(s.openReport.dataLoss.message);
        timing.python_ms = since(ctx);
        progress.complete("python");
        return s;
    });
    serverP.catch(() => {}); // its failure is reported where it is awaited, below
    /** @type {import("./saving.js").LastSave | null} */
    let saved = null;
    let olderBuild = false;
    if (shippedMachine && db) {
        try {
            saved = await readLastSave(db, parts.background);
            if (saved?.machine) timing.unpacked_ms = since(ctx);
        } catch (/** @type {any} */ error) {
            note(`could not read the saved machine: ${error.message}`);
        }
        if (saved && saved.stamp !== shippedMachine.stamp) {
            note("the machine saved in this browser is from another build of the page");
            olderBuild = true;
            saved = null;
        }
        // A machine saved without its files (beside the store) cannot start a page without the store.
        if (saved && saved.session && storage === "memory") saved = null;
    }
    api.source = forceBoot ? "boot" : saved ? "saved" : "shipped";
    if (!forceBoot && !saved) progress.bar("machine", "Linux, ready to run");
    // Totals up front: every file this start will fetch, at its size from the manifest.
    const expect = [manifest.wheel, manifest.v86 + "libv86.mjs", manifest.v86 + "v86.wasm", manifest.guest.bios,
        manifest.guest.vgabios, ...["pyodide.asm.wasm", "pyodide.asm.mjs", "python_stdlib.zip"].map((f) => manifest.pyodide + f)];
    if (manifest.pyodideSnapshot && !params.has("nosnap")) expect.push(manifest.pyodideSnapshot);
    if (!shippedMachine) expect.push(...(base ? [] : [manifest.image]), manifest.guest.kernel, manifest.guest.initrd);
    else if (!saved) expect.push(shippedMachine.url);
    for (const rel of expect) {
        const c = progress.classify(rel);
        if (c) progress.progress(c.group, c.rel, 0, c.size);
    }

    setStatus(forceBoot ? "loading Python and Linux…" : saved ? "loading your session…" : "loading Linux…");
    /** @type {Promise<MachineParts> | null} */
    let shippedP = null;
    const shipped = (/** @type {MachineInfo} */ m) => (shippedP ??= progress.fetchWithProgress(m.url, "machine").then(
        async (bytes) => { timing.machine_ms = since(ctx); return unpack(ctx, await unwire(m.url, bytes)); }));
    const savedP = !saved ? null : saved.machine ? Promise.resolve(saved.machine)
        : Promise.reject(new Error(saved.damaged ?? "no machine in the saved record"));
    if (shippedMachine && !saved) pythonFetchedP.then(() => shipped(shippedMachine).catch(() => {}));
    // (A damaged machine is reported once the restore is tried, below.)
    savedP?.catch(() => {});
    /** @type {Promise<unknown> | null} */ (shippedP)?.catch(() => {});
    const [server, firstEmulator] = await Promise.all([serverP, emulatorP, terminalReady]);
    let emulator = firstEmulator;
    ctx.server = current = server;
    ctx.emulator = emulator;
    Object.assign(api, { server, emulator });

    // Whose files: the store's when it holds a filesystem, else (a new visitor, or memory
    // storage) the machine's, which then seed the store.
    const held = storage !== "memory" && !!server.openReport?.held;
    const filesFrom = held ? "server" : "state";
    /** @type {{source: string, screen: string | null} | null} */
    let restored = null;
    if (shippedMachine) {
        /** @type {[string, Promise<MachineParts> | null][]} */
        const tries = saved ? [["saved", savedP], ["shipped", null]] : [["shipped", null]];
        let touched = false; // a restore has written the emulator's memory (it is not fresh)
        for (const [source, partsP] of tries) {
            try {
                const machineParts = await (partsP ?? shipped(shippedMachine));
                setStatus(source === "saved" ? "bringing back your session…" : "starting Linux…");
                const fresh = !touched;
                touched = true;
                const { info, report, took } = await intoFreshMemory(fresh ? emulator : null, () => pyninep.restoreMachine(machineParts, {
                    // A new visitor's store gets the machine's files after the prompt, not before.
                    emulator, server, files: filesFrom, commit: "later" }));
                timing.restored_ms = since(ctx);
                timing.took_files_restore_ms = took.server_ms; // durations, not clock times
                timing.took_v86_restore_ms = took.v86_ms;
                restored = { source, screen: source === "saved" ? saved?.screen ?? "" : null };
                const when = info.created ? ` saved ${info.created}` : "";
                note(`restored the ${source === "saved" ? "session saved in this browser" : "machine shipped with the page"}${when} ${filesFrom === "server"
                    ? `over the stored files: ${report?.fids} open file(s) re-bound${report?.stale.length ? `, ${report.stale.length} gone since` : ""}`
                    : "with its files"}`);
                break;
            } catch (/** @type {any} */ error) {
                if (error.foreign) { note(`the ${source} machine was saved over other files than the ones stored here`); continue; }
                if (source === "saved") { note(`the machine saved in this browser could not be restored (${error.message}); the shipped one starts instead`); continue; }
                throw new PageError("The shipped machine could not be restored (the download is damaged or incomplete); boot fresh to start from the kernel instead.", { fresh: true, cause: error });
            }
        }
        if (!restored) { // the stored files come from another build's machine: boot with them
            emulator.destroy?.();
            emulator = ctx.emulator = api.emulator = await loadV86(ctx, parts, true, handle9p, undefined, v86Wasm);
            progress.bar("linux", "Linux (the kernel)");
        }
    }
    api.source = /** @type {"boot" | "saved" | "shipped"} */ (restored?.source ?? "boot");
    emulator.add_listener("serial0-output-byte", terminal.onSerial);
    if (restored) {
        // The guest sets its clock and may hold cached pages of files that changed after its
        // save: it does both, drops them (and says so on the second serial port) before it gets
        // a key: what is typed meanwhile (a fraction of a second) waits, the prompt does not.
        const token = `drop${Math.random().toString(36).slice(2, 10)}`;
        {
            terminal.holdInput(true);
            guestDropped(ctx, messages, token).then(() => {
                terminal.holdInput(false);
                timing.input_ms = since(ctx);
                terminal.sendTypedEarly();
            });
        }
        terminal.wake(restored.screen, token);
    } else {
        setStatus("booting Linux…");
        if (base) {
            note(`booting the base image ${base.basefs} (files from ${base.baseurl})`);
            watchBase(server, messages);
        }
        note("booting (the kernel's messages are in this log)");
        await waitForLog(ctx, messages, /[#$] $/, 180_000); // the boot's first prompt
        await server.writeFile(machine.CONSOLE_SCRIPT_PATH, machine.CONSOLE_SCRIPT);
        emulator.serial0_send(machine.CONSOLE_COMMAND);
        await waitForLog(ctx, messages, machine.READY_MARKER);
        terminal.wake(null);
    }
    await Promise.race([terminal.ready, new Promise((_, reject) => setTimeout(
        () => reject(new PageError("Linux did not answer within 30 s; boot fresh to start it again.", { fresh: true })), 30_000))]);
    timing.prompt_ms = since(ctx);
    // A new visitor's store gets the machine's files now (restoreMachine's commit: "later").
    if (restored?.source === "shipped" && filesFrom === "state" && storage !== "memory") {
        server.flush().then(() => { timing.seeded_ms = since(ctx); }, (error) => note(`the files were not stored yet: ${error.message}`));
    }
    progress.hide();
    setStatus(`ready${navigator.onLine ? "" : " (offline)"}`, "ok");
    note(`shell ready (${JSON.stringify(timing)})`);
    if (olderBuild || (shippedMachine && !restored)) {
        showError(held && !restored
            ? "Your files were kept from an older version of this page, whose machine this version cannot restore, so Linux started afresh with them."
            : "The machine saved in this browser comes from an older version of this page, so this version's machine started instead, with your files.");
    }
    terminal.focus();
    files.open(innerWidth > 760 && !params.has("nofiles"));
    if (db && !base) saving.keepSaving(db);
    else if (base) { // no machine to save (a base boots): the files are committed as they change, and on leaving
        const flush = () => { server.flush().catch(() => {}); };
        document.addEventListener("visibilitychange", () => { if (document.visibilityState === "hidden") flush(); });
        addEventListener("pagehide", flush);
    }
    registerServiceWorker(ctx, messages);
}

/**
 * Server mode (?server=ws://HOST:PORT/): the guest's files live on `python -m pyninep_browser
 * serve --ws` (docs/serve.md), so Python does not load and nothing is kept in this browser; the
 * kernel boots (a saved machine's 9P session is on no server) with its root on the server, over
 * v86's own proxy_url (?via=shim: our shim's handle9p; bench/serve.py compares them). Several tabs
 * and browsers may share one server: no tab lock.
 * @param {import("./context.js").PageContext} ctx
 * @param {StartParts} parts
 * @param {string} url
 * @param {Promise<unknown>} terminalReady
 */
async function startOnServer(ctx, parts, url, terminalReady) {
    const { messages, progress, terminal, files } = parts;
    const { setStatus, note } = messages;
    const { params, api } = ctx;
    const timing = api.timing;
    ctx.manifest = api.manifest = await (await progress.plainFetch("manifest.json", { cache: "no-cache" })).json();
    const where = url.replace(/token=[^&]*/, "token=…");
    ctx.storage = api.storage = "server";
    api.source = "boot";
    progress.bar("linux", "Linux (the kernel and the PC it runs on)");
    setStatus(`connecting to the file server at ${where}…`);
    /** @type {PyninepServer} */
    let server;
    try {
        server = await pyninep.createServer({ server: url, onOutsideChange: () => guestDropsCaches(ctx, parts) });
    } catch (/** @type {any} */ error) {
        throw new PageError(`The file server at ${where} cannot be reached (${error.message}): start it with "python -m pyninep_browser serve --ws HOST:PORT", or check the address.`, { cause: error });
    }
    const remote = /** @type {any} */ (server);
    const shim = params.get("via") === "shim";
    /** @type {Handle9p} */
    const handle9p = (req, reply) => { ctx.activity.requests += 1; server.handle9p(req, reply); };
    const emulator = await loadV86(ctx, parts, true, handle9p, shim ? undefined : remote.proxyUrl);
    if (shim) remote.attachEmulator(emulator);
    else wakeOnProxyReplies(emulator);
    progress.complete("linux");
    await terminalReady;
    ctx.server = server;
    ctx.emulator = emulator;
    Object.assign(api, { server, emulator });
    emulator.add_listener("serial0-output-byte", terminal.onSerial);
    setStatus(`booting Linux; its files live on ${where}…`);
    note(`server mode: files on ${where}, session ${remote.session}, 9P over ${shim ? "the page's shim" : "v86's proxy_url"}`);
    await waitForLog(ctx, messages, /[#$] $/, 180_000);
    await server.writeFile(machine.CONSOLE_SCRIPT_PATH, machine.CONSOLE_SCRIPT);
    emulator.serial0_send(machine.CONSOLE_COMMAND);
    await waitForLog(ctx, messages, machine.READY_MARKER);
    terminal.wake(null);
    await terminal.ready;
    timing.prompt_ms = since(ctx);
    progress.hide();
    setStatus(`ready: files live on ${where}`, "ok");
    // A socket away longer than the server's grace period loses the guest's open files: say so.
    const watch = setInterval(async () => {
        const state = await remote.sessionState().catch(() => null);
        if (state === "expired" || state === "unknown") {
            clearInterval(watch);
            messages.showError(state === "expired"
                ? `The connection to the file server at ${where} was lost for longer than it waits, so Linux's open files there were closed: reload the page to start again.`
                : `The file server at ${where} no longer knows this page's session (it was restarted), so Linux's open files there are gone: reload the page to start again.`);
            setStatus(`disconnected from ${where}`, "bad");
        }
    }, 10_000);
    terminal.focus();
    files.open(innerWidth > 760 && !params.has("nofiles"));
}

/** A fresh emulator's guest memory is zero but for the BIOS in its first MiB (it has never run),
 * yet v86's restore zeroes all of it before writing the saved pages: a memset that makes the
 * browser commit every page of the guest's memory (measured: 0.19 s of a 0.25 s restore, and
 * 256 MB more for the tab). Into a fresh emulator, only that first MiB is zeroed; the rest stays
 * untouched until the guest uses it. `emulator` null: an ordinary restore.
 * @template T
 * @param {Emulator | null} emulator
 * @param {() => Promise<T>} restore
 * @returns {Promise<T>} */
async function intoFreshMemory(emulator, restore) {
    const cpu = /** @type {any} */ (emulator)?.v86?.cpu;
    const zero = cpu?.zero_memory;
    if (typeof zero !== "function") return restore();
    const FIRST_MIB = 1 << 20;
    cpu.zero_memory = (/** @type {number} */ start, /** @type {number} */ length) => {
        if (start < FIRST_MIB) zero.call(cpu, start, Math.min(length, FIRST_MIB - start));
    };
    try {
        return await restore();
    } finally {
        cpu.zero_memory = zero;
    }
}

/** The emulator, loaded (its files fetched, its wasm compiled); `boot`: with the kernel, running.
 * @param {import("./context.js").PageContext} ctx
 * @param {StartParts} parts
 * @param {boolean} boot
 * @param {Handle9p} handle9p
 * @param {string} [proxyUrl]  server mode: v86's own proxy_url instead of handle9p
 * @param {Promise<WebAssembly.Module>} [wasm]  v86's wasm, compiled (compileV86); else v86 fetches it
 * @returns {Promise<Emulator>} */
async function loadV86(ctx, { progress }, boot, handle9p, proxyUrl = undefined, wasm = undefined) {
    const manifest = /** @type {Manifest} */ (ctx.manifest);
    const base = new URL(".", location.href);
    /** @type {{V86: new (options: object) => Emulator}} */
    const { V86 } = await import(new URL(`${manifest.v86}libv86.mjs`, base).href);
    const options = machine.v86Options(manifest, { baseUrl: base, handle9p, boot, proxyUrl });
    // (v86 never learns of a wasm that failed: the promise below reports it instead.)
    if (wasm) options.wasm_fn = async (/** @type {WebAssembly.Imports} */ imports) => (await WebAssembly.instantiate(await wasm, imports)).exports;
    const em = new V86(options);
    em.add_listener("download-progress", (/** @type {{file_name: string, loaded: number, total: number}} */ e) => {
        const c = progress.classify(e.file_name);
        if (c) progress.progress("linux", c.rel, e.loaded, e.total || c.size);
    });
    await new Promise((resolve, reject) => {
        wasm?.catch((/** @type {any} */ error) => reject(new Error(`cannot load ${manifest.v86}v86.wasm (${error?.message ?? error})`)));
        em.add_listener("emulator-loaded", resolve);
        em.add_listener("download-error", (/** @type {{file_name: string}} */ e) => reject(new Error(`cannot download ${e.file_name}`)));
    });
    return em;
}

/** The server's onOutsideChange: the page (or a live file's Python) changed files the guest's
 * cache may hold (cache=loose: docs/guest.md), so the guest drops its caches before the page's
 * call resolves. Before the console is set up nothing listens, and nothing is cached that the
 * boot has not read through the server since.
 * @param {import("./context.js").PageContext} ctx
 * @param {StartParts} parts */
async function guestDropsCaches(ctx, parts) {
    if (!ctx.emulator || !parts.terminal.consoleLive) return;
    const token = `drop${Math.random().toString(36).slice(2, 10)}`;
    const heard = guestDropped(ctx, parts.messages, token, "outside_drop_ms");
    parts.terminal.askDrop(token);
    await heard;
}

/** Resolves once the guest echoes `token` on its second serial port (it has dropped its caches),
 * or after a few seconds without it (a note in the log says so).
 * @param {import("./context.js").PageContext} ctx
 * @param {import("./errors.js").Messages} messages
 * @param {string} token
 * @param {string} [timingKey]  where the time it took goes in window.pyninep.timing */
async function guestDropped(ctx, messages, token, timingKey = "drop_ms") {
    const started = performance.now();
    const serial1 = machine.listenSerial1(/** @type {Emulator} */ (ctx.emulator));
    const ok = await serial1.says(token, 5000);
    serial1.close();
    ctx.api.timing[timingKey] = Math.round(performance.now() - started);
    if (!ok) messages.note("the guest did not confirm that it dropped its caches");
    return ok;
}

/** ?basefs and ?baseurl, resolved against the page, or null.
 * @param {URLSearchParams} params */
function baseImage(params) {
    const fs = params.get("basefs");
    if (!fs) return null;
    const basefs = new URL(fs, location.href).href;
    return { basefs, baseurl: new URL(params.get("baseurl") ?? "base/", params.get("baseurl") ? location.href : basefs).href };
}

/** A short name for a URL (a database per base image). @param {string} text */
function shortHash(text) {
    let h = 0x811c9dc5;
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
    return (h >>> 0).toString(36);
}

/** While base files load, the status line says how many (and how much); a file the base could
 * not give is said once, in the error banner (the guest got an I/O error for it).
 * @param {PyninepServer} server
 * @param {import("./errors.js").Messages} messages */
function watchBase(server, messages) {
    let failed = 0, loading = false;
    const timer = setInterval(() => {
        let p;
        try { p = server.baseProgress(); } catch { clearInterval(timer); return; }
        if (p.failed > failed) {
            failed = p.failed;
            messages.showError(`A file of the base image could not be loaded, so Linux got an I/O error reading it (${p.error}).`);
        }
        if (p.pending > 0) {
            loading = true;
            messages.setStatus(`loading files from the base image: ${p.fetched} so far (${(p.bytes / 1048576).toFixed(1)} MB)`, "busy",
                `${p.fetched} files, ${p.bytes} bytes fetched; ${p.pending} under way`);
        } else if (loading) {
            loading = false;
            messages.setStatus(`ready: ${p.fetched} files loaded from the base image${navigator.onLine ? "" : " (offline)"}`, "ok");
        }
    }, 250);
}

/** The 9P server over the storage start() chose, with the page's sentences for its failures.
 * @param {import("./context.js").PageContext} ctx
 * @param {StartParts} parts
 * @param {{image: null | undefined, base: {basefs: string, baseurl: string} | null}} options
 *   image null: start from no image (a restore follows); base: boot a v86 fs2json base image
 * @param {Unwire} unwire
 * @param {() => void} [fetched]  called once Python's snapshot is in */
async function createServer(ctx, parts, { image, base }, unwire, fetched = () => {}) {
    // The store opens and the wheel arrives while Python loads.
    const pyodide = loadPython(ctx, parts, unwire, fetched);
    try {
        return await pyninep.createServer({ storage: ctx.storage, manifest: ctx.manifest, pyodide,
            onOutsideChange: () => guestDropsCaches(ctx, parts),
            ...(image === null ? { image: null } : {}), ...(base ?? {}) });
    } catch (/** @type {any} */ error) {
        if (/another tab|already being served/i.test(error.message)) throw new PageError(ANOTHER_TAB, { cause: error });
        if (isQuotaError(error)) {
            throw new PageError("Your browser's storage for this site is full, so the sandbox cannot open its files: free some space, or reset.", { cause: error });
        }
        throw error;
    }
}

/** Pyodide from the build's memory snapshot (Python already started, our package imported), or,
 * without one or if it fails, started from scratch by createServer.
 * @param {import("./context.js").PageContext} ctx
 * @param {StartParts} parts
 * @param {Unwire} unwire
 * @param {() => void} fetched  called once the snapshot is in (or will not be fetched) */
async function loadPython(ctx, { progress, messages }, unwire, fetched) {
    const manifest = /** @type {Manifest} */ (ctx.manifest);
    if (!manifest.pyodideSnapshot || ctx.params.has("nosnap")) { fetched(); return undefined; }
    try {
        // All of Python's files at once: Pyodide fetches its wasm and standard library as soon as
        // it is called and waits for the snapshot only to restore it.
        const rel = manifest.pyodideSnapshot;
        const snapshot = progress.fetchWithProgress(rel, "python").finally(fetched).then((bytes) => unwire(rel, bytes));
        snapshot.catch(() => {}); // reported by loadPyodide, below
        /** @type {{loadPyodide: (options: object) => Promise<Pyodide>}} */
        const { loadPyodide } = await import(new URL(`${manifest.pyodide}pyodide.mjs`, location.href).href);
        const pyodide = await loadPyodide({ indexURL: new URL(manifest.pyodide, location.href).href, _loadSnapshot: snapshot });
        ctx.api.timing.pyodide_ms = since(ctx);
        return pyodide;
    } catch (/** @type {any} */ error) {
        messages.note(`the Python snapshot did not load (${error.message}); starting Python from scratch`);
        return undefined;
    }
}

/** v86's wasm, compiled as it streams in (and, on a return, from V8's cache of its code: the
 * response goes to the compiler as the browser gave it, not through the fetch hook). Its bytes
 * count towards the emulator's bar as they arrive.
 * @param {import("./context.js").PageContext} ctx
 * @param {import("./progress.js").Progress} progress
 * @returns {Promise<WebAssembly.Module>} */
async function compileV86(ctx, progress) {
    const url = new URL(`${/** @type {Manifest} */ (ctx.manifest).v86}v86.wasm`, location.href).href;
    const response = await progress.plainFetch(url);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const c = progress.classify(url);
    // A copy of the body, counted, and kept for a host that does not say application/wasm (the
    // streaming compiler refuses that response; the bytes compile all the same).
    const counted = readBody(url, response.clone(), (loaded, total) => {
        if (c) progress.progress("linux", c.rel, loaded, total || c.size);
    });
    counted.catch(() => {});
    try {
        return await WebAssembly.compileStreaming(response);
    } catch {
        return await WebAssembly.compile(await counted);
    }
}

/** @typedef {(rel: string, bytes: Uint8Array) => Promise<Uint8Array>} Unwire */

/** A file the build packed for the wire (sitefiles.pack_for_wire), back to its bytes by its name:
 * .zst by the zstd decoder in v86's wasm (in the page's worker, as soon as the wasm is compiled;
 * on this thread, the emulator's, where the worker cannot), .gz through the browser's gzip;
 * anything else (or one a host decoded on the way) as it is.
 * @param {Promise<Emulator>} emulatorP
 * @param {import("./background.js").Background} background
 * @param {Promise<WebAssembly.Module>} v86Wasm
 * @returns {Unwire} */
function unwiring(emulatorP, background, v86Wasm) {
    return async (rel, bytes) => {
        if (rel.endsWith(".gz") && bytes[0] === 0x1f && bytes[1] === 0x8b) {
            return new Uint8Array(await new Response(new Blob([/** @type {Uint8Array<ArrayBuffer>} */ (bytes)]).stream().pipeThrough(new DecompressionStream("gzip"))).arrayBuffer());
        }
        // Anything else is taken as it is: so is a .gz or .zst that a host sent with a
        // Content-Encoding of its own (by its name), which the browser has decoded already.
        if (!rel.endsWith(".zst") || !isZstd(bytes)) return bytes;
        const size = zstdContentSize(bytes);
        if (size === null) throw new Error(`${rel} is not a zstd frame with its size`);
        try {
            return await background.unzstd(bytes, size, await v86Wasm);
        } catch (/** @type {any} */ error) {
            if (error?.damaged) throw new Error(`${rel} is damaged (zstd: ${error.message})`);
        }
        const emulator = /** @type {any} */ (await emulatorP);
        try {
            return new Uint8Array(emulator.zstd_decompress(size, bytes));
        } catch (/** @type {any} */ error) { // (a damaged frame traps in the decoder's wasm)
            throw new Error(`${rel} is damaged (zstd: ${error.message})`);
        }
    };
}

/** Whether `b` starts with a zstd frame's magic number. @param {Uint8Array} b */
const isZstd = (b) => b[0] === 0x28 && b[1] === 0xb5 && b[2] === 0x2f && b[3] === 0xfd;

/** The content size a zstd frame's header states (RFC 8878, 3.1.1.1), or null without one.
 * @param {Uint8Array} b */
function zstdContentSize(b) {
    if (b.length < 6 || !isZstd(b)) return null;
    const fhd = b[4], fcsFlag = fhd >> 6, single = (fhd >> 5) & 1;
    const at = 5 + (single ? 0 : 1) + [0, 1, 2, 4][fhd & 3];
    const width = [single ? 1 : 0, 2, 4, 8][fcsFlag];
    if (width === 0 || at + width > b.length) return null;
    let size = 0;
    for (let i = width - 1; i >= 0; i--) size = size * 256 + b[at + i];
    return width === 2 ? size + 256 : size;
}

/** Checked and unpacked as soon as it arrives (inflating overlaps Python's start); errors wait
 * for the restore.
 * @param {import("./context.js").PageContext} ctx
 * @param {Uint8Array} bytes */
async function unpack(ctx, bytes) {
    const parts = await pyninep.readMachine(bytes);
    ctx.api.timing.unpacked_ms = since(ctx);
    return parts;
}

/** Resolves once the log (the guest's console before it is live) shows `pattern`.
 * @param {import("./context.js").PageContext} ctx
 * @param {import("./errors.js").Messages} messages
 * @param {string | RegExp} pattern */
function waitForLog(ctx, messages, pattern, ms = 30_000) {
    const emulator = /** @type {Emulator} */ (ctx.emulator);
    const test = typeof pattern === "string" ? (/** @type {string} */ t) => t.includes(pattern) : (/** @type {string} */ t) => pattern.test(t);
    const from = messages.logText().length;
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new PageError("Linux did not finish booting; see the boot log below, or reload to try again.")), ms);
        const listener = () => {
            if (test(messages.logText().slice(from))) {
                clearTimeout(timer);
                emulator.remove_listener("serial0-output-byte", listener);
                resolve(undefined);
            }
        };
        emulator.add_listener("serial0-output-byte", listener);
    });
}

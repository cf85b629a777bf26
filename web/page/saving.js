/**
 * saving.js — what this browser keeps of the machine, and forgetting it: the page's own IndexedDB
 * database ("pyninep-page": the last machine saved here, with its screen), the loop that saves the
 * running machine into it, the room that needs, and Reset (#reset, #confirm-reset), which deletes
 * it and the guest's files.
 *
 * Files need no saving here: the server commits them to IndexedDB itself (at most a second after a
 * change, at once on fsync). What is saved is the machine: the guest's memory and its 9P session,
 * so the next visit (a reload, a closed tab, a crash) restores the shell where it was, over the
 * store's files as they are then. It must not touch the guest's files or their database beyond
 * deleting it on Reset, nor restore anything (start.js reads the last save with readLastSave()).
 */

import * as pyninep from "../pyninep.js";
import { $, element } from "./context.js";
import { isQuotaError, STORAGE_FULL } from "./errors.js";
import { mb } from "./progress.js";
import { unpackSaved } from "./background.js";

export const LOCAL_DB = "pyninep-page"; // the page's own store: the last machine saved in this browser
export const STORE_DB = "pyninep-sandbox"; // the guest's files, when pyninep.js keeps them in IndexedDB

/**
 * What the guest has been doing, as counts, for the save loop: a guest that did something has a
 * different memory to save. Console output and typed keys count (terminal.js), and so do 9P
 * requests (start.js's handle9p): a guest reading or writing files changes its own memory (page
 * cache, the processes doing it), which is what a machine save keeps. This is about the guest's
 * memory, not about which files changed: the files panel asks the server's change counter.
 */
export class GuestActivity {
    requests = 0;
    output = 0;
    input = 0;
    /** performance.now() when the counts last moved (as the save loop saw it) */
    last = 0;
    get count() { return this.requests + this.output + this.input; }
}

/** @typedef {{stamp?: string, bytes: Uint8Array, id?: number, screen?: string, session?: boolean}} SavedMachine
 * (the record in the "machine" store) */
/** @typedef {Omit<SavedMachine, "bytes"> & {machine?: import("../pyninep-machine.js").MachineParts, damaged?: string}} LastSave
 * (a record as readLastSave gives it: its bytes read as a machine blob, or why they could not be) */

/** The page's own database, created on first use. */
export function openLocalDb(/** @type {(message: string | undefined) => void} */ reportDataLoss) {
    return /** @type {Promise<IDBDatabase>} */ (new Promise((resolve, reject) => {
        /** @type {IDBOpenDBRequest} */
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
            const e = /** @type {IDBVersionChangeEvent & {dataLoss?: string, dataLossMessage?: string}} */ (event);
            if (e.dataLoss && e.dataLoss !== "none") reportDataLoss(e.dataLossMessage);
            request.result.createObjectStore("machine");
        };
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
        request.onblocked = () => reject(new Error("blocked"));
    }));
}

/**
 * One transaction on the "machine" store: resolves to the request's result once it committed.
 * @template T
 * @param {IDBDatabase} db
 * @param {IDBTransactionMode} mode
 * @param {(store: IDBObjectStore) => IDBRequest<T>} fn
 * @returns {Promise<T>}
 */
function idb(db, mode, fn) {
    return new Promise((resolve, reject) => {
        const tx = db.transaction("machine", mode);
        const result = fn(tx.objectStore("machine"));
        tx.oncomplete = () => resolve(result.result);
        tx.onerror = tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction failed"));
    });
}

/** The machine last saved in this browser, if any, read and unpacked by the page's worker (27 MB
 * of it for the Debian page: off the main thread, which Python's start needs at that moment), or
 * here where there is no worker.
 * @param {IDBDatabase} db  this page's database (openLocalDb)
 * @param {import("./background.js").Background} background
 * @returns {Promise<LastSave | null>} */
export async function readLastSave(db, background) {
    const here = async () => unpackSaved(/** @type {SavedMachine | undefined} */ (await idb(db, "readonly", (s) => s.get("last"))));
    // Counting reads no value: a first visit (nothing saved) is answered here at once, and the
    // bars it shows are not held up by the worker's start.
    if (!(await idb(db, "readonly", (s) => s.count("last")))) return null;
    try {
        return await background.readSaved({ db: db.name, store: "machine", key: "last" }, here);
    } catch {
        return here(); // the worker could not open the database (a browser may refuse it there)
    }
}

/** Whether the browser has room for `need` more bytes for this site (true when it cannot tell). */
export async function checkQuota(/** @type {number} */ need) {
    try {
        const { usage = 0, quota = Infinity } = await navigator.storage?.estimate?.() ?? {};
        return quota - usage >= need;
    } catch {
        return true;
    }
}

// It is saved once the guest has been quiet for a moment after doing something, at least every
// BUSY_SAVE_MS while it keeps busy, and when the page is hidden or closed (a bonus: an unloading
// page may not finish).
const QUIET_MS = 1000, BUSY_SAVE_MS = 30_000, CHECK_MS = 250;

/** @typedef {ReturnType<typeof createSaving>} Saving */

/**
 * @param {import("./context.js").PageContext} ctx
 * @param {{messages: import("./errors.js").Messages, terminal: import("./terminal.js").PageTerminal}} parts
 */
export function createSaving(ctx, { messages, terminal }) {
    const { setStatus, setSaved, showError, note } = messages;
    /** @type {Promise<void> | null} */
    let saving = null;

    /** The running machine as one blob: without its files when they are in the store (the store is
     * their truth, and this keeps a save to the guest's memory and 9P session), else with them. */
    function saveMachine() {
        return pyninep.saveMachine(/** @type {Emulator} */ (ctx.emulator), /** @type {PyninepServer} */ (ctx.server),
            { session: ctx.storage !== "memory", meta: { stamp: ctx.manifest?.machine?.stamp } });
    }

    /** Save the machine into `db` whenever the guest did something and then rested (see above). */
    function keepSaving(/** @type {IDBDatabase} */ db) {
        const activity = ctx.activity, api = ctx.api;
        let savedAt = activity.count, lastSave = performance.now(), seen = savedAt;
        const save = async (/** @type {string} */ why) => {
            if (saving || !ctx.emulator || api.resetting) return saving;
            saving = api.saving = (async () => {
                const t = performance.now();
                const at = activity.count;
                setStatus("saving the session…");
                try {
                    const screen = terminal.screenToKeep();
                    const bytes = await saveMachine();
                    // One transaction: the new machine replaces the last one whole, or not at all.
                    await idb(db, "readwrite", (s) => s.put({ stamp: ctx.manifest?.machine?.stamp, bytes, id: Date.now(),
                        screen, session: ctx.storage !== "memory" }, "last"));
                    savedAt = at;
                    lastSave = performance.now();
                    const ms = Math.round(lastSave - t);
                    api.lastSave = { at: Date.now(), why, bytes: bytes.length, ms };
                    note(`saved the machine (${why}): ${mb(bytes.length)} MB in ${ms} ms`);
                    setSaved(api.lastSave.at, `The running machine (memory, open files, screen) was saved in this browser at ${new Date(api.lastSave.at).toLocaleTimeString()} (${why}): ${mb(bytes.length)} MB in ${ms} ms. Your files are saved as you change them.`);
                } catch (/** @type {any} */ error) {
                    if (isQuotaError(error)) showError(STORAGE_FULL);
                    else showError(`Saving the machine failed: ${error.message}.`);
                    setStatus("session not saved", "bad");
                } finally {
                    saving = api.saving = null;
                }
            })();
            return saving;
        };
        setInterval(() => {
            const now = performance.now(), count = activity.count;
            if (count !== seen) { seen = count; activity.last = now; }
            if (count === savedAt || saving) return;
            if (now - activity.last >= QUIET_MS) save("quiet");
            else if (now - lastSave >= BUSY_SAVE_MS) save("busy");
        }, CHECK_MS);
        api.save = () => save("on request");
        document.addEventListener("visibilitychange", () => { if (document.visibilityState === "hidden") save("page hidden"); });
        addEventListener("pagehide", () => save("page closed"));
    }

    /** Forget the saved machine and the guest's files, then start again (the shipped machine). */
    async function reset() {
        ctx.api.resetting = true;
        ctx.emulator?.stop();
        await ctx.server?.close?.(); // lets go of the files' database
        // The files' database is the one this page opened (a base image has its own).
        const files = ctx.storage.startsWith("indexeddb:") ? ctx.storage.slice(10) : STORE_DB;
        for (const name of files === STORE_DB ? [LOCAL_DB, STORE_DB] : [files]) {
            await new Promise((resolve) => {
                const request = indexedDB.deleteDatabase(name);
                request.onsuccess = request.onerror = request.onblocked = () => resolve(undefined);
            });
        }
        const u = new URL(location.href);
        u.searchParams.delete("fresh");
        location.href = u.href;
    }
    const confirmReset = element("confirm-reset", HTMLDialogElement);
    $("reset").addEventListener("click", () => confirmReset.showModal());
    confirmReset.addEventListener("close", () => {
        if (confirmReset.returnValue === "reset") reset();
        else terminal.focus();
    });

    return { saveMachine, keepSaving, reset };
}

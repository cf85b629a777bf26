/**
 * errors.js — what the page says in words: the status line (#status), the error banner (#error:
 * one readable sentence, with a Boot fresh button when booting fresh would help), and the boot log
 * (#log-text: the kernel's messages before the console is live, and the page's own notes).
 *
 * The status line is in plain words (what is loading, when the session was saved); numbers go to
 * its tooltip and the boot log.
 *
 * Owns those elements and the wording of the errors that are not tied to one part (storage full,
 * data the browser discarded, a failed start). It must not touch the terminal, the files panel or
 * the progress bars, and decides nothing: the parts call it to say what happened.
 */

import { $ } from "./context.js";

/** A failure that ends start-up with its own sentence; `fresh`: offer to boot fresh. */
export class PageError extends Error {
    /**
     * @param {string} sentence
     * @param {{fresh?: boolean, cause?: unknown}} [options]
     */
    constructor(sentence, { fresh = false, cause } = {}) {
        super(sentence, { cause });
        this.fresh = fresh;
    }
}

/** The browser refused to store more for this site. */
export const isQuotaError = (/** @type {any} */ e) => e?.name === "QuotaExceededError" || /quota/i.test(String(e?.message));

export const STORAGE_FULL = "Your browser's storage for this site is full, so this session cannot be saved: free some space (or reset) to keep your files.";

/** @typedef {ReturnType<typeof createMessages>} Messages */

/** @param {import("./context.js").PageContext} ctx */
export function createMessages(ctx) {
    const statusEl = $("status");
    /** When the machine was last saved (Date.now()), while the status line says so; else null. */
    let savedAt = /** @type {number | null} */ (null);
    /** @param {string} text @param {"busy" | "ok" | "bad"} [kind] @param {string} [details] the tooltip */
    function setStatus(text, kind = "busy", details = "") {
        savedAt = null;
        statusEl.textContent = text;
        statusEl.className = kind;
        statusEl.title = details;
    }

    /** The status line says when the session was saved, in words ("saved 10 s ago"), kept current;
     * the numbers (size, time taken) are in its tooltip and the boot log only. */
    function setSaved(/** @type {number} */ at, /** @type {string} */ details) {
        setStatus("", "ok", details);
        savedAt = at;
        showSaved();
    }
    function showSaved() {
        if (savedAt === null) return;
        const s = Math.max(0, Math.round((Date.now() - savedAt) / 1000));
        const ago = s < 5 ? "just now" : s < 60 ? `${Math.floor(s / 5) * 5} s ago`
            : s < 3600 ? `${Math.floor(s / 60)} min ago` : `at ${new Date(savedAt).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
        statusEl.textContent = `session saved ${ago}${navigator.onLine ? "" : " (offline)"}`;
    }
    setInterval(showSaved, 5000);

    /** One readable sentence in the page; `fresh` adds a Boot fresh button. Fatal ones stop start-up. */
    function showError(/** @type {string} */ sentence, { fresh = false } = {}) {
        $("error-text").textContent = sentence;
        $("error-fresh").hidden = !fresh;
        $("error").hidden = false;
    }

    const logEl = $("log-text");
    let logText = "";
    let logPending = false;
    function log(/** @type {string} */ text) {
        logText += text;
        if (logText.length > 200_000) logText = logText.slice(-150_000);
        if (!logPending) {
            logPending = true;
            requestAnimationFrame(() => { logPending = false; logEl.textContent = logText; });
        }
    }
    const note = (/** @type {string} */ line) => log(`[page ${((performance.now() - ctx.t0) / 1000).toFixed(2)} s] ${line}\n`);

    let dataLossShown = false;
    /** Chromium found the site's IndexedDB damaged and deleted it: say so, once. */
    function reportDataLoss(/** @type {string | undefined} */ message) {
        note(`the browser discarded this site's IndexedDB as damaged: ${message || "no reason given"}`);
        if (dataLossShown) return;
        dataLossShown = true;
        showError("Your browser found this site's stored data damaged and deleted it, so your earlier files and saved machine are gone and the sandbox starts fresh. This can follow a browser crash; to keep a copy of files you care about, use \u201cExport tar\u201d in the files panel now and then.");
    }

    /** Start-up failed: the sentence shown (a PageError's own, else a general one). */
    function startFailed(/** @type {any} */ error) {
        const sentence = error instanceof PageError ? error.message
            : `The sandbox could not start: ${error?.message ?? error}.`;
        showError(sentence, { fresh: error instanceof PageError ? error.fresh : true });
        setStatus("stopped", "bad");
        note(`start failed: ${error?.stack ?? error}${error?.cause ? `\ncause: ${error.cause.stack ?? error.cause}` : ""}`);
        return sentence;
    }

    addEventListener("offline", () => {
        if (savedAt !== null) showSaved();
        else if (statusEl.className === "ok") setStatus((statusEl.textContent ?? "").replace(/( \(offline\))?$/, " (offline)"), "ok");
    });

    return {
        setStatus, setSaved, showError, log, note, reportDataLoss, startFailed,
        /** Everything logged so far (start.js waits for the boot's messages in it). */
        logText: () => logText,
    };
}

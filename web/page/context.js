/**
 * context.js — the running page's shared state, handed explicitly to each part of the page
 * (start.js, terminal.js, files.js, saving.js, ...): when it started, its query parameters, the
 * manifest, the emulator and the server once they exist, the guest's activity counts, and
 * window.pyninep, the scripting interface every part publishes to.
 *
 * It owns the shape of that state and of window.pyninep, nothing else: no element, no behaviour.
 * A part that needs another part's behaviour gets that part passed in (see app.js), never its
 * private variables through here.
 */

/**
 * window.pyninep: the page's scripting interface. Tests (tests/test_browser*.py, page_user.py)
 * and benchmarks (bench/page.py) read and call it: every field here is a public contract.
 * @typedef {object} PyninepApi
 * @property {Emulator | null} emulator  the running v86 (replaced if a restore falls back to a boot)
 * @property {PyninepServer | null} server  the 9P server (pyninep.js createServer's)
 * @property {import("@xterm/xterm").Terminal | null} terminal  the xterm.js terminal
 * @property {Manifest | null} manifest  the build's manifest.json
 * @property {Promise<void>} ready  resolves at the guest's first shell prompt
 * @property {Timing} timing  ms since the page started: python_ms, machine_ms, restored_ms,
 *   prompt_ms, input_ms, drop_ms, pyodide_ms, unpacked_ms (whichever happened)
 * @property {"boot" | "saved" | "shipped" | null} source  where the running machine came from
 * @property {boolean} offlineReady  the service worker has cached this build
 * @property {() => Promise<Uint8Array>} saveMachine  the running machine as one blob
 * @property {(bytes: Uint8Array) => Promise<unknown>} restoreMachine  a blob from saveMachine back
 * @property {Promise<void> | null} saving  the machine save under way, if any
 * @property {{at: number, why: string, bytes: number, ms: number} | null} lastSave  the last one
 * @property {() => void} bootFresh  reload with ?fresh (boot the kernel)
 * @property {() => Promise<void>} reset  forget everything this browser kept, and reload
 * @property {() => string} screenText  the terminal's whole text
 * @property {import("./files.js").FilesPanel} files  the files panel
 * @property {(text: string) => void} sendKeys  type text into the guest's console
 * @property {string} [storage]  "memory" or "indexeddb:NAME": where the guest's files live
 * @property {() => Promise<void | null>} [save]  save the machine now (once saving has started)
 * @property {boolean} [resetting]  a reset is under way: nothing is saved any more
 * @property {string} [failed]  the sentence shown when start-up failed
 */

/** @typedef {Record<string, number>} Timing */

/**
 * @typedef {object} PageContext
 * @property {number} t0  performance.now() when the page's script started
 * @property {URLSearchParams} params  ?fresh, ?memory, ?nosnap, ?nofiles, ?nosw, ?delete, ?flushms, ?basefs, ?baseurl
 * @property {Manifest | null} manifest
 * @property {string} storage  the server's storage option: "memory" or "indexeddb:NAME"
 * @property {Emulator | null} emulator
 * @property {PyninepServer | null} server
 * @property {import("./saving.js").GuestActivity} activity  what the guest did, as counts
 * @property {PyninepApi} api  window.pyninep
 */

/** Milliseconds since the page's script started, rounded (what window.pyninep.timing holds). */
export const since = (/** @type {PageContext} */ ctx) => Math.round(performance.now() - ctx.t0);

/** The element with this id (the page's elements are index.html's; each has one owner). */
export function $(/** @type {string} */ id) {
    const el = document.getElementById(id);
    if (!el) throw new Error(`index.html has no #${id}`);
    return el;
}

/**
 * The element with this id, as the kind of element it is in index.html.
 * @template {HTMLElement} T
 * @param {string} id
 * @param {new () => T} kind  e.g. HTMLInputElement
 * @returns {T}
 */
export function element(id, kind) {
    const el = $(id);
    if (!(el instanceof kind)) throw new Error(`#${id} is not a ${kind.name}`);
    return el;
}

/**
 * terminal.js — the terminal (#terminal): xterm.js on the guest's first serial port, the keys the
 * visitor types (held until the guest can take them), the guest's output, waking the console
 * after a restore or boot, the terminal's size (sent on the second serial port), and the screen
 * text a saved machine keeps.
 *
 * Owns #terminal, the xterm.js Terminal and what crosses the serial ports for the console. It must
 * not start, save or restore the machine (start.js and saving.js do; they call wake() and
 * screenToKeep()), and it reads ctx.emulator only to talk to the serial ports.
 */

import * as machine from "../machine.js";
import { $ } from "./context.js";

/** @typedef {ReturnType<typeof createTerminal>} PageTerminal */

/** During a flood of output the page writes to xterm.js at most this often (ms; ?flushms=N to
 * change it, 0 writes once per macrotask as before: bench/terminal.py compares the two) … */
const BULK_MS = 100;
/** … a flood being output that has kept coming for this long (ms): longer than a full-screen
 * program's redraw or a command's short answer, which go at once, … */
const FLOOD_MS = 150;
/** … with no pause longer than this (ms). */
const PAUSE_MS = 50;

/**
 * @param {import("./context.js").PageContext} ctx
 * @param {{messages: import("./errors.js").Messages}} parts
 */
export function createTerminal(ctx, { messages }) {
    /** @type {import("@xterm/xterm").Terminal | null} */
    let terminal = null;
    let consoleLive = false; // guest output goes to the terminal (after the console set-up), else the log
    /** @type {Uint8Array[]} */
    const typedEarly = []; // keys pressed before the guest listens (or while it drops its caches)
    let inputHeld = false;

    /** The xterm.js Terminal, once start() made it. */
    function term() {
        if (!terminal) throw new Error("the terminal is not started");
        return terminal;
    }

    async function start() {
        // xterm.js ships beside the page (dist/xterm/), not as a module the checker resolves.
        const from = (/** @type {string} */ file) => new URL(`../xterm/${file}`, import.meta.url).href;
        /** @type {[typeof import("@xterm/xterm"), typeof import("@xterm/addon-fit")]} */
        const [{ Terminal }, { FitAddon }] = await Promise.all([import(from("xterm.mjs")), import(from("addon-fit.mjs"))]);
        const t = terminal = new Terminal({
            cursorBlink: true, scrollback: 5000, fontSize: 14,
            fontFamily: "ui-monospace, Menlo, Consolas, 'DejaVu Sans Mono', monospace",
            theme: { background: "#000000" },
        });
        const fit = new FitAddon();
        t.loadAddon(fit);
        t.open($("terminal"));
        fit.fit();
        ctx.api.terminal = t;
        // Typed keys are guest activity too (the save loop counts them: saving.js).
        t.onData((data) => { ctx.activity.input += 1; send(new TextEncoder().encode(data)); });
        t.onBinary((data) => send(Uint8Array.from(data, (c) => c.charCodeAt(0))));
        t.onResize(tellSize);
        // Ctrl+Shift+C / Ctrl+Shift+V copy and paste (plain Ctrl+C is the guest's interrupt).
        t.attachCustomKeyEventHandler((event) => {
            if (event.type !== "keydown" || !event.ctrlKey || !event.shiftKey) return true;
            if (event.code === "KeyC") {
                const text = t.getSelection();
                if (text) navigator.clipboard?.writeText(text).catch(() => {});
                return false;
            }
            if (event.code === "KeyV") {
                navigator.clipboard?.readText().then((text) => t.paste(text)).catch(() => {});
                return false;
            }
            return true;
        });
        new ResizeObserver(() => fit.fit()).observe($("terminal"));
        t.focus();
    }

    function send(/** @type {Uint8Array} */ bytes) {
        if (consoleLive && ctx.emulator && !inputHeld) ctx.emulator.serial_send_bytes(0, bytes);
        else typedEarly.push(bytes);
    }

    function tellSize(/** @type {{rows: number, cols: number}} */ { rows, cols } = term()) {
        if (consoleLive && ctx.emulator) ctx.emulator.serial_send_bytes(1, machine.resizeLine({ rows, cols }));
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

    // The guest's output, gathered between writes to xterm.js. A write makes xterm.js draw on its
    // next animation frame, and drawing (layout and paint of the rows) took more of the page's one
    // thread than the emulator making the output (docs/measurements.md): during a flood the page
    // writes at most every BULK_MS, so the screen is drawn that often and the rest of the time
    // goes to the guest. Anything shorter (an echoed key, a prompt, an editor's redraw) is written
    // at the next macrotask, whole.
    let out = new Uint8Array(4096);
    let outLength = 0;
    let outPending = false;
    let lastFlush = 0;
    let lastOutput = -Infinity; // when output last came (or was last written out)
    let floodFrom = 0; // when the output that keeps coming began
    const bulkMs = Number(ctx.params.get("flushms") ?? BULK_MS);
    let afterWake = "";
    /** @type {(() => void) | null} */
    let readyResolve = null;
    /** @type {Promise<void>} */
    const ready = new Promise((resolve) => { readyResolve = resolve; });

    function flush() {
        const now = performance.now();
        if (now - floodFrom > FLOOD_MS && now - lastFlush < bulkMs) {
            setTimeout(flush, lastFlush + bulkMs - now);
            return;
        }
        outPending = false;
        lastFlush = lastOutput = now;
        term().write(out.slice(0, outLength));
        outLength = 0;
    }

    /** A byte of the guest's console: to the log until the console is live, then to the terminal. */
    function onSerial(/** @type {number} */ byte) {
        // Output is guest activity (its memory changed): the save loop counts it (saving.js).
        ctx.activity.output += 1;
        if (!consoleLive) {
            messages.log(String.fromCharCode(byte));
            return;
        }
        if (outLength === out.length) {
            const bigger = new Uint8Array(out.length * 2);
            bigger.set(out);
            out = bigger;
        }
        out[outLength++] = byte;
        if (readyResolve) {
            afterWake = (afterWake + String.fromCharCode(byte)).slice(-64);
            if (/[#$] $/.test(afterWake)) {
                const resolve = readyResolve;
                readyResolve = null;
                resolve();
            }
        }
        if (!outPending) {
            // The first byte since the last write: a pause before it ends a flood.
            const now = performance.now();
            if (now - lastOutput > PAUSE_MS) floodFrom = now;
            lastOutput = now;
            outPending = true;
            setTimeout(flush, 0);
        }
    }

    /** The shipped (or freshly booted) guest waits in the console script (machine.js): wake it with
     * the clock, entropy and size. A machine this browser saved was wherever the user left it: its
     * screen comes back from the save, and the clock, entropy and size go by the second serial port.
     * `drop`: a token the guest echoes once it has dropped its caches (see start.js guestDropped). */
    function wake(/** @type {string | null} */ savedScreen, drop = "") {
        const t = term(), emulator = /** @type {Emulator} */ (ctx.emulator);
        consoleLive = true;
        const size = { rows: t.rows, cols: t.cols };
        if (savedScreen != null) {
            // xterm.js parses what it is given later: the prompt is shown (and the start's
            // prompt_ms taken) once the saved screen is on it, not before.
            t.write(savedScreen, () => {
                readyResolve?.();
                readyResolve = null;
            });
            emulator.serial_send_bytes(1, machine.resizeLine({ ...size, clock: true, drop }));
        } else {
            emulator.serial0_send(machine.wakeLine(size));
            emulator.serial_send_bytes(1, machine.resizeLine({ ...size, clock: true, drop }));
        }
        sendTypedEarly();
    }

    /** Keys typed before the guest could take them, in order, once it can. */
    function sendTypedEarly() {
        const emulator = /** @type {Emulator} */ (ctx.emulator);
        if (!inputHeld) for (const bytes of typedEarly.splice(0)) emulator.serial_send_bytes(0, bytes);
    }

    /** The terminal's text up to the cursor, to show again when the machine is restored. */
    function screenToKeep() {
        const b = term().buffer.active;
        const last = b.baseY + b.cursorY;
        const lines = [];
        for (let i = Math.max(0, last - 500); i < last; i++) lines.push(b.getLine(i)?.translateToString(true) ?? "");
        lines.push((b.getLine(last)?.translateToString(false) ?? "").slice(0, b.cursorX));
        return lines.join("\r\n");
    }

    /** The terminal's whole text (window.pyninep.screenText). */
    function screenText() {
        const b = term().buffer.active;
        const lines = [];
        for (let i = 0; i < b.length; i++) lines.push(/** @type {import("@xterm/xterm").IBufferLine} */ (b.getLine(i)).translateToString(true));
        return lines.join("\n").trimEnd();
    }

    return {
        start, send, onSerial, wake, sendTypedEarly, screenToKeep, screenText,
        /** Resolves at the guest's first shell prompt after wake(). */
        ready,
        /** Hold typed keys back (while a restored guest drops its caches), or let them go. */
        holdInput(/** @type {boolean} */ held) { inputHeld = held; },
        /** Whether the console is set up (its loop listens on the second serial port). */
        get consoleLive() { return consoleLive; },
        /** Ask the guest's console loop to drop its caches and echo `token` on the second serial
         * port (once consoleLive). */
        askDrop(/** @type {string} */ token) {
            ctx.emulator?.serial_send_bytes(1, machine.resizeLine({ ...term(), drop: token }));
        },
        /** The xterm.js Terminal, or null before start(). */
        get xterm() { return terminal; },
        focus() { terminal?.focus(); },
    };
}

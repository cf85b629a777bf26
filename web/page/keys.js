/**
 * keys.js — the page's keyboard beyond the terminal: the shortcuts that get the focus out of it
 * (the terminal keeps Tab, rightly: it is the shell's), the help dialog listing them (#help,
 * #help-dialog, the hint in the header), Esc in the header, and on touch screens the key row
 * (#keyrow: Esc, a sticky Ctrl, Tab, the arrows) that a phone's keyboard lacks.
 *
 * Owns those elements. It types into the guest only through window.pyninep.sendKeys (the
 * terminal's own input path) and reads the terminal only for its cursor-key mode; it must not
 * touch the files panel beyond what files.js exports (open, and Alt+F stays there).
 */

import { $, element } from "./context.js";

/**
 * @param {import("./context.js").PageContext} ctx
 * @param {{terminal: import("./terminal.js").PageTerminal, files: import("./files.js").FilesPanel}} parts
 */
export function createKeys(ctx, { terminal, files }) {
    const help = element("help-dialog", HTMLDialogElement);
    const showHelp = () => { if (!help.open) help.showModal(); };
    $("help").addEventListener("click", showHelp);
    help.addEventListener("close", () => terminal.focus());

    // (Capture phase, like Alt+F in files.js: the terminal would take these as keys for the guest.)
    document.addEventListener("keydown", (e) => {
        if (e.altKey && !e.ctrlKey && !e.metaKey && e.code === "KeyT") {
            e.preventDefault();
            e.stopPropagation();
            const header = document.querySelector("header");
            if (header?.contains(document.activeElement)) terminal.focus();
            else $("files-toggle").focus();
        } else if (e.altKey && !e.ctrlKey && !e.metaKey && e.code === "KeyH") {
            e.preventDefault();
            e.stopPropagation();
            showHelp();
        }
    }, true);
    // In the header: ? opens the help, Esc closes the files panel and goes back to the terminal.
    document.querySelector("header")?.addEventListener("keydown", (e) => {
        if (e.key === "?") { e.preventDefault(); showHelp(); }
        if (e.key === "Escape") {
            e.preventDefault();
            if (!$("files").hidden) files.open(false);
            terminal.focus();
        }
    });

    // The key row, on touch screens only (a phone's keyboard has no Esc, Ctrl, Tab or arrows).
    const touch = matchMedia("(any-pointer: coarse)").matches || navigator.maxTouchPoints > 0;
    document.documentElement.classList.toggle("touch", touch);
    const ctrl = $("key-ctrl");
    let ctrlArmed = false;
    const arm = (/** @type {boolean} */ on) => { ctrlArmed = on; ctrl.setAttribute("aria-pressed", String(on)); };
    const type = (/** @type {string} */ text) => { ctx.activity.input += 1; ctx.api.sendKeys(text); };
    /** The bytes of an arrow key, as xterm.js would send them (application mode, Ctrl). */
    const arrow = (/** @type {string} */ letter) => {
        if (ctrlArmed) return `\x1b[1;5${letter}`;
        return ctx.api.terminal?.modes?.applicationCursorKeysMode ? `\x1bO${letter}` : `\x1b[${letter}`;
    };
    const row = $("keyrow");
    // The buttons must not take the focus: the terminal keeps it (and a phone keeps its keyboard up).
    row.addEventListener("pointerdown", (e) => e.preventDefault());
    row.addEventListener("mousedown", (e) => e.preventDefault());
    row.addEventListener("click", (e) => {
        const button = e.target instanceof HTMLElement ? e.target.closest("button") : null;
        if (!button) return;
        const key = button.dataset.key;
        if (key === "Ctrl") { arm(!ctrlArmed); terminal.focus(); return; }
        if (key === "Esc") type("\x1b");
        else if (key === "Tab") type("\t");
        else if (key && "ABCD".includes(key)) type(arrow(key));
        arm(false);
        terminal.focus();
    });
    /** The control character for `key` with Ctrl held (Ctrl+C: 0x03), or null. */
    const control = (/** @type {string} */ key) => {
        const c = key.toUpperCase().charCodeAt(0);
        if (key.length !== 1) return null;
        if (c >= 64 && c <= 95) return String.fromCharCode(c - 64); // @ A..Z [ \ ] ^ _
        return key === " " ? "\x00" : key === "?" ? "\x7f" : null;
    };
    /** Type control character `c` (if any) instead of what the event would have typed. */
    const typeArmed = (/** @type {Event} */ e, /** @type {string | null} */ c) => {
        if (c === null) return;
        e.preventDefault();
        e.stopPropagation();
        arm(false);
        type(c);
    };
    // Armed, the next key typed (a hardware key, or a soft keyboard's input) goes with Ctrl.
    document.addEventListener("keydown", (e) => {
        if (!ctrlArmed || e.ctrlKey || e.altKey || e.metaKey) return;
        typeArmed(e, control(e.key));
    }, true);
    document.addEventListener("beforeinput", (e) => {
        typeArmed(e, ctrlArmed && e.data ? control(e.data.slice(-1)) : null);
    }, true);

    return { showHelp, touch };
}

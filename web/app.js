// The demo page: a terminal on the guest's serial console, a file browser on the served tree, and
// the fast start (restore a saved machine instead of booting). See docs/page.md.
// Every URL here is relative to the page, so the site works from any sub-path of any static host.
//
// This file only wires the page's parts (web/page/), each the one owner of what it shows:
//   errors.js    the status line, the error banner, the boot log
//   progress.js  the download bars (and the fetch hook that counts Pyodide's bytes)
//   background.js the page's worker (worker.js), which downloads the two large files and decodes them
//   terminal.js  the terminal and the guest's console
//   files.js     the files panel
//   keys.js      the shortcuts out of the terminal, their help, the touch screens' key row
//   saving.js    the machine kept in this browser: the save loop, Reset
//   offline.js   the service worker
//   start.js     start-up, from the first line to the prompt; Boot fresh
// They share one context (page/context.js: the manifest, emulator, server, window.pyninep) and
// get the parts they use passed in here.
import * as pyninep from "./pyninep.js";
import { GuestActivity, createSaving } from "./page/saving.js";
import { bootFresh, start } from "./page/start.js";
import { createFiles } from "./page/files.js";
import { createKeys } from "./page/keys.js";
import { createMessages } from "./page/errors.js";
import { createProgress } from "./page/progress.js";
import { createBackground } from "./page/background.js";
import { createTerminal } from "./page/terminal.js";

// (window.pyninep, ctx.api, is made below, once the parts it publishes exist; nothing runs before.)
const ctx = /** @type {import("./page/context.js").PageContext} */ ({
    t0: performance.now(),
    params: new URLSearchParams(location.search),
    manifest: null,
    storage: "memory",
    emulator: null,
    server: null,
    activity: new GuestActivity(),
});
const messages = createMessages(ctx);
const background = createBackground();
const progress = createProgress(ctx, { background });
const terminal = createTerminal(ctx, { messages });
const saving = createSaving(ctx, { messages, terminal });
const files = createFiles(ctx, { terminal });
createKeys(ctx, { terminal, files });

// The scripting interface (tests and benchmarks use it: see page/context.js PyninepApi).
/** @type {import("./page/context.js").PyninepApi} */
const api = {
    emulator: null, server: null, terminal: null, manifest: null,
    ready: terminal.ready, timing: {}, source: null, offlineReady: false,
    saveMachine: () => saving.saveMachine(),
    // A blob from saveMachine: a session-only one over this page's files, a complete one with its own.
    restoreMachine: (bytes) => pyninep.restoreMachine(bytes, { emulator: ctx.emulator, server: ctx.server }),
    saving: null, lastSave: null,
    bootFresh, reset: saving.reset,
    screenText: terminal.screenText,
    files,
    sendKeys: (text) => terminal.send(new TextEncoder().encode(text)),
};
window.pyninep = ctx.api = api;

start(ctx, { messages, progress, background, terminal, saving, files }).then(() => {
    Object.assign(ctx.api, { terminal: terminal.xterm, manifest: ctx.manifest });
}, (error) => {
    const sentence = messages.startFailed(error);
    if (!progress.shown()) progress.hide(); // nothing was loading: no empty strip
    ctx.api.failed = sentence;
});

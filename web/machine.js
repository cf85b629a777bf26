/**
 * machine.js — what the page and the build share about a saved machine: the guest's console
 * set-up, and the v86 options both sides must agree on (a v86 state restores only into an emulator
 * with the same memory size and devices). The machine file itself is pyninep.js's (saveMachine,
 * readMachine, restoreMachine: one format, "PYN9MACH", one restore path): the build's copy is
 * gzipped (it travels), the page's own copies in IndexedDB are plain and hold no file (the files
 * are in the store, which is their one truth).
 *
 * The console protocol: once at a shell prompt, the guest sources CONSOLE_SCRIPT, which starts a
 * small loop reading "ROWS COLS" lines from the second serial port (setting the console's size makes
 * the kernel send SIGWINCH to the foreground job), prints READY_MARKER and then blocks reading one
 * line of shell from the console with echo off. The build saves the machine exactly there; the page,
 * after restoring (or after a fresh boot), sends wakeLine(): the clock, fresh entropy and the
 * terminal's size. So the saved machine wakes with the visitor's time, not the build's.
 *
 * The guest caches its files (cache=loose: docs/guest.md). A machine restored over files that
 * changed after it was saved, or files the page changes while it runs, would be seen stale:
 * resizeLine's `drop` token makes the loop have the kernel forget what it knows of them
 * (/sys/fs/9p/invalidate, our kernel's; drop_caches on another) and then echo the token on the
 * second serial port, and the page waits for that echo (before the prompt, or before its call
 * resolves).
 */

export const CONSOLE_SCRIPT_PATH = "/run/pyninep/console.sh";
export const READY_MARKER = "__PYNINEP_CONSOLE_READY__";
/** What the resize loop says on the second serial port once it reads it (echo off): the build
 * saves the machine only after it, or the restored loop may not yet read (and the port, still
 * echoing, would send the page's token straight back: clock and size then never set). */
export const LOOP_READY_MARKER = "__PYNINEP_LOOP_READY__";

export const CONSOLE_SCRIPT = `# Sourced by the login shell on the serial console by the pyninep page (web/machine.js).
# (Builtins only where the page waits: every program started costs a restored guest ~0.2 s.)
# /run is kept with the files: a pid file from an earlier boot names no loop of this one.
__pyninep_p=$(cat /run/pyninep/resizer.pid 2>/dev/null)
if [ -z "$__pyninep_p" ] || ! grep -q ttyS1 "/proc/$__pyninep_p/cmdline" 2>/dev/null; then
  # The page writes "ROWS COLS [EPOCH [HEX [TOKEN]]]" lines to the second serial port: when its
  # terminal is resized, and (with the clock and fresh entropy) after restoring a machine that
  # was saved while in use; with TOKEN, drop the caches (the files may have changed since the
  # save, or the page changed them) and echo TOKEN back once all of that is done. (In a subshell, so the interactive shell
  # has no job to report.)
  ( setsid sh -c 'echo $$ >/run/pyninep/resizer.pid; stty -F /dev/ttyS1 -echo icanon 2>/dev/null
    echo ${LOOP_READY_MARKER} >/dev/ttyS1
    while read -r r c t s k; do stty -F /dev/console rows "$r" cols "$c"
      [ -n "$s" ] && echo "$s" >/dev/urandom; [ -n "$t" ] && date -s "@$t" >/dev/null
      [ -n "$k" ] && { echo 1 >/sys/fs/9p/invalidate 2>/dev/null || echo 3 >/proc/sys/vm/drop_caches
        echo "$k" >/dev/ttyS1; }; done </dev/ttyS1' \\
    </dev/null >/dev/null 2>&1 & )
fi
echo ${READY_MARKER.slice(0, 10)}""${READY_MARKER.slice(10)}
IFS= read -rs __pyninep_wake
eval "$__pyninep_wake"
unset __pyninep_wake __pyninep_p
`;

/** The command that starts the console set-up, typed at the guest's first prompt. */
export const CONSOLE_COMMAND = `mkdir -p /run/pyninep; . ${CONSOLE_SCRIPT_PATH}\n`;

/**
 * The build boots the machine it saves with this added to the kernel command line: pages the kernel
 * frees (the unpacked initramfs, dropped caches) are zeroed, so they compress to nothing; and the
 * cached mount reads nothing ahead (see READAHEAD_KB).
 */
export const SAVED_MACHINE_CMDLINE = " init_on_free=1 pyninep.readahead=0";

/** The guest's cached mount reads this many KiB ahead (pyninep_browser/initramfs.py's
 * READAHEAD_KB); the machine the build saves booted with none (SAVED_MACHINE_CMDLINE: what
 * executables fault in with read-ahead stays mapped, and would ship), so its wake sets it. */
export const READAHEAD_KB = 512;

/** Typed before CONSOLE_COMMAND when saving: what the page cache holds need not ship. */
export const SAVE_PREP_COMMAND = "sync; echo 3 >/proc/sys/vm/drop_caches; ";

// Writing to /dev/urandom mixes the bytes into the pool (without crediting entropy), so two
// visitors restoring the same saved machine do not share their random streams.
function seedHex() {
    const seed = new Uint8Array(32);
    crypto.getRandomValues(seed);
    return Array.from(seed, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The one line of shell the page sends to a machine waiting in CONSOLE_SCRIPT: fresh entropy,
 * the cached mount's read-ahead (READAHEAD_KB), and /etc/motd shown with builtins (the first screen says what this is and what to try; the boot
 * printed it too, but that went to the page's log, or was saved in the shipped machine). The
 * clock and the terminal's size go by the second serial port at the same moment (resizeLine with
 * clock), so no program has to start before the prompt.
 * @param {{rows?: number, cols?: number}} [_size] (kept for callers; the size goes by resizeLine) */
export function wakeLine(_size = {}) {
    return `echo ${seedHex()} >/dev/urandom;` +
        ` for __l in /sys/class/bdi/9p-*/read_ahead_kb; do [ -e "$__l" ] && echo ${READAHEAD_KB} >"$__l"; done;` +
        ` while IFS= read -r __l; do printf '%s\\n' "$__l"; done </etc/motd 2>/dev/null; unset __l\n`;
}

/** What the guest says on its second serial port from now on (the console's resize loop, the
 * drop loop): says(text, ms) resolves to true once `text` has come, or to false after `ms`;
 * close() stops listening.
 * @param {Emulator} emulator */
export function listenSerial1(emulator) {
    let heard = "";
    /** @type {Set<() => void>} */
    const waiters = new Set();
    const listener = (/** @type {number} */ byte) => {
        heard = (heard + String.fromCharCode(byte)).slice(-4096);
        for (const check of waiters) check();
    };
    emulator.add_listener("serial1-output-byte", listener);
    return {
        /** @param {string} text @param {number} ms @returns {Promise<boolean>} */
        says: (text, ms) => new Promise((resolve) => {
            const finish = (/** @type {boolean} */ ok) => { waiters.delete(check); clearTimeout(timer); resolve(ok); };
            const check = () => { if (heard.includes(text)) finish(true); };
            const timer = setTimeout(() => finish(false), ms);
            waiters.add(check);
            check();
        }),
        close: () => emulator.remove_listener("serial1-output-byte", listener),
    };
}

/** The bytes the loop in the guest reads on the second serial port: the terminal's size, and with
 * `clock` the time and fresh entropy (for a machine restored wherever it was, e.g. in an editor);
 * with `drop` (a token of letters and digits), the guest drops its caches and echoes the token on
 * the second serial port.
 * @param {{rows: number, cols: number, clock?: boolean, drop?: string, now?: number}} size */
export function resizeLine({ rows, cols, clock = false, drop = "", now = Date.now() }) {
    const extra = clock || drop ? ` ${Math.floor(now / 1000)} ${seedHex()}` : "";
    return new TextEncoder().encode(`${rows | 0} ${cols | 0}${extra}${drop ? " " + drop : ""}\n`);
}

/** v86 constructor options for our guest; `boot` false leaves out the kernel (a restore follows).
 * @param {Manifest} manifest
 * @param {{baseUrl: string | URL, handle9p: Handle9p, boot?: boolean, cmdline?: string, proxyUrl?: string}} how
 * (proxyUrl: the files are on a `serve --ws` server, over v86's own socket instead of handle9p) */
export function v86Options(manifest, { baseUrl, handle9p, boot = true, cmdline = "", proxyUrl }) {
    const g = manifest.guest;
    const url = (/** @type {string} */ p) => ({ url: new URL(p, baseUrl).href.replace(/^file:\/\//, "") });
    /** @type {Record<string, unknown>} */
    const options = {
        wasm_path: new URL(manifest.v86 + "v86.wasm", baseUrl).href.replace(/^file:\/\//, ""),
        bios: url(g.bios),
        vga_bios: url(g.vgabios),
        memory_size: g.memory,
        filesystem: proxyUrl ? { proxy_url: proxyUrl } : { handle9p },
        uart1: true, // the resize channel (see CONSOLE_SCRIPT)
        autostart: boot,
        disable_keyboard: true,
        disable_mouse: true,
        disable_speaker: true,
    };
    if (boot) {
        options.bzimage = url(g.kernel);
        options.initrd = url(g.initrd);
        options.cmdline = g.cmdline + cmdline;
    }
    return options;
}

/**
 * machine.js — what the page and the build share about a saved machine: its file format, the
 * guest's console set-up, and the v86 options both sides must agree on (a v86 state restores only
 * into an emulator with the same memory size and devices).
 *
 * A saved machine file: "PNPMACH\0" | u32 header length | JSON header | v86 state | server state,
 * gzipped when it travels (the build's copy; a local copy in IndexedDB is kept plain: restoring it
 * is then a copy, not an inflate). The header names the lengths and the build stamp. gzip carries a
 * CRC32 that DecompressionStream checks, so a damaged download is refused rather than restored.
 *
 * The console protocol: once at a shell prompt, the guest sources CONSOLE_SCRIPT, which starts a
 * small loop reading "ROWS COLS" lines from the second serial port (setting the console's size makes
 * the kernel send SIGWINCH to the foreground job), prints READY_MARKER and then blocks reading one
 * line of shell from the console with echo off. The build saves the machine exactly there; the page,
 * after restoring (or after a fresh boot), sends wakeLine(): the clock, fresh entropy and the
 * terminal's size. So the saved machine wakes with the visitor's time, not the build's.
 */

export const MACHINE_MAGIC = "PNPMACH\0";
export const MACHINE_FORMAT = 1;
export const CONSOLE_SCRIPT_PATH = "/run/pyninep/console.sh";
export const READY_MARKER = "__PYNINEP_CONSOLE_READY__";

export const CONSOLE_SCRIPT = `# Sourced by the login shell on the serial console by the pyninep page (web/machine.js).
stty -echo
if [ ! -e /run/pyninep/resizer.pid ]; then
  # The page writes "ROWS COLS [EPOCH [HEX]]" lines to the second serial port: when its
  # terminal is resized, and (with the clock and fresh entropy) after restoring a machine that
  # was saved while in use. (In a subshell, so the interactive shell has no job to report.)
  ( setsid sh -c 'echo $$ >/run/pyninep/resizer.pid; stty -F /dev/ttyS1 -echo icanon 2>/dev/null
    while read -r r c t s; do stty -F /dev/console rows "$r" cols "$c"
      [ -n "$t" ] && date -s "@$t" >/dev/null; [ -n "$s" ] && echo "$s" >/dev/urandom; done </dev/ttyS1' \\
    </dev/null >/dev/null 2>&1 & )
fi
echo ${READY_MARKER.slice(0, 10)}""${READY_MARKER.slice(10)}
IFS= read -r __pyninep_wake
stty echo
eval "$__pyninep_wake"
unset __pyninep_wake
`;

/** The command that starts the console set-up, typed at the guest's first prompt. */
export const CONSOLE_COMMAND = `mkdir -p /run/pyninep; . ${CONSOLE_SCRIPT_PATH}\n`;

/**
 * The build boots the machine it saves with this added to the kernel command line: pages the kernel
 * frees (the unpacked initramfs, dropped caches) are zeroed, so they compress to nothing.
 */
export const SAVED_MACHINE_CMDLINE = " init_on_free=1";

/** Typed before CONSOLE_COMMAND when saving: what the page cache holds need not ship. */
export const SAVE_PREP_COMMAND = "sync; echo 3 >/proc/sys/vm/drop_caches; ";

// Writing to /dev/urandom mixes the bytes into the pool (without crediting entropy), so two
// visitors restoring the same saved machine do not share their random streams.
function seedHex() {
    const seed = new Uint8Array(32);
    crypto.getRandomValues(seed);
    return Array.from(seed, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The one line of shell the page sends to a machine waiting in CONSOLE_SCRIPT. */
export function wakeLine({ rows, cols, now = Date.now() }) {
    return `date -s @${Math.floor(now / 1000)} >/dev/null; echo ${seedHex()} >/dev/urandom;` +
        ` stty rows ${rows | 0} cols ${cols | 0}\n`;
}

/** The bytes the loop in the guest reads on the second serial port: the terminal's size, and with
 * `clock` the time and fresh entropy (for a machine restored wherever it was, e.g. in an editor). */
export function resizeLine({ rows, cols, clock = false, now = Date.now() }) {
    const extra = clock ? ` ${Math.floor(now / 1000)} ${seedHex()}` : "";
    return new TextEncoder().encode(`${rows | 0} ${cols | 0}${extra}\n`);
}

/** v86 constructor options for our guest; `boot` false leaves out the kernel (a restore follows). */
export function v86Options(manifest, { baseUrl, handle9p, boot = true, cmdline = "" }) {
    const g = manifest.guest;
    const url = (p) => ({ url: new URL(p, baseUrl).href.replace(/^file:\/\//, "") });
    const options = {
        wasm_path: new URL(manifest.v86 + "v86.wasm", baseUrl).href.replace(/^file:\/\//, ""),
        bios: url(g.bios),
        vga_bios: url(g.vgabios),
        memory_size: g.memory,
        filesystem: { handle9p },
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

export class MachineError extends Error {}

async function gzip(bytes, mode) {
    const stream = new Blob([bytes]).stream().pipeThrough(
        mode === "compress" ? new CompressionStream("gzip") : new DecompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** One file from a v86 state (ArrayBuffer) and our server's state (Uint8Array). */
export async function packMachine(v86State, serverState, meta = {}, { compress = true } = {}) {
    const v86 = new Uint8Array(v86State);
    const header = new TextEncoder().encode(JSON.stringify({
        format: MACHINE_FORMAT, v86: v86.length, server: serverState.length, ...meta }));
    const out = new Uint8Array(12 + header.length + v86.length + serverState.length);
    out.set(new TextEncoder().encode(MACHINE_MAGIC), 0);
    new DataView(out.buffer).setUint32(8, header.length, true);
    out.set(header, 12);
    out.set(v86, 12 + header.length);
    out.set(serverState, 12 + header.length + v86.length);
    return compress ? gzip(out, "compress") : out;
}

/** The inverse of packMachine; a MachineError for anything that is not a whole, current file. */
export async function unpackMachine(bytes) {
    let raw = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    if (raw[0] === 0x1f && raw[1] === 0x8b) { // gzip's magic
        try {
            raw = await gzip(raw, "decompress");
        } catch (error) {
            throw new MachineError(`the saved machine is damaged (${error.message})`);
        }
    }
    if (raw.length < 12 || new TextDecoder().decode(raw.subarray(0, 8)) !== MACHINE_MAGIC) {
        throw new MachineError("the saved machine is not a pyninep machine file");
    }
    const n = new DataView(raw.buffer, raw.byteOffset).getUint32(8, true);
    let header;
    try {
        header = JSON.parse(new TextDecoder().decode(raw.subarray(12, 12 + n)));
    } catch {
        throw new MachineError("the saved machine's header is damaged");
    }
    if (header.format !== MACHINE_FORMAT) {
        throw new MachineError(`the saved machine has format ${header.format}, this page reads ${MACHINE_FORMAT}`);
    }
    const start = 12 + n;
    if (raw.length !== start + header.v86 + header.server) {
        throw new MachineError("the saved machine is truncated");
    }
    // v86 wants an ArrayBuffer of its own
    const v86State = raw.buffer.slice(raw.byteOffset + start, raw.byteOffset + start + header.v86);
    const serverState = raw.subarray(start + header.v86);
    return { header, v86State, serverState };
}

/**
 * Save a running emulator and our server together: v86 stops for the moment of the save (no 9P
 * request is in flight between two JS tasks: the server answers each as it arrives), then runs on.
 * `compress` gzips the file (worth it for a download, not for a local IndexedDB copy).
 */
export async function saveMachine(emulator, server, { compress = false, meta = {} } = {}) {
    const wasRunning = emulator.is_running?.() ?? true;
    emulator.stop();
    try {
        const v86State = await emulator.save_state();
        const serverState = await server.saveState(); // a Promise with stored filesystems
        return await packMachine(v86State, serverState, meta, { compress });
    } finally {
        if (wasRunning) emulator.run();
    }
}

/** Restore a file from saveMachine (or the build), or what unpackMachine made of one, into an
 * existing emulator and server. */
export async function restoreMachine(bytes, { emulator, server }) {
    const { header, v86State, serverState } = bytes.v86State ? bytes : await unpackMachine(bytes);
    emulator.stop();
    await server.restoreState(serverState);
    await emulator.restore_state(v86State);
    emulator.run();
    return header;
}

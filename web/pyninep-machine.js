/**
 * pyninep-machine.js — a v86 emulator and its pyninep server saved together as one blob.
 * (Re-exported by pyninep.js: saveMachine, restoreMachine, readMachine, MACHINE_FORMAT.)
 *
 * Blob layout (little-endian), format version 2 (version 1 had no warm part; both are read):
 *   0   8  magic "PYN9MACH"
 *   8   4  format version (2)
 *   12  4  flags: bit 0 = the body is gzip-compressed (CompressionStream "gzip")
 *   16  8  stored body length (bytes after this 40-byte header)
 *   24  8  body length once decompressed
 *   32  4  CRC-32 (IEEE) of the stored body
 *   36  4  CRC-32 of the header's first 36 bytes
 *   40     body: [u32 n][n bytes of JSON: {v86: bytes, server: bytes, warm?: bytes, created,
 *               storage}][v86 save_state bytes][server saveState bytes][warm base pieces, if any:
 *               server.exportBasePieces's blob, the base bytes the restored guest reads first]
 * A blob that is truncated, damaged, foreign or from a newer version is refused with an Error
 * before anything is touched.
 */

/**
 * readMachine's checked parts of a blob. info: the body's JSON (v86, server, warm: part sizes;
 * created, storage, session, and a saver's meta fields such as stamp) with version, compressed and
 * bytes. warm: the base pieces shipped with the machine, or null.
 * @typedef {{v86State: ArrayBuffer, serverState: Uint8Array, warm?: Uint8Array | null, info: Record<string, any>}} MachineParts
 */

const MAGIC = "PYN9MACH";
export const MACHINE_FORMAT = 2;
const HEADER = 40;
const FLAG_GZIP = 1;

// CRC-32 (IEEE), eight bytes a step ("slicing-by-8": eight tables, each the one before advanced
// by a zero byte): a return visit checks the saved machine before its restore, 6 MB or more,
// and byte by byte that cost it 65 ms.
const CRC_TABLES = (() => {
    const t = new Int32Array(8 * 256);
    for (let n = 0; n < 256; n++) {
        let c = n;
        for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
        t[n] = c;
    }
    for (let n = 0; n < 256; n++) {
        for (let k = 1; k < 8; k++) t[k * 256 + n] = t[(k - 1) * 256 + n] >>> 8 ^ t[t[(k - 1) * 256 + n] & 0xff];
    }
    return t;
})();

export function crc32(/** @type {Uint8Array} */ bytes) {
    const t = CRC_TABLES;
    let c = -1, i = 0;
    const n = bytes.length, end8 = n - (n & 7);
    for (; i < end8; i += 8) {
        const lo = c ^ (bytes[i] | bytes[i + 1] << 8 | bytes[i + 2] << 16 | bytes[i + 3] << 24);
        c = t[1792 + (lo & 0xff)] ^ t[1536 + (lo >>> 8 & 0xff)] ^ t[1280 + (lo >>> 16 & 0xff)] ^ t[1024 + (lo >>> 24)]
            ^ t[768 + bytes[i + 4]] ^ t[512 + bytes[i + 5]] ^ t[256 + bytes[i + 6]] ^ t[bytes[i + 7]];
    }
    for (; i < n; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
    return (c ^ -1) >>> 0;
}

const asU8 = (/** @type {unknown} */ x) => x instanceof Uint8Array ? x
    : x instanceof ArrayBuffer ? new Uint8Array(x)
    : ArrayBuffer.isView(x) ? new Uint8Array(x.buffer, x.byteOffset, x.byteLength)
    : null;

/** @param {Uint8Array<ArrayBuffer>} bytes @param {CompressionStream | DecompressionStream} transform */
async function streamThrough(bytes, transform) {
    const stream = new Blob([bytes]).stream().pipeThrough(transform);
    return new Uint8Array(await new Response(stream).arrayBuffer());
}

const canGzip = () => typeof CompressionStream === "function" && typeof DecompressionStream === "function";

/**
 * Wait until the server has no 9P request waiting for its reply (a deferred reply: a chunk load,
 * an fsync waiting for its commit). With the emulator stopped no new request can start, so after
 * this the guest's virtio queue and our session agree.
 * @param {PyninepServer} server @param {number} timeoutMs
 */
async function quiesce(server, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (server.inFlight() > 0) {
        if (Date.now() > deadline) {
            throw new Error(`pyninep: saveMachine: ${server.inFlight()} 9P request(s) still waiting `
                + `for their reply after ${timeoutMs} ms; nothing was saved`);
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
    }
}

/**
 * Save a v86 emulator and the pyninep server serving its 9p filesystem as one Uint8Array.
 * The emulator is stopped for the save (and resumed if it was running); no 9P request is in
 * flight in the saved state. options: compress (default false: see docs/page.md for why),
 * timeout (ms to wait for in-flight requests, default 30000), session (the server part is only
 * the 9P session: server.saveSession()), meta (more JSON fields for info), plus anything
 * server.saveState takes, and warm (a server.exportBasePieces blob: base pieces the restored guest
 * will read first, shipped so that it need not fetch them; restoreMachine hands them to warmBase).
 * @param {Emulator} emulator @param {PyninepServer} server
 * @param {{compress?: boolean, timeout?: number, session?: boolean, stored?: boolean, meta?: object, warm?: Uint8Array}} [options]
 * @returns {Promise<Uint8Array<ArrayBuffer>>}
 */
export async function saveMachine(emulator, server, options = {}) {
    server.attachEmulator?.(emulator);
    const wasRunning = emulator.is_running();
    await emulator.stop();
    let v86State, serverState;
    try {
        await quiesce(server, options.timeout ?? 30000);
        v86State = /** @type {Uint8Array} */ (asU8(await emulator.save_state()));
        serverState = /** @type {Uint8Array} */ (asU8(options.session ? await server.saveSession() : await server.saveState(options)));
    } finally {
        if (wasRunning) emulator.run();
    }
    const warm = options.warm ?? new Uint8Array(0);
    const meta = new TextEncoder().encode(JSON.stringify({
        v86: v86State.length, server: serverState.length, ...(warm.length ? { warm: warm.length } : {}),
        created: new Date().toISOString(), storage: server.storage ?? null, session: !!options.session,
        ...(options.meta ?? {}),
    }));
    const raw = new Uint8Array(4 + meta.length + v86State.length + serverState.length + warm.length);
    new DataView(raw.buffer).setUint32(0, meta.length, true);
    raw.set(meta, 4);
    raw.set(v86State, 4 + meta.length);
    raw.set(serverState, 4 + meta.length + v86State.length);
    raw.set(warm, 4 + meta.length + v86State.length + serverState.length);
    const compress = (options.compress ?? false) && canGzip();
    const body = compress ? await streamThrough(raw, new CompressionStream("gzip")) : raw;
    const out = new Uint8Array(HEADER + body.length);
    const view = new DataView(out.buffer);
    out.set(new TextEncoder().encode(MAGIC), 0);
    view.setUint32(8, MACHINE_FORMAT, true);
    view.setUint32(12, compress ? FLAG_GZIP : 0, true);
    view.setBigUint64(16, BigInt(body.length), true);
    view.setBigUint64(24, BigInt(raw.length), true);
    view.setUint32(32, crc32(body), true);
    view.setUint32(36, crc32(out.subarray(0, 36)), true);
    out.set(body, HEADER);
    return out;
}

/**
 * Check a machine blob and split it: {v86State: ArrayBuffer, serverState: Uint8Array, info}.
 * Throws a clear Error for anything that is not an intact blob of a version this code reads.
 * @param {Uint8Array | ArrayBuffer} blob
 * @returns {Promise<MachineParts>}
 */
export async function readMachine(blob) {
    const bytes = asU8(blob);
    /** @type {(why: string) => never} */
    const refuse = (why) => { throw new Error(`pyninep: not a usable machine blob: ${why}`); };
    if (!bytes) refuse("expected a Uint8Array or ArrayBuffer");
    if (bytes.length < HEADER) refuse(`only ${bytes.length} bytes (truncated)`);
    if (new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) refuse("wrong magic (not a pyninep machine)");
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (view.getUint32(36, true) !== crc32(bytes.subarray(0, 36))) refuse("header checksum mismatch (damaged)");
    const version = view.getUint32(8, true);
    if (version > MACHINE_FORMAT) refuse(`format version ${version} is newer than this code reads (${MACHINE_FORMAT})`);
    if (version < 1) refuse(`unknown format version ${version}`);
    const flags = view.getUint32(12, true);
    if (flags & ~FLAG_GZIP) refuse(`unknown flags 0x${flags.toString(16)}`);
    const stored = Number(view.getBigUint64(16, true));
    const rawLength = Number(view.getBigUint64(24, true));
    if (bytes.length - HEADER < stored) refuse(`truncated: ${bytes.length - HEADER} of ${stored} body bytes`);
    if (bytes.length - HEADER > stored) refuse("trailing bytes after the body");
    const body = bytes.subarray(HEADER);
    if (crc32(body) !== view.getUint32(32, true)) refuse("body checksum mismatch (damaged)");
    let raw = body;
    if (flags & FLAG_GZIP) {
        if (!canGzip()) refuse("compressed, and this environment has no DecompressionStream");
        try {
            raw = await streamThrough(/** @type {Uint8Array<ArrayBuffer>} */ (body), new DecompressionStream("gzip"));
        } catch (/** @type {any} */ error) {
            refuse(`cannot decompress: ${error?.message}`);
        }
    }
    if (raw.length !== rawLength) refuse(`body is ${raw.length} bytes, header says ${rawLength}`);
    const rv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const metaLength = raw.length >= 4 ? rv.getUint32(0, true) : Infinity;
    if (4 + metaLength > raw.length) refuse("bad body layout");
    let info;
    try {
        info = JSON.parse(new TextDecoder().decode(raw.subarray(4, 4 + metaLength)));
    } catch {
        refuse("bad body header");
    }
    const warmLength = info?.warm ?? 0;
    if (!Number.isSafeInteger(info?.v86) || !Number.isSafeInteger(info?.server) || !Number.isSafeInteger(warmLength)
        || 4 + metaLength + info.v86 + info.server + warmLength !== raw.length) refuse("part sizes do not add up");
    const start = 4 + metaLength;
    // v86 wants an ArrayBuffer of exactly its state.
    const v86State = raw.slice(start, start + info.v86).buffer;
    const serverState = raw.subarray(start + info.v86, start + info.v86 + info.server);
    const warm = warmLength ? raw.subarray(start + info.v86 + info.server) : null;
    return { v86State, serverState, warm, info: { ...info, version, compressed: !!(flags & FLAG_GZIP), bytes: bytes.length } };
}

/**
 * Restore a blob from saveMachine into options.emulator (a V86 that has fired "emulator-loaded")
 * and options.server (a PyninepServer from createServer, e.g. a fresh one on a new page).
 * Everything is checked before either is touched: a bad blob (or a session saved over another
 * filesystem) throws and both keep running as they were. options.run (default true): start the
 * emulator afterwards. options.files: "state" (the blob's files replace the server's) or
 * "server" (the server's files stay; the blob's 9P session is re-bound over them); default
 * "server" for a blob saved with {session: true}, else "state". Resolves to
 * {emulator, server, info, report, took} (report: restoreSession's {fids, stale}, or null; took:
 * {server_ms, v86_ms}). options.commit (files "state" with a store): "now" (default) resolves
 * after the store holds the blob's files; "later" resolves sooner and commits at the next
 * server.flush() (or fsync), else 10 s later: for a page that wants its prompt first.
 * @param {Uint8Array | ArrayBuffer | MachineParts} blob
 * @param {{emulator?: Emulator | null, server?: PyninepServer | null, run?: boolean, files?: "server" | "state", commit?: "now" | "later"}} options
 */
export async function restoreMachine(blob, options = {}) {
    const { emulator, server } = options;
    if (!emulator || !server) throw new Error("pyninep: restoreMachine(blob, {emulator, server}) needs both");
    // (Parts readMachine already checked are taken as they are: a page unpacks while Python starts.)
    const given = /** @type {any} */ (blob);
    /** @type {MachineParts} */
    const { v86State, serverState, warm, info } = given?.v86State && given?.serverState ? given : await readMachine(given);
    const files = options.files ?? (info.session ? "server" : "state");
    if (files !== "server" && files !== "state") throw new Error(`pyninep: restoreMachine: files must be "server" or "state", not ${JSON.stringify(files)}`);
    if (files === "state" && info.session) throw new Error("pyninep: restoreMachine: this machine holds no files (saved with {session: true}): restore it with files: \"server\"");
    server.attachEmulator?.(emulator);
    const wasRunning = emulator.is_running();
    await emulator.stop();
    /** @type {{fids: number, stale: number[]} | null} */
    let report = null;
    const t0 = performance.now();
    try {
        // Both parse and check everything before they replace anything.
        if (files === "server") report = await server.restoreSession(serverState);
        else await server.restoreState(serverState, { commit: options.commit ?? "now" });
    } catch (error) {
        if (wasRunning) emulator.run();
        throw error;
    }
    try {
        if (warm) server.warmBase(warm); // pieces of no file here, or that do not check, are left out
    } catch (/** @type {any} */ error) { // only a speed-up: the guest fetches what it reads
        console.warn(`pyninep: the machine's warm base pieces were not used: ${error?.message ?? error}`);
    }
    const t1 = performance.now();
    await emulator.restore_state(v86State);
    if (options.run ?? true) emulator.run();
    const took = { server_ms: Math.round(t1 - t0), v86_ms: Math.round(performance.now() - t1) };
    return { emulator, server, info, report, took };
}

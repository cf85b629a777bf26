/**
 * pyninep-remote.js — the page in server mode: the guest's files live on a
 * `python -m pyninep_browser serve --ws` server (docs/serve.md), not in this page.
 *
 *   const server = await createServer({ server: "ws://127.0.0.1:8090/" });   // (pyninep.js)
 * (writeFile creates missing parent directories, as the Python server's does)
 *   new V86({ ..., filesystem: { proxy_url: server.proxyUrl } });            // v86's own socket
 *   new V86({ ..., filesystem: { handle9p: server.handle9p } });             // or this shim's
 *
 * Both carry a session id (`?session=ID`, chosen here, or options.session to resume one), so a
 * dropped socket is resumed by the server with the guest's fids, open files and locks (within its
 * grace period). Python does not load: the page's own file operations (readFile, writeFile,
 * listDir, mkdir, remove; the files panel) are a second, ordinary 9P session over its own socket,
 * spoken by the small 9P client below.
 *
 * writeFile, mkdir and remove resolve after options.onOutsideChange (as pyninep.js's do): a guest
 * that caches its files drops them first. Another client's changes on the server are not seen.
 *
 * RemoteServer: handle9p, proxyUrl, session, url, readFile, writeFile, listDir, mkdir, remove,
 * flush, changes, inFlight, sessionState() → Promise<"live"|"detached"|"expired"|"unknown">
 * (the server's word on this session: the page explains a lost one in one sentence), close().
 */

const O_RDONLY = 0, O_WRONLY = 1, O_TRUNC = 0o1000, O_DIRECTORY = 0o200000;
const T = { version: 100, attach: 104, walk: 110, clunk: 120, lopen: 12, lcreate: 14, read: 116, write: 118,
    readdir: 40, fsync: 50, getattr: 24, mkdir: 72, unlinkat: 76 };
const RLERROR = 7;
const AT_REMOVEDIR = 0x200;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** A URL with the session (and keeping its token) for v86 or our socket.
 * @param {string} url @param {string} session */
function withSession(url, session) {
    const u = new URL(url);
    u.searchParams.set("session", session);
    return u.href;
}

function randomId() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Builds one frame: fields appended in order, size and header filled in at the end. */
class Frame {
    /** @param {number} type @param {number} tag */
    constructor(type, tag) { this.parts = /** @type {number[]} */ ([]); this.type = type; this.tag = tag; }
    /** @param {number} v */ u8(v) { this.parts.push(v & 255); return this; }
    /** @param {number} v */ u16(v) { return this.u8(v).u8(v >> 8); }
    /** @param {number} v */ u32(v) { return this.u16(v & 0xffff).u16(v >>> 16); }
    /** @param {number} v */ u64(v) { return this.u32(v % 2 ** 32).u32(Math.floor(v / 2 ** 32)); }
    /** @param {string} s */ str(s) { const b = enc.encode(s); this.u16(b.length); for (const x of b) this.parts.push(x); return this; }
    /** @param {Uint8Array} data */ bytes(data) { this.u32(data.length); for (const x of data) this.parts.push(x); return this; }
    build() {
        const out = new Uint8Array(7 + this.parts.length);
        const dv = new DataView(out.buffer);
        dv.setUint32(0, out.length, true);
        out[4] = this.type;
        dv.setUint16(5, this.tag, true);
        out.set(this.parts, 7);
        return out;
    }
}

/** Reads a reply's fields in order. */
class Reader {
    /** @param {Uint8Array} buf */
    constructor(buf) { this.buf = buf; this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength); this.pos = 7; }
    u8() { return this.buf[this.pos++]; }
    u16() { const v = this.dv.getUint16(this.pos, true); this.pos += 2; return v; }
    u32() { const v = this.dv.getUint32(this.pos, true); this.pos += 4; return v; }
    u64() { const lo = this.u32(); return lo + this.u32() * 2 ** 32; }
    str() { const n = this.u16(); const s = dec.decode(this.buf.subarray(this.pos, this.pos + n)); this.pos += n; return s; }
    qid() { const type = this.u8(); this.pos += 12; return type; }
}

/** One 9P session over one WebSocket, for the page's own file operations. */
class Client {
    /** @param {string} url */
    constructor(url) {
        this.url = url;
        this.tag = 0;
        this.fid = 1;
        this.msize = 1 << 16;
        /** @type {Map<number, (reply: Uint8Array) => void>} */
        this.waiting = new Map();
        /** @type {Promise<WebSocket> | null} */
        this.socket = null;
    }

    /** @returns {Promise<WebSocket>} */
    connect() {
        return this.socket ??= new Promise((resolve, reject) => {
            const ws = new WebSocket(this.url);
            ws.binaryType = "arraybuffer";
            ws.onmessage = (e) => {
                const reply = new Uint8Array(/** @type {ArrayBuffer} */ (e.data));
                const tag = reply[5] | (reply[6] << 8);
                const done = this.waiting.get(tag);
                this.waiting.delete(tag);
                done?.(reply);
            };
            ws.onclose = () => {
                this.socket = null; // the next call connects (and mounts) again
                for (const done of this.waiting.values()) done(new Uint8Array([11, 0, 0, 0, RLERROR, 0, 0, 5, 0, 0, 0]));
                this.waiting.clear();
            };
            ws.onerror = () => reject(new Error(`cannot reach the file server at ${this.url.replace(/token=[^&]*/, "token=…")}`));
            ws.onopen = async () => {
                try {
                    const v = await this.rpcOn(ws, new Frame(T.version, 0xffff).u32(1 << 20).str("9P2000.L"));
                    this.msize = v.u32();
                    await this.rpcOn(ws, new Frame(T.attach, 0).u32(0).u32(0xffffffff).str("root").str("").u32(0));
                    resolve(ws);
                } catch (error) { reject(error); }
            };
        });
    }

    /** @param {WebSocket} ws @param {Frame} frame @returns {Promise<Reader>} */
    rpcOn(ws, frame) {
        const bytes = frame.build();
        return new Promise((resolve, reject) => {
            this.waiting.set(frame.tag, (reply) => {
                if (reply[4] === RLERROR) {
                    const errno = new DataView(reply.buffer, reply.byteOffset).getUint32(7, true);
                    reject(Object.assign(new Error(`9P error ${errno}`), { errno }));
                } else resolve(new Reader(reply));
            });
            ws.send(bytes);
        });
    }

    /** @param {number} type @param {(f: Frame) => Frame} [fill] */
    async rpc(type, fill = (f) => f) {
        const ws = await this.connect();
        this.tag = (this.tag + 1) % 0xfffe;
        return this.rpcOn(ws, fill(new Frame(type, this.tag)));
    }

    /** A new fid for `path` (from the root). @param {string} path */
    async walk(path) {
        const names = path.split("/").filter(Boolean);
        const fid = ++this.fid;
        for (let i = 0, from = 0; i === 0 || i < names.length; i += 16) {
            const part = names.slice(i, i + 16);
            const r = await this.rpc(T.walk, (f) => { f.u32(from).u32(fid).u16(part.length); for (const n of part) f.str(n); return f; });
            if (r.u16() !== part.length) {
                if (i > 0) await this.clunk(fid);
                throw Object.assign(new Error(`${path}: no such file or directory`), { errno: 2 });
            }
            from = fid;
        }
        return fid;
    }

    /** @param {number} fid */
    clunk(fid) { return this.rpc(T.clunk, (f) => f.u32(fid)).catch(() => {}); }
}

/** Wake a halted v86 at once when a 9P reply arrives instead of at its next timer tick (tens of
 * ms away). For the shim, its own replies do it (attachEmulator); for v86's own proxy_url, this
 * wraps the proxy device's message handler (v86 binds it when it opens a socket, so call this
 * once the emulator is loaded, before the guest mounts). Returns whether it could.
 * @param {Emulator} emulator */
export function wakeOnProxyReplies(emulator) {
    const v = /** @type {any} */ (emulator.v86);
    const device = v?.cpu?.devices?.virtio_9p;
    if (!device || typeof device.handle_message !== "function" || typeof v.next_tick !== "function") return false;
    const handle = device.handle_message.bind(device);
    device.handle_message = (/** @type {MessageEvent} */ e) => {
        handle(e);
        if (v.idle && v.running && !v.stopping) v.next_tick(0);
    };
    return true;
}

/** Wait, with the emulator stopped, until every 9P request v86's proxy_url device has sent is
 * answered. v86's save_state() cannot save a request still in flight (its device keeps them in a
 * Map of buffer chains that have no saved form: it throws "get_state is not a function"), so a
 * page saving a machine on proxy_url calls this between stop() and save_state(). Replies still
 * arrive while the emulator is stopped. Resolves true when none is in flight (at once if the
 * device is not v86's proxy), false after `timeoutMs`.
 * @param {Emulator} emulator
 * @param {number} [timeoutMs] */
export async function quiesceProxy(emulator, timeoutMs = 30000) {
    const device = /** @type {any} */ (emulator.v86)?.cpu?.devices?.virtio_9p;
    const inFlight = () => (device && "socket" in device && device.tag_bufchain instanceof Map ? device.tag_bufchain.size : 0);
    const until = Date.now() + timeoutMs;
    while (inFlight() > 0) {
        if (Date.now() > until) return false;
        await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return true;
}

/** Close a v86 emulator's own proxy_url socket for good. v86's destroy() leaves it open, and its
 * device reopens it when it closes: an emulator replaced by a restored one would then take its
 * session back from the new one (the server gives a session id to its latest connection). Call
 * it before destroy() when an emulator on proxy_url is replaced.
 * @param {Emulator} emulator */
export function closeProxy(emulator) {
    const device = /** @type {any} */ (emulator.v86)?.cpu?.devices?.virtio_9p;
    if (device && typeof device.destroy === "function" && "socket" in device) device.destroy();
}

/**
 * @param {{server: string, session?: string, onOutsideChange?: () => (Promise<void> | void)}} options
 */
export async function createRemoteServer(options) {
    const url = options.server;
    if (!/^wss?:\/\//.test(url)) throw new Error(`pyninep: server ${JSON.stringify(url)} is not a ws:// or wss:// URL`);
    const session = options.session ?? randomId();
    const sessionUrl = withSession(url, session);
    const files = new Client(url);
    await files.connect(); // fails early, in one sentence, when the server is not there

    // The shim: v86's handle9p, forwarded over our own socket (reconnected, same session).
    /** @type {Map<number, (frame: Uint8Array) => void>} */
    const replies = new Map();
    /** @type {Uint8Array[]} */
    let queue = [];
    /** @type {WebSocket | null} */
    let shim = null;
    let closed = false;
    const openShim = () => {
        const ws = shim = new WebSocket(sessionUrl);
        ws.binaryType = "arraybuffer";
        ws.onopen = () => { for (const f of queue) ws.send(f); queue = []; };
        ws.onmessage = (e) => {
            const reply = new Uint8Array(/** @type {ArrayBuffer} */ (e.data));
            const tag = reply[5] | (reply[6] << 8);
            const done = replies.get(tag);
            replies.delete(tag);
            done?.(reply);
            wake();
        };
        ws.onclose = () => { shim = null; if (!closed && replies.size) setTimeout(openShim, 200); };
    };
    /** @type {Emulator | null} */
    let emulator = null;
    // Every reply comes later, from the socket: a guest waiting for it has usually halted its CPU,
    // and v86 sleeps until its next timer event unless woken (as pyninep.js's wake does).
    const wake = () => {
        const v = emulator?.v86;
        if (v && v.idle && v.running && !v.stopping && typeof v.next_tick === "function") v.next_tick(0);
    };
    /** @type {Handle9p} */
    const handle9p = (req, reply) => {
        replies.set(req[5] | (req[6] << 8), reply);
        if (shim?.readyState === 1) shim.send(req);
        else { queue.push(req.slice()); if (!shim) openShim(); }
    };
    let changes = 0;

    /** A file, or a directory and all in it. @param {string} path */
    const removeTree = async (path) => {
        const slash = path.lastIndexOf("/");
        const dir = await files.walk(path.slice(0, slash));
        const name = path.slice(slash + 1);
        try {
            try {
                await files.rpc(T.unlinkat, (f) => f.u32(dir).str(name).u32(0));
            } catch (/** @type {any} */ error) {
                if (error.errno !== 21 && error.errno !== 1) throw error; // a directory
                for (const e of await remote.listDir(path)) await removeTree(`${path}/${e.name}`);
                await files.rpc(T.unlinkat, (f) => f.u32(dir).str(name).u32(AT_REMOVEDIR));
            }
        } finally { await files.clunk(dir); }
        changes++;
    };
    /** The page changed files the guest may cache: options.onOutsideChange (see pyninep.js). */
    const tell = async () => { await options.onOutsideChange?.(); };
    const remote = {
        storage: "server",
        url,
        session,
        /** for v86's filesystem.proxy_url */
        proxyUrl: sessionUrl,
        handle9p,
        /** The shim's replies wake this (halted) emulator at once: call it after new V86(...). */
        attachEmulator(/** @type {Emulator} */ v86) { emulator = v86; },
        inFlight: () => replies.size,
        /** The files panel re-lists when this moves; the server's tree changes under it from other
         * clients too, so it moves every two seconds. */
        changes: () => changes + Math.floor(Date.now() / 2000),
        /** @param {string} path */
        async readFile(path) {
            const fid = await files.walk(path);
            try {
                await files.rpc(T.lopen, (f) => f.u32(fid).u32(O_RDONLY));
                /** @type {Uint8Array[]} */
                const parts = [];
                let offset = 0;
                for (;;) {
                    const r = await files.rpc(T.read, (f) => f.u32(fid).u64(offset).u32(files.msize - 24));
                    const n = r.u32();
                    if (!n) break;
                    parts.push(r.buf.slice(r.pos, r.pos + n));
                    offset += n;
                }
                const out = new Uint8Array(offset);
                let at = 0;
                for (const p of parts) { out.set(p, at); at += p.length; }
                return out;
            } finally { await files.clunk(fid); }
        },
        /** @param {string} path @param {Uint8Array | string} data */
        async writeFile(path, data) {
            const bytes = typeof data === "string" ? enc.encode(data) : data;
            const slash = path.lastIndexOf("/");
            const dir = path.slice(0, slash), name = path.slice(slash + 1);
            /** @type {number} */
            let fid;
            try {
                fid = await files.walk(path);
                await files.rpc(T.lopen, (f) => f.u32(fid).u32(O_WRONLY | O_TRUNC));
            } catch (/** @type {any} */ error) {
                if (error.errno !== 2) throw error;
                fid = await files.walk(dir).catch(async () => { await this.mkdir(dir); return files.walk(dir); });
                await files.rpc(T.lcreate, (f) => f.u32(fid).str(name).u32(O_WRONLY).u32(0o644).u32(0));
            }
            try {
                const step = files.msize - 24;
                for (let off = 0; off < bytes.length; off += step) {
                    await files.rpc(T.write, (f) => f.u32(fid).u64(off).bytes(bytes.subarray(off, off + step)));
                }
                await files.rpc(T.fsync, (f) => f.u32(fid).u32(0));
                changes++;
            } finally { await files.clunk(fid); }
            await tell();
        },
        /** @param {string} path @returns {Promise<{name: string, kind: "d" | "f" | "l" | "o", size: number, mtime: number}[]>} */
        async listDir(path) {
            const fid = await files.walk(path);
            /** @type {{name: string, kind: "d" | "f" | "l" | "o", size: number, mtime: number}[]} */
            const out = [];
            try {
                await files.rpc(T.lopen, (f) => f.u32(fid).u32(O_RDONLY | O_DIRECTORY));
                let cookie = 0;
                for (;;) {
                    const r = await files.rpc(T.readdir, (f) => f.u32(fid).u64(cookie).u32(files.msize - 24));
                    const end = r.pos + 4 + r.u32();
                    if (end === r.pos) break;
                    /** @type {string[]} */
                    const names = [];
                    while (r.pos < end) {
                        r.qid();
                        cookie = r.u64();
                        r.u8();
                        names.push(r.str());
                    }
                    for (const name of names) {
                        if (name === "." || name === "..") continue;
                        const c = await files.walk(`${path}/${name}`);
                        try {
                            const a = await files.rpc(T.getattr, (f) => f.u32(c).u64(0x7ff));
                            a.u64(); a.qid();
                            const mode = a.u32();
                            a.pos += 4 + 4 + 8 + 8;
                            const size = a.u64();
                            a.pos += 16 + 16;
                            const mtime = a.u64() * 1000 + Math.floor(a.u64() / 1e6);
                            const t = mode & 0o170000;
                            out.push({ name, kind: t === 0o040000 ? "d" : t === 0o100000 ? "f" : t === 0o120000 ? "l" : "o", size, mtime });
                        } finally { await files.clunk(c); }
                    }
                }
            } finally { await files.clunk(fid); }
            return out;
        },
        /** @param {string} path */
        async mkdir(path) {
            let at = "";
            for (const name of path.split("/").filter(Boolean)) {
                const fid = await files.walk(at);
                try {
                    await files.rpc(T.mkdir, (f) => f.u32(fid).str(name).u32(0o755).u32(0));
                } catch (/** @type {any} */ error) {
                    if (error.errno !== 17) throw error;
                } finally { await files.clunk(fid); }
                at += `/${name}`;
            }
            changes++;
            await tell();
        },
        /** @param {string} path */
        async remove(path) {
            await removeTree(path);
            await tell();
        },
        flush: async () => {},
        /** The server's word on this session. */
        async sessionState() {
            const u = new URL(url.replace(/^ws/, "http"));
            u.pathname = "/.pyninep/session";
            u.search = `?id=${encodeURIComponent(session)}`;
            return (await (await fetch(u)).json()).state;
        },
        async close() {
            closed = true;
            shim?.close();
            (await files.socket)?.close();
        },
    };
    return remote;
}

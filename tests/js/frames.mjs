// Hand-built 9P2000.L request frames for the shim's tests and benchmarks (independent of Python).
const enc = new TextEncoder();

export function frame(type, tag, parts) {
    const body = parts.flatMap((p) => {
        if (typeof p === "string") {
            const b = enc.encode(p);
            return [u16(b.length), b];
        }
        return [p];
    });
    const size = 7 + body.reduce((n, b) => n + b.length, 0);
    const out = new Uint8Array(size);
    const v = new DataView(out.buffer);
    v.setUint32(0, size, true);
    out[4] = type;
    v.setUint16(5, tag, true);
    let o = 7;
    for (const b of body) { out.set(b, o); o += b.length; }
    return out;
}
export const u8 = (n) => Uint8Array.of(n);
export const u16 = (n) => { const b = new Uint8Array(2); new DataView(b.buffer).setUint16(0, n, true); return b; };
export const u32 = (n) => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n, true); return b; };
export const u64 = (n) => { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(n), true); return b; };
export const NOFID = 0xffffffff;

export const T = {
    version: (tag, msize) => frame(100, tag, [u32(msize), "9P2000.L"]),
    attach: (tag, fid) => frame(104, tag, [u32(fid), u32(NOFID), "root", "", u32(0)]),
    walk: (tag, fid, newfid, names) => frame(110, tag, [u32(fid), u32(newfid), u16(names.length), ...names]),
    lcreate: (tag, fid, name) => frame(14, tag, [u32(fid), name, u32(2), u32(0o644), u32(0)]),
    write: (tag, fid, offset, data) => frame(118, tag, [u32(fid), u64(offset), u32(data.length), data]),
    read: (tag, fid, offset, count) => frame(116, tag, [u32(fid), u64(offset), u32(count)]),
    getattr: (tag, fid) => frame(24, tag, [u32(fid), u64(0x3fff)]),
    statfs: (tag, fid) => frame(8, tag, [u32(fid)]),
    clunk: (tag, fid) => frame(120, tag, [u32(fid)]),
    fsync: (tag, fid) => frame(50, tag, [u32(fid), u32(0)]),
    flush: (tag, oldtag) => frame(108, tag, [u16(oldtag)]),
};

/** Call handle9p and return the reply (synchronous replies only). */
export function call(server, req) {
    let reply = null;
    server.handle9p(req, (r) => { reply = r; });
    if (!reply) throw new Error("no synchronous reply");
    return reply;
}
export const rtype = (r) => r[4];
export const rtag = (r) => r[5] | (r[6] << 8);
export const ecode = (r) => new DataView(r.buffer, r.byteOffset).getUint32(7, true);

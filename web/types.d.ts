// Types the checker needs that no module of ours defines (tsconfig.json: `tsc -p web`).
// Only declarations: nothing here exists at run time.

/** The part of v86's V86 the page and pyninep.js use (v86 ships its own, experimental
 * v86.d.ts; this names exactly what we rely on, including `v86`, an internal). */
interface Emulator {
    add_listener(event: string, listener: (value: any) => void): void;
    remove_listener(event: string, listener: (value: any) => void): void;
    serial0_send(text: string): void;
    serial_send_bytes(port: number, bytes: Uint8Array): void;
    is_running(): boolean;
    run(): void | Promise<void>;
    stop(): Promise<void>;
    destroy?(): void | Promise<void>;
    save_state(): Promise<ArrayBuffer>;
    restore_state(state: ArrayBuffer): Promise<void>;
    /** v86's CPU loop (internal): pyninep.js wakes a halted guest through it. */
    v86?: { idle: boolean; running: boolean; stopping: boolean; next_tick?(ms: number): void };
}

/** v86's filesystem.handle9p: a 9P request frame in, the reply frame out through `reply`. */
type Handle9p = (request: Uint8Array, reply: (frame: Uint8Array) => void) => void;

/** A Pyodide instance (pyodide.mjs's loadPyodide). Python's objects are dynamic: their
 * attributes are not checked here. */
type Pyodide = any;

/** The machine a build saved for the first visit (build.sh write_manifest; build-machine.mjs). */
interface MachineInfo { url: string; stamp: string; bytes?: number; raw?: number }

/** dist/manifest.json, written by build.sh's write_manifest. */
interface Manifest {
    wheel: string;
    image: string;
    script?: string | null;
    pyodide: string;
    v86: string;
    /** the content files of the image's base (a site on the Debian userland: "debian/base/") */
    baseurl?: string;
    pyodideSnapshot?: string;
    /** the index.json of the wheels the script REQUIRES (build.sh fetch_requires) */
    requires?: string;
    machine?: MachineInfo;
    guest: { bios: string; vgabios: string; kernel: string; initrd: string; cmdline: string; memory: number };
    /** every file of the build, with its size in bytes */
    sizes: Record<string, number>;
}

/** The server createServer() resolves to (pyninep.js). */
type PyninepServer = import("./pyninep.js").PyninepServer;
/** readMachine()'s checked parts of a machine blob (pyninep-machine.js). */
type MachineParts = import("./pyninep-machine.js").MachineParts;

interface Window {
    /** The page's scripting interface (page/context.js). */
    pyninep: import("./page/context.js").PyninepApi;
}

// Node, for the parts of pyninep.js that also run there (it checks at run time which it is in).
declare var process: { versions?: { node?: string }; cwd(): string } | undefined;
declare module "node:fs/promises" {
    export function readFile(path: string): Promise<Uint8Array>;
}
declare module "node:url" {
    export function fileURLToPath(url: URL | string): string;
}

// Build step (./build.sh): boot the default guest once in Node, stop it at its console's wake-up
// point (see machine.js) and write the saved machine that a first visit restores instead of booting.
// Usage: node web/build-machine.mjs DIST_DIR OUT_FILE STAMP
import { writeFile, rename } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [distArg, outArg, stamp = ""] = process.argv.slice(2);
const dist = path.resolve(distArg || "dist");
const base = pathToFileURL(dist + "/");
const t0 = Date.now();
const manifest = JSON.parse(await (await import("node:fs/promises")).readFile(path.join(dist, "manifest.json"), "utf8"));
const machine = await import(new URL("machine.js", base).href);
const pyninep = await import(new URL("pyninep.js", base).href);
const { createServer } = pyninep;
const { V86 } = await import(new URL(manifest.v86 + "libv86.mjs", base).href);

const server = await createServer({ storage: "memory", baseUrl: base, manifest });
const emulator = new V86(machine.v86Options(manifest, { baseUrl: base, handle9p: server.handle9p, cmdline: machine.SAVED_MACHINE_CMDLINE }));
let out = "";
let waiting = null;
emulator.add_listener("serial0-output-byte", (byte) => {
    out += String.fromCharCode(byte);
    if (waiting && waiting.re.test(out)) waiting.done();
});
const waitFor = (re, ms) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${re} after ${ms} ms; output ends ${JSON.stringify(out.slice(-300))}`)), ms);
    waiting = { re, done: () => { clearTimeout(timer); waiting = null; resolve(); } };
    if (re.test(out)) waiting.done();
});
// What the guest says on its second serial port (the console's resize loop).
const serial1 = machine.listenSerial1(emulator);
const fail = (error) => { console.error(`build-machine: ${error.message}`); process.exit(1); };

try {
    await waitFor(/[#$] $/, 180_000);
    const bootMs = Date.now() - t0;
    await server.writeFile(machine.CONSOLE_SCRIPT_PATH, machine.CONSOLE_SCRIPT);
    emulator.serial0_send(machine.SAVE_PREP_COMMAND + machine.CONSOLE_COMMAND);
    await waitFor(new RegExp(machine.READY_MARKER + "\\r?\\n$"), 30_000);
    // The shell now waits in `read` on the console: no 9P request is in flight. The resize loop
    // (started in the background) must be reading its port too before the machine is saved.
    if (!(await serial1.says(machine.LOOP_READY_MARKER, 30_000))) throw new Error("the console's resize loop did not start within 30 s");
    await new Promise((resolve) => setTimeout(resolve, 300));
    emulator.stop();
    // pyninep.js's one machine format (the page reads it with readMachine); a complete state: a
    // new visitor's empty store is seeded with its files.
    const meta = { stamp, built: new Date().toISOString() };
    const checkpoint = await pyninep.saveMachine(emulator, server, { meta });
    // What the restored guest reads of a base image as the page wakes it (and as a visitor types
    // a first `ls`) ships with the machine: no fetch, one after another, before the prompt. Found
    // by waking it here (restored first, as the page does: a server that has read nothing yet),
    // then the machine goes back to the checkpoint to be saved with them.
    await pyninep.restoreMachine(checkpoint, { emulator, server });
    const promptAfter = (/** @type {string} */ line) => {
        const mark = out.length;
        emulator.serial0_send(line);
        return waitFor({ test: (/** @type {string} */ o) => o.length > mark && /[#$] $/.test(o.slice(mark)), toString: () => "prompt" }, 60_000);
    };
    const tWake = Date.now();
    emulator.serial_send_bytes(1, machine.resizeLine({ rows: 24, cols: 80, clock: true, drop: "dropbuild" }));
    await promptAfter(machine.wakeLine());
    const wakeMs = Date.now() - tWake;
    await serial1.says("dropbuild", 30_000);
    await promptAfter("ls -l --color=auto / >/dev/null\n");
    const warmKeys = server.basePiecesHeld();
    if (process.env.PYNINEP_WARM_LIST) console.log(warmKeys.join(" "));
    const warm = server.exportBasePieces(warmKeys);
    emulator.stop();
    await pyninep.restoreMachine(checkpoint, { emulator, server, run: false });
    // Plain: the build packs the whole file for the wire (sitefiles.pack_machine: zstd, a fifth
    // smaller than this format's own gzip).
    const packed = await pyninep.saveMachine(emulator, server, { compress: false, meta, warm });
    const parts = await pyninep.readMachine(packed);
    const raw = parts.v86State.byteLength + parts.serverState.byteLength + warm.length;
    const outFile = path.resolve(outArg);
    await writeFile(outFile + ".tmp", packed);
    await rename(outFile + ".tmp", outFile);
    await writeFile(outFile + ".json", JSON.stringify({ stamp, bytes: packed.length, raw }) + "\n");
    console.log(`build-machine: booted in ${(bootMs / 1000).toFixed(1)} s; saved ${raw} B (${packed.length} B plain)` +
        ` (with ${warmKeys.length} base pieces the wake reads, ${warm.length} B; it woke in ${wakeMs} ms)` +
        ` in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    emulator.destroy?.();
    process.exit(0);
} catch (error) {
    fail(error);
}

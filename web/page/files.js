/**
 * files.js — the files panel (#files and everything in it, #files-toggle): a folder of the served
 * tree listed with sizes; download, upload (button or drop), new folder, delete, export and import
 * a tar; Alt+F and Escape; and keeping the list current while it is open.
 *
 * Owns the panel's elements and window.pyninep.files. It uses only the server's public methods
 * (listDir, readFile, writeFile, mkdir, remove, flush, exportTar, importTar, changes) and must not
 * touch the terminal beyond giving it the focus back, nor the machine.
 */

import { $, element } from "./context.js";
import { mb } from "./progress.js";

// The list is what the folder held at the panel's last look. The server's change counter
// (server.changes(): it grows with every change to the files, by the guest or the page, and never
// on a read) says when that may no longer be so: while the panel is open it is checked every
// WATCH_MS, which costs one call into Python when nothing changed, and the list is read again
// when it moved. So a file the guest creates appears without a click.
const WATCH_MS = 500;

// The panel deletes only inside the visitor's own folders by default: one click on /bin or /etc
// would break the guest for good (its files are the store's, kept across visits). ?delete=anywhere
// lifts that; ?delete=/root,/srv names the folders (files.deletable, settable from a script too).
const DELETABLE = ["/root", "/home", "/tmp"];

// Folders the guest's kernel fills itself (it mounts proc, sysfs and devtmpfs over them): here they
// are empty or hold a few placeholders, which is not what the guest sees.
/** @type {Record<string, string>} */
const VIRTUAL = {
    "/proc": "the kernel's view of its processes",
    "/sys": "the kernel's view of its devices and drivers",
    "/dev": "the devices the kernel makes",
};

/** @typedef {ReturnType<typeof createFiles>} FilesPanel */

/**
 * @param {import("./context.js").PageContext} ctx
 * @param {{terminal: import("./terminal.js").PageTerminal}} parts
 */
export function createFiles(ctx, { terminal }) {
    const deleteParam = ctx.params.get("delete");
    const server = () => /** @type {PyninepServer} */ (ctx.server);
    const panel = $("files");
    const list = $("file-list");
    /** The counter when the list was last read; null: not read yet. */
    let shownAt = /** @type {number | null} */ (null);
    /** The note shows a message (an error, an upload's count): a look on its own keeps it. */
    let noteIsMessage = false;
    /** @type {ReturnType<typeof setInterval> | null} */
    let watching = null;
    /** A refusal shown in the row it is about (the note at the panel's foot is far from a row at
     *  the top of a long list); the watch's own looks keep it, anything the user does clears it. */
    let rowNote = /** @type {{dir: string, name: string, text: string} | null} */ (null);
    /** Panel changes under way (upload, new folder, delete, import): the watch does not redraw
     *  meanwhile, so a row comes or goes only once its change is committed (a tab closed the
     *  moment a deleted row vanished must not bring the file back). */
    let changing = 0;
    /** Run a panel change with the watch held (see `changing`). @template T @param {() => Promise<T>} work */
    const change = async (work) => {
        changing += 1;
        try { return await work(); } finally { changing -= 1; }
    };

    const files = {
        dir: "/root",
        /** Folders inside which the panel may delete ("/": anywhere). */
        deletable: deleteParam === "anywhere" ? ["/"]
            : deleteParam ? deleteParam.split(",").map((d) => "/" + d.split("/").filter(Boolean).join("/")) : [...DELETABLE],
        async open(show = true, { focus = false } = {}) {
            panel.hidden = !show;
            $("files-toggle").setAttribute("aria-expanded", String(show));
            watch(show);
            if (show) await this.refresh();
            if (show && focus) (list.querySelector("button") ?? $("files-up")).focus();
            if (!show && panel.contains(document.activeElement)) terminal.focus();
            $("files-export").hidden = !ctx.server?.exportTar;
            $("files-import-label").hidden = !ctx.server?.importTar;
        },
        join: (/** @type {string} */ dir, /** @type {string} */ name) => (dir === "/" ? "" : dir) + "/" + name,
        /** Read the folder again and show it. `looked`: the watch's own look (see WATCH_MS), which
         *  keeps a message in the note and the focus on the row that had it. */
        async refresh({ looked = false } = {}) {
            if (!ctx.server) return;
            $("files-path").textContent = this.dir;
            shownAt = changes();
            let entries;
            try {
                entries = await server().listDir(this.dir); // (a Promise in server mode)
            } catch (error) {
                this.problem(`Cannot list ${this.dir}: ${pyMessage(error)}`);
                return;
            }
            const focused = looked ? focusedRow() : null;
            entries.sort((a, b) => (a.kind === "d") !== (b.kind === "d") ? Number(b.kind === "d") - Number(a.kind === "d") : a.name.localeCompare(b.name));
            list.replaceChildren(...entries.map((e) => {
                const li = document.createElement("li");
                const name = document.createElement("button");
                name.className = "name";
                name.textContent = e.kind === "d" ? e.name + "/" : e.kind === "l" ? e.name + " →" : e.name;
                name.title = e.kind === "d" ? `Open ${e.name}` : `Download ${e.name}`;
                name.addEventListener("click", () => e.kind === "d" ? this.cd(this.join(this.dir, e.name)) : this.download(e.name));
                const size = document.createElement("span");
                size.className = "size";
                size.textContent = e.kind === "d" ? "" : human(e.size);
                const virtual = e.kind === "d" ? VIRTUAL[this.join(this.dir, e.name)] : undefined;
                if (virtual) {
                    size.textContent = "virtual";
                    size.title = `Linux fills this folder with ${virtual} inside the guest; it holds no files here`;
                }
                const del = document.createElement("button");
                del.className = "del";
                del.textContent = "✕";
                del.title = del.ariaLabel = `Delete ${e.name} (Delete key)`;
                if (!this.mayDelete(this.join(this.dir, e.name))) {
                    del.classList.add("locked"); // it says why when pressed
                    del.title = `${e.name} is outside your own folders: the panel does not delete it`;
                }
                del.tabIndex = -1; // a row is one tab stop (its name); the Delete key deletes
                del.addEventListener("click", () => this.remove(e.name, e.kind === "d"));
                li.dataset.name = e.name;
                li.append(name, size, del);
                return li;
            }));
            if (!looked) rowNote = null;
            showRowNote();
            if (focused) refocus(focused);
            if (looked && noteIsMessage) return;
            noteIsMessage = false;
            const virtual = VIRTUAL[this.dir];
            $("files-note").textContent = virtual
                ? `${this.dir} is a virtual folder: Linux fills it with ${virtual} inside the guest (try ls ${this.dir} in the terminal)${entries.length ? ", and what is listed here is only a placeholder" : "; it holds no files here"}.`
                : entries.length ? "Drop files here to upload them into this folder."
                : "This folder is empty. Drop files here to upload them.";
        },
        async cd(/** @type {string} */ dir) {
            this.dir = dir || "/";
            await this.refresh();
            // (An empty folder: Up, so the keys stay in the panel rather than reach the terminal.)
            /** @type {HTMLElement} */ (list.querySelector("button") ?? $("files-up")).focus();
        },
        up() { this.cd(this.dir.replace(/\/[^/]*$/, "") || "/"); },
        problem(/** @type {string} */ text) { $("files-note").textContent = text; noteIsMessage = true; },
        async download(/** @type {string} */ name) {
            const path = this.join(this.dir, name);
            try {
                const bytes = await server().readFile(path); // a Promise with stored filesystems
                saveBlob(new Blob([bytes]), name);
            } catch (error) {
                this.problem(`Cannot download ${name}: ${pyMessage(error)}`);
            }
        },
        async upload(/** @type {File[]} */ fileList) { return change(() => this._upload(fileList)); },
        async _upload(/** @type {File[]} */ fileList) {
            for (const f of fileList) {
                try {
                    await server().writeFile(this.join(this.dir, f.name), new Uint8Array(await f.arrayBuffer()));
                } catch (error) {
                    this.problem(`Cannot upload ${f.name}: ${pyMessage(error)}`);
                    return;
                }
            }
            await this.refresh();
            this.problem(`Uploaded ${fileList.length} file${fileList.length === 1 ? "" : "s"} to ${this.dir}.`);
        },
        async mkdir() {
            const name = prompt("Name of the new folder:");
            if (!name) return;
            if (name.includes("/")) { this.problem("A folder name cannot contain “/”."); return; }
            try {
                await change(() => this.shown(server().mkdir(this.join(this.dir, name))));
            } catch (error) {
                this.problem(`Cannot create ${name}: ${pyMessage(error)}`);
            }
        },
        /** After a mkdir or remove (`told`: its Promise, which settles once the guest was told):
         *  commit it first, so it survives a crash as soon as the list shows it (the guest takes a
         *  few tenths of a second), then wait for the guest, then read the folder again. */
        async shown(/** @type {Promise<void>} */ told) {
            told.catch(() => {}); // (a failure is thrown below, where it is awaited)
            await server().flush?.();
            await told;
            await this.refresh();
        },
        /** Whether the panel may delete `path` (strictly inside one of `deletable`). */
        mayDelete(/** @type {string} */ path) {
            return path !== "/" && this.deletable.some((d) => d === "/" || path.startsWith(d + "/"));
        },
        async remove(/** @type {string} */ name, /** @type {boolean} */ isDir) {
            const path = this.join(this.dir, name);
            if (!this.mayDelete(path)) {
                rowNote = { dir: this.dir, name, text: `Not deleted: ${path} is outside your own folders (${this.deletable.join(", ")}), and Linux may need it; to allow this, open the page with ?delete=anywhere.` };
                showRowNote();
                return false;
            }
            if (!confirm(isDir ? `Delete the folder ${name} and everything in it?` : `Delete ${name}?`)) return;
            try {
                await change(() => this.shown(server().remove(this.join(this.dir, name))));
                this.problem(`Deleted ${path}.`);
                return true;
            } catch (error) {
                this.problem(`Cannot delete ${name}: ${pyMessage(error)}`);
                return false;
            }
        },
        /** The folder as a tar download: rootfs.tar for /, NAME.tar for any other. */
        async exportTar() {
            const name = this.dir === "/" ? "rootfs.tar" : this.dir.split("/").pop() + ".tar";
            try {
                saveBlob(new Blob([await server().exportTar(this.dir)]), name);
                this.problem(`Exported ${this.dir} as ${name}.`);
            } catch (error) {
                this.problem(`Cannot export ${this.dir}: ${pyMessage(error)}`);
            }
        },
        async importTar(/** @type {File} */ f) {
            const dir = this.dir;
            try {
                const added = await change(async () => server().importTar(new Uint8Array(await f.arrayBuffer()), dir));
                await this.refresh();
                this.problem(`Imported ${added} entr${added === 1 ? "y" : "ies"} from ${f.name} into ${dir}.`);
            } catch (error) {
                this.problem(`Cannot import ${f.name}: ${pyMessage(error)}`);
            }
        },
    };

    /** The server's change counter, or null when it cannot say (no server, or one closed by Reset). */
    function changes() {
        try {
            return ctx.server && !ctx.api.resetting ? ctx.server.changes() : null;
        } catch {
            return null;
        }
    }

    /** Look again whenever the counter moved, while the panel is open. */
    function watch(/** @type {boolean} */ on) {
        if (!on) {
            if (watching !== null) clearInterval(watching);
            watching = null;
            return;
        }
        watching ??= setInterval(() => {
            const now = changes();
            if (now !== null && now !== shownAt && changing === 0) files.refresh({ looked: true });
        }, WATCH_MS);
    }

    /** rowNote, in its row (if that row is shown), and nowhere else. */
    function showRowNote() {
        for (const old of list.querySelectorAll(".row-note")) old.remove();
        if (!rowNote || rowNote.dir !== files.dir) return;
        for (const li of list.children) {
            if (!(li instanceof HTMLElement) || li.dataset.name !== rowNote.name) continue;
            const note = document.createElement("div");
            note.className = "row-note";
            note.setAttribute("role", "alert");
            // (A URL parameter in it stays whole on one line.)
            for (const part of rowNote.text.split(/(\?\S+=\S+?)(?=[.,;]?(?:\s|$))/)) {
                if (!/^\?\S+=/.test(part)) { note.append(part); continue; }
                const code = document.createElement("code");
                code.textContent = part;
                note.append(code);
            }
            li.append(note);
            note.scrollIntoView({ block: "nearest" });
        }
    }

    /** Which button of which row has the focus, to give it back after the rows are made anew. */
    function focusedRow() {
        const el = document.activeElement;
        const li = el instanceof HTMLElement && list.contains(el) ? el.closest("li") : null;
        return li?.dataset.name != null ? { name: li.dataset.name, button: el?.className ?? "" } : null;
    }
    function refocus(/** @type {{name: string, button: string}} */ { name, button }) {
        for (const li of list.children) {
            if (li instanceof HTMLElement && li.dataset.name === name) {
                /** @type {HTMLElement | null} */ (li.querySelector(`button.${button}`))?.focus();
            }
        }
    }

    // On a small screen the file browser covers the terminal: it closes when the window gets small.
    matchMedia("(max-width: 760px)").addEventListener("change", (e) => {
        if (e.matches && !panel.hidden) files.open(false);
    });
    $("files-toggle").addEventListener("click", () => files.open(panel.hidden, { focus: true }));
    $("files-close").addEventListener("click", () => { files.open(false); terminal.focus(); });
    $("files-up").addEventListener("click", () => files.up());
    $("files-refresh").addEventListener("click", () => files.refresh());
    $("files-mkdir").addEventListener("click", () => files.mkdir());
    const upload = element("files-upload", HTMLInputElement);
    upload.addEventListener("change", () => { files.upload([...upload.files ?? []]); upload.value = ""; });
    $("files-export").addEventListener("click", () => files.exportTar());
    const importInput = element("files-import", HTMLInputElement);
    importInput.addEventListener("change", async () => {
        const f = importInput.files?.[0];
        importInput.value = "";
        if (f) files.importTar(f);
    });
    panel.addEventListener("dragover", (e) => { e.preventDefault(); panel.classList.add("drop"); });
    panel.addEventListener("dragleave", () => panel.classList.remove("drop"));
    panel.addEventListener("drop", (e) => {
        e.preventDefault();
        panel.classList.remove("drop");
        if (e.dataTransfer?.files?.length) files.upload([...e.dataTransfer.files]);
    });
    // Keys in the panel: Backspace goes up; Esc closes it (the terminal gets the focus back); on a
    // row, the arrows move between rows, Enter opens or downloads (the name is a button), Delete
    // asks to delete.
    panel.addEventListener("keydown", (e) => {
        const target = e.target instanceof HTMLElement ? e.target : null;
        if (e.key === "Backspace" && target?.tagName === "BUTTON") { e.preventDefault(); files.up(); }
        if (e.key === "Escape") { e.preventDefault(); files.open(false); terminal.focus(); return; }
        const li = target && list.contains(target) ? target.closest("li") : null;
        if (!li) return;
        if (e.key === "ArrowDown" || e.key === "ArrowUp" || e.key === "Home" || e.key === "End") {
            e.preventDefault();
            const rows = [...list.children];
            const at = rows.indexOf(li);
            const to = e.key === "Home" ? 0 : e.key === "End" ? rows.length - 1 : at + (e.key === "ArrowDown" ? 1 : -1);
            /** @type {HTMLElement | null | undefined} */ (rows[Math.max(0, Math.min(rows.length - 1, to))]?.querySelector("button.name"))?.focus();
        }
        if (e.key === "Delete") {
            e.preventDefault();
            /** @type {HTMLElement | null} */ (li.querySelector("button.del"))?.click();
        }
    });
    // (Capture phase: the terminal would otherwise take Alt+F as a key for the guest.)
    document.addEventListener("keydown", (e) => {
        if (e.altKey && e.code === "KeyF") {
            e.preventDefault();
            e.stopPropagation();
            if (panel.hidden) files.open(true, { focus: true });
            else { files.open(false); terminal.focus(); }
        }
    }, true);

    return files;
}

const human = (/** @type {number} */ n) => n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KB` : `${mb(n)} MB`;
/** The last line of a Python error (its message), or the error itself. */
const pyMessage = (/** @type {any} */ error) => String(error?.message ?? error).trim().split("\n").pop();

function saveBlob(/** @type {Blob} */ blob, /** @type {string} */ name) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

"""The default guest root of dist/ (images/default.img), as an authoring script you can copy.

    python -m pyninep_browser image build pyninep_browser/default_image.py -o default.img \\
        --arg guest_root=DIR         # an unpacked Debian i386 root: bin/busybox, flock, libc…

``build(tree, …)`` authors the static tree: busybox and its applets, /etc, users, /root, /tmp….
The live files under /py are declared at module level, so the page re-attaches them by running
this same file at start-up (``createServer({script})``; dist/ ships it as images/default.py):

- ``/py/run``: write Python source to it; reading it gives that code's output (stdout and stderr,
  or the traceback of an error). The code runs in the page's Python with the page's rights.
- ``/py/version``: the Python serving the guest (``emscripten`` in the page).
- ``/py/stats``: the server's own counters: requests by type, bytes in and out.
- ``/py/modules/``: a live directory, one entry per module loaded in that Python.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from pyninep_browser import protocol
from pyninep_browser.authoring import Tree, context, live_dir, live_file
from pyninep_browser.initramfs import busybox_applets

# ----------------------------------------------------------------- live files

_last_run = {"output": ""}


def _run(source: bytes) -> None:
    """Run what was written to /py/run; keep its output for the next read."""
    out = io.StringIO()
    namespace = {"__name__": "__pyrun__", "__builtins__": __builtins__}
    stdin, sys.stdin = sys.stdin, io.StringIO()  # input() sees end of file, never a page prompt
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            exec(compile(source.decode("utf-8", "replace"), "/py/run", "exec"), namespace)
        except BaseException as exc:  # noqa: BLE001 - the writer reads the traceback back
            # Skip this function's own frame: the traceback starts in the guest's code.
            tb = exc.__traceback__.tb_next if exc.__traceback__ else None
            out.write("".join(traceback.format_exception(type(exc), exc, tb)))
        finally:
            sys.stdin = stdin
    _last_run["output"] = out.getvalue()


run = live_file("run", read=lambda: _last_run["output"], write=_run, limit=30.0)


@live_file("version")
@functools.cache  # it cannot change while the page runs
def version() -> str:
    extra = ""
    with contextlib.suppress(ImportError):
        import pyodide

        extra = f", Pyodide {pyodide.__version__}"
    return f"Python {platform.python_version()} ({platform.python_implementation()}, {sys.platform}{extra})\n"


@live_file("stats")
def stats() -> str:
    server = context().server
    counters = getattr(server, "stats", None)
    if counters is None:
        return "request counting is off (Server.enable_stats() turns it on)\n"
    lines = [
        f"since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(counters['since']))}",
        f"requests {sum(counters['requests'].values())}",
        f"bytes_in {counters['bytes_in']}",
        f"bytes_out {counters['bytes_out']}",
    ]
    for mtype, n in sorted(counters["requests"].items(), key=lambda kv: -kv[1]):
        try:
            name = protocol.T(mtype).name
        except ValueError:
            name = f"type{mtype}"
        lines.append(f"{name} {n}")
    return "\n".join(lines) + "\n"


@live_dir("modules")
def modules() -> dict[str, str]:
    return {
        name: f"{getattr(module, '__file__', None) or '(built in)'}\n"
        for name, module in list(sys.modules.items())
        if "/" not in name and module is not None
    }


# ----------------------------------------------------------------- the static tree

# busybox init starts the console's shell with HOME=/ (its own default), not root's home: a
# login shell of root starts in /root, as after a real login. It also says TERM=vt102 for a serial
# console; the page's terminal on it is xterm.js, which does what xterm-256color describes
# (colours, the mouse, the alternate screen; the description is in /usr/share/terminfo).
PROFILE = r"""export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[ "${HOME:-/}" = / ] && [ "$(id -u)" = 0 ] && HOME=/root
export HOME
case "${TERM:-}" in ""|vt102|linux) TERM=xterm-256color;; esac
export TERM
cd "$HOME" 2>/dev/null
export PS1='\u@\h:\w\$ '
export PAGER=less
alias ll='ls -l'
"""

# The page's first screen (web/machine.js wakeLine prints it): what this is, and what to try.
MOTD = """Linux (i686, busybox) in this page: every file under / is served by Python here.
Try: echo 'print(6*7)' > /py/run; cat /py/run    (runs Python in the page)
The Files panel (Alt+F) shows /root: drop files on it to upload them.
"""

# Tools Debian's busybox lacks, with the libc they load: guest path -> path in the guest root.
EXTRAS = {
    "/usr/bin/flock": "usr/bin/flock",
    "/usr/bin/getfattr": "usr/bin/getfattr",
    "/usr/bin/setfattr": "usr/bin/setfattr",
    "/lib/ld-linux.so.2": "lib/ld-linux.so.2",
    "/lib/i386-linux-gnu/ld-linux.so.2": "lib/i386-linux-gnu/ld-linux.so.2",
    "/lib/i386-linux-gnu/libc.so.6": "lib/i386-linux-gnu/libc.so.6",
    # Terminal descriptions (Debian's ncurses-base) for programs that read terminfo: the page's
    # terminal is xterm.js, TERM=xterm-256color (PROFILE).
    **{
        f"/usr/share/terminfo/{name[0]}/{name}": f"lib/terminfo/{name[0]}/{name}"
        for name in ("xterm-256color", "xterm", "vt100", "vt102", "linux", "dumb")
    },
}


def build(
    tree: Tree,
    guest_root: str | None = None,
    busybox: str | None = None,
    extras: dict[str, str] | None = None,
) -> None:
    """The tree: ``guest_root`` is an unpacked Debian i386 root (busybox and EXTRAS come from
    it); ``busybox`` and ``extras`` (guest path -> host path) name the files instead. On a tree
    that already holds a system (``image build --base``: the Debian userland), with neither
    given, only the live files under /py are added."""
    if busybox is None and guest_root is None and extras is None and any(tree.root.iterdir()):
        add_live_files(tree)
        return
    if busybox is None:
        if guest_root is None:
            raise ValueError("build needs guest_root=DIR or busybox=PATH")
        busybox = os.path.join(guest_root, "bin/busybox")
    if extras is None:
        extras = {g: os.path.join(guest_root, h) for g, h in EXTRAS.items()} if guest_root else {}
    for path, mode in (
        ("/bin", 0o755),
        ("/sbin", 0o755),
        ("/usr/bin", 0o755),
        ("/usr/sbin", 0o755),
        ("/usr/local/bin", 0o755),
        ("/lib", 0o755),
        ("/etc", 0o755),
        ("/root", 0o700),
        ("/home", 0o755),
        ("/tmp", 0o1777),
        ("/var/tmp", 0o1777),
        ("/var/log", 0o755),
        ("/run", 0o755),
        ("/dev", 0o755),
        ("/proc", 0o555),
        ("/sys", 0o555),
        ("/mnt", 0o755),
    ):
        (tree / path).mkdir(mode)
    (tree / "bin/busybox").copy_from(busybox, follow_symlinks=True)
    for applet in busybox_applets(Path(busybox)):
        if applet.strip("/") != "bin/busybox":
            (tree / applet).symlink_to("/bin/busybox")
    for guest_path, host_path in sorted(extras.items()):
        if not os.path.lexists(host_path):
            raise FileNotFoundError(f"{host_path}: no such file (for {guest_path})")
        (tree / guest_path).copy_from(host_path)
    etc = tree / "etc"
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "user:x:1000:1000:user:/home/user:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    (etc / "group").write_text("root:x:0:\nusers:x:100:user\nuser:x:1000:\nnogroup:x:65534:\n")
    (etc / "shadow").write_text("root::0:0:99999:7:::\nuser::0:0:99999:7:::\n", mode=0o640)
    (etc / "hostname").write_text("pyninep\n")
    (etc / "hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tpyninep\n")
    (etc / "profile").write_text(PROFILE)
    (etc / "motd").write_text(MOTD)
    (etc / "fstab").write_text("proc /proc proc defaults 0 0\nsysfs /sys sysfs defaults 0 0\n")
    (etc / "inittab").write_text(
        "::sysinit:/etc/init.d/rcS\n::respawn:-/bin/sh\n"
        "::ctrlaltdel:/sbin/reboot\n::shutdown:/bin/umount -a -r\n"
    )
    (etc / "init.d/rcS").write_text(
        "#!/bin/sh\nmount -t proc proc /proc\nmount -t sysfs sys /sys\n"
        "hostname -F /etc/hostname\n[ -f /etc/motd ] && cat /etc/motd\n",
        mode=0o755,
    )
    (tree / "home/user").mkdir(0o755, uid=1000, gid=1000)
    (tree / "root/.profile").write_text("cd /root\n")
    add_live_files(tree)


def add_live_files(tree: Tree) -> None:
    """/py: root may run code in the page (0o600); anyone may read the rest."""
    py = (tree / "py").mkdir(0o755)
    (py / "run").live(run, mode=0o600)
    (py / "version").live(version)
    (py / "stats").live(stats)
    (py / "modules").live(modules)

"""The Debian userland: a bookworm i386 root as a base image (``./build.sh debian``; docs/debian.md).

``build.sh`` resolves and downloads the packages (``DEBIAN_PACKAGES``, apt with private lists) and
unpacks them with ``dpkg-deb -x`` into a staging directory; no maintainer script runs. This module
does what those scripts would have done that a sandbox needs, then authors the root:

    python -m pyninep_browser.debian_image stage STAGING     # usrmerge, alternatives, ld.so.cache, .pyc
    python -m pyninep_browser.debian_image export STAGING OUT  # OUT/fs.json + OUT/base/ (v86 fs2json)

``build(tree, staging=DIR)`` is an authoring script like ``default_image.py``
(``python -m pyninep_browser image build pyninep_browser/debian_image.py --arg staging=DIR``): the
staging tree copied in (modes, times, symlinks; every owner root), then /etc (users, profile,
hostname), the homes, and an init that needs no systemd: busybox's init (from Debian's
busybox-static) with an inittab that runs a bash login shell on the console, as the busybox image
does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .authoring import Tree
from .fs2json import export_fs2json

# What update-alternatives would have set (the packages' postinst, highest priority): link ->
# target, both in /usr (after the merge).
ALTERNATIVES = {
    "/usr/bin/awk": "mawk",
    "/usr/bin/nawk": "mawk",
    "/usr/share/man/man1/awk.1.gz": "mawk.1.gz",
    "/usr/bin/which": "which.debianutils",
    "/usr/share/man/man1/which.1.gz": "which.debianutils.1.gz",
    "/usr/bin/pager": "less",
    "/usr/share/man/man1/pager.1.gz": "less.1.gz",
    "/usr/bin/editor": "nano",
    "/usr/bin/pico": "nano",
    "/usr/share/man/man1/editor.1.gz": "nano.1.gz",
    "/usr/bin/w": "w.procps",
    "/usr/share/man/man1/w.1.gz": "w.procps.1.gz",
    "/usr/sbin/rmt": "rmt-tar",
    "/usr/bin/lzma": "xz",
    "/usr/bin/unlzma": "unxz",
    "/usr/bin/lzcat": "xzcat",
    "/usr/share/man/man7/builtins.7.gz": "bash-builtins.7.gz",
}

# Commands from busybox that Debian's packages give only with an init system.
BUSYBOX_LINKS = ("/usr/sbin/init", "/usr/sbin/poweroff", "/usr/sbin/reboot", "/usr/sbin/halt")

# busybox init starts the console's shell with HOME=/ and TERM=vt102 (a serial console); the
# page's terminal is xterm.js, which does what xterm-256color describes. Sourced by Debian's
# /etc/profile after /etc/bash.bashrc (which sets PS1 for bash).
PROFILE_D = r"""# pyninep: the console's login shell (busybox init gives HOME=/ and TERM=vt102).
[ "${HOME:-/}" = / ] && [ "$(id -u)" = 0 ] && HOME=/root
export HOME
case "${TERM:-}" in ""|vt102|linux) TERM=xterm-256color;; esac
export TERM
export LANG=${LANG:-C.UTF-8}
export PAGER=${PAGER:-less}
[ "$PWD" = / ] && cd "$HOME" 2>/dev/null
[ -n "${BASH:-}" ] || PS1='\u@\h:\w\$ '
"""

# Colours for ls and a few aliases (Debian's root .bashrc has them commented out).
BASHRC_EXTRA = r"""
# pyninep: colours and the usual aliases
export LS_OPTIONS='--color=auto'
eval "$(dircolors)"
alias ls='ls $LS_OPTIONS'
alias ll='ls $LS_OPTIONS -l'
alias grep='grep --color=auto'
"""

MOTD = """Debian GNU/Linux 12 (bookworm, i386) in this page: bash, coreutils, python3, nano, man.
Every file under / is served by Python in the page and fetched the first time it is read.
Try: echo 'print(6*7)' > /py/run; cat /py/run    (runs the page's Python, not the guest's)
The Files panel (Alt+F) shows /root: drop files on it to upload them.
"""

# Seen by readline (bash, python3's prompt). Bracketed paste off: a serial console that scripts
# drive (the tests, the page's console set-up) reads no escape codes around each command line.
INPUTRC = """# /etc/inputrc (pyninep): readline for bash and python3
set input-meta on
set output-meta on
set enable-bracketed-paste off
"\\e[1;5C": forward-word
"\\e[1;5D": backward-word
"\\e[5~": history-search-backward
"\\e[6~": history-search-forward
"""

INITTAB = """# busybox init (no systemd): /etc/init.d/rcS, then a bash login shell on the console.
::sysinit:/etc/init.d/rcS
::respawn:-/bin/bash
::ctrlaltdel:/usr/bin/busybox reboot
::shutdown:/usr/bin/busybox umount -a -r
"""

# /tmp and /run stay on the served root: the page and the tests write scripts there.
RCS = """#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
hostname -F /etc/hostname
[ -f /etc/motd ] && cat /etc/motd
"""

PASSWD = """root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
sys:x:3:3:sys:/dev:/usr/sbin/nologin
man:x:6:12:man:/var/cache/man:/usr/sbin/nologin
user:x:1000:1000:user:/home/user:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
"""
GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
man:x:12:
staff:x:50:
users:x:100:user
user:x:1000:
nogroup:x:65534:
"""
# No passwords: root (and user) log in without one; there is no login prompt anyway.
SHADOW = "".join(f"{line.split(':')[0]}::0:0:99999:7:::\n" for line in PASSWD.splitlines())


# ----------------------------------------------------------------- stage: the maintainer scripts' work


def merge_usr(root: Path) -> None:
    """bookworm's merged /usr: /bin, /sbin and /lib become symlinks into /usr (their contents
    moved there), as debootstrap and the usrmerge package leave a system."""
    for name in ("bin", "sbin", "lib"):
        top, usr = root / name, root / "usr" / name
        if top.is_symlink():
            continue
        usr.mkdir(parents=True, exist_ok=True)
        if top.is_dir():
            _move_into(top, usr)
            top.rmdir()
        top.symlink_to(f"usr/{name}")


def _move_into(src: Path, dst: Path) -> None:
    for entry in sorted(os.listdir(src)):
        s, d = src / entry, dst / entry
        if s.is_dir() and not s.is_symlink() and d.is_dir() and not d.is_symlink():
            _move_into(s, d)
            s.rmdir()
        elif os.path.lexists(d):
            if s.is_symlink() or d.is_symlink() or s.read_bytes() != d.read_bytes():
                raise ValueError(f"usrmerge: {s} and {d} differ")
            s.unlink()
        else:
            os.rename(s, d)


def set_alternatives(root: Path) -> None:
    for link, target in ALTERNATIVES.items():
        path = root / link.lstrip("/")
        if (path.parent / target).exists() and not os.path.lexists(path):
            path.symlink_to(target)


def _run_guest(root: Path, *argv: str) -> bool:
    """Run one of the root's i386 programs on this machine (an x86 Linux runs i386 binaries)."""
    loader = root / "usr/lib/ld-linux.so.2"
    libs = f"{root}/usr/lib/i386-linux-gnu"
    env = {**os.environ, "PYTHONHOME": f"{root}/usr", "LC_ALL": "C"}
    try:
        done = subprocess.run(
            [str(loader), "--library-path", libs, *argv], env=env, capture_output=True, text=True, check=False
        )
    except OSError as exc:
        print(f"debian_image: cannot run the guest's programs here ({exc}); skipped", file=sys.stderr)
        return False
    if done.returncode != 0:
        print(f"debian_image: {' '.join(argv[:3])}… failed: {done.stderr.strip()[-500:]}", file=sys.stderr)
    return done.returncode == 0


def compile_python(root: Path) -> bool:
    """The .pyc files python3's postinst (py3compile) would write: compiled by the guest's own
    python3.11, named for their guest paths, stamped with the sources' times (kept in fs.json)."""
    pythons = sorted((root / "usr/lib").glob("python3.*"))
    if not pythons:
        return False
    python = root / "usr/bin" / pythons[-1].name
    dirs = [str(d) for d in (*pythons, root / "usr/lib/python3/dist-packages") if d.is_dir()]
    compileall = ("-m", "compileall", "-q", "-j", "2", "-s", str(root), "-p", "/")
    return _run_guest(root, str(python), *compileall, *dirs)


def make_ld_cache(root: Path) -> bool:
    """/etc/ld.so.cache, as libc-bin's postinst makes it: the guest's (static) ldconfig, run
    chrooted into the staging root, which needs root; without it the loader searches its
    default directories."""
    ldconfig = root / "usr/sbin/ldconfig"
    if not ldconfig.is_file() or os.geteuid() != 0:
        return False
    done = subprocess.run([str(ldconfig), "-r", str(root)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"debian_image: ldconfig failed: {done.stderr.strip()[-300:]}", file=sys.stderr)
    return done.returncode == 0


def make_man_index(root: Path) -> bool:
    """man-db's index (/var/cache/man: whatis, apropos, man -k), as its postinst makes it: the
    guest's mandb chrooted into the staging root (needs root, and the user "man")."""
    mandb = root / "usr/bin/mandb"
    if not mandb.is_file() or os.geteuid() != 0:
        return False
    done = subprocess.run(
        ["chroot", str(root), "/usr/bin/mandb", "-c", "-q"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        print(f"debian_image: mandb failed: {done.stderr.strip()[-300:]}", file=sys.stderr)
    return done.returncode == 0


def stage(root: str | os.PathLike) -> None:
    """Finish an unpacked staging root in place (idempotent)."""
    root = Path(root)
    if not (root / "usr/bin").is_dir():
        raise FileNotFoundError(f"{root}: not an unpacked Debian root (no usr/bin)")
    merge_usr(root)
    set_alternatives(root)
    (root / "etc/passwd").write_text(PASSWD)  # for the tools run below; build() writes them too
    (root / "etc/group").write_text(GROUP)
    # Debian's sitecustomize looks for Ubuntu's apport (absent) through all of sys.path at every
    # start of python3: a few hundred ms in the guest.
    for custom in root.glob("etc/python3.*/sitecustomize.py"):
        custom.write_text("# pyninep: Debian's looks for apport, which is not here\n")
    make_ld_cache(root)
    make_man_index(root)
    compile_python(root)


# ----------------------------------------------------------------- build: the authoring script


def build(tree: Tree, staging: str | None = None) -> None:
    """The root: ``staging`` is a directory made by :func:`stage` (owners become root)."""
    if staging is None:
        raise ValueError("build needs staging=DIR (a staged Debian root: ./build.sh debian)")
    src = Path(staging)
    if not (src / "usr/bin/bash").is_file() or not (src / "bin").is_symlink():
        raise FileNotFoundError(f"{src}: not a staged Debian root (run ./build.sh debian)")
    tree.root.copy_from(src)
    (tree / ".stamp").unlink(missing_ok=True)  # build.sh's
    for link in BUSYBOX_LINKS:
        (tree / link).symlink_to("../bin/busybox")
    dirs = (("/root", 0o700), ("/tmp", 0o1777), ("/var/tmp", 0o1777), ("/run", 0o755), ("/mnt", 0o755))
    for path, mode in dirs:
        (tree / path).mkdir(mode)
    if (tree / "var/cache/man").is_dir():  # man-db's, as Debian has it
        for entry in tree.walk("/var/cache/man"):
            entry.chown(6, 12)
    base_files = src / "usr/share/base-files"
    etc = tree / "etc"
    (etc / "profile").copy_from(base_files / "profile")
    (etc / "profile.d").mkdir(0o755)
    (etc / "profile.d/pyninep.sh").write_text(PROFILE_D)
    (etc / "inputrc").write_text(INPUTRC)
    (etc / "passwd").write_text(PASSWD)
    (etc / "group").write_text(GROUP)
    (etc / "shadow").write_text(SHADOW, mode=0o640, gid=42)
    (etc / "hostname").write_text("pyninep\n")
    (etc / "hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tpyninep\n")
    (etc / "motd").write_text(MOTD)
    (etc / "fstab").write_text("proc /proc proc defaults 0 0\nsysfs /sys sysfs defaults 0 0\n")
    (etc / "mtab").symlink_to("../proc/self/mounts")
    (etc / "inittab").write_text(INITTAB)
    (etc / "init.d").mkdir(0o755)
    (etc / "init.d/rcS").write_text(RCS, mode=0o755)
    bashrc = (base_files / "dot.bashrc").read_text() + BASHRC_EXTRA
    (tree / "root/.profile").copy_from(base_files / "dot.profile")
    (tree / "root/.bashrc").write_text(bashrc)
    home = (tree / "home/user").mkdir(0o755, uid=1000, gid=1000)
    for name in (".profile", ".bashrc", ".bash_logout"):
        skel = src / "etc/skel" / name
        if skel.is_file():
            text = skel.read_text() + (BASHRC_EXTRA if name == ".bashrc" else "")
            (home / name).write_text(text, uid=1000, gid=1000)


def export(staging: str | os.PathLike, out: str | os.PathLike) -> dict[str, int]:
    tree = Tree()
    build(tree, staging=os.fspath(staging))
    return export_fs2json(tree.fs, out)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "stage":
        stage(args[1])
        return 0
    if len(args) == 3 and args[0] == "export":
        counts = export(args[1], args[2])
        n = counts
        print(f"debian_image: {n['entries']} entries, {n['files']} files, {n['content_bytes']} bytes")
        return 0
    print("usage: python -m pyninep_browser.debian_image stage STAGING | export STAGING OUT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

"""The guest's initramfs that mounts our server, written by Python rather than shell pipelines.

:class:`CpioWriter` writes the "newc" format the kernel unpacks; :func:`build_initramfs` packs
busybox, the 9p/virtio modules and a small ``/init``. The root tree the guest boots into is an
authoring script (:mod:`pyninep_browser.default_image`); :func:`busybox_applets` serves it.
Nothing here touches 9P.
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

# Loaded in this order by /init: in Debian's 686 kernel 9p and virtio are modules.
MODULES = (
    "virtio",
    "virtio_ring",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "9pnet",
    "9pnet_virtio",
    "netfs",
    "fscache",
    "9p",
)

# The mount the guest makes on our kernel. msize: Linux's virtio transport caps it at 512000
# whatever is asked. cache=loose: names, attributes and file pages stay in the guest, files are
# written through, and live files are never cached (pyninep_browser/kernel_patches/9p-loose.patch);
# the page has the guest drop its caches when it changes files itself. See docs/guest.md ("Mount
# options and why") for the measurements behind the choice.
_MOUNT = "trans=virtio,version=9p2000.L,msize=524288,cache={cache},access=client"
MOUNT_OPTIONS = _MOUNT.format(cache="loose")
# The cached mount's read-ahead, KiB (as Linux sets it: about msize). The build's boot of the
# machine it saves asks for 0 (web/machine.js): every page an executable faults in brings this
# much around it, and what is mapped ships in the saved machine (2.6 MB more for Debian's); the
# page's wake sets it back.
READAHEAD_KB = 512
# On Debian's packaged kernel (PYNINEP_KERNEL=debian), whose loose mode lacks that patch.
MOUNT_OPTIONS_PACKAGED = _MOUNT.format(cache="none")

INIT_SCRIPT = """#!/bin/busybox sh
# pyninep initramfs: load the 9p modules, mount the root that the page serves, switch to it.
# Kernel options: pyninep.root=none mounts host9p on /mnt and stays here (benchmarks);
# pyninep.mount=OPTS replaces the mount options; pyninep.readahead=KIB a cached mount's read-ahead.
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /newroot /mnt
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in {modules}; do
  [ -e /lib/modules/$m.ko ] && {{ insmod /lib/modules/$m.ko || echo "init: cannot load $m"; }}
done
root=9p
opts="{options}"
ra={readahead}
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    pyninep.root=*) root="${{arg#pyninep.root=}}";;
    pyninep.mount=*) opts="${{arg#pyninep.mount=}}";;
    pyninep.readahead=*) ra="${{arg#pyninep.readahead=}}";;
  esac
done
# A cached mount's read-ahead (cache=none reads none ahead).
readahead() {{ case "$opts" in *cache=loose*) for b in /sys/class/bdi/9p-*/read_ahead_kb; do
  [ -e "$b" ] && echo "$ra" > "$b"; done;; esac; }}
if [ "$root" = none ]; then
  mount -t 9p -o "$opts" host9p /mnt || echo "init: cannot mount host9p"
  readahead
  mount -t tmpfs tmp /tmp 2>/dev/null || {{ mkdir -p /tmp && mount -t tmpfs tmp /tmp; }}
  exec setsid cttyhack sh -l
fi
if ! mount -t 9p -o "$opts" host9p /newroot; then
  echo "init: cannot mount the root filesystem (host9p); here is a shell"
  exec setsid cttyhack sh -l
fi
readahead
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /sbin/init
"""


class CpioWriter:
    """Writes a cpio archive in the "newc" format (what the kernel's initramfs unpacker reads)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._ino = 1
        self._names: set[str] = set()

    def _entry(
        self,
        name: str,
        mode: int,
        data: bytes = b"",
        *,
        nlink: int = 1,
        rdev: tuple[int, int] = (0, 0),
        mtime: int = 0,
    ) -> None:
        if name in self._names:
            raise ValueError(f"duplicate cpio entry: {name}")
        self._names.add(name)
        raw = name.encode() + b"\0"
        fields = (self._ino, mode, 0, 0, nlink, mtime, len(data), 0, 0, rdev[0], rdev[1], len(raw), 0)
        header = b"070701" + b"".join(b"%08X" % v for v in fields)
        self._ino += 1
        self._parts += [header, raw, b"\0" * (-(len(header) + len(raw)) % 4), data, b"\0" * (-len(data) % 4)]

    def directory(self, name: str, mode: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | mode, nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def device(self, name: str, kind: int, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, kind | mode, rdev=(major, minor))

    def getvalue(self) -> bytes:
        parts = [*self._parts]
        trailer = CpioWriter()
        trailer._entry("TRAILER!!!", 0)
        out = b"".join(parts + trailer._parts)
        return out + b"\0" * (-len(out) % 512)


def find_modules(kernel_root: Path) -> dict[str, Path]:
    """The .ko files of :data:`MODULES` under an extracted kernel package (``lib/modules/…``), in
    an order insmod can load them: each after the modules its ``depends=`` record names (a stable
    update may move a symbol between modules: 6.1.192 moved virtio's own needs into virtio_ring)."""
    found: dict[str, Path] = {}
    for path in sorted((kernel_root / "lib" / "modules").rglob("*.ko*")):
        name = path.name.split(".ko")[0]
        if name in MODULES:
            found.setdefault(name, path)
    deps = {
        name: [d for d in module_depends(_module_bytes(path)) if d in found] for name, path in found.items()
    }
    order: list[str] = []

    def visit(name: str, seen: tuple[str, ...] = ()) -> None:
        if name in order or name in seen:  # a cycle cannot load anyway: keep the listed order
            return
        for dep in deps[name]:
            visit(dep, (*seen, name))
        order.append(name)

    for name in MODULES:
        if name in found:
            visit(name)
    return {name: found[name] for name in order}


def module_depends(data: bytes) -> list[str]:
    """The modules a kernel module needs, from its ``.modinfo`` strings (``depends=a,b``): the
    record modprobe and depmod read, found without parsing the ELF file around it."""
    at = data.find(b"\0depends=")
    if at < 0:
        return []
    value = data[at + 9 : data.index(b"\0", at + 1)].decode("ascii", "replace")
    return [d.replace("-", "_") for d in value.split(",") if d]


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".xz":  # newer Debian kernels compress modules; busybox insmod cannot
        import lzma

        data = lzma.decompress(data)
    return data


def build_initramfs(kernel_root: Path | None, busybox: Path, mount_options: str | None = None) -> bytes:
    """The initramfs: busybox, the 9p/virtio modules found in ``kernel_root``, and /init.

    ``kernel_root=None`` is for our kernel, with 9p and virtio built in (:mod:`pyninep_browser.kernel`):
    no modules are packed, /init loads none, and the root is mounted with :data:`MOUNT_OPTIONS`
    (:data:`MOUNT_OPTIONS_PACKAGED` for a packaged kernel's modules), unless ``mount_options``."""
    modules: dict[str, Path] = {}
    if kernel_root is not None:
        modules = find_modules(kernel_root)
        missing = [m for m in MODULES if m not in modules]
        if "9p" in missing or "9pnet_virtio" in missing:
            raise FileNotFoundError(f"kernel modules not found under {kernel_root}: {', '.join(missing)}")
    if mount_options is None:
        mount_options = MOUNT_OPTIONS if kernel_root is None else MOUNT_OPTIONS_PACKAGED
    cpio = CpioWriter()
    for d in ("bin", "sbin", "lib", "lib/modules", "proc", "sys", "dev", "newroot", "mnt", "tmp"):
        cpio.directory(d)
    cpio.device("dev/console", stat.S_IFCHR, 5, 1)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    cpio.symlink("bin/sh", "busybox")
    init = INIT_SCRIPT.format(modules=" ".join(modules), options=mount_options, readahead=READAHEAD_KB)
    cpio.file("init", init.encode(), 0o755)
    for name, path in modules.items():
        cpio.file(f"lib/modules/{name}.ko", _module_bytes(path))
    return cpio.getvalue()


def busybox_applets(busybox: Path) -> list[str]:
    """Applet paths (``usr/bin/awk``…) as the binary itself lists them.

    The guest's busybox is a static i386 binary; x86 Linux hosts run it directly.
    """
    try:
        out = subprocess.run(
            [str(busybox), "--list-full"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(
            f"cannot run {busybox} --list-full to list its applets ({exc}); build on an x86 Linux host"
        ) from None
    return [line.strip() for line in out.splitlines() if line.strip()]

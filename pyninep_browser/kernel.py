"""The guest's kernel: Debian's 6.1 source (package ``linux-source-6.1``) configured for v86.

Debian's packaged 686 kernel is built for every PC: 9.4 MB of code, most of it drivers v86 does
not emulate, and 9p and virtio as modules. Its memory is most of the saved machine a first visit
downloads (about 7 of its 10.6 MB gzipped). This configuration starts from the kernel's
``tinyconfig`` and adds what the guest uses: one CPU, no highmem (the guest has 256 MiB), the
8250 serial ports (the console and the page's control port), virtio over PCI, 9P built in (so the
initramfs loads no modules), tmpfs, devtmpfs and ptys, Unix and IPv4 sockets for programs that
open them, and the system calls glibc and Python's standard library expect on i386. It builds in
about 6 minutes on two cores (``build.sh`` caches it by the source package's hash and this file).

One patch changes the kernel's 9p client (``kernel_patches/9p-loose.patch``): with
``cache=loose`` a file is written through to the server at once (Linux 6.1 wrote the page cache
back one 4 KiB page per message), a file whose qid.version is 0 (a live file) is never cached, and
an open whose data version is not the cached one (another client wrote the file) fetches it again,
and a create or a remove costs fewer messages (a created file's inode is made from the create
instead of walked to and fetched; a changed directory keeps its times locally).
The guest mounts its root with ``cache=loose`` (docs/guest.md says why).

``python -m pyninep_browser.kernel fragment`` prints the options (for the kernel's
``scripts/kconfig/merge_config.sh``); ``… check .config`` fails, naming them, if any option did
not take (Kconfig drops an option whose dependencies are unmet without an error); ``… patches``
prints the patches' paths, applied in that order with ``patch -p1``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Each group: why the guest needs it. "n" turns off what tinyconfig or a default would bring in.
OPTIONS: dict[str, str] = {
    # The machine v86 emulates: one i686 CPU, 256 MiB, PIC/APIC/HPET timers, no ACPI tables used.
    "64BIT": "n",
    "M686": "y",
    "SMP": "n",
    "NOHIGHMEM": "y",
    "X86_PAE": "n",
    "X86_TSC": "y",
    "X86_UP_APIC": "y",
    "X86_UP_IOAPIC": "y",
    "HPET_TIMER": "y",
    "ACPI": "n",
    # Fewer timer interrupts: each one is emulated work, and an idle guest takes none.
    "HZ_100": "y",
    "NO_HZ_IDLE": "y",
    "HIGH_RES_TIMERS": "y",
    "CC_OPTIMIZE_FOR_PERFORMANCE": "y",
    # tinyconfig's SLOB allocator made fork and exec 1.6x slower in the guest: SLUB, as Debian's.
    "SLUB": "y",
    "SLOB": "n",
    "SLAB_MERGE_DEFAULT": "y",
    "JUMP_LABEL": "y",
    # Built for speed in an emulator, not for hostile neighbours: the guest is the only tenant.
    "PAGE_TABLE_ISOLATION": "n",
    "RETPOLINE": "n",
    "CPU_MITIGATIONS": "n",
    "STACKPROTECTOR": "n",
    "RANDOMIZE_BASE": "n",
    "RELOCATABLE": "n",
    # What userland (glibc, bash, coreutils, CPython) calls.
    "PRINTK": "y",
    "BUG": "y",
    "BASE_FULL": "y",
    "MULTIUSER": "y",
    "SYSVIPC": "y",
    "POSIX_MQUEUE": "y",
    "FHANDLE": "y",
    "FUTEX": "y",
    "COMPAT_32BIT_TIME": "y",  # glibc on i386 still makes the 32-bit-time futex and clock calls
    "EPOLL": "y",
    "SIGNALFD": "y",
    "TIMERFD": "y",
    "EVENTFD": "y",
    "SHMEM": "y",
    "MEMFD_CREATE": "y",
    "AIO": "y",
    "ADVISE_SYSCALLS": "y",
    "MEMBARRIER": "y",
    "RSEQ": "y",
    "POSIX_TIMERS": "y",
    "FILE_LOCKING": "y",
    "INOTIFY_USER": "y",
    "DNOTIFY": "y",
    "SYSFS_SYSCALL": "y",
    "SGETMASK_SYSCALL": "y",
    "MODIFY_LDT_SYSCALL": "y",
    "KCMP": "y",
    "CROSS_MEMORY_ATTACH": "y",
    "PROC_CHILDREN": "y",
    "SECCOMP": "y",
    "BINFMT_ELF": "y",
    "BINFMT_SCRIPT": "y",
    # Boot: the initramfs (pyninep_browser.initramfs) mounts host9p and switches to it.
    "BLK_DEV_INITRD": "y",
    "RD_GZIP": "y",
    "KERNEL_GZIP": "y",
    "MODULES": "n",
    "BLOCK": "n",
    # Devices: the serial ports (ttyS0 the console, ttyS1 the page's control loop), virtio-9p.
    "PCI": "y",
    "PCI_GOANY": "y",
    "TTY": "y",
    "UNIX98_PTYS": "y",
    "LEGACY_PTYS": "n",
    "VT": "n",
    "INPUT": "n",
    "SERIO": "n",
    "SERIAL_8250": "y",
    "SERIAL_8250_CONSOLE": "y",
    "SERIAL_8250_NR_UARTS": "4",
    "SERIAL_8250_RUNTIME_UARTS": "4",
    "RTC_CLASS": "y",
    "RTC_DRV_CMOS": "y",
    "VIRTIO_MENU": "y",
    "VIRTIO_PCI": "y",
    "VIRTIO_PCI_LEGACY": "y",
    # Filesystems: host9p is the root; tmpfs for /tmp, /dev/shm and the tests' comparisons.
    "NET_9P": "y",
    "NET_9P_VIRTIO": "y",
    "NETWORK_FILESYSTEMS": "y",
    "9P_FS": "y",
    "9P_FS_POSIX_ACL": "y",
    "9P_FS_SECURITY": "y",
    "PROC_FS": "y",
    "PROC_SYSCTL": "y",
    "SYSFS": "y",
    "DEVTMPFS": "y",
    "TMPFS": "y",
    "TMPFS_POSIX_ACL": "y",
    "TMPFS_XATTR": "y",
    # Sockets for programs that open them (no network device: the guest has none).
    "NET": "y",
    "UNIX": "y",
    "INET": "y",
    "IPV6": "n",
    "PACKET": "n",
    "NETDEVICES": "n",
    # Left out: nothing in the guest uses them.
    "SWAP": "n",
    "CGROUPS": "n",
    "NAMESPACES": "n",
    "SECURITY": "n",
    "AUDIT": "n",
    "COREDUMP": "n",
    "USELIB": "n",
    "KALLSYMS": "n",
    "CRYPTO": "n",
    "IO_URING": "n",
    "PRINTK_TIME": "n",
}


PATCHES = sorted((Path(__file__).resolve().parent / "kernel_patches").glob("*.patch"))


def fragment() -> str:
    """The options as a Kconfig fragment."""
    lines = ["# pyninep-browser's v86 guest kernel (pyninep_browser/kernel.py)"]
    for name, value in OPTIONS.items():
        lines.append(f"# CONFIG_{name} is not set" if value == "n" else f"CONFIG_{name}={value}")
    return "\n".join(lines) + "\n"


def unmet(config_text: str) -> list[str]:
    """The options a resolved ``.config`` does not hold as asked (empty when all took)."""
    have: dict[str, str] = {}
    for line in config_text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            name, _, value = line[7:].partition("=")
            have[name] = value.strip('"')
    wrong = []
    for name, value in OPTIONS.items():
        got = have.get(name, "n")
        if got != value and not (value == "n" and got == ""):
            wrong.append(f"CONFIG_{name}={got} (asked {value})")
    return wrong


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["fragment"]:
        sys.stdout.write(fragment())
        return 0
    if args == ["patches"]:
        sys.stdout.write("".join(f"{p}\n" for p in PATCHES))
        return 0
    if len(args) == 2 and args[0] == "check":
        try:
            wrong = unmet(Path(args[1]).read_text())
        except OSError as exc:
            print(f"pyninep: {exc}", file=sys.stderr)
            return 2
        if wrong:
            print(f"pyninep: the kernel's configuration did not take: {', '.join(wrong)}", file=sys.stderr)
            return 1
        return 0
    print("usage: python -m pyninep_browser.kernel fragment | check CONFIG | patches", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

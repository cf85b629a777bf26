"""The initramfs loads the 9p modules in an order the kernel accepts, whatever the kernel package's
own layout: Debian's 6.1.192 moved symbols virtio.ko needs into virtio_ring.ko, and the fixed order
of earlier builds then left the guest without its root."""

from __future__ import annotations

import lzma
from pathlib import Path

from pyninep_browser.initramfs import MODULES, find_modules, module_depends


def ko(depends: str) -> bytes:
    """Enough of a module for its .modinfo strings: what modinfo and depmod read."""
    return b"\x7fELF" + b"\0" * 60 + b"license=GPL\0depends=" + depends.encode() + b"\0retpoline=Y\0name=x\0"


def test_depends_are_read_from_modinfo():
    assert module_depends(ko("virtio,9pnet,virtio_ring")) == ["virtio", "9pnet", "virtio_ring"]
    assert module_depends(ko("")) == []
    assert module_depends(b"no modinfo at all") == []


def test_modules_load_after_what_they_need(tmp_path: Path):
    mods = tmp_path / "lib/modules/6.1.0-99-686/kernel"
    mods.mkdir(parents=True)
    needs = {"virtio": "virtio_ring", "virtio_pci": "virtio_ring,virtio_pci_modern_dev,virtio",
             "9pnet_virtio": "virtio,9pnet,virtio_ring", "fscache": "netfs", "9p": "9pnet,fscache,netfs"}
    for name in MODULES:
        data = ko(needs.get(name, ""))
        if name == "9p":  # compressed modules are read too
            (mods / f"{name}.ko.xz").write_bytes(lzma.compress(data))
        else:
            (mods / f"{name}.ko").write_bytes(data)
    order = list(find_modules(tmp_path))
    assert sorted(order) == sorted(MODULES)
    for name, wanted in needs.items():
        for dep in wanted.split(","):
            assert order.index(dep) < order.index(name), (dep, name, order)


def test_builtin_kernel_gets_no_modules(tmp_path: Path):
    """build.sh's own kernel has 9p and virtio built in: the initramfs packs and loads none (a
    Debian module offered to it would be refused, and say so on the console at every boot)."""
    from pyninep_browser.initramfs import build_initramfs

    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"\x7fELF not really")
    data = build_initramfs(None, busybox)
    assert b"lib/modules/" in data  # the directory is there, empty
    assert b".ko\0" not in data
    assert b"for m in ; do" in data
    # Our kernel's 9p writes cached files through and never caches live files: loose is safe.
    assert b"cache=loose" in data


def test_the_kernel_patches_apply_in_order_and_the_packaged_kernel_mounts_uncached(tmp_path: Path):
    """build.sh applies kernel.PATCHES with patch -p1; Debian's packaged kernel has no such patch,
    so a guest on it mounts with cache=none (its loose mode would cache live files)."""
    from pyninep_browser import initramfs, kernel

    assert [p.name for p in kernel.PATCHES] == ["9p-loose.patch"]
    text = kernel.PATCHES[0].read_text()
    assert "+++ b/fs/9p/vfs_file.c" in text and "+++ b/fs/9p/vfs_inode_dotl.c" in text
    assert "cache=none" in initramfs.MOUNT_OPTIONS_PACKAGED
    assert "cache=loose" in initramfs.MOUNT_OPTIONS


def test_kernel_options_are_checked_after_configuring():
    """Kconfig silently drops an option whose dependencies are unmet: the build checks that each
    option of pyninep_browser/kernel.py took, and names those that did not."""
    from pyninep_browser import kernel

    frag = kernel.fragment()
    assert "CONFIG_9P_FS=y" in frag and "# CONFIG_SMP is not set" in frag
    resolved = frag.replace("# CONFIG_SMP is not set", "CONFIG_SMP=y").replace("CONFIG_9P_FS=y\n", "")
    wrong = kernel.unmet(resolved)
    assert wrong == ["CONFIG_SMP=y (asked n)", "CONFIG_9P_FS=n (asked y)"]
    assert kernel.unmet(frag) == []

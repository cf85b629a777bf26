"""The old name of :mod:`pyninep_browser.initramfs` (the cpio initramfs writer), kept so imports of
``pyninep_browser.image`` still work. New code imports :mod:`pyninep_browser.initramfs`; image files
are :mod:`pyninep_browser.imagefile`."""

from .initramfs import (
    INIT_SCRIPT,
    MODULES,
    MOUNT_OPTIONS,
    CpioWriter,
    build_initramfs,
    busybox_applets,
    find_modules,
)

__all__ = [
    "INIT_SCRIPT",
    "MODULES",
    "MOUNT_OPTIONS",
    "CpioWriter",
    "build_initramfs",
    "busybox_applets",
    "find_modules",
]

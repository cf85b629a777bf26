"""Device numbers (``rdev`` of character and block devices) as the guest's kernel encodes them.

One encoding, Linux's ``new_encode_dev``/``new_decode_dev``, shared by whatever makes, lists or
exports device nodes (authoring's ``mknod``, tar, listings). It imports nothing from this package,
so any module may use it without creating an import circle.
"""

from __future__ import annotations


def makedev(major: int, minor: int) -> int:
    """A device number as the guest's kernel decodes it (Linux's new_encode_dev)."""
    return (minor & 0xFF) | ((major & 0xFFF) << 8) | ((minor & ~0xFF) << 12)


def major(rdev: int) -> int:
    return (rdev >> 8) & 0xFFF


def minor(rdev: int) -> int:
    return (rdev & 0xFF) | ((rdev >> 12) & 0xFFF00)


__all__ = ["major", "makedev", "minor"]

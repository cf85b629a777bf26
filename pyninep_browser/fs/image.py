"""Filesystem images: a filesystem to boot from, saved and loaded, in a checksummed container.

An image file is a ``filesystem`` state (:mod:`.stateformat`) in a container (little-endian):

    offset  size  field
    0       8     magic  b"PNPIMAGE"
    8       4     format (this version writes and reads 1)
    12      4     flags  (0; reserved)
    16      8     payload length in bytes
    24      32    SHA-256 of the payload
    56      …     payload: the filesystem state (:func:`save_filesystem`)

Loading checks all of it before trusting a byte and refuses, in one readable line
(:class:`ImageError`), what it cannot read: not an image, a newer format, a truncated or damaged
file. A bare filesystem state (what images were before this container) still loads. Live files
are recorded by name only (see :mod:`pyninep_browser.live`). Nothing here needs the 9P server.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

from .filesystem import Filesystem
from .stateformat import MAGIC as STATE_MAGIC
from .stateformat import Blob, build_filesystem, corrupt, filesystem_header, pack, unpack

MAGIC = b"PNPIMAGE"
FORMAT = 1
_HEADER = struct.Struct("<8sIIQ32s")
HEADER_SIZE = _HEADER.size


class ImageError(ValueError):
    """Bytes that are not an image this version can read; the message is one readable line."""


def save_filesystem(fs: Filesystem) -> bytes:
    """The whole filesystem as a state (the payload of an image, or a backup)."""
    blob = Blob()
    return pack("filesystem", filesystem_header(fs, blob), blob)


def load_filesystem(
    data: bytes | bytearray | memoryview, store: Any = None, **store_options: Any
) -> Filesystem:
    """A filesystem from a state. With ``store``: the filesystem kept there if the store holds
    one (the state is not even read), else the state's, which becomes the store's content at
    its first commit (started here; ``store_options``: ``cache_bytes``, ``writeback_ms``)."""
    if store is not None:
        if store.load_meta():
            return Filesystem(store=store, **store_options)
        fs = load_filesystem(data)
        fs.adopt_store(store, **store_options)
        fs.persist(True)
        return fs
    header, blob = unpack(data, "filesystem")
    try:
        fs = build_filesystem(header, blob)
    except (KeyError, TypeError, ValueError) as exc:
        raise corrupt(exc) from None
    # An image starts a fresh life: nothing holds its inodes open.
    fs.forget_holders()
    return fs


def dump_image(fs: Filesystem) -> bytes:
    """The filesystem as an image file's bytes."""
    payload = save_filesystem(fs)
    return _HEADER.pack(MAGIC, FORMAT, 0, len(payload), hashlib.sha256(payload).digest()) + payload


def image_payload(data: bytes | bytearray | memoryview) -> memoryview:
    """The checked payload of an image (a bare state is its own payload)."""
    buf = memoryview(data).cast("B")
    if len(buf) >= 8 and bytes(buf[:8]) == STATE_MAGIC:
        return buf
    if len(buf) < HEADER_SIZE or bytes(buf[:8]) != MAGIC:
        raise ImageError("not a pyninep image (no PNPIMAGE header)")
    _, fmt, flags, length, digest = _HEADER.unpack_from(buf, 0)
    if fmt > FORMAT:
        raise ImageError(
            f"image format {fmt} is newer than this pyninep-browser reads (format {FORMAT}):"
            " upgrade pyninep-browser"
        )
    if fmt < 1 or flags != 0:
        raise ImageError(f"image format {fmt} with flags {flags:#x} is not one this version reads")
    payload = buf[HEADER_SIZE:]
    if len(payload) != length:
        raise ImageError(f"image is truncated or padded: {len(payload)} payload bytes, header says {length}")
    if hashlib.sha256(payload).digest() != digest:
        raise ImageError("image is corrupt: its SHA-256 checksum does not match")
    return payload


def load_image(data: bytes | bytearray | memoryview, **options: Any) -> Filesystem:
    """The filesystem in an image (live files are ordinary until attached). ``options`` go to
    :func:`load_filesystem` (``store=``… to keep it in a store)."""
    payload = image_payload(data)
    try:
        return load_filesystem(payload, **options)
    except ValueError as exc:  # checksummed yet unreadable: written by a broken or other tool
        raise ImageError(f"image content is unreadable: {exc}") from None


__all__ = [
    "FORMAT",
    "HEADER_SIZE",
    "MAGIC",
    "ImageError",
    "dump_image",
    "image_payload",
    "load_image",
    "save_filesystem",
    "load_filesystem",
]

"""Base images: files whose bytes live elsewhere (v86's fs2json ``baseurl`` directory), fetched
on first read, kept in the store, and copied on write.

A base file's inode carries a :class:`BaseRef` (the content file's name and size, and, for our
own images, SHA-256s to check every byte) and ``base_end``: the bytes of the base it still shows.
A chunk the file has no data of reads from the base below ``base_end`` and as zeros past it; a
write that covers a base chunk only in part copies that chunk's base bytes in first; a truncate
only lowers ``base_end``. Nothing ever writes to the base.

Base bytes are fetched in pieces of ``PIECE`` bytes (an HTTP range each), or whole where the
content is compressed or the host ignores ranges. A fetched piece is checked (its length always;
its SHA-256 when the image names one, or the name's eight hex digits after a whole-file fetch)
and only then used: a wrong or missing content file fails that file's reads with EIO and never
fills it in part. Checked pieces are kept in memory (least recently used first, within
``base_cache_bytes``) and in the store, under the chunk key ``b:<name>:<piece>``, so each is
fetched at most once per store. Where the pieces come from is a :class:`BaseSource`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

from .chunks import ChunksNeeded
from .constants import CHUNK, _fail
from .inode import Inode

log = logging.getLogger("pyninep_browser")

PIECE = 1 << 20  # base bytes are fetched in ranges of at most this (a whole number of CHUNKs)
DEFAULT_BASE_CACHE_BYTES = 64 << 20
MAX_CONTENT_NAME = 200
_CONTENT_NAME = re.compile(rf"[A-Za-z0-9_-][A-Za-z0-9._-]{{0,{MAX_CONTENT_NAME - 1}}}")


@dataclass(frozen=True, slots=True)
class BaseRef:
    """Where a base file's bytes are: ``name`` in the base directory (v86's ``<8 hex>.bin`` or
    ``.bin.zst``), ``size`` bytes once decompressed; ``sha256`` and ``pieces`` (one SHA-256 per
    ``PIECE``) when the image names them."""

    name: str
    size: int
    sha256: bytes | None = None
    pieces: tuple[bytes, ...] | None = None

    @property
    def compressed(self) -> bool:
        return self.name.endswith(".zst")

    @property
    def piece_count(self) -> int:
        return (self.size + PIECE - 1) // PIECE

    def record(self) -> list:
        """The JSON form stores and states keep: ``[name, size, sha256 hex?, [piece hex…]?]``."""
        rec: list = [self.name, self.size]
        if self.sha256 is not None or self.pieces is not None:
            rec.append(self.sha256.hex() if self.sha256 is not None else None)
        if self.pieces is not None:
            rec.append([p.hex() for p in self.pieces])
        return rec

    @classmethod
    def from_record(cls, rec: Any) -> BaseRef:
        if not isinstance(rec, list) or len(rec) < 2:
            raise ValueError("bad base reference")
        name, size = rec[0], rec[1]
        if type(size) is not int or size < 0 or not check_content_name(name):
            raise ValueError("bad base reference")
        sha = bytes.fromhex(rec[2]) if len(rec) > 2 and rec[2] is not None else None
        pieces = tuple(bytes.fromhex(p) for p in rec[3]) if len(rec) > 3 and rec[3] is not None else None
        ref = cls(name, size, sha, pieces)
        if pieces is not None and len(pieces) != ref.piece_count:
            raise ValueError("bad base reference: piece count")
        return ref


def check_content_name(name: Any) -> TypeGuard[str]:
    """A content file name that stays inside the base directory (no path, no URL tricks)."""
    return isinstance(name, str) and _CONTENT_NAME.fullmatch(name) is not None


class BaseSource(Protocol):
    """Fetches content files of a base directory (a local directory, an HTTP base URL).

    ``fetch(name, start, end, done)``: bytes ``start``..``end`` of content file ``name`` (``end``
    None: the whole file), then ``done(data, whole, error)``: ``whole`` is True when ``data`` is
    the entire file (a host that ignores ranges), ``error`` a readable line (then data is None).
    ``asynchronous``: True when ``done`` is called later (a page's fetch), False when inline."""

    asynchronous: bool
    location: str

    def fetch(
        self, name: str, start: int, end: int | None, done: Callable[[Any, bool, str | None], None]
    ) -> None: ...


def zstd_decompress(data: bytes, limit: int) -> bytes:
    """Decompress zstd frames (v86's ``.bin.zst``), stopping past ``limit`` bytes of output (a
    file that decompresses to more than its size is wrong, and must not fill memory)."""
    try:
        from compression import zstd  # type: ignore[import-not-found,unused-ignore]  # 3.14, Pyodide
    except ImportError:
        try:
            import zstandard  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise _fail(errno.EIO, "zstd content needs Python 3.14 or `pip install zstandard`") from None
        reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
        return reader.read(limit + 1)
    out = bytearray()
    rest = data
    while rest and len(out) <= limit:
        d = zstd.ZstdDecompressor()
        out += d.decompress(rest, max_length=limit + 1 - len(out))
        if not d.eof:
            break  # truncated, or past the limit: the size check says which
        rest = d.unused_data
    return bytes(out)


def zstd_compress(data: bytes, level: int = 19, long_window: bool = False) -> bytes:
    """One zstd frame (with its content size); ``long_window``: long-distance matching over a
    128 MiB window, for whole memory images (a saved machine, Python's snapshot)."""
    try:
        from compression import zstd  # type: ignore[import-not-found,unused-ignore]

        if not long_window:
            return zstd.compress(data, level=level)
        p = zstd.CompressionParameter
        return zstd.compress(
            data, options={p.compression_level: level, p.window_log: 27, p.enable_long_distance_matching: 1}
        )
    except ImportError:
        try:
            import zstandard
        except ImportError:
            raise RuntimeError("zstd needs Python 3.14 or `pip install zstandard`") from None
        if not long_window:
            return zstandard.ZstdCompressor(level=level).compress(data)
        params = zstandard.ZstdCompressionParameters.from_level(level, window_log=27, enable_ldm=True)
        return zstandard.ZstdCompressor(compression_params=params).compress(data)


class BaseContent:
    """The base half of :class:`Filesystem`: which chunks come from the base, and the pieces."""

    store: Any
    inodes: dict[int, Inode]
    base_source: BaseSource | None
    base_cache_bytes: int

    def _init_base(self) -> None:
        self.base_source = None
        self.base_cache_bytes = DEFAULT_BASE_CACHE_BYTES
        self._base_refs: dict[str, BaseRef] = {}
        self._pieces: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._piece_bytes = 0
        self._fetching: dict[str, list[Callable[[int], None]]] = {}
        self._warm_unstored: set[tuple[str, int]] = set()
        # What the page's status line shows: files and bytes fetched, fetches under way, failures.
        self.base_stats: dict[str, Any] = {"fetched": 0, "bytes": 0, "pending": 0, "failed": 0, "error": ""}

    # -- which bytes come from the base

    @staticmethod
    def _base_len(inode: Inode, ci: int) -> int:
        """Bytes of chunk ``ci`` that come from the base (0: none, the chunk is ours or a hole)."""
        start = ci * CHUNK
        if inode.base is None or start >= inode.base_end or (inode.chunks and ci in inode.chunks):
            return 0
        return min(CHUNK, inode.base_end - start)

    def _ensure_base(self, inode: Inode, cis: Iterable[int]) -> None:
        """Make the base pieces chunks ``cis`` read from present in memory (or raise
        ChunksNeeded with their keys for an asynchronous source or store)."""
        ref = inode.base
        assert ref is not None
        missing: list[str] = []
        pieces = self._pieces
        for ci in cis:
            if not self._base_len(inode, ci):
                continue
            key = (ref.name, ci * CHUNK // PIECE)
            if key in pieces:
                pieces.move_to_end(key)
            else:
                k = f"b:{ref.name}:{key[1]}"
                if k not in missing:
                    missing.append(k)
        if not missing:
            return
        self._base_refs[ref.name] = ref
        source = self.base_source
        if (source is not None and source.asynchronous) or (
            self.store is not None and self.store.asynchronous
        ):
            raise ChunksNeeded(missing)
        result: list[int] = []
        self.load_base(missing, result.append)
        if not result or result[0]:
            raise _fail(result[0] if result else errno.EIO, f"reading base file {ref.name}")

    def _base_bytes(self, inode: Inode, pos: int, take: int) -> memoryview | bytes:
        """``take`` bytes at ``pos`` of a chunk that reads from the base (its piece is loaded)."""
        ref = inode.base
        assert ref is not None
        p, off = divmod(pos, PIECE)
        piece = self._pieces[(ref.name, p)]
        have = min(inode.base_end - pos, len(piece) - off)
        if have >= take:
            return memoryview(piece)[off : off + take]
        if have <= 0:
            return bytes(take)
        return bytes(piece[off : off + have]) + bytes(take - have)

    def _base_chunk(self, inode: Inode, ci: int) -> bytearray:
        """A copy of chunk ``ci``'s base bytes: the file's own chunk from now on (copy on write)."""
        n = self._base_len(inode, ci)
        return bytearray(self._base_bytes(inode, ci * CHUNK, n))

    def _drop_base_after(self, inode: Inode, size: int) -> None:
        """A truncate to ``size``: the base shows nothing at or past it."""
        if inode.base is not None and size < inode.base_end:
            inode.base_end = size
            if size == 0:
                inode.base = None

    def base_keys(self) -> set[str]:
        """The store keys of every piece the tree's base files can read (kept by the store check)."""
        keys: set[str] = set()
        for ref in {i.base for i in self.inodes.values() if i.base is not None}:
            keys.update(f"b:{ref.name}:{p}" for p in range(ref.piece_count))
        return keys

    # -- warm pieces: what a saved machine reads first, shipped with it (web/build-machine.mjs)

    def base_pieces_held(self) -> list[str]:
        """The store keys (``b:<name>:<piece>``) of the base pieces in memory, oldest use first."""
        return [f"b:{name}:{p}" for name, p in self._pieces]

    def export_base_pieces(self, keys: Iterable[str]) -> bytes:
        """Pieces in memory as one blob: ``[u32 n][n bytes of JSON [[name, piece, length]…]]``
        then their bytes in that order (keys not in memory are left out)."""
        index: list[list[Any]] = []
        data: list[bytes] = []
        for key in keys:
            _, name, p_s = key.split(":")
            piece = self._pieces.get((name, int(p_s)))
            if piece is not None:
                index.append([name, int(p_s), len(piece)])
                data.append(piece)
        head = json.dumps(index).encode()
        return len(head).to_bytes(4, "little") + head + b"".join(data)

    def warm_base_pieces(self, blob: bytes | memoryview) -> int:
        """Take pieces from :meth:`export_base_pieces` into memory, each checked against the
        tree's reference to it as a fetched piece is (pieces of no file here, or that do not
        check, are left out): they are stored by :meth:`store_warm_pieces`. Returns how many
        were taken; a blob that does not parse raises ValueError."""
        view = memoryview(blob)
        n = int.from_bytes(view[:4], "little")
        index = json.loads(bytes(view[4 : 4 + n]))
        if not isinstance(index, list):
            raise ValueError("warm pieces: bad index")
        refs = {i.base.name: i.base for i in self.inodes.values() if i.base is not None}
        at, taken = 4 + n, 0
        for entry in index:
            name, p, length = entry
            data = bytes(view[at : at + length])
            at += length
            ref = refs.get(name)
            if ref is None or type(p) is not int or not 0 <= p < ref.piece_count:
                continue
            if len(data) != self._piece_len(ref, p) or not self._piece_checks(ref, p, data):
                log.warning("warm piece %s:%s does not check: left out", name, p)
                continue
            self._base_refs[name] = ref
            self._keep_piece(name, p, data)
            self._warm_unstored.add((name, p))
            taken += 1
        if at != len(view):
            raise ValueError("warm pieces: lengths do not add up")
        return taken

    @classmethod
    def _piece_checks(cls, ref: BaseRef, p: int, data: bytes) -> bool:
        digest = hashlib.sha256(data).digest()
        if ref.pieces is not None:
            return digest == ref.pieces[p]
        # Else only a whole file's hash is named (a range of a v86 fs2json file is not checked).
        return ref.piece_count == 1 and cls._whole_mismatch(ref, digest) is None

    @staticmethod
    def _whole_mismatch(ref: BaseRef, digest: bytes) -> str | None:
        """Why a whole content file with this SHA-256 is not the one ``ref`` names (None: it is)."""
        if ref.sha256 is not None:
            return None if digest == ref.sha256 else "its SHA-256 does not match the image"
        return None if ref.name.startswith(digest.hex()[:8]) else "its SHA-256 does not match its name"

    def store_warm_pieces(self) -> None:
        """Keep the warm pieces still in memory in the store too (after its first commit)."""
        if self.store is None:
            self._warm_unstored.clear()
            return
        for name, p in sorted(self._warm_unstored):
            piece = self._pieces.get((name, p))
            if piece is not None:
                self._store_piece(f"b:{name}:{p}", piece)
        self._warm_unstored.clear()

    # -- loading pieces

    def load_base(self, keys: list[str], done: Callable[[int], None]) -> None:
        """Bring the pieces ``keys`` (``b:<name>:<piece>``) into memory: from memory, else the
        store, else the source; ``done(0)`` or ``done(errno)`` once all have answered."""
        if not keys:
            done(0)
            return
        state = [len(keys), 0]

        def one(err: int) -> None:
            if err and not state[1]:
                state[1] = err
            state[0] -= 1
            if state[0] == 0:
                done(state[1])

        for key in keys:
            try:
                self._load_piece(key, one)
            except Exception:
                log.exception("loading base piece %s failed", key)
                one(errno.EIO)

    def _load_piece(self, key: str, done: Callable[[int], None]) -> None:
        _, name, p_s = key.split(":")
        p = int(p_s)
        ref = self._base_refs.get(name)
        if ref is None or p >= ref.piece_count:
            done(errno.EIO)
            return
        if (name, p) in self._pieces:
            done(0)
            return
        if self.store is None:
            self._fetch_piece(ref, p, done)
            return

        def stored(value: bytes | None, err: int) -> None:
            if value is not None and not err and len(value) == self._piece_len(ref, p):
                self._keep_piece(name, p, bytes(value))
                done(0)
            else:
                self._fetch_piece(ref, p, done)

        self.store.get_chunk(key, stored)

    @staticmethod
    def _piece_len(ref: BaseRef, p: int) -> int:
        return min(PIECE, ref.size - p * PIECE)

    def _fetch_piece(self, ref: BaseRef, p: int, done: Callable[[int], None]) -> None:
        source = self.base_source
        if source is None:
            self._base_failed(ref, "no base location was given (baseurl)")
            done(errno.EIO)
            return
        whole = ref.compressed or ref.piece_count == 1
        job = ref.name if whole else f"{ref.name}:{p}"
        waiters = self._fetching.get(job)
        if waiters is not None:
            waiters.append(done)
            return
        self._fetching[job] = [done]
        self.base_stats["pending"] += 1

        def fetched(data: Any, got_whole: bool, error: str | None) -> None:
            self.base_stats["pending"] -= 1
            err = 0
            try:
                if error is not None or data is None:
                    raise ValueError(error or "no data")
                self._take_fetched(ref, p, bytes(data), whole or got_whole)
            except (ValueError, OSError) as exc:
                self._base_failed(ref, str(exc))
                err = errno.EIO
            except Exception:
                log.exception("base file %s could not be used", ref.name)
                err = errno.EIO
            for waiter in self._fetching.pop(job, []):
                waiter(err)

        if whole:
            source.fetch(ref.name, 0, None, fetched)
        else:
            source.fetch(ref.name, p * PIECE, p * PIECE + self._piece_len(ref, p), fetched)

    def _take_fetched(self, ref: BaseRef, p: int, data: bytes, whole: bool) -> None:
        """Check fetched bytes and keep them: the whole file (split into pieces), or piece ``p``."""
        if whole:
            if ref.compressed:
                data = zstd_decompress(data, ref.size)
            if len(data) != ref.size:
                raise ValueError(f"is {len(data)} bytes, the image says {ref.size}")
            mismatch = self._whole_mismatch(ref, hashlib.sha256(data).digest())
            if mismatch:
                raise ValueError(mismatch)
            self.base_stats["fetched"] += 1
            self.base_stats["bytes"] += len(data)
            for i in range(ref.piece_count):
                self._keep_piece(ref.name, i, data[i * PIECE : (i + 1) * PIECE], persist=True)
            return
        want = self._piece_len(ref, p)
        if len(data) != want:
            raise ValueError(f"range {p} is {len(data)} bytes, expected {want}")
        if ref.pieces is not None and hashlib.sha256(data).digest() != ref.pieces[p]:
            raise ValueError(f"range {p}'s SHA-256 does not match the image")
        if p == 0:
            self.base_stats["fetched"] += 1
        self.base_stats["bytes"] += len(data)
        self._keep_piece(ref.name, p, data, persist=True)

    def _base_failed(self, ref: BaseRef, why: str) -> None:
        line = f"base file {ref.name} could not be loaded: {why}"
        log.error("%s", line)
        self.base_stats["failed"] += 1
        self.base_stats["error"] = line

    def _keep_piece(self, name: str, p: int, data: bytes, persist: bool = False) -> None:
        key = (name, p)
        if key not in self._pieces:
            self._pieces[key] = data
            self._piece_bytes += len(data)
        self._pieces.move_to_end(key)
        while self._piece_bytes > self.base_cache_bytes and len(self._pieces) > 4:
            _, old = self._pieces.popitem(last=False)
            self._piece_bytes -= len(old)
        if persist and self.store is not None:
            self._store_piece(f"b:{name}:{p}", data)

    def _store_piece(self, key: str, data: bytes) -> None:
        from ..store.base import Batch  # the store interface (no store is imported by fs)

        def stored(err: int) -> None:
            if err:  # a full store: the piece stays in memory only and is fetched again later
                log.warning("base piece %s not kept in the store (errno %d)", key, err)

        try:
            self.store.commit(Batch(chunk_put={key: data}), False, stored)
        except Exception:
            log.exception("store commit of base piece %s raised", key)

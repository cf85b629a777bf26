"""Persistence: a filesystem kept in a store, its data loaded lazily and written back in batches.

The filesystem stays an in-memory structure; a store (``pyninep_browser.store``) keeps a copy that
survives the process. Metadata (inodes, directory entries) is loaded whole at open; data chunks
load on first use and are evicted again (clean ones, least recently used) past ``cache_bytes``.
Changes are tracked (``dirty``, ``dirty_chunks``, each directory's ``entries.changed``) and
:meth:`Persistence.persist` turns everything changed since the last commit into one
:class:`~pyninep_browser.store.Batch`, taken between two requests, so the store always holds a
consistent filesystem. Commits run one at a time, in order; a failed one leaves its changes dirty.

Record format (``FORMAT`` 1), the same in every store:

- meta ``super``: JSON ``{"format", "fsid", "next_ino", "root", "chunk", "used"}``
- meta ``i:<ino>``: JSON inode ``{m, u, g, n, r, s, G, v, t: [atime, mtime, ctime, btime]}`` plus
  ``c`` (regular files: chunk runs ``[first index, count, length of the last]``, all others in a
  run are full), ``l`` (symlink target, base64), ``x`` (xattrs, base64 values), ``d`` (directories:
  ``[next readdir sequence number, parent ino]``)
- meta ``e:<dir ino>:<seq>``: JSON ``[name, child ino]``; keyed by the entry's readdir sequence
  number, so keys are ASCII whatever the name and readdir cookies stay valid across a reopen
- chunk ``<ino>:<index>``: the file's bytes from ``index * CHUNK``, at most ``CHUNK`` of them

An inode's chunk map in memory holds either the chunk (a ``bytearray``) or, while it is not
loaded, its length (an ``int``).
"""

from __future__ import annotations

import base64
import errno
import json
import logging
from collections import OrderedDict
from typing import Callable, Iterable

from .constants import CHUNK, S_IFMT, _fail
from .inode import DirEntries, Inode

log = logging.getLogger("pyninep_browser")

FORMAT = 1
DEFAULT_CACHE_BYTES = 64 << 20  # what a page can spare; a CPython host may pass more
DEFAULT_WRITEBACK_MS = 800  # plus one tick interval (the page ticks every 100 ms): under 1 s

_KIND = {0o040000: "directory", 0o100000: "file", 0o120000: "symlink"}


class ChunksNeeded(Exception):
    """A read or write needs data chunks an asynchronous store has not delivered yet.

    Raised before anything changed; the caller loads ``keys`` (:meth:`Persistence.load_chunks`)
    and runs the same operation again. Stores that answer inline never cause it.
    """

    def __init__(self, keys: list[str]) -> None:
        super().__init__(f"{len(keys)} chunk(s) not loaded")
        self.keys = keys


def _store_error(msg: str) -> Exception:
    from ..store.base import StoreError
    return StoreError(msg)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _int(v: object) -> int:
    if type(v) is not int:
        raise ValueError(f"not an integer: {v!r}")
    return v


def encode_inode(inode: Inode) -> bytes:
    rec: dict = {"m": inode.mode, "u": inode.uid, "g": inode.gid, "n": inode.nlink,
                 "s": inode.size, "G": inode.gen, "v": inode.version,
                 "t": [inode.atime, inode.mtime, inode.ctime, inode.btime]}
    if inode.rdev:
        rec["r"] = inode.rdev
    chunks = inode.chunks
    if chunks is not None:
        runs: list[list[int]] = []
        for ci in sorted(chunks):
            c = chunks[ci]
            n = c if type(c) is int else len(c)
            if runs and runs[-1][0] + runs[-1][1] == ci and runs[-1][2] == CHUNK:
                runs[-1][1] += 1
                runs[-1][2] = n
            else:
                runs.append([ci, 1, n])
        rec["c"] = runs
    if inode.target is not None:
        rec["l"] = _b64(inode.target)
    if inode.xattrs:
        rec["x"] = {k: _b64(v) for k, v in inode.xattrs.items()}
    if inode.entries is not None:
        parent = inode.parent.ino if inode.parent is not None else inode.ino
        rec["d"] = [inode.entries._next, parent]
    return json.dumps(rec, separators=(",", ":")).encode()


_decode = json.JSONDecoder().decode  # on str: skips json.loads' encoding sniffing (10,000s of records)


def decode_inode(ino: int, raw: bytes) -> tuple[Inode, int]:
    """An inode from its record, and the parent ino a directory record names (else 0)."""
    r = _decode(raw.decode())
    at, mt, ct, bt = r["t"]
    fields = (r["m"], r["u"], r["g"], r["n"], r.get("r", 0), r["s"], r["G"], r["v"], at, mt, ct, bt)
    for v in fields:
        if type(v) is not int:
            raise ValueError(f"not an integer: {v!r}")
    inode = Inode(ino, *fields[:3], at, mt, ct, bt, nlink=fields[3], rdev=fields[4],
                  size=fields[5], gen=fields[6], version=fields[7])
    parent = 0
    if "c" in r:
        chunks: dict = {}
        total = 0
        for first, count, last in r["c"]:
            first, count, last = _int(first), _int(count), _int(last)
            if count < 1 or not 0 < last <= CHUNK or first < 0:
                raise ValueError("bad chunk run")
            for i in range(first, first + count - 1):
                chunks[i] = CHUNK
            chunks[first + count - 1] = last
            total += (count - 1) * CHUNK + last
        inode.chunks = chunks
        inode.data_bytes = total
    if "l" in r:
        inode.target = base64.b64decode(r["l"])
    if "x" in r:
        inode.xattrs = {str(k): base64.b64decode(v) for k, v in r["x"].items()}
    if "d" in r:
        entries = DirEntries()
        entries._next = _int(r["d"][0])
        parent = _int(r["d"][1])
        inode.entries = entries
    return inode, parent


class Persistence:
    """The store half of :class:`Filesystem`: open, check, persist, chunk cache, write-behind."""

    inodes: dict[int, Inode]
    dirty: set[int]
    root: Inode

    def _init_persistence(self, store, cache_bytes: int, writeback_ms: int) -> None:
        self.store = store
        self.cache_bytes = cache_bytes
        self.writeback_ms = writeback_ms
        self.dirty_chunks: set[tuple[int, int]] = set()
        self.repairs: list[str] = []  # what the open-time check found and repaired
        self.generation = 0  # commits the store holds (kept in the superblock)
        self._lru: OrderedDict[tuple[int, int], None] = OrderedDict()  # clean loaded chunks
        self._extra_meta_delete: set[str] = set()
        self._extra_chunk_delete: set[str] = set()
        self._waiters: list[tuple[bool, Callable[[int], None] | None]] = []
        self._inflight = False
        self._inflight_chunks: set[tuple[int, int]] = set()
        self._undurable = False  # a non-durable commit happened since the last durable one
        self._dirty_since: int | None = None
        self._store_limit = float("inf")  # used_bytes past which the store would be full

    @property
    def commit_in_flight(self) -> bool:
        """A commit has been handed to the store and has not finished."""
        return self._inflight

    # ----------------------------------------------------------------- open and check

    def _open_store(self) -> None:
        meta = self.store.load_meta()
        if not meta:  # a new store: the empty filesystem made by __init__ becomes its content
            self.root.entries.changed = set()  # type: ignore[union-attr]
            self.dirty.add(self.root.ino)
            self.persist(True, None)
            self._refresh_room()
            return
        records = dict(meta)
        raw_super = records.pop("super", None)
        if raw_super is None:
            raise _store_error("the store holds something that is not a pyninep filesystem "
                               "(no superblock record)")
        try:
            sup = json.loads(raw_super)
            fmt = _int(sup["format"])
        except (ValueError, KeyError, TypeError):
            raise _store_error("the store's superblock is corrupt") from None
        if fmt > FORMAT:
            raise _store_error(f"the store was written in format {fmt}, newer than this version "
                               f"reads ({FORMAT}): open it with a newer pyninep_browser")
        if fmt < FORMAT:  # no older format exists yet; migrations would go here, by format
            raise _store_error(f"the store's format {fmt} is not readable by this version")
        if sup.get("chunk") != CHUNK:
            raise _store_error(f"the store uses {sup.get('chunk')}-byte chunks, this version "
                               f"{CHUNK}")
        self._load_records(sup, records)

    def _load_records(self, sup: dict, records: dict[str, bytes]) -> None:
        repairs = self.repairs
        inodes: dict[int, Inode] = {}
        parents: dict[int, int] = {}
        by_dir: dict[int, list[tuple[int, str]]] = {}
        for key, raw in records.items():
            kind, _, rest = key.partition(":")
            try:
                if kind == "i":
                    ino = int(rest)
                    inodes[ino], parents[ino] = decode_inode(ino, raw)
                    continue
                if kind == "e":
                    d, _, seq = rest.partition(":")
                    by_dir.setdefault(int(d), []).append((int(seq), key))
                    continue
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                repairs.append(f"removed unreadable record {key!r} ({exc})")
            else:
                repairs.append(f"removed unknown record {key!r}")
            self._extra_meta_delete.add(key)
        try:
            root = inodes.get(_int(sup["root"]))
            self.fsid = _int(sup["fsid"])
            next_ino = _int(sup["next_ino"])
            self.generation = _int(sup.get("gen", 0))
        except (KeyError, ValueError, TypeError):
            raise _store_error("the store's superblock is corrupt") from None
        if root is None or root.entries is None:
            raise _store_error("the store has no root directory")
        dirty = self.dirty
        dirty.clear()

        # Directory entries: each names an existing inode, in an existing directory.
        for d, lst in by_dir.items():
            directory = inodes.get(d)
            if directory is None or directory.entries is None:
                repairs.append(f"removed {len(lst)} entries of missing directory {d}")
                self._extra_meta_delete.update(k for _, k in lst)
                continue
            entries = directory.entries
            lst.sort()
            for seq, key in lst:
                try:
                    name, child_ino = _decode(records[key].decode())
                    name = str(name)
                    child = inodes.get(_int(child_ino))
                except (ValueError, TypeError):
                    child, name = None, "?"
                if child is None or name in entries.by_name or not name or "/" in name:
                    repairs.append(f"removed bad entry {name!r} in directory {d}")
                    self._extra_meta_delete.add(key)
                    continue
                entries.by_name[name] = (seq, child)
                entries._seqs.append(seq)
                entries._names.append(name)
            if entries._seqs and entries._next <= entries._seqs[-1]:
                entries._next = entries._seqs[-1] + 1
                dirty.add(d)

        # Reachability from the root; a directory has exactly one name.
        root.parent = root
        seen = {root.ino}
        stack = [root]
        links: dict[int, int] = {}
        while stack:
            d = stack.pop()
            entries = d.entries
            for name, (seq, child) in list(entries.by_name.items()):  # type: ignore[union-attr]
                if child.entries is not None:
                    if child.ino in seen:
                        repairs.append(f"removed a second name {name!r} of directory {child.ino}")
                        entries.remove(name)  # type: ignore[union-attr]
                        self._extra_meta_delete.add(f"e:{d.ino}:{seq}")
                        dirty.add(d.ino)
                        continue
                    if parents.get(child.ino) != d.ino:
                        dirty.add(child.ino)
                    child.parent = d
                    stack.append(child)
                    links[d.ino] = links.get(d.ino, 0) + 1
                seen.add(child.ino)
                links[child.ino] = links.get(child.ino, 0) + 1
        orphan_bytes = 0
        for ino in [i for i in inodes if i not in seen]:
            inode = inodes.pop(ino)
            orphan_bytes += inode.allocated + self._xattr_bytes(inode)  # type: ignore[attr-defined]
            what = _KIND.get(inode.mode & S_IFMT, "node")
            repairs.append(f"removed orphan inode {ino} ({what}, {inode.data_bytes} bytes, no name)")
            self._extra_meta_delete.add(f"i:{ino}")
            if inode.chunks:
                self._extra_chunk_delete.update(f"{ino}:{ci}" for ci in inode.chunks)
            for seq, key in by_dir.get(ino, ()):
                self._extra_meta_delete.add(key)

        # Counts: link counts, sizes against chunks, the next inode number.
        for ino, inode in inodes.items():
            n = links.get(ino, 0) + (1 if inode.entries is not None else 0)
            if inode is root:
                n += 1  # its own ".." (it is its own parent)
            if inode.nlink != n:
                repairs.append(f"inode {ino}: link count {inode.nlink} corrected to {n}")
                inode.nlink = n
                dirty.add(ino)
            if inode.chunks:
                beyond = [ci for ci in inode.chunks if ci * CHUNK >= inode.size]
                for ci in beyond:
                    inode.data_bytes -= inode.chunks.pop(ci)
                    self._extra_chunk_delete.add(f"{ino}:{ci}")
                if beyond:
                    repairs.append(f"inode {ino}: removed {len(beyond)} chunks past its size")
                    dirty.add(ino)
        listed = self.store.chunk_keys()
        if listed is not None:
            known = {f"{ino}:{ci}" for ino, inode in inodes.items() if inode.chunks
                     for ci in inode.chunks}
            gone = self._extra_chunk_delete  # chunks of removed orphans are already counted
            stray = [k for k in listed if k not in known and k not in gone]
            if stray:
                repairs.append(f"removed {len(stray)} orphan chunks")
                self._extra_chunk_delete.update(stray)
            missing = known.difference(listed)
            for key in missing:
                ino_s, _, ci_s = key.partition(":")
                inode = inodes[int(ino_s)]
                inode.data_bytes -= inode.chunks.pop(int(ci_s))  # type: ignore[union-attr]
                dirty.add(inode.ino)
            if missing:
                repairs.append(f"{len(missing)} chunks were missing: those ranges now read as zeros")
        top = max(inodes) + 1
        if next_ino < top:
            repairs.append(f"next inode number {next_ino} corrected to {top}")
            next_ino = top

        self.inodes = inodes
        self.root = root
        self.next_ino = next_ino
        self.used_inodes = len(inodes)
        self.used_bytes = 0
        self.user_bytes = {}
        for inode in inodes.values():
            used = inode.allocated + self._xattr_bytes(inode)  # type: ignore[attr-defined]
            self.used_bytes += used
            self.user_bytes[inode.uid] = self.user_bytes.get(inode.uid, 0) + used
            if inode.entries is not None:
                inode.entries.changed = set()
        if sup.get("used") != self.used_bytes + orphan_bytes:  # orphans' bytes are explained
            repairs.append(f"used-bytes count {sup.get('used')} corrected to {self.used_bytes}")
        if repairs:
            for line in repairs:
                log.warning("store check: %s", line)
            self.persist(False, None)
        self._refresh_room()

    def adopt_store(self, store, *, cache_bytes: int = DEFAULT_CACHE_BYTES,
                    writeback_ms: int = DEFAULT_WRITEBACK_MS, generation: int = 0) -> None:
        """Keep this filesystem in ``store`` from now on, replacing whatever the store held; the
        replacement is one commit (the next persist: nothing changes in the store before it, and
        a crash before it leaves the old content whole). Chunks this filesystem has not loaded
        (lengths in its chunk maps: a state saved with ``stored=True``) are taken to be in the
        store already and kept there; every other stored chunk is replaced or deleted."""
        old = store.load_meta()
        listed = store.chunk_keys()
        self._init_persistence(store, cache_bytes, writeback_ms)
        self.generation = generation
        if listed is None:
            listed = []
            for key, raw in old:
                if key.startswith("i:"):
                    try:
                        inode, _ = decode_inode(int(key[2:]), raw)
                    except (ValueError, KeyError, TypeError):
                        continue
                    listed += [f"{inode.ino}:{ci}" for ci in inode.chunks or ()]
        self._extra_meta_delete = {k for k, _ in old}
        kept = {f"{ino}:{ci}" for ino, inode in self.inodes.items() if inode.chunks
                for ci, c in inode.chunks.items() if type(c) is int}
        self._extra_chunk_delete = set(listed) - kept
        for ino, inode in self.inodes.items():
            self.dirty.add(ino)
            if inode.chunks:
                self.dirty_chunks.update((ino, ci) for ci, c in inode.chunks.items()
                                         if type(c) is not int)
            if inode.entries is not None:
                inode.entries.changed = {seq for _, (seq, _) in inode.entries.by_name.items()}
        self._refresh_room()

    # ----------------------------------------------------------------- committing

    def has_changes(self) -> bool:
        return bool(self.dirty or self.dirty_chunks or self._extra_meta_delete
                    or self._extra_chunk_delete)

    def persist(self, durable: bool, done: Callable[[int], None] | None = None) -> None:
        """Commit everything changed so far; ``done(0)`` once committed (``durable``: on disk),
        ``done(errno)`` if the commit failed (the changes stay dirty for the next one)."""
        if self.store is None:
            if done is not None:
                done(0)
            return
        self._waiters.append((durable, done))
        if not self._inflight:
            self._commit_next()

    def _commit_next(self) -> None:
        waiters, self._waiters = self._waiters, []
        durable = any(w[0] for w in waiters)
        if not self.has_changes() and not (durable and self._undurable):
            for _, done in waiters:
                if done is not None:
                    done(0)
            return
        batch, taken = self._take_batch()
        self._inflight = True
        self._inflight_chunks = taken[1]
        finished_once = []

        def finished(err: int) -> None:
            if finished_once:
                return
            finished_once.append(err)
            self._inflight = False
            self._inflight_chunks = set()
            if err:
                self._untake(taken)
                log.warning("store commit failed: %s", errno.errorcode.get(err, err))
            else:
                self.generation += 1
                self._undurable = not durable
                lru = self._lru
                for key in taken[1]:
                    lru[key] = None
                    lru.move_to_end(key)
                self._refresh_room()
            for _, done in waiters:
                if done is not None:
                    done(err)
            self.trim_cache()
            if self._waiters and not self._inflight:
                self._commit_next()

        try:
            self.store.commit(batch, durable, finished)
        except Exception:  # a store bug must not lose the changes or hang the waiters
            log.exception("store commit raised")
            finished(errno.EIO)

    def _take_batch(self):
        from ..store.base import Batch
        batch = Batch()
        dirty, self.dirty = self.dirty, set()
        chunks, self.dirty_chunks = self.dirty_chunks, set()
        extra_meta, self._extra_meta_delete = self._extra_meta_delete, set()
        extra_chunks, self._extra_chunk_delete = self._extra_chunk_delete, set()
        entry_changes = []
        put, delete = batch.meta_put, batch.meta_delete
        inodes = self.inodes
        for ino in dirty:
            inode = inodes.get(ino)
            if inode is None:
                delete.add(f"i:{ino}")
                continue
            put[f"i:{ino}"] = encode_inode(inode)
            e = inode.entries
            if e is not None and e.changed:
                seqs, e.changed = e.changed, set()
                entry_changes.append((e, seqs))
                for seq in seqs:
                    hit = e.at(seq)
                    if hit is None:
                        delete.add(f"e:{ino}:{seq}")
                    else:
                        put[f"e:{ino}:{seq}"] = json.dumps([hit[0], hit[1].ino]).encode()
        delete.update(extra_meta)
        for ino, ci in chunks:
            key = f"{ino}:{ci}"
            inode = inodes.get(ino)
            c = inode.chunks.get(ci) if inode is not None and inode.chunks is not None else None
            if c is None:
                batch.chunk_delete.add(key)
            elif type(c) is not int:
                batch.chunk_put[key] = bytes(c)
        batch.chunk_delete.update(extra_chunks)
        # A key is written or deleted, never both: stores may apply puts and deletes in any order.
        delete.difference_update(put)
        batch.chunk_delete.difference_update(batch.chunk_put)
        put["super"] = json.dumps({
            "format": FORMAT, "fsid": self.fsid, "next_ino": self.next_ino,
            "root": self.root.ino, "chunk": CHUNK, "used": self.used_bytes,
            "gen": self.generation + 1,
        }).encode()
        return batch, (dirty, chunks, extra_meta, extra_chunks, entry_changes)

    def _untake(self, taken) -> None:
        dirty, chunks, extra_meta, extra_chunks, entry_changes = taken
        self.dirty |= dirty
        self.dirty_chunks |= chunks
        self._extra_meta_delete |= extra_meta
        self._extra_chunk_delete |= extra_chunks
        for e, seqs in entry_changes:
            if e.changed is not None:
                e.changed |= seqs

    def tick(self, now_ms: float) -> None:
        """Write-behind: persist (not durably) once changes are ``writeback_ms`` old."""
        if self.store is None:
            return
        if len(self._lru) > self.cache_bytes // CHUNK:  # a large read may have overfilled it
            self.trim_cache()
        if not self.has_changes():
            self._dirty_since = None
            return
        if self._dirty_since is None:
            self._dirty_since = now_ms
        elif now_ms - self._dirty_since >= self.writeback_ms and not self._inflight:
            self._dirty_since = None
            self.persist(False, None)

    def _refresh_room(self) -> None:
        est = self.store.estimate() if self.store is not None else None
        if est is None:
            self._store_limit = float("inf")
            return
        usage, quota = est
        # Keep a margin for what the store spends beyond the data (keys, records, indexes).
        room = quota - usage - (1 << 20) - quota // 32
        self._store_limit = self.used_bytes + max(0, room)

    # ----------------------------------------------------------------- the chunk cache

    def _ensure_chunks(self, inode: Inode, cis: Iterable[int]) -> None:
        """Make chunks ``cis`` of ``inode`` present in memory (or raise ChunksNeeded)."""
        chunks = inode.chunks
        ino = inode.ino
        lru = self._lru
        if len(lru) > self.cache_bytes // CHUNK:
            cis = list(cis)
            self.trim_cache(reserve=len(cis), protect={(ino, ci) for ci in cis})
        missing = None
        for ci in cis:
            c = chunks.get(ci)  # type: ignore[union-attr]
            if type(c) is int:
                if missing is None:
                    missing = []
                missing.append(f"{ino}:{ci}")
            elif c is not None and (ino, ci) in lru:
                lru.move_to_end((ino, ci))
        if missing:
            if self.store.asynchronous:
                raise ChunksNeeded(missing)
            result: list[int] = []
            self.load_chunks(missing, result.append)
            if not result or result[0]:
                raise _fail(result[0] if result else errno.EIO, "loading file data")

    def unstored_chunks(self) -> set[tuple[int, int]]:
        """(ino, index) of chunks whose content the store does not hold yet (dirty or in flight)."""
        return self.dirty_chunks | self._inflight_chunks

    def missing_chunks(self) -> list[str]:
        """Keys of every chunk not in memory (to load before a full export)."""
        return [f"{ino}:{ci}" for ino, inode in self.inodes.items() if inode.chunks
                for ci, c in inode.chunks.items() if type(c) is int]

    def load_chunks(self, keys: list[str], done: Callable[[int], None]) -> None:
        """Load ``keys`` from the store into memory; ``done(0)`` or ``done(errno)`` when all
        have answered (inline for a synchronous store)."""
        if not keys:
            done(0)
            return
        state = [len(keys), 0]

        def one(key: str) -> Callable[[bytes | None, int], None]:
            def answered(value: bytes | None, err: int) -> None:
                if not err:
                    err = self._insert_chunk(key, value)
                if err and not state[1]:
                    state[1] = err
                state[0] -= 1
                if state[0] == 0:
                    done(state[1])
            return answered

        for key in keys:
            try:
                self.store.get_chunk(key, one(key))
            except Exception:
                log.exception("store get_chunk raised")
                one(key)(None, errno.EIO)

    def _insert_chunk(self, key: str, value: bytes | None) -> int:
        ino_s, _, ci_s = key.partition(":")
        ino, ci = int(ino_s), int(ci_s)
        inode = self.inodes.get(ino)
        if inode is None or inode.chunks is None:
            return 0  # gone meanwhile: the re-run decides what that means
        c = inode.chunks.get(ci)
        if type(c) is not int:
            return 0  # loaded, rewritten or truncated meanwhile
        if value is None or len(value) != c:
            log.error("store chunk %s is %s (expected %d bytes)", key,
                      "missing" if value is None else f"{len(value)} bytes", c)
            return errno.EIO
        inode.chunks[ci] = bytearray(value)
        self._lru[(ino, ci)] = None
        return 0

    def trim_cache(self, reserve: int = 0, protect: set | frozenset = frozenset()) -> None:
        """Evict clean chunks, least recently used first, down to ``cache_bytes`` (less room
        for ``reserve`` chunks about to load), never those in ``protect`` (the ones a request
        is about to use)."""
        lru = self._lru
        limit = max(0, self.cache_bytes // CHUNK - reserve)
        kept = []
        while len(lru) > limit:
            key, _ = lru.popitem(last=False)
            if key in protect:
                kept.append(key)
                continue
            if key in self.dirty_chunks or key in self._inflight_chunks:
                continue  # back in the cache once committed
            inode = self.inodes.get(key[0])
            if inode is None or not inode.chunks:
                continue
            c = inode.chunks.get(key[1])
            if c is not None and type(c) is not int:
                inode.chunks[key[1]] = len(c)
        for key in kept:
            lru[key] = None

    @property
    def cached_chunks(self) -> int:
        return len(self._lru)

    def close(self) -> None:
        """Commit everything durably (synchronous stores) and close the store."""
        if self.store is None:
            return
        result: list[int] = []
        self.persist(True, result.append)
        if not self.store.asynchronous and result and result[0]:
            raise _fail(result[0], "committing to the store")
        self.store.close()

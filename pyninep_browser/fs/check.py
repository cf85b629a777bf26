"""Opening a store: its records read, checked and repaired before the filesystem trusts them.

A store that a crash, a full disk or another program left inconsistent still opens: unreadable
or unknown records, entries naming missing inodes, a directory with two names, orphan inodes and
chunks, wrong link counts, chunks past a file's size, missing chunks and wrong counters are each
repaired, logged, and listed in ``repairs``; the repairs are committed at once. What cannot be
repaired (no superblock, a newer format, another chunk size, no root) refuses to open, in one line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from .constants import CHUNK, S_IFMT
from .inode import Inode
from .records import FORMAT, _int, decode_entry, decode_inode, parse_all

log = logging.getLogger("pyninep_browser")

_KIND = {0o040000: "directory", 0o100000: "file", 0o120000: "symlink"}


def _store_error(msg: str) -> Exception:
    from ..store.base import StoreError

    return StoreError(msg)


def _read_piece(key: str, counts: dict[str, int]) -> bool:
    """Whether ``key`` is a base piece (``b:<name>:<piece>``) some file reads: ``counts`` holds
    the piece count of every base file the tree reads, by name."""
    kind, _, rest = key.partition(":")
    if kind != "b":
        return False
    name, _, piece = rest.rpartition(":")
    if not (piece.isascii() and piece.isdigit()) or str(int(piece)) != piece:
        return False  # not a key the store's pieces have (fs/records.py)
    return int(piece) < counts.get(name, 0)


class StoreCheck:
    """The open-time half of :class:`~pyninep_browser.fs.persist.Persistence`."""

    store: Any
    inodes: dict[int, Inode]
    dirty: set[int]
    root: Inode
    fsid: int
    generation: int
    next_ino: int
    used_inodes: int
    used_bytes: int
    user_bytes: dict[int, int]
    repairs: list[str]
    _extra_meta_delete: set[str]
    _extra_chunk_delete: set[str]

    if TYPE_CHECKING:  # the other parts of Filesystem; mypy checks these against them

        def persist(self, durable: bool, done: Callable[[int], None] | None = None) -> None: ...
        def _refresh_room(self) -> None: ...
        def set_tree(self, inodes: dict[int, Inode], root: Inode, next_ino: int) -> None: ...
        @staticmethod
        def _xattr_bytes(inode: Inode) -> int: ...

    def _open_store(self) -> None:
        meta = self.store.load_meta()
        if not meta:  # a new store: the empty filesystem made by __init__ becomes its content
            assert self.root.entries is not None  # the root is a directory
            self.root.entries.changed = set()
            self.dirty.add(self.root.ino)
            self.persist(True, None)
            self._refresh_room()
            return
        records = dict(meta)
        raw_super = records.pop("super", None)
        if raw_super is None:
            raise _store_error(
                "the store holds something that is not a pyninep filesystem (no superblock record)"
            )
        try:
            sup = json.loads(raw_super)
            fmt = _int(sup["format"])
        except (ValueError, KeyError, TypeError):
            raise _store_error("the store's superblock is corrupt") from None
        if fmt > FORMAT:
            raise _store_error(
                f"the store was written in format {fmt}, newer than this version "
                f"reads ({FORMAT}): open it with a newer pyninep_browser"
            )
        if fmt < FORMAT:  # no older format exists yet; migrations would go here, by format
            raise _store_error(f"the store's format {fmt} is not readable by this version")
        if sup.get("chunk") != CHUNK:
            raise _store_error(f"the store uses {sup.get('chunk')}-byte chunks, this version {CHUNK}")
        self._load_records(sup, records)

    def _load_records(self, sup: dict, records: dict[str, bytes]) -> None:
        repairs = self.repairs
        inodes: dict[int, Inode] = {}
        parents: dict[int, int] = {}
        by_dir: dict[int, list[tuple[int, str]]] = {}
        # Inode records parsed together (records.parse_all), each alone if one of them is bad.
        parsed_inodes = parse_all(records, [k for k in records if k.startswith("i:")], dict)
        for key, raw in records.items():
            kind, _, rest = key.partition(":")
            try:
                if kind == "i":
                    ino = int(rest)
                    inodes[ino], parents[ino] = decode_inode(ino, parsed_inodes.get(key, raw))
                    continue
                if kind == "e":
                    dir_ino, _, seq_s = rest.partition(":")
                    by_dir.setdefault(int(dir_ino), []).append((int(seq_s), key))
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
        parsed_entries = parse_all(records, [k for lst in by_dir.values() for _, k in lst], list)
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
                    name, child_ino = decode_entry(parsed_entries.get(key, records[key]))
                    child = inodes.get(child_ino)
                except (ValueError, TypeError):
                    child, name = None, "?"
                if child is None or name in entries.by_name or not name or "/" in name:
                    repairs.append(f"removed bad entry {name!r} in directory {d}")
                    self._extra_meta_delete.add(key)
                    continue
                before = entries.next_seq
                entries.restore(name, seq, child)
                if entries.next_seq != before:  # the directory's record lagged its entries
                    dirty.add(d)

        # Reachability from the root; a directory has exactly one name.
        root.parent = root
        seen = {root.ino}
        stack = [(root, root.entries)]
        links: dict[int, int] = {}
        while stack:
            parent, entries = stack.pop()
            for name, (seq, child) in list(entries.by_name.items()):
                if child.entries is not None:
                    if child.ino in seen:
                        repairs.append(f"removed a second name {name!r} of directory {child.ino}")
                        entries.remove(name)
                        self._extra_meta_delete.add(f"e:{parent.ino}:{seq}")
                        dirty.add(parent.ino)
                        continue
                    if parents.get(child.ino) != parent.ino:
                        dirty.add(child.ino)
                    child.parent = parent
                    stack.append((child, child.entries))
                    links[parent.ino] = links.get(parent.ino, 0) + 1
                seen.add(child.ino)
                links[child.ino] = links.get(child.ino, 0) + 1
        orphan_bytes = 0
        for ino in [i for i in inodes if i not in seen]:
            inode = inodes.pop(ino)
            orphan_bytes += inode.allocated + self._xattr_bytes(inode)
            what = _KIND.get(inode.mode & S_IFMT, "node")
            repairs.append(f"removed orphan inode {ino} ({what}, {inode.data_bytes} bytes, no name)")
            self._extra_meta_delete.add(f"i:{ino}")
            if inode.chunks:
                self._extra_chunk_delete.update(f"{ino}:{ci}" for ci in inode.chunks)
            for _seq, key in by_dir.get(ino, ()):
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
                for ci in beyond:  # nothing is loaded yet: every chunk is a length
                    inode.data_bytes -= cast(int, inode.chunks.pop(ci))
                    self._extra_chunk_delete.add(f"{ino}:{ci}")
                if beyond:
                    repairs.append(f"inode {ino}: removed {len(beyond)} chunks past its size")
                    dirty.add(ino)
        listed = self.store.chunk_keys()
        if listed is not None:
            known = {f"{ino}:{ci}" for ino, inode in inodes.items() if inode.chunks for ci in inode.chunks}
            gone = self._extra_chunk_delete  # chunks of removed orphans are already counted
            # Fetched base pieces are kept while some file still reads them (fs/base.py). The
            # listed pieces are checked against the names the files read (a base tree has
            # thousands of files, and a visit fetches a few hundred pieces of them).
            counts = {i.base.name: i.base.piece_count for i in inodes.values() if i.base is not None}
            stray = [k for k in listed if k not in known and k not in gone and not _read_piece(k, counts)]
            unused = [k for k in stray if k.startswith("b:")]
            if unused:
                stray = [k for k in stray if not k.startswith("b:")]
                self._extra_chunk_delete.update(unused)  # a cache: no repair to report
            if stray:
                repairs.append(f"removed {len(stray)} orphan chunks")
                self._extra_chunk_delete.update(stray)
            missing = known.difference(listed)
            for key in missing:
                ino_s, _, ci_s = key.partition(":")
                inode = inodes[int(ino_s)]
                # It has chunk ci_s (so a chunk map), and nothing is loaded yet: a length.
                inode.data_bytes -= cast("dict[int, int]", inode.chunks).pop(int(ci_s))
                dirty.add(inode.ino)
            if missing:
                repairs.append(f"{len(missing)} chunks were missing: those ranges now read as zeros")
        top = max(inodes) + 1
        if next_ino < top:
            repairs.append(f"next inode number {next_ino} corrected to {top}")
            next_ino = top

        self.set_tree(inodes, root, next_ino)
        for inode in inodes.values():
            if inode.entries is not None:
                inode.entries.changed = set()
        if sup.get("used") != self.used_bytes + orphan_bytes:  # orphans' bytes are explained
            repairs.append(f"used-bytes count {sup.get('used')} corrected to {self.used_bytes}")
        if repairs:
            for line in repairs:
                log.warning("store check: %s", line)
            self.persist(False, None)
        self._refresh_room()
